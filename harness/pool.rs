//! Pools of connections: each connection's detection and return, their distributions, and the
//! client's reconnect storm. Pure functions over a record's events.

use std::collections::{BTreeMap, BTreeSet};

use crate::analysis::{fault_times, next_fault_start, round_us};
use crate::record::{Distribution, Event, Kind, PoolSummary, Source, Storm};
use crate::scenario::{Pick, Side};

/// Whether the events come from a pool: the reference client's connections carry slots, or
/// a program (black box) held more than one connection when a fault started.
pub fn is_pool(events: &[Event]) -> bool {
    let slots = events.iter().any(|e| {
        e.source == Source::Client
            && matches!(&e.kind, Kind::Connected(c) | Kind::Reconnected(c) if c.slot.is_some())
    });
    slots
        || [Side::Client, Side::Server]
            .into_iter()
            .any(|side| program_pool(events, side))
}

/// Whether `side` is a program (the observer reported its connections) that held more than
/// one connection open when some fault started to be injected.
pub fn program_pool(events: &[Event], side: Side) -> bool {
    let observed = events
        .iter()
        .any(|e| e.source == side.into() && matches!(e.kind, Kind::ConnectionObserved(_)));
    observed
        && events
            .iter()
            .filter_map(|e| match (&e.kind, e.source) {
                (Kind::FaultInjected(s), Source::Runner) => Some(e.t_ms - s.took_ms),
                _ => None,
            })
            .any(|started| open_at(events, side, started).len() > 1)
}

/// Connections of `side` open at `t_ms`: established before it and neither lost nor let go
/// of (a program's close).
fn open_at(events: &[Event], side: Side, t_ms: f64) -> BTreeSet<u64> {
    let mut open = BTreeSet::new();
    for e in events
        .iter()
        .filter(|e| e.source == side.into() && e.t_ms < t_ms)
    {
        let Some(conn) = e.conn else { continue };
        match e.kind {
            Kind::Connected(_) | Kind::Reconnected(_) => {
                open.insert(conn);
            }
            Kind::PeerLost(_) | Kind::ProgramClosed { .. } => {
                open.remove(&conn);
            }
            _ => {}
        }
    }
    open
}

/// One side's connections through one fault.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Losses {
    /// Connections open when the fault started to take effect.
    pub cut: usize,
    /// Each cut connection's first loss: (ms after the injection, error), in time order.
    pub found: Vec<(f64, String)>,
    /// When the last of them noticed (t_ms).
    pub last_at_ms: Option<f64>,
    /// Losses of connections the fault did not cut, by error.
    pub collateral: BTreeMap<String, u64>,
}

/// How one side's connections noticed `fault`: a loss belongs to the latest fault injected
/// before it (as for one connection, [`crate::analysis::detection`]).
pub fn losses(events: &[Event], side: Side, fault: &str) -> Option<Losses> {
    let times = fault_times(events, fault)?;
    let end = next_fault_start(events, fault, times.started_ms);
    let open = open_at(events, side, times.started_ms);
    let mut out = Losses {
        cut: open.len(),
        ..Losses::default()
    };
    let mut seen = BTreeSet::new();
    let let_go = closed_by_other_side(events, side);
    for e in events
        .iter()
        .filter(|e| e.source == side.into() && e.t_ms >= times.started_ms && e.t_ms < end)
    {
        let Kind::PeerLost(lost) = &e.kind else {
            continue;
        };
        match e.conn {
            // The other side's program closed it of its own accord (or was stopped at the
            // end of the run): no damage.
            Some(c) if !open.contains(&c) && let_go.contains(&c) => {}
            Some(c) if open.contains(&c) => {
                if seen.insert(c) {
                    out.found
                        .push((round_us(e.t_ms - times.injected_ms), lost.error.clone()));
                    out.last_at_ms = Some(e.t_ms);
                }
            }
            _ => *out.collateral.entry(lost.error.clone()).or_default() += 1,
        }
    }
    Some(out)
}

/// Connections the program on the other side of `side` let go of without trouble: the
/// observer saw its end, and neither its kernel nor the program lost it. It closed it of its
/// own accord, or was stopped when the run ended (its end then goes unobserved).
fn closed_by_other_side(events: &[Event], side: Side) -> BTreeSet<u64> {
    let other: Source = side.other().into();
    let of = |kind: fn(&Kind) -> bool| -> BTreeSet<u64> {
        events
            .iter()
            .filter(|e| e.source == other && kind(&e.kind))
            .filter_map(|e| e.conn)
            .collect()
    };
    let observed = of(|k| matches!(k, Kind::ConnectionObserved(_)));
    let trouble = of(|k| {
        matches!(
            k,
            Kind::PeerLost(_) | Kind::KernelGaveUp { .. } | Kind::FinReceived { .. }
        )
    });
    observed.difference(&trouble).copied().collect()
}

/// How one side's connections came back after `fault` was healed: (connections cut, each
/// return in ms after the heal, in time order). The client's returns are counted per slot, the
/// server's per accepted connection.
pub fn returns(events: &[Event], side: Side, fault: &str) -> Option<(usize, Vec<f64>)> {
    let times = fault_times(events, fault)?;
    let (healed, heal_started) = match (times.healed_ms, times.heal_started_ms) {
        (Some(h), Some(s)) => (h, s),
        // A failover is its own heal (analysis::reconnect).
        _ if crate::analysis::is_failover(events, fault) => (times.injected_ms, times.started_ms),
        _ => return None,
    };
    let end = next_fault_start(events, fault, times.started_ms);
    let cut = open_at(events, side, times.started_ms).len();
    let mut seen = BTreeSet::new();
    let mut back = Vec::new();
    for e in events.iter().filter(|e| {
        e.source == side.into() && e.kind.is_connect() && e.t_ms >= heal_started && e.t_ms < end
    }) {
        let key = match &e.kind {
            Kind::Connected(c) | Kind::Reconnected(c) => c.slot.map(u64::from).or(e.conn),
            _ => None,
        };
        let fresh = match key {
            Some(k) => seen.insert(k),
            None => true,
        };
        if fresh {
            back.push(round_us(e.t_ms - healed));
        }
    }
    Some((cut, back))
}

/// The nearest rank of quantile `q` among `n` (1-based, at least 1).
fn rank(q: f64, n: usize) -> usize {
    ((q * n as f64).ceil() as usize).clamp(1, n.max(1))
}

/// Nearest-rank quantiles of latencies in ascending order.
pub fn distribution(sorted: &[f64]) -> Option<Distribution> {
    let at = |q: f64| sorted[rank(q, sorted.len()) - 1];
    Some(Distribution {
        min_ms: *sorted.first()?,
        p50_ms: at(0.5),
        p90_ms: at(0.9),
        p99_ms: at(0.99),
        max_ms: *sorted.last()?,
    })
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

/// The connection an expectation judges among `n` connections: its rank (1-based).
fn pick_rank(pick: Pick, n: usize) -> usize {
    match pick {
        Pick::All => n.max(1),
        Pick::Any => 1,
        Pick::Quantile(q) => rank(q, n),
    }
}

/// The latency (and error) an expectation with `pick` judges, once enough of the `n`
/// connections are found; `found` in time order. For `all`, the error is the one every
/// connection saw, or a count of each when they differ.
pub fn pick(pick: Pick, n: usize, found: &[(f64, String)]) -> Option<(f64, String)> {
    if n == 0 {
        return None;
    }
    let r = pick_rank(pick, n);
    let mut by_latency: Vec<&(f64, String)> = found.iter().collect();
    by_latency.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (latency, error) = by_latency.get(r - 1)?;
    let mut errors: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, e) in found {
        *errors.entry(e.as_str()).or_default() += 1;
    }
    let error = if pick == Pick::All && errors.len() > 1 {
        errors
            .iter()
            .map(|(e, n)| format!("{e} x{n}"))
            .collect::<Vec<_>>()
            .join(", ")
    } else {
        error.clone()
    };
    Some((*latency, error))
}

/// A side's pool summary for one fault.
pub fn summary(events: &[Event], side: Side, fault: &str) -> Option<PoolSummary> {
    let l = losses(events, side, fault)?;
    let detected = sorted(l.found.iter().map(|f| f.0).collect());
    let mut errors = BTreeMap::new();
    for (_, e) in &l.found {
        *errors.entry(e.clone()).or_default() += 1;
    }
    let (cut, back) = returns(events, side, fault).unwrap_or((l.cut, Vec::new()));
    let back = sorted(back);
    let needed = |q: f64| {
        (cut > 0)
            .then(|| back.get(rank(q, cut) - 1).copied())
            .flatten()
    };
    Some(PoolSummary {
        connections: l.cut as u64,
        detected: detected.len() as u64,
        never_detected: l.cut.saturating_sub(detected.len()) as u64,
        detection: distribution(&detected),
        last_detected_at_ms: l.last_at_ms,
        errors,
        reconnected: back.len() as u64,
        reconnect: distribution(&back),
        back_95_ms: needed(0.95),
        all_back_ms: needed(1.0),
        collateral: l.collateral,
    })
}

/// ListenOverflows and ListenDrops from the TcpExt lines of /proc/net/netstat (a line of
/// names, then a line of values).
pub fn listen_counters(netstat: &str) -> Option<(u64, u64)> {
    let mut tcp_ext = netstat.lines().filter(|l| l.starts_with("TcpExt:"));
    let names = tcp_ext.next()?.split_whitespace();
    let values = tcp_ext.next()?.split_whitespace();
    let mut overflows = None;
    let mut drops = None;
    for (name, value) in names.zip(values).skip(1) {
        match name {
            "ListenOverflows" => overflows = value.parse().ok(),
            "ListenDrops" => drops = value.parse().ok(),
            _ => {}
        }
    }
    Some((overflows?, drops?))
}

/// Most of `times` (ascending) within any window of `width_ms`.
fn busiest(times: &[f64], width_ms: f64) -> u64 {
    let (mut best, mut lo) = (0, 0);
    for hi in 0..times.len() {
        while times[hi] - times[lo] >= width_ms {
            lo += 1;
        }
        best = best.max(hi + 1 - lo);
    }
    best as u64
}

/// The client's reconnect storm around `fault`: from its injection until the next fault.
pub fn storm(events: &[Event], fault: &str) -> Option<Storm> {
    let times = fault_times(events, fault)?;
    let end = next_fault_start(events, fault, times.started_ms);
    let during = || {
        events.iter().filter(move |e| {
            e.source == Source::Client && e.t_ms >= times.started_ms && e.t_ms < end
        })
    };
    let attempts = sorted(
        during()
            .filter(|e| matches!(e.kind, Kind::ReconnectAttempt { .. }))
            .map(|e| e.t_ms)
            .collect(),
    );
    // The storm's rates are those of the return: from the heal (if healed).
    let from = times.heal_started_ms.unwrap_or(f64::NEG_INFINITY);
    let returning: Vec<f64> = attempts.iter().copied().filter(|&t| t >= from).collect();
    let mut failed = BTreeMap::new();
    for e in during() {
        if let Kind::ConnectFailed { error, .. } = &e.kind {
            *failed.entry(error.clone()).or_default() += 1;
        }
    }
    let counters: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e.kind {
            Kind::ListenCounters {
                listen_overflows,
                listen_drops,
            } => Some((listen_overflows, listen_drops)),
            _ => None,
        })
        .collect();
    let grew = |f: fn(&(u64, u64)) -> u64| match (counters.first(), counters.last()) {
        (Some(a), Some(b)) if counters.len() > 1 => Some(f(b).saturating_sub(f(a))),
        _ => None,
    };
    Some(Storm {
        attempts: attempts.len() as u64,
        peak_attempts_per_s: busiest(&returning, 1000.0),
        busiest_100ms: busiest(&returning, 100.0),
        failed,
        listen_overflows: grew(|c| c.0),
        listen_drops: grew(|c| c.1),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analysis::tests::{healed, injected};
    use crate::record::{Connected, Ends, LossMechanism, PeerLost};

    fn at(t: f64, source: Source, conn: u64, kind: Kind) -> Event {
        let mut e = Event::new(t, source, kind);
        e.conn = Some(conn);
        e
    }

    fn ends() -> Ends {
        Ends {
            local: "a".into(),
            peer: "b".into(),
        }
    }

    fn connected(slot: u32) -> Kind {
        Kind::Connected(Connected {
            ends: ends(),
            attempts: Some(1),
            slot: Some(slot),
            host: None,
        })
    }

    fn reconnected(slot: u32) -> Kind {
        Kind::Reconnected(Connected {
            ends: ends(),
            attempts: Some(2),
            slot: Some(slot),
            host: None,
        })
    }

    /// A black-box program's connection as the observer first saw it.
    fn observed() -> Kind {
        Kind::ConnectionObserved(crate::record::ConnectionObserved {
            ends: ends(),
            pid: 3,
            keepalive_armed: true,
            keepalive_in_ms: None,
            options: None,
            via: "trace".into(),
        })
    }

    fn lost(error: &str) -> Kind {
        Kind::PeerLost(PeerLost {
            ends: ends(),
            error: error.into(),
            mechanism: LossMechanism::Keepalive,
            tcp_info: None,
            records_sent: 0,
            records_received: 0,
            heartbeats_sent: 0,
            heartbeats_received: 0,
        })
    }

    fn attempt(t: f64, slot: u32) -> Event {
        Event::new(
            t,
            Source::Client,
            Kind::ReconnectAttempt {
                attempt: 1,
                slot: Some(slot),
            },
        )
    }

    fn failed(t: f64, error: &str) -> Event {
        Event::new(
            t,
            Source::Client,
            Kind::ConnectFailed {
                attempt: 1,
                error: error.into(),
                slot: Some(0),
            },
        )
    }

    /// Four connections; a fault at 1000 ms cuts them; three notice, one never does; a fifth
    /// opened during the fault dies of it; after the heal at 5000 ms three slots come back.
    fn pool() -> Vec<Event> {
        let c = Source::Client;
        let mut ev: Vec<Event> = (1..=4)
            .map(|i| at(10.0 * i as f64, c, i, connected(i as u32 - 1)))
            .collect();
        ev.push(injected(1000.0, "drop", 0.0));
        ev.push(at(4000.0, c, 2, lost("ETIMEDOUT")));
        ev.push(at(3000.0, c, 1, lost("ETIMEDOUT")));
        ev.push(at(4500.0, c, 3, lost("ECONNRESET")));
        ev.push(at(4600.0, c, 3, lost("ECONNRESET")));
        ev.push(attempt(4010.0, 1));
        ev.push(attempt(4020.0, 0));
        ev.push(attempt(4700.0, 2));
        ev.push(failed(4100.0, "ECONNREFUSED"));
        ev.push(failed(4200.0, "ETIMEDOUT"));
        ev.push(at(4800.0, c, 9, reconnected(2)));
        ev.push(at(4900.0, c, 9, lost("ECONNRESET")));
        ev.push(healed(5000.0, "drop"));
        ev.push(attempt(5010.0, 0));
        ev.push(attempt(5050.0, 1));
        ev.push(attempt(5900.0, 2));
        ev.push(at(5100.0, c, 5, reconnected(0)));
        ev.push(at(5300.0, c, 6, reconnected(1)));
        ev.push(at(5400.0, c, 7, reconnected(0)));
        ev.push(at(5900.0, c, 8, reconnected(2)));
        ev.push(Event::new(
            0.0,
            Source::Runner,
            Kind::ListenCounters {
                listen_overflows: 5,
                listen_drops: 7,
            },
        ));
        ev.push(Event::new(
            9000.0,
            Source::Runner,
            Kind::ListenCounters {
                listen_overflows: 8,
                listen_drops: 17,
            },
        ));
        ev.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        ev
    }

    #[test]
    fn each_cut_connection_counts_once_and_the_rest_is_collateral() {
        let ev = pool();
        assert!(is_pool(&ev));
        let l = losses(&ev, Side::Client, "drop").unwrap();
        assert_eq!(l.cut, 4);
        let found: Vec<f64> = l.found.iter().map(|f| f.0).collect();
        assert_eq!(found, [2000.0, 3000.0, 3500.0]);
        assert_eq!(l.last_at_ms, Some(4500.0));
        assert_eq!(l.collateral, BTreeMap::from([("ECONNRESET".into(), 1)]));
        let s = summary(&ev, Side::Client, "drop").unwrap();
        assert_eq!((s.connections, s.detected, s.never_detected), (4, 3, 1));
        let d = s.detection.unwrap();
        assert_eq!((d.min_ms, d.p50_ms, d.max_ms), (2000.0, 3000.0, 3500.0));
        assert_eq!(s.errors["ETIMEDOUT"], 2);
        // Slot 0 twice after the heal counts once: three of four slots back.
        assert_eq!(s.reconnected, 3);
        assert_eq!(s.reconnect.unwrap().max_ms, 900.0);
        // 95 % of 4 is all 4: neither is reached.
        assert_eq!((s.back_95_ms, s.all_back_ms), (None, None));
    }

    #[test]
    fn a_close_by_the_other_sides_program_is_not_collateral() {
        let mut ev = pool();
        // The server's end of connection 9 (opened during the fault, then lost) and of a new
        // connection 10 that the client's program held until the run ended.
        let observed = |conn| at(7000.0, Source::Client, conn, observed());
        ev.push(at(4950.0, Source::Server, 9, lost("ECONNRESET")));
        ev.push(observed(9));
        ev.push(observed(10));
        ev.push(at(8000.5, Source::Server, 10, lost("EOF")));
        ev.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
        let l = losses(&ev, Side::Server, "drop").unwrap();
        // Connection 9 the client lost too: collateral; 10 it let go of untroubled: none.
        assert_eq!(l.collateral, BTreeMap::from([("ECONNRESET".into(), 1)]));
    }

    #[test]
    fn picks_all_any_and_quantiles_by_nearest_rank() {
        let found: Vec<(f64, String)> = (1..=100)
            .rev()
            .map(|i| (f64::from(i), "ETIMEDOUT".to_string()))
            .collect();
        let p = |k, n| pick(k, n, &found).map(|x| x.0);
        assert_eq!(p(Pick::All, 100), Some(100.0));
        assert_eq!(p(Pick::Any, 100), Some(1.0));
        assert_eq!(p(Pick::Quantile(0.99), 100), Some(99.0));
        assert_eq!(p(Pick::Quantile(0.5), 100), Some(50.0));
        // Not all of 101 were found: "all" is not decided, p99 (rank 100) is.
        assert_eq!(p(Pick::All, 101), None);
        assert_eq!(p(Pick::Quantile(0.99), 101), Some(100.0));
        assert_eq!(p(Pick::All, 0), None);
        let mixed = [(1.0, "EOF".to_string()), (2.0, "ETIMEDOUT".to_string())];
        assert_eq!(
            pick(Pick::All, 2, &mixed).unwrap().1,
            "EOF x1, ETIMEDOUT x1"
        );
        assert_eq!(pick(Pick::Any, 2, &mixed).unwrap().1, "EOF");
    }

    #[test]
    fn a_program_holding_several_connections_at_a_fault_is_a_pool() {
        let observed = |t: f64, conn: u64| at(t, Source::Client, conn, observed());
        let program = |conns: u64| {
            let mut ev = Vec::new();
            for c in 1..=conns {
                let mut up = connected(0);
                if let Kind::Connected(x) = &mut up {
                    x.slot = None;
                }
                ev.push(at(c as f64, Source::Client, c, up));
                ev.push(observed(c as f64, c));
            }
            ev.push(injected(1000.0, "drop", 0.0));
            ev
        };
        assert!(is_pool(&program(2)));
        assert!(program_pool(&program(2), Side::Client));
        assert!(!program_pool(&program(2), Side::Server));
        // One connection is not a pool; nor is a program that let go of the other first.
        assert!(!is_pool(&program(1)));
        let mut closed = program(2);
        closed.insert(
            4,
            at(
                3.0,
                Source::Client,
                1,
                Kind::ProgramClosed {
                    ends: ends(),
                    via: "trace".into(),
                    dump_lag_ms: None,
                },
            ),
        );
        assert!(!is_pool(&closed));
        // The reference peers' single connection, restarted, is no pool either (no
        // observations).
        let reference: Vec<Event> = program(2)
            .into_iter()
            .filter(|e| !matches!(e.kind, Kind::ConnectionObserved(_)))
            .collect();
        assert!(!is_pool(&reference));
    }

    #[test]
    fn the_storm_counts_attempts_failures_and_listen_counters() {
        let s = storm(&pool(), "drop").unwrap();
        assert_eq!(s.attempts, 6);
        // Rates count from the heal at 5000 ms: 5010, 5050 and 5900.
        assert_eq!(s.peak_attempts_per_s, 3);
        assert_eq!(s.busiest_100ms, 2);
        assert_eq!(
            s.failed,
            BTreeMap::from([("ECONNREFUSED".into(), 1), ("ETIMEDOUT".into(), 1)])
        );
        assert_eq!((s.listen_overflows, s.listen_drops), (Some(3), Some(10)));
    }

    fn judge(expect: &str, now: Option<f64>) -> crate::record::Outcome {
        let text = format!(
            "name = \"t\"\nend = \"30s\"\n[[fault]]\nid = \"drop\"\nkind = \"firewall-drop\"\n\
             at = \"1s\"\nheal = \"5s\"\n[[expect]]\nside = \"client\"\n{expect}"
        );
        let s = crate::scenario::parse(std::path::Path::new("t.toml"), &text).unwrap();
        crate::verdict::judge(&s, &pool(), now).remove(0)
    }

    #[test]
    fn expectations_judge_all_any_or_a_quantile_of_the_pool() {
        // All (the default): one of four never noticed.
        let o = judge("detects = \"..5s\"", None);
        assert!(!o.passed, "{o:?}");
        assert!(
            o.reason.starts_with("1 of 4 connections did not detect"),
            "{o:?}"
        );
        assert!(
            o.actual
                .contains("connections = \"all\" } (3 of 4 connections)"),
            "{o:?}"
        );
        assert_eq!(
            judge("detects = \"..5s\"", Some(9000.0)).status,
            crate::record::Status::Pending
        );
        let o = judge("detects = \"..2.5s\"\nconnections = \"any\"", None);
        assert!(o.passed, "{o:?}");
        let o = judge("detects = \"2.9s..3.1s\"\nquantile = 0.5", None);
        assert!(o.passed, "{o:?}");
        assert!(o.expected.contains("quantile = 0.5"), "{o:?}");
        assert!(o.actual.contains("detects = \"3.000s\""), "{o:?}");
        let o = judge("detects = \"..2.5s\"\nquantile = 0.5", None);
        assert!(
            !o.passed && o.reason.contains("later than expected"),
            "{o:?}"
        );
        // Three of four slots back, the third after 900 ms.
        assert!(judge("reconnects = \"..1s\"\nquantile = 0.75", None).passed);
        assert!(!judge("reconnects = \"..1s\"", None).passed);
    }

    #[test]
    fn reads_listen_counters_from_netstat() {
        let text = "TcpExt: SyncookiesSent ListenOverflows ListenDrops TCPHPHits\n\
                    TcpExt: 0 12 15 300\n\
                    IpExt: InNoRoutes\nIpExt: 0\n";
        assert_eq!(listen_counters(text), Some((12, 15)));
        assert_eq!(listen_counters("TcpExt: ListenDrops\nTcpExt: 1\n"), None);
        assert_eq!(listen_counters(""), None);
    }

    #[test]
    fn quantiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=10).map(f64::from).collect();
        let d = distribution(&v).unwrap();
        assert_eq!((d.p50_ms, d.p90_ms, d.p99_ms), (5.0, 9.0, 10.0));
        assert_eq!(distribution(&[]), None);
        assert_eq!(busiest(&[0.0, 50.0, 99.9, 100.0, 150.0], 100.0), 3);
        assert_eq!(busiest(&[], 100.0), 0);
    }
}
