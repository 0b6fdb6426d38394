//! Delay and jitter on the wire without netem: forwarded packets are queued to userspace
//! (nfqueue) in the wire namespace and released at their departure time.
//!
//! This kernel has no netem (`CONFIG_NET_SCH_NETEM` unset), no fq qdisc (so no earliest
//! departure time) and no nft `queue` expression (`CONFIG_NFT_QUEUE` unset); it has
//! nfnetlink_queue and the xtables `NFQUEUE` target, which `iptables` (the nf_tables backend,
//! through nft_compat) puts in the wire's forward hook. A thread of the runner, in the wire
//! namespace, holds each packet and gives the kernel its verdict when it is due: no process,
//! link or rule of its own outlives the run (the rule lives in the wire namespace, the thread
//! in the runner).
//!
//! Semantics: `delay` is added to each direction (so the round trip grows by twice `delay`);
//! `jitter` spreads each packet's delay uniformly over `delay - jitter ..= delay + jitter`;
//! packets of one direction never overtake each other (a packet leaves no earlier than the
//! one before it in its direction, as on a real link), so jitter does not reorder segments
//! and cause spurious fast retransmits.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use serde::{Deserialize, Serialize};

use crate::duration::Dur;

/// The queue number the wire's rule sends packets to (the wire namespace has its own queues).
pub const QUEUE_NUM: u16 = 0;

/// Most packets held at once; beyond it the kernel drops, as a full router buffer does.
const QUEUE_MAX_LEN: u32 = 8192;

/// Bytes of each packet copied to us: its IPv4 header (the direction is its destination).
const COPY_RANGE: u32 = 20;

/// `[wire]` of a scenario: delay and jitter added to every packet the wire forwards.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
pub struct WireDelay {
    /// Added to each direction: the round trip grows by twice this.
    pub delay: Dur,
    /// Each packet's delay is uniform in `delay - jitter ..= delay + jitter`; no reordering.
    pub jitter: Dur,
}

impl WireDelay {
    pub fn is_off(&self) -> bool {
        self.delay.0.is_zero() && self.jitter.0.is_zero()
    }

    /// The round trip the wire adds, in ms (the mean: jitter averages out).
    pub fn added_rtt_ms(&self) -> f64 {
        2.0 * self.delay.as_secs_f64() * 1000.0
    }

    /// The shortest and longest round trip added, ms: 2 * (delay -+ jitter).
    pub fn added_rtt_range_ms(&self) -> (f64, f64) {
        let (d, j) = (self.delay.as_secs_f64(), self.jitter.as_secs_f64());
        (2000.0 * (d - j).max(0.0), 2000.0 * (d + j))
    }

    /// The commands that put the wire's forwarded packets in the queue, as a user would type
    /// them inside the wire namespace.
    pub fn rule(&self) -> String {
        format!("iptables -t mangle -A FORWARD -j NFQUEUE --queue-num {QUEUE_NUM}")
    }

    /// What the record says the wire does.
    pub fn describe(&self) -> String {
        format!(
            "{}; each packet held {} +- {} per direction by flatline's nfqueue thread, no reordering",
            self.rule(),
            self.delay,
            self.jitter
        )
    }
}

/// Which way a packet crosses the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    ToServer,
    ToClient,
}

impl Direction {
    /// From a packet's IPv4 header: to the server's network or not.
    pub fn of(ipv4_header: &[u8]) -> Direction {
        let server = crate::lab::SERVER_ADDR.octets();
        match ipv4_header.get(16..19) {
            Some(dst) if dst == &server[..3] => Direction::ToServer,
            _ => Direction::ToClient,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When each packet leaves: the pure part of the delayer, with its own random numbers
/// (splitmix64), so a test can drive it with a fake clock.
#[derive(Debug)]
pub struct DelayLine {
    delay_ns: u64,
    jitter_ns: u64,
    last: [u64; 2],
    state: u64,
}

impl DelayLine {
    pub fn new(config: &WireDelay, seed: u64) -> DelayLine {
        DelayLine {
            delay_ns: config.delay.0.as_nanos() as u64,
            jitter_ns: config.jitter.0.as_nanos() as u64,
            last: [0; 2],
            state: seed,
        }
    }

    fn next_random(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// The departure time of a packet that arrived at `arrival_ns` going `dir`.
    pub fn departure(&mut self, dir: Direction, arrival_ns: u64) -> u64 {
        let hold = if self.jitter_ns == 0 {
            self.delay_ns
        } else {
            let span = 2 * self.jitter_ns + 1;
            (self.delay_ns + self.next_random() % span).saturating_sub(self.jitter_ns)
        };
        let at = (arrival_ns + hold).max(self.last[dir.index()]);
        self.last[dir.index()] = at;
        at
    }
}

/// What the delayer did, for the record and `flatline bench`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct DelayStats {
    /// Packets held, per direction.
    pub to_server: u64,
    pub to_client: u64,
    /// How much later than its departure time each packet's verdict went out (µs): the
    /// delayer's own error, on top of the delay it meant to add.
    pub late_median_us: f64,
    pub late_p99_us: f64,
    pub late_max_us: f64,
    /// CPU time of the delayer's thread per packet (µs).
    pub cpu_per_packet_us: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum DelayError {
    #[error("failed to open the wire's nfqueue {QUEUE_NUM} (nfnetlink_queue)")]
    Open(#[source] std::io::Error),
    #[error("the delayer thread ended before it was ready")]
    Gone,
}

/// The running delayer: a thread in the wire namespace. Stopping it (or dropping it) ends it;
/// the packets it still holds are dropped by the kernel when its socket closes.
#[must_use = "dropping the delayer stops the wire's delay"]
pub struct Delayer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<DelayStats>>,
}

impl Delayer {
    /// Starts the delayer in the namespace held by `netns` and returns once its queue is
    /// bound; the caller then adds [`WireDelay::rule`].
    pub fn start(netns: RawFd, config: WireDelay) -> Result<Delayer, DelayError> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = mpsc::channel();
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("flatline-delay".into())
            .spawn(move || {
                let queue = match enter_and_bind(netns) {
                    Ok(q) => {
                        let _ = ready_tx.send(Ok(()));
                        q
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return DelayStats::default();
                    }
                };
                run(queue, config, &flag)
            })
            .map_err(DelayError::Open)?;
        match ready_rx.recv() {
            Ok(Ok(())) => Ok(Delayer {
                stop,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(DelayError::Open(e))
            }
            Err(_) => Err(DelayError::Gone),
        }
    }

    /// Stops the thread and returns what it did.
    pub fn stop(mut self) -> DelayStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Delayer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn enter_and_bind(netns: RawFd) -> std::io::Result<Socket> {
    // This thread is ours alone: it may change namespace (never a tokio worker).
    // SAFETY: setns on the calling thread with a namespace descriptor the lab holds open.
    if unsafe { libc::setns(netns, libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // Wake-ups on time: the default 50 µs timer slack would add to every packet's delay.
    // SAFETY: prctl with an integer argument.
    unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1u64) };
    let mut socket = Socket::new(NETLINK_NETFILTER)?;
    socket.bind_auto()?;
    let _ = socket.set_rx_buf_sz(4 << 20);
    let _ = socket.set_no_enobufs(true);
    for msg in nfq::bind(QUEUE_NUM, COPY_RANGE, QUEUE_MAX_LEN) {
        socket.send(&msg, 0)?;
        expect_ack(&socket)?;
    }
    socket.set_non_blocking(true)?;
    Ok(socket)
}

fn expect_ack(socket: &Socket) -> std::io::Result<()> {
    let mut buf = vec![0u8; 8192];
    let n = socket.recv(&mut &mut buf[..], 0)?;
    match nfq::ack_error(&buf[..n]) {
        Some(0) | None => Ok(()),
        Some(errno) => Err(std::io::Error::from_raw_os_error(errno)),
    }
}

struct Held {
    id: u32,
    due: u64,
}

fn thread_cpu_ns() -> u64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(|t| t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64)
        .unwrap_or(0)
}

/// The loop: take packets in, let each go when due, until told to stop.
fn run(socket: Socket, config: WireDelay, stop: &AtomicBool) -> DelayStats {
    let now = crate::clock::now_ns;
    let mut line = DelayLine::new(&config, now());
    let mut held: [VecDeque<Held>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut late_ns: Vec<u64> = Vec::new();
    let mut counts = [0u64; 2];
    let mut buf = vec![0u8; 1 << 16];
    let cpu_start = thread_cpu_ns();
    let fd = socket.as_raw_fd();
    while !stop.load(Ordering::Relaxed) {
        // Release what is due.
        let t = now();
        for queue in held.iter_mut() {
            while queue.front().is_some_and(|h| h.due <= t) {
                let h = queue.pop_front().expect("front exists");
                // A verdict that fails leaves the packet to the kernel, which drops it when
                // the socket closes: as lost on a real link.
                let _ = socket.send(&nfq::verdict_accept(QUEUE_NUM, h.id), 0);
                late_ns.push(now().saturating_sub(h.due));
            }
        }
        // Sleep until the next departure or the next packet (at most 20 ms: the stop flag).
        let next = held.iter().filter_map(|q| q.front().map(|h| h.due)).min();
        let wait = next
            .map(|d| d.saturating_sub(now()))
            .unwrap_or(20_000_000)
            .min(20_000_000);
        if wait > 0 && !wait_readable(fd, wait) {
            continue;
        }
        // Take every packet waiting.
        while let Ok(n) = socket.recv(&mut &mut buf[..], 0) {
            let arrival = now();
            for p in nfq::packets(&buf[..n]) {
                let dir = Direction::of(p.payload);
                counts[dir.index()] += 1;
                held[dir.index()].push_back(Held {
                    id: p.id,
                    due: line.departure(dir, arrival),
                });
            }
        }
    }
    let cpu = thread_cpu_ns().saturating_sub(cpu_start);
    stats(counts, late_ns, cpu)
}

fn stats(counts: [u64; 2], mut late_ns: Vec<u64>, cpu_ns: u64) -> DelayStats {
    late_ns.sort_unstable();
    let pick = |q: f64| -> f64 {
        if late_ns.is_empty() {
            return 0.0;
        }
        let i = ((late_ns.len() - 1) as f64 * q).round() as usize;
        (late_ns[i] as f64 / 1000.0 * 10.0).round() / 10.0
    };
    let packets = counts[0] + counts[1];
    DelayStats {
        to_server: counts[Direction::ToServer.index()],
        to_client: counts[Direction::ToClient.index()],
        late_median_us: pick(0.5),
        late_p99_us: pick(0.99),
        late_max_us: pick(1.0),
        cpu_per_packet_us: if packets == 0 {
            0.0
        } else {
            (cpu_ns as f64 / packets as f64 / 1000.0 * 10.0).round() / 10.0
        },
    }
}

/// Waits up to `ns` for `fd` to be readable (ppoll: nanosecond timeout, no ms rounding).
fn wait_readable(fd: RawFd, ns: u64) -> bool {
    let mut pfd = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    let ts = libc::timespec {
        tv_sec: (ns / 1_000_000_000) as libc::time_t,
        tv_nsec: (ns % 1_000_000_000) as libc::c_long,
    };
    // SAFETY: one valid pollfd, a valid timespec, no signal mask change.
    let r = unsafe { libc::ppoll(&mut pfd, 1, &ts, std::ptr::null()) };
    r > 0
}

/// The nfnetlink_queue messages we send and read (include/uapi/linux/netfilter/nfnetlink_queue.h).
pub mod nfq {
    const NFNL_SUBSYS_QUEUE: u16 = 3;
    const NFQNL_MSG_PACKET: u16 = 0;
    const NFQNL_MSG_VERDICT: u16 = 1;
    const NFQNL_MSG_CONFIG: u16 = 2;
    const NLMSG_ERROR: u16 = 2;
    const NLM_F_REQUEST: u16 = 1;
    const NLM_F_ACK: u16 = 4;
    const NFQA_CFG_CMD: u16 = 1;
    const NFQA_CFG_PARAMS: u16 = 2;
    const NFQA_CFG_QUEUE_MAXLEN: u16 = 3;
    const NFQNL_CFG_CMD_BIND: u8 = 1;
    const NFQNL_COPY_PACKET: u8 = 2;
    const NFQA_PACKET_HDR: u16 = 1;
    const NFQA_VERDICT_HDR: u16 = 2;
    const NFQA_PAYLOAD: u16 = 10;
    const NF_ACCEPT: u32 = 1;

    /// One netlink message: header, nfgenmsg (AF_UNSPEC, version 0, the queue), attributes.
    fn message(kind: u16, flags: u16, queue: u16, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
        let mut m = vec![0u8; 16];
        m[4..6].copy_from_slice(&((NFNL_SUBSYS_QUEUE << 8) | kind).to_ne_bytes());
        m[6..8].copy_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
        m.extend_from_slice(&[0, 0]);
        m.extend_from_slice(&queue.to_be_bytes());
        for (ty, data) in attrs {
            m.extend_from_slice(&((4 + data.len()) as u16).to_ne_bytes());
            m.extend_from_slice(&ty.to_ne_bytes());
            m.extend_from_slice(data);
            while !m.len().is_multiple_of(4) {
                m.push(0);
            }
        }
        let len = m.len() as u32;
        m[0..4].copy_from_slice(&len.to_ne_bytes());
        m
    }

    /// Bind the queue, copy `copy_range` bytes of each packet, hold up to `max_len`.
    pub fn bind(queue: u16, copy_range: u32, max_len: u32) -> Vec<Vec<u8>> {
        let mut params = copy_range.to_be_bytes().to_vec();
        params.push(NFQNL_COPY_PACKET);
        vec![
            message(
                NFQNL_MSG_CONFIG,
                NLM_F_ACK,
                queue,
                &[(NFQA_CFG_CMD, vec![NFQNL_CFG_CMD_BIND, 0, 0, 0])],
            ),
            message(
                NFQNL_MSG_CONFIG,
                NLM_F_ACK,
                queue,
                &[(NFQA_CFG_PARAMS, params)],
            ),
            message(
                NFQNL_MSG_CONFIG,
                NLM_F_ACK,
                queue,
                &[(NFQA_CFG_QUEUE_MAXLEN, max_len.to_be_bytes().to_vec())],
            ),
        ]
    }

    /// Let packet `id` go on.
    pub fn verdict_accept(queue: u16, id: u32) -> Vec<u8> {
        let mut hdr = NF_ACCEPT.to_be_bytes().to_vec();
        hdr.extend_from_slice(&id.to_be_bytes());
        message(NFQNL_MSG_VERDICT, 0, queue, &[(NFQA_VERDICT_HDR, hdr)])
    }

    /// The errno of an acknowledgement (0: success), None if `buf` holds no NLMSG_ERROR.
    pub fn ack_error(buf: &[u8]) -> Option<i32> {
        messages(buf)
            .find(|(ty, _)| *ty == NLMSG_ERROR)
            .and_then(|(_, body)| body.get(0..4))
            .map(|e| i32::from_ne_bytes(e.try_into().expect("4 bytes")).abs())
    }

    /// A queued packet: its id and the bytes copied.
    #[derive(Debug, PartialEq, Eq)]
    pub struct Packet<'a> {
        pub id: u32,
        pub payload: &'a [u8],
    }

    fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
        let mut rest = buf;
        std::iter::from_fn(move || {
            if rest.len() < 16 {
                return None;
            }
            let len = u32::from_ne_bytes(rest[0..4].try_into().ok()?) as usize;
            if len < 16 || len > rest.len() {
                return None;
            }
            let ty = u16::from_ne_bytes(rest[4..6].try_into().ok()?);
            let body = &rest[16..len];
            rest = &rest[((len + 3) & !3).min(rest.len())..];
            Some((ty, body))
        })
    }

    /// The packets in a buffer read from the queue's socket.
    pub fn packets(buf: &[u8]) -> impl Iterator<Item = Packet<'_>> {
        messages(buf).filter_map(|(ty, body)| {
            if ty != (NFNL_SUBSYS_QUEUE << 8) | NFQNL_MSG_PACKET || body.len() < 4 {
                return None;
            }
            let mut attrs = &body[4..];
            let (mut id, mut payload) = (None, &[][..]);
            while attrs.len() >= 4 {
                let len = u16::from_ne_bytes([attrs[0], attrs[1]]) as usize;
                let ty = u16::from_ne_bytes([attrs[2], attrs[3]]) & 0x3fff;
                if len < 4 || len > attrs.len() {
                    break;
                }
                let data = &attrs[4..len];
                match ty {
                    NFQA_PACKET_HDR if data.len() >= 4 => {
                        id = Some(u32::from_be_bytes(data[0..4].try_into().ok()?));
                    }
                    NFQA_PAYLOAD => payload = data,
                    _ => {}
                }
                attrs = &attrs[((len + 3) & !3).min(attrs.len())..];
            }
            Some(Packet { id: id?, payload })
        })
    }

    #[cfg(test)]
    pub(super) fn packet_message(id: u32, payload: &[u8]) -> Vec<u8> {
        let mut hdr = id.to_be_bytes().to_vec();
        hdr.extend_from_slice(&[8, 0, 3]);
        message(
            NFQNL_MSG_PACKET,
            0,
            0,
            &[(NFQA_PACKET_HDR, hdr), (NFQA_PAYLOAD, payload.to_vec())],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(delay: u64, jitter: u64) -> WireDelay {
        WireDelay {
            delay: Dur::from_millis(delay),
            jitter: Dur::from_millis(jitter),
        }
    }

    #[test]
    fn a_fixed_delay_holds_every_packet_that_long() {
        let mut line = DelayLine::new(&cfg(40, 0), 1);
        assert_eq!(line.departure(Direction::ToServer, 1_000), 40_001_000);
        assert_eq!(line.departure(Direction::ToClient, 5_000), 40_005_000);
    }

    #[test]
    fn jitter_stays_in_its_span_and_never_reorders_a_direction() {
        // Packets 100 ms apart: each hold is its own draw, over the whole span.
        let mut line = DelayLine::new(&cfg(40, 10), 7);
        let (mut lo, mut hi) = (u64::MAX, 0);
        for i in 0..10_000u64 {
            let arrival = i * 100_000_000;
            let hold = line.departure(Direction::ToServer, arrival) - arrival;
            lo = lo.min(hold);
            hi = hi.max(hold);
        }
        assert!((30_000_000..30_100_000).contains(&lo), "shortest hold {lo}");
        assert!((49_900_000..=50_000_000).contains(&hi), "longest hold {hi}");
        // Packets 1 ms apart: one never leaves before the one ahead of it in its direction.
        let mut prev = 0;
        for i in 0..10_000u64 {
            let at = line.departure(Direction::ToClient, i * 1_000_000);
            assert!(at >= prev, "packet {i} overtook the one before it");
            assert!(at - i * 1_000_000 <= 50_000_000);
            prev = at;
        }
    }

    #[test]
    fn the_direction_is_the_destination_network() {
        let mut to_server = [0u8; 20];
        to_server[16..20].copy_from_slice(&[198, 18, 2, 2]);
        let mut to_client = [0u8; 20];
        to_client[16..20].copy_from_slice(&[198, 18, 1, 2]);
        assert_eq!(Direction::of(&to_server), Direction::ToServer);
        assert_eq!(Direction::of(&to_client), Direction::ToClient);
    }

    #[test]
    fn reads_packets_and_writes_verdicts_as_nfnetlink_queue_lays_them_out() {
        let mut buf = nfq::packet_message(41, &[1, 2, 3]);
        buf.extend(nfq::packet_message(42, &[4; 20]));
        let got: Vec<_> = nfq::packets(&buf).collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].id, 41);
        assert_eq!(got[0].payload, &[1, 2, 3]);
        assert_eq!(got[1].id, 42);
        let v = nfq::verdict_accept(0, 42);
        // nlmsghdr 16 + nfgenmsg 4 + attribute 4 + verdict hdr 8.
        assert_eq!(v.len(), 32);
        assert_eq!(u16::from_ne_bytes([v[4], v[5]]), 3 << 8 | 1);
        assert_eq!(&v[24..28], &1u32.to_be_bytes());
        assert_eq!(&v[28..32], &42u32.to_be_bytes());
    }

    #[test]
    fn stats_pick_median_p99_and_max() {
        let s = stats([3, 1], (1..=100).map(|i| i * 1000).collect(), 4_000);
        assert_eq!(s.late_median_us, 51.0);
        assert_eq!(s.late_p99_us, 99.0);
        assert_eq!(s.late_max_us, 100.0);
        assert_eq!(s.cpu_per_packet_us, 1.0);
        assert_eq!((s.to_server, s.to_client), (3, 1));
    }

    fn scenario(wire: &str) -> Result<crate::scenario::Scenario, String> {
        let text = format!("name = \"s\"\nend = \"5s\"\nexpect = \"none\"\n\n[wire]\n{wire}\n");
        crate::scenario::parse(std::path::Path::new("s.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn a_scenario_reads_wire_delay_and_jitter() {
        let s = scenario("delay = \"40ms\"\njitter = \"10ms\"").unwrap();
        assert_eq!(s.wire, cfg(40, 10));
        assert_eq!(s.wire.added_rtt_ms(), 80.0);
        assert!(scenario("").unwrap().wire.is_off());
    }

    #[test]
    fn bad_wire_settings_are_located_at_their_key() {
        let e = scenario("delay = \"10ms\"\njitter = \"20ms\"").unwrap_err();
        assert!(
            e.starts_with("s.toml:7:1: wire.jitter: `20ms` is more than the delay `10ms`"),
            "{e}"
        );
        let e = scenario("delay = \"11s\"").unwrap_err();
        assert!(
            e.starts_with("s.toml:6:1: wire.delay: must be at most 10000ms"),
            "{e}"
        );
        let e = scenario("dealy = \"1s\"").unwrap_err();
        assert!(
            e.starts_with("s.toml:6:1: wire.dealy: unknown field `dealy`"),
            "{e}"
        );
        let e = scenario("delay = \"-1ms\"").unwrap_err();
        assert!(e.starts_with("s.toml:6:1: wire.delay:"), "{e}");
    }
}
