//! Expectations judged against a record's events, while it grows and when the run is over.

use crate::analysis;
use crate::duration::{Placement, Window};
use crate::record::Event;
pub use crate::record::{Outcome, Status, Verdict};
use crate::scenario::{Check, Expectation, Scenario};

/// Judges every expectation. `now_ms` is the current time while the run goes on, `None` once
/// it is over (then nothing stays pending).
pub fn judge(scenario: &Scenario, events: &[Event], now_ms: Option<f64>) -> Vec<Outcome> {
    scenario
        .expectations
        .iter()
        .map(|e| judge_one(e, events, now_ms))
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

/// A latency in scenario syntax: seconds to the millisecond, or milliseconds to the
/// microsecond below one second.
fn secs(ms: f64) -> String {
    if ms.abs() < 1000.0 {
        format!("{ms:.3}ms")
    } else {
        format!("{:.3}s", ms / 1000.0)
    }
}

fn judge_one(exp: &Expectation, events: &[Event], now_ms: Option<f64>) -> Outcome {
    let side = exp.side;
    let head = format!("{{ side = \"{side}\", fault = \"{}\", ", exp.fault);
    let outcome = |status: Status, actual: String, reason: String| Outcome {
        expected: exp.to_string(),
        actual: format!("{head}{actual} }}"),
        passed: status == Status::Passed,
        status,
        reason,
    };
    // Nothing is pending once the run is over.
    let pending_or = |status: Status| {
        if now_ms.is_some() {
            Status::Pending
        } else {
            status
        }
    };
    let Some(times) = analysis::fault_times(events, &exp.fault) else {
        return outcome(
            pending_or(Status::Failed),
            "injected = false".into(),
            "the fault was never injected".into(),
        );
    };
    let (window, reference_ms, found, what) = match &exp.check {
        Check::Detects { window, .. } => (
            *window,
            Some(times.injected_ms),
            analysis::detection(events, side, &exp.fault),
            "detects",
        ),
        Check::Reconnects { window } => (
            *window,
            times.healed_ms,
            analysis::reconnect(events, side, &exp.fault).map(|ms| (ms, String::new())),
            "reconnects",
        ),
    };
    let Some(reference_ms) = reference_ms else {
        return outcome(
            pending_or(Status::Failed),
            "healed = false".into(),
            "the fault was never healed".into(),
        );
    };
    match found {
        Some((latency, error)) => {
            let mut actual = format!("{what} = \"{}\"", secs(latency));
            if !error.is_empty() {
                actual += &format!(", error = \"{error}\"");
            }
            let reason = match window.place(latency) {
                Placement::TooEarly if window == Window::Never => {
                    format!("{side} {what} after {}, expected never", secs(latency))
                }
                Placement::TooEarly => format!("{side} {what} too early, after {}", secs(latency)),
                Placement::TooLate => format!("{side} {what} too late, after {}", secs(latency)),
                Placement::Inside => match &exp.check {
                    Check::Detects {
                        error: Some(want), ..
                    } if *want != error => {
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
            outcome(status, actual, reason)
        }
        None => {
            let actual = format!("{what} = \"never\"");
            if window == Window::Never {
                return outcome(pending_or(Status::Passed), actual, String::new());
            }
            let past_deadline = match (now_ms, window.deadline()) {
                (None, _) => true,
                (Some(now), Some(d)) => now - reference_ms > d.as_millis() as f64,
                (Some(_), None) => false,
            };
            let status = if past_deadline {
                Status::Failed
            } else {
                Status::Pending
            };
            let reason = match window.deadline() {
                Some(d) => format!("{side} did not {} within {d}", &what[..what.len() - 1]),
                None => format!("{side} never {what}"),
            };
            outcome(status, actual, reason)
        }
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
        assert!(!o.passed && o.reason.contains("too late"), "{o:?}");
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
    fn missing_detection_is_pending_until_the_deadline_then_fails() {
        let exp = "[[expect]]\nside = \"server\"\ndetects = \"9.8s..15s\"";
        let ev = events();
        assert_eq!(one(exp, &ev, Some(10_000.0)).status, Status::Pending);
        assert_eq!(one(exp, &ev, Some(17_006.0)).status, Status::Failed);
        let o = one(exp, &ev, None);
        assert_eq!(o.status, Status::Failed);
        assert!(o.actual.contains("detects = \"never\""), "{o:?}");
        let never = "[[expect]]\nside = \"server\"\ndetects = \"never\"";
        assert_eq!(one(never, &ev, Some(20_000.0)).status, Status::Pending);
        assert_eq!(one(never, &ev, None).status, Status::Passed);
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
