//! Expectations judged against a record's events, while it grows and when the run is over.

use crate::analysis;
use crate::duration::{Placement, Window};
use crate::pool;
use crate::record::{
    Environment, Event, FaultSummary, Kind, Record, RunStatus, SideSummary, Summary, FORMAT_VERSION,
};
pub use crate::record::{Outcome, Status, Verdict};
use crate::scenario::{Check, Expectation, Fault, Pick, Scenario, Side};

/// Judges every expectation. `now_ms` is the current time while the run goes on, `None` once
/// it is over (then nothing stays pending).
pub fn judge(scenario: &Scenario, events: &[Event], now_ms: Option<f64>) -> Vec<Outcome> {
    // How long the run watched: to its last event (lab-down in a finished run).
    let run_end_ms = now_ms.unwrap_or_else(|| events.iter().map(|e| e.t_ms).fold(0.0, f64::max));
    scenario
        .expectations
        .iter()
        .map(|e| judge_one(e, events, now_ms, run_end_ms))
        .collect()
}

/// The final verdict of a finished run.
pub fn verdict(scenario: &Scenario, events: &[Event]) -> Verdict {
    let expectations = judge(scenario, events, None);
    Verdict {
        passed: expectations.iter().all(|o| o.passed),
        expectations,
    }
}

/// The record of a run: its summary and verdict derived from the scenario and the events.
pub fn judge_run(
    scenario: Scenario,
    environment: Environment,
    status: RunStatus,
    events: Vec<Event>,
) -> Record {
    Record {
        format_version: FORMAT_VERSION,
        status,
        summary: summarize(&scenario.faults, &events),
        verdict: verdict(&scenario, &events),
        scenario,
        environment,
        events,
    }
}

/// A saved record judged again from its scenario and events, as `flatline report` does.
pub fn rejudge(record: &Record) -> Record {
    let r = record.clone();
    judge_run(r.scenario, r.environment, r.status, r.events)
}

/// A latency in scenario syntax: seconds to the millisecond, or milliseconds to the
/// microsecond below one second.
fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.3}ms")
    } else {
        format!("{:.3}s", ms / 1000.0)
    }
}

/// An expectation's outcome: `actual` is the inside of its scenario-syntax table.
fn outcome(exp: &Expectation, status: Status, actual: &str, reason: String) -> Outcome {
    Outcome {
        expected: exp.to_string(),
        actual: format!(
            "{{ side = \"{}\", fault = \"{}\", {actual} }}",
            exp.side, exp.fault
        ),
        passed: status == Status::Passed,
        status,
        reason,
    }
}

fn judge_one(exp: &Expectation, events: &[Event], now_ms: Option<f64>, run_end_ms: f64) -> Outcome {
    if let Check::Disconnects { max } = exp.check {
        return judge_disconnects(exp, max, events, now_ms.is_some());
    }
    let side = exp.side;
    // Nothing is pending once the run is over.
    let pending_or = |status: Status| {
        if now_ms.is_some() {
            Status::Pending
        } else {
            status
        }
    };
    let Some(times) = analysis::fault_times(events, &exp.fault) else {
        let reason = "the fault was never injected".into();
        return outcome(exp, pending_or(Status::Failed), "injected = false", reason);
    };
    if exp.pick.is_some() || pool::is_pool(events) {
        return judge_pool(exp, events, now_ms, run_end_ms);
    }
    let (reference_ms, found) = match &exp.check {
        Check::Detects { .. } => (
            Some(times.injected_ms),
            analysis::detection(events, side, &exp.fault),
        ),
        Check::Reconnects { .. } => (
            analysis::back_from_ms(events, &exp.fault, times),
            analysis::reconnect(events, side, &exp.fault).map(|ms| (ms, String::new())),
        ),
        Check::Disconnects { .. } => unreachable!("judged by judge_disconnects"),
    };
    let Some(reference_ms) = reference_ms else {
        let reason = "the fault was never healed".into();
        return outcome(exp, pending_or(Status::Failed), "healed = false", reason);
    };
    match found {
        Some((latency, error)) => judge_found(exp, latency, &error),
        // Nothing yet: keep watching until the run is over. A detection after the window is
        // still a detection (reported as late, never as "never").
        None if now_ms.is_some() => {
            let actual = format!("{} = \"never\"", what(exp));
            outcome(exp, Status::Pending, &actual, String::new())
        }
        None => judge_missing(exp, run_end_ms - reference_ms),
    }
}

/// `disconnects = N`: how many of the side's connections ended (its `peer-lost` events) over
/// the whole run. Failed as soon as there are too many; passed only once the run is over.
fn judge_disconnects(exp: &Expectation, max: u32, events: &[Event], running: bool) -> Outcome {
    let lost: Vec<&Event> = events
        .iter()
        .filter(|e| e.source == exp.side.into() && matches!(e.kind, Kind::PeerLost(_)))
        .collect();
    let actual = format!("disconnects = {}", lost.len());
    let mut o = if lost.len() as u64 > u64::from(max) {
        let first = lost[0];
        let error = match &first.kind {
            Kind::PeerLost(l) => l.error.clone(),
            _ => unreachable!("filtered to peer-lost"),
        };
        let reason = format!(
            "{} disconnected {} times, expected at most {max}; the first at {:.3}s ({error})",
            exp.side,
            lost.len(),
            first.t_ms / 1000.0
        );
        outcome(exp, Status::Failed, &actual, reason)
    } else if running {
        outcome(exp, Status::Pending, &actual, String::new())
    } else {
        outcome(exp, Status::Passed, &actual, String::new())
    };
    o.actual = format!("{{ side = \"{}\", {actual} }}", exp.side);
    o
}

/// An expectation on a pool of connections: the connection its pick names (every one by
/// default) is judged as one connection would be, and the outcome says which and how many.
fn judge_pool(
    exp: &Expectation,
    events: &[Event],
    now_ms: Option<f64>,
    run_end_ms: f64,
) -> Outcome {
    let pick = exp.pick.unwrap_or(Pick::All);
    let times = analysis::fault_times(events, &exp.fault).expect("checked by judge_one");
    let (reference_ms, cut, found) = match &exp.check {
        Check::Detects { .. } => {
            let l = pool::losses(events, exp.side, &exp.fault).unwrap_or_default();
            (Some(times.injected_ms), l.cut, l.found)
        }
        Check::Reconnects { .. } => {
            let (cut, back) = pool::returns(events, exp.side, &exp.fault).unwrap_or_default();
            let back = back.into_iter().map(|ms| (ms, String::new())).collect();
            (analysis::back_from_ms(events, &exp.fault, times), cut, back)
        }
        Check::Disconnects { .. } => unreachable!("judged by judge_disconnects"),
    };
    let Some(reference_ms) = reference_ms else {
        let reason = "the fault was never healed".into();
        let status = if now_ms.is_some() {
            Status::Pending
        } else {
            Status::Failed
        };
        return outcome(exp, status, "healed = false", reason);
    };
    let which = match pick {
        Pick::All => "connections = \"all\"".to_string(),
        Pick::Any => "connections = \"any\"".to_string(),
        Pick::Quantile(q) => format!("quantile = {q}"),
    };
    let mut o = match pool::pick(pick, cut, &found) {
        Some((latency, error)) => judge_found(exp, latency, &error),
        None if now_ms.is_some() => {
            let actual = format!("{} = \"never\"", what(exp));
            outcome(exp, Status::Pending, &actual, String::new())
        }
        None => {
            let mut o = judge_missing(exp, run_end_ms - reference_ms);
            if !o.passed {
                o.reason = format!(
                    "{} of {cut} connections did not {}: {}",
                    cut - found.len().min(cut),
                    &what(exp)[..what(exp).len() - 1],
                    o.reason
                );
            }
            o
        }
    };
    if let Some(inner) = o.actual.strip_suffix(" }") {
        o.actual = format!("{inner}, {which} }} ({} of {cut} connections)", found.len());
    }
    o
}

/// "detects" or "reconnects".
fn what(exp: &Expectation) -> &'static str {
    match exp.check {
        Check::Detects { .. } => "detects",
        Check::Reconnects { .. } => "reconnects",
        Check::Disconnects { .. } => "disconnects",
    }
}

fn window(exp: &Expectation) -> Window {
    match exp.check {
        Check::Detects { window, .. } | Check::Reconnects { window } => window,
        Check::Disconnects { .. } => Window::Never,
    }
}

/// How far before its fault's stamp a detection may be stamped and still count as at the
/// fault. A firewall or reject fault is stamped when the kernel's notice of the committed rule
/// reaches the runner's listener thread (tens of microseconds after the commit); a packet that
/// meets the rule in between can draw a reset the peer stamps first (seen: -0.003 ms).
const FAULT_STAMP_SLACK_MS: f64 = 1.0;

/// A detection's latency as windows judge it: within [`FAULT_STAMP_SLACK_MS`] before the
/// fault's stamp counts as at the fault.
pub fn at_fault(latency_ms: f64) -> f64 {
    if (-FAULT_STAMP_SLACK_MS..0.0).contains(&latency_ms) {
        0.0
    } else {
        latency_ms
    }
}

/// It happened after `latency` ms, with `error` (empty for a reconnect).
fn judge_found(exp: &Expectation, latency: f64, error: &str) -> Outcome {
    let (side, what, window) = (exp.side, what(exp), window(exp));
    let latency = at_fault(latency);
    let mut actual = format!("{what} = \"{}\"", secs(latency));
    if !error.is_empty() {
        actual += &format!(", error = \"{error}\"");
    }
    let reason = match window.place(latency) {
        Placement::TooEarly if window == Window::Never => {
            format!("{side} {what} after {}, expected never", secs(latency))
        }
        Placement::TooEarly => format!("{side} {what} too early, after {}", secs(latency)),
        Placement::TooLate => format!(
            "{side} {what} later than {}, at {} (window {window})",
            if exp.predicted.is_some() {
                "predicted"
            } else {
                "expected"
            },
            secs(latency)
        ),
        Placement::Inside => match &exp.check {
            Check::Detects {
                error: Some(want), ..
            } if want != error => {
                format!("{side} saw {error}, expected {want}")
            }
            _ => String::new(),
        },
    };
    let status = if reason.is_empty() {
        Status::Passed
    } else {
        Status::Failed
    };
    outcome(exp, status, &actual, reason)
}

/// It did not happen in a finished run that watched `watched_ms` after the fault (or heal).
fn judge_missing(exp: &Expectation, watched_ms: f64) -> Outcome {
    let (side, what, window) = (exp.side, what(exp), window(exp));
    let since = match exp.check {
        Check::Detects { .. } => "the fault",
        Check::Reconnects { .. } => "the heal",
        Check::Disconnects { .. } => "the start",
    };
    let never = format!("{what} = \"never\"");
    if window == Window::Never {
        return outcome(exp, Status::Passed, &never, String::new());
    }
    // A window that only opens after the run ended cannot be checked by this run; nothing
    // happening within the run is what it predicts.
    if let Window::Within {
        from: Some(from), ..
    } = window
    {
        if from.as_millis() as f64 > watched_ms {
            let actual = format!(
                "{what} = \"not within this run\" (watched {} after {since})",
                secs(watched_ms)
            );
            return outcome(exp, Status::Passed, &actual, String::new());
        }
    }
    let reason = match window.deadline() {
        Some(d) => format!(
            "{side} did not {} within {d} (watched {} after {since})",
            &what[..what.len() - 1],
            secs(watched_ms)
        ),
        None => format!(
            "{side} never {what} (watched {} after {since})",
            secs(watched_ms)
        ),
    };
    outcome(exp, Status::Failed, &never, reason)
}

fn side_summary(events: &[Event], side: Side, fault: &str) -> SideSummary {
    let found = analysis::detection(events, side, fault);
    SideSummary {
        detection_ms: found.as_ref().map(|d| d.0),
        error: found.map(|d| d.1),
        reconnect_ms: analysis::reconnect(events, side, fault),
        pool: None,
    }
}

/// The record's summary, per fault and side: when it took effect, when each side noticed and
/// came back ([`analysis`]), and for a pool its distribution and storm ([`pool`]).
pub fn summarize(faults: &[Fault], events: &[Event]) -> Summary {
    let pool = pool::is_pool(events);
    let faults: Vec<FaultSummary> = faults
        .iter()
        .map(|f| {
            let times = analysis::fault_times(events, &f.id);
            FaultSummary {
                id: f.id.clone(),
                kind: f.kind(),
                injected_at_ms: times.map(|t| t.injected_ms),
                injection_ms: times.map(|t| analysis::round_us(t.injected_ms - t.started_ms)),
                healed_at_ms: times.and_then(|t| t.healed_ms),
                client: SideSummary {
                    pool: pool
                        .then(|| pool::summary(events, Side::Client, &f.id))
                        .flatten(),
                    ..side_summary(events, Side::Client, &f.id)
                },
                server: SideSummary {
                    pool: pool
                        .then(|| pool::summary(events, Side::Server, &f.id))
                        .flatten(),
                    ..side_summary(events, Side::Server, &f.id)
                },
                storm: pool.then(|| pool::storm(events, &f.id)).flatten(),
            }
        })
        .collect();
    Summary {
        client: faults.first().map(|f| f.client.clone()).unwrap_or_default(),
        server: faults.first().map(|f| f.server.clone()).unwrap_or_default(),
        faults,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::{connected, healed, injected, lost};
    use crate::scenario::Side;
    use std::path::Path;

    fn scenario(expect: &str) -> Scenario {
        let text = format!(
            "name = \"t\"\nend = \"30s\"\n[[fault]]\nid = \"f\"\nkind = \"firewall-drop\"\nat = \"2s\"\nheal = \"18s\"\n{expect}"
        );
        crate::scenario::parse(Path::new("t.toml"), &text).unwrap()
    }

    fn events() -> Vec<Event> {
        vec![
            injected(2005.0, "f", 0.0),
            lost(15001.0, Side::Client, "ETIMEDOUT"),
            healed(18000.0, "f"),
            connected(18400.0, Side::Client, true),
        ]
    }

    fn one(expect: &str, ev: &[Event], now: Option<f64>) -> Outcome {
        judge(&scenario(expect), ev, now).remove(0)
    }

    #[test]
    fn detection_inside_the_window_with_the_right_error_passes() {
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"9.8s..15s\"\nerror = \"ETIMEDOUT\"",
            &events(),
            None,
        );
        assert!(o.passed, "{o:?}");
        assert_eq!(
            o.actual,
            r#"{ side = "client", fault = "f", detects = "12.996s", error = "ETIMEDOUT" }"#
        );
    }

    #[test]
    fn a_reset_stamped_a_hair_before_its_fault_is_at_the_fault() {
        let ev = |lost_ms| {
            vec![
                // The script ran 3 ms; the kernel's notice of the rule stamps 2005.
                injected(2005.0, "f", 3.0),
                lost(lost_ms, Side::Client, "ECONNRESET"),
            ]
        };
        let expect = "[[expect]]\nside = \"client\"\ndetects = \"0ms..1s\"\nerror = \"ECONNRESET\"";
        let o = one(expect, &ev(2004.997), None);
        assert!(o.passed, "{o:?}");
        // Well before the fault's stamp is not the fault's doing.
        let o = one(expect, &ev(2003.5), None);
        assert!(!o.passed && o.reason.contains("too early"), "{o:?}");
    }

    #[test]
    fn wrong_error_too_early_too_late_all_fail() {
        let ev = events();
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"9.8s..15s\"\nerror = \"EOF\"",
            &ev,
            None,
        );
        assert!(
            !o.passed && o.reason.contains("saw ETIMEDOUT, expected EOF"),
            "{o:?}"
        );
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"..500ms\"",
            &ev,
            None,
        );
        assert!(
            !o.passed && o.reason.contains("later than expected"),
            "{o:?}"
        );
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"14s..\"",
            &ev,
            None,
        );
        assert!(!o.passed && o.reason.contains("too early"), "{o:?}");
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"never\"",
            &ev,
            None,
        );
        assert!(!o.passed && o.reason.contains("expected never"), "{o:?}");
    }

    #[test]
    fn missing_detection_stays_pending_until_the_run_ends_then_fails() {
        // Past the window's upper bound the kernel may still detect: the run keeps watching.
        let exp = "[[expect]]\nside = \"server\"\ndetects = \"9.8s..15s\"";
        let ev = events();
        assert_eq!(one(exp, &ev, Some(10_000.0)).status, Status::Pending);
        assert_eq!(one(exp, &ev, Some(17_006.0)).status, Status::Pending);
        let o = one(exp, &ev, None);
        assert_eq!(o.status, Status::Failed);
        assert!(o.actual.contains("detects = \"never\""), "{o:?}");
        assert!(
            o.reason.contains("watched 16.395s after the fault"),
            "{o:?}"
        );
        let never = "[[expect]]\nside = \"server\"\ndetects = \"never\"";
        assert_eq!(one(never, &ev, Some(20_000.0)).status, Status::Pending);
        assert_eq!(one(never, &ev, None).status, Status::Passed);
    }

    #[test]
    fn a_late_detection_is_late_not_never() {
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"9.8s..11s\"",
            &events(),
            Some(16_000.0),
        );
        assert_eq!(o.status, Status::Failed);
        assert!(
            o.reason
                .contains("client detects later than expected, at 12.996s"),
            "{o:?}"
        );
        assert!(o.actual.contains("detects = \"12.996s\""), "{o:?}");
        // A window from the model says so.
        let mut s = scenario("[[expect]]\nside = \"client\"\ndetects = \"9.8s..11s\"");
        s.expectations[0].predicted = Some(crate::duration::Dur::from_millis(0));
        let o = judge(&s, &events(), None).remove(0);
        assert!(
            o.reason
                .contains("client detects later than predicted, at 12.996s"),
            "{o:?}"
        );
        // A reconnect is watched from the heal.
        let o = one(
            "[[expect]]\nside = \"server\"\nreconnects = \"..2s\"",
            &events(),
            None,
        );
        assert!(o.reason.contains("after the heal"), "{o:?}");
    }

    #[test]
    fn a_window_beyond_the_run_is_not_within_this_run() {
        // The busy writer's 924.6 s retransmission budget in a 30 s run: nothing to see.
        let exp = "[[expect]]\nside = \"server\"\ndetects = \"924.6s..939.8s\"";
        let ev = events();
        let o = one(exp, &ev, None);
        assert!(o.passed, "{o:?}");
        assert!(o.actual.contains("not within this run"), "{o:?}");
        // ... but a detection inside the run is too early.
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"924.6s..939.8s\"",
            &ev,
            None,
        );
        assert!(!o.passed && o.reason.contains("too early"), "{o:?}");
    }

    #[test]
    fn reconnects_are_measured_from_the_heal() {
        let ev = events();
        let o = one(
            "[[expect]]\nside = \"client\"\nreconnects = \"..2s\"",
            &ev,
            None,
        );
        assert!(o.passed, "{o:?}");
        let o = one(
            "[[expect]]\nside = \"client\"\nreconnects = \"..300ms\"",
            &ev,
            None,
        );
        assert!(!o.passed, "{o:?}");
        let unhealed = &ev[..2];
        let o = one(
            "[[expect]]\nside = \"client\"\nreconnects = \"..2s\"",
            unhealed,
            None,
        );
        assert!(!o.passed && o.reason.contains("never healed"), "{o:?}");
    }

    #[test]
    fn a_fault_that_never_happened_fails_every_expectation() {
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"never\"",
            &[],
            None,
        );
        assert!(!o.passed && o.reason.contains("never injected"), "{o:?}");
        let o = one(
            "[[expect]]\nside = \"client\"\ndetects = \"never\"",
            &[],
            Some(1.0),
        );
        assert_eq!(o.status, Status::Pending);
    }
}
