//! A reference simulation of one connection's TCP timers, written from the kernel's rules
//! (docs/physics.md names the function each rule comes from) as a second implementation,
//! independent of harness/model.rs: the model gives windows in closed form; this steps through
//! every timer expiry of both endpoints, packet by packet, on the jiffy grid and the timer
//! wheel, for one draw of the unknowns (the fault's phase against the timers, the RTO the
//! connection got, the peer's receive window). A property test checks that the model's window
//! and error contain what the simulation gives, for random cells and draws.

use flatline::fidelity::{Cell, CellFault, CellTraffic};

#[path = "sim_heartbeat.rs"]
pub mod heartbeat;

/// Milliseconds per jiffy (HZ = 250 on the machines flatline is measured on).
const JIFFY: f64 = 4.0;
/// TCP_RTO_MAX.
const RTO_MAX: f64 = 120_000.0;
/// How long after the fault the simulation watches.
pub const HORIZON_MS: f64 = 120_000.0;
/// The wire's ICMP rate limit per destination, in jiffies: net.ipv4.icmp_ratelimit (1000 ms)
/// per message, up to XRLIM_BURST_FACTOR (6) messages saved up (inet_peer_xrlim_allow).
const ICMP_COST_JIFFIES: u64 = 250;
const ICMP_BURST: u64 = 6;
/// A router without a route answers from the same bucket, but ip_error first takes
/// ip_rt_error_cost (HZ) itself, refilling up to ip_rt_error_burst (5 * HZ), and only then
/// asks icmp_send, whose icmpv4_xrlim_allow takes its own ratelimit (net/ipv4/route.c).
const ROUTE_ERROR_COST_JIFFIES: u64 = 250;
const ROUTE_ERROR_BURST_JIFFIES: u64 = 1250;
/// TCP_RESOURCE_PROBE_INTERVAL (HZ / 2): how long a probe dropped by its own device waits.
const RESOURCE_PROBE: f64 = 500.0;

/// The unknowns of one run.
#[derive(Clone, Copy, Debug)]
pub struct Draw {
    /// Where jiffy 0 falls, ms (0..4).
    pub jiffy_offset_ms: f64,
    /// The fault comes this long after the cell's `at` (the phase against the timers).
    pub fault_shift_ms: f64,
    /// The connection's RTO: RTO_MIN plus the smoothed round trip, rounded up to jiffies.
    pub rto_ms: f64,
    /// The frozen peer's receive window when it stopped reading, bytes.
    pub window_bytes: f64,
    /// How long after the fault linkwatch acts on a link's lost carrier (at most once a
    /// second across the machine, then a 1 s timer on the wheel), ms.
    pub linkwatch_ms: f64,
    /// How long after a keepalive probe crossed the wire the peer's answer reaches it, ms (a
    /// round trip, longer when softirqs are deferred): an answer that meets the fault draws its
    /// ICMP, in window (docs/physics.md, K9a).
    pub answer_ms: f64,
    /// How long before the fault the writer's last segment can have left and still be
    /// unacknowledged when its own link goes down in its namespace: the peer's ACK (a round
    /// trip, or its delayed ACK when the reader runs late) has not come in before the device
    /// stopped receiving (docs/physics.md, K9a), ms.
    pub unacked_ms: f64,
}

/// TCP_RTO_MIN (HZ / 5), µs.
const RTO_MIN_US: i64 = 200_000;

/// A connection's RTT state as Linux keeps it (struct tcp_sock: srtt_us eight times over,
/// mdev_us, mdev_max_us and rttvar_us four times over, rtt_seq), fed one RTT sample at a time
/// by tcp_rtt_estimator and read by tcp_set_rto, in the kernel's own fixed point. Written from
/// net/ipv4/tcp_input.c line by line, not from harness/model.rs (which folds the RTT window
/// into one step): the two must agree only through the property tests and the traced figures.
#[derive(Clone, Copy, Debug)]
pub struct Rtt {
    srtt_us: i64,
    mdev_us: i64,
    mdev_max_us: i64,
    rttvar_us: i64,
    /// snd_nxt when the current RTT window opened, and snd_una / snd_nxt now (bytes).
    rtt_seq: u64,
    snd_una: u64,
    snd_nxt: u64,
}

impl Rtt {
    /// The handshake's sample (tcp_clean_rtx_queue for the SYN, or the SYN-ACK's TSecr):
    /// `ms` from the SYN's send to its answer, a wait in a neighbour queue included.
    pub fn handshake(ms: f64) -> Rtt {
        let mut rtt = Rtt {
            srtt_us: 0,
            mdev_us: 0,
            mdev_max_us: 0,
            rttvar_us: 0,
            rtt_seq: 0,
            snd_una: 1,
            snd_nxt: 1,
        };
        rtt.estimate(ms);
        rtt
    }

    /// A write of `bytes` sent and ACKed `ms` later, alone in flight (Nagle holds the next):
    /// snd_una passes rtt_seq, so each such ACK ends an RTT window.
    pub fn acked_write(&mut self, bytes: u64, ms: f64) {
        self.snd_nxt += bytes;
        self.snd_una = self.snd_nxt;
        self.estimate(ms);
    }

    /// tcp_rtt_estimator.
    fn estimate(&mut self, ms: f64) {
        let mut m = ((ms * 1000.0).round() as i64).max(1);
        let mut srtt = self.srtt_us;
        if srtt != 0 {
            m -= srtt >> 3;
            srtt += m;
            if m < 0 {
                m = -m;
                m -= self.mdev_us >> 2;
                if m > 0 {
                    m >>= 3;
                }
            } else {
                m -= self.mdev_us >> 2;
            }
            self.mdev_us += m;
            if self.mdev_us > self.mdev_max_us {
                self.mdev_max_us = self.mdev_us;
                if self.mdev_max_us > self.rttvar_us {
                    self.rttvar_us = self.mdev_max_us;
                }
            }
            if self.snd_una > self.rtt_seq {
                if self.mdev_max_us < self.rttvar_us {
                    self.rttvar_us -= (self.rttvar_us - self.mdev_max_us) >> 2;
                }
                self.rtt_seq = self.snd_nxt;
                self.mdev_max_us = RTO_MIN_US;
            }
        } else {
            srtt = m << 3;
            self.mdev_us = m << 1;
            self.rttvar_us = self.mdev_us.max(RTO_MIN_US);
            self.mdev_max_us = self.rttvar_us;
            self.rtt_seq = self.snd_nxt;
        }
        self.srtt_us = srtt.max(1);
    }

    /// tcp_set_rto: usecs_to_jiffies(srtt + rttvar), at most TCP_RTO_MAX (tcp_bound_rto), ms.
    pub fn rto_ms(&self) -> f64 {
        let us = (self.srtt_us >> 3) + self.rttvar_us;
        (jiffies_up(us) * JIFFY).min(RTO_MAX)
    }

    /// The smoothed RTT, ms.
    pub fn srtt_ms(&self) -> f64 {
        (self.srtt_us >> 3) as f64 / 1000.0
    }

    /// tcp_schedule_loss_probe with one segment out: usecs_to_jiffies(2 * srtt) plus
    /// TCP_RTO_MIN, at most what is left of the RTO (all of it, the segment just sent), ms.
    pub fn loss_probe_ms(&self, rto_ms: f64) -> f64 {
        let pto = (jiffies_up(self.srtt_us >> 2) + jiffies_up(RTO_MIN_US)) * JIFFY;
        pto.min(rto_ms)
    }
}

/// usecs_to_jiffies: rounds up.
fn jiffies_up(us: i64) -> f64 {
    (us as f64 / (JIFFY * 1000.0)).ceil()
}

/// What a side saw: (ms after the fault, error).
pub type Detection = Option<(f64, &'static str)>;

/// Whether the timer wheel puts a timer `delta` jiffies out: it rounds up to the granularity
/// of the level the timer lands in (8^level jiffies; level n starts at 63 * 8^(n-1)), never
/// early (kernel/time/timer.c, calc_index).
fn wheel(now: u64, delta: u64) -> u64 {
    let expires = now + delta;
    let mut gran = 1u64;
    let mut start = 63u64;
    while delta >= start {
        gran *= 8;
        start *= 8;
    }
    if gran == 1 {
        expires
    } else {
        (expires + gran) / gran * gran
    }
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Verdict {
    Pass,
    Drop,
    /// The wire answers with a TCP reset to the sender.
    Rst,
    /// The wire answers with ICMP unreachable to the sender.
    Icmp,
    /// The router holds the packet in its unresolved neighbour entry for the peer.
    Queue,
}

/// A packet waiting in the router's neighbour entry: what its host-unreachable means to the
/// client (tcp_v4_err).
#[derive(Clone, Copy, PartialEq, Debug)]
enum Queued {
    /// A keepalive probe or RST: out of window, ignored.
    Other,
    /// Data at snd_una (the lost write, a retransmission): a soft error and a revert.
    Head,
    /// New data past snd_una (a loss probe with writes behind it): a soft error only.
    Tail,
}

/// Arms a timer `delay` ms from `t` (msecs_to_jiffies rounds up), on the wheel, for a jiffy
/// clock whose jiffy 0 falls at `-offset` ms.
fn arm_at(offset: f64, t: f64, delay: f64) -> f64 {
    let now = ((t + offset) / JIFFY).floor() as u64;
    let delta = (delay / JIFFY).ceil().max(1.0) as u64;
    wheel(now, delta) as f64 * JIFFY - offset
}

struct Path {
    fault: CellFault,
    at: f64,
    /// The client's own link pulled at the wire: until linkwatch acts on the lost carrier, its
    /// device drops what it sends (a local drop), after it what it sends waits for the
    /// gateway; ms.
    link_ok: f64,
    /// A NAT's expiry of the flow: unlimited until the first packet after the fault.
    nat_expiry: f64,
    /// Where jiffy 0 falls, ms.
    jiffy_offset_ms: f64,
    /// The wire's ICMP token bucket towards each endpoint: (tokens, jiffy of the last ICMP
    /// asked for); None until the first, when the bucket starts full.
    icmp_bucket: [Option<(u64, u64)>; 2],
    /// The server's own end pulled: the router's neighbour entry for the server, when it
    /// FAILS (None: no entry waits) and what waits in it.
    neigh_fails: Option<f64>,
    neigh_queue: Vec<Queued>,
}

impl Path {
    /// `client_tokens_ms`: what the wire's bucket towards the client holds at the fault, if
    /// an earlier fault drew on it (None: full, a new peer).
    fn new(fault: CellFault, at: f64, draw: &Draw, client_tokens_ms: Option<f64>) -> Path {
        let at_jiffy = ((at + draw.jiffy_offset_ms) / JIFFY).floor() as u64;
        let client = client_tokens_ms.map(|ms| {
            let cap = ICMP_BURST * ICMP_COST_JIFFIES;
            (((ms / JIFFY).ceil() as u64).min(cap), at_jiffy)
        });
        Path {
            fault,
            at,
            link_ok: at + draw.linkwatch_ms,
            nat_expiry: f64::INFINITY,
            jiffy_offset_ms: draw.jiffy_offset_ms,
            icmp_bucket: [client, None],
            neigh_fails: None,
            neigh_queue: Vec::new(),
        }
    }

    /// A client packet for the server enters the router's neighbour entry; the first starts
    /// it: a solicit at once, then mcast_solicit (3) rounds of retrans_time (1 s) on the wheel,
    /// and it FAILS (neigh_timer_handler).
    fn enqueue(&mut self, t: f64, what: Queued) {
        if self.neigh_fails.is_none() {
            let mut at = t;
            for _ in 0..3 {
                at = arm_at(self.jiffy_offset_ms, at, 1000.0);
            }
            self.neigh_fails = Some(at);
        }
        self.neigh_queue.push(what);
    }

    /// Whether a packet `from` at `t` is dropped by its own device: the client's link pulled
    /// at the wire's end, before linkwatch acted (the veth's peer is down; err > 0).
    fn local_drop(&self, from: usize, t: f64) -> bool {
        self.fault == (CellFault::OwnLink { local: false })
            && from == 0
            && (self.at..self.link_ok).contains(&t)
    }

    /// Whether the wire's bucket towards `to` lets an ICMP out at `t` (inet_peer_xrlim_allow).
    fn icmp_allowed(&mut self, to: usize, t: f64) -> bool {
        let now = ((t + self.jiffy_offset_ms) / JIFFY).floor() as u64;
        let cap = ICMP_BURST * ICMP_COST_JIFFIES;
        let (tokens, last) = self.icmp_bucket[to].unwrap_or((cap, now));
        // An answer's packet is asked for a few ms ahead of the events between (`probe`): a
        // packet asked for earlier than the last gains nothing.
        let tokens = (tokens + now.saturating_sub(last)).min(cap);
        let now = now.max(last);
        if tokens >= ICMP_COST_JIFFIES {
            self.icmp_bucket[to] = Some((tokens - ICMP_COST_JIFFIES, now));
            true
        } else {
            self.icmp_bucket[to] = Some((tokens, now));
            false
        }
    }

    /// ip_error for a packet forwarded into no route, from `to`'s host at `t`: the
    /// inet_peer's tokens are refilled by the jiffies since rate_last, capped at
    /// ip_rt_error_burst, and ip_rt_error_cost is taken if they hold it (else nothing is
    /// sent, and nothing more is taken); then icmp_send's own check takes a ratelimit from
    /// what is left ([`Path::icmp_allowed`], in the same jiffy: it gains nothing).
    fn no_route_allowed(&mut self, to: usize, t: f64) -> bool {
        let now = ((t + self.jiffy_offset_ms) / JIFFY).floor() as u64;
        // A new peer: rate_last 60 s back, so the first refill fills it to the burst.
        let (tokens, last) = self.icmp_bucket[to].unwrap_or((ROUTE_ERROR_BURST_JIFFIES, now));
        let tokens = (tokens + now.saturating_sub(last)).min(ROUTE_ERROR_BURST_JIFFIES);
        let now_or_last = now.max(last);
        if tokens < ROUTE_ERROR_COST_JIFFIES {
            self.icmp_bucket[to] = Some((tokens, now_or_last));
            return false;
        }
        self.icmp_bucket[to] = Some((tokens - ROUTE_ERROR_COST_JIFFIES, now_or_last));
        self.icmp_allowed(to, t)
    }

    /// Whether the fault answers with the router's missing route (ip_error): the server's
    /// cable pulled at the wire, or the client's own link at the wire's end.
    fn no_route(&self) -> bool {
        matches!(
            self.fault,
            CellFault::CablePull | CellFault::OwnLink { local: false }
        )
    }

    /// What the wire does with a packet `from` (0 client, 1 server) at `t`: an ICMP only if
    /// the rate limit towards the sender lets it out, otherwise the packet just vanishes.
    fn packet(&mut self, from: usize, t: f64) -> Verdict {
        match self.rule(from, t) {
            Verdict::Icmp => {
                let allowed = if self.no_route() {
                    self.no_route_allowed(from, t)
                } else {
                    self.icmp_allowed(from, t)
                };
                if allowed {
                    Verdict::Icmp
                } else {
                    Verdict::Drop
                }
            }
            other => other,
        }
    }

    /// The fault's rule for a packet `from` at `t`.
    fn rule(&mut self, from: usize, t: f64) -> Verdict {
        if t < self.at {
            return Verdict::Pass;
        }
        match self.fault {
            CellFault::Drop {
                to_server,
                to_client,
            } => {
                if (from == 0 && to_server) || (from == 1 && to_client) {
                    Verdict::Drop
                } else {
                    Verdict::Pass
                }
            }
            // The server's cable at the wire: the router has no route to it, so the client's
            // packets draw net-unreachable; the server's go nowhere.
            CellFault::CablePull if from == 0 => Verdict::Icmp,
            CellFault::CablePull => Verdict::Drop,
            // The client's own link at the wire's end: the router's route to it goes with the
            // link, so the server's packets draw net-unreachable (K9a).
            CellFault::OwnLink { local: false } if from == 1 => Verdict::Icmp,
            // The client's own link: the server's packets never reach it, and the client's
            // own go nowhere (a writer's are simulated by [`own_link`]).
            CellFault::OwnLink { .. } => Verdict::Drop,
            // The server's own link is down: its packets go nowhere; the client's wait in
            // the router's neighbour entry for it.
            CellFault::PeerEnd if from == 0 => Verdict::Queue,
            CellFault::PeerEnd => Verdict::Drop,
            CellFault::Reset => Verdict::Rst,
            CellFault::Icmp { .. } => Verdict::Icmp,
            // One side's packets draw the ICMPs; the other's pass.
            CellFault::IcmpOneWay { to_server, .. } => {
                if (from == 0) == to_server {
                    Verdict::Icmp
                } else {
                    Verdict::Pass
                }
            }
            CellFault::Nat { timeout_s, reset } => {
                // nat.sh: the shorter timeout applies from the flow's next packet on.
                if t > self.nat_expiry {
                    if reset {
                        Verdict::Rst
                    } else {
                        Verdict::Drop
                    }
                } else {
                    self.nat_expiry = t + f64::from(timeout_s) * 1000.0;
                    Verdict::Pass
                }
            }
            CellFault::Kill | CellFault::Freeze => Verdict::Pass,
        }
    }
}

#[derive(Clone, Debug)]
struct Endpoint {
    /// (idle, interval, count) in ms.
    keepalive: Option<(f64, f64, u32)>,
    user_timeout: f64,
    dead: Option<(f64, &'static str)>,
    /// The later of the last data received and the last acceptable ACK (rcv_tstamp).
    last_rcv: f64,
    probes_out: u32,
    ka_at: f64,
    /// ICMP errors are recorded (sk_err_soft) and reported when a timer gives up.
    soft: Option<&'static str>,
    // A writer's retransmission state.
    unacked: bool,
    rtx_at: f64,
    tlp_pending: bool,
    retrans_stamp: Option<f64>,
    /// The RTO before backoff, and icsk_backoff.
    rto: f64,
    backoff: u32,
    /// The loss probe's timeout after a lone segment's send (tcp_schedule_loss_probe): the RTO
    /// where no RTT state is simulated (the lab's: within a jiffy or so), else from it.
    loss_probe: f64,
    /// When the head of the retransmission queue last left (tcp_skb_timestamp_us).
    head_sent: f64,
    /// Writes wait behind unacknowledged data (Nagle): a loss probe sends them, new data.
    pending: bool,
}

struct Sim {
    draw: Draw,
    path: Path,
    eps: [Endpoint; 2],
    retries2: u8,
    soft_error: &'static str,
}

/// H(n) from tcp_model_timeout: RTO_MIN doubling up to RTO_MAX, n + 1 times.
fn budget(n: u8) -> f64 {
    let thresh = 9; // ilog2(TCP_RTO_MAX / TCP_RTO_MIN)
    if u32::from(n) <= thresh {
        f64::from((2u32 << n) - 1) * 200.0
    } else {
        f64::from((2u32 << thresh) - 1) * 200.0 + f64::from(u32::from(n) - thresh) * RTO_MAX
    }
}

impl Sim {
    fn jiffies(&self, t: f64) -> u64 {
        ((t + self.draw.jiffy_offset_ms) / JIFFY).floor() as u64
    }

    /// Arms a timer `delay` ms from `t` (msecs_to_jiffies rounds up), on the wheel.
    fn arm(&self, t: f64, delay: f64) -> f64 {
        arm_at(self.draw.jiffy_offset_ms, t, delay)
    }

    fn die(&mut self, i: usize, t: f64, error: &'static str, send_rst: bool) {
        if self.eps[i].dead.is_some() {
            return;
        }
        self.eps[i].dead = Some((t, error));
        if send_rst {
            match self.path.packet(i, t) {
                Verdict::Pass => self.die(1 - i, t, "ECONNRESET", false),
                Verdict::Queue => self.path.enqueue(t, Queued::Other),
                _ => {}
            }
        }
    }

    /// A keepalive probe from `i`: the peer's kernel ACKs it (frozen or not), or answers with
    /// RST once its socket is gone; a probe's ICMP error is out of window and ignored.
    fn probe(&mut self, i: usize, t: f64) {
        match self.path.packet(i, t) {
            Verdict::Pass => {
                // The answer crosses the wire a little later, perhaps after the fault: its
                // ICMP is in window (seq = snd_nxt), the answering side's soft error.
                let reply = self.path.packet(1 - i, t + self.draw.answer_ms);
                if reply == Verdict::Icmp && self.eps[1 - i].dead.is_none() {
                    self.eps[1 - i].soft = Some(self.soft_error);
                }
                let peer_gone = self.eps[1 - i].dead.is_some();
                match (reply, peer_gone) {
                    (Verdict::Pass, false) => {
                        self.eps[i].last_rcv = t;
                        self.eps[i].probes_out = 0;
                    }
                    (Verdict::Pass, true) => self.die(i, t, "ECONNRESET", false),
                    // The answer draws the RST as it crosses, after the probe.
                    (Verdict::Rst, _) => {
                        self.die(1 - i, t + self.draw.answer_ms, "ECONNRESET", false)
                    }
                    _ => {}
                }
            }
            Verdict::Rst => self.die(i, t, "ECONNRESET", false),
            Verdict::Queue => self.path.enqueue(t, Queued::Other),
            Verdict::Drop | Verdict::Icmp => {}
        }
    }

    /// tcp_keepalive_timer.
    fn keepalive_timer(&mut self, i: usize, t: f64) {
        let (idle, interval, count) = self.eps[i].keepalive.expect("armed only with keepalive");
        if self.eps[i].unacked {
            // Data in flight: the keepalive timer only re-arms (tcp_keepalive_timer, resched).
            self.eps[i].ka_at = self.arm(t, idle);
            return;
        }
        let elapsed = (self.jiffies(t) - self.jiffies(self.eps[i].last_rcv)) as f64 * JIFFY;
        if elapsed >= idle {
            let ep = &self.eps[i];
            if keepalive_gives_up(ep.user_timeout, elapsed, ep.probes_out, count) {
                let error = ep.soft.unwrap_or("ETIMEDOUT");
                self.die(i, t, error, true);
                return;
            }
            if self.path.local_drop(i, t) {
                // tcp_write_wakeup failed locally: not counted, tried again 500 ms later
                // (TCP_RESOURCE_PROBE_INTERVAL).
                self.eps[i].ka_at = self.arm(t, RESOURCE_PROBE);
                return;
            }
            self.eps[i].probes_out += 1;
            self.eps[i].ka_at = self.arm(t, interval);
            self.probe(i, t);
        } else {
            self.eps[i].ka_at = self.arm(t, idle - elapsed);
        }
    }

    /// A segment of the client's reaches the live server at `t`, and the server ACKs it;
    /// returns what the wire does with that ACK. The segment's ACK field is acceptable, so
    /// tcp_ack clears the server's soft error and its unanswered probes and stamps
    /// rcv_tstamp; the ACK (seq = snd_nxt, in window) records its ICMP, if it draws one.
    fn data_arrives(&mut self, t: f64) -> Verdict {
        let server = &mut self.eps[1];
        server.last_rcv = t;
        server.probes_out = 0;
        server.soft = None;
        let answer = self.path.packet(1, t);
        if answer == Verdict::Icmp {
            self.eps[1].soft = Some(self.soft_error);
        }
        answer
    }

    /// A data segment from the client (writer) at `t`.
    fn send_data(&mut self, t: f64) {
        if self.eps[0].unacked {
            // A small write behind unacknowledged data waits for its ACK (Nagle): nothing is
            // sent until the loss probe or a retransmission takes it.
            self.eps[0].pending = true;
            return;
        }
        match self.path.packet(0, t) {
            Verdict::Pass => {
                // The server answers: its ACK, or its RST once it has given up. Behind a
                // one-way fault the answer may be the packet stopped (K7): the write is then
                // as good as lost to the writer, though the server got it.
                if self.eps[1].dead.is_some() {
                    if self.path.packet(1, t) == Verdict::Pass {
                        self.die(0, t, "ECONNRESET", false);
                        return;
                    }
                } else if self.data_arrives(t) == Verdict::Pass {
                    if !self.eps[0].unacked {
                        self.eps[0].last_rcv = t;
                    }
                    return;
                }
            }
            Verdict::Rst => {
                self.die(0, t, "ECONNRESET", false);
                return;
            }
            Verdict::Icmp => self.eps[0].soft = Some(self.soft_error),
            Verdict::Queue => self.path.enqueue(t, Queued::Head),
            Verdict::Drop => {}
        }
        self.eps[0].head_sent = t;
        if !self.eps[0].unacked {
            // The first lost segment: a tail-loss probe (tcp_schedule_loss_probe), which
            // restarts the retransmission timer.
            self.eps[0].unacked = true;
            self.eps[0].tlp_pending = true;
            self.eps[0].rtx_at = self.arm(t, self.eps[0].loss_probe);
        }
    }

    /// tcp_retransmit_timer and the tail-loss probe.
    fn retransmit_timer(&mut self, t: f64) {
        if self.eps[0].tlp_pending {
            self.eps[0].tlp_pending = false;
            // The loss probe sends the writes waiting behind the lost one, or else the lost
            // segment again (tcp_send_loss_probe).
            let new_data = std::mem::take(&mut self.eps[0].pending);
            self.retransmit(t, !new_data);
            self.eps[0].rtx_at = self.arm(t, self.eps[0].rto);
            return;
        }
        let ep = &self.eps[0];
        // tcp_write_timeout: retransmits_timed_out against TCP_USER_TIMEOUT or H(retries2),
        // counted from the first retransmission (retrans_stamp).
        if let Some(stamp) = ep.retrans_stamp {
            let limit = if ep.user_timeout > 0.0 {
                ep.user_timeout
            } else {
                budget(self.retries2)
            };
            if t - stamp >= limit - 1e-9 {
                let error = ep.soft.unwrap_or("ETIMEDOUT");
                self.die(0, t, error, false);
                return;
            }
        }
        let icmp = self.retransmit(t, true);
        if self.eps[0].dead.is_some() {
            return;
        }
        let stamp = *self.eps[0].retrans_stamp.get_or_insert(t);
        let ep = &mut self.eps[0];
        // Host- and net-unreachable revert (tcp_v4_err: ICMP_NET_UNREACH or
        // ICMP_HOST_UNREACH calls tcp_ld_RTO_revert); port-unreachable does not.
        let revert = icmp && matches!(self.soft_error, "EHOSTUNREACH" | "ENETUNREACH");
        let next =
            retransmission_timer(ep.rto, &mut ep.backoff, ep.user_timeout, t - stamp, revert);
        self.eps[0].rtx_at = self.arm(t, next);
    }

    /// Retransmits snd_una (`head`), or sends the loss probe's new data; true if an ICMP
    /// came back at once.
    fn retransmit(&mut self, t: f64, head: bool) -> bool {
        if head {
            self.eps[0].head_sent = t;
        }
        match self.path.packet(0, t) {
            Verdict::Rst => self.die(0, t, "ECONNRESET", false),
            Verdict::Icmp => {
                self.eps[0].soft = Some(self.soft_error);
                return true;
            }
            Verdict::Queue => {
                let what = if head { Queued::Head } else { Queued::Tail };
                self.path.enqueue(t, what);
            }
            // Through to the server, whose answer the fault stops (K7: a one-way fault): its
            // keepalive counts idle from this segment; its RST, once it gave up, goes back if
            // that way is open.
            Verdict::Pass => {
                if self.eps[1].dead.is_none() {
                    self.data_arrives(t);
                } else if self.path.packet(1, t) == Verdict::Pass {
                    self.die(0, t, "ECONNRESET", false);
                }
            }
            Verdict::Drop => {}
        }
        false
    }

    /// The router's neighbour entry for the server FAILS: neigh_invalidate answers each
    /// queued packet with a host-unreachable to the client, as the bucket lets it out
    /// (arp_error_report -> ipv4_link_failure -> icmp_send); the next packet starts a new
    /// entry.
    fn neighbour_fails(&mut self, t: f64) {
        self.path.neigh_fails = None;
        for what in std::mem::take(&mut self.path.neigh_queue) {
            if !self.path.icmp_allowed(0, t) || what == Queued::Other {
                continue;
            }
            if self.eps[0].dead.is_some() {
                return;
            }
            self.eps[0].soft = Some("EHOSTUNREACH");
            if what == Queued::Head {
                self.ld_rto_revert(t);
            }
        }
    }

    /// tcp_ld_RTO_revert: with retransmissions out and a backoff, undo one and re-arm the
    /// timer for the rest of RTO << backoff since the head left, unclamped; if that has
    /// passed, the retransmission timer runs now.
    fn ld_rto_revert(&mut self, t: f64) {
        let ep = &mut self.eps[0];
        if ep.retrans_stamp.is_none() || ep.backoff == 0 || !ep.unacked {
            return;
        }
        ep.backoff -= 1;
        let rto = (ep.rto * 2f64.powi(ep.backoff as i32)).min(RTO_MAX);
        let since = ((t - ep.head_sent) / JIFFY).ceil() * JIFFY;
        let remaining = rto - since;
        if remaining > 0.0 {
            self.eps[0].rtx_at = self.arm(t, remaining);
        } else {
            self.retransmit_timer(t);
        }
    }
}

/// A writer whose peer froze: the peer's window closes once `window_bytes` are buffered; the
/// persist timer (tcp_probe_timer) probes it from one RTO later, the probes are answered, and
/// TCP_USER_TIMEOUT counts from the first probe (icsk_probes_tstamp), each backed-off
/// interval clamped to it (tcp_clamp_probe0_to_user_timeout).
fn persist(cell: &Cell, draw: &Draw, fault_at: f64) -> Detection {
    let CellTraffic::Stream {
        interval_ms,
        record_bytes,
    } = cell.traffic
    else {
        return None;
    };
    let ut = f64::from(cell.client.user_timeout_ms);
    if ut == 0.0 {
        return None;
    }
    let sim = Sim {
        draw: *draw,
        path: Path::new(cell.fault, fault_at, draw, None),
        eps: [endpoint(cell.client, draw), endpoint(cell.server, draw)],
        retries2: 15,
        soft_error: "",
    };
    // Writes keep coming every interval until the window is full; the first one that finds it
    // closed arms the probe timer (tcp_check_probe_timer: the RTO).
    let per_write = f64::from(record_bytes);
    let writes = (draw.window_bytes / per_write).ceil();
    let closed = fault_at + (writes + 1.0) * f64::from(interval_ms);
    let mut t = sim.arm(closed, draw.rto_ms);
    let first = t;
    let mut backoff = 0u32;
    loop {
        if t - first >= ut {
            return Some((t - fault_at, "ETIMEDOUT"));
        }
        backoff += 1;
        let when = (draw.rto_ms * f64::from(1u32 << backoff.min(20))).min(RTO_MAX);
        let remaining = (ut - (t - first)).max(2.0 * JIFFY);
        t = sim.arm(t, when.min(remaining));
    }
}

/// A side's keepalive in ms: (idle, interval, count), as Linux takes whole seconds.
fn keepalive_ms(side: flatline::fidelity::SideCell) -> Option<(f64, f64, u32)> {
    side.keepalive.map(|k| {
        (
            f64::from(k.idle_s) * 1000.0,
            f64::from(k.interval_s) * 1000.0,
            k.count,
        )
    })
}

/// tcp_keepalive_timer's give-up, at an expiry `elapsed` ms after the last receipt: with a
/// user timeout, once it has passed with a probe out (KEEPCNT ignored); without, once
/// `count` probes went unanswered.
fn keepalive_gives_up(user_timeout: f64, elapsed: f64, probes_out: u32, count: u32) -> bool {
    if user_timeout > 0.0 {
        elapsed >= user_timeout && probes_out > 0
    } else {
        probes_out >= count
    }
}

fn endpoint(side: flatline::fidelity::SideCell, draw: &Draw) -> Endpoint {
    Endpoint {
        keepalive: keepalive_ms(side),
        user_timeout: f64::from(side.user_timeout_ms),
        dead: None,
        last_rcv: 0.0,
        probes_out: 0,
        ka_at: f64::INFINITY,
        soft: None,
        unacked: false,
        rtx_at: f64::INFINITY,
        tlp_pending: false,
        retrans_stamp: None,
        rto: draw.rto_ms,
        backoff: 0,
        loss_probe: draw.rto_ms,
        head_sent: 0.0,
        pending: false,
    }
}

/// Runs `cell` once with the unknowns in `draw`: what the client and the server see.
pub fn simulate(cell: &Cell, draw: &Draw) -> [Detection; 2] {
    simulate_after(cell, draw, None)
}

/// As [`simulate`], with the wire's ICMP bucket towards the client holding `client_tokens_ms`
/// at the fault, what an earlier fault's ICMPs left of it (inet_peer's rate_tokens; None:
/// full).
pub fn simulate_after(cell: &Cell, draw: &Draw, client_tokens_ms: Option<f64>) -> [Detection; 2] {
    simulate_with(cell, draw, client_tokens_ms, None)
}

/// As [`simulate_after`], the client's connection a reconnect whose RTT state is `rtt` at the
/// fault (docs/physics.md, K9a): its handshake's sample and its ACKed writes since; the RTO
/// and the loss probe come from it (tcp_set_rto, tcp_schedule_loss_probe), not the draw.
pub fn simulate_reconnected(
    cell: &Cell,
    draw: &Draw,
    client_tokens_ms: Option<f64>,
    rtt: &Rtt,
) -> [Detection; 2] {
    simulate_with(cell, draw, client_tokens_ms, Some(rtt))
}

fn simulate_with(
    cell: &Cell,
    draw: &Draw,
    client_tokens_ms: Option<f64>,
    rtt: Option<&Rtt>,
) -> [Detection; 2] {
    let fault_at = cell.at_ms as f64 + draw.fault_shift_ms;
    match (cell.fault, cell.traffic) {
        // The peer's kernel closes the socket: FIN, EOF at once; the killed side sees nothing.
        (CellFault::Kill, _) => return [Some((0.1, "EOF")), None],
        (CellFault::Freeze, CellTraffic::Idle) => return [None, None],
        (CellFault::Freeze, CellTraffic::Stream { .. }) => {
            return [persist(cell, draw, fault_at), None]
        }
        _ => {}
    }
    let soft_error = match cell.fault {
        CellFault::Icmp { port: true } | CellFault::IcmpOneWay { port: true, .. } => "ECONNREFUSED",
        CellFault::CablePull | CellFault::OwnLink { local: false } => "ENETUNREACH",
        _ => "EHOSTUNREACH",
    };
    let mut sim = Sim {
        draw: *draw,
        path: Path::new(cell.fault, fault_at, draw, client_tokens_ms),
        eps: [endpoint(cell.client, draw), endpoint(cell.server, draw)],
        retries2: cell.tcp_retries2.unwrap_or(15),
        soft_error,
    };
    if let Some(rtt) = rtt {
        let rto = rtt.rto_ms();
        sim.eps[0].rto = rto;
        sim.eps[0].loss_probe = rtt.loss_probe_ms(rto);
    }
    // Both ends are established at 0; each keepalive timer starts then (tcp_set_keepalive).
    for i in 0..2 {
        if let Some((idle, ..)) = sim.eps[i].keepalive {
            sim.eps[i].ka_at = sim.arm(0.0, idle);
        }
    }
    let write_every = match cell.traffic {
        CellTraffic::Stream { interval_ms, .. } => Some(f64::from(interval_ms)),
        CellTraffic::Idle => None,
    };
    let mut write_at = write_every.unwrap_or(f64::INFINITY);
    let end = fault_at + HORIZON_MS;
    loop {
        let alive = |i: usize| sim.eps[i].dead.is_none();
        let mut next = (f64::INFINITY, 9usize);
        for i in 0..2 {
            if alive(i) {
                if sim.eps[i].ka_at < next.0 {
                    next = (sim.eps[i].ka_at, i);
                }
                if i == 0 && sim.eps[0].unacked && sim.eps[0].rtx_at < next.0 {
                    next = (sim.eps[0].rtx_at, 2);
                }
            }
        }
        if alive(0) && write_at < next.0 {
            next = (write_at, 3);
        }
        if let Some(fails) = sim.path.neigh_fails.filter(|f| *f < next.0) {
            next = (fails, 4);
        }
        let (t, what) = next;
        if t > end || (!alive(0) && !alive(1)) {
            break;
        }
        match what {
            0 | 1 => sim.keepalive_timer(what, t),
            2 => sim.retransmit_timer(t),
            3 => {
                sim.send_data(t);
                write_at = t + write_every.expect("writes only when streaming");
            }
            4 => sim.neighbour_fails(t),
            _ => break,
        }
    }
    let seen = |i: usize| {
        sim.eps[i]
            .dead
            .filter(|(t, _)| *t >= fault_at)
            .map(|(t, e)| (t - fault_at, e))
    };
    if let (CellFault::OwnLink { local }, CellTraffic::Stream { .. }) = (cell.fault, cell.traffic) {
        return [own_link(cell, draw, fault_at, local), seen(1)];
    }
    [seen(0), seen(1)]
}

/// MSS of the lab's links (MTU 1500, timestamps): writes held back by Nagle leave as one
/// segment once this much has gathered.
const MSS: f64 = 1448.0;
/// The reference peers frame each record with 5 bytes (type and length).
const FRAME: f64 = 5.0;

/// A client whose segment sent at `sent` was still in flight when its own link went down in
/// its namespace (docs/physics.md, K9a): nothing is ACKed, so the retransmission timer runs.
/// The loss probe at the RTO's deadline fails (__tcp_retransmit_skb: inet_sk_rebuild_header
/// finds no route and records ENETUNREACH as the soft error) and tcp_rearm_rto re-arms for
/// what is left of the RTO, at least a jiffy. Each expiry: tcp_write_timeout (from the second
/// on, icsk_retransmits > 0) gives up once `limit` has passed since retrans_stamp, which the
/// first failed attempt set to the head's own send; else the retransmission fails the same
/// way (a negative error: backed off as usual) and the timer is re-armed for RTO << backoff,
/// clamped to what is left of UT.
fn unacked(
    sent: f64,
    fault_at: f64,
    rto: f64,
    ut: f64,
    n: u32,
    arm: &dyn Fn(f64, f64) -> f64,
) -> Detection {
    let limit = if ut > 0.0 { ut } else { budget(n as u8) };
    let mut t = arm(arm(sent, rto), JIFFY);
    let mut backoff = 0u32;
    loop {
        if backoff > 0 && t - sent >= limit - 1e-9 {
            return Some((t - fault_at, "ENETUNREACH"));
        }
        backoff += 1;
        let mut wait = (rto * 2f64.powi(backoff.min(30) as i32)).min(RTO_MAX);
        if ut > 0.0 {
            let left = ut - (t - sent);
            wait = if left <= 0.0 { JIFFY } else { wait.min(left) };
        }
        t = arm(t, wait);
        if t - fault_at > HORIZON_MS {
            return None;
        }
    }
}

/// A client streaming when its own link is pulled (docs/physics.md, K9a), from the fault on:
/// `local`, in its own namespace (no route: every transmit fails with -EHOSTUNREACH); else at
/// the wire's end (no carrier: the veth drops every transmit, err > 0, until linkwatch acts
/// `draw.linkwatch_ms` after the fault; from then on packets wait in this host's own
/// neighbour entry for the gateway, which fails three 1 s rounds after it was created and
/// answers each waiting packet with a host-unreachable to this host, unlimited).
///
/// TCP side, from the kernel: a write that fails stays unsent and arms the probe timer
/// (tcp_check_probe_timer, the RTO); tcp_probe_timer stamps the first probe, gives up at
/// UT since it or at tcp_retries2 probes, else tcp_send_probe0 counts the probe and waits
/// RTO << backoff (err <= 0) or 500 ms (err > 0), clamped to UT. Writes retry the head too
/// (tcp_push). Once a transmit succeeds (it enters the queue) the retransmission path runs:
/// loss probe, RTO expiries that return -EBUSY while the head's copy waits (counted, backed
/// off, retrans_stamp = the copy's send time), reverts at the entry's failure
/// (tcp_ld_RTO_revert, before tcp_v4_err records the soft error), and tcp_write_timeout.
fn own_link(cell: &Cell, draw: &Draw, fault_at: f64, local: bool) -> Detection {
    let CellTraffic::Stream {
        interval_ms,
        record_bytes,
    } = cell.traffic
    else {
        return None;
    };
    let off = draw.jiffy_offset_ms;
    let arm = |t: f64, d: f64| arm_at(off, t, d);
    let jiffies = |t: f64| ((t + off) / JIFFY).floor();
    let rto = draw.rto_ms;
    let ut = f64::from(cell.client.user_timeout_ms);
    let n = u32::from(cell.tcp_retries2.unwrap_or(15));
    let interval = f64::from(interval_ms);
    let link_ok = if local {
        f64::INFINITY
    } else {
        fault_at + draw.linkwatch_ms
    };
    let done = |t: f64, e: &'static str| Some((t - fault_at, e));
    // Writes fall on multiples of the interval from the connect.
    let mut write = ((fault_at / interval).floor() + 1.0) * interval;
    // In its namespace, the last write before the fault may still be unacknowledged: the
    // retransmission path, from that segment's send.
    let last = write - interval;
    if local && last >= interval && fault_at - last < draw.unacked_ms {
        return unacked(last, fault_at, rto, ut, n, &arm);
    }
    // Phase 1: nothing leaves; the first failed write arms the probe timer.
    let mut s = None;
    if write >= link_ok {
        s = Some(write);
    } else {
        let mut probe = arm(write, rto);
        let (mut stamp, mut probes, mut backoff) = (None::<f64>, 0u32, 0u32);
        while s.is_none() {
            write += interval;
            if write < probe {
                if write >= link_ok {
                    s = Some(write);
                }
                continue;
            }
            write -= interval;
            let t = probe;
            match stamp {
                None => stamp = Some(t),
                Some(st) if ut > 0.0 && jiffies(t) - jiffies(st) >= (ut / JIFFY).ceil() => {
                    return done(t, "ETIMEDOUT")
                }
                _ => {}
            }
            if probes >= n {
                return done(t, "ETIMEDOUT");
            }
            if t >= link_ok {
                s = Some(t);
                break;
            }
            probes += 1;
            let mut wait = if local {
                backoff = (backoff + 1).min(n);
                (rto * 2f64.powi(backoff as i32)).min(RTO_MAX)
            } else {
                500.0
            };
            if ut > 0.0 {
                let elapsed = (jiffies(t) - jiffies(stamp.unwrap_or(t))) * JIFFY;
                wait = wait.min((ut - elapsed).max(2.0 * JIFFY));
            }
            probe = arm(t, wait);
        }
    }
    let s = s.expect("the link carries again");
    // Phase 2: the head waits in a new entry from S; the loss probe, then RTO expiries.
    let fail_after = |t: f64| {
        let mut at = t;
        for _ in 0..3 {
            at = arm(at, 1000.0);
        }
        at
    };
    let limit = if ut > 0.0 { ut } else { budget(n as u8) };
    let mut fails = Some(fail_after(s));
    let (mut head_queued, mut head_sent) = (true, s);
    let mut expiry = arm(arm(s, rto), rto);
    let (mut backoff, mut retransmits) = (0u32, 0u32);
    let mut stamp: Option<f64> = None;
    let mut soft = false;
    // Writes after S gather behind the head (Nagle) and leave a segment each MSS.
    let per_write = f64::from(record_bytes) + FRAME;
    let mut gathered = 0.0;
    write = ((s / interval).floor() + 1.0) * interval;
    loop {
        let fail = fails.unwrap_or(f64::INFINITY);
        let next = expiry.min(fail).min(write);
        if next - fault_at > HORIZON_MS {
            return None;
        }
        if next == write {
            gathered += per_write;
            if gathered >= MSS {
                gathered -= MSS;
                fails.get_or_insert_with(|| fail_after(write));
            }
            write += interval;
            continue;
        }
        let t = next;
        if t == fail {
            fails = None;
            let head = std::mem::take(&mut head_queued);
            let mut now = false;
            if head && retransmits > 0 && backoff > 0 {
                // tcp_ld_RTO_revert, before tcp_v4_err records this ICMP's soft error.
                backoff -= 1;
                let since = ((t - head_sent) / JIFFY).ceil() * JIFFY;
                let rest = (rto * 2f64.powi(backoff as i32)).min(RTO_MAX) - since;
                if rest > 0.0 {
                    expiry = arm(t, rest);
                } else {
                    now = true;
                }
            }
            if !now {
                soft = true;
                continue;
            }
        }
        // tcp_retransmit_timer: tcp_write_timeout, then the head (-EBUSY while it waits).
        if retransmits > 0 && stamp.is_some_and(|st| t - st >= limit - 1e-9) {
            return done(t, if soft { "EHOSTUNREACH" } else { "ETIMEDOUT" });
        }
        retransmits += 1;
        if head_queued {
            stamp.get_or_insert(head_sent);
        } else {
            head_queued = true;
            head_sent = t;
            stamp.get_or_insert(t);
            fails.get_or_insert_with(|| fail_after(t));
        }
        backoff += 1;
        let mut wait = (rto * 2f64.powi(backoff as i32)).min(RTO_MAX);
        if ut > 0.0 {
            let left = ut - (t - stamp.unwrap_or(t));
            wait = if left <= 0.0 { JIFFY } else { wait.min(left) };
        }
        expiry = arm(t, wait);
        if t == fail {
            soft = true;
        }
    }
}

/// The retransmission timer after a retransmission, `since_stamp` ms after the first one
/// (retrans_stamp): one more backoff, the RTO doubled per backoff up to RTO_MAX, clamped to
/// what the user timeout leaves (tcp_clamp_rto_to_user_timeout); or, when an ICMP host- or
/// net-unreachable about the retransmitted head arrives within the jiffy (`revert`),
/// tcp_ld_RTO_revert takes the backoff back and re-arms for the RTO less the time since the
/// segment left (a jiffy, rounded up), unclamped.
fn retransmission_timer(
    rto: f64,
    backoff: &mut u32,
    user_timeout: f64,
    since_stamp: f64,
    revert: bool,
) -> f64 {
    *backoff += 1;
    let backed_off = |backoff: u32| (rto * 2f64.powi(backoff as i32)).min(RTO_MAX);
    if revert {
        *backoff -= 1;
        return backed_off(*backoff) - JIFFY;
    }
    let next = backed_off(*backoff);
    if user_timeout <= 0.0 {
        return next;
    }
    let remaining = user_timeout - since_stamp;
    if remaining <= 0.0 {
        JIFFY
    } else {
        next.min(remaining)
    }
}

#[test]
fn the_wheel_rounds_up_by_at_most_an_eighth() {
    assert_eq!(wheel(1000, 10), 1010);
    // 1 s = 250 jiffies lands in level 1 (8 jiffies = 32 ms): the measured +24..32 ms.
    let late = wheel(1001, 250) - 1251;
    assert!((1..=8).contains(&late), "{late}");
    for delta in [63u64, 500, 1250, 5000, 30_000] {
        let late = wheel(12_345, delta) - (12_345 + delta);
        assert!(late as f64 <= delta as f64 / 8.0 + 1.0, "{delta}: {late}");
    }
}

/// docs/physics.md, K9a: the RTT state a reconnect whose SYN waited in the router's neighbour
/// queue left, against the kernel's own figures (ftrace tcp:tcp_probe's srtt, the writer's
/// retransmissions; the writes' ACKs took ~0.06 ms): the first sample sets RTO = 3 x sample,
/// each ACKed write moves srtt 1/8 of the way down and the RTO with it.
#[test]
fn the_rtt_estimator_gives_the_traced_srtt_and_rto() {
    let after = |first: f64, writes: u32| {
        let mut rtt = Rtt::handshake(first);
        let mut srtts = vec![rtt.srtt_ms()];
        for _ in 0..writes {
            rtt.acked_write(69, 0.06);
            srtts.push(rtt.srtt_ms());
        }
        (rtt, srtts)
    };
    let near = |a: &[f64], b: &[f64]| a.iter().zip(b).all(|(x, y)| (x - y).abs() < 0.15);
    // Reconnect 500 ms after the loss: SYN waited 153.9 ms, srtt then 134.6, 117.8, 103.1 ms.
    let (rtt, srtts) = after(153.870, 4);
    assert!(near(&srtts, &[153.9, 134.6, 117.8, 103.1]), "{srtts:?}");
    assert_eq!(rtt.rto_ms(), 424.0);
    // Reconnect 200 ms after the loss: 363.3, 317.9, 278.1 ms, RTO 1020 ms after three writes.
    let (rtt, srtts) = after(363.254, 3);
    assert!(near(&srtts[..3], &[363.3, 317.9, 278.1]), "{srtts:?}");
    assert_eq!(rtt.rto_ms(), 1020.0);
    // busy-writer-peer-end-twice: 362.5 -> 317.2 -> 277.6 ms, RTO 1044 ms; the loss probe
    // went out 755 ms after the lost write (F+805 ms, the write ~50 ms after F).
    let (rtt, srtts) = after(362.516, 2);
    assert!(near(&srtts, &[362.5, 317.2, 277.6]), "{srtts:?}");
    assert_eq!(rtt.rto_ms(), 1044.0);
    assert_eq!(rtt.loss_probe_ms(rtt.rto_ms()), 756.0);
    // The first sample alone: RTO = 3 x sample, the loss probe 2 x sample + RTO_MIN.
    let rtt = Rtt::handshake(500.0);
    assert_eq!(
        (rtt.rto_ms(), rtt.loss_probe_ms(rtt.rto_ms())),
        (1500.0, 1200.0)
    );
    // A handshake that did not wait: RTO_MIN plus a jiffy, and so is the loss probe.
    let rtt = Rtt::handshake(0.06);
    assert_eq!(
        (rtt.rto_ms(), rtt.loss_probe_ms(rtt.rto_ms())),
        (204.0, 204.0)
    );
    // Many quick ACKs bring it back to the lab's.
    let (rtt, _) = after(1000.0, 200);
    assert_eq!(rtt.rto_ms(), 204.0);
}

#[test]
fn the_simulation_reproduces_the_measured_figures() {
    let draw = Draw {
        jiffy_offset_ms: 1.0,
        fault_shift_ms: 0.0,
        rto_ms: 208.0,
        window_bytes: 1e6,
        linkwatch_ms: 0.0,
        answer_ms: 0.1,
        unacked_ms: 0.0,
    };
    // Seed cable pull, 3s/1s/10 idle: measured 11.29 s after the fault.
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scenarios/seed-cable-pull.toml"
    ))
    .unwrap();
    assert!(text.contains("count = 10"));
    let side = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 3,
            interval_s: 1,
            count: 10,
        }),
        user_timeout_ms: 0,
    };
    let cell = Cell {
        seed: 0,
        client: side,
        server: side,
        traffic: CellTraffic::Idle,
        tcp_retries2: None,
        fault: CellFault::CablePull,
        at_ms: 2000,
        end_ms: 30_000,
    };
    let [c, s] = simulate(&cell, &draw);
    let (t, e) = c.unwrap();
    assert!(
        (10_000.0..14_000.0).contains(&t) && e == "ETIMEDOUT",
        "{t} {e}"
    );
    assert_eq!(s.unwrap().1, "ETIMEDOUT");
    // One-way drop to the server, server 1/1/2, client 1/1/5: the server gives up first and
    // its RST gets through: client ECONNRESET at ~2.07 s.
    let ka = |count| flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count,
        }),
        user_timeout_ms: 0,
    };
    let one_way = Cell {
        client: ka(5),
        server: ka(2),
        fault: CellFault::Drop {
            to_server: true,
            to_client: false,
        },
        ..cell.clone()
    };
    let [c, s] = simulate(&one_way, &draw);
    assert_eq!(c.unwrap().1, "ECONNRESET");
    assert!((1000.0..3200.0).contains(&c.unwrap().0), "{c:?}");
    assert_eq!(s.unwrap().1, "ETIMEDOUT");
    // Busy writer, UT 3 s, client writes every 100 ms: measured 3.42-3.51 s.
    let writer = Cell {
        client: flatline::fidelity::SideCell {
            keepalive: Some(flatline::fidelity::Ka {
                idle_s: 1,
                interval_s: 1,
                count: 3,
            }),
            user_timeout_ms: 3000,
        },
        server: ka(3),
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        fault: CellFault::Drop {
            to_server: true,
            to_client: true,
        },
        ..cell.clone()
    };
    let [c, _] = simulate(&writer, &draw);
    let (t, e) = c.unwrap();
    assert!((3400.0..3600.0).contains(&t) && e == "ETIMEDOUT", "{t} {e}");
    // ... and with tcp_retries2 = 5 and no UT: measured 13.47 s.
    let mut retries = writer.clone();
    retries.client.user_timeout_ms = 0;
    retries.tcp_retries2 = Some(5);
    let [c, _] = simulate(&retries, &draw);
    let (t, _) = c.unwrap();
    assert!((13_000.0..14_000.0).contains(&t), "{t}");
}

#[test]
fn the_simulation_reproduces_the_icmp_revert_under_the_rate_limit() {
    // Fidelity seed 1795913188: client UT 4 s, writing 64 B every 300 ms, the wire answering
    // ICMP host-unreachable. Measured (ftrace): first lost write F+96 ms, loss probe F+303,
    // first retransmission F+511, then reverted 204 ms rounds while the wire's bucket lasts
    // (7 ICMPs), 420 ms, 832 ms rounds, and the ICMP at F+4.97 s re-armed the timer 832 ms
    // past the clamped expiry at F+4.51 s: EHOSTUNREACH at 5.28 s.
    let cell = Cell::random(1_795_913_188);
    assert_eq!(cell.fault, CellFault::Icmp { port: false });
    let draw = Draw {
        jiffy_offset_ms: 1.0,
        // Writes fall every 300 ms from the connect; the fault 96 ms before the next one.
        fault_shift_ms: 4.0,
        rto_ms: 204.0,
        window_bytes: 1e6,
        linkwatch_ms: 0.0,
        answer_ms: 0.1,
        unacked_ms: 0.0,
    };
    let [c, _] = simulate(&cell, &draw);
    let (t, e) = c.unwrap();
    assert_eq!(e, "EHOSTUNREACH");
    assert!((5200.0..5350.0).contains(&t), "{t}");
    // Without the revert the clamp would end it at the first retransmission + UT.
    assert!(t > 511.0 + 4000.0 + 500.0, "{t}");
}

#[test]
fn the_simulation_reproduces_the_routers_neighbour_failure() {
    // docs/physics.md K9a, traced: UT 3 s, 64 B every 100 ms, the server's own end pulled:
    // the router's entry starts with the lost write (F+97 ms) and FAILS at F+3.15 s with five
    // host-unreachables; EHOSTUNREACH at the clamped give-up, 3.515 s. UT 2 s gives up at
    // 2.52 s, before the entry fails: ETIMEDOUT.
    let ka = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 0,
    };
    let cell = |ut: u32, retries2: Option<u8>| Cell {
        seed: 0,
        client: flatline::fidelity::SideCell {
            user_timeout_ms: ut,
            ..ka
        },
        server: ka,
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        tcp_retries2: retries2,
        fault: CellFault::PeerEnd,
        at_ms: 2000,
        end_ms: 30_000,
    };
    let draw = Draw {
        jiffy_offset_ms: 1.0,
        // Writes fall every 100 ms from the connect; the fault 97 ms before the next one.
        fault_shift_ms: 3.0,
        rto_ms: 204.0,
        window_bytes: 1e6,
        linkwatch_ms: 0.0,
        answer_ms: 0.1,
        unacked_ms: 0.0,
    };
    let [c, s] = simulate(&cell(3000, None), &draw);
    let (t, e) = c.unwrap();
    assert_eq!(e, "EHOSTUNREACH");
    assert!((3450.0..3600.0).contains(&t), "{t}");
    // The server's own link is down: its keepalive runs out as on a drop.
    assert_eq!(s.unwrap().1, "ETIMEDOUT");
    let [c, _] = simulate(&cell(2000, None), &draw);
    let (t, e) = c.unwrap();
    assert_eq!(e, "ETIMEDOUT");
    assert!((2450.0..2600.0).contains(&t), "{t}");
    // tcp_retries2 = 5: measured 13.47 s, EHOSTUNREACH.
    let [c, _] = simulate(&cell(0, Some(5)), &draw);
    let (t, e) = c.unwrap();
    assert_eq!(e, "EHOSTUNREACH");
    assert!((13_000.0..15_100.0).contains(&t), "{t}");
}

#[test]
fn the_simulation_reproduces_the_writers_own_link_pulled() {
    // docs/physics.md K9a, measured with 64 B every 100 ms. At the wire's end: tcp_retries2 5,
    // EHOSTUNREACH 15.44-15.46 s with linkwatch at once and 16.45 s with it ~1 s late; UT 3 s,
    // ETIMEDOUT 3.12 s and 4.10-4.13 s; UT 5 s, EHOSTUNREACH 5.23-6.02 s. In its namespace:
    // UT 3 s, ETIMEDOUT 3.21-3.31 s; tcp_retries2 5, 13.19-13.31 s.
    let ka = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 0,
    };
    let cell = |local: bool, ut: u32, retries2: Option<u8>| Cell {
        seed: 0,
        client: flatline::fidelity::SideCell {
            keepalive: None,
            user_timeout_ms: ut,
        },
        server: ka,
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        tcp_retries2: retries2,
        fault: CellFault::OwnLink { local },
        at_ms: 2000,
        end_ms: 30_000,
    };
    let run = |c: &Cell, linkwatch_ms: f64| {
        let draw = Draw {
            jiffy_offset_ms: 1.0,
            // The fault 2 ms after a write: the next one 98 ms later.
            fault_shift_ms: 2.0,
            rto_ms: 204.0,
            window_bytes: 1e6,
            linkwatch_ms,
            answer_ms: 0.1,
            unacked_ms: 0.0,
        };
        let [c, s] = simulate(c, &draw);
        assert_eq!(s.unwrap().1, "ETIMEDOUT");
        c.unwrap()
    };
    let (t, e) = run(&cell(false, 0, Some(5)), 0.0);
    assert!(
        (15_300.0..15_600.0).contains(&t) && e == "EHOSTUNREACH",
        "{t} {e}"
    );
    let (t, e) = run(&cell(false, 0, Some(5)), 1000.0);
    assert!(
        (16_300.0..16_600.0).contains(&t) && e == "EHOSTUNREACH",
        "{t} {e}"
    );
    let (t, e) = run(&cell(false, 3000, None), 0.0);
    assert!((3050.0..3200.0).contains(&t) && e == "ETIMEDOUT", "{t} {e}");
    let (t, e) = run(&cell(false, 3000, None), 1000.0);
    assert!((4000.0..4250.0).contains(&t) && e == "ETIMEDOUT", "{t} {e}");
    let (t, e) = run(&cell(false, 5000, None), 500.0);
    assert!(
        (5100.0..6100.0).contains(&t) && e == "EHOSTUNREACH",
        "{t} {e}"
    );
    let (t, e) = run(&cell(true, 3000, None), 0.0);
    assert!((3200.0..3350.0).contains(&t) && e == "ETIMEDOUT", "{t} {e}");
    let (t, e) = run(&cell(true, 0, Some(5)), 0.0);
    assert!(
        (13_000.0..13_400.0).contains(&t) && e == "ETIMEDOUT",
        "{t} {e}"
    );
}

#[test]
fn the_simulation_reproduces_a_segment_in_flight_at_the_pull() {
    // docs/physics.md K9a, traced (64 B every 100 ms, the client's own link down in its
    // namespace): a write 0.12 ms before the pull, never ACKed: retransmissions at 217, 649,
    // 1481 ms, all failing, ENETUNREACH 3.017 s with UT 3 s; a write 1.8 ms before it with
    // tcp_retries2 3: ENETUNREACH 3.134 s. The same cells with the write ACKed: ETIMEDOUT.
    let cell = |ut: u32, retries2: Option<u8>| Cell {
        seed: 0,
        client: flatline::fidelity::SideCell {
            keepalive: None,
            user_timeout_ms: ut,
        },
        server: flatline::fidelity::SideCell {
            keepalive: None,
            user_timeout_ms: 0,
        },
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        tcp_retries2: retries2,
        fault: CellFault::OwnLink { local: true },
        at_ms: 2000,
        end_ms: 30_000,
    };
    let run = |c: &Cell, fault_shift_ms: f64, unacked_ms: f64| {
        let draw = Draw {
            jiffy_offset_ms: 1.0,
            fault_shift_ms,
            rto_ms: 208.0,
            window_bytes: 1e6,
            linkwatch_ms: 0.0,
            answer_ms: 0.1,
            unacked_ms,
        };
        simulate(c, &draw)[0].unwrap()
    };
    let (t, e) = run(&cell(3000, None), 0.12, 1.0);
    assert!(
        (2990.0..3040.0).contains(&t) && e == "ENETUNREACH",
        "{t} {e}"
    );
    let (t, e) = run(&cell(0, Some(3)), 1.8, 2.0);
    assert!(
        (3100.0..3250.0).contains(&t) && e == "ENETUNREACH",
        "{t} {e}"
    );
    // ACKed in time: the probe timer, one RTO later.
    let (t, e) = run(&cell(3000, None), 0.12, 0.1);
    assert!((3200.0..3350.0).contains(&t) && e == "ETIMEDOUT", "{t} {e}");
}

#[test]
fn an_answer_that_meets_the_missing_route_is_the_clients_soft_error() {
    // scenarios/compare/bench-matrix.toml, cable pull, 1s/1s/3 + UT 2 s on both sides, the
    // server's cable pulled at the wire 1 s after the connect: the server's first probe is due
    // then. If it crosses the router just before the route goes and the client's ACK just
    // after, the ACK draws net-unreachable, in window: ENETUNREACH at the client's give-up
    // (a window of tens of microseconds, docs/physics.md K9a); otherwise ETIMEDOUT.
    let side = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 2000,
    };
    let cell = Cell {
        seed: 0,
        client: side,
        server: side,
        traffic: CellTraffic::Idle,
        tcp_retries2: None,
        fault: CellFault::CablePull,
        at_ms: 1000,
        end_ms: 10_000,
    };
    let draw = |fault_shift_ms: f64, answer_ms: f64| Draw {
        jiffy_offset_ms: 0.0,
        fault_shift_ms,
        rto_ms: 204.0,
        window_bytes: 1e6,
        linkwatch_ms: 0.0,
        answer_ms,
        unacked_ms: 0.0,
    };
    // The server's probe fires at 1000 ms on the wheel (jiffy 250 lands in level 1 and is
    // rounded up to jiffy 256: 1024 ms); the fault 1 ms after it, the answer 2 ms after it.
    let [c, s] = simulate(&cell, &draw(25.0, 2.0));
    assert_eq!(c.unwrap().1, "ENETUNREACH", "{c:?}");
    assert_eq!(s.unwrap().1, "ETIMEDOUT");
    // The answer before the fault, or the fault before the probe: ETIMEDOUT.
    for (shift, answer) in [(25.0, 0.5), (20.0, 2.0)] {
        let [c, _] = simulate(&cell, &draw(shift, answer));
        assert_eq!(c.unwrap().1, "ETIMEDOUT", "{shift} {answer}");
    }
}

#[test]
fn an_idle_clients_own_link_pulled_at_the_wire_holds_a_probe_back_until_linkwatch_acts() {
    // docs/physics.md K9a, measured: idle, 1s/1s/3 on both sides, the client's own link pulled
    // at the wire: the server ETIMEDOUT 3.10-3.13 s, the client half a second later (a probe
    // dropped by its own device while linkwatch waited, retried 500 ms later, uncounted).
    let side = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 0,
    };
    let cell = Cell {
        seed: 0,
        client: side,
        server: side,
        traffic: CellTraffic::Idle,
        tcp_retries2: None,
        fault: CellFault::OwnLink { local: false },
        at_ms: 2000,
        end_ms: 10_000,
    };
    let draw = |linkwatch_ms: f64| Draw {
        jiffy_offset_ms: 0.0,
        fault_shift_ms: 250.0,
        rto_ms: 204.0,
        window_bytes: 1e6,
        linkwatch_ms,
        answer_ms: 0.0,
        unacked_ms: 0.0,
    };
    // Linkwatch acts before the client's next probe: both give up together.
    let [c, s] = simulate(&cell, &draw(100.0));
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!((c.1, s.1), ("ETIMEDOUT", "ETIMEDOUT"));
    assert!((c.0 - s.0).abs() <= 8.0, "{c:?} {s:?}");
    // After it: the client's first probe goes 500 ms later, and so does its give-up.
    let [c, s] = simulate(&cell, &draw(1000.0));
    let (c, s) = (c.unwrap(), s.unwrap());
    assert_eq!((c.1, s.1), ("ETIMEDOUT", "ETIMEDOUT"));
    assert!((492.0..=540.0).contains(&(c.0 - s.0)), "{c:?} {s:?}");
    // The client's last probe before the pull (jiffy 256 + 250 on the wheel's level 1: 2048 ms)
    // crosses the router, the server's ACK meets the missing route: net-unreachable, in
    // window, the server's soft error.
    let [_, s] = simulate(
        &cell,
        &Draw {
            fault_shift_ms: 49.0,
            answer_ms: 2.0,
            ..draw(100.0)
        },
    );
    assert_eq!(s.unwrap().1, "ENETUNREACH", "{s:?}");
}

/// K7 in the simulation: the server's packets dropped while the client streams
/// (tcp_retries2 4): the client gives up by its retransmissions, the server's keepalive
/// (5s/4s/1) counts from the client's last retransmission that reached it. Measured:
/// client 6.82 s, server 12.71 s, both ETIMEDOUT.
#[test]
fn a_writer_behind_a_one_way_drop_feeds_the_servers_keepalive() {
    let ka = |idle_s, interval_s, count| flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s,
            interval_s,
            count,
        }),
        user_timeout_ms: 0,
    };
    let cell = Cell {
        seed: 0,
        client: ka(3, 5, 3),
        server: ka(5, 4, 1),
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        tcp_retries2: Some(4),
        fault: CellFault::Drop {
            to_server: false,
            to_client: true,
        },
        at_ms: 2000,
        end_ms: 30_000,
    };
    let draw = Draw {
        jiffy_offset_ms: 0.0,
        fault_shift_ms: 0.0,
        rto_ms: 204.0,
        window_bytes: 65536.0,
        linkwatch_ms: 0.0,
        answer_ms: 0.0,
        unacked_ms: 0.0,
    };
    let [c, s] = simulate(&cell, &draw);
    let (c, s) = (c.unwrap(), s.unwrap());
    assert!(
        (6500.0..7000.0).contains(&c.0) && c.1 == "ETIMEDOUT",
        "{c:?}"
    );
    // Not 9 s after the fault (a server fed nothing since) nor after the client's give-up.
    assert!(
        (12_300.0..12_900.0).contains(&s.0) && s.1 == "ETIMEDOUT",
        "{s:?}"
    );
}

#[test]
fn the_simulation_reproduces_a_second_fault_that_finds_the_bucket_short() {
    // scenarios/busy-writer-reject-twice.toml (docs/physics.md, K9): UT 6 s, 64 B every
    // 100 ms, rejected with ICMP host-unreachable 1.3 s after an earlier reject whose ICMPs
    // (the last at F1+1.33 s) spent the wire's bucket towards the client: it holds ~2.2 s of
    // tokens at the fault. Measured 7.97-7.99 s, traced with the intervals at 1.6 s before the
    // limit; the same fault with a full bucket gives up at the clamp.
    let ka = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 0,
    };
    let cell = Cell {
        seed: 0,
        client: flatline::fidelity::SideCell {
            user_timeout_ms: 6000,
            ..ka
        },
        server: ka,
        traffic: CellTraffic::Stream {
            interval_ms: 100,
            record_bytes: 64,
        },
        tcp_retries2: None,
        fault: CellFault::Icmp { port: false },
        at_ms: 2000,
        end_ms: 30_000,
    };
    let draw = Draw {
        jiffy_offset_ms: 1.0,
        // Writes fall every 100 ms from the connect; the fault 96 ms before the next one.
        fault_shift_ms: 4.0,
        rto_ms: 204.0,
        window_bytes: 1e6,
        linkwatch_ms: 0.0,
        answer_ms: 0.1,
        unacked_ms: 0.0,
    };
    let (t, e) = simulate_after(&cell, &draw, Some(2250.0))[0].unwrap();
    assert_eq!(e, "EHOSTUNREACH");
    assert!((7900.0..8050.0).contains(&t), "{t}");
    let (full, _) = simulate(&cell, &draw)[0].unwrap();
    assert!(full < 7000.0, "{full}");
}

#[test]
fn the_simulation_reproduces_a_writer_behind_the_missing_route() {
    // docs/physics.md K9a, measured (`flatline run` of scenarios like
    // scenarios/busy-writer-cable-pull.toml: 64 B every `interval`, the server's cable pulled
    // at the wire): ENETUNREACH at (UT or tcp_retries2, interval ms, seconds after the pull).
    // Every packet draws on ip_error's bucket (two ratelimits a message, 5 s held), each
    // net-unreachable about a retransmitted head reverts a backoff. The simulation, over the
    // fault's phase against the writes and the lab's RTOs, must bracket each figure.
    let ka = flatline::fidelity::SideCell {
        keepalive: Some(flatline::fidelity::Ka {
            idle_s: 1,
            interval_s: 1,
            count: 3,
        }),
        user_timeout_ms: 0,
    };
    let measured: [(u32, Option<u8>, u32, &[f64]); 8] = [
        (2000, None, 100, &[2.52]),
        (3000, None, 100, &[5.05, 5.06, 5.07, 5.08]),
        (3000, None, 250, &[5.20]),
        (4000, None, 200, &[5.16]),
        (6000, None, 50, &[6.47]),
        (8000, None, 300, &[8.56]),
        (0, Some(5), 100, &[15.23]),
        // A full bucket at the fault: the same UT 7 s cell alone (K9, two faults).
        (7000, None, 100, &[7.51, 7.62]),
    ];
    for (ut, retries2, interval_ms, figures) in measured {
        let cell = Cell {
            seed: 0,
            client: flatline::fidelity::SideCell {
                user_timeout_ms: ut,
                ..ka
            },
            server: ka,
            traffic: CellTraffic::Stream {
                interval_ms,
                record_bytes: 64,
            },
            tcp_retries2: retries2,
            fault: CellFault::CablePull,
            at_ms: 2000,
            end_ms: 30_000,
        };
        let (mut lo, mut hi) = (f64::INFINITY, 0f64);
        for rto_ms in [204.0, 208.0, 212.0, 216.0, 220.0] {
            for k in 0..interval_ms / 10 {
                let draw = Draw {
                    jiffy_offset_ms: 1.0,
                    fault_shift_ms: f64::from(k) * 10.0,
                    rto_ms,
                    window_bytes: 1e6,
                    linkwatch_ms: 0.0,
                    answer_ms: 0.1,
                    unacked_ms: 0.0,
                };
                let (t, e) = simulate(&cell, &draw)[0].unwrap();
                assert_eq!(e, "ENETUNREACH", "UT {ut} {interval_ms} ms: {t}");
                (lo, hi) = (lo.min(t), hi.max(t));
            }
        }
        for f in figures {
            let t = f * 1000.0;
            // The lab's stamp and the peer's read add a few ms; the simulation's phases are
            // 10 ms apart.
            assert!(
                (lo - 40.0..=hi + 40.0).contains(&t),
                "UT {ut} tcp_retries2 {retries2:?} {interval_ms} ms: measured {t}, simulated {lo}-{hi}"
            );
        }
    }
}
