//! The short human summary `flatline run` prints per scenario, and `flatline report`, which
//! prints it again from a saved record.

use std::fmt::Write;

use crate::record::{Record, RunStatus, SideSummary};
use crate::scenario::Side;

fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{:.3} s", ms / 1000.0)
    }
}

fn side_line(side: Side, s: &SideSummary, healed: Option<&str>) -> String {
    let detect = match (&s.detection_ms, &s.error) {
        (Some(ms), Some(err)) => format!("detected after {:>10}  {err:<13}", secs(*ms)),
        _ => format!("{:<40}", "did not detect"),
    };
    let back = match (healed, s.reconnect_ms) {
        (None, _) => String::new(),
        (Some(from), Some(ms)) => format!("back {} after {from}", secs(ms)),
        (Some(from), None) => format!("not back after {from}"),
    };
    format!("  {side:<7} {detect}{back}").trim_end().to_owned() + "\n"
}

/// Which host the client's connections after a failover reached, and at which address.
fn failover_line(events: &[crate::record::Event], injected_ms: Option<f64>) -> String {
    use std::collections::BTreeMap;
    let after = injected_ms.unwrap_or(f64::INFINITY);
    // (host, address) -> connections, in the order first reached.
    let mut reached: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut order = Vec::new();
    for e in events
        .iter()
        .filter(|e| e.source == crate::record::Source::Client && e.t_ms >= after)
    {
        if let crate::record::Kind::Reconnected(c) = &e.kind {
            let key = (
                c.host.clone().unwrap_or_else(|| "unknown host".into()),
                c.ends.peer.clone(),
            );
            if !reached.contains_key(&key) {
                order.push(key.clone());
            }
            *reached.entry(key).or_default() += 1;
        }
    }
    if order.is_empty() {
        return "  client  did not reconnect after the failover\n".into();
    }
    let text: Vec<String> = order
        .iter()
        .map(|key| match reached[key] {
            1 => format!("the {} at {}", key.0, key.1),
            n => format!("the {} at {} ({n} connections)", key.0, key.1),
        })
        .collect();
    format!("  client  reconnected to {}\n", text.join(", "))
}

/// A pool's distributions on one side, and the storm: a few indented lines.
fn pool_lines(side: Side, s: &SideSummary, healed: bool) -> String {
    let Some(p) = &s.pool else {
        return String::new();
    };
    let dist = |d: &Option<crate::record::Distribution>| match d {
        Some(d) => format!(
            "min {} p50 {} p90 {} p99 {} max {}",
            secs(d.min_ms),
            secs(d.p50_ms),
            secs(d.p90_ms),
            secs(d.p99_ms),
            secs(d.max_ms)
        ),
        None => "none".into(),
    };
    let counts = |m: &std::collections::BTreeMap<String, u64>| {
        m.iter()
            .map(|(k, v)| format!("{k} x{v}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut out = format!(
        "    {side} pool: {} cut, {} detected, {} never; detection {}; {}\n",
        p.connections,
        p.detected,
        p.never_detected,
        dist(&p.detection),
        counts(&p.errors)
    );
    let opt = |v: Option<f64>| v.map_or("never".into(), secs);
    if !healed {
        return out;
    }
    let _ = writeln!(
        out,
        "    {side} back: {} of {}; reconnect {}; 95 % back {}, all back {}",
        p.reconnected,
        p.connections,
        dist(&p.reconnect),
        opt(p.back_95_ms),
        opt(p.all_back_ms)
    );
    if !p.collateral.is_empty() {
        let _ = writeln!(
            out,
            "    {side} collateral: connections not cut lost with {}",
            counts(&p.collateral)
        );
    }
    out
}

fn storm_line(s: &crate::record::Storm) -> String {
    let failed: Vec<String> = s.failed.iter().map(|(k, v)| format!("{k} x{v}")).collect();
    let listen = match (s.listen_overflows, s.listen_drops) {
        (Some(o), Some(d)) => format!("; server ListenOverflows +{o}, ListenDrops +{d}"),
        _ => String::new(),
    };
    format!(
        "    storm: {} attempts, peak {}/s, busiest 100 ms {}; failed: {}{listen}\n",
        s.attempts,
        s.peak_attempts_per_s,
        s.busiest_100ms,
        if failed.is_empty() {
            "none".into()
        } else {
            failed.join(", ")
        }
    )
}

/// Whether a run passed: it completed and every expectation held.
pub fn passed(t: &Record) -> bool {
    t.verdict.passed && t.status.is_completed()
}

/// Says when a fault's step took effect later after its moment than the model allows
/// ([`crate::model::INJECT_LATE_MS`]: measured up to 120 ms with forty labs on two cores, more
/// with more labs per core; docs/physics.md, K9a), where a window that depends on the fault's
/// phase against the peers' timers may not hold; nothing otherwise.
fn late_note((inject, heal): (f64, Option<f64>)) -> String {
    let limit = crate::model::INJECT_LATE_MS;
    let step = match heal {
        Some(h) if h > limit && h > inject => ("healed", h),
        _ if inject > limit => ("injected", inject),
        _ => return String::new(),
    };
    format!(
        "\n    {} {:.0} ms after its moment, more than the model allows for ({limit:.0} ms): a \
         window that depends on the fault's phase may not hold (a loaded machine; fewer labs \
         at once, -j)",
        step.0, step.1
    )
}

/// Renders the summary of one run; `path` is where its record was written.
pub fn render(t: &Record, path: &str) -> String {
    let mut out = String::new();
    let verdict = if passed(t) { "PASS" } else { "FAIL" };
    let _ = writeln!(
        out,
        "{verdict} {} ({})",
        t.scenario.name,
        t.scenario.file.display()
    );
    match &t.status {
        RunStatus::Completed => {}
        RunStatus::Interrupted { signal } => {
            let _ = writeln!(out, "  run interrupted by {signal}: the record ends there");
        }
        RunStatus::Failed { reason } => {
            let _ = writeln!(out, "  run failed: {reason}");
        }
    }
    for f in &t.summary.faults {
        let injected = match (f.injected_at_ms, f.injection_ms) {
            (Some(at), Some(took)) => format!("injected at {} (took {took:.1} ms)", secs(at)),
            _ => "never injected".into(),
        };
        let healed = f
            .healed_at_ms
            .map_or(String::new(), |h| format!(", healed at {}", secs(h)));
        let late = t
            .scenario
            .faults
            .iter()
            .find(|g| g.id == f.id)
            .and_then(|g| {
                crate::analysis::lateness(&t.events, g, t.scenario.client.connections.unwrap_or(1))
            })
            .map_or(String::new(), late_note);
        // A NAT names its timeout, and a preset's scaled twin says it is scaled.
        let nat = t
            .scenario
            .faults
            .iter()
            .find(|g| g.id == f.id)
            .and_then(|g| match g.what {
                crate::scenario::FaultSpec::NatTimeout(n) => Some(format!(" ({})", n.describe())),
                _ => None,
            })
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  fault {} [{}]{nat}: {injected}{healed}{late}",
            f.id,
            f.kind.as_str()
        );
        let healed = f.healed_at_ms.is_some();
        // A failover is its own heal: the client comes back to the standby.
        let back_from = if f.kind == crate::scenario::FaultKind::Failover {
            Some("the failover")
        } else {
            healed.then_some("heal")
        };
        out += &side_line(Side::Client, &f.client, back_from);
        out += &side_line(
            Side::Server,
            &f.server,
            back_from.filter(|_| f.kind != crate::scenario::FaultKind::Failover),
        );
        if f.kind == crate::scenario::FaultKind::Failover {
            out += &failover_line(&t.events, f.injected_at_ms);
        }
        out += &pool_lines(Side::Client, &f.client, back_from.is_some());
        out += &pool_lines(Side::Server, &f.server, healed);
        if let Some(storm) = &f.storm {
            out += &storm_line(storm);
        }
    }
    let programs: Vec<Side> = Side::BOTH
        .into_iter()
        .filter(|&side| t.scenario.settings(side).program.is_some())
        .collect();
    for f in crate::blackbox::findings(&t.events, &programs) {
        let _ = writeln!(out, "  finding: {f}");
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
    let _ = writeln!(out, "  record: {path}");
    out
}

/// A saved record judged again from its scenario and events, and its summary as `flatline run`
/// printed it. Also says where the saved summary or verdict differ from the new ones (a record
/// written by another version of flatline, or edited).
pub struct Rejudged {
    pub record: Record,
    pub text: String,
    pub differs: Vec<&'static str>,
}

/// Judges a saved record again; `path` is where it was read from.
pub fn rejudge(saved: &Record, path: &str) -> Rejudged {
    let record = crate::verdict::rejudge(saved);
    let mut differs = Vec::new();
    if record.summary != saved.summary {
        differs.push("summary");
    }
    if record.verdict != saved.verdict {
        differs.push("verdict");
    }
    Rejudged {
        text: render(&record, path),
        record,
        differs,
    }
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
    if s.faults.is_empty() {
        let _ = writeln!(out, "  no fault (a soak): {}", crate::model::soak(s));
    }
    for (i, f) in s.faults.iter().enumerate() {
        let _ = writeln!(out, "  fault {} [{}] at {}", f.id, f.kind().as_str(), f.at);
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
        "  {who:<7} {:<20} {:<12} {:<23} {}\n",
        p.window_text(),
        p.error.as_deref().unwrap_or("-"),
        p.mechanism,
        p.why
    )
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::Environment;

    /// A run of a fixed scenario over fixed events, ended as `status`.
    pub(crate) fn record(status: RunStatus) -> Record {
        let text = "name = \"t\"\nend = \"30s\"\n[[fault]]\nid = \"f\"\nkind = \"firewall-drop\"\nat = \"2s\"\nheal = \"18s\"\n\
            [[expect]]\nside = \"client\"\ndetects = \"9.8s..15s\"\nerror = \"ETIMEDOUT\"\n\
            [[expect]]\nside = \"server\"\ndetects = \"9.8s..11s\"\n\
            [[expect]]\nside = \"client\"\nreconnects = \"..300ms\"\n";
        let scenario = crate::scenario::parse(std::path::Path::new("t.toml"), text).unwrap();
        let environment = Environment {
            kernel: "6.18".into(),
            flatline_version: "0.1.0".into(),
            run_date: "2026-11-28T18:00:00Z".into(),
            privileges: "root".into(),
        };
        let events = crate::analysis::tests::run_events();
        crate::verdict::judge_run(scenario, environment, status, events)
    }

    #[test]
    fn the_summary_says_what_happened_and_how_the_run_ended() {
        let mut out = String::new();
        for status in [
            RunStatus::Completed,
            RunStatus::Interrupted {
                signal: "SIGINT".into(),
            },
            RunStatus::Failed {
                reason: "failed to heal fault `f`".into(),
            },
        ] {
            out += &render(&record(status), "results/t.json");
        }
        insta::assert_snapshot!(out);
    }

    #[test]
    fn a_fault_later_than_the_model_allows_is_said() {
        // The fixture's client connects at 5 ms, the drop is due at 2 s: 2005 ms is on time.
        let on_time = render(&record(RunStatus::Completed), "results/t.json");
        assert!(!on_time.contains("more than the model allows"), "{on_time}");
        let mut late = record(RunStatus::Completed);
        for e in &mut late.events {
            if matches!(e.kind, crate::record::Kind::FaultInjected(_)) {
                e.t_ms = 2005.0 + crate::model::INJECT_LATE_MS + 77.0;
            }
        }
        let text = render(&late, "results/t.json");
        let limit = crate::model::INJECT_LATE_MS;
        let said = format!(
            "injected {:.0} ms after its moment, more than the model allows for ({limit:.0} ms)",
            limit + 77.0
        );
        assert!(text.contains(&said), "{text}");
    }

    #[test]
    fn a_saved_record_judged_again_is_the_same_and_says_so() {
        let saved = record(RunStatus::Completed);
        let again = rejudge(&saved, "results/t.json");
        assert!(again.differs.is_empty());
        assert_eq!(again.record, saved);
        assert_eq!(again.text, render(&saved, "results/t.json"));
        let mut edited = saved.clone();
        edited.verdict.passed = true;
        let again = rejudge(&edited, "results/t.json");
        assert_eq!(again.differs, ["verdict"]);
        assert!(!passed(&again.record));
    }
}
