//! The record of a run: typed events on one clock, and the versioned JSON document that users,
//! CI and `flatline report` read back (the record contract in the README).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::scenario::{FaultKind, Scenario, Side};

/// Bumped whenever the meaning of a field changes.
pub const FORMAT_VERSION: u32 = 2;

/// Who recorded an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    ReconnectAttempt { attempt: u32 },
    /// The client is connected again after a loss.
    Reconnected(Connected),
    /// A connect attempt failed.
    ConnectFailed { attempt: u32, error: String },
    /// A side noticed its connection was dead.
    PeerLost(PeerLost),
    /// A line a peer printed that is not an event.
    PeerOutput { line: String },
    /// A user program's connection, as the observer found it in the side's namespace.
    ConnectionObserved(ConnectionObserved),
    /// The kernel aborted a user program's connection: the program's next call returns `error`.
    KernelGaveUp {
        #[serde(flatten)]
        ends: Ends,
        /// ETIMEDOUT, ECONNRESET, EPIPE, ... ("unknown" when seen only in a dump).
        error: String,
        /// keepalive, retransmission, user-timeout, reset-received, unreachable, unknown.
        reason: String,
        /// How it was observed: "trace" (the kernel's own stamp) or "dump" (sock_diag poll).
        via: String,
    },
    /// The peer closed its end of a user program's connection (a FIN arrived).
    FinReceived {
        #[serde(flatten)]
        ends: Ends,
        via: String,
    },
    /// A user program let go of its connection (close, or exit).
    ProgramClosed {
        #[serde(flatten)]
        ends: Ends,
        via: String,
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
            Kind::PeerLost(_) => "peer-lost",
            Kind::PeerOutput { .. } => "peer-output",
            Kind::ConnectionObserved(_) => "connection-observed",
            Kind::KernelGaveUp { .. } => "kernel-gave-up",
            Kind::FinReceived { .. } => "fin-received",
            Kind::ProgramClosed { .. } => "program-closed",
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
            | Kind::ProgramClosed { ends, .. } => Some(ends),
            _ => None,
        }
    }

    /// Whether this is a connection being established (`connected` or `reconnected`).
    pub fn is_connect(&self) -> bool {
        matches!(self, Kind::Connected(_) | Kind::Reconnected(_))
    }
}

/// A connection's two addresses (ip:port) as one side sees them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Connected {
    #[serde(flatten)]
    pub ends: Ends,
    /// Client only: connect attempts this took.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
}

/// One step of a fault: `fault-injected` or `fault-healed`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
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
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerReport {
    pub mono_ns: u64,
    #[serde(flatten)]
    pub kind: Kind,
}

/// Numbers connections as their events arrive: both ends of one TCP connection get the same
/// number, found by the client's port (in the client's `local`, the server's `peer`).
#[derive(Clone, Debug, Default)]
pub struct Connections {
    /// Client port -> (number, which sides have reported it established).
    by_addr: BTreeMap<String, (u64, [bool; 2])>,
    last: u64,
}

impl Connections {
    /// The connection `kind`, reported by `side`, is about. A side that reports a connection
    /// established twice at one address has a new connection (the port was reused).
    pub fn number(&mut self, side: Side, kind: &Kind) -> Option<u64> {
        let addr = kind.ends()?.client_port(side);
        if addr.is_empty() {
            return None;
        }
        let i = side as usize;
        let fresh = |last: &mut u64| {
            *last += 1;
            (*last, [false; 2])
        };
        let entry = match self.by_addr.get_mut(addr) {
            Some(e) if !(kind.is_connect() && e.1[i]) => e,
            _ => {
                let e = fresh(&mut self.last);
                self.by_addr.insert(addr.to_owned(), e);
                self.by_addr.get_mut(addr).expect("just inserted")
            }
        };
        if kind.is_connect() {
            entry.1[i] = true;
        }
        Some(entry.0)
    }
}

/// Where a run happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Environment {
    pub kernel: String,
    pub flatline_version: String,
    /// "root" or "user-namespace".
    pub privileges: String,
}

/// What one side went through for one fault.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SideSummary {
    /// fault-injected to peer-lost, ms.
    pub detection_ms: Option<f64>,
    pub error: Option<String>,
    /// fault-healed to connected again, ms.
    pub reconnect_ms: Option<f64>,
}

/// What happened around one fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FaultSummary {
    pub id: String,
    pub kind: FaultKind,
    pub injected_at_ms: Option<f64>,
    /// How long injecting took until the fault was in effect.
    pub injection_ms: Option<f64>,
    pub healed_at_ms: Option<f64>,
    pub client: SideSummary,
    pub server: SideSummary,
}

/// Per side, for the first fault (the common case), and per fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub client: SideSummary,
    pub server: SideSummary,
    pub faults: Vec<FaultSummary>,
}

/// Where an expectation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Passed,
    Failed,
    /// Undecided: the run is still going and the outcome can still change.
    Pending,
}

/// One expectation and what happened, both in scenario syntax.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub expected: String,
    pub actual: String,
    pub passed: bool,
    pub status: Status,
    /// Why it failed, in words; empty when it passed.
    pub reason: String,
}

/// Every expectation judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub passed: bool,
    pub expectations: Vec<Outcome>,
}

/// The document a run writes.
#[derive(Clone, Debug, Serialize)]
pub struct Record {
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

    fn connected(local: &str, peer: &str) -> Kind {
        Kind::Connected(Connected {
            ends: Ends {
                local: local.into(),
                peer: peer.into(),
            },
            attempts: None,
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
        assert_eq!(r.kind, Kind::ReconnectAttempt { attempt: 2 });
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
        assert_eq!(c.number(Side::Server, &connected(srv, a)), Some(1));
        assert_eq!(c.number(Side::Client, &connected(a, srv)), Some(1));
        assert_eq!(c.number(Side::Client, &connected(b, srv)), Some(2));
        assert_eq!(c.number(Side::Server, &connected(srv, natted)), Some(2));
        let lost = Kind::PeerLost(PeerLost {
            ends: Ends {
                local: srv.into(),
                peer: a.into(),
            },
            error: "EOF".into(),
            mechanism: LossMechanism::Eof,
            tcp_info: None,
            records_sent: 0,
            records_received: 0,
            heartbeats_sent: 0,
            heartbeats_received: 0,
        });
        assert_eq!(c.number(Side::Server, &lost), Some(1));
        // A port used again later is a new connection.
        assert_eq!(c.number(Side::Client, &connected(a, srv)), Some(3));
        assert_eq!(c.number(Side::Server, &connected(srv, a)), Some(3));
        assert_eq!(
            c.number(Side::Client, &Kind::ReconnectAttempt { attempt: 1 }),
            None
        );
    }
}
