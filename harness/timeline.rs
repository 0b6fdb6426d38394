//! The timeline of a run: events on one clock, the summary derived from them, and the JSON
//! document users and CI parse (see the timeline contract in architecture.md).

use serde::Serialize;
use serde_json::{Map, Value};

use crate::scenario::{Fault, Scenario, Side};
use crate::verdict::Verdict;

/// Bumped whenever the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 1;

/// Who recorded an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Runner,
    Client,
    Server,
    Wire,
    Observer,
}

impl From<Side> for Source {
    fn from(side: Side) -> Self {
        match side {
            Side::Client => Source::Client,
            Side::Server => Source::Server,
        }
    }
}

/// One thing that happened, `t_ms` after the lab came up.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Event {
    pub t_ms: f64,
    pub source: Source,
    pub kind: String,
    #[serde(flatten)]
    pub fields: Map<String, Value>,
}

impl Event {
    pub fn new(t_ms: f64, source: Source, kind: &str) -> Self {
        Event {
            t_ms,
            source,
            kind: kind.to_owned(),
            fields: Map::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.fields.insert(key.to_owned(), value.into());
        self
    }

    pub fn str_field(&self, key: &str) -> Option<&str> {
        self.fields.get(key).and_then(Value::as_str)
    }

    fn is_fault(&self, kind: &str, id: &str) -> bool {
        self.source == Source::Runner && self.kind == kind && self.str_field("fault") == Some(id)
    }
}

/// The moments a fault took and lost effect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultTimes {
    /// When the fault was in effect.
    pub injected_ms: f64,
    /// When its injection started (injected_ms minus the time injecting took).
    pub started_ms: f64,
    pub healed_ms: Option<f64>,
}

/// When `fault` was injected and healed, if it was.
pub fn fault_times(events: &[Event], fault: &str) -> Option<FaultTimes> {
    let inj = events
        .iter()
        .find(|e| e.is_fault("fault-injected", fault))?;
    let took = inj
        .fields
        .get("injection_ms")
        .and_then(Value::as_f64)
        .unwrap_or(0.0);
    let healed_ms = events
        .iter()
        .find(|e| e.is_fault("fault-healed", fault) && e.t_ms >= inj.t_ms)
        .map(|e| e.t_ms);
    Some(FaultTimes {
        injected_ms: inj.t_ms,
        started_ms: inj.t_ms - took,
        healed_ms,
    })
}

/// A side's first `peer-lost` since `fault` started to be injected and before the next fault
/// did: (latency, error). A loss belongs to the latest fault injected before it.
pub fn detection(events: &[Event], side: Side, fault: &str) -> Option<(f64, String)> {
    let times = fault_times(events, fault)?;
    let next_fault_ms = events
        .iter()
        .filter(|e| e.source == Source::Runner && e.kind == "fault-injected")
        .filter(|e| e.str_field("fault") != Some(fault))
        .map(|e| {
            e.t_ms
                - e.fields
                    .get("injection_ms")
                    .and_then(Value::as_f64)
                    .unwrap_or(0.0)
        })
        .filter(|&start| start > times.started_ms)
        .fold(f64::INFINITY, f64::min);
    events
        .iter()
        .find(|e| {
            e.source == side.into()
                && e.kind == "peer-lost"
                && e.t_ms >= times.started_ms
                && e.t_ms < next_fault_ms
        })
        .map(|e| {
            let error = e.str_field("error").unwrap_or("unknown").to_owned();
            (round_us(e.t_ms - times.injected_ms), error)
        })
}

/// A side's first connection after `fault` was healed: its latency from the heal.
/// For the client that is `connected` or `reconnected`; for the server, an accepted client.
pub fn reconnect(events: &[Event], side: Side, fault: &str) -> Option<f64> {
    let healed = fault_times(events, fault)?.healed_ms?;
    events
        .iter()
        .find(|e| {
            e.source == side.into()
                && (e.kind == "connected" || e.kind == "reconnected")
                && e.t_ms >= healed
        })
        .map(|e| round_us(e.t_ms - healed))
}

fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

/// What one side went through for one fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct SideSummary {
    /// fault-injected to peer-lost, ms.
    pub detection_ms: Option<f64>,
    pub error: Option<String>,
    /// fault-healed to connected again, ms.
    pub reconnect_ms: Option<f64>,
}

impl SideSummary {
    fn of(events: &[Event], side: Side, fault: &str) -> Self {
        let found = detection(events, side, fault);
        SideSummary {
            detection_ms: found.as_ref().map(|d| d.0),
            error: found.map(|d| d.1),
            reconnect_ms: reconnect(events, side, fault),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct FaultSummary {
    pub id: String,
    pub kind: String,
    pub injected_at_ms: Option<f64>,
    /// How long injecting took until the fault was in effect.
    pub injection_ms: Option<f64>,
    pub healed_at_ms: Option<f64>,
    pub client: SideSummary,
    pub server: SideSummary,
}

/// Per side, for the first fault (the common case), and per fault.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub client: SideSummary,
    pub server: SideSummary,
    pub faults: Vec<FaultSummary>,
}

pub fn summarize(faults: &[Fault], events: &[Event]) -> Summary {
    let faults: Vec<FaultSummary> = faults
        .iter()
        .map(|f| {
            let times = fault_times(events, &f.id);
            FaultSummary {
                id: f.id.clone(),
                kind: f.kind.as_str().to_owned(),
                injected_at_ms: times.map(|t| t.injected_ms),
                injection_ms: times.map(|t| round_us(t.injected_ms - t.started_ms)),
                healed_at_ms: times.and_then(|t| t.healed_ms),
                client: SideSummary::of(events, Side::Client, &f.id),
                server: SideSummary::of(events, Side::Server, &f.id),
            }
        })
        .collect();
    Summary {
        client: faults.first().map(|f| f.client.clone()).unwrap_or_default(),
        server: faults.first().map(|f| f.server.clone()).unwrap_or_default(),
        faults,
    }
}

/// Where a run happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Environment {
    pub kernel: String,
    pub flatline_version: String,
    /// "root" or "user-namespace".
    pub privileges: String,
}

/// The document a run writes.
#[derive(Clone, Debug, Serialize)]
pub struct Timeline {
    pub format_version: u32,
    pub scenario: Scenario,
    pub environment: Environment,
    pub events: Vec<Event>,
    pub summary: Summary,
    pub verdict: Verdict,
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn run_events() -> Vec<Event> {
        vec![
            Event::new(0.0, Source::Runner, "lab-up"),
            Event::new(5.0, Source::Client, "connected"),
            Event::new(5.2, Source::Server, "connected"),
            Event::new(2005.0, Source::Runner, "fault-injected")
                .with("fault", "f")
                .with("injection_ms", 1.5),
            Event::new(14000.25, Source::Server, "peer-lost").with("error", "ETIMEDOUT"),
            Event::new(15000.5, Source::Client, "peer-lost").with("error", "ETIMEDOUT"),
            Event::new(18000.0, Source::Runner, "fault-healed").with("fault", "f"),
            Event::new(18400.0, Source::Client, "reconnected"),
            Event::new(18400.1, Source::Server, "connected"),
        ]
    }

    #[test]
    fn detection_and_reconnect_are_measured_from_the_fault() {
        let ev = run_events();
        assert_eq!(
            detection(&ev, Side::Client, "f"),
            Some((12995.5, "ETIMEDOUT".into()))
        );
        assert_eq!(detection(&ev, Side::Server, "f").unwrap().0, 11995.25);
        assert_eq!(reconnect(&ev, Side::Client, "f"), Some(400.0));
        assert_eq!(reconnect(&ev, Side::Server, "f"), Some(400.1));
        assert_eq!(detection(&ev, Side::Client, "other"), None);
        let t = fault_times(&ev, "f").unwrap();
        assert_eq!(t.started_ms, 2003.5);
    }

    #[test]
    fn a_loss_belongs_to_the_latest_fault_before_it() {
        let mut ev = run_events();
        ev.insert(
            4,
            Event::new(9000.0, Source::Runner, "fault-injected")
                .with("fault", "g")
                .with("injection_ms", 1.0),
        );
        assert_eq!(detection(&ev, Side::Client, "f"), None);
        assert_eq!(detection(&ev, Side::Client, "g").unwrap().0, 6000.5);
    }

    #[test]
    fn losses_before_the_fault_do_not_count() {
        let mut ev = run_events();
        ev.insert(
            3,
            Event::new(1000.0, Source::Client, "peer-lost").with("error", "EOF"),
        );
        assert_eq!(detection(&ev, Side::Client, "f").unwrap().1, "ETIMEDOUT");
    }
}
