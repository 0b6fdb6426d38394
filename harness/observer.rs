//! Watches a program's TCP connections from outside, without changing the program: what its
//! kernel knew (connection established, gave up with which errno and why, peer closed) and
//! what the program did about it (closed the socket, connected again).
//!
//! Two sources, both pure to interpret here and read by [`crate::watcher`]:
//! - the kernel's tracepoints (root only): `sock:inet_sock_set_state`, `tcp:tcp_send_reset`,
//!   `tcp:tcp_receive_reset`, `sock:inet_sk_error_report`, `tcp:tcp_destroy_sock`, read from a
//!   tracefs instance with the monotonic clock, so the stamps are the kernel's own, to the
//!   microsecond;
//! - sock_diag dumps of the side's network namespace (any privilege): which process holds
//!   which socket (through /proc/PID/fd inodes), and the keepalive timer, as `ss -o` shows it.
//!
//! Tracepoints fire for every namespace on the machine and carry no namespace, so a trace
//! record counts only when its 4-tuple is one a dump of this side's namespace showed.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

use serde::Serialize;

/// A connection as its own kernel sees it: our end, their end.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Tuple {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
}

impl fmt::Display for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} -> {}", self.local, self.remote)
    }
}

/// TCP states, numbered as the kernel numbers them (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established = 1,
    SynSent,
    SynRecv,
    FinWait1,
    FinWait2,
    TimeWait,
    Close,
    CloseWait,
    LastAck,
    Listen,
    Closing,
    NewSynRecv,
}

impl TcpState {
    pub fn from_number(n: u8) -> Option<TcpState> {
        use TcpState::*;
        Some(match n {
            1 => Established,
            2 => SynSent,
            3 => SynRecv,
            4 => FinWait1,
            5 => FinWait2,
            6 => TimeWait,
            7 => Close,
            8 => CloseWait,
            9 => LastAck,
            10 => Listen,
            11 => Closing,
            12 => NewSynRecv,
            _ => return None,
        })
    }

    /// Parses the tracepoints' spelling, `TCP_ESTABLISHED`.
    pub fn from_trace(s: &str) -> Option<TcpState> {
        use TcpState::*;
        Some(match s.strip_prefix("TCP_")? {
            "ESTABLISHED" => Established,
            "SYN_SENT" => SynSent,
            "SYN_RECV" => SynRecv,
            "FIN_WAIT1" => FinWait1,
            "FIN_WAIT2" => FinWait2,
            "TIME_WAIT" => TimeWait,
            "CLOSE" => Close,
            "CLOSE_WAIT" => CloseWait,
            "LAST_ACK" => LastAck,
            "LISTEN" => Listen,
            "CLOSING" => Closing,
            "NEW_SYN_RECV" => NewSynRecv,
            _ => return None,
        })
    }
}

/// What one tracepoint said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TraceKind {
    SetState {
        from: TcpState,
        to: TcpState,
    },
    /// We sent a reset; `reason` is the kernel's (`TCP_KEEPALIVE_TIMEOUT`, ...).
    SendReset {
        reason: String,
    },
    ReceiveReset,
    /// The socket's error was set: the errno a blocked or next call returns.
    ErrorReport {
        errno: i32,
    },
    /// The last reference went: the program closed an aborted socket, or a closed one ended.
    Destroy,
    /// A receive call of the task returned this error (`sock:sock_recv_length`, which names no
    /// connection: the record's tuple is unspecified).
    RecvError {
        errno: i32,
    },
}

/// One line of a tracefs instance's `trace_pipe`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceRecord {
    /// Monotonic nanoseconds (the instance runs `trace_clock` mono).
    pub t_ns: u64,
    /// The task the event fired in, and its PID as the host sees it (0: an interrupt).
    pub task: String,
    pub host_pid: i32,
    pub tuple: Tuple,
    pub kind: TraceKind,
}

/// Tracepoints enabled with an in-kernel filter: only a program's failing receives, not every
/// read on the machine (nor EAGAIN of non-blocking ones).
pub const FILTERED_TRACEPOINTS: &[(&str, &str)] = &[(
    "sock/sock_recv_length",
    "family == 2 && protocol == 6 && (ret == -110 || ret == -104 || ret == -32 || ret == -113 || ret == -101 || ret == -103)",
)];

/// The tracepoints the observer enables.
pub const TRACEPOINTS: &[&str] = &[
    "sock/inet_sock_set_state",
    "sock/inet_sk_error_report",
    "tcp/tcp_send_reset",
    "tcp/tcp_receive_reset",
    "tcp/tcp_destroy_sock",
];

fn field<'a>(fields: &'a str, key: &str) -> Option<&'a str> {
    fields
        .split_ascii_whitespace()
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
}

fn addr(fields: &str, ip: &str, port: &str) -> Option<SocketAddrV4> {
    Some(SocketAddrV4::new(
        field(fields, ip)?.parse().ok()?,
        field(fields, port)?.parse().ok()?,
    ))
}

/// Parses `123.456789` seconds into nanoseconds.
fn stamp(s: &str) -> Option<u64> {
    let (secs, frac) = s.split_once('.')?;
    let secs: u64 = secs.parse().ok()?;
    if frac.is_empty() || frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac: u64 = format!("{frac:0<9}").parse().ok()?;
    Some(secs * 1_000_000_000 + frac)
}

/// Parses one trace line, e.g.
/// `<idle>-0 [001] .Ns2. 337.180166: inet_sk_error_report: family=AF_INET ... error=110`.
/// Lines of other events, other families, or comments give `None`.
pub fn parse_trace_line(line: &str) -> Option<TraceRecord> {
    let header = trace_header(line)?;
    let (tuple, kind) = match header.event {
        "sock_recv_length" => recv_error(header.fields)?,
        "tcp_send_reset" => send_reset(header.fields)?,
        event => inet_event(event, header.fields)?,
    };
    Some(TraceRecord {
        t_ns: header.t_ns,
        task: header.task.to_owned(),
        host_pid: header.host_pid.parse().ok()?,
        tuple,
        kind,
    })
}

/// The common columns of a trace line, borrowed from it.
struct TraceHeader<'a> {
    task: &'a str,
    /// Still text: parsed last, as before.
    host_pid: &'a str,
    t_ns: u64,
    event: &'a str,
    fields: &'a str,
}

/// Splits a trace line into task, pid, stamp, event and fields; `None` for comments and
/// lines that do not have that shape.
fn trace_header(line: &str) -> Option<TraceHeader<'_>> {
    let line = line.trim_start();
    if line.starts_with('#') {
        return None;
    }
    // The task name may hold spaces and dashes: the CPU column ends it.
    let cpu = line.find(" [")?;
    let (task, host_pid) = line[..cpu].trim_end().rsplit_once('-')?;
    let rest = &line[cpu + 2..];
    let rest = &rest[rest.find(']')? + 1..];
    // Flags, then the stamp, then `event: fields`, separated by runs of spaces.
    let rest = rest.trim_start();
    let rest = rest[rest.find(' ')?..].trim_start();
    let (t, rest) = rest.split_once(": ")?;
    let t_ns = stamp(t)?;
    let (event, fields) = rest.split_once(": ")?;
    Some(TraceHeader {
        task,
        host_pid,
        t_ns,
        event,
        fields,
    })
}

/// A `sock_recv_length` event: a TCP receive that failed (error < 0), with no tuple known.
fn recv_error(fields: &str) -> Option<(Tuple, TraceKind)> {
    // `sk address = ..., family = AF_INET protocol = IPPROTO_TCP, length = 0, error = -110, ...`
    if !fields.contains("family = AF_INET protocol = IPPROTO_TCP,") {
        return None;
    }
    let error: i32 = fields
        .split(", ")
        .find_map(|kv| kv.strip_prefix("error = "))?
        .parse()
        .ok()?;
    if error >= 0 {
        return None;
    }
    let none = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0);
    Some((
        Tuple {
            local: none,
            remote: none,
        },
        TraceKind::RecvError { errno: -error },
    ))
}

/// A `tcp_send_reset` event: the tuple from `src`/`dest`, and the kernel's reason.
fn send_reset(fields: &str) -> Option<(Tuple, TraceKind)> {
    let src: SocketAddrV4 = field(fields, "src")?.parse().ok()?;
    let dest: SocketAddrV4 = field(fields, "dest")?.parse().ok()?;
    let reason = field(fields, "reason")?.to_owned();
    Some((
        Tuple {
            local: src,
            remote: dest,
        },
        TraceKind::SendReset { reason },
    ))
}

/// The IPv4 TCP socket events with `saddr`/`sport`/`daddr`/`dport` fields (state changes,
/// error reports, received resets, destroys); `None` for other families, protocols or events.
fn inet_event(event: &str, fields: &str) -> Option<(Tuple, TraceKind)> {
    if field(fields, "family")? != "AF_INET" {
        return None;
    }
    if field(fields, "protocol").is_some_and(|p| p != "IPPROTO_TCP") {
        return None;
    }
    let tuple = Tuple {
        local: addr(fields, "saddr", "sport")?,
        remote: addr(fields, "daddr", "dport")?,
    };
    let kind = match event {
        "inet_sock_set_state" => TraceKind::SetState {
            from: TcpState::from_trace(field(fields, "oldstate")?)?,
            to: TcpState::from_trace(field(fields, "newstate")?)?,
        },
        "inet_sk_error_report" => TraceKind::ErrorReport {
            errno: field(fields, "error")?.parse().ok()?,
        },
        "tcp_receive_reset" => TraceKind::ReceiveReset,
        "tcp_destroy_sock" => TraceKind::Destroy,
        _ => return None,
    };
    Some((tuple, kind))
}

/// The kernel's keepalive timer for a socket, as sock_diag reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct DiagSocket {
    pub tuple: Tuple,
    pub state: TcpState,
    /// 0 while the socket waits in the accept queue.
    pub inode: u64,
    /// The keepalive timer is armed (the program set SO_KEEPALIVE); ms until it fires.
    pub keepalive_in_ms: Option<u32>,
    /// Retransmit timer armed: ms until it fires, retransmissions so far.
    pub retransmit: Option<(u32, u8)>,
    /// Unanswered keepalive probes (tcp_info.tcpi_probes).
    pub probes: u8,
    /// Unacknowledged segments (tcp_info.tcpi_unacked).
    pub unacked: u32,
}

/// Socket options the program set, read from a duplicate of its descriptor (root only).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct SocketSettings {
    pub keepalive: bool,
    pub idle_s: u32,
    pub interval_s: u32,
    pub count: u32,
    pub user_timeout_ms: u32,
}

/// Why the kernel gave up on a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum GaveUpReason {
    /// Keepalive probes went unanswered (the kernel sent a reset with
    /// reason TCP_KEEPALIVE_TIMEOUT).
    Keepalive,
    /// Retransmissions ran out (tcp_retries2).
    Retransmission,
    /// TCP_USER_TIMEOUT expired with data unacknowledged.
    UserTimeout,
    /// The peer sent a reset.
    ResetReceived,
    /// The path reported an error (ICMP).
    Unreachable,
    /// Seen only as a socket leaving the namespace's dump while the program still holds it.
    Unknown,
}

impl GaveUpReason {
    pub fn as_str(self) -> &'static str {
        match self {
            GaveUpReason::Keepalive => "keepalive",
            GaveUpReason::Retransmission => "retransmission",
            GaveUpReason::UserTimeout => "user-timeout",
            GaveUpReason::ResetReceived => "reset-received",
            GaveUpReason::Unreachable => "unreachable",
            GaveUpReason::Unknown => "unknown",
        }
    }
}

/// The name of an errno the kernel reports on a connection.
pub fn errno_name(errno: i32) -> String {
    match errno {
        libc::ETIMEDOUT => "ETIMEDOUT".into(),
        libc::ECONNRESET => "ECONNRESET".into(),
        libc::EPIPE => "EPIPE".into(),
        libc::ECONNREFUSED => "ECONNREFUSED".into(),
        libc::EHOSTUNREACH => "EHOSTUNREACH".into(),
        libc::ENETUNREACH => "ENETUNREACH".into(),
        libc::ECONNABORTED => "ECONNABORTED".into(),
        n => format!("errno {n}"),
    }
}

/// Which source an observation came from, so the record says how exact its stamp is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Via {
    /// A tracepoint: the kernel's own stamp.
    Trace,
    /// A sock_diag dump: when the dump noticed, up to one poll interval late.
    Diag,
}

/// What the observer reports about one connection of a program.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Observation {
    /// The program tried to connect (a SYN left).
    ConnectAttempt { t_ns: u64, host_pid: i32 },
    /// A connection of the program's exists; `keepalive` says whether its timer is armed.
    Established {
        conn: u32,
        t_ns: u64,
        via: Via,
        tuple: Tuple,
        inode: u64,
        host_pid: i32,
        keepalive_armed: bool,
        keepalive_in_ms: Option<u32>,
    },
    /// The peer closed its end (a FIN arrived): the program should read EOF.
    PeerClosed { conn: u32, t_ns: u64, via: Via },
    /// The kernel aborted the connection; the program's next call returns `error`.
    KernelGaveUp {
        conn: u32,
        t_ns: u64,
        via: Via,
        error: String,
        reason: GaveUpReason,
    },
    /// The program let go of the socket (close, or its exit).
    ProgramClosed { conn: u32, t_ns: u64, via: Via },
    /// A receive call of the program returned an error (which connection the record does not
    /// say: the runner attributes it).
    ProgramSawError {
        t_ns: u64,
        host_pid: i32,
        error: String,
    },
}

impl Observation {
    pub fn t_ns(&self) -> u64 {
        match self {
            Observation::ConnectAttempt { t_ns, .. }
            | Observation::Established { t_ns, .. }
            | Observation::PeerClosed { t_ns, .. }
            | Observation::KernelGaveUp { t_ns, .. }
            | Observation::ProgramClosed { t_ns, .. }
            | Observation::ProgramSawError { t_ns, .. } => *t_ns,
        }
    }
}

/// What the tracker knows of one connection.
#[derive(Clone, Debug)]
struct Conn {
    id: u32,
    inode: u64,
    /// The kernel no longer runs it: aborted, or the peer closed and so did we.
    gave_up: bool,
    peer_closed: bool,
    closed: bool,
    /// A reset arrived or left for this tuple, just before the error: its cause.
    reset: Option<GaveUpReason>,
    /// The socket as the last dump that showed it saw it.
    last: Option<DiagSocket>,
}

/// How long trace records of tuples no dump has shown yet are kept: a connection is
/// established in the kernel before the program accepts it and a dump can name its owner.
const PENDING_NS: u64 = 5_000_000_000;

/// Why a socket the program still holds left the dump, without the trace: a timeout if the
/// namespace's TCPAbortOnTimeout moved (keepalive if its keepalive timer was what ran, else
/// retransmission), otherwise a reset from the peer.
pub fn infer(last: Option<&DiagSocket>, timed_out: bool) -> (&'static str, GaveUpReason) {
    match (timed_out, last) {
        (true, Some(s)) if s.keepalive_in_ms.is_some() || (s.probes > 0 && s.unacked == 0) => {
            ("ETIMEDOUT", GaveUpReason::Keepalive)
        }
        (true, _) => ("ETIMEDOUT", GaveUpReason::Retransmission),
        (false, _) => ("ECONNRESET", GaveUpReason::ResetReceived),
    }
}

/// The value of `name` in /proc/net/netstat or /proc/net/snmp text (`TcpExt:` header and
/// value lines).
pub fn netstat_value(text: &str, group: &str, name: &str) -> Option<u64> {
    let prefix = format!("{group}:");
    let mut lines = text.lines().filter(|l| l.starts_with(&prefix));
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        let i = names.split_ascii_whitespace().position(|n| n == name);
        if let Some(i) = i {
            return values.split_ascii_whitespace().nth(i)?.parse().ok();
        }
    }
    None
}

/// Turns dumps and trace records of one side into per-connection observations. Pure: time
/// comes in with the inputs.
#[derive(Debug, Default)]
pub struct Tracker {
    conns: BTreeMap<Tuple, Conn>,
    /// Trace records for tuples not (yet) known to be the program's.
    pending: Vec<TraceRecord>,
    /// The side's own address: trace records from elsewhere are not ours.
    local_ip: Option<Ipv4Addr>,
    next_id: u32,
    /// Whether trace records arrive: then a dump's view of a close or abort is only a
    /// fallback, since the tracepoint has the exact stamp.
    tracing: bool,
    /// Host PIDs of the program's processes, for connect attempts.
    pids: Vec<i32>,
    /// The namespace's TcpExt TCPAbortOnTimeout counter around this dump (before, after),
    /// and before the previous dump.
    timeouts: (u64, u64),
    timeouts_before_last: Option<u64>,
    /// Without the trace: connect attempts seen in dumps (a socket in SYN_SENT), by tuple.
    attempts_seen: std::collections::BTreeSet<Tuple>,
    /// With the trace: connections a dump showed before their handshake's record arrived;
    /// the next dump takes them, with the record's stamp if it came meanwhile.
    deferred: std::collections::BTreeSet<Tuple>,
    /// With the trace: losses drawn from records the kernel wrote outside the program's own
    /// context (the peer's FIN, an abort's error), held until the program's socket confirms
    /// them. The tracepoints name a 4-tuple, not a namespace, and concurrent labs use the
    /// same addresses, so another lab's socket can carry the same tuple (a mosquitto client's
    /// EOF in one lab once passed for a silent drop's in another).
    held: Vec<(Tuple, Observation)>,
    /// With the trace: connections gone from the dump that no process of the program holds,
    /// since when (the dump's stamp), while their close's record may still be on its way.
    unheld: BTreeMap<Tuple, u64>,
}

/// How long, with the trace, a connection nobody of the program holds waits for its close's
/// record before a dump reports the close: records arrive 0.5-2 ms after the kernel's stamp
/// (tens of ms on a loaded machine), and a process forked since the last look at the
/// program's group (refreshed every 500 ms, harness/watcher.rs) may still hold it.
const UNHELD_GRACE_NS: u64 = 700_000_000;

/// Whether a socket the program holds, last known in `state` (`None`: gone from the dump),
/// bears out `obs` drawn from a trace record stamped before: a peer's FIN leaves it past
/// ESTABLISHED, an abort leaves it closed.
fn bears_out(obs: &Observation, state: Option<TcpState>) -> bool {
    use TcpState::*;
    match obs {
        Observation::PeerClosed { .. } => !matches!(state, Some(SynSent | SynRecv | Established)),
        Observation::KernelGaveUp { .. } => matches!(state, None | Some(Close)),
        _ => true,
    }
}

impl Tracker {
    pub fn new(local_ip: Ipv4Addr, tracing: bool) -> Tracker {
        Tracker {
            local_ip: Some(local_ip),
            tracing,
            ..Tracker::default()
        }
    }

    /// The program's processes, as the host numbers them.
    pub fn set_pids(&mut self, pids: Vec<i32>) {
        self.pids = pids;
    }

    /// The 4-tuple of connection `conn`.
    pub fn tuple_of(&self, conn: u32) -> Option<Tuple> {
        self.conns
            .iter()
            .find(|(_, c)| c.id == conn)
            .map(|(t, _)| *t)
    }

    /// The namespace's TCPAbortOnTimeout counter, read just before and just after a dump:
    /// without the trace, whether it moved tells a timeout from a reset. A socket that left
    /// between two dumps was aborted after the read before the first and before the read
    /// after the second.
    pub fn set_aborts_on_timeout(&mut self, before: u64, after: u64) {
        self.timeouts = (before, after);
    }

    fn timed_out(&self) -> bool {
        self.timeouts_before_last
            .is_some_and(|before| self.timeouts.1 > before)
    }

    /// A dump of the namespace at `t_ns`; `owner` maps an inode to the host PID of the
    /// program's process that holds it (None: not the program's).
    pub fn dump(
        &mut self,
        t_ns: u64,
        sockets: &[DiagSocket],
        owner: impl Fn(u64) -> Option<i32>,
    ) -> Vec<Observation> {
        let mut out = Vec::new();
        // What the dump no longer shows, or shows changed: first, so that a connection the
        // program made to replace one that went within the same dump comes after it.
        let shown: BTreeMap<Tuple, &DiagSocket> = sockets.iter().map(|s| (s.tuple, s)).collect();
        let tuples: Vec<Tuple> = self.conns.keys().copied().collect();
        for tuple in tuples {
            let conn = &self.conns[&tuple];
            if conn.closed {
                continue;
            }
            let held = owner(conn.inode).is_some();
            match shown.get(&tuple) {
                // With the trace, its record has the kernel's stamp: the dump only waits.
                Some(s) if s.state == TcpState::CloseWait && !self.tracing => {
                    out.extend(self.peer_closed(tuple, t_ns, Via::Diag));
                }
                Some(s) if s.state == TcpState::Established => {}
                // Gone from the dump, or on its way out: who let go? With the trace, its
                // record says, with the kernel's stamp. Should none come (the program's process
                // let go before it was known as the program's, so its records did not count),
                // a socket nobody of the program holds any more is closed as of the dump that
                // first saw it so, once the records have had UNHELD_GRACE_NS to arrive.
                _ if self.tracing => {
                    if held {
                        self.unheld.remove(&tuple);
                        continue;
                    }
                    let since = *self.unheld.entry(tuple).or_insert(t_ns);
                    if t_ns < since + UNHELD_GRACE_NS {
                        continue;
                    }
                    self.unheld.remove(&tuple);
                    out.extend(self.settle(|t| t == tuple, |_| None));
                    let c = self.conns.get_mut(&tuple).expect("listed");
                    c.closed = true;
                    out.push(Observation::ProgramClosed {
                        conn: c.id,
                        t_ns: since,
                        via: Via::Diag,
                    });
                }
                _ if held => {
                    if !conn.gave_up && !conn.peer_closed {
                        let timed_out = self.timed_out();
                        let c = self.conns.get_mut(&tuple).expect("listed");
                        c.gave_up = true;
                        let (error, reason) = infer(c.last.as_ref(), timed_out);
                        out.push(Observation::KernelGaveUp {
                            conn: c.id,
                            t_ns,
                            via: Via::Diag,
                            error: error.into(),
                            reason,
                        });
                    }
                }
                gone => {
                    let timed_out = self.timed_out();
                    let c = self.conns.get_mut(&tuple).expect("listed");
                    // Gone and let go within one dump interval: if the namespace counted a
                    // timeout, the kernel aborted it first (a program's own close leaves the
                    // socket in FIN_WAIT or LAST_ACK, still in the dump).
                    if gone.is_none() && timed_out && !c.gave_up && !c.peer_closed {
                        c.gave_up = true;
                        let (error, reason) = infer(c.last.as_ref(), true);
                        out.push(Observation::KernelGaveUp {
                            conn: c.id,
                            t_ns,
                            via: Via::Diag,
                            error: error.into(),
                            reason,
                        });
                    }
                    c.closed = true;
                    out.push(Observation::ProgramClosed {
                        conn: c.id,
                        t_ns,
                        via: Via::Diag,
                    });
                }
            }
        }
        for s in sockets {
            // Without the trace, an attempt shows as a socket in SYN_SENT (one that a refusal
            // ends within a dump interval goes unseen).
            if s.state == TcpState::SynSent && !self.tracing && s.inode != 0 {
                if let Some(host_pid) = owner(s.inode) {
                    if self.attempts_seen.insert(s.tuple) {
                        out.push(Observation::ConnectAttempt { t_ns, host_pid });
                    }
                }
            }
            if !matches!(s.state, TcpState::Established | TcpState::CloseWait) {
                continue;
            }
            if self.conns.get(&s.tuple).is_some_and(|c| !c.closed) {
                continue;
            }
            let Some(host_pid) = (s.inode != 0).then(|| owner(s.inode)).flatten() else {
                continue;
            };
            self.next_id += 1;
            let id = self.next_id;
            // The kernel's stamp of the handshake, when the trace had it: the latest, since
            // another lab's socket may have carried the same tuple before (see `held`).
            let traced = self.pending.iter().rfind(|r| {
                r.tuple == s.tuple
                    && matches!(
                        r.kind,
                        TraceKind::SetState {
                            to: TcpState::Established,
                            ..
                        }
                    )
            });
            // The record may be on its way (it reaches us 0.5-2 ms after the kernel's stamp):
            // wait one dump for it.
            if traced.is_none() && self.tracing && self.deferred.insert(s.tuple) {
                self.next_id -= 1;
                continue;
            }
            self.deferred.remove(&s.tuple);
            let (t, via) = traced.map_or((t_ns, Via::Diag), |r| (r.t_ns, Via::Trace));
            self.conns.insert(
                s.tuple,
                Conn {
                    id,
                    inode: s.inode,
                    gave_up: false,
                    peer_closed: false,
                    closed: false,
                    reset: None,
                    last: Some(*s),
                },
            );
            out.push(Observation::Established {
                conn: id,
                t_ns: t,
                via,
                tuple: s.tuple,
                inode: s.inode,
                host_pid,
                keepalive_armed: s.keepalive_in_ms.is_some(),
                keepalive_in_ms: s.keepalive_in_ms,
            });
            // Replay what the trace said of it meanwhile (records from before its handshake
            // were another socket's).
            let pending = std::mem::take(&mut self.pending);
            let (mine, rest): (Vec<_>, Vec<_>) =
                pending.into_iter().partition(|r| r.tuple == s.tuple);
            self.pending = rest;
            for r in mine.into_iter().filter(|r| via == Via::Diag || r.t_ns >= t) {
                out.extend(self.trace(r));
            }
            if s.state == TcpState::CloseWait && !self.tracing {
                out.extend(self.peer_closed(s.tuple, t_ns, Via::Diag));
            }
        }
        for s in sockets {
            if let Some(c) = self.conns.get_mut(&s.tuple).filter(|c| !c.closed) {
                c.last = Some(*s);
            }
        }
        self.timeouts_before_last = Some(self.timeouts.0);
        // Forget trace records nobody claimed.
        self.pending
            .retain(|r| r.t_ns + PENDING_NS >= t_ns || r.t_ns > t_ns);
        out
    }

    /// Held losses of the tuples `which` picks, judged by the state `state_of` gives their
    /// socket: the borne-out ones come out, the others are forgotten (another namespace's).
    fn settle(
        &mut self,
        which: impl Fn(Tuple) -> bool,
        state_of: impl Fn(Tuple) -> Option<TcpState>,
    ) -> Vec<Observation> {
        let (now, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(t, _)| which(*t));
        self.held = later;
        let mut out = Vec::new();
        for (tuple, obs) in now {
            if bears_out(&obs, state_of(tuple)) {
                out.push(obs);
                continue;
            }
            if let Some(c) = self.conns.get_mut(&tuple) {
                match obs {
                    Observation::PeerClosed { .. } => c.peer_closed = false,
                    Observation::KernelGaveUp { .. } => {
                        c.gave_up = false;
                        c.reset = None;
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// A dump that began at `started_ns` judges the held losses stamped before it began: the
    /// kernel had made the change by then, so the program's socket shows it if it was its.
    pub fn confirm(&mut self, started_ns: u64, sockets: &[DiagSocket]) -> Vec<Observation> {
        if self.held.is_empty() {
            return Vec::new();
        }
        let stamps: BTreeMap<Tuple, u64> = self.held.iter().map(|(t, o)| (*t, o.t_ns())).fold(
            BTreeMap::new(),
            |mut m, (t, ns)| {
                let e = m.entry(t).or_insert(ns);
                *e = (*e).max(ns);
                m
            },
        );
        let states: BTreeMap<Tuple, TcpState> = sockets
            .iter()
            .filter(|s| stamps.contains_key(&s.tuple))
            .map(|s| (s.tuple, s.state))
            .collect();
        self.settle(
            |t| stamps.get(&t).is_some_and(|&ns| ns < started_ns),
            |t| states.get(&t).copied(),
        )
    }

    fn peer_closed(&mut self, tuple: Tuple, t_ns: u64, via: Via) -> Option<Observation> {
        let c = self.conns.get_mut(&tuple)?;
        if c.peer_closed || c.gave_up || c.closed {
            return None;
        }
        c.peer_closed = true;
        Some(Observation::PeerClosed {
            conn: c.id,
            t_ns,
            via,
        })
    }

    /// One trace record (any namespace's: only the program's tuples count).
    pub fn trace(&mut self, r: TraceRecord) -> Vec<Observation> {
        if let TraceKind::RecvError { errno } = r.kind {
            if self.pids.contains(&r.host_pid) {
                // The program's own read returned a held abort's error: that bears it out.
                let error = errno_name(errno);
                let mut out = Vec::new();
                if let Some(i) = self.held.iter().rposition(
                    |(_, o)| matches!(o, Observation::KernelGaveUp { error: e, .. } if *e == error),
                ) {
                    out.push(self.held.remove(i).1);
                }
                out.push(Observation::ProgramSawError {
                    t_ns: r.t_ns,
                    host_pid: r.host_pid,
                    error,
                });
                return out;
            }
            return Vec::new();
        }
        if self.local_ip.is_some_and(|ip| *r.tuple.local.ip() != ip) {
            return Vec::new();
        }
        if let TraceKind::SetState {
            from: TcpState::Close,
            to: TcpState::SynSent,
        } = r.kind
        {
            if self.pids.contains(&r.host_pid) {
                return vec![Observation::ConnectAttempt {
                    t_ns: r.t_ns,
                    host_pid: r.host_pid,
                }];
            }
            return Vec::new();
        }
        let Some(c) = self.conns.get_mut(&r.tuple).filter(|c| !c.closed) else {
            self.pending.push(r);
            return Vec::new();
        };
        let id = c.id;
        let mut out = Vec::new();
        match r.kind {
            TraceKind::SendReset { ref reason } if reason == "TCP_KEEPALIVE_TIMEOUT" => {
                c.reset = Some(GaveUpReason::Keepalive);
            }
            TraceKind::SendReset { .. } => {}
            TraceKind::ReceiveReset => c.reset = Some(GaveUpReason::ResetReceived),
            TraceKind::ErrorReport { errno } => {
                if !c.gave_up && !c.closed {
                    c.gave_up = true;
                    let reason = match (c.reset, errno) {
                        (Some(reason), _) => reason,
                        (None, libc::ECONNRESET | libc::EPIPE) => GaveUpReason::ResetReceived,
                        (None, libc::ETIMEDOUT) => GaveUpReason::Retransmission,
                        (None, _) => GaveUpReason::Unreachable,
                    };
                    let obs = Observation::KernelGaveUp {
                        conn: id,
                        t_ns: r.t_ns,
                        via: Via::Trace,
                        error: errno_name(errno),
                        reason,
                    };
                    self.held.push((r.tuple, obs));
                }
            }
            TraceKind::SetState { from, to } => match (from, to) {
                (TcpState::Established, TcpState::CloseWait) => {
                    if let Some(obs) = self.peer_closed(r.tuple, r.t_ns, Via::Trace) {
                        self.held.push((r.tuple, obs));
                    }
                }
                // close() or shutdown() by the program: a FIN leaves. (A move to CLOSE is
                // an abort, whose error report follows.)
                // Only in the program's own context: concurrent labs reuse the same addresses,
                // so another lab's socket can carry this tuple (its close is not ours).
                (
                    TcpState::Established | TcpState::CloseWait,
                    TcpState::FinWait1 | TcpState::LastAck,
                ) if c.reset.is_none() && self.pids.contains(&r.host_pid) => {
                    // The program's own step says what its socket was in.
                    out.extend(self.settle(|t| t == r.tuple, |_| Some(from)));
                    let c = self.conns.get_mut(&r.tuple).expect("listed");
                    c.closed = true;
                    out.push(Observation::ProgramClosed {
                        conn: id,
                        t_ns: r.t_ns,
                        via: Via::Trace,
                    });
                }
                _ => {}
            },
            TraceKind::RecvError { .. } => {}
            TraceKind::Destroy => {
                // The program's last close, in its own context (see above); a socket freed
                // elsewhere is seen gone by the next dump.
                if !c.closed && self.pids.contains(&r.host_pid) {
                    // Freed without a FIN of its own first: it was closed (aborted).
                    out.extend(self.settle(|t| t == r.tuple, |_| Some(TcpState::Close)));
                    let c = self.conns.get_mut(&r.tuple).expect("listed");
                    c.closed = true;
                    out.push(Observation::ProgramClosed {
                        conn: id,
                        t_ns: r.t_ns,
                        via: Via::Trace,
                    });
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Lines as this kernel (6.18) printed them for a keepalive abort on both sides.
    const ESTABLISHED: &str = "           socat-8237    [000] .....   333.094837: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_SYN_SENT newstate=TCP_ESTABLISHED";
    const SYN_SENT: &str = "           socat-8237    [000] .....   333.094757: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=0 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_CLOSE newstate=TCP_SYN_SENT";
    const RESET: &str = "          <idle>-0       [001] .Ns2.   337.180190: tcp_send_reset: skbaddr=0000000000000000 skaddr=00000000d36a3636 src=10.99.0.1:43206 dest=10.99.0.2:7000 state=TCP_ESTABLISHED reason=TCP_KEEPALIVE_TIMEOUT";
    const TO_CLOSE: &str = "          <idle>-0       [001] .Ns2.   337.180194: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE";
    const ERROR: &str = "          <idle>-0       [001] .Ns2.   337.180194: inet_sk_error_report: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 error=110";
    const DESTROY: &str = "     my prog-x-8232    [001] b..1.   337.181725: tcp_destroy_sock: family=AF_INET sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 sock_cookie=4";

    fn tuple() -> Tuple {
        Tuple {
            local: "10.99.0.1:43206".parse().unwrap(),
            remote: "10.99.0.2:7000".parse().unwrap(),
        }
    }

    fn diag(state: TcpState, keepalive: Option<u32>) -> DiagSocket {
        DiagSocket {
            tuple: tuple(),
            state,
            inode: 20929,
            keepalive_in_ms: keepalive,
            retransmit: None,
            probes: 0,
            unacked: 0,
        }
    }

    #[test]
    fn parses_the_kernels_lines() {
        let r = parse_trace_line(ERROR).unwrap();
        assert_eq!(r.t_ns, 337_180_194_000);
        assert_eq!((r.task.as_str(), r.host_pid), ("<idle>", 0));
        assert_eq!(r.tuple, tuple());
        assert_eq!(r.kind, TraceKind::ErrorReport { errno: 110 });
        let r = parse_trace_line(RESET).unwrap();
        assert_eq!(r.tuple, tuple());
        assert_eq!(
            r.kind,
            TraceKind::SendReset {
                reason: "TCP_KEEPALIVE_TIMEOUT".into()
            }
        );
        let r = parse_trace_line(DESTROY).unwrap();
        assert_eq!((r.task.as_str(), r.host_pid), ("my prog-x", 8232));
        assert_eq!(r.kind, TraceKind::Destroy);
        assert_eq!(
            parse_trace_line(ESTABLISHED).unwrap().kind,
            TraceKind::SetState {
                from: TcpState::SynSent,
                to: TcpState::Established
            }
        );
    }

    #[test]
    fn a_failing_receive_is_the_programs_if_its_pid_is() {
        let line = "           socat-8237    [000] .....   337.181000: sock_recv_length: sk address = 00000000d36a3636, family = AF_INET protocol = IPPROTO_TCP, length = 0, error = -110, flags = 0x0";
        let r = parse_trace_line(line).unwrap();
        assert_eq!(r.kind, TraceKind::RecvError { errno: 110 });
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        assert!(t.trace(r.clone()).is_empty());
        t.set_pids(vec![8237]);
        assert_eq!(
            t.trace(r),
            vec![Observation::ProgramSawError {
                t_ns: 337_181_000_000,
                host_pid: 8237,
                error: "ETIMEDOUT".into()
            }]
        );
        let v6 = line.replace("AF_INET ", "AF_INET6 ");
        assert_eq!(parse_trace_line(&v6), None);
    }

    #[test]
    fn ignores_what_is_not_an_ipv4_tcp_event() {
        assert_eq!(parse_trace_line("# tracer: nop"), None);
        assert_eq!(parse_trace_line(""), None);
        assert_eq!(parse_trace_line("garbage [x"), None);
        let v6 = ESTABLISHED.replace("AF_INET", "AF_INET6");
        assert_eq!(parse_trace_line(&v6), None);
        let sctp = ESTABLISHED.replace("IPPROTO_TCP", "IPPROTO_SCTP");
        assert_eq!(parse_trace_line(&sctp), None);
        let other = ESTABLISHED.replace("inet_sock_set_state", "sk_data_ready");
        assert_eq!(parse_trace_line(&other), None);
        assert_eq!(stamp("12.5"), Some(12_500_000_000));
        assert_eq!(stamp("12."), None);
    }

    #[test]
    fn a_keepalive_abort_then_a_late_close() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        t.set_pids(vec![8237]);
        // The attempt and the handshake arrive before any dump names the socket's owner.
        let attempt = t.trace(parse_trace_line(SYN_SENT).unwrap());
        assert!(matches!(
            attempt[..],
            [Observation::ConnectAttempt { host_pid: 8237, .. }]
        ));
        assert!(t.trace(parse_trace_line(ESTABLISHED).unwrap()).is_empty());
        let seen = t.dump(
            333_200_000_000,
            &[diag(TcpState::Established, Some(900))],
            |_| Some(8237),
        );
        match &seen[..] {
            [Observation::Established {
                conn: 1,
                t_ns,
                via: Via::Trace,
                keepalive_armed: true,
                ..
            }] => assert_eq!(*t_ns, 333_094_837_000),
            other => panic!("{other:?}"),
        }
        for line in [RESET, TO_CLOSE] {
            assert!(t.trace(parse_trace_line(line).unwrap()).is_empty());
        }
        // The error is written in softirq: held until the program's socket bears it out. A
        // dump that began before the record's stamp cannot.
        assert!(t.trace(parse_trace_line(ERROR).unwrap()).is_empty());
        assert!(t.confirm(337_180_000_000, &[]).is_empty());
        let gave_up = t.confirm(337_181_000_000, &[]);
        assert_eq!(
            gave_up,
            vec![Observation::KernelGaveUp {
                conn: 1,
                t_ns: 337_180_194_000,
                via: Via::Trace,
                error: "ETIMEDOUT".into(),
                reason: GaveUpReason::Keepalive
            }]
        );
        // The dump no longer shows the socket, the program still holds it: the trace has
        // already said why, so the dump adds nothing.
        assert!(t.dump(337_200_000_000, &[], |_| Some(8237)).is_empty());
        // Freed by a process not of the program (another lab's socket with the same tuple):
        // not the program's close.
        assert!(t.trace(parse_trace_line(DESTROY).unwrap()).is_empty());
        // The program's group now includes 8232, which closes it.
        t.set_pids(vec![8237, 8232]);
        let closed = t.trace(parse_trace_line(DESTROY).unwrap());
        assert_eq!(
            closed,
            vec![Observation::ProgramClosed {
                conn: 1,
                t_ns: 337_181_725_000,
                via: Via::Trace
            }]
        );
    }

    /// A pool's program closes a dead connection and opens its replacement between two
    /// dumps: the old one's end comes before the new one, so the new one can be told a
    /// reconnection.
    #[test]
    fn a_dump_reports_what_went_before_what_replaced_it() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), false);
        t.dump(1_000, &[diag(TcpState::Established, Some(900))], |_| {
            Some(5)
        });
        let mut new = diag(TcpState::Established, Some(900));
        new.tuple.local.set_port(43207);
        new.inode = 20930;
        let seen = t.dump(2_000, &[new], |inode| (inode == 20930).then_some(5));
        let kinds: Vec<&str> = seen
            .iter()
            .map(|o| match o {
                Observation::ProgramClosed { .. } => "closed",
                Observation::Established { .. } => "established",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["closed", "established"], "{seen:?}");
    }

    #[test]
    fn without_the_trace_a_dump_sees_the_abort_and_the_close() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), false);
        let seen = t.dump(1_000, &[diag(TcpState::Established, None)], |_| Some(5));
        assert!(matches!(
            seen[..],
            [Observation::Established {
                via: Via::Diag,
                keepalive_armed: false,
                t_ns: 1_000,
                ..
            }]
        ));
        // Aborted: gone from the dump, still held, and no timeout counted: a reset.
        let gave_up = t.dump(2_000, &[], |_| Some(5));
        assert!(matches!(
            &gave_up[..],
            [Observation::KernelGaveUp {
                reason: GaveUpReason::ResetReceived,
                t_ns: 2_000,
                error,
                ..
            }] if error == "ECONNRESET"
        ));
        assert!(t.dump(3_000, &[], |_| Some(5)).is_empty());
        let closed = t.dump(4_000, &[], |_| None);
        assert!(matches!(
            closed[..],
            [Observation::ProgramClosed { t_ns: 4_000, .. }]
        ));
        // Aborted by a timeout and closed within one dump interval: both, at the same time.
        let mut fast = Tracker::new("10.99.0.1".parse().unwrap(), false);
        // The abort lands between the first dump and the counter read after it: counted.
        fast.set_aborts_on_timeout(0, 1);
        fast.dump(1_000, &[diag(TcpState::Established, Some(500))], |_| {
            Some(5)
        });
        fast.set_aborts_on_timeout(1, 1);
        let both = fast.dump(2_000, &[], |_| None);
        assert!(matches!(
            both[..],
            [
                Observation::KernelGaveUp {
                    reason: GaveUpReason::Keepalive,
                    t_ns: 2_000,
                    ..
                },
                Observation::ProgramClosed { t_ns: 2_000, .. }
            ]
        ));
        // A new connection on the same tuple is a new one.
        let again = t.dump(5_000, &[diag(TcpState::Established, None)], |_| Some(5));
        assert!(matches!(
            again[..],
            [Observation::Established { conn: 2, .. }]
        ));
    }

    #[test]
    fn without_the_trace_the_timeout_counter_names_the_cause() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), false);
        t.set_aborts_on_timeout(7, 7);
        t.dump(1_000, &[diag(TcpState::Established, Some(500))], |_| {
            Some(5)
        });
        t.set_aborts_on_timeout(7, 8);
        let gave_up = t.dump(2_000, &[], |_| Some(5));
        assert!(matches!(
            &gave_up[..],
            [Observation::KernelGaveUp {
                reason: GaveUpReason::Keepalive,
                error,
                ..
            }] if error == "ETIMEDOUT"
        ));
        let mut busy = diag(TcpState::Established, None);
        busy.unacked = 3;
        assert_eq!(
            infer(Some(&busy), true),
            ("ETIMEDOUT", GaveUpReason::Retransmission)
        );
        let netstat =
            "TcpExt: SyncookiesSent TCPAbortOnTimeout X\nTcpExt: 0 42 1\nIpExt: A\nIpExt: 9\n";
        assert_eq!(
            netstat_value(netstat, "TcpExt", "TCPAbortOnTimeout"),
            Some(42)
        );
        assert_eq!(netstat_value(netstat, "IpExt", "A"), Some(9));
        assert_eq!(netstat_value(netstat, "TcpExt", "Nope"), None);
    }

    #[test]
    fn with_the_trace_a_dump_waits_one_round_for_the_handshakes_record() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        let up = diag(TcpState::Established, Some(900));
        assert!(t.dump(333_094_900_000, &[up], |_| Some(8237)).is_empty());
        t.trace(parse_trace_line(ESTABLISHED).unwrap());
        let seen = t.dump(333_096_900_000, &[up], |_| Some(8237));
        assert!(matches!(
            seen[..],
            [Observation::Established {
                conn: 1,
                via: Via::Trace,
                t_ns: 333_094_837_000,
                ..
            }]
        ));
        assert_eq!(t.tuple_of(1), Some(tuple()));
        // No record at all: the dump's own time, one round later.
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        assert!(t.dump(1_000, &[up], |_| Some(1)).is_empty());
        let seen = t.dump(3_000, &[up], |_| Some(1));
        assert!(matches!(
            seen[..],
            [Observation::Established {
                conn: 1,
                via: Via::Diag,
                t_ns: 3_000,
                ..
            }]
        ));
    }

    #[test]
    fn without_the_trace_a_dump_sees_connect_attempts_once() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), false);
        let syn = diag(TcpState::SynSent, None);
        let seen = t.dump(1_000, &[syn], |_| Some(5));
        assert!(matches!(
            seen[..],
            [Observation::ConnectAttempt {
                t_ns: 1_000,
                host_pid: 5
            }]
        ));
        assert!(t.dump(2_000, &[syn], |_| Some(5)).is_empty());
        assert!(Tracker::new("10.99.0.1".parse().unwrap(), true)
            .dump(1_000, &[syn], |_| Some(5))
            .is_empty());
    }

    #[test]
    fn a_peer_close_then_the_programs_close() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), false);
        t.dump(1_000, &[diag(TcpState::Established, None)], |_| Some(5));
        let fin = t.dump(2_000, &[diag(TcpState::CloseWait, None)], |_| Some(5));
        assert!(matches!(
            fin[..],
            [Observation::PeerClosed { t_ns: 2_000, .. }]
        ));
        let closed = t.dump(3_000, &[], |_| None);
        assert!(matches!(closed[..], [Observation::ProgramClosed { .. }]));
    }

    const CLOSE_WAIT: &str = "          <idle>-0       [001] ..s2.   337.100000: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_ESTABLISHED newstate=TCP_CLOSE_WAIT";
    const TO_LAST_ACK: &str = "           socat-8237    [000] .....   337.100050: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_CLOSE_WAIT newstate=TCP_LAST_ACK";
    const TO_FIN_WAIT: &str = "           socat-8237    [000] .....   337.100050: inet_sock_set_state: family=AF_INET protocol=IPPROTO_TCP sport=43206 dport=7000 saddr=10.99.0.1 daddr=10.99.0.2 saddrv6=::ffff:10.99.0.1 daddrv6=::ffff:10.99.0.2 oldstate=TCP_ESTABLISHED newstate=TCP_FIN_WAIT1";

    /// A tracker with connection 1 established on `tuple()`, held by pid 8237.
    fn established() -> Tracker {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        t.set_pids(vec![8237]);
        t.trace(parse_trace_line(ESTABLISHED).unwrap());
        let seen = t.dump(
            333_200_000_000,
            &[diag(TcpState::Established, None)],
            |_| Some(8237),
        );
        assert_eq!(seen.len(), 1, "{seen:?}");
        t
    }

    /// Another lab's socket with the same tuple: its peer's FIN and its abort. The program's
    /// socket, still established in the next dump, disowns both, and its own later loss still
    /// counts.
    #[test]
    fn another_namespaces_loss_on_the_same_tuple_does_not_count() {
        let mut t = established();
        assert!(t.trace(parse_trace_line(CLOSE_WAIT).unwrap()).is_empty());
        assert!(t.trace(parse_trace_line(ERROR).unwrap()).is_empty());
        let ours = [diag(TcpState::Established, None)];
        assert!(t.confirm(337_190_000_000, &ours).is_empty());
        assert!(t.held.is_empty());
        // Its own abort later: gone from the dump.
        let mut own = parse_trace_line(ERROR).unwrap();
        own.t_ns = 340_000_000_000;
        assert!(t.trace(own).is_empty());
        let gave_up = t.confirm(340_001_000_000, &[]);
        assert!(
            matches!(
                gave_up[..],
                [Observation::KernelGaveUp {
                    t_ns: 340_000_000_000,
                    ..
                }]
            ),
            "{gave_up:?}"
        );
    }

    /// Another lab's socket with the same tuple shook hands and lost its peer before the
    /// program's did: the program's connection takes its own (latest) handshake's stamp and
    /// none of the earlier records.
    #[test]
    fn an_earlier_socket_with_the_same_tuple_lends_no_records() {
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        t.set_pids(vec![8237]);
        let mut theirs = parse_trace_line(ESTABLISHED).unwrap();
        theirs.t_ns -= 250_000_000;
        let mut their_fin = parse_trace_line(CLOSE_WAIT).unwrap();
        their_fin.t_ns = theirs.t_ns + 1_000_000;
        for r in [theirs, their_fin, parse_trace_line(ESTABLISHED).unwrap()] {
            assert!(t.trace(r).is_empty());
        }
        let seen = t.dump(
            333_200_000_000,
            &[diag(TcpState::Established, None)],
            |_| Some(8237),
        );
        assert!(
            matches!(
                seen[..],
                [Observation::Established {
                    t_ns: 333_094_837_000,
                    ..
                }]
            ),
            "{seen:?}"
        );
        assert!(t.held.is_empty(), "{:?}", t.held);
    }

    /// With the trace, a close whose record never counted (the process that let go was not
    /// known as the program's): a dump reports it once nobody of the program has held the
    /// socket for the grace, stamped when a dump first saw that; a socket still held waits.
    #[test]
    fn with_the_trace_a_close_no_record_claimed_comes_from_the_dumps() {
        let mut t = established();
        t.trace(parse_trace_line(ERROR).unwrap());
        let first = 337_190_000_000;
        let seen = t.dump(first, &[], |_| Some(8237));
        assert!(seen.is_empty(), "{seen:?}");
        // Held: no close however long.
        assert!(t
            .dump(first + 10 * UNHELD_GRACE_NS, &[], |_| Some(8237))
            .is_empty());
        let gave_up = t.confirm(first, &[]);
        assert!(matches!(gave_up[..], [Observation::KernelGaveUp { .. }]));
        let let_go = first + 11 * UNHELD_GRACE_NS;
        assert!(t.dump(let_go, &[], |_| None).is_empty());
        assert!(t
            .dump(let_go + UNHELD_GRACE_NS - 1, &[], |_| None)
            .is_empty());
        let closed = t.dump(let_go + UNHELD_GRACE_NS, &[], |_| None);
        assert_eq!(
            closed,
            vec![Observation::ProgramClosed {
                conn: 1,
                t_ns: let_go,
                via: Via::Diag
            }]
        );
        assert!(t
            .dump(let_go + 2 * UNHELD_GRACE_NS, &[], |_| None)
            .is_empty());
    }

    /// The program's read returns the error of a held abort before any dump: the abort comes
    /// out first, then the read.
    #[test]
    fn the_programs_failing_read_bears_out_the_abort() {
        let mut t = established();
        t.trace(parse_trace_line(ERROR).unwrap());
        let read = "           socat-8237    [000] .....   337.181000: sock_recv_length: sk address = 00000000d36a3636, family = AF_INET protocol = IPPROTO_TCP, length = 0, error = -110, flags = 0x0";
        let seen = t.trace(parse_trace_line(read).unwrap());
        assert!(
            matches!(
                seen[..],
                [
                    Observation::KernelGaveUp {
                        t_ns: 337_180_194_000,
                        ..
                    },
                    Observation::ProgramSawError { .. }
                ]
            ),
            "{seen:?}"
        );
        assert!(t.confirm(337_190_000_000, &[]).is_empty());
    }

    /// The peer's FIN, then the program's own close from CLOSE_WAIT before any dump: that
    /// step bears the FIN out, and the two come in order.
    #[test]
    fn the_programs_close_from_close_wait_bears_out_the_fin() {
        let mut t = established();
        assert!(t.trace(parse_trace_line(CLOSE_WAIT).unwrap()).is_empty());
        let seen = t.trace(parse_trace_line(TO_LAST_ACK).unwrap());
        assert!(
            matches!(
                seen[..],
                [
                    Observation::PeerClosed {
                        t_ns: 337_100_000_000,
                        ..
                    },
                    Observation::ProgramClosed { .. }
                ]
            ),
            "{seen:?}"
        );
        // A dump in CLOSE_WAIT bears it out too.
        let mut t = established();
        t.trace(parse_trace_line(CLOSE_WAIT).unwrap());
        let seen = t.confirm(337_101_000_000, &[diag(TcpState::CloseWait, None)]);
        assert!(
            matches!(seen[..], [Observation::PeerClosed { .. }]),
            "{seen:?}"
        );
        // The program closing an established socket disowns a FIN drawn from elsewhere.
        let mut t = established();
        t.trace(parse_trace_line(CLOSE_WAIT).unwrap());
        let seen = t.trace(parse_trace_line(TO_FIN_WAIT).unwrap());
        assert!(
            matches!(seen[..], [Observation::ProgramClosed { .. }]),
            "{seen:?}"
        );
    }

    #[test]
    fn records_of_other_namespaces_and_programs_do_not_count() {
        let mut t = Tracker::new("10.99.0.2".parse().unwrap(), true);
        t.set_pids(vec![1]);
        // Another side's address.
        assert!(t.trace(parse_trace_line(SYN_SENT).unwrap()).is_empty());
        let mut t = Tracker::new("10.99.0.1".parse().unwrap(), true);
        t.set_pids(vec![1]);
        // Another process's connect.
        assert!(t.trace(parse_trace_line(SYN_SENT).unwrap()).is_empty());
        // Sockets nobody of the program holds.
        assert!(t
            .dump(1, &[diag(TcpState::Established, None)], |_| None)
            .is_empty());
        // Unclaimed trace records are forgotten after a while.
        t.trace(parse_trace_line(ERROR).unwrap());
        assert_eq!(t.pending.len(), 1);
        t.dump(337_180_194_000 + PENDING_NS + 1, &[], |_| None);
        assert!(t.pending.is_empty());
    }
}
