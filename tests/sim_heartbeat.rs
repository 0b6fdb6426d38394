//! The reference simulation of a connection that carries an application heartbeat
//! (docs/physics.md, K18), written from the kernel's rules and from the reference peers'
//! protocol (harness/peer.rs), independent of harness/model.rs.
//!
//! The peers: the client writes a PING frame every H from the connect (and, streaming, a
//! record every interval), the server answers each PING with a PONG as soon as its reader has
//! it; each side declares the peer lost ("HEARTBEAT") once it has heard nothing for M * H (the
//! client: no frame; the server: no PING), and then shuts the socket down: a FIN, sent when
//! nothing of its own is unacknowledged or unsent. A FIN that arrives is the peer's EOF.
//!
//! TCP, both ways alike, segment by segment: every frame is data. A frame written while
//! nothing is in flight leaves at once; one written behind unacknowledged data waits (Nagle:
//! the reference peers leave TCP_NODELAY off, and every frame is smaller than an MSS) and
//! leaves with the others when the ACK comes, or as the tail-loss probe's new data. Every
//! arriving segment with an acceptable ACK clears the receiver's soft error and its probe count
//! and stamps rcv_tstamp (tcp_ack); new data in order reaches the application; data is
//! ACKed at once, a PING by its PONG. The retransmission timer (tail-loss probe, RTO with
//! backoff, UT clamp, tcp_write_timeout) runs for whichever side has data in flight, and its
//! keepalive timer only re-arms meanwhile (tcp_keepalive_timer: packets_out or unsent data).
//! ICMPs about in-window segments record the soft error; host- and net-unreachable about a
//! retransmitted head revert a backoff (tcp_ld_RTO_revert).

use super::{arm_at, budget, retransmission_timer, Cell, CellFault, CellTraffic, Detection};
use super::{keepalive_gives_up, keepalive_ms, Draw, Path, Verdict};
use super::{HORIZON_MS, JIFFY};
use std::collections::BTreeSet;

/// An application heartbeat: (interval H, misses M), as a scenario's `[heartbeat]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heartbeat {
    pub interval_ms: u64,
    pub misses: u32,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Frame {
    Ping,
    Pong,
    Data,
    Fin,
}

/// One side of the connection.
#[derive(Debug)]
struct Ep {
    /// (idle, interval, count) in ms.
    keepalive: Option<(f64, f64, u32)>,
    user_timeout: f64,
    dead: Option<(f64, &'static str)>,
    /// Closed by the application (heartbeat, EOF): its kernel socket lives on.
    closed: bool,
    last_rcv: f64,
    probes_out: u32,
    ka_at: f64,
    soft: Option<&'static str>,
    /// Every segment this side has queued, in sequence order: the frames each carries.
    segs: Vec<Vec<Frame>>,
    /// The first unacknowledged segment and the first unsent one.
    una: usize,
    nxt: usize,
    rtx_at: f64,
    tlp_pending: bool,
    retrans_stamp: Option<f64>,
    backoff: u32,
    /// The peer's segments received in order, and those received beyond a gap.
    rcv_nxt: usize,
    ooo: BTreeSet<usize>,
    /// The application: when it last heard from the peer (the client: any frame; the server:
    /// a PING).
    last_heard: f64,
}

impl Ep {
    fn new(side: flatline::fidelity::SideCell) -> Ep {
        Ep {
            keepalive: keepalive_ms(side),
            user_timeout: f64::from(side.user_timeout_ms),
            dead: None,
            closed: false,
            last_rcv: 0.0,
            probes_out: 0,
            ka_at: f64::INFINITY,
            soft: None,
            segs: Vec::new(),
            una: 0,
            nxt: 0,
            rtx_at: f64::INFINITY,
            tlp_pending: false,
            retrans_stamp: None,
            backoff: 0,
            rcv_nxt: 0,
            ooo: BTreeSet::new(),
            last_heard: 0.0,
        }
    }

    /// Data in flight or waiting to be sent (packets_out, or a non-empty write queue).
    fn busy(&self) -> bool {
        self.una < self.segs.len()
    }
}

/// What a segment carries besides its ACK.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Seg {
    /// Data: the sender's segment number.
    Data(usize),
    /// A pure ACK.
    Ack,
}

struct HbSim {
    draw: Draw,
    path: Path,
    eps: [Ep; 2],
    retries2: u8,
    soft_error: &'static str,
    /// The server's application writes a PONG at each of these moments.
    pongs: Vec<f64>,
}

impl HbSim {
    fn arm(&self, t: f64, delay: f64) -> f64 {
        arm_at(self.draw.jiffy_offset_ms, t, delay)
    }

    fn jiffies(&self, t: f64) -> u64 {
        ((t + self.draw.jiffy_offset_ms) / JIFFY).floor() as u64
    }

    fn alive(&self, i: usize) -> bool {
        self.eps[i].dead.is_none()
    }

    /// Side `i` sees the loss at `t`. A keepalive give-up sends a reset
    /// (tcp_keepalive_timer: tcp_send_active_reset); the application's close (heartbeat, EOF)
    /// a FIN when nothing of its own waits before it.
    fn die(&mut self, i: usize, t: f64, error: &'static str, send_rst: bool) {
        if self.eps[i].dead.is_some() {
            return;
        }
        self.eps[i].dead = Some((t, error));
        let j = 1 - i;
        if send_rst {
            if self.path.packet(i, t) == Verdict::Pass {
                self.die(j, t, "ECONNRESET", false);
            }
            return;
        }
        if matches!(error, "HEARTBEAT" | "EOF") {
            // shutdown(SHUT_RDWR): tcp_send_fin queues the FIN behind any unsent data and
            // pushes it all with Nagle off; the congestion window lets it go unless a
            // retransmission timeout has cut it to the head's one retransmission in flight
            // (tcp_enter_loss). Sent, it arrives in order if the peer has everything before.
            let ep = &mut self.eps[i];
            if ep.nxt < ep.segs.len() {
                ep.segs
                    .last_mut()
                    .expect("a waiting segment")
                    .push(Frame::Fin);
            } else {
                ep.segs.push(vec![Frame::Fin]);
            }
            if ep.retrans_stamp.is_none() {
                while self.eps[i].nxt < self.eps[i].segs.len() {
                    let n = self.eps[i].nxt;
                    self.eps[i].nxt += 1;
                    self.transmit(i, t, Seg::Data(n));
                }
            }
            self.eps[i].closed = true;
        }
    }

    /// An ICMP about a segment of `i`'s: in window (data, an ACK) it is the soft error.
    fn icmp(&mut self, i: usize) {
        if self.alive(i) {
            self.eps[i].soft = Some(self.soft_error);
        }
    }

    /// Sends a segment from `i` at `t` through the fault; true if an ICMP came back.
    fn transmit(&mut self, i: usize, t: f64, seg: Seg) -> bool {
        match self.path.packet(i, t) {
            Verdict::Pass => {
                let ack = self.eps[i].rcv_nxt;
                self.arrive(1 - i, t, seg, ack);
                false
            }
            Verdict::Rst => {
                self.die(i, t, "ECONNRESET", false);
                false
            }
            Verdict::Icmp => {
                self.icmp(i);
                true
            }
            // Not drawn with a heartbeat: the router's neighbour queue.
            Verdict::Queue | Verdict::Drop => false,
        }
    }

    /// A segment of the peer's reaches `j` at `t`, acknowledging `ack` of `j`'s segments.
    fn arrive(&mut self, j: usize, t: f64, seg: Seg, ack: usize) {
        let i = 1 - j;
        if self.eps[j].dead.is_some() && !self.eps[j].closed {
            // No socket: a reset back (tcp_v4_send_reset).
            if self.path.packet(j, t) == Verdict::Pass {
                self.die(i, t, "ECONNRESET", false);
            }
            return;
        }
        if self.eps[j].closed {
            // Shut down both ways: new data is answered with a reset (tcp_rcv_state_process).
            if matches!(seg, Seg::Data(n) if n >= self.eps[j].rcv_nxt)
                && self.path.packet(j, t) == Verdict::Pass
            {
                self.die(i, t, "ECONNRESET", false);
            }
            return;
        }
        // tcp_ack: acceptable (never older than snd_una here).
        let ep = &mut self.eps[j];
        ep.last_rcv = t;
        ep.probes_out = 0;
        ep.soft = None;
        if ack > ep.una {
            ep.una = ack;
            ep.backoff = 0;
            ep.retrans_stamp = None;
            ep.tlp_pending = false;
            if ep.una < ep.nxt {
                ep.rtx_at = arm_at(self.draw.jiffy_offset_ms, t, self.draw.rto_ms);
            }
        }
        let Seg::Data(n) = seg else {
            self.push_pending(j, t);
            return;
        };
        let mut delivered = Vec::new();
        let ep = &mut self.eps[j];
        if n == ep.rcv_nxt {
            delivered.push(n);
            ep.rcv_nxt += 1;
            while ep.ooo.remove(&ep.rcv_nxt) {
                delivered.push(ep.rcv_nxt);
                ep.rcv_nxt += 1;
            }
        } else if n > ep.rcv_nxt {
            ep.ooo.insert(n);
        }
        let mut pinged = false;
        for d in delivered {
            for f in self.eps[i].segs[d].clone() {
                match f {
                    Frame::Ping => {
                        self.eps[j].last_heard = t;
                        self.pongs.push(t + self.draw.answer_ms);
                        pinged = true;
                    }
                    Frame::Pong => self.eps[j].last_heard = t,
                    Frame::Data => {}
                    Frame::Fin => self.die(j, t, "EOF", false),
                }
            }
        }
        self.push_pending(j, t);
        // The ACK: at once, or with the PONG its reader writes.
        if !pinged && self.alive(j) {
            self.transmit(j, t, Seg::Ack);
        }
    }

    /// Sends `i`'s waiting frames if nothing is in flight (Nagle lets them go).
    fn push_pending(&mut self, i: usize, t: f64) {
        let ep = &self.eps[i];
        if ep.dead.is_none() && ep.una == ep.nxt && ep.nxt < ep.segs.len() {
            self.send_new(i, t);
        }
    }

    /// Sends `i`'s next unsent segment; the first in flight arms the loss probe.
    fn send_new(&mut self, i: usize, t: f64) {
        let n = self.eps[i].nxt;
        self.eps[i].nxt += 1;
        if self.eps[i].una == n {
            self.eps[i].tlp_pending = true;
            self.eps[i].rtx_at = self.arm(t, self.draw.rto_ms);
        }
        self.transmit(i, t, Seg::Data(n));
    }

    /// The application of `i` writes a frame at `t`.
    fn write(&mut self, i: usize, t: f64, frame: Frame) {
        if !self.alive(i) {
            return;
        }
        let ep = &mut self.eps[i];
        if ep.nxt < ep.segs.len() {
            // Behind unacknowledged data: it joins the waiting segment.
            ep.segs.last_mut().expect("a waiting segment").push(frame);
            return;
        }
        ep.segs.push(vec![frame]);
        if ep.una == ep.nxt {
            self.send_new(i, t);
        }
    }

    /// The server's reader writes its PONG: it carries the PING's ACK, or, held back behind
    /// its own unacknowledged data, a pure ACK goes.
    fn pong(&mut self, t: f64) {
        if !self.alive(1) {
            return;
        }
        let before = self.eps[1].nxt;
        self.write(1, t, Frame::Pong);
        if self.eps[1].nxt == before && self.alive(1) {
            self.transmit(1, t, Seg::Ack);
        }
    }

    /// tcp_retransmit_timer and the tail-loss probe, for side `i`.
    fn retransmit_timer(&mut self, i: usize, t: f64) {
        let rto = self.draw.rto_ms;
        if self.eps[i].tlp_pending {
            self.eps[i].tlp_pending = false;
            if self.eps[i].nxt < self.eps[i].segs.len() {
                // New data if any (tcp_send_loss_probe), else the last segment again.
                self.eps[i].rtx_at = self.arm(t, rto);
                self.send_new(i, t);
            } else {
                self.eps[i].rtx_at = self.arm(t, rto);
                let tail = self.eps[i].nxt - 1;
                self.transmit(i, t, Seg::Data(tail));
            }
            return;
        }
        let ep = &self.eps[i];
        if let Some(stamp) = ep.retrans_stamp {
            let limit = if ep.user_timeout > 0.0 {
                ep.user_timeout
            } else {
                budget(self.retries2)
            };
            if t - stamp >= limit - 1e-9 {
                let error = ep.soft.unwrap_or("ETIMEDOUT");
                self.die(i, t, error, false);
                return;
            }
        }
        let head = self.eps[i].una;
        let icmp = self.transmit(i, t, Seg::Data(head));
        if self.eps[i].dead.is_some() || self.eps[i].una > head {
            return;
        }
        let stamp = *self.eps[i].retrans_stamp.get_or_insert(t);
        let ep = &mut self.eps[i];
        let revert = icmp && matches!(self.soft_error, "EHOSTUNREACH" | "ENETUNREACH");
        let next = retransmission_timer(rto, &mut ep.backoff, ep.user_timeout, t - stamp, revert);
        self.eps[i].rtx_at = self.arm(t, next);
    }

    /// tcp_keepalive_timer for side `i`.
    fn keepalive_timer(&mut self, i: usize, t: f64) {
        let (idle, interval, count) = self.eps[i].keepalive.expect("armed only with keepalive");
        if self.eps[i].busy() {
            self.eps[i].ka_at = self.arm(t, idle);
            return;
        }
        let elapsed = (self.jiffies(t) - self.jiffies(self.eps[i].last_rcv)) as f64 * JIFFY;
        if elapsed < idle {
            self.eps[i].ka_at = self.arm(t, idle - elapsed);
            return;
        }
        let ep = &self.eps[i];
        if keepalive_gives_up(ep.user_timeout, elapsed, ep.probes_out, count) {
            let error = ep.soft.unwrap_or("ETIMEDOUT");
            self.die(i, t, error, true);
            return;
        }
        self.eps[i].probes_out += 1;
        self.eps[i].ka_at = self.arm(t, interval);
        self.probe(i, t);
    }

    /// A keepalive probe from `i` (out of window: an ICMP about it is ignored). The peer's
    /// kernel ACKs it a little later (that ACK is in window: its ICMP is the peer's soft
    /// error), or answers with a reset once its socket is gone.
    fn probe(&mut self, i: usize, t: f64) {
        let j = 1 - i;
        match self.path.packet(i, t) {
            Verdict::Pass => {
                let gone = self.eps[j].dead.is_some() && !self.eps[j].closed;
                let at = t + self.draw.answer_ms;
                match self.path.packet(j, at) {
                    Verdict::Pass if gone => self.die(i, t, "ECONNRESET", false),
                    Verdict::Pass => {
                        self.eps[i].last_rcv = t;
                        self.eps[i].probes_out = 0;
                        self.eps[i].soft = None;
                    }
                    Verdict::Icmp if !gone => self.icmp(j),
                    Verdict::Rst if !gone => self.die(j, at, "ECONNRESET", false),
                    _ => {}
                }
            }
            Verdict::Rst => self.die(i, t, "ECONNRESET", false),
            _ => {}
        }
    }
}

/// Runs `cell` with the reference peers' heartbeat once, with the unknowns in `draw`: what
/// the client and the server see, ms after the fault. Faults: drops and rejects (both ways or
/// one way), the server's cable pulled at the wire; not pulls that queue in a neighbour entry
/// or hold a writer's device, nor process faults, NAT or a frozen peer.
pub fn simulate_heartbeat(cell: &Cell, hb: Heartbeat, draw: &Draw) -> [Detection; 2] {
    let fault_at = cell.at_ms as f64 + draw.fault_shift_ms;
    let soft_error = match cell.fault {
        CellFault::Icmp { port: true } | CellFault::IcmpOneWay { port: true, .. } => "ECONNREFUSED",
        CellFault::CablePull => "ENETUNREACH",
        _ => "EHOSTUNREACH",
    };
    let mut sim = HbSim {
        draw: *draw,
        path: Path::new(cell.fault, fault_at, draw, None),
        eps: [Ep::new(cell.client), Ep::new(cell.server)],
        retries2: cell.tcp_retries2.unwrap_or(15),
        soft_error,
        pongs: Vec::new(),
    };
    for i in 0..2 {
        if let Some((idle, ..)) = sim.eps[i].keepalive {
            sim.eps[i].ka_at = sim.arm(0.0, idle);
        }
    }
    let h = hb.interval_ms as f64;
    let silence = h * f64::from(hb.misses);
    let write_every = match cell.traffic {
        CellTraffic::Stream { interval_ms, .. } => f64::from(interval_ms),
        CellTraffic::Idle => f64::INFINITY,
    };
    let mut write_at = write_every;
    let mut ping_at = h;
    let end = fault_at + HORIZON_MS;
    loop {
        // (time, what, side): the earliest event; ties in this order.
        let mut next = (f64::INFINITY, 0u8, 0usize);
        let mut consider = |t: f64, what: u8, i: usize| {
            if t < next.0 {
                next = (t, what, i);
            }
        };
        for i in 0..2 {
            if sim.alive(i) {
                consider(sim.eps[i].ka_at, 0, i);
                if sim.eps[i].una < sim.eps[i].nxt {
                    consider(sim.eps[i].rtx_at, 1, i);
                }
                consider(sim.eps[i].last_heard + silence, 2, i);
            }
        }
        if sim.alive(0) {
            consider(write_at, 3, 0);
            consider(ping_at, 4, 0);
        }
        if sim.alive(1) {
            if let Some(&t) = sim.pongs.iter().min_by(|a, b| a.total_cmp(b)) {
                consider(t, 5, 1);
            }
        }
        let (t, what, i) = next;
        if t > end || (!sim.alive(0) && !sim.alive(1)) {
            break;
        }
        match what {
            0 => sim.keepalive_timer(i, t),
            1 => sim.retransmit_timer(i, t),
            2 => sim.die(i, t, "HEARTBEAT", false),
            3 => {
                sim.write(0, t, Frame::Data);
                write_at += write_every;
            }
            4 => {
                sim.write(0, t, Frame::Ping);
                ping_at += h;
            }
            _ => {
                sim.pongs.retain(|p| *p != t);
                sim.pong(t);
            }
        }
    }
    let seen = |i: usize| {
        sim.eps[i]
            .dead
            .filter(|(t, _)| *t >= fault_at)
            .map(|(t, e)| (t - fault_at, e))
    };
    [seen(0), seen(1)]
}

#[test]
fn the_heartbeat_simulation_reproduces_the_one_way_figures() {
    // docs/physics.md K18, measured with `flatline run` (idle, the server's packets stopped
    // one way), seconds after the fault: (server's settings, H, M, fault, at, figure, error).
    use flatline::fidelity::{Ka, SideCell};
    let off = SideCell {
        keepalive: None,
        user_timeout_ms: 0,
    };
    let ka = SideCell {
        keepalive: Some(Ka {
            idle_s: 1,
            interval_s: 1,
            count: 2,
        }),
        user_timeout_ms: 0,
    };
    let drop = CellFault::Drop {
        to_server: false,
        to_client: true,
    };
    let reject = CellFault::IcmpOneWay {
        port: true,
        to_server: false,
    };
    let ut = SideCell {
        user_timeout_ms: 1500,
        ..ka
    };
    let cases = [
        // The loss probe carries the next PING: the server counts from it.
        (off, 200, 4, drop, 2050, 1.152, "HEARTBEAT"),
        // The client's heartbeat closes before its first RTO: its FIN arrives.
        (off, 200, 3, drop, 2050, 0.547, "EOF"),
        // The PONG in flight holds the server's keepalive back.
        (ka, 1000, 6, drop, 2300, 6.698, "HEARTBEAT"),
        (ut, 1000, 6, reject, 2300, 2.613, "ECONNREFUSED"),
    ];
    for (server, interval_ms, misses, fault, at_ms, figure, error) in cases {
        let cell = Cell {
            seed: 0,
            client: off,
            server,
            traffic: CellTraffic::Idle,
            tcp_retries2: None,
            fault,
            at_ms,
            end_ms: 14_000,
        };
        let hb = Heartbeat {
            interval_ms,
            misses,
        };
        // The fault took effect 3-21 ms after `at` (docs/physics.md, K9a).
        for shift in [3.0, 10.0, 21.0] {
            let draw = Draw {
                jiffy_offset_ms: 1.0,
                fault_shift_ms: shift,
                rto_ms: 204.0,
                window_bytes: 1e6,
                linkwatch_ms: 0.0,
                answer_ms: 0.1,
                unacked_ms: 0.0,
            };
            let (t, e) = simulate_heartbeat(&cell, hb, &draw)[1].unwrap();
            assert_eq!(e, error, "{fault:?} {interval_ms} x {misses}: {t}");
            assert!(
                (t - figure * 1000.0).abs() <= 30.0,
                "{fault:?} {interval_ms} x {misses}: {t} against {figure}"
            );
        }
    }
}
