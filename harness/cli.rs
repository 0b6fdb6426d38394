//! The `flatline` command line as a library: the subcommands, and what each does, ending in an
//! exit status (0 every expectation held, 1 one failed, 2 bad input or environment, 128+N a
//! signal). `main.rs` only parses, calls [`execute`] and exits.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::peer::{self, Reporter};
use crate::record::{Record, RunStatus};
use crate::runner::{self, error_chain, RunError, RunOptions};
use crate::{compare, output, report, sandbox, scenario};

#[derive(Parser)]
#[command(
    name = "flatline",
    version,
    about = "How long until each side of a TCP connection notices its peer is gone, and comes back"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Run scenario files, each in its own lab, several at once; print a summary per scenario
    /// (in the order given), end with `N passed, N failed`, and write each record as JSON.
    Run {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
        /// Directory for the records (<scenario name>.json).
        #[arg(long, default_value = "results")]
        out: PathBuf,
        /// Also write JUnit XML here: a test case per expectation.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write a page per run with its timeline, and index.html, into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
        #[command(flatten)]
        select: Select,
    },
    /// Validate scenario files and print what the model predicts for each (no lab, no root):
    /// exit 0 when every file is valid, 2 otherwise.
    Check {
        /// Scenario files (TOML).
        #[arg(required = true)]
        scenarios: Vec<PathBuf>,
    },
    /// Predict when each side detects a fault, from the kernel's rules (no lab, no root).
    ///
    /// Either for scenario files (every fault, both sides), or for settings given as flags,
    /// e.g. the seed's Windows keepalive: --os windows --keepalive-ms 3000/1 --fault cable-pull
    Predict {
        /// Scenario files (TOML).
        scenarios: Vec<PathBuf>,
        #[command(flatten)]
        flags: crate::predict::Flags,
    },
    /// Advise settings (keepalive, TCP_USER_TIMEOUT, heartbeat) that meet a detection target,
    /// with the model's windows; --write FILE writes a scenario that checks them in the lab.
    Advise(crate::advise::Flags),
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
        /// Also write JUnit XML here: a test case per cell and side (as predicted or not).
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the comparison's chart (measured against predicted) into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
        /// Run only shard K of N of the cells: `hash:K/N` (by cell name) or `count:K/N`
        /// (round-robin, faults outer, settings inner). Join with `flatline merge --compare`.
        #[arg(long, value_name = "hash:K/N|count:K/N")]
        partition: Option<crate::suite::Partition>,
    },
    /// Join the records of shards (`run --partition`, `compare --partition`) into one result:
    /// the records, summaries, count, tables, JUnit and HTML an unsharded run writes (no lab).
    Merge {
        /// Record files of every shard: <out>/<scenario>.json, or with --compare
        /// <out>/<comparison>/<comparison>-*.json.
        #[arg(required = true)]
        records: Vec<PathBuf>,
        /// Directory for the joined records (and, with --compare, <out>/<comparison>/ tables).
        #[arg(long)]
        out: PathBuf,
        /// The comparison file the shards ran: join cells into its tables.
        #[arg(long, value_name = "FILE")]
        compare: Option<PathBuf>,
        /// text, markdown, csv or json (with --compare).
        #[arg(long, default_value = "text")]
        format: String,
        /// Also write JUnit XML here.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write the HTML pages into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
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
        /// Instead: run N random cells (settings x traffic x fault within the kernel's limits)
        /// and count how many land inside the model's window; exit 1 if one does not.
        #[arg(long, value_name = "N")]
        fidelity: Option<usize>,
        /// With --fidelity: the first cell's seed (default: from the clock, printed).
        #[arg(long)]
        seed: Option<u64>,
        /// With --fidelity: cells run at once, each in its own lab.
        #[arg(long, default_value_t = 10)]
        jobs: usize,
        /// Instead: pools of these many connections (e.g. 100,1000,10000) through one drop;
        /// peak RSS, CPU, record size and write time, stamp spread; medians over --runs
        /// (at most 3 runs of each size).
        #[arg(long, value_name = "N,N,...", value_delimiter = ',')]
        fleet: Vec<u32>,
        /// Instead: the wire's delay and jitter against their settings (0, 10 ms, 80 ms, with
        /// and without jitter): round trips' median and p99, the kernel's srtt, the queue's
        /// cost per packet; over --runs labs per setting (at most 10, 20 round trips each).
        #[arg(long)]
        delay: bool,
        /// Instead: the suite's wall time against its slowest scenario: `flatline run FILES`
        /// (default -j) over --runs runs (at most 5); FILES default to scenarios/*.toml.
        #[arg(long, value_name = "FILE", num_args = 0..)]
        suite: Option<Vec<PathBuf>>,
    },
    /// Judge saved records again and print their summaries, as `flatline run` printed them
    /// (no lab, no root).
    Report {
        /// Record files (JSON), as `flatline run` wrote them.
        #[arg(required = true)]
        records: Vec<PathBuf>,
        /// Also write JUnit XML here: a test case per expectation.
        #[arg(long, value_name = "FILE")]
        junit: Option<PathBuf>,
        /// Also write a page per run with its timeline, and index.html, into this directory.
        #[arg(long, value_name = "DIR")]
        html: Option<PathBuf>,
    },
    /// Print the JSON Schema of a record or of a scenario file (shipped in schema/).
    Schema {
        #[arg(value_enum)]
        of: crate::schema::Of,
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

/// Which scenarios `flatline run` runs, and how many at a time.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct Select {
    /// Labs at once (default: as many as half the available memory holds at 64 MiB a lab, at
    /// most 16 a core and 64 in all: past that, faults take effect later than the model allows)
    #[arg(short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    pub jobs: Option<u16>,
    /// Only the scenarios whose name or file path contains PATTERN.
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Print the scenarios that would run (name, file, run length) and exit, without a lab.
    #[arg(long)]
    pub list: bool,
    /// After the first scenario that fails, start no more (the ones running finish).
    #[arg(long)]
    pub fail_fast: bool,
    /// Run only shard K of N: `hash:K/N` (by name) or `count:K/N` (round-robin in the order
    /// given, after --filter). Join the shards' records with `flatline merge`.
    #[arg(long, value_name = "hash:K/N|count:K/N")]
    pub partition: Option<crate::suite::Partition>,
}

/// A command that could not do its job: what to print on stderr, and the exit status.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    /// Bad input or environment: exit 2, `error: ...`.
    pub fn error(message: impl std::fmt::Display) -> Self {
        Failure {
            code: 2,
            message: format!("error: {message}"),
        }
    }

    /// Interrupted by `sig`: exit 128+N.
    fn interrupted(sig: nix::sys::signal::Signal, message: String) -> Self {
        Failure {
            code: runner::exit_code(sig),
            message: format!("flatline: {message}"),
        }
    }
}

/// The exit status when a command did its job: 0, or 1 when an expectation failed.
pub type Outcome = Result<u8, Failure>;

/// Runs one command.
pub fn execute(command: Command) -> Outcome {
    match command {
        Command::Peer { address, plan } => run_peer(address, &plan),
        Command::Run {
            scenarios,
            out,
            junit,
            html,
            select,
        } => run_scenarios(
            &scenarios,
            &out,
            CiReports {
                junit: junit.as_deref(),
                html: html.as_deref(),
            },
            &select,
        ),
        Command::Check { scenarios } => check(&scenarios),
        Command::Report {
            records,
            junit,
            html,
        } => report_records(
            &records,
            CiReports {
                junit: junit.as_deref(),
                html: html.as_deref(),
            },
        ),
        Command::Schema { of } => {
            print!("{}", crate::schema::text(of));
            Ok(0)
        }
        Command::Bench {
            fidelity: Some(n),
            seed,
            jobs,
            out,
            ..
        } => bench_fidelity(n, seed, jobs, &out),
        Command::Bench {
            delay: true,
            runs,
            out,
            ..
        } => bench_delay(runs.clamp(1, 10), &out),
        Command::Bench {
            suite: Some(files),
            runs,
            out,
            ..
        } => bench_suite(files, runs.clamp(1, 5), &out),
        Command::Bench {
            fleet, runs, out, ..
        } if !fleet.is_empty() => bench_fleet(&fleet, runs.clamp(1, 3), &out),
        Command::Bench {
            runs, out, matrix, ..
        } => bench(runs.max(1), &out, &matrix),
        Command::Compare {
            file,
            out,
            format,
            run_slow,
            junit,
            html,
            partition,
        } => compare_matrix(
            &file,
            &out,
            &format,
            (run_slow, partition),
            CiReports {
                junit: junit.as_deref(),
                html: html.as_deref(),
            },
        ),
        Command::Merge {
            records,
            out,
            compare,
            format,
            junit,
            html,
        } => merge(
            &records,
            &out,
            compare.as_deref(),
            &format,
            CiReports {
                junit: junit.as_deref(),
                html: html.as_deref(),
            },
        ),
        Command::Predict { scenarios, flags } => predict(&scenarios, &flags),
        Command::Advise(flags) => crate::advise::run(&flags).map_err(Failure::error),
    }
}

fn predict(scenarios: &[PathBuf], flags: &crate::predict::Flags) -> Outcome {
    if scenarios.is_empty() {
        let (side, fault) = flags.case().map_err(Failure::error)?;
        let p = crate::model::predict_side(&side, fault);
        print!(
            "{}",
            report::prediction_line(&format!("{:?}", flags.os), &p)
        );
        return Ok(0);
    }
    // Every file that reads, predicted; every one that does not, reported.
    let mut errors = Vec::new();
    for file in scenarios {
        match scenario::load(file) {
            Ok(s) => print!("{}", report::render_predictions(&s, flags.os)),
            Err(e) => errors.push(format!("error: {e}")),
        }
    }
    if errors.is_empty() {
        Ok(0)
    } else {
        Err(Failure {
            code: 2,
            message: errors.join("\n"),
        })
    }
}

fn run_peer(address: SocketAddr, plan: &str) -> Outcome {
    let report: &'static Reporter = Box::leak(Box::default());
    let plan: crate::plan::PeerPlan = serde_json::from_str(plan).map_err(|e| Failure {
        code: 2,
        message: format!("flatline peer: bad --plan: {e}"),
    })?;
    peer::run(&plan, address, report).map_err(|e| Failure {
        code: 2,
        message: format!("flatline peer server: cannot listen on {address}: {e}"),
    })?;
    Ok(0)
}

/// Checks the output directory, enters the sandbox (from here on this is the runner, PID 1 of
/// its own PID namespace) and builds the runtime.
fn enter_lab(out: &Path) -> Result<(tokio::runtime::Runtime, RunOptions), Failure> {
    let exe = sandbox::own_binary().map_err(|e| {
        Failure::error(format!(
            "cannot open the running flatline binary to start peers: {e}"
        ))
    })?;
    output::check_writable(out).map_err(|e| Failure::error(error_chain(&e)))?;
    let privileges = sandbox::enter().map_err(Failure::error)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a current-thread runtime builds");
    let stop = rt
        .block_on(async { runner::Stop::install() })
        .map_err(|e| Failure::error(format!("cannot install signal handlers: {e}")))?;
    sandbox::unblock_stop_signals();
    Ok((
        rt,
        RunOptions {
            exe,
            privileges,
            stop,
            progress: None,
        },
    ))
}

fn bench(runs: usize, out: &Path, matrix: &Path) -> Outcome {
    compare::load(matrix).map_err(Failure::error)?;
    let (rt, opts) = enter_lab(out)?;
    let mut figures =
        crate::bench::lab_figures(runs).map_err(|e| Failure::error(error_chain(&e)))?;
    let (matrix_figures, gap, cells) = rt
        .block_on(crate::bench::matrix_figures(
            matrix,
            &opts,
            &out.join("bench"),
            runs.min(3),
        ))
        .map_err(|e| Failure::error(error_chain(&e)))?;
    figures.extend(matrix_figures);
    let report = crate::bench::Report {
        figures,
        gap,
        matrix_cells: cells,
    };
    let path = out.join("bench.json");
    output::write_json(&path, &report).map_err(|e| Failure::error(error_chain(&e)))?;
    print!("{}", crate::bench::render(&report));
    eprintln!("figures: {}", path.display());
    Ok(0)
}

fn bench_suite(files: Vec<PathBuf>, runs: usize, out: &Path) -> Outcome {
    let files = if files.is_empty() {
        crate::bench::shipped_suite(Path::new("scenarios")).map_err(|e| {
            Failure::error(format!(
                "cannot read scenarios/ ({e}): run from the repository, or name the files"
            ))
        })?
    } else {
        files
    };
    let names: Vec<String> = load_scenarios(&files)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    output::check_writable(out).map_err(|e| Failure::error(error_chain(&e)))?;
    let exe = std::env::current_exe()
        .map_err(|e| Failure::error(format!("cannot find the running flatline binary: {e}")))?;
    let mut done = Vec::new();
    for run in 0..runs {
        let dir = out.join("bench-suite").join(format!("run-{run}"));
        let r = crate::bench::suite_run(&exe, &files, &names, &dir).map_err(Failure::error)?;
        eprintln!(
            "run {} of {runs}: {:.1} s, {}",
            run + 1,
            r.wall_ms / 1000.0,
            r.tally
        );
        done.push(r);
    }
    let jobs = crate::suite::default_jobs(crate::suite::mem_available(), crate::suite::cores());
    let report = crate::bench::SuiteReport::new(names.len(), jobs, done);
    let path = out.join("bench-suite.json");
    output::write_json(&path, &report).map_err(|e| Failure::error(error_chain(&e)))?;
    print!("{}", crate::bench::render_suite(&report));
    eprintln!("figures: {}", path.display());
    let failed = report.runs.iter().any(|r| !r.tally.contains(", 0 failed"));
    Ok(u8::from(failed))
}

fn bench_delay(runs: usize, out: &Path) -> Outcome {
    let (rt, opts) = enter_lab(out)?;
    let samples = rt
        .block_on(crate::delaybench::measure(&opts, runs))
        .map_err(|e| match e {
            RunError::Interrupted(sig) => Failure::interrupted(sig, error_chain(&e)),
            e => Failure::error(error_chain(&e)),
        })?;
    let report = crate::delaybench::report(&samples);
    let path = out.join("bench-delay.json");
    output::write_json(&path, &report).map_err(|e| Failure::error(error_chain(&e)))?;
    print!("{}", crate::delaybench::render(&report));
    eprintln!("figures: {}", path.display());
    Ok(0)
}

fn bench_fleet(sizes: &[u32], runs: usize, out: &Path) -> Outcome {
    for &n in sizes {
        if n == 0 || n > crate::scenario::MAX_CONNECTIONS {
            return Err(Failure {
                code: 2,
                message: format!(
                    "flatline bench --fleet: {n} connections: give 1 to {}",
                    crate::scenario::MAX_CONNECTIONS
                ),
            });
        }
    }
    let (rt, opts) = enter_lab(out)?;
    let dir = out.join("bench-fleet");
    std::fs::create_dir_all(&dir).map_err(|e| Failure::error(format!("{}: {e}", dir.display())))?;
    let mut report = crate::bench::FleetReport { runs: Vec::new() };
    for &n in sizes {
        for _ in 0..runs {
            let run = rt
                .block_on(crate::bench::fleet_run(n, &opts, &dir))
                .map_err(|e| Failure::error(error_chain(&e)))?;
            eprintln!(
                "{n} connections: {} detected, {} back, client {} KiB, server {} KiB, runner {} KiB",
                run.detected, run.reconnected, run.client_rss_kib, run.server_rss_kib, run.runner_rss_kib
            );
            report.runs.push(run);
        }
    }
    let path = out.join("bench-fleet.json");
    output::write_json(&path, &report).map_err(|e| Failure::error(error_chain(&e)))?;
    print!("{}", crate::bench::render_fleet(&report));
    eprintln!("figures: {}", path.display());
    Ok(0)
}

fn bench_fidelity(n: usize, seed: Option<u64>, jobs: usize, out: &Path) -> Outcome {
    let seed = seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    eprintln!("fidelity: {n} random cells from seed {seed} (again: --seed {seed})");
    if let Some(warning) = crate::suite::jobs_warning(jobs.min(n), crate::suite::cores()) {
        eprintln!("flatline: {warning}");
    }
    let (rt, opts) = enter_lab(out)?;
    let f = rt
        .block_on(crate::bench::fidelity(seed, n, jobs, &opts, out))
        .map_err(|e| match e {
            RunError::Interrupted(sig) => Failure::interrupted(sig, error_chain(&e)),
            e => Failure::error(error_chain(&e)),
        })?;
    let path = out.join("fidelity.json");
    output::write_json(&path, &f).map_err(|e| Failure::error(error_chain(&e)))?;
    print!("{}", crate::bench::render_fidelity(&f));
    eprintln!(
        "records: {}, summary: {}",
        out.join("fidelity").display(),
        path.display()
    );
    Ok(if f.inside == f.sides { 0 } else { 1 })
}

/// Renders comparison results in one format.
type Render = fn(&compare::Results) -> String;

fn json(r: &compare::Results) -> String {
    serde_json::to_string_pretty(r).expect("results serialize") + "\n"
}

/// The renderer `--format` names.
fn render_format(format: &str) -> Result<Render, Failure> {
    Ok(match format {
        "text" => compare::render_text,
        "markdown" => compare::render_markdown,
        "csv" => compare::render_csv,
        "json" => json,
        other => {
            return Err(Failure::error(format!(
                "unknown format `{other}`: use text, markdown, csv or json"
            )))
        }
    })
}

fn compare_matrix(
    file: &Path,
    out: &Path,
    format: &str,
    (run_slow, partition): (bool, Option<crate::suite::Partition>),
    reports: CiReports,
) -> Outcome {
    let render = render_format(format)?;
    let mut comparison = compare::load(file).map_err(Failure::error)?;
    if let Some(p) = partition {
        let mut i = 0;
        comparison.cells.retain(|c| {
            i += 1;
            p.keeps(i - 1, &c.plan.scenario.name)
        });
    }
    if let Some(e) = comparison
        .cells
        .iter()
        .find_map(|c| runner::check_tools(&c.plan.scenario).err())
    {
        return Err(Failure::error(format!("{}: {e}", file.display())));
    }
    reports.check()?;
    let (rt, mut opts) = enter_lab(out)?;
    let display = crate::progress::Display::start(None);
    opts.progress = display.as_ref().map(crate::progress::Display::feed);
    let dir = out.join(&comparison.name);
    let ran = rt.block_on(compare::run(&comparison, &opts, out, run_slow));
    drop(display);
    let results = match ran {
        Ok(r) => r,
        Err(RunError::Interrupted(sig)) => {
            return Err(Failure::interrupted(
                sig,
                format!(
                    "interrupted by {}; the labs were torn down, the records are in {}",
                    sig.as_str(),
                    dir.display()
                ),
            ))
        }
        Err(e) => {
            return Err(Failure::error(format!(
                "{}: {}",
                file.display(),
                error_chain(&e)
            )))
        }
    };
    write_comparison(&results, &dir, render, reports)
}

/// A comparison's tables in `dir`, its JUnit, HTML and job summary, and the table printed.
fn write_comparison(
    results: &compare::Results,
    dir: &Path,
    render: Render,
    reports: CiReports,
) -> Outcome {
    let tables: [(&str, Render); 4] = [
        ("table.txt", compare::render_text),
        ("table.md", compare::render_markdown),
        ("table.csv", compare::render_csv),
        ("table.json", json),
    ];
    for (name, f) in tables {
        output::write_atomically(&dir.join(name), f(results).as_bytes())
            .map_err(|e| Failure::error(error_chain(&e)))?;
    }
    if let Some(f) = reports.junit {
        output::write_atomically(f, crate::junit::render_comparison(results).as_bytes())
            .map_err(|e| Failure::error(error_chain(&e)))?;
    }
    if let Some(d) = reports.html {
        crate::html::write_comparison(d, results).map_err(|e| Failure::error(error_chain(&e)))?;
    }
    if std::env::var_os("GITHUB_STEP_SUMMARY").is_some() {
        crate::junit::append_to_step_summary(&compare::render_markdown(results))
            .map_err(|e| Failure::error(format!("cannot append to $GITHUB_STEP_SUMMARY: {e}")))?;
    }
    print!("{}", render(results));
    eprintln!("tables and records: {}", dir.display());
    Ok(u8::from(!results.all_as_predicted()))
}

/// The reports asked for besides the records: JUnit XML and HTML pages.
#[derive(Clone, Copy, Default)]
pub struct CiReports<'a> {
    pub junit: Option<&'a Path>,
    pub html: Option<&'a Path>,
}

impl CiReports<'_> {
    /// Before any lab: the JUnit file's directory and the HTML directory take a file.
    fn check(&self) -> Result<(), Failure> {
        let junit_dir = self.junit.map(|file| match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        });
        for dir in junit_dir.into_iter().chain(self.html) {
            output::check_writable(dir).map_err(|e| Failure::error(error_chain(&e)))?;
        }
        Ok(())
    }
}

/// The reports over every run that finished: JUnit and HTML when asked for, and the Markdown
/// summary when `$GITHUB_STEP_SUMMARY` is set. `runs` are (record path, record).
pub fn write_ci_reports(runs: &[(String, Record)], reports: CiReports) -> Result<(), Failure> {
    let list: Vec<crate::junit::Run> = runs
        .iter()
        .map(|(path, record)| crate::junit::Run { record, path })
        .collect();
    if let Some(file) = reports.junit {
        output::write_atomically(file, crate::junit::render(&list).as_bytes())
            .map_err(|e| Failure::error(error_chain(&e)))?;
    }
    if let Some(dir) = reports.html {
        crate::html::write_runs(dir, runs).map_err(|e| Failure::error(error_chain(&e)))?;
    }
    crate::junit::append_step_summary(&list)
        .map_err(|e| Failure::error(format!("cannot append to $GITHUB_STEP_SUMMARY: {e}")))
}

/// `flatline report`: reads every record first (a bad one changes nothing), then prints each
/// one's summary judged again. Exit 1 if one did not pass, 2 if one cannot be read.
fn report_records(files: &[PathBuf], reports: CiReports) -> Outcome {
    reports.check()?;
    let mut records = Vec::new();
    for file in files {
        let r = crate::record::load(file).map_err(|e| Failure::error(error_chain(&e)))?;
        records.push((file.display().to_string(), r));
    }
    let mut tally = crate::suite::Tally::default();
    let mut judged = Vec::new();
    for (path, saved) in &records {
        let again = report::rejudge(saved, path);
        for what in &again.differs {
            eprintln!(
                "note: {path}: judged again, the {what} differs from the saved one (written by flatline {})",
                saved.environment.flatline_version
            );
        }
        print!("{}", again.text);
        if report::passed(&again.record) {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
        judged.push((path.clone(), again.record));
    }
    // As `flatline run` ended.
    println!("{}", tally.line());
    write_ci_reports(&judged, reports)?;
    Ok(u8::from(tally.failed > 0))
}

/// Every file read and validated, in the order given, or every error (exit 2).
fn load_scenarios(files: &[PathBuf]) -> Result<Vec<scenario::Scenario>, Failure> {
    scenario::load_all(files).map_err(|errors| Failure {
        code: 2,
        message: errors
            .iter()
            .map(|e| format!("error: {e}"))
            .collect::<Vec<_>>()
            .join("\n"),
    })
}

/// `flatline check`: every file validated and predicted, no lab.
fn check(files: &[PathBuf]) -> Outcome {
    for s in load_scenarios(files)? {
        println!("ok {} ({})", s.name, s.file.display());
        print!(
            "{}",
            report::render_predictions(&s, crate::model::Os::Linux)
        );
    }
    Ok(0)
}

/// How one scenario of a run ended.
enum Ended {
    Ran(String, Box<Record>),
    /// Not started (`--fail-fast` after a failure, or a signal).
    Skipped,
    Failed(Failure),
}

/// `flatline run`: every file is read and checked before any lab starts; then up to `-j` run
/// at once, each summary printed in the order given as soon as it and those before it are
/// done, each record written even when the run is interrupted or fails.
fn run_scenarios(files: &[PathBuf], out: &Path, reports: CiReports, select: &Select) -> Outcome {
    use futures::stream::StreamExt;
    let loaded: Vec<_> = load_scenarios(files)?
        .into_iter()
        .filter(|s| crate::suite::matches(select.filter.as_deref(), &s.name, &s.file))
        .enumerate()
        .filter(|(i, s)| select.partition.is_none_or(|p| p.keeps(*i, &s.name)))
        .map(|(_, s)| s)
        .collect();
    if select.list {
        for s in &loaded {
            println!("{} ({}, {})", s.name, s.file.display(), s.end);
        }
        return Ok(0);
    }
    for s in &loaded {
        runner::check_tools(s).map_err(|e| Failure::error(format!("{}: {e}", s.file.display())))?;
    }
    reports.check()?;
    let cores = crate::suite::cores();
    let jobs = select.jobs.map_or_else(
        || crate::suite::default_jobs(crate::suite::mem_available(), cores),
        usize::from,
    );
    if let Some(warning) = crate::suite::jobs_warning(jobs.min(loaded.len()), cores) {
        eprintln!("flatline: {warning}");
    }
    let (rt, mut opts) = enter_lab(out)?;
    let display = crate::progress::Display::start(Some(loaded.len()));
    opts.progress = display.as_ref().map(crate::progress::Display::feed);
    let stop_starting = std::cell::Cell::new(false);
    let (opts, stop_starting) = (&opts, &stop_starting);
    let ended: Vec<Ended> = rt.block_on(async {
        let mut runs = futures::stream::iter(loaded.iter().map(|s| async move {
            if stop_starting.get() || opts.stop.received().is_some() {
                return Ended::Skipped;
            }
            let ended = run_one(opts, s, out).await;
            let failed = match &ended {
                Ended::Ran(_, r) => !report::passed(r),
                _ => true,
            };
            if failed && select.fail_fast {
                stop_starting.set(true);
            }
            ended
        }))
        .buffered(jobs);
        let mut ended = Vec::new();
        while let Some(e) = runs.next().await {
            if let Ended::Ran(path, record) = &e {
                crate::progress::print(display.as_ref(), &report::render(record, path));
            }
            ended.push(e);
        }
        ended
    });
    drop(display);
    let mut tally = crate::suite::Tally::default();
    let mut runs = Vec::new();
    let mut failures = Vec::new();
    for e in ended {
        match e {
            Ended::Ran(path, record) => {
                if report::passed(&record) {
                    tally.passed += 1;
                } else {
                    tally.failed += 1;
                }
                runs.push((path, *record));
            }
            Ended::Skipped => tally.skipped += 1,
            Ended::Failed(f) => {
                tally.failed += 1;
                failures.push(f);
            }
        }
    }
    println!("{}", tally.line());
    write_ci_reports(&runs, reports)?;
    if let Some(sig) = opts.stop.received() {
        let message = failures
            .into_iter()
            .filter(|f| f.code > 2)
            .map(|f| f.message)
            .next()
            .unwrap_or_else(|| format!("flatline: interrupted by {}", sig.as_str()));
        return Err(Failure {
            code: runner::exit_code(sig),
            message,
        });
    }
    if !failures.is_empty() {
        return Err(Failure {
            code: 2,
            message: failures
                .into_iter()
                .map(|f| f.message)
                .collect::<Vec<_>>()
                .join("\n"),
        });
    }
    Ok(u8::from(tally.failed > 0))
}

/// Runs one scenario and writes its record; the record and its path.
async fn run_one(opts: &RunOptions, s: &scenario::Scenario, out: &Path) -> Ended {
    let record = match runner::run(&crate::plan::plan(s), opts).await {
        Ok(record) => record,
        Err(RunError::Interrupted(sig)) => {
            return Ended::Failed(Failure::interrupted(
                sig,
                format!("interrupted by {}", sig.as_str()),
            ))
        }
        Err(e) => {
            return Ended::Failed(Failure::error(format!(
                "{}: {}",
                s.file.display(),
                error_chain(&e)
            )))
        }
    };
    let path = out.join(format!("{}.json", s.name));
    if let Err(e) = output::write_json(&path, &record) {
        return Ended::Failed(Failure::error(error_chain(&e)));
    }
    match &record.status {
        RunStatus::Completed => Ended::Ran(path.display().to_string(), Box::new(record)),
        RunStatus::Interrupted { signal } => {
            let sig = opts.stop.received().unwrap_or(nix::sys::signal::SIGINT);
            Ended::Failed(Failure::interrupted(
                sig,
                format!(
                    "interrupted by {signal}; the labs were torn down, the records so far are in {}",
                    out.display()
                ),
            ))
        }
        RunStatus::Failed { reason } => Ended::Failed(Failure::error(format!(
            "{}: {reason}; the lab was torn down, the record so far is in {}",
            s.file.display(),
            path.display()
        ))),
    }
}

/// `flatline merge`: every record read first (a bad one, or a shard given twice or missing,
/// changes nothing), then written under `out` with what an unsharded run prints and writes.
fn merge(
    files: &[PathBuf],
    out: &Path,
    comparison: Option<&Path>,
    format: &str,
    reports: CiReports,
) -> Outcome {
    let render = render_format(format)?;
    let comparison = comparison
        .map(|f| compare::load(f).map_err(Failure::error))
        .transpose()?;
    reports.check()?;
    let mut records = Vec::new();
    for file in files {
        let r = crate::record::load(file).map_err(|e| Failure::error(error_chain(&e)))?;
        records.push((file.clone(), r));
    }
    let written = |e: crate::output::OutputError| Failure::error(error_chain(&e));
    if let Some(c) = comparison {
        let dir = out.join(&c.name);
        let (results, placed) =
            crate::merge::comparison(&c, records, &dir).map_err(Failure::error)?;
        std::fs::create_dir_all(&dir)
            .map_err(|e| Failure::error(format!("cannot create {}: {e}", dir.display())))?;
        for (path, record) in &placed {
            output::write_json(path, record).map_err(written)?;
        }
        return write_comparison(&results, &dir, render, reports);
    }
    let records = crate::merge::runs(records).map_err(Failure::error)?;
    std::fs::create_dir_all(out)
        .map_err(|e| Failure::error(format!("cannot create {}: {e}", out.display())))?;
    let mut tally = crate::suite::Tally::default();
    let mut runs = Vec::new();
    for (_, record) in records {
        let path = out.join(format!("{}.json", record.scenario.name));
        output::write_json(&path, &record).map_err(written)?;
        let path = path.display().to_string();
        print!("{}", report::render(&record, &path));
        if report::passed(&record) {
            tally.passed += 1;
        } else {
            tally.failed += 1;
        }
        runs.push((path, record));
    }
    println!("{}", tally.line());
    write_ci_reports(&runs, reports)?;
    Ok(u8::from(tally.failed > 0))
}
