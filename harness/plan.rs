//! The plan: a scenario resolved into what the executor does — each peer's settings, the
//! fault steps in time order, and every expectation's window (predicted ones from the model).
//! Pure: the runner executes a plan and decides nothing of its own.

use serde::{Deserialize, Serialize};

use crate::duration::{Dur, Window};
use crate::model;
use crate::scenario::{Check, FaultKind, Heartbeat, PeerSettings, Scenario, Side, Traffic};

/// Injecting or healing a fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    Inject,
    Heal,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Inject => "inject",
            Action::Heal => "heal",
        }
    }
}

/// One timed step: `action` of fault number `fault`, `at` after the client first connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    pub at: Dur,
    pub fault: usize,
    pub action: Action,
}

/// Everything one reference peer is started with: the one form of a peer's settings, handed
/// to `flatline peer` as it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerPlan {
    pub side: Side,
    pub settings: PeerSettings,
    pub traffic: Traffic,
    pub heartbeat: Option<Heartbeat>,
    /// Client: where to connect, when not (only) `--address` (a dns failover's list or hosts
    /// file; the runner fills it in, as it owns the file).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub targets: Option<crate::failover::Targets>,
    /// Client: when each fault is injected, in ms after its first connection (of a pool: the
    /// last one's), as the runner counts; its requests keep clear of these moments
    /// (`peer::FaultMoments`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fault_at_ms: Vec<u64>,
}

/// A scenario ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct Plan {
    /// The scenario with every predicted window resolved.
    pub scenario: Scenario,
    /// Fault steps, in time order (steps at the same time in the order written).
    pub steps: Vec<Step>,
    /// The fault that makes the wire a NAT before the peers start, if any.
    pub nat: Option<usize>,
}

impl Plan {
    /// How `side` is started.
    pub fn peer(&self, side: Side) -> PeerPlan {
        PeerPlan {
            side,
            settings: self.scenario.settings(side).clone(),
            traffic: self.scenario.traffic,
            heartbeat: self.scenario.heartbeat,
            targets: None,
            fault_at_ms: match side {
                Side::Client => self
                    .steps
                    .iter()
                    .filter(|s| s.action == Action::Inject)
                    .map(|s| s.at.as_millis())
                    .collect(),
                Side::Server => Vec::new(),
            },
        }
    }
}

/// Plans a scenario.
pub fn plan(scenario: &Scenario) -> Plan {
    let mut steps = Vec::new();
    for (i, f) in scenario.faults.iter().enumerate() {
        steps.push(Step {
            at: f.at,
            fault: i,
            action: Action::Inject,
        });
        if let Some(heal) = f.heal {
            steps.push(Step {
                at: heal,
                fault: i,
                action: Action::Heal,
            });
        }
    }
    steps.sort_by_key(|s| s.at);
    Plan {
        scenario: resolve(scenario),
        steps,
        nat: scenario
            .faults
            .iter()
            .position(|f| f.kind() == FaultKind::NatTimeout),
    }
}

/// The scenario with every `detects = "predicted"` window taken from the model, widened by
/// its tolerance; an error given in the file wins over the model's (none when the model allows
/// two).
pub fn resolve(scenario: &Scenario) -> Scenario {
    let mut out = scenario.clone();
    for e in &mut out.expectations {
        let (Some(tolerance), Check::Detects { error, .. }) = (e.predicted, &e.check) else {
            continue;
        };
        let Some(index) = scenario.faults.iter().position(|f| f.id == e.fault) else {
            continue;
        };
        let p = model::predict(scenario, index, e.side);
        let window = predicted_window(p.window_ms, tolerance);
        // When two mechanisms race inside the window (a one-way drop with a tie), either
        // error is as predicted: only the window is checked.
        let model_error = if p.alt_errors.is_empty() {
            p.error
        } else {
            None
        };
        let error = error.clone().or(model_error);
        e.check = Check::Detects { window, error };
    }
    out
}

/// A model window (ms) widened by `tolerance`, in whole milliseconds.
fn predicted_window(window_ms: Option<(f64, f64)>, tolerance: Dur) -> Window {
    let tol = tolerance.as_millis() as f64;
    match window_ms {
        None => Window::Never,
        Some((lo, hi)) => Window::Within {
            from: Some(Dur::from_millis((lo - tol).max(0.0).floor() as u64)),
            to: Some(Dur::from_millis((hi + tol).ceil() as u64)),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const TEXT: &str = r#"
name = "t"
end = "20s"

[server]
keepalive = { idle = "3s", interval = "1s", count = 10 }

[[fault]]
kind = "cable-pull"
at = "2s"
heal = "10s"

[[fault]]
kind = "firewall-drop"
at = "1s"

[[expect]]
side = "server"
detects = "predicted"
tolerance = "500ms"
"#;

    #[test]
    fn steps_are_in_time_order() {
        let s = crate::scenario::parse(Path::new("s.toml"), TEXT).unwrap();
        let p = plan(&s);
        let order: Vec<(u64, usize, Action)> = p
            .steps
            .iter()
            .map(|s| (s.at.as_millis(), s.fault, s.action))
            .collect();
        assert_eq!(
            order,
            [
                (1000, 1, Action::Inject),
                (2000, 0, Action::Inject),
                (10_000, 0, Action::Heal)
            ]
        );
        assert_eq!(
            p.peer(Side::Client).settings.reconnect_interval_ms,
            Some(500)
        );
    }

    /// The client is told when each fault is injected (not healed), counted as the runner
    /// counts; the server is told nothing.
    #[test]
    fn the_client_knows_the_injection_moments() {
        let s = crate::scenario::parse(Path::new("s.toml"), TEXT).unwrap();
        let p = plan(&s);
        assert_eq!(p.peer(Side::Client).fault_at_ms, [1000, 2000]);
        assert!(p.peer(Side::Server).fault_at_ms.is_empty());
    }

    #[test]
    fn predicted_windows_come_from_the_model() {
        let s = crate::scenario::parse(Path::new("s.toml"), TEXT).unwrap();
        // As parsed, the window is not known yet; the plan resolves it.
        assert_eq!(s.expectations[0].predicted, Some(Dur::from_millis(500)));
        let p = plan(&s);
        // Server keepalive 3s/1s/10, idle, its own cable pulled at the wire: [10 s, 13 s] plus
        // slack and a probe retried uncounted while linkwatch waits (K9a), ETIMEDOUT.
        let Check::Detects { window, error } = &p.scenario.expectations[0].check else {
            panic!()
        };
        assert_eq!(error.as_deref(), Some("ETIMEDOUT"));
        let Window::Within { from, to } = window else {
            panic!("{window}")
        };
        // 10 s, less the tolerance (500 ms) and the jiffy clock's 12 ms.
        assert_eq!(from.unwrap().as_millis(), 9488);
        assert!(
            (13_500..16_000).contains(&to.unwrap().as_millis()),
            "{window}"
        );
    }

    #[test]
    fn a_race_between_two_errors_checks_only_the_window() {
        // A one-way drop with the same settings on both sides: the client's own timeout and
        // the server's RST come together (docs/physics.md, K7).
        let text = r#"
name = "t"
end = "20s"
[server]
keepalive = { idle = "1s", interval = "1s", count = 3 }
[client]
keepalive = { idle = "1s", interval = "1s", count = 3 }
[[fault]]
kind = "firewall-drop"
direction = "to-server"
at = "2s"
[[expect]]
side = "client"
detects = "predicted"
"#;
        let s = crate::scenario::parse(Path::new("s.toml"), text).unwrap();
        let Check::Detects { window, error } = &plan(&s).scenario.expectations[0].check else {
            panic!()
        };
        assert_eq!(*error, None);
        assert!(matches!(window, Window::Within { .. }), "{window}");
    }
}
