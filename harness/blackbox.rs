//! The black-box mode's reading of a user program: what the observer's view of its
//! connections means for the record (when it noticed a loss: closed the socket or printed its
//! `lost` line; when it was back; the kernel's moment next to it), the model's prediction
//! corrected by the socket options the program really set, and the findings a person should
//! read first.

use std::collections::BTreeMap;

use crate::observer::{GaveUpReason, Observation, SocketSettings, Tuple, Via};
use crate::record::{Connected, ConnectionObserved, Ends, Event, Kind, LossMechanism, PeerLost};
use crate::side::Side;

fn ends(t: &Tuple) -> Ends {
    Ends {
        local: t.local.to_string(),
        peer: t.remote.to_string(),
    }
}

fn via(v: Via) -> String {
    match v {
        Via::Trace => "trace".into(),
        Via::Diag => "dump".into(),
    }
}

/// One connection of the program, as far as the record is concerned.
#[derive(Clone, Debug)]
struct ConnView {
    ends: Ends,
    /// The kernel gave up: the error and what it means.
    kernel: Option<(String, LossMechanism)>,
    fin: bool,
    /// A `peer-lost` was recorded for it.
    noticed: bool,
    /// When, if that notice was put down to the program's own decision (nothing from the
    /// kernel yet): a kernel report stamped no later proves otherwise.
    guessed_ns: Option<u64>,
    /// A receive of the program's returned the kernel's error for it.
    saw: bool,
    closed: bool,
    /// Counted among the side's connections that went (gave up, peer closed, noticed, or
    /// closed): the next connection of the client replaces one of them.
    gone: bool,
}

fn mechanism(reason: GaveUpReason) -> LossMechanism {
    match reason {
        GaveUpReason::Keepalive => LossMechanism::Keepalive,
        GaveUpReason::Retransmission => LossMechanism::RetransmissionTimeout,
        GaveUpReason::UserTimeout => LossMechanism::UserTimeout,
        GaveUpReason::ResetReceived => LossMechanism::Reset,
        GaveUpReason::Unreachable => LossMechanism::Icmp,
        GaveUpReason::Unknown => LossMechanism::Other,
    }
}

/// Turns observations of one side's program into record events (time in monotonic ns).
#[derive(Debug)]
pub struct SideView {
    side: Side,
    conns: BTreeMap<u32, ConnView>,
    connected_once: bool,
    lost_since_connected: bool,
    attempts: u32,
    /// Connections gone and not yet replaced by a new one: a client's new connection is a
    /// reconnection only while one is, so a program that holds a pool opens its pool with
    /// `connected` events and replaces what it lost with `reconnected` ones.
    unreplaced: u32,
    /// Whether any connection went: attempts after that are reconnect attempts.
    any_gone: bool,
    /// Socket options seen: with keepalive on, the declared ones for the model.
    pub options: Option<SocketSettings>,
    /// The program is being ended by a fault (killed, terminated): its closes are its death,
    /// not its notice of a loss.
    dying: bool,
    /// Notices recorded as the program's own decision that the kernel turned out to have
    /// caused: the kernel's report reached the runner after the program's line.
    corrections: Vec<Correction>,
}

/// A `peer-lost` recorded before the kernel's report on its connection arrived (the program
/// printed its line sooner than the observer delivered the kernel's stamp): the kernel's error
/// and mechanism belong on it.
#[derive(Debug, Clone, PartialEq)]
pub struct Correction {
    pub ends: Ends,
    pub error: String,
    pub mechanism: LossMechanism,
}

impl Correction {
    /// Puts the kernel's error on the side's `peer-lost` for these ends that was recorded as
    /// the program's own heartbeat.
    pub fn apply(&self, events: &mut [Event], source: crate::record::Source) {
        let guessed = events.iter_mut().rev().find_map(|e| match &mut e.kind {
            Kind::PeerLost(l)
                if e.source == source && l.ends == self.ends && l.error == "HEARTBEAT" =>
            {
                Some(l)
            }
            _ => None,
        });
        if let Some(l) = guessed {
            l.error = self.error.clone();
            l.mechanism = self.mechanism;
        }
    }
}

impl SideView {
    pub fn new(side: Side) -> SideView {
        SideView {
            side,
            conns: BTreeMap::new(),
            connected_once: false,
            lost_since_connected: false,
            attempts: 0,
            unreplaced: 0,
            any_gone: false,
            options: None,
            dying: false,
            corrections: Vec::new(),
        }
    }

    /// The notices the kernel's late-arriving reports showed were not the program's own
    /// decision (see [`Correction`]).
    pub fn take_corrections(&mut self) -> Vec<Correction> {
        std::mem::take(&mut self.corrections)
    }

    /// Connection `conn` went (the first sign of it counts).
    fn went(&mut self, conn: u32) {
        if let Some(c) = self.conns.get_mut(&conn).filter(|c| !c.gone) {
            c.gone = true;
            self.unreplaced += 1;
            self.any_gone = true;
        }
    }

    /// Says whether the program is being ended by a fault (true) or was started again (false).
    pub fn set_dying(&mut self, dying: bool) {
        self.dying = dying;
    }

    /// The events an observation means; `options` are the socket's, when they could be read.
    pub fn observe(
        &mut self,
        obs: Observation,
        options: Option<SocketSettings>,
        pid: i32,
    ) -> Vec<(u64, Kind)> {
        let mut out = Vec::new();
        match obs {
            Observation::ConnectAttempt { t_ns, .. } => {
                if self.side == Side::Client && self.any_gone {
                    self.attempts += 1;
                    out.push((
                        t_ns,
                        Kind::ReconnectAttempt {
                            attempt: self.attempts,
                            slot: None,
                        },
                    ));
                }
            }
            Observation::Established {
                conn,
                t_ns,
                via: v,
                tuple,
                keepalive_armed,
                keepalive_in_ms,
                ..
            } => {
                let e = ends(&tuple);
                let connected = Connected {
                    ends: e.clone(),
                    attempts: (self.side == Side::Client).then_some(self.attempts.max(1)),
                    slot: None,
                    host: None,
                };
                // A pool's first connections are not reconnections, however many come after
                // the first.
                let replaces =
                    self.side == Side::Client && self.connected_once && self.unreplaced > 0;
                let kind = if replaces {
                    self.unreplaced -= 1;
                    Kind::Reconnected(connected)
                } else {
                    Kind::Connected(connected)
                };
                self.connected_once = true;
                self.lost_since_connected = false;
                self.attempts = 0;
                if options.is_some() {
                    self.options = options;
                }
                out.push((t_ns, kind));
                out.push((
                    t_ns,
                    Kind::ConnectionObserved(ConnectionObserved {
                        ends: e.clone(),
                        pid,
                        keepalive_armed,
                        keepalive_in_ms,
                        options,
                        via: via(v),
                    }),
                ));
                self.conns.insert(
                    conn,
                    ConnView {
                        ends: e,
                        kernel: None,
                        fin: false,
                        noticed: false,
                        guessed_ns: None,
                        saw: false,
                        closed: false,
                        gone: false,
                    },
                );
            }
            Observation::KernelGaveUp {
                conn,
                t_ns,
                via: v,
                error,
                reason,
            } => {
                self.went(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.kernel = Some((error.clone(), mechanism(reason)));
                    if c.guessed_ns.take().is_some_and(|n| t_ns <= n) {
                        self.corrections.push(Correction {
                            ends: c.ends.clone(),
                            error: error.clone(),
                            mechanism: mechanism(reason),
                        });
                    }
                    out.push((
                        t_ns,
                        Kind::KernelGaveUp {
                            ends: c.ends.clone(),
                            error,
                            reason: reason.as_str().into(),
                            via: via(v),
                            dump_lag_ms: None,
                        },
                    ));
                }
            }
            Observation::PeerClosed { conn, t_ns, via: v } => {
                self.went(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.fin = true;
                    if c.guessed_ns.take().is_some_and(|n| t_ns <= n) {
                        self.corrections.push(Correction {
                            ends: c.ends.clone(),
                            error: "EOF".into(),
                            mechanism: LossMechanism::Eof,
                        });
                    }
                    out.push((
                        t_ns,
                        Kind::FinReceived {
                            ends: c.ends.clone(),
                            via: via(v),
                            dump_lag_ms: None,
                        },
                    ));
                }
            }
            Observation::ProgramSawError { t_ns, error, .. } => {
                // The latest connection whose kernel gave up with this error, not yet seen.
                let conn = self
                    .conns
                    .values_mut()
                    .rev()
                    .find(|c| !c.saw && c.kernel.as_ref().is_some_and(|(e, _)| *e == error));
                if let Some(c) = conn {
                    c.saw = true;
                    let ends = c.ends.clone();
                    out.push((t_ns, Kind::ProgramSawError { ends, error }));
                }
            }
            Observation::ProgramClosed { conn, t_ns, via: v } => {
                self.went(conn);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.closed = true;
                    out.push((
                        t_ns,
                        Kind::ProgramClosed {
                            ends: c.ends.clone(),
                            via: via(v),
                            dump_lag_ms: None,
                        },
                    ));
                }
                if !self.dying {
                    out.extend(self.notice(conn, t_ns));
                }
            }
        }
        out
    }

    /// A connection's options as read again: updates the ones the model uses, and returns
    /// the connection's ends so its `connection-observed` can say them.
    pub fn options_changed(&mut self, conn: u32, options: SocketSettings) -> Option<Ends> {
        let ends = self.conns.get(&conn)?.ends.clone();
        self.options = Some(options);
        Some(ends)
    }

    /// What a dump-only observer (run alongside the trace, as root) saw on the connection
    /// `tuple`: the kind of event it stands for, its ends, and when. (The two observers
    /// number connections each their own way: the tuple is what they share.)
    pub fn shadow(obs: &Observation, tuple: &Tuple) -> Option<(&'static str, Ends, u64)> {
        let (name, t_ns) = match obs {
            Observation::KernelGaveUp { t_ns, .. } => ("kernel-gave-up", t_ns),
            Observation::PeerClosed { t_ns, .. } => ("fin-received", t_ns),
            Observation::ProgramClosed { t_ns, .. } => ("program-closed", t_ns),
            _ => return None,
        };
        Some((name, ends(tuple), *t_ns))
    }

    /// The program noticed the loss of `conn`: the first notice records `peer-lost`.
    fn notice(&mut self, conn: u32, t_ns: u64) -> Option<(u64, Kind)> {
        self.went(conn);
        let c = self.conns.get_mut(&conn)?;
        if c.noticed {
            return None;
        }
        c.noticed = true;
        self.lost_since_connected = true;
        let (error, mechanism) = match (&c.kernel, c.fin) {
            (Some((error, m)), _) => (error.clone(), *m),
            (None, true) => ("EOF".into(), LossMechanism::Eof),
            // Nothing in the kernel said so: the program decided on its own (its heartbeat,
            // a deadline).
            (None, false) => {
                c.guessed_ns = Some(t_ns);
                ("HEARTBEAT".into(), LossMechanism::AppHeartbeat)
            }
        };
        Some((
            t_ns,
            Kind::PeerLost(PeerLost {
                ends: c.ends.clone(),
                error,
                mechanism,
                tcp_info: None,
                records_sent: 0,
                records_received: 0,
                heartbeats_sent: 0,
                heartbeats_received: 0,
            }),
        ))
    }

    /// A line of the program's; `matched` is what [`crate::program::Program::matches`] said. A `lost` line is
    /// a notice of the latest connection not yet noticed whose kernel gave up (or whose peer
    /// closed); failing that, of the only connection still open. A program holding several
    /// open connections does not say which one its line is about: its close will say.
    pub fn line(&mut self, t_ns: u64, matched: Option<&str>) -> Option<(u64, Kind)> {
        if matched != Some("lost") {
            return None;
        }
        let unnoticed = || self.conns.iter().rev().filter(|(_, c)| !c.noticed);
        let known = unnoticed()
            .find(|(_, c)| c.kernel.is_some() || c.fin)
            .map(|(&id, _)| id);
        let only = || {
            let mut open = self.conns.iter().filter(|(_, c)| !c.closed);
            match (open.next(), open.next()) {
                (Some((&id, c)), None) if !c.noticed => Some(id),
                _ => None,
            }
        };
        let conn = known.or_else(only)?;
        self.notice(conn, t_ns)
    }
}

/// The scenario with each program side's keepalive and TCP_USER_TIMEOUT as its socket
/// carried them (when they could be read), and `detects = "predicted"` windows taken from the
/// model again with those: the model predicts what the program really does, whatever the
/// scenario declared.
pub fn with_observed(
    scenario: &crate::scenario::Scenario,
    seen: &[(Side, SocketSettings)],
) -> crate::scenario::Scenario {
    if seen.is_empty() {
        return scenario.clone();
    }
    let mut out = scenario.clone();
    for (side, o) in seen {
        let settings = match side {
            Side::Client => &mut out.client,
            Side::Server => &mut out.server,
        };
        settings.keepalive = if o.keepalive {
            crate::keepalive::Keepalive::On {
                idle_s: o.idle_s,
                interval_s: o.interval_s,
                count: o.count,
            }
        } else {
            crate::keepalive::Keepalive::Off
        };
        settings.user_timeout_ms = o.user_timeout_ms;
    }
    crate::plan::resolve(&out)
}

/// Findings about user programs in a record's events, one sentence each: the bugs the
/// black box exists to show.
pub fn findings(events: &[Event], sides: &[Side]) -> Vec<String> {
    let mut out = Vec::new();
    for &side in sides {
        let mine = |e: &&Event| e.source == side.into();
        let observed: Vec<&ConnectionObserved> = events
            .iter()
            .filter(mine)
            .filter_map(|e| match &e.kind {
                Kind::ConnectionObserved(c) => Some(c),
                _ => None,
            })
            .collect();
        // The options read from the socket say it best; the timer may not be armed yet when a
        // dump first sees a connection (set right after accept).
        let keepalive =
            |c: &&ConnectionObserved| c.options.map_or(c.keepalive_armed, |o| o.keepalive);
        if !observed.is_empty() && !observed.iter().any(keepalive) {
            out.push(format!(
                "the {side} never enabled keepalive on its connections ({} seen)",
                observed.len()
            ));
        }
        // Per connection: when the kernel knew, when the program let go.
        let mut by_conn: BTreeMap<u64, (Option<&Event>, Option<&Event>)> = BTreeMap::new();
        for e in events.iter().filter(mine) {
            let Some(conn) = e.conn else { continue };
            let entry = by_conn.entry(conn).or_default();
            match &e.kind {
                Kind::KernelGaveUp { .. } | Kind::FinReceived { .. } if entry.0.is_none() => {
                    entry.0 = Some(e)
                }
                Kind::ProgramClosed { .. } | Kind::PeerLost(_) if entry.1.is_none() => {
                    entry.1 = Some(e)
                }
                _ => {}
            }
        }
        let (mut noticed, mut never) = (Vec::new(), Vec::new());
        for (conn, (kernel, program)) in by_conn {
            let Some(k) = kernel else { continue };
            let what = match &k.kind {
                Kind::KernelGaveUp { error, reason, .. } => {
                    format!(
                        "its kernel gave up at {:.3} s ({error}, {reason})",
                        k.t_ms / 1e3
                    )
                }
                _ => format!("the peer closed it at {:.3} s", k.t_ms / 1e3),
            };
            match program {
                Some(p) if p.t_ms >= k.t_ms => noticed.push((conn, p.t_ms - k.t_ms, what)),
                Some(_) => {}
                None => never.push((conn, what)),
            }
        }
        out.extend(pool_findings(side, noticed, never));
    }
    out
}

/// More connections than this in one finding's kind are said in one sentence (a pool).
const FINDINGS_PER_CONNECTION: usize = 3;

/// One sentence per connection; for a pool, one sentence for all its connections of a kind:
/// (connection, ms from the kernel's news to the program's notice, the news) and
/// (connection, the news) of those the program never closed.
fn pool_findings(
    side: Side,
    mut noticed: Vec<(u64, f64, String)>,
    never: Vec<(u64, String)>,
) -> Vec<String> {
    let mut out = Vec::new();
    if noticed.len() > FINDINGS_PER_CONNECTION {
        noticed.sort_by(|a, b| a.1.total_cmp(&b.1));
        let ms: Vec<f64> = noticed.iter().map(|n| n.1).collect();
        let d = crate::pool::distribution(&ms).expect("not empty");
        out.push(format!(
            "the {side} noticed each of {} dead connections {:.1}-{:.1} ms (median {:.1} ms) \
             after its kernel gave up or its peer closed it",
            ms.len(),
            d.min_ms,
            d.max_ms,
            d.p50_ms
        ));
    } else {
        for (conn, ms, what) in noticed {
            out.push(format!(
                "the {side} noticed connection {conn} {ms:.1} ms after {what}"
            ));
        }
    }
    if never.len() > FINDINGS_PER_CONNECTION {
        let ids: Vec<String> = never.iter().map(|n| n.0.to_string()).collect();
        out.push(format!(
            "the {side} program never closed {} dead connections ({}): the first, {}",
            never.len(),
            ids.join(", "),
            never[0].1
        ));
    } else {
        for (conn, what) in never {
            out.push(format!(
                "the {side} program never closed the dead connection {conn}: {what}"
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tuple() -> Tuple {
        Tuple {
            local: "198.18.1.2:40000".parse().unwrap(),
            remote: "198.18.2.2:7000".parse().unwrap(),
        }
    }

    fn established(conn: u32, t_ns: u64, keepalive: bool) -> Observation {
        Observation::Established {
            conn,
            t_ns,
            via: Via::Trace,
            tuple: tuple(),
            inode: 1,
            host_pid: 9,
            keepalive_armed: keepalive,
            keepalive_in_ms: keepalive.then_some(900),
        }
    }

    #[test]
    fn predictions_follow_what_the_socket_carries() {
        let text = "name = \"t\"\nend = \"5s\"\n[client]\ncommand = [\"c\"]\n\
                    keepalive = \"off\"\n[[fault]]\nkind = \"firewall-drop\"\nat = \"1s\"\n\
                    [[expect]]\nside = \"client\"\ndetects = \"predicted\"\n";
        let s = crate::scenario::parse(std::path::Path::new("t.toml"), text).unwrap();
        let s = crate::plan::resolve(&s);
        let window = |s: &crate::scenario::Scenario| match &s.expectations[0].check {
            crate::scenario::Check::Detects { window, .. } => window.to_string(),
            other => panic!("{other:?}"),
        };
        // Declared off: keepalive never detects an idle drop.
        assert_eq!(window(&s), "never");
        let seen = SocketSettings {
            keepalive: true,
            idle_s: 1,
            interval_s: 1,
            count: 3,
            user_timeout_ms: 0,
        };
        let observed = with_observed(&s, &[(Side::Client, seen)]);
        assert_ne!(window(&observed), "never");
        assert!(matches!(
            observed.client.keepalive,
            crate::keepalive::Keepalive::On { count: 3, .. }
        ));
        assert_eq!(with_observed(&s, &[]), s);
    }

    #[test]
    fn a_kernel_abort_then_a_close_is_one_loss_with_the_kernels_error() {
        let mut v = SideView::new(Side::Client);
        let kinds: Vec<&str> = v
            .observe(established(1, 10, true), None, 9)
            .iter()
            .map(|(_, k)| k.name())
            .collect();
        assert_eq!(kinds, ["connected", "connection-observed"]);
        v.observe(
            Observation::KernelGaveUp {
                conn: 1,
                t_ns: 20,
                via: Via::Trace,
                error: "ETIMEDOUT".into(),
                reason: GaveUpReason::Keepalive,
            },
            None,
            9,
        );
        let closed = v.observe(
            Observation::ProgramClosed {
                conn: 1,
                t_ns: 25,
                via: Via::Trace,
            },
            None,
            9,
        );
        match &closed[..] {
            [(25, Kind::ProgramClosed { .. }), (25, Kind::PeerLost(l))] => {
                assert_eq!(l.error, "ETIMEDOUT");
                assert_eq!(l.mechanism, LossMechanism::Keepalive);
            }
            other => panic!("{other:?}"),
        }
        // Closes while a fault ends the program are not its notices.
        let mut dying = SideView::new(Side::Server);
        dying.observe(established(1, 10, true), None, 9);
        dying.set_dying(true);
        let died = dying.observe(
            Observation::ProgramClosed {
                conn: 1,
                t_ns: 12,
                via: Via::Trace,
            },
            None,
            9,
        );
        assert!(matches!(died[..], [(12, Kind::ProgramClosed { .. })]));
        // The lost line after the close adds nothing; the next connection is a reconnect.
        assert_eq!(v.line(26, Some("lost")), None);
        let attempt = v.observe(
            Observation::ConnectAttempt {
                t_ns: 30,
                host_pid: 9,
            },
            None,
            9,
        );
        assert!(matches!(
            attempt[..],
            [(
                30,
                Kind::ReconnectAttempt {
                    attempt: 1,
                    slot: None
                }
            )]
        ));
        let back = v.observe(established(2, 40, true), None, 9);
        assert!(matches!(
            back[0],
            (
                40,
                Kind::Reconnected(Connected {
                    attempts: Some(1),
                    ..
                })
            )
        ));
    }

    fn gave_up(conn: u32, t_ns: u64) -> Observation {
        Observation::KernelGaveUp {
            conn,
            t_ns,
            via: Via::Trace,
            error: "ETIMEDOUT".into(),
            reason: GaveUpReason::Keepalive,
        }
    }

    fn closed(conn: u32, t_ns: u64) -> Observation {
        Observation::ProgramClosed {
            conn,
            t_ns,
            via: Via::Trace,
        }
    }

    #[test]
    fn a_pool_opens_with_connections_and_replaces_what_it_lost_with_reconnections() {
        let mut v = SideView::new(Side::Client);
        let first = |v: &mut SideView, o| v.observe(o, None, 9).remove(0).1.name();
        for conn in 1..=3 {
            assert_eq!(first(&mut v, established(conn, 10, true)), "connected");
        }
        // Attempts while the whole pool is up are the pool's own, not reconnect attempts.
        let attempt = Observation::ConnectAttempt {
            t_ns: 11,
            host_pid: 9,
        };
        assert!(v.observe(attempt.clone(), None, 9).is_empty());
        // Two die; a lost line says which of the dead it is about, never a live one.
        v.observe(gave_up(1, 20), None, 9);
        v.observe(gave_up(2, 20), None, 9);
        match v.line(21, Some("lost")) {
            Some((21, Kind::PeerLost(l))) => assert_eq!(l.error, "ETIMEDOUT"),
            other => panic!("{other:?}"),
        }
        match v.line(21, Some("lost")) {
            Some((21, Kind::PeerLost(l))) => assert_eq!(l.error, "ETIMEDOUT"),
            other => panic!("{other:?}"),
        }
        // Connection 3 is alive, and the program still holds the dead two: a third line
        // names nobody.
        assert_eq!(v.line(22, Some("lost")), None);
        v.observe(closed(1, 22), None, 9);
        v.observe(closed(2, 22), None, 9);
        assert_eq!(v.observe(attempt, None, 9)[0].1.name(), "reconnect-attempt");
        // Two replacements, then the pool grows: a connection again.
        assert_eq!(first(&mut v, established(4, 30, true)), "reconnected");
        assert_eq!(first(&mut v, established(5, 30, true)), "reconnected");
        assert_eq!(first(&mut v, established(6, 30, true)), "connected");
    }

    #[test]
    fn a_pools_findings_are_one_sentence_each() {
        let noticed: Vec<(u64, f64, String)> = (1..=50)
            .map(|c| (c, c as f64 / 10.0, "its kernel gave up".to_string()))
            .collect();
        let f = pool_findings(Side::Client, noticed, Vec::new());
        assert_eq!(
            f,
            [
                "the client noticed each of 50 dead connections 0.1-5.0 ms (median 2.5 ms) after \
              its kernel gave up or its peer closed it"
            ]
        );
        let never: Vec<(u64, String)> = (1..=4).map(|c| (c, format!("news {c}"))).collect();
        let f = pool_findings(Side::Server, Vec::new(), never);
        assert_eq!(
            f,
            ["the server program never closed 4 dead connections (1, 2, 3, 4): the first, news 1"]
        );
        let f = pool_findings(Side::Server, vec![(7, 1.25, "x".into())], Vec::new());
        assert_eq!(f, ["the server noticed connection 7 1.2 ms after x"]);
    }

    #[test]
    fn a_lost_line_before_any_close_is_the_notice() {
        let mut v = SideView::new(Side::Server);
        v.observe(established(1, 10, false), None, 9);
        v.observe(
            Observation::PeerClosed {
                conn: 1,
                t_ns: 15,
                via: Via::Diag,
            },
            None,
            9,
        );
        match v.line(16, Some("lost")) {
            Some((16, Kind::PeerLost(l))) => assert_eq!(l.error, "EOF"),
            other => panic!("{other:?}"),
        }
        assert_eq!(v.line(17, Some("back")), None);
        // The program closing on its own, the kernel silent: its own heartbeat.
        v.observe(established(2, 20, false), None, 9);
        let own = v.observe(
            Observation::ProgramClosed {
                conn: 2,
                t_ns: 30,
                via: Via::Trace,
            },
            None,
            9,
        );
        assert!(matches!(&own[1], (30, Kind::PeerLost(l)) if l.error == "HEARTBEAT"));
    }

    #[test]
    fn a_lost_line_ahead_of_the_kernels_report_takes_the_kernels_error() {
        let gave_up = |conn, t_ns| Observation::KernelGaveUp {
            conn,
            t_ns,
            via: Via::Trace,
            error: "ETIMEDOUT".into(),
            reason: GaveUpReason::Keepalive,
        };
        let mut v = SideView::new(Side::Client);
        v.observe(established(1, 10, false), None, 9);
        // The program's line reaches the runner first (at 31), the kernel's stamp (30) after.
        let lost = v.line(31, Some("lost"));
        let Some((31, Kind::PeerLost(l))) = lost.clone() else {
            panic!("{lost:?}")
        };
        assert_eq!(l.error, "HEARTBEAT");
        let mut events = vec![Event::new(
            0.031,
            crate::record::Source::Client,
            lost.unwrap().1,
        )];
        v.observe(gave_up(1, 30), None, 9);
        let fixes = v.take_corrections();
        assert_eq!(fixes.len(), 1);
        fixes[0].apply(&mut events, crate::record::Source::Client);
        assert!(
            matches!(&events[0].kind, Kind::PeerLost(l)
                if l.error == "ETIMEDOUT" && l.mechanism == LossMechanism::Keepalive),
            "{:?}",
            events[0].kind
        );
        // A kernel report stamped after the program's notice does not make it the kernel's.
        let mut v = SideView::new(Side::Client);
        v.observe(established(2, 40, false), None, 9);
        assert!(v.line(50, Some("lost")).is_some());
        v.observe(gave_up(2, 60), None, 9);
        assert!(v.take_corrections().is_empty());
    }

    #[test]
    fn findings_name_the_connection_the_program_never_closed() {
        let ends = Ends {
            local: "198.18.2.2:7000".into(),
            peer: "198.18.1.2:40000".into(),
        };
        let mut e1 = Event::new(
            1.0,
            crate::record::Source::Server,
            Kind::ConnectionObserved(ConnectionObserved {
                ends: ends.clone(),
                pid: 3,
                keepalive_armed: false,
                keepalive_in_ms: None,
                options: None,
                via: "trace".into(),
            }),
        );
        e1.conn = Some(1);
        let mut e2 = Event::new(
            4000.0,
            crate::record::Source::Server,
            Kind::KernelGaveUp {
                ends,
                error: "ETIMEDOUT".into(),
                reason: "retransmission".into(),
                via: "trace".into(),
                dump_lag_ms: None,
            },
        );
        e2.conn = Some(1);
        let f = findings(&[e1, e2], &[Side::Server]);
        assert_eq!(
            f,
            [
                "the server never enabled keepalive on its connections (1 seen)",
                "the server program never closed the dead connection 1: its kernel gave up at \
                 4.000 s (ETIMEDOUT, retransmission)"
            ]
        );
        assert!(findings(&[], &[Side::Client]).is_empty());
    }
}
