//! The short human summary `flatline run` prints per scenario.

use std::fmt::Write;

use crate::record::{Record, SideSummary};
use crate::scenario::Side;

fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", ms / 1000.0)
    }
}

fn side_line(side: Side, s: &SideSummary, healed: bool) -> String {
    let detect = match (&s.detection_ms, &s.error) {
        (Some(ms), Some(err)) => format!("detected after {:>10}  {err:<12}", secs(*ms)),
        _ => format!("{:<39}", "did not detect"),
    };
    let back = match (healed, s.reconnect_ms) {
        (false, _) => String::new(),
        (true, Some(ms)) => format!("back {} after heal", secs(ms)),
        (true, None) => "not back after heal".into(),
    };
    format!("  {side:<7} {detect}{back}").trim_end().to_owned() + "\n"
}

/// Renders the summary of one run; `path` is where its timeline was written.
pub fn render(t: &Record, path: &str) -> String {
    let mut out = String::new();
    let verdict = if t.verdict.passed { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "{verdict} {} ({})",
        t.scenario.name,
        t.scenario.file.display()
    );
    for f in &t.summary.faults {
        let injected = match (f.injected_at_ms, f.injection_ms) {
            (Some(at), Some(took)) => format!("injected at {} (took {took:.1} ms)", secs(at)),
            _ => "never injected".into(),
        };
        let healed = f
            .healed_at_ms
            .map_or(String::new(), |h| format!(", healed at {}", secs(h)));
        let _ = writeln!(
            out,
            "  fault {} [{}]: {injected}{healed}",
            f.id,
            f.kind.as_str()
        );
        let healed = f.healed_at_ms.is_some();
        out += &side_line(Side::Client, &f.client, healed);
        out += &side_line(Side::Server, &f.server, healed);
    }
    for o in &t.verdict.expectations {
        if o.passed {
            let _ = writeln!(out, "  PASS {}", o.expected);
        } else {
            let _ = writeln!(
                out,
                "  FAIL {}\n       {}\n       actual: {}",
                o.expected, o.reason, o.actual
            );
        }
    }
    let _ = writeln!(out, "  timeline: {path}");
    out
}

/// The predictions for every fault of a scenario, both sides.
pub fn render_predictions(s: &crate::scenario::Scenario, os: crate::model::Os) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}), predicted for {os:?}",
        s.name,
        s.file.display()
    );
    for (i, f) in s.faults.iter().enumerate() {
        let _ = writeln!(out, "  fault {} [{}] at {}", f.id, f.kind.as_str(), f.at);
        for side in Side::BOTH {
            let p = crate::model::predict_on(s, i, side, os);
            out += &prediction_line(side.as_str(), &p);
        }
    }
    out
}

/// One prediction: who, window, error, mechanism, why.
pub fn prediction_line(who: &str, p: &crate::model::Prediction) -> String {
    format!(
        "  {who:<7} {:<20} {:<11} {:<23} {}\n",
        p.window_text(),
        p.error.as_deref().unwrap_or("-"),
        p.mechanism,
        p.why
    )
}
