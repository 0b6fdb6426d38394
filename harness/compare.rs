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
    /// This row is the A/B control: every other row is judged against it, per fault and side.
    #[serde(default)]
    control: bool,
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
    /// The settings row marked `control = true`, if any.
    pub control: Option<String>,
    /// Widening of the predicted windows, ms (the file's `tolerance`).
    pub tolerance_ms: f64,
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
    let control = control_row(&src, &raw.settings)?;
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
        control,
        tolerance_ms: tolerance.as_millis() as f64,
    })
}

/// The row marked `control = true`: none, or exactly one, and never the only row (there would
/// be nothing to judge against it).
fn control_row(src: &Source, settings: &[RawSettings]) -> Result<Option<String>, ScenarioError> {
    let marked: Vec<usize> = (0..settings.len())
        .filter(|&i| settings[i].control)
        .collect();
    let at = |i: usize| FieldPath::root().key("settings").index(i).key("control");
    match marked.as_slice() {
        [] => Ok(None),
        [i] if settings.len() == 1 => Err(src.error(
            &at(*i),
            "the control needs at least one other [[settings]] row to be judged against it",
        )),
        [i] => Ok(Some(settings[*i].name.clone())),
        [first, second, ..] => Err(src.error(
            &at(*second),
            format!(
                "`{}` and `{}` are both marked as the control; mark exactly one row",
                settings[*second].name, settings[*first].name
            ),
        )),
    }
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
    /// This side against the same side of the control row under the same fault; None for the
    /// control itself and when the comparison has no control.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub versus_control: Option<Versus>,
}

/// Where a row stands against the control, one side, one fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Standing {
    /// Detects sooner (or detects where the control does not within the run).
    Beats,
    /// Detects later (or does not detect within the run where the control does).
    Slower,
    /// Both measurements lie where both settings' predicted windows overlap: the model's timer
    /// slack explains the difference, so neither is sooner by its settings.
    SameWithinSlack,
    /// Neither detects within the run.
    NeitherDetects,
}

impl Standing {
    /// As the JSON output spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Standing::Beats => "beats",
            Standing::Slower => "slower",
            Standing::SameWithinSlack => "same-within-slack",
            Standing::NeitherDetects => "neither-detects",
        }
    }
}

/// A row against the control, one side, one fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Versus {
    pub standing: Standing,
    /// The row's detection minus the control's, ms: negative when the row is sooner.
    pub difference_ms: Option<f64>,
    /// The row's detection over the control's.
    pub ratio: Option<f64>,
    /// The figures are bounds: one of the two did not detect within the run, and the model's
    /// earliest detection for it stands in (it can only be later than that).
    pub bound: bool,
}

/// Judges one side of a row against the same side of the control, from the measurements and
/// the model's windows widened by `tolerance_ms` (the comparison's tolerance, which also
/// judges each cell against its window):
/// - both detect: "same within timer slack" when both measurements lie inside the overlap of
///   the two widened windows (either setting could have measured either value); otherwise the
///   sooner one beats the other by the measured difference and ratio;
/// - one detects, the other not within the run: the detecting one beats the other; when the
///   model gives the other an earliest detection beyond the measurement, the difference and
///   ratio are bounds against that earliest;
/// - neither detects: neither.
pub fn versus(row: &SideResult, control: &SideResult, tolerance_ms: f64) -> Versus {
    let widen =
        |w: Option<(f64, f64)>| w.map(|(lo, hi)| ((lo - tolerance_ms).max(0.0), hi + tolerance_ms));
    let ratio = |a: f64, b: f64| (b >= 1.0).then(|| a / b);
    match (row.measured_ms, control.measured_ms) {
        (Some(r), Some(c)) => {
            let overlap = match (widen(row.predicted_ms), widen(control.predicted_ms)) {
                (Some(a), Some(b)) if a.0.max(b.0) <= a.1.min(b.1) => {
                    Some((a.0.max(b.0), a.1.min(b.1)))
                }
                _ => None,
            };
            let slack =
                overlap.is_some_and(|(lo, hi)| (lo..=hi).contains(&r) && (lo..=hi).contains(&c));
            let standing = if slack || r == c {
                Standing::SameWithinSlack
            } else if r < c {
                Standing::Beats
            } else {
                Standing::Slower
            };
            Versus {
                standing,
                difference_ms: Some(r - c),
                ratio: ratio(r, c),
                bound: false,
            }
        }
        (Some(r), None) => {
            let earliest = control.predicted_ms.map(|w| w.0).filter(|&lo| lo > r);
            Versus {
                standing: Standing::Beats,
                difference_ms: earliest.map(|lo| r - lo),
                ratio: earliest.and_then(|lo| ratio(r, lo)),
                bound: true,
            }
        }
        (None, Some(c)) => {
            let earliest = row.predicted_ms.map(|w| w.0).filter(|&lo| lo > c);
            Versus {
                standing: Standing::Slower,
                difference_ms: earliest.map(|lo| lo - c),
                ratio: earliest.and_then(|lo| ratio(lo, c)),
                bound: true,
            }
        }
        (None, None) => Versus {
            standing: Standing::NeitherDetects,
            difference_ms: None,
            ratio: None,
            bound: false,
        },
    }
}

impl Versus {
    /// In words, for a table cell: "beats: 9.25 s sooner (5.3x as fast)".
    pub fn text(&self) -> String {
        let amount = |ms: f64| {
            if ms.abs() < 1000.0 {
                format!("{:.1} ms", ms.abs())
            } else {
                format!("{:.2} s", ms.abs() / 1000.0)
            }
        };
        let ge = if self.bound { ">= " } else { "" };
        // The factor always reads as "N times": the slower detection over the sooner one.
        let factor = |word: &str| match self.ratio {
            Some(x) if x > 0.0 => format!(" ({ge}{:.1}x {word})", x.max(1.0 / x)),
            _ => String::new(),
        };
        let figures = |word: &str, factor_word: &str| {
            self.difference_ms
                .map(|d| format!("{ge}{} {word}{}", amount(d), factor(factor_word)))
        };
        match self.standing {
            Standing::Beats => match figures("sooner", "as fast") {
                None => "beats: the control never detects".into(),
                Some(f) if self.bound => format!("beats: {f}; the control not in the run"),
                Some(f) => format!("beats: {f}"),
            },
            Standing::Slower => match figures("later", "as slow") {
                None => "slower: never detects".into(),
                Some(f) if self.bound => format!("slower: {f}; not in the run"),
                Some(f) => format!("slower: {f}"),
            },
            Standing::SameWithinSlack => {
                let d = self.difference_ms.unwrap_or(0.0);
                format!(
                    "same within timer slack ({}{})",
                    if d < 0.0 { "-" } else { "+" },
                    amount(d)
                )
            }
            Standing::NeitherDetects => "neither detects".into(),
        }
    }
}

/// Judges every row against the control under each fault (nothing without a control).
pub fn judge_against_control(cells: &mut [CellResult], control: Option<&str>, tolerance_ms: f64) {
    let Some(control) = control else { return };
    let controls: Vec<CellResult> = cells
        .iter()
        .filter(|c| c.settings == control)
        .cloned()
        .collect();
    for cell in cells.iter_mut().filter(|c| c.settings != control) {
        let Some(base) = controls.iter().find(|c| c.fault == cell.fault) else {
            continue;
        };
        cell.client.versus_control = Some(versus(&cell.client, &base.client, tolerance_ms));
        cell.server.versus_control = Some(versus(&cell.server, &base.server, tolerance_ms));
    }
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
    /// The settings row every other row is judged against.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub control: Option<String>,
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
            // Either error, where the model admits two (the verdict checks neither).
            predicted_error: p.error.map(|e| {
                std::iter::once(e)
                    .chain(p.alt_errors)
                    .collect::<Vec<_>>()
                    .join(" or ")
            }),
            as_predicted,
            versus_control: None,
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
    let mut cells = futures::future::join_all(runs)
        .await
        .into_iter()
        .collect::<Result<Vec<_>, _>>()?;
    judge_against_control(&mut cells, c.control.as_deref(), c.tolerance_ms);
    Ok(Results {
        name: c.name.clone(),
        description: c.description.clone(),
        control: c.control.clone(),
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

/// With a control: each side's standing against it after the side's prediction.
const HEADER_CONTROL: [&str; 7] = [
    "settings",
    "client measured",
    "client predicted",
    "client vs control",
    "server measured",
    "server predicted",
    "server vs control",
];

fn header(r: &Results) -> &'static [&'static str] {
    if r.control.is_some() {
        &HEADER_CONTROL
    } else {
        &HEADER
    }
}

fn versus_text(r: &Results, c: &CellResult, s: &SideResult) -> String {
    match &s.versus_control {
        Some(v) => v.text(),
        None if r.control.as_deref() == Some(c.settings.as_str()) => "(control)".into(),
        None => String::new(),
    }
}

fn rows(r: &Results, fault: &str) -> Vec<Vec<String>> {
    r.cells
        .iter()
        .filter(|c| c.fault == fault)
        .map(|c| {
            let mut row = vec![c.settings.clone()];
            for s in [&c.client, &c.server] {
                row.extend([measured(s, c.ran), predicted(s)]);
                if r.control.is_some() {
                    row.push(versus_text(r, c, s));
                }
            }
            row
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
fn aligned<R: AsRef<[String]>>(header: &[&str], rows: &[R]) -> String {
    let mut width: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in width.iter_mut().zip(row.as_ref()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| -> String {
        let mut l = String::from(" ");
        for (w, cell) in width.iter().zip(cells) {
            let _ = write!(l, " {cell:<w$} ");
        }
        l.trim_end().to_owned() + "\n"
    };
    let mut out = line(&mut header.iter().copied());
    for row in rows {
        out += &line(&mut row.as_ref().iter().map(String::as_str));
    }
    out
}

const CONTROL_NOTE: &str = "Against the control: \"beats\" detects sooner, \"slower\" later, by the measured difference and ratio (\"at least\" when one did not detect within the run: the model's earliest detection stands in for it); \"same within timer slack\" when both measurements lie where both predicted windows (with the tolerance) overlap.";

/// Aligned plain text, one table per fault.
pub fn render_text(r: &Results) -> String {
    let mut out = format!("{}: {}\n", r.name, r.description);
    if let Some(c) = &r.control {
        let _ = writeln!(out, "control: {c}");
    }
    for fault in faults(r) {
        let _ = writeln!(out, "\n{fault}");
        out += &aligned(header(r), &rows(r, &fault));
        let pools = pool_rows(r, &fault);
        if !pools.is_empty() {
            let _ = writeln!(out, "\n{fault}: the pool and its reconnect storm");
            out += &aligned(&POOL_HEADER, &pools);
        }
    }
    let _ = writeln!(out, "\n{FOOTNOTE}");
    if r.control.is_some() {
        let _ = writeln!(out, "{CONTROL_NOTE}");
    }
    let _ = writeln!(
        out,
        "Matrix wall time {:.1} s; slowest cell {:.1} s.",
        r.wall_ms / 1000.0,
        r.slowest_cell_ms() / 1000.0
    );
    out
}

/// Markdown, one table per fault.
pub fn render_markdown(r: &Results) -> String {
    let mut out = format!("## {}\n\n{}\n", r.name, r.description);
    if let Some(c) = &r.control {
        let _ = writeln!(out, "\nControl: {c}");
    }
    for fault in faults(r) {
        let _ = write!(
            out,
            "\n### {fault}\n\n| {} |\n|{}\n",
            header(r).join(" | "),
            "---|".repeat(header(r).len())
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
    if r.control.is_some() {
        let _ = writeln!(out, "{CONTROL_NOTE}");
    }
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
         server_ms,server_error,server_mechanism,server_predicted,server_predicted_error,server_as_predicted,\
         client_vs_control,client_vs_control_ms,client_vs_control_ratio,client_vs_control_bound,\
         server_vs_control,server_vs_control_ms,server_vs_control_ratio,server_vs_control_bound\n",
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
        for s in [&c.client, &c.server] {
            let v = s.versus_control.as_ref();
            fields.extend([
                opt(v.map(|v| v.standing.as_str().to_owned())),
                opt(v.and_then(|v| v.difference_ms).map(|d| format!("{d:.3}"))),
                opt(v.and_then(|v| v.ratio).map(|x| format!("{x:.4}"))),
                opt(v.map(|v| v.bound.to_string())),
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
            control: None,
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

    fn side(measured_ms: Option<f64>, window: Option<(f64, f64)>) -> SideResult {
        SideResult {
            measured_ms,
            error: measured_ms.map(|_| "ETIMEDOUT".into()),
            mechanism: None,
            predicted: String::new(),
            predicted_ms: window,
            predicted_error: None,
            as_predicted: None,
            versus_control: None,
        }
    }

    #[test]
    fn a_row_beats_the_control_by_the_measured_difference_when_the_windows_part() {
        // compare-seed's cable pull: fast 1s/1s/3 + UT against the seed's 3s/1s/10.
        let v = versus(
            &side(Some(2100.0), Some((1990.0, 3160.0))),
            &side(Some(11_350.0), Some((9990.0, 13_670.0))),
            250.0,
        );
        assert_eq!(v.standing, Standing::Beats);
        assert_eq!(v.difference_ms, Some(-9250.0));
        assert!((v.ratio.unwrap() - 2100.0 / 11_350.0).abs() < 1e-9);
        assert!(!v.bound);
        assert_eq!(v.text(), "beats: 9.25 s sooner (5.4x as fast)");
        // The other way round: slower by as much.
        let v = versus(
            &side(Some(11_350.0), Some((9990.0, 13_670.0))),
            &side(Some(2100.0), Some((1990.0, 3160.0))),
            250.0,
        );
        assert_eq!(v.standing, Standing::Slower);
        assert_eq!(v.text(), "slower: 9.25 s later (5.4x as slow)");
    }

    #[test]
    fn measurements_inside_both_windows_are_the_same_within_timer_slack() {
        // The same window, measured 40 ms apart: the timers' slack, not the settings.
        let w = Some((2990.0, 5200.0));
        let v = versus(&side(Some(3090.0), w), &side(Some(3050.0), w), 250.0);
        assert_eq!(v.standing, Standing::SameWithinSlack);
        assert_eq!(v.text(), "same within timer slack (+40.0 ms)");
        // Overlapping windows, but the row measured where the control's window (even widened
        // by the tolerance) does not reach: the difference is the settings'.
        let v = versus(
            &side(Some(1500.0), Some((1000.0, 5000.0))),
            &side(Some(4500.0), Some((4000.0, 8000.0))),
            250.0,
        );
        assert_eq!(v.standing, Standing::Beats);
        // Inside the tolerance's widening is still inside.
        let v = versus(
            &side(Some(3800.0), Some((1000.0, 5000.0))),
            &side(Some(4500.0), Some((4000.0, 8000.0))),
            250.0,
        );
        assert_eq!(v.standing, Standing::SameWithinSlack);
        // No window (the model says never, yet both measured): decided by the measurement.
        let v = versus(&side(Some(100.0), None), &side(Some(90.0), None), 250.0);
        assert_eq!(v.standing, Standing::Slower);
    }

    #[test]
    fn a_control_that_never_detects_in_the_run_gives_bounds_from_its_earliest() {
        let linux_defaults = side(None, Some((674_990.0, 8_024_600.0)));
        let v = versus(
            &side(Some(3090.0), Some((2990.0, 5200.0))),
            &linux_defaults,
            250.0,
        );
        assert_eq!(v.standing, Standing::Beats);
        assert!(v.bound);
        assert_eq!(v.difference_ms, Some(3090.0 - 674_990.0));
        assert_eq!(
            v.text(),
            "beats: >= 671.90 s sooner (>= 218.4x as fast); the control not in the run"
        );
        // A control the model says never detects: no figure to give.
        let v = versus(&side(Some(3090.0), None), &side(None, None), 250.0);
        assert_eq!(
            (v.standing, v.difference_ms, v.ratio),
            (Standing::Beats, None, None)
        );
        assert_eq!(v.text(), "beats: the control never detects");
        // The row is the one that misses the run.
        let v = versus(
            &side(None, Some((928_830.0, 964_790.0))),
            &side(Some(5540.0), Some((5400.0, 5860.0))),
            250.0,
        );
        assert_eq!(v.standing, Standing::Slower);
        assert_eq!(v.difference_ms, Some(928_830.0 - 5540.0));
        assert!(
            v.text().starts_with("slower: >= 923.29 s later"),
            "{}",
            v.text()
        );
        let v = versus(&side(None, None), &side(None, Some((1.0, 2.0))), 250.0);
        assert_eq!(v.standing, Standing::NeitherDetects);
        // A control that detected within a millisecond gives no ratio (nothing to divide by).
        let v = versus(&side(Some(900.0), None), &side(Some(0.4), None), 250.0);
        assert_eq!((v.standing, v.ratio), (Standing::Slower, None));
    }

    #[test]
    fn exactly_one_control_is_checked_and_located() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        let text = "name = \"c\"\nend = \"10s\"\n[[settings]]\nname = \"a\"\ncontrol = true\n\
                    [[settings]]\nname = \"b\"\ncontrol = true\n[[fault]]\nname = \"f\"\n\
                    kind = \"freeze\"\nat = \"1s\"\n";
        std::fs::write(&file, text).unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:8:1: settings[1].control: `b` and `a` are both marked as the control; mark \
                 exactly one row",
                file.display()
            )
        );
        std::fs::write(
            &file,
            text.replace("control = true\n[[fault]]", "[[fault]]"),
        )
        .unwrap();
        let c = load(&file).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.control.as_deref(), Some("a"));
        std::fs::write(
            &file,
            "name = \"c\"\nend = \"10s\"\n[[settings]]\nname = \"a\"\ncontrol = true\n\
             [[fault]]\nname = \"f\"\nkind = \"freeze\"\nat = \"1s\"\n",
        )
        .unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "{}:5:1: settings[0].control: the control needs",
                file.display()
            )),
            "{e}"
        );
        std::fs::write(&file, text.replace("control = true", "control = \"yes\"")).unwrap();
        let e = load(&file).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:5:", file.display())) && e.contains("settings[0].control"),
            "{e}"
        );
    }

    #[test]
    fn every_row_but_the_control_is_judged_and_shown_against_it() {
        let c =
            load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/compare/worker-fix.toml"))
                .unwrap_or_else(|e| panic!("{e}"));
        let control = c.control.clone().expect("worker-fix has a control");
        assert!(control.contains("unfixed"));
        let mut cells: Vec<CellResult> =
            c.cells.iter().map(|cell| cell_result(cell, None)).collect();
        judge_against_control(&mut cells, Some(&control), c.tolerance_ms);
        for cell in &cells {
            let judged =
                cell.client.versus_control.is_some() && cell.server.versus_control.is_some();
            assert_eq!(judged, cell.settings != control, "{}", cell.settings);
        }
        let results = Results {
            name: c.name.clone(),
            description: c.description.clone(),
            control: Some(control),
            cells,
            wall_ms: 0.0,
        };
        let text = render_text(&results);
        assert!(
            text.contains("client vs control") && text.contains("(control)"),
            "{text}"
        );
        assert!(text.contains("same within timer slack\" when"), "{text}");
        let md = render_markdown(&results);
        assert!(md.contains("| client vs control |"), "{md}");
        let csv = render_csv(&results);
        let header: Vec<&str> = csv.lines().next().unwrap().split(',').collect();
        for line in csv.lines().filter(|l| !l.starts_with('"')) {
            assert_eq!(line.split(',').count(), header.len(), "{line}");
        }
        let json = serde_json::to_value(&results).unwrap();
        assert_eq!(json["control"], results.control.clone().unwrap());
        assert_eq!(
            json["cells"][1]["client"]["versus_control"]["standing"],
            "neither-detects"
        );
    }
}
