//! Compare keepalive settings: one matrix of settings x faults, each cell a scenario of its own
//! (run in its own lab, all at once) judged against the model's prediction; rendered as tables.

use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::{Table, Value};

use crate::duration::Dur;
use crate::model;
use crate::record::{Kind, Record};
use crate::scenario::{self, Scenario, ScenarioError, Side};

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
    settings: Vec<RawSettings>,
    fault: Vec<Table>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSettings {
    name: String,
    keepalive: Option<Value>,
    user_timeout: Option<Value>,
    heartbeat: Option<Value>,
    lab: Option<Value>,
}

/// One cell of the matrix.
#[derive(Clone, Debug)]
pub struct Cell {
    pub settings: String,
    pub fault: String,
    pub scenario: Scenario,
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

/// Reads a comparison file and builds (and validates) every cell.
pub fn load(path: &Path) -> Result<Comparison, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the comparison file: {e}"),
    })?;
    let raw: RawCompare = scenario::deserialize(path, &text)?;
    let at_top = |field: &str, message: String| ScenarioError {
        file: path.to_owned(),
        line: 1,
        column: 1,
        field: format!("{field}: "),
        message,
    };
    if raw.settings.is_empty() || raw.fault.is_empty() {
        return Err(at_top(
            "settings",
            "give at least one [[settings]] and one [[fault]]".into(),
        ));
    }
    let tolerance = raw.tolerance.unwrap_or(Dur::from_millis(250));
    let mut cells = Vec::new();
    let mut fault_names = Vec::new();
    for (fi, fault) in raw.fault.iter().enumerate() {
        let mut fault = fault.clone();
        let name = match fault.remove("name") {
            Some(Value::String(n)) => n,
            _ => {
                return Err(at_top(
                    &format!("fault[{fi}].name"),
                    "every [[fault]] needs a name".into(),
                ))
            }
        };
        let traffic = fault.remove("traffic");
        fault_names.push(name.clone());
        for s in &raw.settings {
            let mut doc = Table::new();
            doc.insert(
                "name".into(),
                format!("{}-{}-{}", raw.name, slug(&name), slug(&s.name)).into(),
            );
            doc.insert(
                "description".into(),
                format!("{} under {}", name, s.name).into(),
            );
            doc.insert("end".into(), raw.end.to_string().into());
            let mut peer = Table::new();
            if let Some(k) = &s.keepalive {
                peer.insert("keepalive".into(), k.clone());
            }
            if let Some(u) = &s.user_timeout {
                peer.insert("user_timeout".into(), u.clone());
            }
            doc.insert("server".into(), peer.clone().into());
            doc.insert("client".into(), peer.into());
            if let Some(t) = &traffic {
                doc.insert("traffic".into(), t.clone());
            }
            if let Some(h) = &s.heartbeat {
                doc.insert("heartbeat".into(), h.clone());
            }
            if let Some(l) = &s.lab {
                doc.insert("lab".into(), l.clone());
            }
            doc.insert("fault".into(), Value::Array(vec![fault.clone().into()]));
            let expect: Vec<Value> = Side::BOTH
                .iter()
                .map(|side| {
                    let mut e = Table::new();
                    e.insert("side".into(), side.as_str().into());
                    e.insert("detects".into(), "predicted".into());
                    e.insert("tolerance".into(), tolerance.to_string().into());
                    e.into()
                })
                .collect();
            doc.insert("expect".into(), Value::Array(expect));
            let cell_text = toml::to_string(&doc).expect("a table serializes");
            let label = PathBuf::from(format!(
                "{} (fault `{name}` x settings `{}`)",
                path.display(),
                s.name
            ));
            let mut scenario = scenario::parse(&label, &cell_text)?;
            // A side the model says cannot detect within the run is expected not to (there
            // is nothing to measure); the run is stretched to cover a window it only starts.
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
                        e.check = scenario::Check::Detects {
                            window: crate::duration::Window::Never,
                            error: None,
                        };
                    }
                } else if hi > budget {
                    let end = (at + hi + 1000.0).ceil() as u64;
                    scenario.end = scenario.end.max(Dur::from_millis(end));
                }
            }
            // Nothing to measure on either side: predicted only.
            let too_slow = beyond == Side::BOTH.len();
            cells.push(Cell {
                settings: s.name.clone(),
                fault: name.clone(),
                scenario,
                too_slow,
            });
        }
    }
    Ok(Comparison {
        name: raw.name,
        file: path.to_owned(),
        description: raw.description,
        settings: raw.settings.iter().map(|s| s.name.clone()).collect(),
        faults: fault_names,
        cells,
    })
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
    pub timeline: Option<String>,
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

/// One cell's result, from its timeline (None when it was not run).
pub fn cell_result(cell: &Cell, timeline: Option<(&Record, String)>) -> CellResult {
    let side = |side: Side| {
        let p = model::predict(&cell.scenario, 0, side);
        let (measured_ms, error, mechanism, as_predicted) = match &timeline {
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
        ran: timeline.is_some(),
        client: side(Side::Client),
        server: side(Side::Server),
        run_ms: timeline.as_ref().map(|(t, _)| {
            t.events
                .iter()
                .rfind(|e| matches!(e.kind, Kind::LabDown { .. }))
                .map_or(0.0, |e| e.t_ms)
        }),
        timeline: timeline.map(|(_, path)| path),
    }
}

/// Runs every cell that is not too slow (all of them with `run_slow`), all at once, each in
/// its own lab; writes each timeline to `out/<comparison>/<cell>.json`.
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
            let t = crate::runner::run(&cell.scenario, opts).await?;
            let path = dir.join(format!("{}.json", cell.scenario.name));
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
                        "cell {}: {reason} (timeline: {})",
                        cell.scenario.name,
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
    fn a_bad_cell_names_the_fault_and_settings() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "name = \"c\"\nend = \"10s\"\n[[settings]]\nname = \"s\"\nkeepalive = { idle = \"0s\" }\n[[fault]]\nname = \"f\"\nkind = \"freeze\"\nat = \"1s\"\n",
        )
        .unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(
            e.contains("fault `f` x settings `s`") && e.contains("keepalive.idle"),
            "{e}"
        );
    }
}
