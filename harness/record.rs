//! The record of a run: typed events on one clock, and the versioned JSON document that users,
//! CI and `flatline report` read back (the record contract in the README).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::scenario::{FaultKind, Scenario, Side};

/// Bumped whenever the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 2;

/// Who recorded an event.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    Runner,
    Client,
    Server,
    Wire,
    Observer,
    /// The standby host's server (a failover moves the service to it).
    Standby,
}

impl From<Side> for Source {
    fn from(side: Side) -> Self {
        match side {
            Side::Client => Source::Client,
            Side::Server => Source::Server,
        }
    }
}

impl Source {
    /// The peer side this source is, if it is one.
    pub fn side(self) -> Option<Side> {
        match self {
            Source::Client => Some(Side::Client),
            Source::Server => Some(Side::Server),
            _ => None,
        }
    }
}

/// One thing that happened, `t_ms` after the lab came up.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Event {
    /// Milliseconds since the lab came up, on the monotonic clock every process shares.
    pub t_ms: f64,
    pub source: Source,
    /// The TCP connection the event is about, the same number on both of its ends: connections
    /// are numbered from 1 in the order they first appear in the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conn: Option<u64>,
    #[serde(flatten)]
    pub kind: Kind,
}

impl Event {
    pub fn new(t_ms: f64, source: Source, kind: Kind) -> Self {
        Event {
            t_ms,
            source,
            conn: None,
            kind,
        }
    }

    /// The kebab-case name of the event's kind, as serialized.
    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    /// The fault step this event records, if it is `fault-injected` or `fault-healed`.
    pub fn fault_step(&self) -> Option<&FaultStep> {
        match &self.kind {
            Kind::FaultInjected(s) | Kind::FaultHealed(s) => Some(s),
            _ => None,
        }
    }
}

/// What happened, with the fields of its kind (serialized flat next to `t_ms` and `source`,
/// tagged by `kind`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Kind {
    /// The lab's namespaces and links are up: t_ms = 0.
    LabUp {
        /// How long building the lab took, ms.
        setup_ms: f64,
    },
    /// The lab was torn down.
    LabDown {
        teardown_ms: f64,
        /// Why the run ended: "end" (the scenario's end), "settled" (every expectation was
        /// decided).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// The wire became a NAT (before the peers started).
    NatUp { mechanism: String },
    /// The wire delays every packet it forwards (`[wire]`, before the peers started).
    DelayUp { mechanism: String },
    /// The wire's delayer stopped (at the end of the run): what it held, how late it was.
    DelayDown(crate::delay::DelayStats),
    /// The runner started a peer process.
    ProcessStarted { side: Side, pid: i32 },
    /// A peer process ended.
    ProcessExited {
        side: Side,
        pid: i32,
        /// How it ended, as the runner saw it ("exit status: 0", "signal: 9 (SIGKILL)").
        status: String,
    },
    /// A fault is in effect (stamped when it took effect).
    FaultInjected(FaultStep),
    /// A fault was undone.
    FaultHealed(FaultStep),
    /// The server listens.
    Listening { addr: String },
    /// The server's accept() failed.
    AcceptFailed { error: String },
    /// Setting a socket option on an accepted connection failed.
    SetsockoptFailed {
        #[serde(flatten)]
        ends: Ends,
        error: String,
    },
    /// A connection is established (client: its first connection; server: an accepted one).
    Connected(Connected),
    /// The client tries to connect again after a loss.
    ReconnectAttempt {
        attempt: u32,
        /// Pool only: the client's connection slot (see [`Connected::slot`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<u32>,
    },
    /// The client is connected again after a loss.
    Reconnected(Connected),
    /// A connect attempt failed.
    ConnectFailed {
        attempt: u32,
        error: String,
        /// Pool only: the client's connection slot (see [`Connected::slot`]).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        slot: Option<u32>,
    },
    /// The server namespace's listen queue counters (TcpExt in /proc/net/netstat), read by the
    /// runner when a pool's connections are all up and again at the end.
    ListenCounters {
        /// SYNs or completed handshakes dropped because the accept queue was full.
        listen_overflows: u64,
        /// Every SYN or handshake the listener dropped, overflows included.
        listen_drops: u64,
    },
    /// A side noticed its connection was dead.
    PeerLost(PeerLost),
    /// A line a peer printed that is not an event.
    PeerOutput { line: String },
    /// The observer watches a user program's side: how (`trace`: tracepoints with the
    /// kernel's stamps, and dumps; `dump`: sock_diag dumps only) and, if not by trace, why.
    ObserverUp {
        side: Side,
        via: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// A user program's connection, as the observer found it in the side's namespace.
    ConnectionObserved(ConnectionObserved),
    /// The kernel aborted a user program's connection: the program's next call returns `error`.
    KernelGaveUp {
        #[serde(flatten)]
        ends: Ends,
        /// ETIMEDOUT, ECONNRESET, EPIPE, ... (in a dump, inferred from the namespace's
        /// TCPAbortOnTimeout counter).
        error: String,
        /// keepalive, retransmission, user-timeout, reset-received, unreachable, unknown.
        reason: String,
        /// How it was observed: "trace" (the kernel's own stamp) or "dump" (sock_diag poll).
        via: String,
        /// As root: how much later a sock_diag dump alone would have seen this, ms (the
        /// delay of the rootless mechanism, measured against the kernel's stamp).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dump_lag_ms: Option<f64>,
    },
    /// The peer closed its end of a user program's connection (a FIN arrived).
    FinReceived {
        #[serde(flatten)]
        ends: Ends,
        via: String,
        /// As root: how much later a sock_diag dump alone would have seen this, ms (the
        /// delay of the rootless mechanism, measured against the kernel's stamp).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dump_lag_ms: Option<f64>,
    },
    /// A user program let go of its connection (close, or exit).
    ProgramClosed {
        #[serde(flatten)]
        ends: Ends,
        via: String,
        /// As root: how much later a sock_diag dump alone would have seen this, ms (the
        /// delay of the rootless mechanism, measured against the kernel's stamp).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        dump_lag_ms: Option<f64>,
    },
    /// A receive call of a user program returned the error its kernel reported for this
    /// connection (as root: `sock:sock_recv_length`, attributed to the program's latest
    /// connection its kernel gave up).
    ProgramSawError {
        #[serde(flatten)]
        ends: Ends,
        error: String,
    },
    /// A line a user program printed (the first ones, and every one that matched).
    ProgramOutput {
        stream: String,
        line: String,
        /// "lost" or "back": the scenario's pattern it matched.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        matched: Option<String>,
    },
}

/// `connection-observed`: a user program's connection and what its socket carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ConnectionObserved {
    #[serde(flatten)]
    pub ends: Ends,
    /// The process holding it (PID in the lab).
    pub pid: i32,
    /// The kernel's keepalive timer is armed (the program set SO_KEEPALIVE).
    pub keepalive_armed: bool,
    /// When that timer fires, ms from the observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keepalive_in_ms: Option<u32>,
    /// The options the program set, read from a duplicate of its descriptor (root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<crate::observer::SocketSettings>,
    /// "trace" or "dump", as in `kernel-gave-up`.
    pub via: String,
}

impl Kind {
    /// The kebab-case name, as serialized in `kind`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::LabUp { .. } => "lab-up",
            Kind::LabDown { .. } => "lab-down",
            Kind::NatUp { .. } => "nat-up",
            Kind::DelayUp { .. } => "delay-up",
            Kind::DelayDown(_) => "delay-down",
            Kind::ProcessStarted { .. } => "process-started",
            Kind::ProcessExited { .. } => "process-exited",
            Kind::FaultInjected(_) => "fault-injected",
            Kind::FaultHealed(_) => "fault-healed",
            Kind::Listening { .. } => "listening",
            Kind::AcceptFailed { .. } => "accept-failed",
            Kind::SetsockoptFailed { .. } => "setsockopt-failed",
            Kind::Connected(_) => "connected",
            Kind::ReconnectAttempt { .. } => "reconnect-attempt",
            Kind::Reconnected(_) => "reconnected",
            Kind::ConnectFailed { .. } => "connect-failed",
            Kind::ListenCounters { .. } => "listen-counters",
            Kind::PeerLost(_) => "peer-lost",
            Kind::PeerOutput { .. } => "peer-output",
            Kind::ObserverUp { .. } => "observer-up",
            Kind::ConnectionObserved(_) => "connection-observed",
            Kind::KernelGaveUp { .. } => "kernel-gave-up",
            Kind::FinReceived { .. } => "fin-received",
            Kind::ProgramClosed { .. } => "program-closed",
            Kind::ProgramSawError { .. } => "program-saw-error",
            Kind::ProgramOutput { .. } => "program-output",
        }
    }

    /// The connection's ends, for the kinds that are about one connection.
    pub fn ends(&self) -> Option<&Ends> {
        match self {
            Kind::SetsockoptFailed { ends, .. } => Some(ends),
            Kind::Connected(c) | Kind::Reconnected(c) => Some(&c.ends),
            Kind::PeerLost(l) => Some(&l.ends),
            Kind::ConnectionObserved(c) => Some(&c.ends),
            Kind::KernelGaveUp { ends, .. }
            | Kind::FinReceived { ends, .. }
            | Kind::ProgramClosed { ends, .. }
            | Kind::ProgramSawError { ends, .. } => Some(ends),
            _ => None,
        }
    }

    /// Where an observer event keeps how late a dump alone would have seen it.
    pub fn dump_lag_ms(&mut self) -> Option<&mut Option<f64>> {
        match self {
            Kind::KernelGaveUp { dump_lag_ms, .. }
            | Kind::FinReceived { dump_lag_ms, .. }
            | Kind::ProgramClosed { dump_lag_ms, .. } => Some(dump_lag_ms),
            _ => None,
        }
    }

    /// Whether this is a connection being established (`connected` or `reconnected`).
    pub fn is_connect(&self) -> bool {
        matches!(self, Kind::Connected(_) | Kind::Reconnected(_))
    }
}

/// A connection's two addresses (ip:port) as one side sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Ends {
    pub local: String,
    pub peer: String,
}

impl Ends {
    /// The client's port: it tells connections apart on both ends, also through a NAT that
    /// changes the client's address (and keeps its port, as the lab's does).
    pub fn client_port(&self, side: Side) -> &str {
        let addr = match side {
            Side::Client => &self.local,
            Side::Server => &self.peer,
        };
        addr.rsplit_once(':').map_or("", |(_, port)| port)
    }
}

/// `connected` and `reconnected`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Connected {
    #[serde(flatten)]
    pub ends: Ends,
    /// Client only: connect attempts this took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Client with a pool of connections only: which of its connections this is (from 0); it
    /// keeps its slot across reconnects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slot: Option<u32>,
    /// Client, in a scenario with a failover: the host that accepted it, `server` or
    /// `standby`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

/// One step of a fault: `fault-injected` or `fault-healed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaultStep {
    /// The fault's id in the scenario.
    pub fault: String,
    pub fault_kind: FaultKind,
    /// What was done, as a command a person could run.
    pub mechanism: String,
    /// How long the step took until it was in effect (t_ms is when it was), ms.
    pub took_ms: f64,
    /// Packets the fault's firewall rules matched while in force (at heal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub packets_matched: Option<u64>,
}

/// What detected a loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LossMechanism {
    /// The peer closed: read() returned 0.
    Eof,
    /// A reset arrived (ECONNRESET, EPIPE).
    Reset,
    /// The application heartbeat went unanswered.
    AppHeartbeat,
    /// TCP_USER_TIMEOUT expired.
    UserTimeout,
    /// Retransmissions of unacknowledged data ran out (tcp_retries2).
    RetransmissionTimeout,
    /// Keepalive probes went unanswered.
    Keepalive,
    /// An ICMP error (EHOSTUNREACH, ENETUNREACH, ECONNREFUSED).
    Icmp,
    Other,
}

impl LossMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            LossMechanism::Eof => "eof",
            LossMechanism::Reset => "reset",
            LossMechanism::AppHeartbeat => "app-heartbeat",
            LossMechanism::UserTimeout => "user-timeout",
            LossMechanism::RetransmissionTimeout => "retransmission-timeout",
            LossMechanism::Keepalive => "keepalive",
            LossMechanism::Icmp => "icmp",
            LossMechanism::Other => "other",
        }
    }
}

impl PartialEq<&str> for LossMechanism {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for LossMechanism {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `peer-lost`: a side noticed its connection was dead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeerLost {
    #[serde(flatten)]
    pub ends: Ends,
    /// EOF for an orderly close, HEARTBEAT for the application heartbeat, else the errno name
    /// (ETIMEDOUT, ECONNRESET, ...).
    pub error: String,
    pub mechanism: LossMechanism,
    /// The kernel's view of the socket when the loss was noticed (absent if unavailable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp_info: Option<TcpInfo>,
    pub records_sent: u64,
    pub records_received: u64,
    pub heartbeats_sent: u64,
    pub heartbeats_received: u64,
}

/// TCP connection states, by the kernel's names (include/net/tcp_states.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum TcpState {
    Established,
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
    /// A number this version does not know.
    Unknown,
}

impl TcpState {
    pub fn from_kernel(state: u8) -> Self {
        use TcpState::*;
        match state {
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
            _ => Unknown,
        }
    }
}

/// The fields of the kernel's `struct tcp_info` that explain a detection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TcpInfo {
    pub state: TcpState,
    /// Retransmissions of the oldest unacknowledged segment (kept after an abort).
    pub retransmits: u8,
    /// Unanswered keepalive or zero-window probes.
    pub probes: u8,
    pub backoff: u8,
    pub rto_us: u32,
    pub rtt_us: u32,
    pub unacked: u32,
    pub total_retrans: u32,
    pub last_data_sent_ms: u32,
    pub last_data_recv_ms: u32,
    pub last_ack_recv_ms: u32,
}

/// What a peer prints on stdout, one JSON object a line: an event kind stamped with the peer's
/// own reading of the monotonic clock. The runner turns it into an [`Event`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PeerReport {
    pub mono_ns: u64,
    #[serde(flatten)]
    pub kind: Kind,
}

/// Numbers connections as their events arrive: both ends of one TCP connection get the same
/// number, found by the client's port (in the client's `local`, the server's `peer`) and the
/// host that accepted it.
///
/// The port alone is not enough once a failover moves the server's address to the standby:
/// a client connection to the standby that is given the port of one of the old server's
/// connections has the same four-tuple as that connection, which the cut-off old server still
/// holds until its keepalive gives up. The old server's loss must stay with its own connection,
/// not the standby's. (Ephemeral ports come from one counter per destination shared by every
/// network namespace, `__inet_hash_connect`'s `table_perturb`: other labs connecting to the
/// same address move it round the range, and a reconnect can land on a port used a second
/// earlier. A CI run left 4 and 12 of a pool's 100 old-server connections "never" that way.)
#[derive(Clone, Debug, Default)]
pub struct Connections {
    /// Client port -> the connections seen at it, oldest first.
    by_port: BTreeMap<String, Vec<Numbered>>,
    last: u64,
}

/// One connection at a client port: its number, whether the client reported it established,
/// and which host (the server or the standby) did.
#[derive(Clone, Debug)]
struct Numbered {
    number: u64,
    client: bool,
    host: Option<Source>,
}

impl Connections {
    /// The connection `kind`, reported by `source` (the client, the server or the standby),
    /// is about. A connection is established once by the client and once by a host: an end
    /// that reports a connection established at a port where it already has one has a new
    /// connection (the port was used again). A host's other events go to its own latest
    /// connection at that port, the client's to the client's latest.
    pub fn number(&mut self, source: Source, kind: &Kind) -> Option<u64> {
        let side = match source {
            Source::Client => Side::Client,
            Source::Server | Source::Standby => Side::Server,
            _ => return None,
        };
        let port = kind.ends()?.client_port(side);
        if port.is_empty() {
            return None;
        }
        let seen = self.by_port.entry(port.to_owned()).or_default();
        let client = source == Source::Client;
        let own = |n: &Numbered| {
            if client {
                n.client
            } else {
                n.host == Some(source)
            }
        };
        if kind.is_connect() {
            // The other end may have reported this connection first.
            let waiting = seen.last_mut().filter(|n| {
                if client {
                    !n.client && n.host.is_some()
                } else {
                    n.host.is_none()
                }
            });
            if let Some(n) = waiting {
                if client {
                    n.client = true;
                } else {
                    n.host = Some(source);
                }
                return Some(n.number);
            }
            self.last += 1;
            seen.push(Numbered {
                number: self.last,
                client,
                host: (!client).then_some(source),
            });
            return Some(self.last);
        }
        if let Some(n) = seen.iter().rev().find(|n| own(n)).or(seen.last()) {
            return Some(n.number);
        }
        self.last += 1;
        seen.push(Numbered {
            number: self.last,
            client: false,
            host: None,
        });
        Some(self.last)
    }
}

/// Where and when a run happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Environment {
    /// The host kernel's release (uname -r).
    pub kernel: String,
    pub flatline_version: String,
    /// When the run started, UTC, RFC 3339 ("2026-11-28T17:45:52Z").
    pub run_date: String,
    /// "root" or "user-namespace".
    pub privileges: String,
}

/// How a run ended. A record is written for every run that got as far as the lab.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "state", rename_all = "kebab-case")]
pub enum RunStatus {
    /// The schedule ran to its end, or every expectation was decided.
    Completed,
    /// A signal stopped the run: SIGINT (Ctrl-C), SIGTERM or SIGHUP.
    Interrupted { signal: String },
    /// The run could not go on: a fault failed to inject or heal, a peer died, ...
    Failed { reason: String },
}

impl RunStatus {
    pub fn is_completed(&self) -> bool {
        *self == RunStatus::Completed
    }
}

/// What one side went through for one fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct SideSummary {
    /// fault-injected to peer-lost, ms.
    pub detection_ms: Option<f64>,
    pub error: Option<String>,
    /// fault-healed to connected again, ms.
    pub reconnect_ms: Option<f64>,
    /// A pool of connections: the distributions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool: Option<PoolSummary>,
}

/// Nearest-rank quantiles of latencies, ms.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Distribution {
    pub min_ms: f64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// What a pool of connections went through on one side for one fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct PoolSummary {
    /// Connections open on this side when the fault took effect: the ones it cut.
    pub connections: u64,
    /// Of those, how many noticed (peer-lost) before the next fault.
    pub detected: u64,
    /// Of those, how many never noticed.
    pub never_detected: u64,
    /// fault-injected to each connection's peer-lost.
    pub detection: Option<Distribution>,
    /// When the last connection to notice noticed (t_ms).
    pub last_detected_at_ms: Option<f64>,
    /// Detections by error.
    pub errors: BTreeMap<String, u64>,
    /// Connections back since the heal (client: slots connected again; server: accepted).
    pub reconnected: u64,
    /// fault-healed to each connection's return.
    pub reconnect: Option<Distribution>,
    /// fault-healed until 95 % of the connections cut were back.
    pub back_95_ms: Option<f64>,
    /// fault-healed until every connection cut was back.
    pub all_back_ms: Option<f64>,
    /// Losses, by error, of connections the fault did not cut (opened after it took effect):
    /// the reconnect storm's collateral damage.
    pub collateral: BTreeMap<String, u64>,
}

/// The client's reconnect storm after one fault (a pool only).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Storm {
    /// Reconnect attempts from the fault until the next fault (or the end).
    pub attempts: u64,
    /// Most attempts within any one second, from the heal (the return; from the injection if
    /// never healed).
    pub peak_attempts_per_s: u64,
    /// Most attempts within any 100 ms, from the heal likewise.
    pub busiest_100ms: u64,
    /// Failed attempts by error (ECONNREFUSED: refused; ETIMEDOUT: timed out).
    pub failed: BTreeMap<String, u64>,
    /// Growth of the server namespace's ListenOverflows / ListenDrops over the run.
    pub listen_overflows: Option<u64>,
    pub listen_drops: Option<u64>,
}

/// What happened around one fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct FaultSummary {
    pub id: String,
    pub kind: FaultKind,
    pub injected_at_ms: Option<f64>,
    /// How long injecting took until the fault was in effect.
    pub injection_ms: Option<f64>,
    pub healed_at_ms: Option<f64>,
    pub client: SideSummary,
    pub server: SideSummary,
    /// A pool of connections: the client's reconnect storm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storm: Option<Storm>,
}

/// Per side, for the first fault (the common case), and per fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub client: SideSummary,
    pub server: SideSummary,
    pub faults: Vec<FaultSummary>,
}

/// Where an expectation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    /// Undecided: the run is still going and the outcome can still change.
    Pending,
}

/// One expectation and what happened, both in scenario syntax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    pub expected: String,
    pub actual: String,
    pub passed: bool,
    pub status: Status,
    /// Why it failed, in words; empty when it passed.
    pub reason: String,
}

/// Every expectation judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Verdict {
    pub passed: bool,
    pub expectations: Vec<Outcome>,
}

/// The document a run writes. `summary` and `verdict` are derived from `scenario` and `events`
/// alone (see [`crate::verdict::judge_run`]), so a saved record can be judged again.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Record {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    pub status: RunStatus,
    /// The scenario as resolved for the run (defaults filled in).
    pub scenario: Scenario,
    pub environment: Environment,
    /// Ordered by `t_ms`.
    pub events: Vec<Event>,
    pub summary: Summary,
    pub verdict: Verdict,
}

/// A record file that cannot be read back.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("cannot read {path}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {field}{message}")]
    Invalid {
        path: String,
        line: usize,
        column: usize,
        /// The field, as a dotted path with a trailing ": ", or empty.
        field: String,
        message: String,
    },
    #[error(
        "{path}: format_version {found} is not one this flatline reads ({FORMAT_VERSION}): \
         run the scenario again with this version"
    )]
    Version { path: String, found: u64 },
}

/// Reads a record back from its JSON text; `path` names it in errors.
pub fn parse(path: &str, text: &str) -> Result<Record, RecordError> {
    let invalid = |e: &serde_json::Error, field: String| RecordError::Invalid {
        path: path.to_owned(),
        line: e.line(),
        column: e.column(),
        field,
        message: in_words(e.to_string().split(" at line ").next().unwrap_or("")),
    };
    #[derive(Deserialize)]
    struct Versioned {
        format_version: Option<serde_json::Value>,
    }
    let v: Versioned = serde_json::from_str(text).map_err(|e| invalid(&e, String::new()))?;
    match v
        .format_version
        .as_ref()
        .and_then(serde_json::Value::as_u64)
    {
        Some(n) if n == u64::from(FORMAT_VERSION) => {}
        Some(found) => {
            return Err(RecordError::Version {
                path: path.to_owned(),
                found,
            })
        }
        None => {
            return Err(RecordError::Invalid {
                path: path.to_owned(),
                line: 1,
                column: 1,
                field: "format_version: ".into(),
                message: "missing: this is not a flatline record".into(),
            })
        }
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            String::new()
        } else {
            format!("{field}: ")
        };
        invalid(e.inner(), field)
    })
}

/// serde's message with Rust's names for things in JSON's words.
fn in_words(message: &str) -> String {
    let mut m = message.to_owned();
    for (rust, words) in [
        ("u8", "a whole number"),
        ("u32", "a whole number"),
        ("u64", "a whole number"),
        ("i32", "a whole number"),
        ("f64", "a number"),
        ("internally tagged enum", "an object"),
        ("struct", "an object"),
        ("enum", "a name"),
    ] {
        let from = format!("expected {rust}");
        while let Some(i) = m.find(&from) {
            let rest = &m[i + from.len()..];
            // Drop the type's name after "struct X", "enum X".
            let name = if rust.ends_with("enum") || rust == "struct" {
                let r = rest.trim_start();
                (rest.len() - r.len()) + r.find(|c: char| !c.is_alphanumeric()).unwrap_or(r.len())
            } else {
                0
            };
            m = format!("{}expected {words}{}", &m[..i], &rest[name..]);
        }
    }
    m.replace("a map", "an object")
        .replace("invalid type: map", "invalid type: object")
        .replace("a sequence", "an array")
        .replace("invalid type: sequence", "invalid type: array")
}

/// Reads a record file.
pub fn load(path: &std::path::Path) -> Result<Record, RecordError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| RecordError::Read {
        path: name.clone(),
        source,
    })?;
    parse(&name, &text)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    fn connected(local: &str, peer: &str) -> Kind {
        Kind::Connected(Connected {
            ends: Ends {
                local: local.into(),
                peer: peer.into(),
            },
            attempts: None,
            slot: None,
            host: None,
        })
    }

    #[test]
    fn events_serialize_flat_with_a_kebab_case_kind_and_read_back() {
        let mut e = Event::new(
            12.5,
            Source::Client,
            Kind::PeerLost(PeerLost {
                ends: Ends {
                    local: "198.18.1.2:40000".into(),
                    peer: "198.18.2.2:7000".into(),
                },
                error: "ETIMEDOUT".into(),
                mechanism: LossMechanism::Keepalive,
                tcp_info: Some(TcpInfo {
                    state: TcpState::from_kernel(7),
                    retransmits: 0,
                    probes: 10,
                    backoff: 0,
                    rto_us: 200_000,
                    rtt_us: 50,
                    unacked: 0,
                    total_retrans: 0,
                    last_data_sent_ms: 1,
                    last_data_recv_ms: 2,
                    last_ack_recv_ms: 3,
                }),
                records_sent: 0,
                records_received: 0,
                heartbeats_sent: 0,
                heartbeats_received: 0,
            }),
        );
        e.conn = Some(1);
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["kind"], "peer-lost");
        assert_eq!(v["conn"], 1);
        assert_eq!(v["mechanism"], "keepalive");
        assert_eq!(v["local"], "198.18.1.2:40000");
        assert_eq!(v["tcp_info"]["state"], "CLOSE");
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.kind_name(), "peer-lost");
    }

    #[test]
    fn a_peer_report_is_a_kind_with_a_clock_reading() {
        let r: PeerReport =
            serde_json::from_str(r#"{"mono_ns":5,"kind":"reconnect-attempt","attempt":2}"#)
                .unwrap();
        assert_eq!(r.mono_ns, 5);
        assert_eq!(
            r.kind,
            Kind::ReconnectAttempt {
                attempt: 2,
                slot: None
            }
        );
        assert!(serde_json::from_str::<PeerReport>(r#"{"mono_ns":5,"kind":"nope"}"#).is_err());
    }

    #[test]
    fn both_ends_of_a_connection_get_one_number() {
        let mut c = Connections::default();
        let a = "198.18.1.2:40000";
        let b = "198.18.1.2:40001";
        let srv = "198.18.2.2:7000";
        let natted = "198.18.2.1:40001";
        // The server may report its accept before the client reports its connect.
        assert_eq!(c.number(Source::Server, &connected(srv, a)), Some(1));
        assert_eq!(c.number(Source::Client, &connected(a, srv)), Some(1));
        assert_eq!(c.number(Source::Client, &connected(b, srv)), Some(2));
        assert_eq!(c.number(Source::Server, &connected(srv, natted)), Some(2));
        assert_eq!(c.number(Source::Server, &lost(srv, a)), Some(1));
        // A port used again later is a new connection.
        assert_eq!(c.number(Source::Client, &connected(a, srv)), Some(3));
        assert_eq!(c.number(Source::Server, &connected(srv, a)), Some(3));
        assert_eq!(
            c.number(
                Source::Client,
                &Kind::ReconnectAttempt {
                    attempt: 1,
                    slot: None
                }
            ),
            None
        );
    }

    fn lost(local: &str, peer: &str) -> Kind {
        Kind::PeerLost(PeerLost {
            ends: Ends {
                local: local.into(),
                peer: peer.into(),
            },
            error: "ETIMEDOUT".into(),
            mechanism: LossMechanism::Keepalive,
            tcp_info: None,
            records_sent: 0,
            records_received: 0,
            heartbeats_sent: 0,
            heartbeats_received: 0,
        })
    }

    /// After a failover the client's new connection to the standby may get the port of one of
    /// the old server's connections (the same four-tuple: the standby has the old address).
    /// The old server's loss, reported after it, stays with the old connection; the standby's
    /// end pairs with the client's new one, in either order of arrival.
    #[test]
    fn a_port_used_again_on_the_standby_is_not_the_old_servers_connection() {
        let a = "198.18.1.2:40000";
        let srv = "198.18.2.2:7000";
        for standby_first in [false, true] {
            let mut c = Connections::default();
            assert_eq!(c.number(Source::Client, &connected(a, srv)), Some(1));
            assert_eq!(c.number(Source::Server, &connected(srv, a)), Some(1));
            // The standby's RST: the client loses it.
            assert_eq!(c.number(Source::Client, &lost(a, srv)), Some(1));
            let (first, second) = if standby_first {
                (
                    c.number(Source::Standby, &connected(srv, a)),
                    c.number(Source::Client, &connected(a, srv)),
                )
            } else {
                (
                    c.number(Source::Client, &connected(a, srv)),
                    c.number(Source::Standby, &connected(srv, a)),
                )
            };
            assert_eq!((first, second), (Some(2), Some(2)), "{standby_first}");
            // The cut-off old server's keepalive gives up seconds later.
            assert_eq!(c.number(Source::Server, &lost(srv, a)), Some(1));
            assert_eq!(c.number(Source::Standby, &lost(srv, a)), Some(2));
            assert_eq!(c.number(Source::Client, &lost(a, srv)), Some(2));
        }
        // The runner, the wire and the observer number nothing.
        let mut c = Connections::default();
        assert_eq!(c.number(Source::Runner, &connected(a, srv)), None);
    }

    // Round trips of whole records, with every kind of event.

    fn shipped_scenarios() -> Vec<Scenario> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut files: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|f| crate::scenario::load(f).unwrap())
            .collect()
    }

    /// Longer than any run: 31 years, in ms (times 1000, the summary's rounding to the
    /// microsecond, stays below 2^53: exact).
    const LONGEST_RUN_MS: f64 = 1e12;

    /// A time a run can record: ms since the run started, or a step's duration (its effect
    /// minus its start, never negative), so finite, not negative and shorter than a run.
    /// Any f64 would let `t_ms - took_ms` (and the summary's rounding) overflow to infinity,
    /// which no run produces and JSON cannot carry.
    fn ms() -> impl Strategy<Value = f64> {
        use prop::num::f64::{POSITIVE, SUBNORMAL, ZERO};
        prop_oneof![
            (0u64..100_000_000).prop_map(|us| us as f64 / 1000.0),
            0.0..LONGEST_RUN_MS,
            // Every bit pattern's worth of digits (tiny, subnormal, odd fractions) in range.
            (POSITIVE | SUBNORMAL | ZERO).prop_map(|x| x % LONGEST_RUN_MS),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof!["[a-zA-Z0-9 .:_/-]{0,16}", any::<String>()]
    }

    fn side() -> impl Strategy<Value = Side> {
        prop::sample::select(Side::BOTH.to_vec())
    }

    fn fault_kind() -> impl Strategy<Value = FaultKind> {
        use FaultKind::*;
        prop::sample::select(vec![
            ProcessKill,
            FirewallDrop,
            CablePull,
            Freeze,
            Reject,
            Loss,
            HostReboot,
            NatTimeout,
        ])
    }

    /// Fault ids of the shipped scenarios (their kinds), so that summaries find some.
    fn fault_id() -> impl Strategy<Value = String> {
        prop_oneof![fault_kind().prop_map(|k| k.as_str().to_owned()), text()]
    }

    fn lag() -> impl Strategy<Value = Option<f64>> {
        prop::option::of((0u32..1_000_000).prop_map(|us| f64::from(us) / 1000.0))
    }

    fn ends() -> impl Strategy<Value = Ends> {
        (text(), text()).prop_map(|(local, peer)| Ends { local, peer })
    }

    fn step() -> impl Strategy<Value = FaultStep> {
        (fault_id(), fault_kind(), text(), ms(), any::<Option<u64>>()).prop_map(
            |(fault, fault_kind, mechanism, took_ms, packets_matched)| FaultStep {
                fault,
                fault_kind,
                mechanism,
                took_ms,
                packets_matched,
            },
        )
    }

    fn tcp_info() -> impl Strategy<Value = TcpInfo> {
        (any::<u8>(), any::<[u8; 3]>(), any::<[u32; 7]>()).prop_map(
            |(state, [retransmits, probes, backoff], n)| TcpInfo {
                state: TcpState::from_kernel(state),
                retransmits,
                probes,
                backoff,
                rto_us: n[0],
                rtt_us: n[1],
                unacked: n[2],
                total_retrans: n[3],
                last_data_sent_ms: n[4],
                last_data_recv_ms: n[5],
                last_ack_recv_ms: n[6],
            },
        )
    }

    fn peer_lost() -> impl Strategy<Value = PeerLost> {
        use LossMechanism::*;
        (
            ends(),
            prop_oneof![
                prop::sample::select(crate::scenario::KNOWN_ERRORS.to_vec())
                    .prop_map(str::to_owned),
                text()
            ],
            prop::sample::select(vec![
                Eof,
                Reset,
                AppHeartbeat,
                UserTimeout,
                RetransmissionTimeout,
                Keepalive,
                Icmp,
                Other,
            ]),
            prop::option::of(tcp_info()),
            any::<[u64; 4]>(),
        )
            .prop_map(|(ends, error, mechanism, tcp_info, n)| PeerLost {
                ends,
                error,
                mechanism,
                tcp_info,
                records_sent: n[0],
                records_received: n[1],
                heartbeats_sent: n[2],
                heartbeats_received: n[3],
            })
    }

    fn arb_connected() -> impl Strategy<Value = Connected> {
        (
            ends(),
            any::<Option<u32>>(),
            any::<Option<u32>>(),
            prop_oneof![Just(None), Just(Some("standby".to_owned()))],
        )
            .prop_map(|(ends, attempts, slot, host)| Connected {
                ends,
                attempts,
                slot,
                host,
            })
    }

    fn kind() -> impl Strategy<Value = Kind> {
        prop_oneof![
            ms().prop_map(|setup_ms| Kind::LabUp { setup_ms }),
            (ms(), prop::option::of(text())).prop_map(|(teardown_ms, reason)| Kind::LabDown {
                teardown_ms,
                reason
            }),
            text().prop_map(|mechanism| Kind::NatUp { mechanism }),
            text().prop_map(|mechanism| Kind::DelayUp { mechanism }),
            (any::<[u32; 2]>(), ms(), ms(), ms(), ms()).prop_map(|(n, a, b, c, d)| {
                Kind::DelayDown(crate::delay::DelayStats {
                    to_server: n[0].into(),
                    to_client: n[1].into(),
                    late_median_us: a,
                    late_p99_us: b,
                    late_max_us: c,
                    cpu_per_packet_us: d,
                })
            }),
            (side(), any::<i32>()).prop_map(|(side, pid)| Kind::ProcessStarted { side, pid }),
            (side(), any::<i32>(), text()).prop_map(|(side, pid, status)| Kind::ProcessExited {
                side,
                pid,
                status
            }),
            step().prop_map(Kind::FaultInjected),
            step().prop_map(Kind::FaultHealed),
            text().prop_map(|addr| Kind::Listening { addr }),
            text().prop_map(|error| Kind::AcceptFailed { error }),
            (ends(), text()).prop_map(|(ends, error)| Kind::SetsockoptFailed { ends, error }),
            arb_connected().prop_map(Kind::Connected),
            (any::<u32>(), any::<Option<u32>>())
                .prop_map(|(attempt, slot)| Kind::ReconnectAttempt { attempt, slot }),
            arb_connected().prop_map(Kind::Reconnected),
            (any::<u32>(), text()).prop_map(|(attempt, error)| Kind::ConnectFailed {
                attempt,
                error,
                slot: None,
            }),
            peer_lost().prop_map(Kind::PeerLost),
            text().prop_map(|line| Kind::PeerOutput { line }),
            arb_observed().prop_map(Kind::ConnectionObserved),
            (ends(), text(), text(), text(), lag()).prop_map(
                |(ends, error, reason, via, dump_lag_ms)| Kind::KernelGaveUp {
                    ends,
                    error,
                    reason,
                    via,
                    dump_lag_ms,
                }
            ),
            (ends(), text(), lag()).prop_map(|(ends, via, dump_lag_ms)| Kind::FinReceived {
                ends,
                via,
                dump_lag_ms
            }),
            (ends(), text()).prop_map(|(ends, error)| Kind::ProgramSawError { ends, error }),
            (ends(), text(), lag()).prop_map(|(ends, via, dump_lag_ms)| Kind::ProgramClosed {
                ends,
                via,
                dump_lag_ms
            }),
            (text(), text(), prop::option::of(text())).prop_map(|(stream, line, matched)| {
                Kind::ProgramOutput {
                    stream,
                    line,
                    matched,
                }
            }),
        ]
    }

    fn arb_observed() -> impl Strategy<Value = ConnectionObserved> {
        let settings = (any::<bool>(), any::<[u32; 4]>()).prop_map(|(keepalive, n)| {
            crate::observer::SocketSettings {
                keepalive,
                idle_s: n[0],
                interval_s: n[1],
                count: n[2],
                user_timeout_ms: n[3],
            }
        });
        (
            ends(),
            any::<i32>(),
            any::<bool>(),
            any::<Option<u32>>(),
            prop::option::of(settings),
            text(),
        )
            .prop_map(
                |(ends, pid, keepalive_armed, keepalive_in_ms, options, via)| ConnectionObserved {
                    ends,
                    pid,
                    keepalive_armed,
                    keepalive_in_ms,
                    options,
                    via,
                },
            )
    }

    fn event() -> impl Strategy<Value = Event> {
        use Source::*;
        (
            ms(),
            prop::sample::select(vec![Runner, Client, Server, Wire, Observer]),
            any::<Option<u64>>(),
            kind(),
        )
            .prop_map(|(t_ms, source, conn, kind)| Event {
                t_ms,
                source,
                conn,
                kind,
            })
    }

    fn status() -> impl Strategy<Value = RunStatus> {
        prop_oneof![
            Just(RunStatus::Completed),
            text().prop_map(|signal| RunStatus::Interrupted { signal }),
            text().prop_map(|reason| RunStatus::Failed { reason }),
        ]
    }

    /// A record as a run would produce it: a shipped scenario, any events, the summary and
    /// verdict derived from them.
    pub(crate) fn record() -> impl Strategy<Value = Record> {
        let scenarios = shipped_scenarios();
        (
            prop::sample::select(scenarios),
            prop::collection::vec(event(), 0..24),
            status(),
            [text(), text(), text(), text()],
        )
            .prop_map(
                |(scenario, mut events, status, [kernel, version, date, privileges])| {
                    events.sort_by(|a, b| a.t_ms.total_cmp(&b.t_ms));
                    let environment = Environment {
                        kernel,
                        flatline_version: version,
                        run_date: date,
                        privileges,
                    };
                    crate::verdict::judge_run(scenario, environment, status, events)
                },
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// The promise `flatline report` rests on: nothing is lost on the way through JSON.
        #[test]
        fn records_round_trip_through_json(r in record()) {
            let text = serde_json::to_string_pretty(&r).unwrap();
            let back = parse("r.json", &text).unwrap();
            prop_assert_eq!(serde_json::to_string_pretty(&back).unwrap(), text);
            prop_assert_eq!(back, r);
        }
    }

    #[test]
    fn every_shipped_scenario_round_trips_as_resolved() {
        for s in shipped_scenarios() {
            let text = serde_json::to_string(&s).unwrap();
            let back: Scenario = serde_json::from_str(&text).unwrap();
            assert_eq!(back, s, "{text}");
        }
    }

    #[test]
    fn unreadable_records_say_where_and_why() {
        let e = parse("r.json", "{\"format_version\": 1}").unwrap_err();
        assert!(e.to_string().contains("format_version 1 is not one"), "{e}");
        let e = parse("r.json", "[]").unwrap_err();
        assert!(e.to_string().starts_with("r.json:1:"), "{e}");
        let e = parse("r.json", "{\"format_version\": 2, \"status\": 7}").unwrap_err();
        assert!(
            e.to_string()
                .ends_with("status: invalid type: integer `7`, expected an object"),
            "{e}"
        );
        let e = parse("r.json", "{\"format_version\": 2, \"events\": {}}").unwrap_err();
        assert!(e.to_string().contains("expected an array"), "{e}");
        let e = parse("r.json", "{}").unwrap_err();
        assert!(e.to_string().contains("not a flatline record"), "{e}");
        let r = shipped_scenarios().remove(0);
        let record = crate::verdict::judge_run(
            r,
            Environment {
                kernel: String::new(),
                flatline_version: String::new(),
                run_date: String::new(),
                privileges: String::new(),
            },
            RunStatus::Completed,
            vec![Event::new(
                0.0,
                Source::Runner,
                Kind::LabUp { setup_ms: 1.0 },
            )],
        );
        let text = serde_json::to_string_pretty(&record)
            .unwrap()
            .replace("\"lab-up\"", "\"lab-upp\"");
        let e = parse("r.json", &text).unwrap_err().to_string();
        assert!(e.contains("events[0]") && e.contains("lab-upp"), "{e}");
        assert!(e.starts_with("r.json:"), "{e}");
    }
}
