//! Benchmarks (`flatline bench`): lab setup and teardown, fault injection, a settings matrix's
//! wall time against its slowest cell, and the gap between measured and predicted detection.
//! Figures are medians over runs, each next to a baseline measured in the same run.

use std::fmt::Write;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use crate::compare;
use crate::duration::Dur;
use crate::fault::{self, Action};
use crate::lab::{Lab, LabConfig, LabError, Ns};
use crate::runner::{RunError, RunOptions};
use crate::scenario::{
    CablePull, Direction, Fault, FaultKind, FaultSpec, FirewallDrop, LinkEnd, Loss, Percent,
    Reject, RejectWith, Side,
};

/// The median of some figures (the mean of the middle two for an even count).
pub fn median(values: &[f64]) -> f64 {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(f64::total_cmp);
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    }
}

/// One figure: its median, the baseline's, and their ratio.
#[derive(Clone, Debug, Serialize)]
pub struct Figure {
    pub what: String,
    pub median_ms: f64,
    pub baseline: String,
    pub baseline_median_ms: f64,
    pub ratio: f64,
    pub runs: usize,
}

impl Figure {
    fn new(what: &str, samples: &[f64], baseline: &str, base: &[f64]) -> Figure {
        let (m, b) = (median(samples), median(base));
        Figure {
            what: what.into(),
            median_ms: m,
            baseline: baseline.into(),
            baseline_median_ms: b,
            ratio: m / b,
            runs: samples.len(),
        }
    }
}

/// How far measured detections fell from the model's windows.
#[derive(Clone, Debug, Serialize)]
pub struct Gap {
    /// Detections measured (cells x sides that detected).
    pub detections: usize,
    /// Median of (measured - predicted earliest), ms.
    pub median_above_earliest_ms: f64,
    /// Median of (predicted latest - measured), ms.
    pub median_below_latest_ms: f64,
    /// Median position inside the window: 0 at the earliest, 1 at the latest.
    pub median_position: f64,
    /// Detections outside their window (with the comparison's tolerance).
    pub outside: usize,
    /// Which, as "run N: fault / settings / side: measured vs predicted".
    pub outside_cells: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub figures: Vec<Figure>,
    pub gap: Gap,
    pub matrix_cells: usize,
}

fn ms_since(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1000.0
}

fn bench_fault(kind: FaultKind) -> Fault {
    let direction = Direction::Both;
    let what = match kind {
        FaultKind::CablePull => FaultSpec::CablePull(CablePull {
            target: Side::Server,
            end: LinkEnd::Wire,
        }),
        FaultKind::Reject => FaultSpec::Reject(Reject {
            direction,
            with: RejectWith::TcpReset,
        }),
        FaultKind::Loss => FaultSpec::Loss(Loss {
            direction,
            percent: Percent(20),
        }),
        _ => FaultSpec::FirewallDrop(FirewallDrop { direction }),
    };
    Fault {
        id: "bench".into(),
        at: Dur::from_millis(0),
        heal: Some(Dur::from_millis(1)),
        what,
    }
}

/// Lab and fault figures: no peers, `runs` repetitions each.
pub fn lab_figures(runs: usize) -> Result<Vec<Figure>, LabError> {
    let (mut setup, mut teardown, mut bare) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        // Baseline: one bare network namespace, nothing in it.
        let t = Instant::now();
        let fd = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET)?;
            std::fs::File::open("/proc/thread-self/ns/net")
        })
        .join()
        .expect("no panic");
        drop(fd);
        bare.push(ms_since(t));

        let t = Instant::now();
        let lab = Lab::up(&LabConfig::default())?;
        setup.push(ms_since(t));
        let t = Instant::now();
        lab.teardown();
        teardown.push(ms_since(t));
    }
    let mut figures = vec![
        Figure::new(
            "lab setup (3 namespaces, 2 veth pairs, routes)",
            &setup,
            "one bare network namespace",
            &bare,
        ),
        Figure::new(
            "lab teardown",
            &teardown,
            "one bare network namespace",
            &bare,
        ),
    ];

    let lab = Lab::up(&LabConfig::default())?;
    let mut shell = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let mut cmd = lab.command(Ns::Wire, "sh", &[]);
        cmd.args(["-c", "true"]);
        lab.run(Ns::Wire, cmd, "")?;
        shell.push(ms_since(t));
    }
    for kind in [
        FaultKind::FirewallDrop,
        FaultKind::CablePull,
        FaultKind::Reject,
        FaultKind::Loss,
    ] {
        let f = bench_fault(kind);
        let mut inject = Vec::new();
        for _ in 0..runs {
            let t = Instant::now();
            for m in fault::mechanism(&f, Action::Inject) {
                fault::run_script(&lab, &m)?;
            }
            inject.push(ms_since(t));
            for m in fault::mechanism(&f, Action::Heal) {
                fault::run_script(&lab, &m)?;
            }
        }
        figures.push(Figure::new(
            &format!("inject {}", kind.as_str()),
            &inject,
            "`sh -c true` in the wire namespace",
            &shell,
        ));
    }
    lab.teardown();
    Ok(figures)
}

/// Runs the benchmark comparison `runs` times; returns matrix figures and the model gap.
pub async fn matrix_figures(
    file: &Path,
    opts: &RunOptions,
    out: &Path,
    runs: usize,
) -> Result<(Vec<Figure>, Gap, usize), RunError> {
    let comparison = compare::load(file).map_err(|e| RunError::Setup(e.to_string()))?;
    let (mut wall, mut slowest, mut sums) = (Vec::new(), Vec::new(), Vec::new());
    let (mut above, mut below, mut position, mut outside) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        // Each run keeps its own records, so an outlier can be looked at.
        let r = compare::run(&comparison, opts, &out.join(format!("run-{run}")), false).await?;
        wall.push(r.wall_ms);
        slowest.push(r.slowest_cell_ms());
        sums.push(r.cells.iter().filter_map(|c| c.run_ms).sum());
        for cell in &r.cells {
            for (side, s) in [("client", &cell.client), ("server", &cell.server)] {
                let (Some(ms), Some(predicted)) = (s.measured_ms, s.predicted_ms) else {
                    continue;
                };
                above.push(ms - predicted.0);
                below.push(predicted.1 - ms);
                position.push((ms - predicted.0) / (predicted.1 - predicted.0));
                if s.as_predicted == Some(false) {
                    outside.push(format!(
                        "run {run}: {} / {} / {side}: {ms:.0} ms {} vs {} {}",
                        cell.fault,
                        cell.settings,
                        s.error.as_deref().unwrap_or("-"),
                        s.predicted,
                        s.predicted_error.as_deref().unwrap_or("-"),
                    ));
                }
            }
        }
    }
    let figures = vec![
        Figure::new(
            &format!("matrix of {} cells, wall time", comparison.cells.len()),
            &wall,
            "its slowest cell",
            &slowest,
        ),
        Figure::new(
            "same matrix, cells one after another (sum)",
            &sums,
            "its slowest cell",
            &slowest,
        ),
    ];
    let gap = Gap {
        detections: above.len(),
        median_above_earliest_ms: median(&above),
        median_below_latest_ms: median(&below),
        median_position: median(&position),
        outside: outside.len(),
        outside_cells: outside,
    };
    Ok((figures, gap, comparison.cells.len()))
}

pub fn render(r: &Report) -> String {
    let mut out = String::from("| what | median | baseline | baseline median | ratio | runs |\n|---|---|---|---|---|---|\n");
    for f in &r.figures {
        let _ = writeln!(
            out,
            "| {} | {:.2} ms | {} | {:.2} ms | {:.2} | {} |",
            f.what, f.median_ms, f.baseline, f.baseline_median_ms, f.ratio, f.runs
        );
    }
    let g = &r.gap;
    let _ = writeln!(
        out,
        "\nMeasured vs predicted detection, {} detections over the matrix runs: median {:.0} ms above \
         the predicted earliest, {:.0} ms below the predicted latest (median position {:.2} of the \
         window, 0 = earliest, 1 = latest); {} outside their window.",
        g.detections, g.median_above_earliest_ms, g.median_below_latest_ms, g.median_position, g.outside
    );
    for cell in &g.outside_cells {
        let _ = writeln!(out, "- outside: {cell}");
    }
    out
}

/// How long one scenario's lab lived, as its record says: its setup, then from t = 0 to the
/// end of its teardown; what that scenario alone would cost the suite.
pub fn run_ms(record: &crate::record::Record) -> f64 {
    use crate::record::Kind;
    let setup = record.events.iter().find_map(|e| match e.kind {
        Kind::LabUp { setup_ms } => Some(setup_ms),
        _ => None,
    });
    let down = record
        .events
        .iter()
        .rfind(|e| matches!(e.kind, Kind::LabDown { .. }))
        .map(|e| e.t_ms);
    setup.unwrap_or(0.0) + down.unwrap_or(f64::NAN)
}

/// One run of the whole suite, as `flatline run FILES` (default `-j`) did it.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteRun {
    /// The command's wall time, start to exit, ms.
    pub wall_ms: f64,
    /// Each scenario's lab, from its record ([`run_ms`]), in the order given.
    pub scenarios_ms: Vec<(String, f64)>,
    /// The run's last line (`N passed, N failed`).
    pub tally: String,
}

impl SuiteRun {
    /// The slowest scenario: (name, ms).
    pub fn slowest(&self) -> (&str, f64) {
        self.scenarios_ms
            .iter()
            .map(|(n, ms)| (n.as_str(), *ms))
            .fold(("", f64::NAN), |a, b| {
                if b.1 > a.1 || a.1.is_nan() {
                    b
                } else {
                    a
                }
            })
    }
}

/// `flatline bench --suite`: the suite's wall time against its slowest scenario.
#[derive(Clone, Debug, Serialize)]
pub struct SuiteReport {
    pub scenarios: usize,
    /// What `-j` defaults to on this machine now (the runs use the default).
    pub default_jobs: usize,
    pub figures: Vec<Figure>,
    pub runs: Vec<SuiteRun>,
}

impl SuiteReport {
    pub fn new(scenarios: usize, default_jobs: usize, runs: Vec<SuiteRun>) -> SuiteReport {
        let wall: Vec<f64> = runs.iter().map(|r| r.wall_ms).collect();
        let slowest: Vec<f64> = runs.iter().map(|r| r.slowest().1).collect();
        let sums: Vec<f64> = runs
            .iter()
            .map(|r| r.scenarios_ms.iter().map(|s| s.1).sum())
            .collect();
        let figures = vec![
            Figure::new(
                &format!("suite of {scenarios} scenarios, wall time (`flatline run`, default -j)"),
                &wall,
                "its slowest scenario",
                &slowest,
            ),
            Figure::new(
                "same suite, scenarios one after another (sum)",
                &sums,
                "its slowest scenario",
                &slowest,
            ),
        ];
        SuiteReport {
            scenarios,
            default_jobs,
            figures,
            runs,
        }
    }
}

/// The shipped suite: `scenarios/*.toml` under `dir`, sorted by name (as a shell's glob).
pub fn shipped_suite(dir: &Path) -> std::io::Result<Vec<std::path::PathBuf>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Runs `exe run FILES --out DIR` once, as a user would (default `-j`, progress on the
/// terminal if stderr is one), timing the whole command, then reads each scenario's record.
/// A run whose expectations failed still counts (exit 1); any other exit is an error.
pub fn suite_run(
    exe: &Path,
    files: &[std::path::PathBuf],
    names: &[String],
    dir: &Path,
) -> Result<SuiteRun, String> {
    if dir.exists() {
        // Our own directory of an earlier bench: no stale record may stand in for a new one.
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    let start = Instant::now();
    let output = std::process::Command::new(exe)
        .arg("run")
        .args(files)
        .arg("--out")
        .arg(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot start {} run: {e}", exe.display()))?;
    let wall_ms = ms_since(start);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let tally = stdout.lines().last().unwrap_or_default().to_owned();
    if !matches!(output.status.code(), Some(0 | 1)) {
        return Err(format!(
            "`flatline run` of the suite ended with {}; its last line: {tally}",
            output.status
        ));
    }
    let mut scenarios_ms = Vec::new();
    for name in names {
        let path = dir.join(format!("{name}.json"));
        let record = crate::record::load(&path).map_err(|e| crate::runner::error_chain(&e))?;
        scenarios_ms.push((name.clone(), run_ms(&record)));
    }
    Ok(SuiteRun {
        wall_ms,
        scenarios_ms,
        tally,
    })
}

/// The suite's figures as a table, then each run's wall time, slowest scenario and count.
pub fn render_suite(r: &SuiteReport) -> String {
    let mut out = String::from(
        "| what | median | baseline | baseline median | ratio | runs |\n|---|---|---|---|---|---|\n",
    );
    for f in &r.figures {
        let _ = writeln!(
            out,
            "| {} | {:.1} s | {} | {:.1} s | {:.2} | {} |",
            f.what,
            f.median_ms / 1000.0,
            f.baseline,
            f.baseline_median_ms / 1000.0,
            f.ratio,
            f.runs
        );
    }
    let _ = writeln!(out, "\n-j by default here: {}", r.default_jobs);
    for (i, run) in r.runs.iter().enumerate() {
        let (name, ms) = run.slowest();
        let _ = writeln!(
            out,
            "run {}: wall {:.1} s, slowest {name} {:.1} s ({:.2}x); {}",
            i + 1,
            run.wall_ms / 1000.0,
            ms / 1000.0,
            run.wall_ms / ms,
            run.tally
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fidelity cell whose fault came later than INJECT_LATE_MS says so (its race windows
    /// assume less), and the total line gives the latest fault.
    #[test]
    fn a_late_fault_is_named_in_the_fidelity_report() {
        let side = FidelitySide {
            measured_ms: Some(1000.0),
            error: Some("ETIMEDOUT".into()),
            predicted: "0.9s..1.1s".into(),
            predicted_error: Some("ETIMEDOUT".into()),
            predicted_alt_errors: Vec::new(),
            inside: true,
        };
        let cell = |seed: u64, late: f64| FidelityCell {
            seed,
            cell: "c".into(),
            client: side.clone(),
            server: side.clone(),
            record: String::new(),
            fault_late_ms: Some(late),
            second: None,
        };
        // A cell with a second fault, itself late: its sides and its lateness are shown too.
        let twice = FidelityCell {
            second: Some(FidelityFault {
                client: FidelitySide {
                    inside: false,
                    ..side.clone()
                },
                server: side.clone(),
                fault_late_ms: Some(crate::model::INJECT_LATE_MS + 7.0),
            }),
            ..cell(3, 10.0)
        };
        let f = Fidelity {
            seed: 1,
            cells: vec![
                cell(1, 12.5),
                cell(2, crate::model::INJECT_LATE_MS + 77.0),
                twice,
            ],
            inside: 7,
            sides: 8,
            wall_ms: 5000.0,
        };
        let text = render_fidelity(&f);
        assert_eq!(
            text.matches("more than the model allows").count(),
            2,
            "{text}"
        );
        assert!(text.contains("the second fault took effect"), "{text}");
        assert!(
            text.contains("second fault: client 1.00 s ETIMEDOUT (predicted 0.9s..1.1s ETIMEDOUT)  << OUTSIDE"),
            "{text}"
        );
        assert!(text.contains("7 of 8 sides inside"), "{text}");
        assert!(text.contains("seed 2: c"), "{text}");
        assert!(
            text.ends_with(&format!(
                "; faults at most {:.1} ms after their `at`)\n",
                crate::model::INJECT_LATE_MS + 77.0
            )),
            "{text}"
        );
    }

    #[test]
    fn the_fleet_scenario_is_a_valid_pool() {
        for n in [1, 100, 10_000] {
            let s = crate::scenario::parse(Path::new("fleet"), &fleet_scenario(n)).unwrap();
            assert_eq!(s.client.connections, Some(n));
            assert_eq!(s.server.backlog, Some(4096));
        }
    }

    #[test]
    fn loss_lag_is_the_last_ack_age_past_the_deadline() {
        use crate::record::{
            Ends, Event, Kind, LossMechanism, PeerLost, Source, TcpInfo, TcpState,
        };
        let lost = |age: u32| {
            let mut info: TcpInfo = serde_json::from_value(serde_json::json!({
                "state": "CLOSE", "retransmits": 0, "probes": 3, "backoff": 0, "rto_us": 0,
                "rtt_us": 0, "unacked": 0, "total_retrans": 0, "last_data_sent_ms": 0,
                "last_data_recv_ms": 0, "last_ack_recv_ms": 0
            }))
            .unwrap();
            info.last_ack_recv_ms = age;
            assert_eq!(info.state, TcpState::Close);
            Event::new(
                1.0,
                Source::Client,
                Kind::PeerLost(PeerLost {
                    ends: Ends::default(),
                    error: "ETIMEDOUT".into(),
                    mechanism: LossMechanism::Keepalive,
                    tcp_info: Some(info),
                    records_sent: 0,
                    records_received: 0,
                    heartbeats_sent: 0,
                    heartbeats_received: 0,
                }),
            )
        };
        let ev: Vec<Event> = [5030, 5010, 5500].into_iter().map(lost).collect();
        let d = loss_lag(&ev, 5000.0).unwrap();
        assert_eq!((d.min_ms, d.p50_ms, d.max_ms), (10.0, 30.0, 500.0));
        assert!(loss_lag(&[], 5000.0).is_none());
    }

    #[test]
    fn kernel_stamps_split_the_lag_into_the_kernels_slack_and_the_harnesss_delay() {
        use crate::observer::Tuple;
        use crate::record::{Ends, Event, Kind, LossMechanism, PeerLost, Source, TcpInfo};
        let tuple = Tuple {
            local: "198.18.1.2:40000".parse().unwrap(),
            remote: "198.18.2.2:7000".parse().unwrap(),
        };
        let mut info: TcpInfo = serde_json::from_value(serde_json::json!({
            "state": "CLOSE", "retransmits": 0, "probes": 3, "backoff": 0, "rto_us": 0,
            "rtt_us": 0, "unacked": 0, "total_retrans": 0, "last_data_sent_ms": 0,
            "last_data_recv_ms": 0, "last_ack_recv_ms": 0
        }))
        .unwrap();
        // Read (tcp_info) 5300 ms after the last ACK: 300 ms past the 5 s deadline.
        info.last_ack_recv_ms = 5300;
        let listening = Event::new(
            10.0,
            Source::Server,
            Kind::Listening {
                addr: "198.18.2.2:7000".into(),
            },
        );
        // Stamped by the peer at 7002 ms.
        let lost = Event::new(
            7002.0,
            Source::Client,
            Kind::PeerLost(PeerLost {
                ends: Ends {
                    local: tuple.local.to_string(),
                    peer: tuple.remote.to_string(),
                },
                error: "ETIMEDOUT".into(),
                mechanism: LossMechanism::Keepalive,
                tcp_info: Some(info),
                records_sent: 0,
                records_received: 0,
                heartbeats_sent: 0,
                heartbeats_received: 0,
            }),
        );
        let events = [listening, lost];
        let ms = |m: u64| m * 1_000_000;
        // The record's zero is at 1000 s on the monotonic clock; another lab listened before
        // the run started, ours 10 ms after its zero.
        let before = ms(1_000_000) - ms(5);
        let mut aborts = Aborts {
            listens: vec![ms(999_000), ms(1_000_010)],
            ..Aborts::default()
        };
        // An older abort of the same tuple (another lab's), then ours at 7000 ms; the socket
        // was read and closed at 7100 ms.
        aborts
            .by_tuple
            .insert(tuple, vec![ms(1_000_000 + 100), ms(1_000_000 + 7000)]);
        aborts.destroyed.insert(tuple, vec![ms(1_000_000 + 7100)]);
        let origin = origin_ns(&events, &aborts, before).unwrap();
        assert_eq!(origin, ms(1_000_000));
        let (slack, delay) = split_lag(&events, &aborts, origin, 5000.0);
        // The harness stamped 2 ms after the kernel; the kernel aborted 200 ms past the
        // deadline (300 ms at the read, 100 ms after the abort).
        assert_eq!(delay.len(), 1);
        assert!((delay[0] - 2.0).abs() < 1e-6, "{delay:?}");
        assert!((slack[0] - 200.0).abs() < 1e-6, "{slack:?}");
        // Without the server's listen in the trace there is no zero to align on.
        let none = Aborts::default();
        assert_eq!(origin_ns(&events, &none, before), None);
    }

    #[test]
    fn a_suite_is_measured_against_its_slowest_lab() {
        use crate::record::{Event, Kind, Source};
        let record = |setup_ms: f64, down: f64| {
            let mut r = crate::report::tests::record(crate::record::RunStatus::Completed);
            r.events = vec![
                Event::new(0.0, Source::Runner, Kind::LabUp { setup_ms }),
                Event::new(
                    down,
                    Source::Runner,
                    Kind::LabDown {
                        teardown_ms: 1.0,
                        reason: None,
                    },
                ),
            ];
            r
        };
        // Setup counts: the lab cost it before t = 0.
        assert_eq!(run_ms(&record(10.0, 8000.0)), 8010.0);
        let run = |wall_ms: f64, a: f64, b: f64| SuiteRun {
            wall_ms,
            scenarios_ms: vec![("a".into(), a), ("b".into(), b)],
            tally: "2 passed, 0 failed".into(),
        };
        assert_eq!(run(1.0, 3.0, 7.0).slowest(), ("b", 7.0));
        let r = SuiteReport::new(
            2,
            8,
            vec![
                run(9000.0, 3000.0, 8000.0),
                run(8000.0, 8000.0, 4000.0),
                run(8800.0, 2000.0, 7000.0),
            ],
        );
        // Medians: wall 8800 against slowest 8000; sums 11000, 12000, 9000.
        assert_eq!(r.figures[0].median_ms, 8800.0);
        assert_eq!(r.figures[0].baseline_median_ms, 8000.0);
        assert!((r.figures[0].ratio - 1.1).abs() < 1e-9);
        assert_eq!(r.figures[1].median_ms, 11000.0);
        let text = render_suite(&r);
        assert!(
            text.contains("| suite of 2 scenarios, wall time (`flatline run`, default -j) | 8.8 s | its slowest scenario | 8.0 s | 1.10 | 3 |"),
            "{text}"
        );
        assert!(
            text.contains("run 1: wall 9.0 s, slowest b 8.0 s (1.12x); 2 passed, 0 failed"),
            "{text}"
        );
    }

    #[test]
    fn medians() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        assert!(median(&[]).is_nan());
        assert_eq!(median(&[f64::NAN, 5.0]), 5.0);
    }
}

/// One side of one random cell: measured against the model.
#[derive(Clone, Debug, Serialize)]
pub struct FidelitySide {
    pub measured_ms: Option<f64>,
    pub error: Option<String>,
    pub predicted: String,
    pub predicted_error: Option<String>,
    /// Other errors the model allows (mechanisms racing inside the window).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub predicted_alt_errors: Vec<String>,
    pub inside: bool,
}

/// One random cell of `flatline bench --fidelity`.
#[derive(Clone, Debug, Serialize)]
pub struct FidelityCell {
    pub seed: u64,
    pub cell: String,
    pub client: FidelitySide,
    pub server: FidelitySide,
    pub record: String,
    /// How late the fault took effect after its `at`, ms (the model allows
    /// [`crate::model::INJECT_LATE_MS`]; more labs per core make it later).
    pub fault_late_ms: Option<f64>,
    /// The second fault, for a cell that heals its fault and injects another
    /// ([`crate::fidelity::SecondFault`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub second: Option<FidelityFault>,
}

/// The second fault of a random cell, each side measured against the model.
#[derive(Clone, Debug, Serialize)]
pub struct FidelityFault {
    pub client: FidelitySide,
    pub server: FidelitySide,
    pub fault_late_ms: Option<f64>,
}

/// What `flatline bench --fidelity N` found.
#[derive(Clone, Debug, Serialize)]
pub struct Fidelity {
    /// The first seed; the cells are seeds `seed`, `seed + 1`, ...
    pub seed: u64,
    pub cells: Vec<FidelityCell>,
    /// Sides (two per fault of each cell) whose outcome landed inside the predicted window,
    /// with an error the model allows (or "never" where the model says never within the run).
    pub inside: usize,
    pub sides: usize,
    pub wall_ms: f64,
}

/// Whether a measured outcome agrees with a prediction, for a run that watched `watched_ms`
/// after the fault.
pub fn as_predicted(
    p: &crate::model::Prediction,
    measured: Option<(f64, &str)>,
    watched_ms: f64,
) -> bool {
    match (measured, p.window_ms) {
        (None, None) => true,
        (None, Some((lo, _))) => lo > watched_ms,
        (Some(_), None) => false,
        (Some((ms, error)), Some((lo, hi))) => {
            (lo..=hi).contains(&crate::verdict::at_fault(ms)) && p.admits(error)
        }
    }
}

/// Runs `n` random cells (seeds `seed`..`seed + n`), `jobs` at a time, each in its own lab, and
/// checks each side against the model. Records go to `out/fidelity/`.
pub async fn fidelity(
    seed: u64,
    n: usize,
    jobs: usize,
    opts: &RunOptions,
    out: &Path,
) -> Result<Fidelity, RunError> {
    use futures::stream::StreamExt;
    let start = Instant::now();
    let dir = out.join("fidelity");
    std::fs::create_dir_all(&dir).map_err(|source| RunError::Output {
        path: dir.display().to_string(),
        source,
    })?;
    let runs = (0..n as u64).map(|i| {
        let dir = &dir;
        async move {
            let cell = crate::fidelity::RandomCell::new(seed.wrapping_add(i));
            let label = format!("flatline bench --fidelity, seed {}", cell.seed());
            let scenario = crate::scenario::parse(Path::new(&label), &cell.to_toml())
                .map_err(|e| RunError::Setup(e.to_string()))?;
            let plan = crate::plan::plan(&scenario);
            let record = crate::runner::run(&plan, opts).await?;
            let path = dir.join(format!("{}.json", scenario.name));
            crate::output::write_json(&path, &record).map_err(|e| RunError::Output {
                path: path.display().to_string(),
                source: e.source,
            })?;
            if let crate::record::RunStatus::Interrupted { .. } = record.status {
                let sig = opts.stop.received().unwrap_or(nix::sys::signal::SIGINT);
                return Err(RunError::Interrupted(sig));
            }
            let last = record.events.iter().map(|e| e.t_ms).fold(0.0, f64::max);
            // Each fault's sides: a side's first loss from the fault's injection until the
            // next fault's (crate::analysis::first_loss), watched until then or the run's end.
            let judge = |index: usize| {
                let fault = &scenario.faults[index];
                let times = crate::analysis::fault_times(&record.events, &fault.id);
                let injected = times.map_or(0.0, |t| t.injected_ms);
                let until = times.map_or(last, |t| {
                    crate::analysis::next_fault_start(&record.events, &fault.id, t.started_ms)
                        .min(last)
                });
                let summary = record.summary.faults.get(index);
                let side = |side: Side| {
                    let p = crate::model::predict(&scenario, index, side);
                    let s = summary.map(|f| match side {
                        Side::Client => &f.client,
                        Side::Server => &f.server,
                    });
                    let detection_ms = s.and_then(|s| s.detection_ms);
                    let error = s.and_then(|s| s.error.clone());
                    let measured =
                        detection_ms.map(|ms| (ms, error.as_deref().unwrap_or("unknown")));
                    FidelitySide {
                        measured_ms: detection_ms,
                        inside: as_predicted(&p, measured, until - injected),
                        error,
                        predicted: p.window_text(),
                        predicted_error: p.error,
                        predicted_alt_errors: p.alt_errors,
                    }
                };
                let fault_late_ms = crate::analysis::lateness(
                    &record.events,
                    fault,
                    scenario.client.connections.unwrap_or(1),
                )
                .map(|(inject, _)| (inject * 1000.0).round() / 1000.0);
                FidelityFault {
                    client: side(Side::Client),
                    server: side(Side::Server),
                    fault_late_ms,
                }
            };
            let first = judge(0);
            Ok::<_, RunError>(FidelityCell {
                seed: cell.seed(),
                cell: cell.describe(),
                fault_late_ms: first.fault_late_ms,
                client: first.client,
                server: first.server,
                record: path.display().to_string(),
                second: (scenario.faults.len() > 1).then(|| judge(1)),
            })
        }
    });
    let cells: Vec<FidelityCell> = futures::stream::iter(runs)
        .buffered(jobs.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()?;
    let sides: Vec<&FidelitySide> = cells
        .iter()
        .flat_map(|c| {
            let second = c.second.iter().flat_map(|g| [&g.client, &g.server]);
            [&c.client, &c.server].into_iter().chain(second)
        })
        .collect();
    let inside = sides.iter().filter(|s| s.inside).count();
    Ok(Fidelity {
        seed,
        sides: sides.len(),
        inside,
        cells,
        wall_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The fidelity report for people: every cell, outliers marked, and the count.
pub fn render_fidelity(f: &Fidelity) -> String {
    let mut s = String::new();
    let show = |side: &FidelitySide| {
        let measured = match (side.measured_ms, &side.error) {
            (Some(ms), Some(e)) => format!("{:.2} s {e}", ms / 1000.0),
            _ => "never".into(),
        };
        let mut predicted = format!(
            "{} {}",
            side.predicted,
            side.predicted_error.as_deref().unwrap_or("")
        );
        for alt in &side.predicted_alt_errors {
            predicted += &format!(" or {alt}");
        }
        let mark = if side.inside { "" } else { "  << OUTSIDE" };
        format!("{measured} (predicted {}){mark}", predicted.trim_end())
    };
    let limit = crate::model::INJECT_LATE_MS;
    let late_line = |s: &mut String, late: Option<f64>, which: &str| {
        if let Some(late) = late.filter(|&l| l > limit) {
            let _ = writeln!(
                s,
                "  {which} took effect {late:.0} ms after its `at`, more than the model allows \
                 for ({limit:.0} ms)"
            );
        }
    };
    for c in &f.cells {
        let _ = writeln!(s, "seed {}: {}", c.seed, c.cell);
        let _ = writeln!(s, "  client {}", show(&c.client));
        let _ = writeln!(s, "  server {}", show(&c.server));
        late_line(&mut s, c.fault_late_ms, "the fault");
        if let Some(g) = &c.second {
            let _ = writeln!(s, "  second fault: client {}", show(&g.client));
            let _ = writeln!(s, "  second fault: server {}", show(&g.server));
            late_line(&mut s, g.fault_late_ms, "the second fault");
        }
    }
    let latest = f
        .cells
        .iter()
        .flat_map(|c| {
            [
                c.fault_late_ms,
                c.second.as_ref().and_then(|g| g.fault_late_ms),
            ]
        })
        .flatten()
        .fold(None, |m: Option<f64>, l| Some(m.map_or(l, |m| m.max(l))));
    let late = latest.map_or(String::new(), |l| {
        format!("; faults at most {l:.1} ms after their `at`")
    });
    let _ = writeln!(
        s,
        "{} of {} sides inside the predicted window ({} cells from seed {}, {:.0} s{late})",
        f.inside,
        f.sides,
        f.cells.len(),
        f.seed,
        f.wall_ms / 1000.0
    );
    s
}

// ---------------------------------------------------------------------------------------------
// Fleet: cost of a pool of connections through one fault

/// The scenario `flatline bench --fleet` runs for `n` connections: idle, keepalive 2s/1s/3 on
/// both sides, the wire drops everything from 1 s to 7 s, the client backs off with jitter.
pub fn fleet_scenario(n: u32) -> String {
    format!(
        r#"name = "bench-fleet-{n}"
description = "flatline bench --fleet: {n} idle connections through one drop"
end = "15s"
expect = "none"

[server]
keepalive = {{ idle = "2s", interval = "1s", count = 3 }}
backlog = 4096

[client]
connections = {n}
keepalive = {{ idle = "2s", interval = "1s", count = 3 }}
reconnect = {{ initial = "100ms", max = "2s", jitter = "full" }}
connect_timeout = "1s"

[[fault]]
kind = "firewall-drop"
at = "1s"
heal = "7s"
"#
    )
}

/// What one fleet run cost.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FleetRun {
    pub connections: u32,
    /// Peak resident set of the client peer, the server peer and the runner, KiB.
    pub client_rss_kib: u64,
    pub server_rss_kib: u64,
    pub runner_rss_kib: u64,
    /// CPU time (user + system) of the peers and of the runner over the run, s.
    pub peers_cpu_s: f64,
    pub runner_cpu_s: f64,
    pub events: usize,
    pub record_bytes: usize,
    /// Serializing and writing the record, ms.
    pub record_write_ms: f64,
    /// Client connections that detected the drop, and that came back.
    pub detected: u64,
    pub reconnected: u64,
    /// How long after its keepalive deadline each client connection's loss was read: the
    /// kernel's age of the last ACK at that moment (tcp_info) minus idle + count x interval
    /// (5 s). It holds the kernel's timer slack (tens of ms at this range, docs/physics.md)
    /// plus whatever the harness added: p50, p99, max, ms.
    pub loss_lag_p50_ms: f64,
    pub loss_lag_p99_ms: f64,
    pub loss_lag_max_ms: f64,
    /// As root, the kernel's own stamp of each client connection's abort (the
    /// `sock:inet_sk_error_report` tracepoint, monotonic clock) splits that lag in two:
    /// losses matched to their kernel record, and of those
    /// - the kernel's timer slack: the abort's stamp minus the keepalive deadline (the last
    ///   ACK + 5 s), p50 / p99 / max and the spread (max - min), ms;
    /// - the harness's delay: the peer's stamp minus the kernel's, p50 / p99 / max, ms.
    pub traced: usize,
    pub kernel_slack_p50_ms: f64,
    pub kernel_slack_p99_ms: f64,
    pub kernel_slack_max_ms: f64,
    pub kernel_slack_spread_ms: f64,
    pub harness_delay_p50_ms: f64,
    pub harness_delay_p99_ms: f64,
    pub harness_delay_max_ms: f64,
    /// The client's first and last detection after the drop, ms, against the model's window
    /// for the scenario (docs/physics.md K1, widened by K19 when the probes crowd the
    /// backlog).
    pub first_detection_ms: f64,
    pub last_detection_ms: f64,
    pub window_ms: (f64, f64),
}

/// The tracepoints that stamp a keepalive abort (the error report of ETIMEDOUT), the client
/// peer's close of a socket to the server's port (in its own context, right after it read the
/// loss and its tcp_info) and a socket's listen(2) (its move to TCP_LISTEN, 10).
const ABORTS: crate::tracefs::Tracepoints = crate::tracefs::Tracepoints {
    plain: &[],
    filtered: &[
        ("sock/inet_sk_error_report", "error == 110"),
        ("tcp/tcp_destroy_sock", "dport == 7000"),
        ("sock/inet_sock_set_state", "newstate == 10"),
    ],
};

/// What the trace saw: for client sockets, by 4-tuple, the kernel's ETIMEDOUT reports and the
/// sockets' destruction (every stamp, ascending); the stamps of listen(2) on the server's
/// address; monotonic ns.
#[derive(Debug, Default)]
pub struct Aborts {
    pub by_tuple: std::collections::BTreeMap<crate::observer::Tuple, Vec<u64>>,
    pub destroyed: std::collections::BTreeMap<crate::observer::Tuple, Vec<u64>>,
    pub listens: Vec<u64>,
}

/// Starts tracing the kernel's aborts (root only: None otherwise, or if tracefs refuses), with
/// a thread that keeps only the client's and returns them when the session ends.
async fn trace_aborts() -> Option<(
    crate::tracefs::TraceSession,
    std::thread::JoinHandle<Aborts>,
)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let session = crate::tracefs::TraceSession::start_with(ABORTS, vec![tx])
        .await
        .map_err(|e| eprintln!("flatline bench --fleet: no kernel stamps: {e}"))
        .ok()?;
    let collect = std::thread::spawn(move || {
        let mut aborts = Aborts::default();
        for r in rx {
            let local = r.tuple.local;
            match r.kind {
                crate::observer::TraceKind::ErrorReport { .. }
                    if *local.ip() == crate::lab::CLIENT_ADDR =>
                {
                    aborts.by_tuple.entry(r.tuple).or_default().push(r.t_ns)
                }
                crate::observer::TraceKind::Destroy if *local.ip() == crate::lab::CLIENT_ADDR => {
                    aborts.destroyed.entry(r.tuple).or_default().push(r.t_ns)
                }
                crate::observer::TraceKind::SetState { .. }
                    if *local.ip() == crate::lab::SERVER_ADDR
                        && local.port() == crate::lab::SERVER_PORT =>
                {
                    aborts.listens.push(r.t_ns)
                }
                _ => {}
            }
        }
        aborts
    });
    Some((session, collect))
}

/// The record's zero on the monotonic clock: the server's `listening` event is stamped just
/// before its listen(2), whose move to TCP_LISTEN the kernel stamped; the first listen on the
/// server's address after `before_ns` (when the run started) is taken as the server's
/// (concurrent labs listen on the same address, rarely within the same milliseconds).
pub fn origin_ns(events: &[crate::record::Event], aborts: &Aborts, before_ns: u64) -> Option<u64> {
    use crate::record::{Kind, Source};
    let listening_ms = events.iter().find_map(|e| match e.kind {
        Kind::Listening { .. } if e.source == Source::Server => Some(e.t_ms),
        _ => None,
    })?;
    let listen_ns = aborts.listens.iter().copied().find(|&t| t > before_ns)?;
    Some(listen_ns.saturating_sub((listening_ms * 1e6) as u64))
}

/// The kernel's timer slack and the harness's delay per client loss (see [`FleetRun`]):
/// each loss by keepalive is matched to the latest kernel abort of its 4-tuple stamped before
/// the peer's own stamp (concurrent labs may reuse a tuple; an older abort is not this one).
/// `origin_ns` is the record's zero; `deadline_ms` is idle + count x interval.
pub fn split_lag(
    events: &[crate::record::Event],
    aborts: &Aborts,
    origin_ns: u64,
    deadline_ms: f64,
) -> (Vec<f64>, Vec<f64>) {
    use crate::record::{Kind, Source};
    let (mut slack, mut delay) = (Vec::new(), Vec::new());
    for e in events.iter().filter(|e| e.source == Source::Client) {
        let Kind::PeerLost(l) = &e.kind else { continue };
        let (Some(info), Ok(local), Ok(remote)) =
            (l.tcp_info, l.ends.local.parse(), l.ends.peer.parse())
        else {
            continue;
        };
        let tuple = crate::observer::Tuple { local, remote };
        let stamped_ns = origin_ns as f64 + e.t_ms * 1e6;
        let Some(&kernel_ns) = aborts
            .by_tuple
            .get(&tuple)
            .and_then(|v| v.iter().rev().find(|&&t| (t as f64) <= stamped_ns + 1e3))
        else {
            continue;
        };
        let harness_ms = (stamped_ns - kernel_ns as f64) / 1e6;
        // Its tcp_info was read `last_ack_recv_ms` after the last ACK, just before the peer
        // closed the socket: the deadline is that ACK plus `deadline_ms`, so the kernel's slack
        // is the lag at the read less the time from the abort to the read.
        let Some(&read_ns) = aborts
            .destroyed
            .get(&tuple)
            .and_then(|v| v.iter().find(|&&t| t >= kernel_ns))
        else {
            continue;
        };
        let lag_ms = f64::from(info.last_ack_recv_ms) - deadline_ms;
        delay.push(harness_ms);
        slack.push(lag_ms - (read_ns - kernel_ns) as f64 / 1e6);
    }
    slack.sort_by(f64::total_cmp);
    delay.sort_by(f64::total_cmp);
    (slack, delay)
}

/// Peak RSS (VmHWM, KiB) and CPU seconds of a process, from /proc.
fn proc_usage(pid: &str) -> Option<(u64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command (which may hold spaces) start after the last ')'.
    let rest: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = rest.get(11)?.parse::<f64>().ok()? + rest.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((hwm, ticks / hz))
}

/// This process's children that are reference peers: (side, pid as /proc names it).
fn peer_children() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return out;
    };
    for task in tasks.flatten() {
        let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
        for pid in children.split_whitespace() {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let args: Vec<String> = cmdline
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            if args.iter().any(|a| a == "peer") {
                let side = args
                    .iter()
                    .find(|a| a.contains("\"side\":\"client\""))
                    .map_or("server", |_| "client");
                out.push((side.to_owned(), pid.to_owned()));
            }
        }
    }
    out
}

/// CPU seconds (user + system) of this process, every thread.
fn self_cpu_s() -> f64 {
    proc_usage("self").map_or(0.0, |u| u.1)
}

/// Runs the fleet scenario once with `n` connections, sampling the peers' usage meanwhile.
pub async fn fleet_run(n: u32, opts: &RunOptions, out: &Path) -> Result<FleetRun, RunError> {
    let label = format!("flatline bench --fleet {n}");
    let scenario = crate::scenario::parse(Path::new(&label), &fleet_scenario(n))
        .map_err(|e| RunError::Setup(e.to_string()))?;
    let plan = crate::plan::plan(&scenario);
    // The runner's peak starts from here (5: reset VmHWM, proc(5)).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    let cpu0 = self_cpu_s();
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut last: std::collections::BTreeMap<String, (String, u64, f64)> =
                Default::default();
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                for (side, pid) in peer_children() {
                    if let Some((rss, cpu)) = proc_usage(&pid) {
                        last.insert(pid, (side, rss, cpu));
                    }
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            last
        })
    };
    let tracing = trace_aborts().await;
    let before_ns = crate::clock::now_ns();
    let record = crate::runner::run(&plan, opts).await;
    let aborts = tracing.map(|(mut session, collect)| {
        session.stop();
        drop(session);
        collect.join().expect("the collector does not panic")
    });
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let peers = sampler.join().expect("the sampler does not panic");
    let record = record?;
    let runner_cpu_s = self_cpu_s() - cpu0;
    let runner_rss_kib = proc_usage("self").map_or(0, |u| u.0);
    let mut run = FleetRun {
        connections: n,
        runner_rss_kib,
        runner_cpu_s,
        events: record.events.len(),
        ..FleetRun::default()
    };
    for (side, rss, cpu) in peers.values() {
        let slot = if side == "client" {
            &mut run.client_rss_kib
        } else {
            &mut run.server_rss_kib
        };
        *slot = (*slot).max(*rss);
        run.peers_cpu_s += cpu;
    }
    let t = Instant::now();
    let path = out.join(format!("{}.json", scenario.name));
    crate::output::write_json(&path, &record).map_err(|e| RunError::Output {
        path: path.display().to_string(),
        source: e.source,
    })?;
    run.record_write_ms = ms_since(t);
    run.record_bytes = std::fs::metadata(&path).map_or(0, |m| m.len() as usize);
    if let Some(pool) = record
        .summary
        .faults
        .first()
        .and_then(|f| f.client.pool.as_ref())
    {
        run.detected = pool.detected;
        run.reconnected = pool.reconnected;
        if let Some(d) = &pool.detection {
            (run.first_detection_ms, run.last_detection_ms) = (d.min_ms, d.max_ms);
        }
    }
    run.window_ms = crate::model::predict(&scenario, 0, crate::side::Side::Client)
        .window_ms
        .unwrap_or((f64::NAN, f64::NAN));
    if let Some(d) = loss_lag(&record.events, 5000.0) {
        (
            run.loss_lag_p50_ms,
            run.loss_lag_p99_ms,
            run.loss_lag_max_ms,
        ) = (d.p50_ms, d.p99_ms, d.max_ms);
    }
    let (slack, delay) = aborts
        .and_then(|a| {
            let origin = origin_ns(&record.events, &a, before_ns)?;
            Some(split_lag(&record.events, &a, origin, 5000.0))
        })
        .unwrap_or_default();
    run.traced = delay.len();
    let nan = || f64::NAN;
    let (s, d) = (
        crate::pool::distribution(&slack),
        crate::pool::distribution(&delay),
    );
    (
        run.kernel_slack_p50_ms,
        run.kernel_slack_p99_ms,
        run.kernel_slack_max_ms,
        run.kernel_slack_spread_ms,
    ) = s.map_or((nan(), nan(), nan(), nan()), |s| {
        (s.p50_ms, s.p99_ms, s.max_ms, s.max_ms - s.min_ms)
    });
    (
        run.harness_delay_p50_ms,
        run.harness_delay_p99_ms,
        run.harness_delay_max_ms,
    ) = d.map_or((nan(), nan(), nan()), |d| (d.p50_ms, d.p99_ms, d.max_ms));
    Ok(run)
}

/// Over client connections lost by keepalive: the age of their last ACK when the loss was
/// read, minus the keepalive deadline `deadline_ms`.
pub fn loss_lag(
    events: &[crate::record::Event],
    deadline_ms: f64,
) -> Option<crate::record::Distribution> {
    use crate::record::{Kind, Source};
    let mut lag: Vec<f64> = events
        .iter()
        .filter(|e| e.source == Source::Client)
        .filter_map(|e| match &e.kind {
            Kind::PeerLost(l) => l
                .tcp_info
                .map(|i| f64::from(i.last_ack_recv_ms) - deadline_ms),
            _ => None,
        })
        .collect();
    lag.sort_by(f64::total_cmp);
    crate::pool::distribution(&lag)
}

/// Medians over runs of each fleet size.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    pub runs: Vec<FleetRun>,
}

/// The table for people: one row per size, medians over its runs.
pub fn render_fleet(r: &FleetReport) -> String {
    let mut sizes: Vec<u32> = r.runs.iter().map(|x| x.connections).collect();
    sizes.dedup();
    let mut out = String::from(
        "| connections | runs | client RSS | server RSS | runner RSS | peers+runner RSS | peers CPU | runner CPU | events | record | record write | detected | back | loss read after deadline p50 / p99 / max | kernel timer slack p50 / p99 / max (spread) | harness delay p50 / p99 / max (traced) | client detections first / last (model's window) |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
    );
    for n in sizes {
        let of: Vec<&FleetRun> = r.runs.iter().filter(|x| x.connections == n).collect();
        let m = |f: &dyn Fn(&FleetRun) -> f64| median(&of.iter().map(|x| f(x)).collect::<Vec<_>>());
        let mib = |kib: f64| kib / 1024.0;
        let traced = m(&|x| x.traced as f64);
        let split = if traced > 0.0 {
            format!(
                "{:.0} / {:.0} / {:.0} ms ({:.0} ms) | {:.1} / {:.1} / {:.1} ms ({traced:.0}) |",
                m(&|x| x.kernel_slack_p50_ms),
                m(&|x| x.kernel_slack_p99_ms),
                m(&|x| x.kernel_slack_max_ms),
                m(&|x| x.kernel_slack_spread_ms),
                m(&|x| x.harness_delay_p50_ms),
                m(&|x| x.harness_delay_p99_ms),
                m(&|x| x.harness_delay_max_ms),
            )
        } else {
            "not traced (needs root) | not traced |".into()
        };
        let window = of.first().map_or((f64::NAN, f64::NAN), |x| x.window_ms);
        let detections = format!(
            " {:.2} / {:.2} s ({:.2}..{:.2} s) |",
            m(&|x| x.first_detection_ms) / 1e3,
            m(&|x| x.last_detection_ms) / 1e3,
            window.0 / 1e3,
            window.1 / 1e3
        );
        let _ = writeln!(
            out,
            "| {n} | {} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.2} s | {:.2} s | {:.0} | {:.1} MiB | {:.0} ms | {:.0} | {:.0} | {:.0} / {:.0} / {:.0} ms | {split}{detections}",
            of.len(),
            mib(m(&|x| x.client_rss_kib as f64)),
            mib(m(&|x| x.server_rss_kib as f64)),
            mib(m(&|x| x.runner_rss_kib as f64)),
            mib(m(&|x| (x.client_rss_kib + x.server_rss_kib + x.runner_rss_kib) as f64)),
            m(&|x| x.peers_cpu_s),
            m(&|x| x.runner_cpu_s),
            m(&|x| x.events as f64),
            m(&|x| x.record_bytes as f64) / 1048576.0,
            m(&|x| x.record_write_ms),
            m(&|x| x.detected as f64),
            m(&|x| x.reconnected as f64),
            m(&|x| x.loss_lag_p50_ms),
            m(&|x| x.loss_lag_p99_ms),
            m(&|x| x.loss_lag_max_ms),
        );
    }
    out
}
