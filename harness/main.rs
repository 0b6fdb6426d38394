//! The `flatline` command: parse the command line, call the library, map the result to an
//! exit code (0 every expectation held, 1 one failed, 2 bad input or environment).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use flatline::peer::{self, Reporter};
use flatline::record::RunStatus;
use flatline::runner::{self, RunError, RunOptions};
use flatline::{compare, output, report, sandbox, scenario};

#[derive(Parser)]
#[command(
    name = "flatline",
    version,
    about = "How long until each side of a TCP connection notices its peer is gone, and comes back"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run scenario files, print a summary per scenario and write each record as JSON.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Directory for the records (<scenario name>.json).
        #[arg(long, default_value = "results")]
        out: PathBuf,
    },
    /// Predict when each side detects a fault, from the kernel's rules (no lab, no root).
    ///
    /// Either for scenario files (every fault, both sides), or for settings given as flags,
    /// e.g. the seed's Windows keepalive: --os windows --keepalive-ms 3000/1 --fault silence
    Predict {
        /// Scenario files (TOML).
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        flags: flatline::predict::Flags,
    },
    /// Run one comparison file: settings x faults, each cell in its own lab, all at once;
    /// print a table per fault (measured next to predicted) and keep every record.
    /// Exit 1 when a measurement falls outside its predicted window.
    Compare {
        /// Comparison file (TOML), e.g. scenarios/compare/compare-seed.toml.
        file: PathBuf,
        /// Directory for the tables and records (<out>/<comparison name>/).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// text, markdown, csv or json.
        #[arg(long, default_value = "text")]
        format: String,
        /// Also run cells the model says take longer than the run allows.
        #[arg(long)]
        run_slow: bool,
    },
    /// Benchmarks: lab setup and teardown, fault injection, a matrix's wall time against its
    /// slowest cell, measured against predicted detection. Medians over runs, with baselines.
    Bench {
        /// Repetitions of each figure (the matrix runs at most 3 times: it takes ~6 s).
        #[arg(long, default_value_t = 20)]
        runs: usize,
        /// Directory for bench.json and the matrix's records.
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// The comparison file the matrix figures run.
        #[arg(long, default_value = "scenarios/compare/bench-matrix.toml")]
        matrix: PathBuf,
    },
    /// Judge saved records again and print their summaries, as `flatline run` printed them
    /// (no lab, no root).
    Report {
        /// Record files (JSON), as `flatline run` wrote them.
        #[arg(required = true)]
        records: Vec<PathBuf>,
    },
    /// Print the JSON Schema of a record or of a scenario file (shipped in schema/).
    Schema {
        #[arg(value_enum)]
        of: flatline::schema::Of,
    },
    /// Run a reference peer (what `run` starts inside the lab); reports JSON lines on stdout.
    #[command(hide = true)]
    Peer {
        /// The server listens here; the client connects here.
        #[arg(long)]
        address: SocketAddr,
        /// The peer's plan, as JSON (flatline::plan::PeerPlan).
        #[arg(long)]
        plan: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Peer { address, plan } => run_peer(address, &plan),
        Command::Run { scenarios, out } => run_scenarios(&scenarios, &out),
        Command::Report { records } => report_records(&records),
        Command::Schema { of } => {
            print!("{}", flatline::schema::text(of));
            ExitCode::SUCCESS
        }
        Command::Bench { runs, out, matrix } => bench(runs.max(1), &out, &matrix),
        Command::Compare {
            file,
            out,
            format,
            run_slow,
        } => compare_matrix(&file, &out, &format, run_slow),
        Command::Predict { scenarios, flags } => {
            if !scenarios.is_empty() {
                let mut code = ExitCode::SUCCESS;
                for file in &scenarios {
                    match scenario::load(file) {
                        Ok(s) => print!("{}", report::render_predictions(&s, flags.os)),
                        Err(e) => {
                            eprintln!("error: {e}");
                            code = ExitCode::from(2);
                        }
                    }
                }
                return code;
            }
            match flags.case() {
                Ok((side, fault)) => {
                    let p = flatline::model::predict_side(&side, fault);
                    print!(
                        "{}",
                        report::prediction_line(&format!("{:?}", flags.os), &p)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::from(2)
                }
            }
        }
    }
}

fn run_peer(address: SocketAddr, plan: &str) -> ExitCode {
    let report: &'static Reporter = Box::leak(Box::default());
    let plan: flatline::plan::PeerPlan = match serde_json::from_str(plan) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("flatline peer: bad --plan: {e}");
            return ExitCode::from(2);
        }
    };
    match peer::run(&plan, address, report) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("flatline peer server: cannot listen on {address}: {e}");
            ExitCode::from(2)
        }
    }
}

/// Creates the output directory, enters the sandbox (from here on this is the runner, PID 1 of
/// its own PID namespace) and builds the runtime.
fn enter_lab(out: &std::path::Path) -> Result<(tokio::runtime::Runtime, RunOptions), ExitCode> {
    let exe = sandbox::own_binary().map_err(|e| {
        eprintln!("error: cannot open the running flatline binary to start peers: {e}");
        ExitCode::from(2)
    })?;
    output::check_writable(out).map_err(|e| {
        eprintln!("error: {}", runner::error_chain(&e));
        ExitCode::from(2)
    })?;
    let privileges = sandbox::enter().map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let stop = rt
        .block_on(async { runner::Stop::install() })
        .map_err(|e| {
            eprintln!("error: cannot install signal handlers: {e}");
            ExitCode::from(2)
        })?;
    sandbox::unblock_stop_signals();
    Ok((
        rt,
        RunOptions {
            exe,
            privileges,
            stop,
        },
    ))
}

fn bench(runs: usize, out: &std::path::Path, matrix: &std::path::Path) -> ExitCode {
    if let Err(e) = compare::load(matrix) {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let (rt, opts) = match enter_lab(out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut figures = match flatline::bench::lab_figures(runs) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let matrix_runs = runs.min(3);
    let (matrix_figures, gap, cells) = match rt.block_on(flatline::bench::matrix_figures(
        matrix,
        &opts,
        &out.join("bench"),
        matrix_runs,
    )) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("error: {}", error_chain(&e));
            return ExitCode::from(2);
        }
    };
    figures.extend(matrix_figures);
    let report = flatline::bench::Report {
        figures,
        gap,
        matrix_cells: cells,
    };
    let path = out.join("bench.json");
    if let Err(e) = output::write_json(&path, &report) {
        eprintln!("error: {}", runner::error_chain(&e));
        return ExitCode::from(2);
    }
    print!("{}", flatline::bench::render(&report));
    eprintln!("figures: {}", path.display());
    ExitCode::SUCCESS
}

/// Renders comparison results in one format.
type Render = fn(&compare::Results) -> String;

fn compare_matrix(
    file: &std::path::Path,
    out: &std::path::Path,
    format: &str,
    run_slow: bool,
) -> ExitCode {
    let render: Render = match format {
        "text" => compare::render_text,
        "markdown" => compare::render_markdown,
        "csv" => compare::render_csv,
        "json" => |r| serde_json::to_string_pretty(r).expect("results serialize") + "\n",
        other => {
            eprintln!("error: unknown format `{other}`: use text, markdown, csv or json");
            return ExitCode::from(2);
        }
    };
    let comparison = match compare::load(file) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    if let Some(e) = comparison
        .cells
        .iter()
        .find_map(|c| runner::check_tools(&c.plan.scenario).err())
    {
        eprintln!("error: {}: {e}", file.display());
        return ExitCode::from(2);
    }
    let (rt, opts) = match enter_lab(out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let results = match rt.block_on(compare::run(&comparison, &opts, out, run_slow)) {
        Ok(r) => r,
        Err(RunError::Interrupted(sig)) => {
            eprintln!(
                "flatline: interrupted by {}; the labs were torn down, the records are in {}",
                sig.as_str(),
                out.join(&comparison.name).display()
            );
            return ExitCode::from(runner::exit_code(sig));
        }
        Err(e) => {
            eprintln!("error: {}: {}", file.display(), error_chain(&e));
            return ExitCode::from(2);
        }
    };
    let dir = out.join(&comparison.name);
    let tables: [(&str, Render); 4] = [
        ("table.txt", compare::render_text),
        ("table.md", compare::render_markdown),
        ("table.csv", compare::render_csv),
        ("table.json", |r| {
            serde_json::to_string_pretty(r).expect("results serialize") + "\n"
        }),
    ];
    for (name, f) in tables {
        if let Err(e) = output::write_atomically(&dir.join(name), f(&results).as_bytes()) {
            eprintln!("error: {}", runner::error_chain(&e));
            return ExitCode::from(2);
        }
    }
    print!("{}", render(&results));
    eprintln!("tables and records: {}", dir.display());
    if results.all_as_predicted() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// `flatline report`: reads every record first (a bad one changes nothing), then prints each
/// one's summary judged again. Exit 1 if one did not pass, 2 if one cannot be read.
fn report_records(files: &[PathBuf]) -> ExitCode {
    let mut records = Vec::new();
    for file in files {
        match flatline::record::load(file) {
            Ok(r) => records.push((file.display().to_string(), r)),
            Err(e) => {
                eprintln!("error: {}", error_chain(&e));
                return ExitCode::from(2);
            }
        }
    }
    let mut failed = false;
    for (path, saved) in &records {
        let again = report::rejudge(saved, path);
        for what in &again.differs {
            eprintln!(
                "note: {path}: judged again, the {what} differs from the saved one (written by flatline {})",
                saved.environment.flatline_version
            );
        }
        print!("{}", again.text);
        failed |= !report::passed(&again.record);
    }
    ExitCode::from(u8::from(failed))
}

fn run_scenarios(files: &[PathBuf], out: &std::path::Path) -> ExitCode {
    // Validate everything before touching anything.
    let loaded = match scenario::load_all(files) {
        Ok(l) => l,
        Err(errors) => {
            for e in errors {
                eprintln!("error: {e}");
            }
            return ExitCode::from(2);
        }
    };
    for s in &loaded {
        if let Err(e) = runner::check_tools(s) {
            eprintln!("error: {}: {e}", s.file.display());
            return ExitCode::from(2);
        }
    }
    let (rt, opts) = match enter_lab(out) {
        Ok(x) => x,
        Err(code) => return code,
    };
    let mut failed = false;
    for s in &loaded {
        match rt.block_on(runner::run(&flatline::plan::plan(s), &opts)) {
            Ok(record) => {
                let path = out.join(format!("{}.json", s.name));
                if let Err(e) = output::write_json(&path, &record) {
                    eprintln!("error: {}", runner::error_chain(&e));
                    return ExitCode::from(2);
                }
                match &record.status {
                    RunStatus::Completed => {
                        print!("{}", report::render(&record, &path.display().to_string()));
                        failed |= !report::passed(&record);
                    }
                    RunStatus::Interrupted { signal } => {
                        eprintln!(
                            "flatline: interrupted by {signal}; the lab was torn down, \
                             the record so far is in {}",
                            path.display()
                        );
                        let sig = opts.stop.received().unwrap_or(nix::sys::signal::SIGINT);
                        return ExitCode::from(runner::exit_code(sig));
                    }
                    RunStatus::Failed { reason } => {
                        eprintln!(
                            "error: {}: {reason}; the lab was torn down, the record so far \
                             is in {}",
                            s.file.display(),
                            path.display()
                        );
                        return ExitCode::from(2);
                    }
                }
            }
            Err(RunError::Interrupted(sig)) => {
                eprintln!("flatline: interrupted by {}", sig.as_str());
                return ExitCode::from(runner::exit_code(sig));
            }
            Err(e) => {
                eprintln!("error: {}: {}", s.file.display(), error_chain(&e));
                return ExitCode::from(2);
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text += &format!(": {s}");
        source = s.source();
    }
    text
}
