//! What a record's events mean: when each fault took effect, when each side noticed and came
//! back. Pure functions over events.

use crate::record::{Event, Kind, Source};
use crate::scenario::{Fault, Side};

/// The moments a fault took and lost effect.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FaultTimes {
    /// When the fault was in effect.
    pub injected_ms: f64,
    /// When its injection started (injected_ms minus the time injecting took).
    pub started_ms: f64,
    /// When the heal was in effect.
    pub healed_ms: Option<f64>,
    /// When the heal started (healed_ms minus the time healing took).
    pub heal_started_ms: Option<f64>,
}

/// The runner's `fault-injected` event of any fault: (fault id, when its injection started).
fn injection_start(e: &Event) -> Option<(&str, f64)> {
    match (&e.kind, e.source) {
        (Kind::FaultInjected(s), Source::Runner) => Some((&s.fault, e.t_ms - s.took_ms)),
        _ => None,
    }
}

/// When `fault` was injected and healed, if it was.
pub fn fault_times(events: &[Event], fault: &str) -> Option<FaultTimes> {
    let (inj, started_ms) = events.iter().find_map(|e| match injection_start(e) {
        Some((id, start)) if id == fault => Some((e.t_ms, start)),
        _ => None,
    })?;
    let healed = events.iter().find_map(|e| match (&e.kind, e.source) {
        (Kind::FaultHealed(s), Source::Runner) if s.fault == fault && e.t_ms >= inj => {
            Some((e.t_ms, e.t_ms - s.took_ms))
        }
        _ => None,
    });
    Some(FaultTimes {
        injected_ms: inj,
        started_ms,
        healed_ms: healed.map(|h| h.0),
        heal_started_ms: healed.map(|h| h.1),
    })
}

/// How late each step of `fault` took effect after its moment in the scenario, ms: (inject,
/// heal). The runner schedules from the client's first connection (of a pool of
/// `connections`, the last first connection: the `connections`-th `connected`), and a step
/// is in effect at its stamp. The model allows [`crate::model::INJECT_LATE_MS`]; more, and a
/// window that depends on the fault's phase against the peers' timers may not hold.
pub fn lateness(events: &[Event], fault: &Fault, connections: u32) -> Option<(f64, Option<f64>)> {
    let start = events
        .iter()
        .filter(|e| e.source == Source::Client && matches!(e.kind, Kind::Connected(_)))
        .nth(connections.max(1) as usize - 1)?
        .t_ms;
    let t = fault_times(events, &fault.id)?;
    let at = |d: crate::duration::Dur| start + d.as_millis() as f64;
    Some((
        t.injected_ms - at(fault.at),
        t.healed_ms.zip(fault.heal).map(|(h, d)| h - at(d)),
    ))
}

/// A side's first `peer-lost` since `fault` started to be injected and before the next fault
/// did: (latency, error). A loss belongs to the latest fault injected before it.
pub fn detection(events: &[Event], side: Side, fault: &str) -> Option<(f64, String)> {
    first_loss(events, side, fault).map(|(latency, e)| match &e.kind {
        Kind::PeerLost(l) => (latency, l.error.clone()),
        _ => unreachable!("first_loss returns peer-lost events"),
    })
}

/// A side's first `peer-lost` event that belongs to `fault` (see [`detection`]), with its
/// latency from the injection.
pub fn first_loss<'a>(events: &'a [Event], side: Side, fault: &str) -> Option<(f64, &'a Event)> {
    let times = fault_times(events, fault)?;
    let next_fault_ms = next_fault_start(events, fault, times.started_ms);
    events
        .iter()
        .find(|e| {
            e.source == side.into()
                && matches!(e.kind, Kind::PeerLost(_))
                && e.t_ms >= times.started_ms
                && e.t_ms < next_fault_ms
        })
        .map(|e| (round_us(e.t_ms - times.injected_ms), e))
}

/// When the next other fault after `fault` (whose injection started at `started_ms`) started
/// to be injected; infinity if none did.
pub fn next_fault_start(events: &[Event], fault: &str, started_ms: f64) -> f64 {
    events
        .iter()
        .filter_map(injection_start)
        .filter(|&(id, start)| id != fault && start > started_ms)
        .map(|(_, start)| start)
        .fold(f64::INFINITY, f64::min)
}

/// A side's first connection since `fault` started to be healed: its latency from the heal's
/// stamp. For the client that is `connected` or `reconnected`; for the server, an accepted
/// client. A script heal is stamped when the script exits, a little after its rules are gone,
/// so a client that retries at that moment can be back a fraction of a millisecond before the
/// stamp (a small negative latency), and it still counts.
pub fn reconnect(events: &[Event], side: Side, fault: &str) -> Option<f64> {
    let times = fault_times(events, fault)?;
    let (healed, started) = match (times.healed_ms, times.heal_started_ms) {
        (Some(h), Some(s)) => (h, s),
        // A failover is its own heal: the service is on the standby from the moment it is
        // in effect, so coming back is measured from the injection.
        _ if is_failover(events, fault) => (times.injected_ms, times.started_ms),
        _ => return None,
    };
    events
        .iter()
        .find(|e| e.source == side.into() && e.kind.is_connect() && e.t_ms >= started)
        .map(|e| round_us(e.t_ms - healed))
}

/// The moment coming back after `fault` is measured from: its heal, or for a failover (its
/// own heal) its injection.
pub fn back_from_ms(events: &[Event], fault: &str, times: FaultTimes) -> Option<f64> {
    times
        .healed_ms
        .or_else(|| is_failover(events, fault).then_some(times.injected_ms))
}

/// Whether `fault` was a failover, as its injection recorded it.
pub fn is_failover(events: &[Event], fault: &str) -> bool {
    events.iter().any(|e| match (&e.kind, e.source) {
        (Kind::FaultInjected(s), Source::Runner) => {
            s.fault == fault && s.fault_kind == crate::scenario::FaultKind::Failover
        }
        _ => false,
    })
}

/// A time in ms rounded to the microsecond, as records keep times.
pub(crate) fn round_us(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::record::{Connected, Ends, FaultStep, LossMechanism, PeerLost};
    use crate::scenario::FaultKind;

    pub(crate) fn step(fault: &str, took_ms: f64) -> FaultStep {
        FaultStep {
            fault: fault.into(),
            fault_kind: FaultKind::FirewallDrop,
            mechanism: String::new(),
            took_ms,
            packets_matched: None,
        }
    }

    pub(crate) fn injected(t: f64, fault: &str, took_ms: f64) -> Event {
        Event::new(t, Source::Runner, Kind::FaultInjected(step(fault, took_ms)))
    }

    pub(crate) fn healed(t: f64, fault: &str) -> Event {
        Event::new(t, Source::Runner, Kind::FaultHealed(step(fault, 2.0)))
    }

    pub(crate) fn lost(t: f64, side: Side, error: &str) -> Event {
        Event::new(
            t,
            side.into(),
            Kind::PeerLost(PeerLost {
                ends: Ends::default(),
                error: error.into(),
                mechanism: LossMechanism::Other,
                tcp_info: None,
                records_sent: 0,
                records_received: 0,
                heartbeats_sent: 0,
                heartbeats_received: 0,
            }),
        )
    }

    pub(crate) fn connected(t: f64, side: Side, again: bool) -> Event {
        let c = Connected {
            ends: Ends::default(),
            attempts: None,
            slot: None,
            host: None,
        };
        let kind = if again {
            Kind::Reconnected(c)
        } else {
            Kind::Connected(c)
        };
        Event::new(t, side.into(), kind)
    }

    pub(crate) fn run_events() -> Vec<Event> {
        vec![
            Event::new(0.0, Source::Runner, Kind::LabUp { setup_ms: 1.0 }),
            connected(5.0, Side::Client, false),
            connected(5.2, Side::Server, false),
            injected(2005.0, "f", 1.5),
            lost(14000.25, Side::Server, "ETIMEDOUT"),
            lost(15000.5, Side::Client, "ETIMEDOUT"),
            healed(18000.0, "f"),
            connected(18400.0, Side::Client, true),
            connected(18400.1, Side::Server, false),
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
        ev.insert(4, injected(9000.0, "g", 1.0));
        assert_eq!(detection(&ev, Side::Client, "f"), None);
        assert_eq!(detection(&ev, Side::Client, "g").unwrap().0, 6000.5);
    }

    #[test]
    fn a_reconnect_while_the_heal_was_carried_out_counts() {
        // The heal (2 ms) is stamped at 18000 ms: a connect at 17999.5 came through the
        // opened path, one at 17997 did not exist before the heal started.
        let mut ev = run_events();
        ev.insert(6, connected(17999.5, Side::Client, true));
        assert_eq!(reconnect(&ev, Side::Client, "f"), Some(-0.5));
        let mut ev = run_events();
        ev.insert(6, connected(17997.0, Side::Client, true));
        assert_eq!(reconnect(&ev, Side::Client, "f"), Some(400.0));
    }

    #[test]
    fn losses_before_the_fault_do_not_count() {
        let mut ev = run_events();
        ev.insert(3, lost(1000.0, Side::Client, "EOF"));
        assert_eq!(detection(&ev, Side::Client, "f").unwrap().1, "ETIMEDOUT");
    }
}
