//! The prediction model: when (and with which error) each side should detect a fault, from the
//! kernel's rules in physics.md. Pure code: no privileges, no clock.

use serde::Serialize;

use crate::scenario::{Scenario, Side};

/// Whose TCP stack the prediction is for. Only Linux is measured here; the others are
/// predicted from their documentation (physics.md, "Other stacks").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Os {
    Linux,
    /// Vista and later: SIO_KEEPALIVE_VALS in ms, 10 probes.
    Windows,
    /// Before Vista: 5 probes.
    WindowsLegacy,
    /// macOS/BSD: default count 8.
    Macos,
}

/// When a side should notice a fault, measured from the moment it is injected.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// [earliest, latest] in ms after fault-injected; None when the side never notices.
    pub window_ms: Option<(f64, f64)>,
    /// The error the side sees: EOF, ETIMEDOUT, ECONNRESET, HEARTBEAT, ...; None when never.
    pub error: Option<String>,
    /// What fires: eof, reset, keepalive, user-timeout, retransmission-timeout, app-heartbeat,
    /// icmp, or "none".
    pub mechanism: String,
    /// One line on why, for people.
    pub why: String,
}

/// Predicts how `side` detects fault number `fault` of `scenario` on `os`.
pub fn predict(scenario: &Scenario, fault: usize, side: Side, os: Os) -> Prediction {
    let _ = (scenario, fault, side, os);
    todo!("model")
}
