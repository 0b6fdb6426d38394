//! Compare keepalive settings: one matrix of settings x faults, each cell a scenario of its own
//! (run in its own lab, all at once) judged against the model's prediction; rendered as tables.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::duration::{Dur, Window};
use crate::input::{FieldPath, Source};
use crate::keepalive::{Keepalive, UserTimeout};
use crate::model;
use crate::plan::{self, Plan};
use crate::record::{Kind, Record};
use crate::scenario::{
    self, Check, Expectation, Fault, PeerSettings, RawHeartbeat, RawLab, Scenario, ScenarioError,
    Side, Traffic,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCompare {
    name: String,
    #[serde(default)]
    description: String,
    /// Longest run of one cell, counted from the client's first connection.
    end: Dur,
    /// Widening of the predicted windows the cells are judged against.
    tolerance: Option<Dur>,
    #[serde(default)]
    settings: Vec<RawSettings>,
    #[serde(default)]
    fault: Vec<Table>,
}

/// Settings of both sides, as one [[settings]] table writes them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: String,
    #[serde(default)]
    keepalive: Keepalive,
    user_timeout: Option<UserTimeout>,
    heartbeat: Option<RawHeartbeat>,
    lab: Option<RawLab>,
    /// A pool: the reference client holds this many connections.
    connections: Option<u32>,
    /// The client's reconnect: a fixed interval or a backoff, as in a scenario's [client].
    reconnect: Option<scenario::RawReconnect>,
    /// The reference server's listen backlog.
    backlog: Option<u32>,
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub settings: String,
    pub fault: String,
    /// The cell's scenario, planned.
    pub plan: Plan,
    /// Predicted only: the model's latest detection is beyond the cell's run time.
    pub too_slow: bool,
}

/// A validated comparison.
#[derive(Clone, Debug)]
pub struct Comparison {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    pub settings: Vec<String>,
    pub faults: Vec<String>,
    /// Faults outer, settings inner.
    pub cells: Vec<Cell>,
}

fn slug(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_matches('-').to_owned()
}

/// A [[fault]] of a comparison: its name, the traffic it runs under, and the fault.
struct MatrixFault {
    name: String,
    traffic: Traffic,
    fault: Fault,
}

/// Reads a comparison file and builds (and validates) every cell; every error points into
/// the comparison file.
pub fn load(path: &Path) -> Result<Comparison, ScenarioError> {
    let src = Source::read(path)?;
    let raw: RawCompare = src.deserialize()?;
    let root = FieldPath::root();
    scenario::check_file_name(&raw.name).map_err(|m| src.error(&root.key("name"), m))?;
    if raw.settings.is_empty() || raw.fault.is_empty() {
        let missing = if raw.settings.is_empty() {
            "settings"
        } else {
            "fault"
        };
        return Err(src.error(
            &root.key(missing),
            "give at least one [[settings]] and one [[fault]]",
        ));
    }
    let tolerance = raw.tolerance.unwrap_or(Dur::from_millis(250));
    let faults = raw
        .fault
        .iter()
        .enumerate()
        .map(|(i, t)| matrix_fault(&src, &root.key("fault").index(i), t, raw.end))
        .collect::<Result<Vec<_>, _>>()?;
    distinct_names(&src, "fault", faults.iter().map(|f| f.name.as_str()))?;
    distinct_names(
        &src,
        "settings",
        raw.settings.iter().map(|s| s.name.as_str()),
    )?;
    let mut cells = Vec::new();
    for f in &faults {
        for (i, s) in raw.settings.iter().enumerate() {
            let here = root.key("settings").index(i);
            let mut client = PeerSettings::new(Side::Client, s.keepalive, s.user_timeout);
            client.connections =
                scenario::connections(&src, &here.key("connections"), s.connections, false)?;
            scenario::apply_reconnect(
                &src,
                &here.key("reconnect"),
                s.reconnect,
                false,
                &mut client,
            )?;
            let mut server = PeerSettings::new(Side::Server, s.keepalive, s.user_timeout);
            server.backlog = scenario::backlog(&src, &here.key("backlog"), s.backlog, false)?;
            let cell = Scenario {
                name: format!("{}-{}-{}", raw.name, slug(&f.name), slug(&s.name)),
                file: path.to_owned(),
                description: format!("{} under {}", f.name, s.name),
                end: raw.end,
                server,
                client,
                traffic: f.traffic,
                heartbeat: scenario::heartbeat(&src, &here.key("heartbeat"), s.heartbeat.as_ref())?,
                lab: s.lab.clone().unwrap_or_default().resolve(),
                wire: Default::default(),
                faults: vec![f.fault.clone()],
                expectations: Side::BOTH
                    .iter()
                    .map(|&side| Expectation {
                        side,
                        fault: f.fault.id.clone(),
                        check: Check::Detects {
                            window: Window::Never,
                            error: None,
                        },
                        pick: None,
                        predicted: Some(tolerance),
                    })
                    .collect(),
            };
            let (scenario, too_slow) = fit_to_run(cell);
            cells.push(Cell {
                settings: s.name.clone(),
                fault: f.name.clone(),
                plan: plan::plan(&scenario),
                too_slow,
            });
        }
    }
    Ok(Comparison {
        name: raw.name,
        file: path.to_owned(),
        description: raw.description,
        settings: raw.settings.iter().map(|s| s.name.clone()).collect(),
        faults: faults.into_iter().map(|f| f.name).collect(),
        cells,
    })
}

/// Names of one table's entries must differ as file names: each cell's record is
/// `<comparison>-<fault>-<settings>.json`, with names reduced to letters, digits and `-`.
fn distinct_names<'a>(
    src: &Source,
    table: &str,
    names: impl Iterator<Item = &'a str>,
) -> Result<(), ScenarioError> {
    let mut seen: Vec<(String, &str)> = Vec::new();
    for (i, name) in names.enumerate() {
        let s = slug(name);
        if let Some((_, other)) = seen.iter().find(|(o, _)| *o == s) {
            return Err(src.error(
                &FieldPath::root().key(table).index(i).key("name"),
                format!(
                    "`{name}` and `{other}` name the same record file (`{s}`): their cells \
                     would overwrite each other; rename one"
                ),
            ));
        }
        seen.push((s, name));
    }
    Ok(())
}

/// One [[fault]] of a comparison: `name` and `traffic` are the matrix's, the rest a fault's.
fn matrix_fault(
    src: &Source,
    here: &FieldPath,
    table: &Table,
    end: Dur,
) -> Result<MatrixFault, ScenarioError> {
    let mut table = table.clone();
    let name = match table.remove("name") {
        Some(Value::String(n)) if !n.is_empty() => n,
        _ => return Err(src.error(&here.key("name"), "every [[fault]] needs a name")),
    };
    let traffic = match table.remove("traffic") {
        None => Traffic::default(),
        Some(v) => {
            let at = here.key("traffic");
            let raw: scenario::RawTraffic = src.deserialize_value(&at, v)?;
            scenario::traffic(src, &at, Some(&raw))?
        }
    };
    let fault = scenario::fault_at(src, here, &table, |k| k.as_str().to_owned(), end)?;
    Ok(MatrixFault {
        name,
        traffic,
        fault,
    })
}

/// A side the model says cannot detect within the run is expected not to (there is nothing
/// to measure); the run is stretched to cover a window it only starts. True when neither side
/// can detect in time: the cell is predicted only.
fn fit_to_run(mut scenario: Scenario) -> (Scenario, bool) {
    let at = scenario.faults[0].at.as_millis() as f64;
    let budget = scenario.end.as_millis() as f64 - at;
    let mut beyond = 0;
    for side in Side::BOTH {
        let Some((lo, hi)) = model::predict(&scenario, 0, side).window_ms else {
            continue;
        };
        if lo > budget {
            beyond += 1;
            for e in scenario.expectations.iter_mut().filter(|e| e.side == side) {
                e.check = Check::Detects {
                    window: Window::Never,
                    error: None,
                };
                e.predicted = None;
            }
        } else if hi > budget {
            let end = (at + hi + 1000.0).ceil() as u64;
            scenario.end = scenario.end.max(Dur::from_millis(end));
        }
    }
    (scenario, beyond == Side::BOTH.len())
}

/// What one side did in one cell, next to what the model says.
#[derive(Clone, Debug, Serialize)]
pub struct SideResult {
    pub measured_ms: Option<f64>,
    pub error: Option<String>,
    pub mechanism: Option<String>,
    pub predicted: String,
    /// The predicted window, ms after the fault; None for never.
    pub predicted_ms: Option<(f64, f64)>,
    pub predicted_error: Option<String>,
    /// Whether the measurement fell inside the predicted window (with tolerance); None when
    /// the cell was not run.
    pub as_predicted: Option<bool>,
}

/// One row of a table.
#[derive(Clone, Debug, Serialize)]
pub struct CellResult {
    pub fault: String,
    pub settings: String,
    /// false: predicted only (too slow to run).
    pub ran: bool,
    pub client: SideResult,
    pub server: SideResult,
    /// Lab up to lab down, ms.
    pub run_ms: Option<f64>,
    pub record: Option<String>,
    /// A pool: the client's connections and the reconnect storm.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolResult>,
}

/// A pool's outcome in one cell.
#[derive(Clone, Debug, Serialize)]
pub struct PoolResult {
    pub client: crate::record::PoolSummary,
    pub storm: crate::record::Storm,
}

/// The results of a comparison.
#[derive(Clone, Debug, Serialize)]
pub struct Results {
    pub name: String,
    pub description: String,
    pub cells: Vec<CellResult>,
    /// Wall time of the whole matrix, ms.
    pub wall_ms: f64,
}

impl Results {
    /// The slowest cell's run time, ms.
    pub fn slowest_cell_ms(&self) -> f64 {
        self.cells
            .iter()
            .filter_map(|c| c.run_ms)
            .fold(0.0, f64::max)
    }

    pub fn all_as_predicted(&self) -> bool {
        self.cells
            .iter()
            .flat_map(|c| [&c.client, &c.server])
            .all(|s| s.as_predicted != Some(false))
    }
}

/// One cell's result, from its record (None when it was not run).
pub fn cell_result(cell: &Cell, record: Option<(&Record, String)>) -> CellResult {
    let side = |side: Side| {
        let p = model::predict(&cell.plan.scenario, 0, side);
        let (measured_ms, error, mechanism, as_predicted) = match &record {
            None => (None, None, None, None),
            Some((t, _)) => {
                let s = match side {
                    Side::Client => &t.summary.client,
                    Side::Server => &t.summary.server,
                };
                let mechanism = s.detection_ms.and_then(|_| {
                    t.events.iter().find_map(|e| match &e.kind {
                        Kind::PeerLost(l) if e.source == side.into() => {
                            Some(l.mechanism.as_str().to_owned())
                        }
                        _ => None,
                    })
                });
                let verdict = t
                    .verdict
                    .expectations
                    .iter()
                    .zip(&t.scenario.expectations)
                    .find(|(_, e)| e.side == side)
                    .map(|(o, _)| o.passed);
                (s.detection_ms, s.error.clone(), mechanism, verdict)
            }
        };
        SideResult {
            measured_ms,
            error,
            mechanism,
            predicted: p.window_text(),
            predicted_ms: p.window_ms,
            predicted_error: p.error,
            as_predicted,
        }
    };
    CellResult {
        fault: cell.fault.clone(),
        settings: cell.settings.clone(),
        ran: record.is_some(),
        client: side(Side::Client),
        server: side(Side::Server),
        run_ms: record.as_ref().map(|(t, _)| {
            t.events
                .iter()
                .rfind(|e| matches!(e.kind, Kind::LabDown { .. }))
                .map_or(0.0, |e| e.t_ms)
        }),
        pool: record.as_ref().and_then(|(t, _)| {
            let f = t.summary.faults.first()?;
            Some(PoolResult {
                client: f.client.pool.clone()?,
                storm: f.storm.clone()?,
            })
        }),
        record: record.map(|(_, path)| path),
    }
}

/// Runs every cell that is not too slow (all of them with `run_slow`), all at once, each in
/// its own lab; writes each record to `out/<comparison>/<cell>.json`.
pub async fn run(
    c: &Comparison,
    opts: &crate::runner::RunOptions,
    out: &Path,
    run_slow: bool,
) -> Result<Results, crate::runner::RunError> {
    let start = std::time::Instant::now();
    let dir = out.join(&c.name);
    std::fs::create_dir_all(&dir).map_err(|source| crate::runner::RunError::Output {
        path: dir.display().to_string(),
        source,
    })?;
    let runs = c.cells.iter().map(|cell| {
        let dir = &dir;
        async move {
            if cell.too_slow && !run_slow {
                return Ok::<_, crate::runner::RunError>(cell_result(cell, None));
            }
            let t = crate::runner::run(&cell.plan, opts).await?;
            let path = dir.join(format!("{}.json", cell.plan.scenario.name));
            crate::output::write_json(&path, &t).map_err(|e| crate::runner::RunError::Output {
                path: path.display().to_string(),
                source: e.source,
            })?;
            match &t.status {
                crate::record::RunStatus::Completed => {}
                crate::record::RunStatus::Interrupted { .. } => {
                    let sig = opts.stop.received().unwrap_or(nix::sys::signal::SIGINT);
                    return Err(crate::runner::RunError::Interrupted(sig));
                }
                crate::record::RunStatus::Failed { reason } => {
                    return Err(crate::runner::RunError::Setup(format!(
                        "cell {}: {reason} (record: {})",
                        cell.plan.scenario.name,
                        path.display()
                    )));
                }
            }
            Ok(cell_result(cell, Some((&t, path.display().to_string()))))
        }
    });
    let cells = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Results {
        name: c.name.clone(),
        description: c.description.clone(),
        cells,
        wall_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

fn measured(s: &SideResult, ran: bool) -> String {
    match (ran, s.measured_ms, &s.error) {
        (false, _, _) => "(not run)".into(),
        (true, Some(ms), Some(e)) => {
            let mark = if s.as_predicted == Some(false) {
                " !"
            } else {
                ""
            };
            format!("{:.2} s {e}{mark}", ms / 1000.0)
        }
        (true, _, _) => {
            let mark = if s.as_predicted == Some(false) {
                " !"
            } else {
                ""
            };
            format!("never{mark}")
        }
    }
}

fn predicted(s: &SideResult) -> String {
    match &s.predicted_error {
        Some(e) => format!("{} {e}", s.predicted),
        None => s.predicted.clone(),
    }
}

const HEADER: [&str; 5] = [
    "settings",
    "client measured",
    "client predicted",
    "server measured",
    "server predicted",
];

fn rows(r: &Results, fault: &str) -> Vec<[String; 5]> {
    r.cells
        .iter()
        .filter(|c| c.fault == fault)
        .map(|c| {
            [
                c.settings.clone(),
                measured(&c.client, c.ran),
                predicted(&c.client),
                measured(&c.server, c.ran),
                predicted(&c.server),
            ]
        })
        .collect()
}

fn faults(r: &Results) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in &r.cells {
        if !out.contains(&c.fault) {
            out.push(c.fault.clone());
        }
    }
    out
}

const FOOTNOTE: &str = "Times from fault-injected to peer-lost; \"!\" marks a measurement \
outside the predicted window; \"never\" next to a finite prediction: not within the run, as \
the model says; (not run): neither side can detect within the run (use --run-slow).";

const POOL_HEADER: [&str; 7] = [
    "settings",
    "client detected (p50 / p99 / max)",
    "back (p50 / 95 % / all)",
    "attempts",
    "busiest 100 ms",
    "peak /s",
    "failed attempts, listen overflows",
];

/// The pool rows of a fault's cells, if any cell has a pool.
fn pool_rows(r: &Results, fault: &str) -> Vec<[String; 7]> {
    let t = |v: Option<f64>| v.map_or("never".into(), |ms| format!("{:.2} s", ms / 1000.0));
    r.cells
        .iter()
        .filter(|c| c.fault == fault)
        .filter_map(|c| {
            let p = c.pool.as_ref()?;
            let d = p.client.detection.as_ref();
            let b = p.client.reconnect.as_ref();
            let failed: Vec<String> = p
                .storm
                .failed
                .iter()
                .map(|(e, n)| format!("{e} x{n}"))
                .collect();
            Some([
                c.settings.clone(),
                format!(
                    "{} of {}: {} / {} / {}",
                    p.client.detected,
                    p.client.connections,
                    t(d.map(|d| d.p50_ms)),
                    t(d.map(|d| d.p99_ms)),
                    t(d.map(|d| d.max_ms))
                ),
                format!(
                    "{} / {} / {}",
                    t(b.map(|b| b.p50_ms)),
                    t(p.client.back_95_ms),
                    t(p.client.all_back_ms)
                ),
                p.storm.attempts.to_string(),
                p.storm.busiest_100ms.to_string(),
                p.storm.peak_attempts_per_s.to_string(),
                format!(
                    "{}; +{}",
                    if failed.is_empty() {
                        "none".into()
                    } else {
                        failed.join(", ")
                    },
                    p.storm.listen_overflows.unwrap_or(0)
                ),
            ])
        })
        .collect()
}

/// Rows as aligned plain text under `header`.
fn aligned<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> String {
    let mut width = header.map(str::len);
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| -> String {
        let mut l = String::from(" ");
        for (w, cell) in width.iter().zip(cells) {
            let _ = write!(l, " {cell:<w$} ");
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(header);
    for row in rows {
        out += &line(row.each_ref().map(String::as_str));
    }
    out
}

/// Aligned plain text, one table per fault.
pub fn render_text(r: &Results) -> String {
    let mut out = format!("{}: {}\n", r.name, r.description);
    for fault in faults(r) {
        let rows = rows(r, &fault);
        let mut width = HEADER.map(str::len);
        for row in &rows {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let _ = writeln!(out, "\n{fault}");
        let line = |cells: [&str; 5]| -> String {
            let mut l = String::from(" ");
            for (w, cell) in width.iter().zip(cells) {
                let _ = write!(l, " {cell:<w$} ");
            }
            l.trim_end().to_owned() + "\n"
        };
        out += &line(HEADER);
        for row in &rows {
            out += &line(row.each_ref().map(String::as_str));
        }
        let pools = pool_rows(r, &fault);
        if !pools.is_empty() {
            let _ = writeln!(out, "\n{fault}: the pool and its reconnect storm");
            out += &aligned(POOL_HEADER, &pools);
        }
    }
    let _ = writeln!(
        out,
        "\n{FOOTNOTE}\nMatrix wall time {:.1} s; slowest cell {:.1} s.",
        r.wall_ms / 1000.0,
        r.slowest_cell_ms() / 1000.0
    );
    out
}

/// Markdown, one table per fault.
pub fn render_markdown(r: &Results) -> String {
    let mut out = format!("## {}\n\n{}\n", r.name, r.description);
    for fault in faults(r) {
        let _ = write!(
            out,
            "\n### {fault}\n\n| {} |\n|{}\n",
            HEADER.join(" | "),
            "---|".repeat(5)
        );
        for row in rows(r, &fault) {
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        let pools = pool_rows(r, &fault);
        if !pools.is_empty() {
            let _ = write!(
                out,
                "\nThe pool and its reconnect storm:\n\n| {} |\n|{}\n",
                POOL_HEADER.join(" | "),
                "---|".repeat(POOL_HEADER.len())
            );
            for row in pools {
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
        }
    }
    let _ = writeln!(out, "\n{FOOTNOTE}");
    out
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// CSV, one row per cell.
pub fn render_csv(r: &Results) -> String {
    let mut out = String::from(
        "fault,settings,ran,client_ms,client_error,client_mechanism,client_predicted,client_predicted_error,client_as_predicted,\
         server_ms,server_error,server_mechanism,server_predicted,server_predicted_error,server_as_predicted\n",
    );
    let opt = |v: Option<String>| v.unwrap_or_default();
    for c in &r.cells {
        let mut fields = vec![
            csv_field(&c.fault),
            csv_field(&c.settings),
            c.ran.to_string(),
        ];
        for s in [&c.client, &c.server] {
            fields.extend([
                opt(s.measured_ms.map(|m| format!("{m:.3}"))),
                opt(s.error.clone()),
                opt(s.mechanism.clone()),
                csv_field(&s.predicted),
                opt(s.predicted_error.clone()),
                opt(s.as_predicted.map(|b| b.to_string())),
            ]);
        }
        out += &fields.join(",");
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compare_seed() -> Comparison {
        load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/compare/compare-seed.toml"))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn the_fleet_comparison_sets_each_pools_reconnect_and_backlog() {
        let c = load(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/compare/fleet-restart.toml"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.cells.len(), 2);
        let settings = |name: &str| {
            let cell = c.cells.iter().find(|c| c.settings == name).unwrap();
            cell.plan.scenario.clone()
        };
        let fixed = settings("fixed 500ms");
        assert_eq!(fixed.client.connections, Some(200));
        assert_eq!(fixed.client.reconnect_interval_ms, Some(500));
        assert_eq!(fixed.client.reconnect_backoff, None);
        let backoff = settings("backoff 100ms-2s full jitter")
            .client
            .reconnect_backoff;
        assert_eq!(backoff.map(|b| (b.initial_ms, b.max_ms)), Some((100, 2000)));

        let dir = tempfile::tempdir().unwrap();
        let bad = dir.path().join("bad.toml");
        let text = "name = \"b\"\nend = \"5s\"\n\n[[settings]]\nname = \"x\"\n\
                    connections = 0\n\n[[fault]]\nname = \"kill\"\nkind = \"process-kill\"\n\
                    at = \"1s\"\n";
        std::fs::write(&bad, text).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("bad.toml:6:1: settings[0].connections: must be at least 1"),
            "{e}"
        );
        std::fs::write(&bad, text.replace("connections = 0", "backlog = 0")).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(e.contains("settings[0].backlog: must be 1 to 65535"), "{e}");
        let text = text.replace(
            "connections = 0",
            "reconnect = { initial = \"1s\", max = \"1ms\" }",
        );
        std::fs::write(&bad, text).unwrap();
        let e = load(&bad).unwrap_err().to_string();
        assert!(
            e.contains("settings[0].reconnect.max: 1ms is below initial"),
            "{e}"
        );
    }

    #[test]
    fn the_shipped_comparison_builds_every_cell() {
        let c = compare_seed();
        assert_eq!(c.cells.len(), c.settings.len() * c.faults.len());
        assert!(c.settings.len() >= 4 && c.faults.len() >= 3);
        // Linux defaults (7200 s idle) under a cable pull: neither side can detect within a
        // run, so the cell is predicted only; a busy writer's server side can, so it runs.
        let defaults: Vec<&Cell> = c
            .cells
            .iter()
            .filter(|c| c.settings.contains("defaults"))
            .collect();
        assert!(defaults
            .iter()
            .any(|c| c.too_slow && c.fault.contains("cable")));
        let busy_seed = c
            .cells
            .iter()
            .find(|c| c.settings.contains("seed") && c.fault.contains("stream"))
            .unwrap();
        assert!(!busy_seed.too_slow);
        let client = busy_seed
            .plan
            .scenario
            .expectations
            .iter()
            .find(|e| e.side == Side::Client)
            .unwrap();
        assert!(client.to_string().contains("never"), "{client}");
        // The seed's settings on a cable pull run.
        assert!(c
            .cells
            .iter()
            .any(|c| c.settings.contains("seed") && c.fault.contains("cable") && !c.too_slow));
    }

    #[test]
    fn tables_render_every_cell_in_every_format() {
        let c = compare_seed();
        let results = Results {
            name: c.name.clone(),
            description: c.description.clone(),
            cells: c.cells.iter().map(|cell| cell_result(cell, None)).collect(),
            wall_ms: 0.0,
        };
        let text = render_text(&results);
        let md = render_markdown(&results);
        let csv = render_csv(&results);
        for s in &c.settings {
            assert!(
                text.contains(s.as_str()) && md.contains(s.as_str()) && csv.contains(s.as_str()),
                "{s}"
            );
        }
        assert_eq!(csv.lines().count(), c.cells.len() + 1);
        assert!(md.contains("| settings | client measured |"));
        assert!(text.contains("(not run)"));
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(json["cells"].as_array().unwrap().len(), c.cells.len());
    }

    #[test]
    fn two_settings_that_would_share_a_record_file_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "name = \"c\"\nend = \"10s\"\n[[settings]]\nname = \"fast 1s\"\n[[settings]]\nname = \"Fast (1s)\"\n[[fault]]\nname = \"f\"\nkind = \"freeze\"\nat = \"1s\"\n",
        )
        .unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:6:1: settings[1].name: `Fast (1s)` and `fast 1s`",
                file.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn a_bad_setting_is_located_in_the_comparison_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "name = \"c\"\nend = \"10s\"\n[[settings]]\nname = \"s\"\nkeepalive = { idle = \"0s\" }\n[[fault]]\nname = \"f\"\nkind = \"freeze\"\nat = \"1s\"\n",
        )
        .unwrap();
        // The error points into the comparison file, not at text built from it.
        let e = load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:5:", file.display()))
                && e.contains("settings[0].keepalive.idle: must be between 1s"),
            "{e}"
        );
    }
}
