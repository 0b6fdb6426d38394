//! The reference server and client: the seed's Delphi/Indy pair done properly. Each reports
//! what happens to it as JSON lines on stdout, stamped on the monotonic clock.
//!
//! Each peer is one process with one thread running an event loop (tokio, current-thread), and
//! every connection is one task on it, so a client can hold thousands of connections. Detection
//! is event-driven: a connection's reader waits for the kernel to report data, EOF or an error,
//! so no sleep adds to any measurement. With traffic or an application heartbeat the same task
//! also runs a writer (blocked in write(), or waiting for its next send) and a watchdog that
//! waits for the heartbeat deadline. Whichever of them sees the loss first stamps it at that
//! moment and records the one `peer-lost` of that connection, then shuts the socket down. A
//! thread of its own ([`Failures`]) stamps each connection's FIN, error or hang-up the moment
//! the kernel reports it, so a loss read late (thousands lost in one timer tick, read one after
//! another) keeps the kernel's moment: the earlier of the two stamps is recorded.
//!
//! Wire format, shared by both sides when framing is on (any traffic but `idle`, or a
//! heartbeat): 1 byte record type ([`FrameType`]), 4 bytes big-endian payload length, payload.

use std::cell::Cell;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::failover::Targets;

use socket2::{Domain, Protocol, SockRef, Socket, TcpKeepalive, Type};

use crate::clock;
use crate::keepalive::Keepalive;
use crate::plan::PeerPlan;
use crate::record::{
    Connected, Ends, Kind, LossMechanism, PeerLost, PeerReport, TcpInfo, TcpState,
};
use crate::scenario::{
    Backoff, Heartbeat, Side, DEFAULT_CONNECT_TIMEOUT_MS, DEFAULT_RECONNECT_INTERVAL_MS,
};

/// Socket options applied to every connection of one side.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SocketOpts {
    pub keepalive: Keepalive,
    /// TCP_USER_TIMEOUT in ms; 0 leaves the default.
    pub user_timeout_ms: u32,
}

impl SocketOpts {
    fn apply(&self, sock: &SockRef<'_>) -> io::Result<()> {
        if let Keepalive::On {
            idle_s,
            interval_s,
            count,
        } = self.keepalive
        {
            let ka = TcpKeepalive::new()
                .with_time(Duration::from_secs(idle_s.into()))
                .with_interval(Duration::from_secs(interval_s.into()))
                .with_retries(count);
            sock.set_tcp_keepalive(&ka)?;
        }
        if self.user_timeout_ms > 0 {
            sock.set_tcp_user_timeout(Some(Duration::from_millis(self.user_timeout_ms.into())))?;
        }
        Ok(())
    }
}

/// What the application sends on each connection: the scenario's traffic pattern.
pub use crate::scenario::Pattern as Traffic;

/// The application's behaviour on each connection: traffic and heartbeat.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AppOpts {
    pub traffic: Traffic,
    /// Time between two records of the traffic pattern.
    pub traffic_interval: Duration,
    /// Payload size of each record.
    pub record_bytes: u32,
    /// Time between two PINGs; zero turns the heartbeat off.
    pub heartbeat_interval: Duration,
    /// A peer silent for `heartbeat_misses * heartbeat_interval` is lost ("HEARTBEAT").
    pub heartbeat_misses: u32,
    /// Server: a PING sooner than this after the last is a strike; past
    /// [`crate::scenario::MAX_PING_STRIKES`] the server closes ("TOO_MANY_PINGS"). Zero: no limit.
    pub ping_min_interval: Duration,
    /// Client: the planned fault moments its requests keep clear of ([`FaultMoments`]).
    pub faults: Option<&'static FaultMoments>,
}

/// A client's planned fault moments, counted as the runner counts them: from the client's
/// first connection (of a pool: the last slot's first connection).
///
/// A request answered across the moment a fault takes effect leaves the server holding its
/// reply unacknowledged: its keepalive cannot fire while that data is out (docs/physics.md,
/// K4), so it detects by retransmissions, not by the keepalive the scenario is about. A
/// request sent when the previous one's answer arrives plus one interval would fall on the
/// fault moment whenever the fault's `at` is a multiple of the interval: the two schedules
/// share their anchor (seen: "server did not detect", 1 run in 24 at `run -j 6`). So a
/// request due within half an interval of a fault moment goes at the edge of that span
/// instead: the last request before the fault leaves at least half an interval before it and
/// the first after it at least half an interval after the runner begins to inject it. The
/// model's assumptions still hold: the last answered request no more than one interval
/// before the fault, the first unanswered one within one interval after it.
#[derive(Debug)]
pub struct FaultMoments {
    /// Each fault's injection, after the start.
    after_start: Vec<Duration>,
    /// First connections that make the start (a pool's size).
    pool: u32,
    connected: AtomicU32,
    start: OnceLock<Instant>,
}

impl PartialEq for FaultMoments {
    fn eq(&self, other: &Self) -> bool {
        self.after_start == other.after_start && self.pool == other.pool
    }
}

impl Eq for FaultMoments {}

impl FaultMoments {
    pub fn new(after_start_ms: &[u64], pool: u32) -> Self {
        let mut after_start: Vec<Duration> = after_start_ms
            .iter()
            .map(|&ms| Duration::from_millis(ms))
            .collect();
        after_start.sort();
        FaultMoments {
            after_start,
            pool: pool.max(1),
            connected: AtomicU32::new(0),
            start: OnceLock::new(),
        }
    }

    /// One slot's first connection, at `at` (the moment its `connected` is stamped).
    fn first_connected(&self, at: Instant) {
        if self.connected.fetch_add(1, Ordering::Relaxed) + 1 == self.pool {
            let _ = self.start.set(at);
        }
    }

    /// `due`, moved out of half an interval around any fault moment (none before the start).
    fn clear(&self, due: Instant, interval: Duration) -> Instant {
        let Some(&start) = self.start.get() else {
            return due;
        };
        let moments: Vec<Instant> = self.after_start.iter().map(|&d| later(start, d)).collect();
        clear_of(due, &moments, interval / 2)
    }
}

/// `due` moved out of `[f - half, f + half)` for each fault moment `f` (in time order): to
/// `f - half` if it falls before `f`, else to `f + half`.
fn clear_of(mut due: Instant, moments: &[Instant], half: Duration) -> Instant {
    for &f in moments {
        let early = f.checked_sub(half).unwrap_or(f);
        if due >= early && due < f {
            due = early;
        } else if due >= f && due < f + half {
            due = f + half;
        }
    }
    due
}

impl Default for AppOpts {
    fn default() -> Self {
        AppOpts::new(&crate::scenario::Traffic::default(), None)
    }
}

impl AppOpts {
    /// From the scenario's traffic and heartbeat (no heartbeat: interval zero).
    pub fn new(traffic: &crate::scenario::Traffic, heartbeat: Option<Heartbeat>) -> Self {
        AppOpts {
            traffic: traffic.pattern,
            traffic_interval: Duration::from_millis(traffic.interval_ms),
            record_bytes: traffic.record_bytes,
            heartbeat_interval: Duration::from_millis(heartbeat.map_or(0, |h| h.interval_ms)),
            heartbeat_misses: heartbeat
                .map_or(crate::scenario::DEFAULT_HEARTBEAT_MISSES, |h| h.misses),
            ping_min_interval: Duration::from_millis(
                heartbeat
                    .and_then(|h| h.server_min_interval_ms)
                    .unwrap_or(0),
            ),
            faults: None,
        }
    }

    fn heartbeat(&self) -> bool {
        !self.heartbeat_interval.is_zero()
    }

    /// Whether the connection carries frames; otherwise the reader just discards what arrives.
    fn framed(&self) -> bool {
        self.traffic != Traffic::Idle || self.heartbeat()
    }
}

// ---------------------------------------------------------------------------------------------
// Framing

/// The type byte of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameType {
    Data = 1,
    Request = 2,
    Reply = 3,
    Ping = 4,
    Pong = 5,
}

impl FrameType {
    pub fn from_byte(b: u8) -> Option<FrameType> {
        Some(match b {
            1 => FrameType::Data,
            2 => FrameType::Request,
            3 => FrameType::Reply,
            4 => FrameType::Ping,
            5 => FrameType::Pong,
            _ => return None,
        })
    }
}

/// Type byte plus big-endian u32 length.
pub const HEADER_LEN: usize = 5;
/// Longest payload a reader accepts (16 MiB); a longer length is a protocol error.
pub const MAX_PAYLOAD: u32 = 16 << 20;

/// Writes one frame (header and payload) into `out`, replacing its contents.
pub fn encode_frame(kind: FrameType, payload: &[u8], out: &mut Vec<u8>) {
    let len = u32::try_from(payload.len()).expect("payloads are at most MAX_PAYLOAD bytes");
    out.clear();
    out.reserve(HEADER_LEN + payload.len());
    out.push(kind as u8);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Reads one frame, its payload into `payload`. `Ok(None)`: the peer closed (EOF), whether at a
/// frame boundary or inside a frame. An unknown type or a length over [`MAX_PAYLOAD`] is
/// EPROTO.
pub fn read_frame(r: &mut impl Read, payload: &mut Vec<u8>) -> io::Result<Option<FrameType>> {
    let mut header = [0u8; HEADER_LEN];
    if !fill(r, &mut header)? {
        return Ok(None);
    }
    let kind = FrameType::from_byte(header[0]).ok_or_else(protocol_error)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_PAYLOAD {
        return Err(protocol_error());
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if !fill(r, payload)? {
        return Ok(None);
    }
    Ok(Some(kind))
}

fn protocol_error() -> io::Error {
    io::Error::from_raw_os_error(libc::EPROTO)
}

/// Fills `buf` completely; false if EOF came first.
fn fill(r: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut at = 0;
    while at < buf.len() {
        match r.read(&mut buf[at..]) {
            Ok(0) => return Ok(false),
            Ok(n) => at += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// Reporting

/// Writes events as JSON lines to stdout ([`PeerReport`]). If the runner is gone, the peer has
/// no one to report to and exits.
///
/// Lines go to stdout from a thread of their own, so the event loop never blocks on the pipe
/// to the runner: when thousands of connections are lost at once, each loss is still stamped
/// when its connection's task sees it, not when the pipe has room.
pub struct Reporter {
    sink: Sink,
}

enum Sink {
    /// Written by the caller (tests).
    #[cfg(test)]
    Direct(Mutex<Box<dyn Write + Send>>),
    /// Handed to the writer thread, which also serializes (off the event loop).
    Thread(Mutex<std::sync::mpsc::Sender<PeerReport>>),
}

impl Default for Reporter {
    fn default() -> Self {
        let (tx, rx) = std::sync::mpsc::channel::<PeerReport>();
        std::thread::spawn(move || {
            let mut out = io::BufWriter::new(io::stdout().lock());
            let line = |out: &mut io::BufWriter<_>, r: PeerReport| {
                serde_json::to_writer(&mut *out, &r).is_ok() && out.write_all(b"\n").is_ok()
            };
            while let Ok(report) = rx.recv() {
                let mut ok = line(&mut out, report);
                // Flush only once the queue is empty: a burst goes out in few writes.
                for report in rx.try_iter() {
                    ok &= line(&mut out, report);
                }
                if !ok || out.flush().is_err() {
                    std::process::exit(0);
                }
            }
        });
        Reporter {
            sink: Sink::Thread(Mutex::new(tx)),
        }
    }
}

impl Reporter {
    #[cfg(test)]
    pub(crate) fn to_writer(out: Box<dyn Write + Send>) -> Self {
        Reporter {
            sink: Sink::Direct(Mutex::new(out)),
        }
    }

    pub fn emit(&self, kind: Kind) {
        self.emit_at(clock::now_ns(), kind)
    }

    /// Emits an event stamped with an earlier clock reading `mono_ns`.
    pub fn emit_at(&self, mono_ns: u64, kind: Kind) {
        let report = PeerReport { mono_ns, kind };
        match &self.sink {
            #[cfg(test)]
            Sink::Direct(out) => {
                let mut text = serde_json::to_string(&report).expect("reports serialize");
                text.push('\n');
                let mut out = lock(out);
                if out
                    .write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    std::process::exit(0);
                }
            }
            Sink::Thread(tx) => {
                if lock(tx).send(report).is_err() {
                    std::process::exit(0);
                }
            }
        }
    }
}

fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The name a user knows an error by: EOF for an orderly close, else the errno name.
pub fn error_name(err: &io::Error) -> String {
    match err.raw_os_error() {
        Some(code) => format!("{:?}", nix::errno::Errno::from_raw(code)),
        None if err.kind() == io::ErrorKind::TimedOut => "ETIMEDOUT".into(),
        None => format!("{:?}", err.kind()),
    }
}

/// What detected a loss, from the error name (as [`error_name`] gives it, or "EOF" or
/// "HEARTBEAT"), the retransmissions of the last unacknowledged segment (tcpi_retransmits:
/// the abort keeps it, while tcpi_unacked is cleared with the write queue) and the
/// TCP_USER_TIMEOUT in force. ETIMEDOUT without retransmissions came from keepalive probes.
pub fn mechanism(error: &str, retransmits: u32, user_timeout_ms: u32) -> LossMechanism {
    match error {
        "EOF" => LossMechanism::Eof,
        "ECONNRESET" | "EPIPE" => LossMechanism::Reset,
        "HEARTBEAT" => LossMechanism::AppHeartbeat,
        // An ICMP error on an established connection is only recorded (sk_err_soft); it is
        // reported when a timer gives up, so the timer is the mechanism (docs/physics.md).
        "ETIMEDOUT" | "EHOSTUNREACH" | "ENETUNREACH" | "ECONNREFUSED" if user_timeout_ms > 0 => {
            LossMechanism::UserTimeout
        }
        "ETIMEDOUT" | "EHOSTUNREACH" | "ENETUNREACH" | "ECONNREFUSED" if retransmits > 0 => {
            LossMechanism::RetransmissionTimeout
        }
        "ETIMEDOUT" | "EHOSTUNREACH" | "ENETUNREACH" | "ECONNREFUSED" => LossMechanism::Keepalive,
        _ => LossMechanism::Other,
    }
}

/// The kernel's view of a connection, for the record.
pub fn tcp_info(fd: &impl AsRawFd) -> Option<TcpInfo> {
    // SAFETY: tcp_info is plain data; getsockopt writes at most `len` bytes.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return None;
    }
    Some(TcpInfo {
        state: TcpState::from_kernel(info.tcpi_state),
        retransmits: info.tcpi_retransmits,
        probes: info.tcpi_probes,
        backoff: info.tcpi_backoff,
        rto_us: info.tcpi_rto,
        rtt_us: info.tcpi_rtt,
        unacked: info.tcpi_unacked,
        total_retrans: info.tcpi_total_retrans,
        last_data_sent_ms: info.tcpi_last_data_sent,
        last_data_recv_ms: info.tcpi_last_data_recv,
        last_ack_recv_ms: info.tcpi_last_ack_recv,
    })
}

// ---------------------------------------------------------------------------------------------
// One connection

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Role {
    Server,
    Client,
}

// ---------------------------------------------------------------------------------------------
// Failure stamps

/// Stamps each connection's failure the moment the kernel reports it, whatever the event loop
/// is doing: a thread of its own waits in epoll_wait(2) on every connection of the peer for
/// an error (EPOLLERR: an abort, a reset), a hang-up or the peer's FIN (EPOLLRDHUP), and
/// stamps each the moment the wait returns. When thousands of connections fail in the same
/// timer tick, the loop reads them one after another; the stamp does not wait for the read.
/// The thread only stamps (a few hundred nanoseconds per event) and, as root, runs SCHED_FIFO
/// so a busy machine does not delay its wake-up.
struct Failures {
    epoll: RawFd,
    /// Connection key -> when the peer's FIN was first reported, and when an error or a
    /// hang-up was (monotonic ns, 0 if not). Order never reaches output: a hash map.
    stamps: Mutex<std::collections::HashMap<u64, [u64; 2]>>,
    next_key: std::sync::atomic::AtomicU64,
}

/// Events per epoll_wait(2): a whole burst in a few calls.
const FAILURE_EVENTS: usize = 4096;

impl Failures {
    /// The peer's one watcher, started on first use; None if epoll is unavailable (the loop's
    /// own stamps are used then).
    fn get() -> Option<&'static Failures> {
        static WATCHER: std::sync::OnceLock<Option<&'static Failures>> = std::sync::OnceLock::new();
        *WATCHER.get_or_init(|| {
            // SAFETY: plain syscall; the descriptor lives as long as the process.
            let epoll = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
            if epoll < 0 {
                return None;
            }
            let f: &'static Failures = Box::leak(Box::new(Failures {
                epoll,
                stamps: Mutex::new(Default::default()),
                next_key: std::sync::atomic::AtomicU64::new(1),
            }));
            std::thread::Builder::new()
                .name("failures".into())
                .spawn(move || f.watch())
                .ok()?;
            Some(f)
        })
    }

    fn watch(&self) {
        let param = libc::sched_param { sched_priority: 1 };
        // SAFETY: sets this thread's own policy; the parameter is a valid sched_param.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
        let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; FAILURE_EVENTS];
        loop {
            // SAFETY: the buffer holds FAILURE_EVENTS events.
            let n = unsafe {
                libc::epoll_wait(self.epoll, events.as_mut_ptr(), FAILURE_EVENTS as i32, -1)
            };
            let now = clock::now_ns();
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                // Never spin at real-time priority: without the watcher the loop's own
                // stamps stand.
                return;
            }
            if n <= 0 {
                continue;
            }
            let mut stamps = lock(&self.stamps);
            for e in &events[..n as usize] {
                // Only connections still watched: one let go of meanwhile stays forgotten.
                let (key, flags) = (e.u64, e.events as i32);
                let Some(seen) = stamps.get_mut(&key) else {
                    continue;
                };
                if flags & libc::EPOLLRDHUP != 0 && seen[0] == 0 {
                    seen[0] = now;
                }
                if flags & (libc::EPOLLERR | libc::EPOLLHUP) != 0 && seen[1] == 0 {
                    seen[1] = now;
                }
            }
        }
    }

    /// Watches `fd` for failure; returns its key.
    fn add(&self, fd: RawFd) -> Option<u64> {
        let key = self
            .next_key
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Edge-triggered: each failure is reported once. EPOLLERR and EPOLLHUP need no flag.
        let mut e = libc::epoll_event {
            events: (libc::EPOLLRDHUP | libc::EPOLLET) as u32,
            u64: key,
        };
        lock(&self.stamps).insert(key, [0, 0]);
        // SAFETY: `fd` is an open socket; `e` is a valid event.
        let ok = unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_ADD, fd, &mut e) } == 0;
        if !ok {
            lock(&self.stamps).remove(&key);
        }
        ok.then_some(key)
    }

    /// When the kernel reported the failure `error` of connection `key`: EOF by the peer's
    /// FIN, an errno by an error or hang-up; None for the peer's own decisions (HEARTBEAT,
    /// TOO_MANY_PINGS, a protocol error) or if nothing was reported.
    fn stamp(&self, key: u64, error: &str) -> Option<u64> {
        let which = match error {
            "HEARTBEAT" | "TOO_MANY_PINGS" | "EPROTO" => return None,
            "EOF" => 0,
            _ => 1,
        };
        lock(&self.stamps)
            .get(&key)
            .map(|s| s[which])
            .filter(|&t| t != 0)
    }

    /// Stops watching `fd` (still open) and forgets its stamp.
    fn remove(&self, fd: RawFd, key: u64) {
        let mut e = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: `fd` is still open (its owner calls this before closing it).
        unsafe { libc::epoll_ctl(self.epoll, libc::EPOLL_CTL_DEL, fd, &mut e) };
        lock(&self.stamps).remove(&key);
    }
}

/// A loss as first seen: when (stamped the moment the kernel reported it) and the error name.
#[derive(Debug)]
struct Loss {
    at_ns: u64,
    error: String,
}

impl Loss {
    /// A loss seen now.
    fn now(error: &str) -> Loss {
        Loss {
            at_ns: clock::now_ns(),
            error: error.into(),
        }
    }
}

/// One connection and what its reader, writer and watchdog share. All three run inside the
/// connection's one task on the peer's single-threaded event loop, so plain cells suffice.
struct Conn {
    /// The socket, for TCP_INFO and shutdown; owned by the halves.
    fd: RawFd,
    /// Its key with the failure watcher, if it watches it.
    watched: Option<u64>,
    role: Role,
    app: AppOpts,
    user_timeout_ms: u32,
    /// The connection's addresses, as its events name it.
    ends: Ends,
    report: &'static Reporter,
    /// Serialises whole frames from the reader (PONG, REPLY) and the writer, with the buffer a
    /// frame is encoded into.
    write: tokio::sync::Mutex<(OwnedWriteHalf, Vec<u8>)>,
    /// When the peer was last heard from (client: any frame; server: a PING).
    last_heard: Cell<Instant>,
    records_sent: Cell<u64>,
    records_received: Cell<u64>,
    heartbeats_sent: Cell<u64>,
    heartbeats_received: Cell<u64>,
    /// A REPLY arrived (request-in-flight: the writer waits for it before the next request).
    replied: tokio::sync::Notify,
    /// Server: when the last PING came, and how many came too soon (ping_min_interval).
    last_ping: Cell<Option<Instant>>,
    ping_strikes: Cell<u32>,
}

impl Drop for Conn {
    /// The socket is still open here (the write half is a field): the watcher lets go of it
    /// before it closes, so a new socket given the same descriptor is not mistaken for it.
    fn drop(&mut self) {
        if let (Some(key), Some(f)) = (self.watched, Failures::get()) {
            f.remove(self.fd, key);
        }
    }
}

fn bump(c: &Cell<u64>) {
    c.set(c.get() + 1);
}

impl Conn {
    fn new(
        stream: TcpStream,
        role: Role,
        ends: Ends,
        socket: SocketOpts,
        app: AppOpts,
        report: &'static Reporter,
    ) -> (Conn, OwnedReadHalf) {
        let fd = stream.as_raw_fd();
        let watched = Failures::get().and_then(|f| f.add(fd));
        let (read, write) = stream.into_split();
        let conn = Conn {
            fd,
            watched,
            role,
            app,
            user_timeout_ms: socket.user_timeout_ms,
            ends,
            report,
            write: tokio::sync::Mutex::new((write, Vec::new())),
            last_heard: Cell::new(Instant::now()),
            records_sent: Cell::new(0),
            records_received: Cell::new(0),
            heartbeats_sent: Cell::new(0),
            heartbeats_received: Cell::new(0),
            replied: tokio::sync::Notify::new(),
            last_ping: Cell::new(None),
            ping_strikes: Cell::new(0),
        };
        (conn, read)
    }

    /// Records the loss, stamped when it was seen (by the failure watcher, if it saw the
    /// kernel report it first), then shuts the socket down both ways.
    fn lose(&self, mut loss: Loss) {
        let reported = self
            .watched
            .and_then(|key| Failures::get()?.stamp(key, &loss.error));
        if let Some(t) = reported {
            loss.at_ns = loss.at_ns.min(t);
        }
        let tcp_info = tcp_info(&self.fd);
        let retransmits = tcp_info.map_or(0, |i| i.retransmits.into());
        self.report.emit_at(
            loss.at_ns,
            Kind::PeerLost(PeerLost {
                ends: self.ends.clone(),
                mechanism: mechanism(&loss.error, retransmits, self.user_timeout_ms),
                error: loss.error,
                tcp_info,
                records_sent: self.records_sent.get(),
                records_received: self.records_received.get(),
                heartbeats_sent: self.heartbeats_sent.get(),
                heartbeats_received: self.heartbeats_received.get(),
            }),
        );
        // SAFETY: the halves still own the fd; shutdown only changes the connection's state.
        unsafe { libc::shutdown(self.fd, libc::SHUT_RDWR) };
    }

    /// Sends one frame; a write error is the loss.
    async fn send(&self, kind: FrameType, payload: &[u8]) -> Result<(), Loss> {
        let mut guard = self.write.lock().await;
        let (half, buf) = &mut *guard;
        encode_frame(kind, payload, buf);
        match half.write_all(buf).await {
            Ok(()) => {
                bump(match kind {
                    FrameType::Ping | FrameType::Pong => &self.heartbeats_sent,
                    _ => &self.records_sent,
                });
                Ok(())
            }
            Err(e) => {
                let loss = Loss::now(&error_name(&e));
                drop(guard);
                if loss.error == "EPIPE" {
                    // The kernel reports a connection's error once (sock_error): a write that
                    // finds it already taken returns EPIPE, while the reader that took it
                    // (ETIMEDOUT or ECONNRESET) is about to report it. Give it the chance.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(loss)
            }
        }
    }

    /// The record this side sends every traffic interval, if any.
    fn record_kind(&self) -> Option<FrameType> {
        match (self.role, self.app.traffic) {
            (Role::Client, Traffic::Stream) | (Role::Server, Traffic::Push) => {
                Some(FrameType::Data)
            }
            (Role::Client, Traffic::RequestResponse | Traffic::RequestInFlight) => {
                Some(FrameType::Request)
            }
            _ => None,
        }
    }

    /// A server enforcing a minimum ping interval counts this PING: true once it is one
    /// strike too many (gRPC's too_many_pings: the server closes the connection).
    fn too_many_pings(&self) -> bool {
        let min = self.app.ping_min_interval;
        if self.role != Role::Server || min.is_zero() {
            return false;
        }
        let now = Instant::now();
        if self
            .last_ping
            .replace(Some(now))
            .is_some_and(|t| now - t < min)
        {
            self.ping_strikes.set(self.ping_strikes.get() + 1);
        }
        self.ping_strikes.get() > crate::scenario::MAX_PING_STRIKES
    }

    /// When the record due at `due` goes: a request keeps clear of the planned faults
    /// ([`FaultMoments`]); other records go when due.
    fn request_at(&self, due: Instant) -> Instant {
        match (self.record_kind(), self.app.faults) {
            (Some(FrameType::Request), Some(f)) => f.clear(due, self.app.traffic_interval),
            _ => due,
        }
    }

    fn sends_pings(&self) -> bool {
        self.role == Role::Client && self.app.heartbeat()
    }
}

/// Runs a connection until it is lost: its reader, writer and heartbeat watchdog race inside
/// one task, and the first to see the loss records it (stamped when it saw it).
async fn run_connection(conn: Conn, mut read: OwnedReadHalf) {
    let loss = if conn.app.framed() {
        tokio::select! {
            loss = read_frames(&conn, &mut read) => loss,
            loss = writer(&conn) => loss,
            loss = watchdog(&conn) => loss,
        }
    } else {
        read_raw(&mut read).await
    };
    conn.lose(loss);
}

/// Unframed reader (idle traffic, no heartbeat): discards what arrives until the connection
/// ends. Holds no buffer while it waits, so an idle connection costs only its socket.
async fn read_raw(read: &mut OwnedReadHalf) -> Loss {
    loop {
        if let Err(e) = read.readable().await {
            return Loss::now(&error_name(&e));
        }
        let mut buf = [0u8; 4096];
        match read.try_read(&mut buf) {
            Ok(0) => return Loss::now("EOF"),
            Ok(_) => continue,
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted =>
            {
                continue
            }
            Err(e) => return Loss::now(&error_name(&e)),
        }
    }
}

/// Reads one frame (see [`read_frame`]) from an async stream.
async fn read_frame_async(
    r: &mut OwnedReadHalf,
    payload: &mut Vec<u8>,
) -> io::Result<Option<FrameType>> {
    let eof = |e: io::Error| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            Ok(None)
        } else {
            Err(e)
        }
    };
    let mut header = [0u8; HEADER_LEN];
    if let Err(e) = r.read_exact(&mut header).await {
        return eof(e);
    }
    let kind = FrameType::from_byte(header[0]).ok_or_else(protocol_error)?;
    let len = u32::from_be_bytes([header[1], header[2], header[3], header[4]]);
    if len > MAX_PAYLOAD {
        return Err(protocol_error());
    }
    payload.clear();
    payload.resize(len as usize, 0);
    if let Err(e) = r.read_exact(payload).await {
        return eof(e);
    }
    Ok(Some(kind))
}

/// Framed reader: answers PING with PONG and REQUEST with REPLY, counts the rest, and notes
/// when the peer was last heard from.
async fn read_frames(conn: &Conn, read: &mut OwnedReadHalf) -> Loss {
    let mut payload = Vec::new();
    loop {
        let kind = match read_frame_async(read, &mut payload).await {
            Ok(Some(kind)) => kind,
            Ok(None) => return Loss::now("EOF"),
            Err(e) => return Loss::now(&error_name(&e)),
        };
        if conn.role == Role::Client || kind == FrameType::Ping {
            conn.last_heard.set(Instant::now());
        }
        let answered = match kind {
            FrameType::Ping => {
                bump(&conn.heartbeats_received);
                if conn.too_many_pings() {
                    return Loss::now("TOO_MANY_PINGS");
                }
                conn.send(FrameType::Pong, &payload).await
            }
            FrameType::Pong => {
                bump(&conn.heartbeats_received);
                Ok(())
            }
            FrameType::Request => {
                bump(&conn.records_received);
                conn.send(FrameType::Reply, &payload).await
            }
            FrameType::Data => {
                bump(&conn.records_received);
                Ok(())
            }
            FrameType::Reply => {
                bump(&conn.records_received);
                conn.replied.notify_one();
                Ok(())
            }
        };
        if let Err(loss) = answered {
            return loss;
        }
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(tokio::time::Instant::from_std(t)).await
}

/// Sends this side's records every traffic interval and PINGs every heartbeat interval, until
/// a send fails. A send that falls behind is not caught up with a burst. With
/// request-in-flight, the next request waits for the last one's REPLY, then one interval.
async fn writer(conn: &Conn) -> Loss {
    let record = conn.record_kind();
    let one_at_a_time = conn.app.traffic == Traffic::RequestInFlight;
    let payload = vec![0u8; conn.app.record_bytes as usize];
    let start = Instant::now();
    let mut next_record = record.map(|_| conn.request_at(later(start, conn.app.traffic_interval)));
    let mut next_ping = conn
        .sends_pings()
        .then(|| later(start, conn.app.heartbeat_interval));
    let mut awaiting_reply = false;
    loop {
        let records = next_record.filter(|_| !awaiting_reply);
        let due = [records, next_ping].into_iter().flatten().min();
        tokio::select! {
            () = sleep_until_some(due) => {}
            () = conn.replied.notified(), if awaiting_reply => {
                awaiting_reply = false;
                next_record = Some(conn.request_at(later(Instant::now(), conn.app.traffic_interval)));
                continue;
            }
        }
        if let (Some(kind), Some(t)) = (record, records) {
            if Instant::now() >= t {
                if let Err(loss) = conn.send(kind, &payload).await {
                    return loss;
                }
                next_record = Some(conn.request_at(next_tick(t, conn.app.traffic_interval)));
                awaiting_reply = one_at_a_time;
            }
        }
        if let Some(t) = next_ping {
            if Instant::now() >= t {
                if let Err(loss) = conn.send(FrameType::Ping, &[]).await {
                    return loss;
                }
                next_ping = Some(next_tick(t, conn.app.heartbeat_interval));
            }
        }
    }
}

/// Sleeps until `t`, or forever without one.
async fn sleep_until_some(t: Option<Instant>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// The tick after `t`, or a full interval from now if that one has already passed.
fn next_tick(t: Instant, interval: Duration) -> Instant {
    let now = Instant::now();
    let next = later(t, interval);
    if next <= now {
        later(now, interval)
    } else {
        next
    }
}

/// Longest wait the peers schedule; longer intervals (and heartbeat limits) are cut to this
/// so that no deadline overflows.
const LONGEST_WAIT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// `t + d`, with `d` cut to [`LONGEST_WAIT`].
fn later(t: Instant, d: Duration) -> Instant {
    t + d.min(LONGEST_WAIT)
}

/// Declares the peer lost ("HEARTBEAT") once it has been silent for `misses * interval`.
async fn watchdog(conn: &Conn) -> Loss {
    if !conn.app.heartbeat() {
        return std::future::pending().await;
    }
    let limit = conn
        .app
        .heartbeat_interval
        .saturating_mul(conn.app.heartbeat_misses);
    loop {
        sleep_until(later(conn.last_heard.get(), limit)).await;
        if Instant::now() >= later(conn.last_heard.get(), limit) {
            return Loss::now("HEARTBEAT");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Server and client

/// The peers' event loop: one thread, every connection a task on it, so thousands of
/// connections cost thousands of small tasks rather than thousands of threads.
fn block_on<F: std::future::Future>(f: F) -> io::Result<F::Output> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    Ok(tokio::task::LocalSet::new().block_on(&rt, f))
}

/// Raises this process's open-file limit to its hard limit: every connection is a descriptor.
pub fn raise_fd_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain data in and out.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The listen backlog when the scenario sets none.
pub const DEFAULT_BACKLOG: u32 = 128;

/// How the server treats each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerOpts {
    pub socket: SocketOpts,
    pub app: AppOpts,
    /// listen(2) backlog (the kernel caps it at net.core.somaxconn).
    pub backlog: u32,
}

/// The server: accepts any number of clients, turns on keepalive for each, runs each
/// connection until it fails, records the loss and closes that connection.
pub fn serve(listen: SocketAddr, opts: ServerOpts, report: &'static Reporter) -> io::Result<()> {
    let sock = Socket::new(
        Domain::for_address(listen),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    // A restarted server must bind while the killed one's connections linger.
    sock.set_reuse_address(true)?;
    sock.bind(&listen.into())?;
    // Keepalive and the user timeout on the listener too: a connection inherits them at the
    // handshake (tcp_create_openreq_child arms its keepalive timer then), so its keepalive runs
    // even while it waits in the accept queue. Set only after accept(2), a connection that a
    // loaded server accepted late had no keepalive until then. (It was taken for the cause of
    // a pool's old-server connections never detecting a failover in CI; that was the record
    // filing their losses under the standby's connections at the same port: docs/physics.md,
    // K16.)
    opts.socket.apply(&SockRef::from(&sock))?;
    // Stamped before listen(2): every connection it accepts comes after this moment, so a
    // restart's heal, stamped here, precedes the client's reconnection.
    let t = clock::now_ns();
    sock.listen(i32::try_from(opts.backlog).unwrap_or(i32::MAX))?;
    sock.set_nonblocking(true)?;
    let listener: std::net::TcpListener = sock.into();
    report.emit_at(
        t,
        Kind::Listening {
            addr: listen.to_string(),
        },
    );
    block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        loop {
            let (stream, peer) = match listener.accept().await {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    report.emit(Kind::AcceptFailed {
                        error: error_name(&e),
                    });
                    // EMFILE and the like persist: do not spin on them.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            let ends = Ends {
                local: addr(stream.local_addr()),
                peer: peer.to_string(),
            };
            if let Err(e) = opts.socket.apply(&SockRef::from(&stream)) {
                report.emit(Kind::SetsockoptFailed {
                    ends: ends.clone(),
                    error: error_name(&e),
                });
            }
            report.emit(Kind::Connected(Connected {
                ends: ends.clone(),
                attempts: None,
                slot: None,
                host: None,
            }));
            let (conn, read) = Conn::new(stream, Role::Server, ends, opts.socket, opts.app, report);
            tokio::task::spawn_local(run_connection(conn, read));
        }
    })?
}

/// How the client reconnects, and what it does on each connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientOpts {
    pub socket: SocketOpts,
    pub reconnect_interval: Duration,
    pub connect_timeout: Duration,
    pub app: AppOpts,
    /// How many connections the client holds, each with its own reconnect timer.
    pub connections: u32,
    /// Exponential backoff with jitter instead of the fixed `reconnect_interval`.
    pub backoff: Option<Backoff>,
}

/// A small generator for jitter (splitmix64): no crate needed for one uniform draw per
/// attempt, and each connection seeds its own from the clock and its slot.
struct Jitter(u64);

impl Jitter {
    fn new(slot: u32) -> Jitter {
        Jitter(clock::now_ns() ^ u64::from(slot).wrapping_mul(0x9E37_79B9_7F4A_7C15))
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The client: opens `connections` connections; each runs until it fails, records the loss,
/// and retries on a reconnect timer until connected again. Never returns.
pub fn run_client(server: Targets, opts: ClientOpts, report: &'static Reporter) -> ! {
    let server: &'static Targets = Box::leak(Box::new(server));
    let ran = block_on(async move {
        for i in 0..opts.connections.max(1) {
            tokio::task::spawn_local(client_connection(server, opts, i, report));
        }
        std::future::pending::<()>().await
    });
    if let Err(e) = ran {
        eprintln!("flatline peer client: cannot start its event loop: {e}");
    }
    std::process::exit(2)
}

/// One of the client's connections, for ever: connect, run until lost, pause, connect again.
/// Its events name its slot `i` when the client holds a pool.
async fn client_connection(
    server: &'static Targets,
    opts: ClientOpts,
    i: u32,
    report: &'static Reporter,
) {
    let slot = (opts.connections > 1).then_some(i);
    let mut jitter = Jitter::new(i);
    let mut connected_before = false;
    let mut attempt: u32 = 0;
    loop {
        attempt += 1;
        if connected_before {
            report.emit(Kind::ReconnectAttempt { attempt, slot });
        }
        match connect_any(server, &opts).await {
            Ok(stream) => {
                if let (false, Some(f)) = (connected_before, opts.app.faults) {
                    f.first_connected(Instant::now());
                }
                let ends = Ends {
                    local: addr(stream.local_addr()),
                    peer: addr(stream.peer_addr()),
                };
                let c = Connected {
                    ends: ends.clone(),
                    attempts: Some(attempt),
                    slot,
                    host: None,
                };
                report.emit(if connected_before {
                    Kind::Reconnected(c)
                } else {
                    Kind::Connected(c)
                });
                connected_before = true;
                attempt = 0;
                let (conn, read) =
                    Conn::new(stream, Role::Client, ends, opts.socket, opts.app, report);
                run_connection(conn, read).await;
            }
            Err(e) => {
                report.emit(Kind::ConnectFailed {
                    attempt,
                    error: error_name(&e),
                    slot,
                });
            }
        }
        // After a loss `attempt` is 0: the backoff starts from `initial` again.
        let pause = match opts.backoff {
            Some(b) => Duration::from_millis(b.pause_ms(attempt, jitter.unit())),
            None => opts.reconnect_interval,
        };
        tokio::time::sleep(pause).await;
    }
}

/// An address as events name it; empty if the socket no longer has one.
fn addr(a: io::Result<SocketAddr>) -> String {
    a.map(|a| a.to_string()).unwrap_or_default()
}

/// Runs a reference peer as planned: the server listens on `addr`, the client connects to it.
/// Returns only if the server cannot listen.
pub fn run(plan: &PeerPlan, addr: SocketAddr, report: &'static Reporter) -> io::Result<()> {
    raise_fd_limit();
    let socket = SocketOpts {
        keepalive: plan.settings.keepalive,
        user_timeout_ms: plan.settings.user_timeout_ms,
    };
    let mut app = AppOpts::new(&plan.traffic, plan.heartbeat);
    if plan.side == Side::Client && !plan.fault_at_ms.is_empty() {
        let pool = plan.settings.connections.unwrap_or(1);
        app.faults = Some(Box::leak(Box::new(FaultMoments::new(
            &plan.fault_at_ms,
            pool,
        ))));
    }
    match plan.side {
        Side::Server => {
            let backlog = plan.settings.backlog.unwrap_or(DEFAULT_BACKLOG);
            serve(
                addr,
                ServerOpts {
                    socket,
                    app,
                    backlog,
                },
                report,
            )
        }
        Side::Client => {
            let ms = |v: Option<u64>, default| Duration::from_millis(v.unwrap_or(default));
            let opts = ClientOpts {
                socket,
                reconnect_interval: ms(
                    plan.settings.reconnect_interval_ms,
                    DEFAULT_RECONNECT_INTERVAL_MS,
                ),
                connect_timeout: ms(plan.settings.connect_timeout_ms, DEFAULT_CONNECT_TIMEOUT_MS),
                app,
                connections: plan.settings.connections.unwrap_or(1),
                backoff: plan.settings.reconnect_backoff,
            };
            let targets = plan
                .targets
                .clone()
                .unwrap_or(Targets::List { addrs: vec![addr] });
            run_client(targets, opts, report)
        }
    }
}

/// One connect attempt: each address the targets give now, in order, until one answers; the
/// last one's error if none does.
async fn connect_any(server: &Targets, opts: &ClientOpts) -> io::Result<TcpStream> {
    let mut last = io::Error::from_raw_os_error(libc::EHOSTUNREACH);
    for addr in server.resolve()? {
        match connect(addr, opts).await {
            Ok(stream) => return Ok(stream),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// One connect attempt, given up after the connect timeout (ETIMEDOUT).
async fn connect(server: SocketAddr, opts: &ClientOpts) -> io::Result<TcpStream> {
    let sock = Socket::new(
        Domain::for_address(server),
        Type::STREAM,
        Some(Protocol::TCP),
    )?;
    opts.socket.apply(&SockRef::from(&sock))?;
    sock.set_nonblocking(true)?;
    let sock = TcpSocket::from_std_stream(sock.into());
    match tokio::time::timeout(opts.connect_timeout, sock.connect(server)).await {
        Ok(result) => result,
        Err(_) => Err(io::Error::from_raw_os_error(libc::ETIMEDOUT)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;
    use std::sync::Arc;

    /// The failure watcher stamps a FIN as EOF and a reset as an error, each when the kernel
    /// reported it, and forgets a connection let go of.
    #[test]
    fn the_failure_watcher_stamps_what_the_kernel_reports() {
        let f = Failures::get().expect("epoll works here");
        let wait_for = |key: u64, error: &str| {
            let deadline = Instant::now() + Duration::from_secs(5);
            loop {
                if let Some(t) = f.stamp(key, error) {
                    return t;
                }
                assert!(Instant::now() < deadline, "no {error} stamp");
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        // A FIN: EOF, not an error.
        let (ours, theirs) = pair();
        let key = f.add(ours.as_raw_fd()).unwrap();
        assert_eq!(f.stamp(key, "EOF"), None);
        let before = clock::now_ns();
        theirs.shutdown(std::net::Shutdown::Write).unwrap();
        let t = wait_for(key, "EOF");
        assert!(t >= before && t <= clock::now_ns());
        assert_eq!(f.stamp(key, "ECONNRESET"), None);
        // A reset: an error; the peer's own decisions never take the kernel's stamp.
        SockRef::from(&theirs)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(theirs);
        wait_for(key, "ECONNRESET");
        assert_eq!(f.stamp(key, "HEARTBEAT"), None);
        f.remove(ours.as_raw_fd(), key);
        assert_eq!(f.stamp(key, "EOF"), None);
        // Another connection is another key.
        let (again, _peer) = pair();
        assert_ne!(f.add(again.as_raw_fd()), Some(key));
    }

    #[test]
    fn a_listeners_keepalive_is_inherited_before_accept() {
        let opts = SocketOpts {
            keepalive: Keepalive::On {
                idle_s: 7,
                interval_s: 3,
                count: 4,
            },
            user_timeout_ms: 2500,
        };
        let sock = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        sock.bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
            .unwrap();
        opts.apply(&SockRef::from(&sock)).unwrap();
        sock.listen(8).unwrap();
        let listener: std::net::TcpListener = sock.into();
        let _client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        // Nothing set on the accepted socket: all of it came from the listener.
        let s = SockRef::from(&accepted);
        assert!(s.keepalive().unwrap());
        assert_eq!(s.keepalive_time().unwrap(), Duration::from_secs(7));
        assert_eq!(s.keepalive_interval().unwrap(), Duration::from_secs(3));
        assert_eq!(s.keepalive_retries().unwrap(), 4);
        assert_eq!(
            s.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(2500))
        );
    }

    #[test]
    fn mechanism_names_what_detected_the_loss() {
        assert_eq!(mechanism("EOF", 0, 0), "eof");
        assert_eq!(mechanism("EOF", 3, 5000), "eof");
        assert_eq!(mechanism("ECONNRESET", 0, 0), "reset");
        assert_eq!(mechanism("EPIPE", 2, 0), "reset");
        assert_eq!(mechanism("HEARTBEAT", 0, 0), "app-heartbeat");
        assert_eq!(mechanism("HEARTBEAT", 7, 5000), "app-heartbeat");
        assert_eq!(mechanism("ETIMEDOUT", 0, 0), "keepalive");
        assert_eq!(mechanism("ETIMEDOUT", 4, 0), "retransmission-timeout");
        assert_eq!(mechanism("ETIMEDOUT", 0, 5000), "user-timeout");
        assert_eq!(mechanism("ETIMEDOUT", 4, 5000), "user-timeout");
        // ICMP errors arrive with the timer that gave up, never on their own.
        assert_eq!(mechanism("EHOSTUNREACH", 1, 0), "retransmission-timeout");
        assert_eq!(mechanism("EHOSTUNREACH", 3, 500), "user-timeout");
        assert_eq!(mechanism("ENETUNREACH", 0, 0), "keepalive");
        assert_eq!(mechanism("ECONNREFUSED", 0, 3000), "user-timeout");
        assert_eq!(mechanism("EPROTO", 0, 0), "other");
        assert_eq!(mechanism("", 0, 0), "other");
    }

    #[test]
    fn error_names_feed_mechanism() {
        let name = |code| error_name(&io::Error::from_raw_os_error(code));
        assert_eq!(mechanism(&name(libc::ECONNRESET), 0, 0), "reset");
        assert_eq!(mechanism(&name(libc::EPIPE), 0, 0), "reset");
        assert_eq!(
            mechanism(&name(libc::ETIMEDOUT), 1, 0),
            "retransmission-timeout"
        );
        assert_eq!(mechanism(&name(libc::EHOSTUNREACH), 0, 0), "keepalive");
        assert_eq!(name(libc::EPROTO), "EPROTO");
    }

    #[test]
    fn default_traffic_is_idle_and_unframed() {
        assert_eq!(Traffic::default(), Traffic::Idle);
        assert!(!AppOpts::default().framed());
    }

    const ALL: [FrameType; 5] = [
        FrameType::Data,
        FrameType::Request,
        FrameType::Reply,
        FrameType::Ping,
        FrameType::Pong,
    ];

    fn frames(list: &[(FrameType, Vec<u8>)]) -> Vec<u8> {
        let mut wire = Vec::new();
        let mut buf = Vec::new();
        for (kind, payload) in list {
            encode_frame(*kind, payload, &mut buf);
            wire.extend_from_slice(&buf);
        }
        wire
    }

    #[test]
    fn encodes_type_then_big_endian_length() {
        let mut buf = vec![9, 9, 9];
        encode_frame(FrameType::Request, &[0xAB; 258], &mut buf);
        assert_eq!(&buf[..HEADER_LEN], &[2, 0, 0, 1, 2]);
        assert_eq!(buf.len(), HEADER_LEN + 258);
        encode_frame(FrameType::Ping, &[], &mut buf);
        assert_eq!(buf, [4, 0, 0, 0, 0]);
    }

    #[test]
    fn frames_round_trip() {
        let list: Vec<(FrameType, Vec<u8>)> = ALL
            .iter()
            .zip([0usize, 1, 64, 100_000, 7])
            .map(|(&k, n)| (k, (0..n).map(|i| i as u8).collect()))
            .collect();
        let wire = frames(&list);
        let mut r = &wire[..];
        let mut payload = Vec::new();
        for (kind, expected) in &list {
            assert_eq!(read_frame(&mut r, &mut payload).unwrap(), Some(*kind));
            assert_eq!(&payload, expected);
        }
        assert_eq!(read_frame(&mut r, &mut payload).unwrap(), None);
    }

    /// Hands out at most `step` bytes per read, with an EINTR before every other one.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    #[test]
    fn partial_and_interrupted_reads_reassemble_frames() {
        let list: Vec<(FrameType, Vec<u8>)> = ALL
            .iter()
            .enumerate()
            .map(|(i, &k)| (k, vec![i as u8; i * 13]))
            .collect();
        let wire = frames(&list);
        for step in [1, 2, 3, 4, 5, 6, 7, 64] {
            let mut r = Trickle {
                data: &wire,
                step,
                interrupt: false,
            };
            let mut payload = Vec::new();
            for (kind, expected) in &list {
                assert_eq!(read_frame(&mut r, &mut payload).unwrap(), Some(*kind));
                assert_eq!(&payload, expected, "step {step}");
            }
            assert_eq!(read_frame(&mut r, &mut payload).unwrap(), None);
        }
    }

    #[test]
    fn eof_inside_a_frame_is_eof() {
        let wire = frames(&[(FrameType::Data, vec![1; 10])]);
        let mut payload = Vec::new();
        for cut in 0..wire.len() {
            let mut r = &wire[..cut];
            assert_eq!(read_frame(&mut r, &mut payload).unwrap(), None, "cut {cut}");
        }
    }

    #[test]
    fn unknown_type_or_oversized_length_is_eproto() {
        let mut payload = Vec::new();
        for bad in [[0u8, 0, 0, 0, 0], [6, 0, 0, 0, 0], [0xFF, 0, 0, 0, 1]] {
            let err = read_frame(&mut &bad[..], &mut payload).unwrap_err();
            assert_eq!(error_name(&err), "EPROTO");
        }
        let mut header = vec![FrameType::Data as u8];
        header.extend_from_slice(&(MAX_PAYLOAD + 1).to_be_bytes());
        let err = read_frame(&mut &header[..], &mut payload).unwrap_err();
        assert_eq!(error_name(&err), "EPROTO");
    }

    // Loopback runs of whole connections (127.0.0.1 only), on the peers' event loop.

    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            lock(&self.0).extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Captured {
        fn reporter(&self) -> &'static Reporter {
            Box::leak(Box::new(Reporter::to_writer(Box::new(self.clone()))))
        }

        fn events(&self) -> Vec<Value> {
            String::from_utf8(lock(&self.0).clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect()
        }
    }

    const NO_SOCKOPTS: SocketOpts = SocketOpts {
        keepalive: Keepalive::Off,
        user_timeout_ms: 0,
    };

    /// A connected pair of std streams (client, server).
    fn pair() -> (std::net::TcpStream, std::net::TcpStream) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (client, server)
    }

    /// Runs `stream` as one end of a connection until it is lost (inside the event loop).
    async fn run(stream: std::net::TcpStream, role: Role, app: AppOpts, out: Captured) {
        let (local, peer) = match role {
            Role::Server => ("server", "test"),
            Role::Client => ("test", "server"),
        };
        let ends = Ends {
            local: local.into(),
            peer: peer.into(),
        };
        stream.set_nonblocking(true).unwrap();
        let stream = TcpStream::from_std(stream).unwrap();
        let (conn, read) = Conn::new(stream, role, ends, NO_SOCKOPTS, app, out.reporter());
        run_connection(conn, read).await
    }

    async fn pause(ms: u64) {
        tokio::time::sleep(Duration::from_millis(ms)).await
    }

    fn heartbeat(interval_ms: u64, misses: u32) -> AppOpts {
        AppOpts {
            heartbeat_interval: Duration::from_millis(interval_ms),
            heartbeat_misses: misses,
            ..AppOpts::default()
        }
    }

    #[test]
    fn a_silent_server_is_lost_by_heartbeat_exactly_once() {
        // The other end is connected (its kernel ACKs) but its application never answers.
        let (client, _silent) = pair();
        let out = Captured::default();
        let started = Instant::now();
        block_on(run(client, Role::Client, heartbeat(50, 3), out.clone())).unwrap();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(150), "{took:?}");
        assert!(took < Duration::from_millis(1000), "{took:?}");
        let events = out.events();
        assert_eq!(events.len(), 1, "{events:?}");
        let e = &events[0];
        assert_eq!(e["kind"], "peer-lost");
        assert_eq!(e["error"], "HEARTBEAT");
        assert_eq!(e["mechanism"], "app-heartbeat");
        assert_eq!(e["local"], "test");
        assert!(e["heartbeats_sent"].as_u64().unwrap() >= 2, "{e}");
        assert_eq!(e["heartbeats_received"], 0);
    }

    /// Runs both ends with `app` for `ms`, then ends the client's read side (its reader sees
    /// EOF); returns each side's events.
    fn run_both(app: AppOpts, ms: u64) -> (Vec<Value>, Vec<Value>) {
        let (client, server) = pair();
        let closer = client.try_clone().unwrap();
        let (c_out, s_out) = (Captured::default(), Captured::default());
        let (c, s) = (c_out.clone(), s_out.clone());
        let (c_quiet, s_quiet) = (c_out.clone(), s_out.clone());
        block_on(async move {
            let server = tokio::task::spawn_local(run(server, Role::Server, app, s));
            let client = tokio::task::spawn_local(run(client, Role::Client, app, c));
            pause(ms).await;
            assert!(c_quiet.events().is_empty() && s_quiet.events().is_empty());
            // Only the read side: a full shutdown from outside could fail the client's next
            // PING with EPIPE before its reader sees the EOF.
            closer.shutdown(std::net::Shutdown::Read).unwrap();
            client.await.unwrap();
            server.await.unwrap();
        })
        .unwrap();
        let (c_ev, s_ev) = (c_out.events(), s_out.events());
        assert_eq!(c_ev.len(), 1, "{c_ev:?}");
        assert_eq!(s_ev.len(), 1, "{s_ev:?}");
        (c_ev, s_ev)
    }

    #[test]
    fn heartbeats_keep_both_sides_up_until_one_closes() {
        let (c_ev, s_ev) = run_both(heartbeat(20, 10), 300);
        assert_eq!(c_ev[0]["mechanism"], "eof");
        assert_eq!(s_ev[0]["error"], "EOF");
        assert_eq!(s_ev[0]["mechanism"], "eof");
        assert_eq!(s_ev[0]["peer"], "test");
        assert!(c_ev[0]["heartbeats_received"].as_u64().unwrap() >= 5);
        assert!(s_ev[0]["heartbeats_received"].as_u64().unwrap() >= 5);
    }

    /// Runs both ends with `traffic` for a while, ends the client (its reader sees EOF), returns
    /// both losses.
    fn run_traffic(traffic: Traffic) -> (Value, Value) {
        let app = AppOpts {
            traffic,
            traffic_interval: Duration::from_millis(10),
            record_bytes: 100,
            ..AppOpts::default()
        };
        // 40 intervals: at least 5 records each way even when a loaded machine stalls the
        // test for most of the run.
        let (c_ev, s_ev) = run_both(app, 400);
        (c_ev[0].clone(), s_ev[0].clone())
    }

    fn count(e: &Value, field: &str) -> u64 {
        e[field].as_u64().unwrap()
    }

    #[test]
    fn stream_goes_client_to_server_only() {
        let (c, s) = run_traffic(Traffic::Stream);
        assert!(count(&c, "records_sent") >= 5, "{c}");
        assert_eq!(count(&c, "records_received"), 0);
        assert_eq!(count(&s, "records_sent"), 0);
        assert!(count(&s, "records_received") >= 5, "{s}");
    }

    #[test]
    fn requests_get_replies() {
        let (c, s) = run_traffic(Traffic::RequestResponse);
        assert!(count(&c, "records_sent") >= 5, "{c}");
        assert!(count(&c, "records_received") >= 5, "{c}");
        assert!(count(&s, "records_received") >= 5, "{s}");
        // Every request is answered, but for one the connection's end may cut off.
        let (sent, received) = (count(&s, "records_sent"), count(&s, "records_received"));
        assert!(sent == received || sent + 1 == received, "{s}");
    }

    #[test]
    fn a_request_in_flight_waits_for_its_reply() {
        let (c, s) = run_traffic(Traffic::RequestInFlight);
        assert!(count(&c, "records_sent") >= 5, "{c}");
        // One at a time: every request but at most the last was answered before the next.
        let (sent, got) = (count(&c, "records_sent"), count(&c, "records_received"));
        assert!(sent - got <= 1, "{c}");
        assert_eq!(count(&s, "records_sent"), count(&s, "records_received"));
    }

    #[test]
    fn a_request_in_flight_is_not_followed_by_another_while_unanswered() {
        // The server side never reads: the client sends one request and waits.
        let (client, _server) = pair();
        let out = Captured::default();
        let app = AppOpts {
            traffic: Traffic::RequestInFlight,
            traffic_interval: Duration::from_millis(5),
            ..AppOpts::default()
        };
        let c = out.clone();
        let closer = client.try_clone().unwrap();
        block_on(async move {
            let client = tokio::task::spawn_local(run(client, Role::Client, app, c));
            pause(100).await;
            closer.shutdown(std::net::Shutdown::Read).unwrap();
            client.await.unwrap();
        })
        .unwrap();
        let events = out.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["records_sent"], 1, "{}", events[0]);
        assert_eq!(events[0]["records_received"], 0, "{}", events[0]);
    }

    /// A request due within half an interval of a fault moment goes at the edge of that span:
    /// before the fault if it was due before it, after otherwise; others go when due.
    #[test]
    fn a_request_keeps_half_an_interval_clear_of_a_fault() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let faults = [ms(2000), ms(5000)];
        let half = Duration::from_millis(250);
        for (due, goes) in [
            (1000, 1000),
            (1749, 1749),
            (1750, 1750),
            (1999, 1750),
            (2000, 2250),
            (2249, 2250),
            (2250, 2250),
            (4800, 4750),
            (5100, 5250),
        ] {
            assert_eq!(
                clear_of(ms(due), &faults, half),
                ms(goes),
                "due at {due} ms"
            );
        }
    }

    /// The fault moments count from the pool's last first connection, as the runner's do;
    /// before that, requests go when due.
    #[test]
    fn fault_moments_start_at_the_pools_last_first_connection() {
        let f = FaultMoments::new(&[2000], 2);
        let interval = Duration::from_millis(500);
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        assert_eq!(f.clear(at(2000), interval), at(2000));
        f.first_connected(at(0));
        assert_eq!(f.clear(at(2000), interval), at(2000));
        f.first_connected(at(10));
        assert_eq!(f.clear(at(2000), interval), at(1760));
        assert_eq!(f.clear(at(2010), interval), at(2260));
        f.first_connected(at(99));
        assert_eq!(
            f.clear(at(2010), interval),
            at(2260),
            "a later reconnect moves nothing"
        );
    }

    #[test]
    fn push_goes_server_to_client_only() {
        let (c, s) = run_traffic(Traffic::Push);
        assert_eq!(count(&c, "records_sent"), 0);
        assert!(count(&c, "records_received") >= 5, "{c}");
        assert!(count(&s, "records_sent") >= 5, "{s}");
        assert_eq!(count(&s, "records_received"), 0);
    }

    #[test]
    fn a_reset_while_streaming_is_one_loss() {
        let (client, server) = pair();
        let out = Captured::default();
        let app = AppOpts {
            traffic: Traffic::Stream,
            traffic_interval: Duration::from_millis(5),
            ..AppOpts::default()
        };
        let c = out.clone();
        block_on(async move {
            let client = tokio::task::spawn_local(run(client, Role::Client, app, c));
            pause(50).await;
            // Unread data in the receive queue: close() answers with a reset.
            drop(server);
            client.await.unwrap();
        })
        .unwrap();
        let events = out.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["mechanism"], "reset", "{}", events[0]);
    }

    #[test]
    fn idle_without_heartbeat_reads_raw_until_eof() {
        let (client, server) = pair();
        let out = Captured::default();
        let c = out.clone();
        block_on(async move {
            let client = tokio::task::spawn_local(run(client, Role::Client, AppOpts::default(), c));
            (&server).write_all(b"not a frame at all").unwrap();
            pause(20).await;
            server.shutdown(std::net::Shutdown::Write).unwrap();
            client.await.unwrap();
        })
        .unwrap();
        let events = out.events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(events[0]["error"], "EOF");
        assert_eq!(events[0]["mechanism"], "eof");
    }

    #[test]
    fn one_client_holds_many_connections_on_one_thread() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let out = Captured::default();
        let report = out.reporter();
        let opts = ClientOpts {
            socket: NO_SOCKOPTS,
            reconnect_interval: Duration::from_millis(50),
            connect_timeout: Duration::from_secs(1),
            app: AppOpts::default(),
            connections: 200,
            backoff: None,
        };
        let accepted = block_on(async move {
            for i in 0..opts.connections {
                let to: &'static Targets = Box::leak(Box::new(Targets::List { addrs: vec![addr] }));
                tokio::task::spawn_local(client_connection(to, opts, i, report));
            }
            listener.set_nonblocking(true).unwrap();
            let listener = TcpListener::from_std(listener).unwrap();
            let mut held = Vec::new();
            while held.len() < 200 {
                held.push(listener.accept().await.unwrap().0);
            }
            // Every connection is lost at once, and each reconnects on its own timer.
            drop(held);
            let mut back = Vec::new();
            while back.len() < 200 {
                back.push(listener.accept().await.unwrap().0);
            }
            pause(20).await;
            back.len()
        })
        .unwrap();
        assert_eq!(accepted, 200);
        let events = out.events();
        let n = |kind: &str| events.iter().filter(|e| e["kind"] == kind).count();
        assert_eq!(n("connected"), 200);
        assert_eq!(n("peer-lost"), 200);
        assert_eq!(n("reconnected"), 200);
        let ports: std::collections::BTreeSet<_> = events
            .iter()
            .filter(|e| e["kind"] == "connected")
            .map(|e| e["local"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ports.len(), 200, "each connection has its own port");
    }
}
