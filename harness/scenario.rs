//! Scenario files: parse and validate the TOML a user writes, with errors that name file, line,
//! column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::duration::{Dur, Window};
use crate::keepalive::{Keepalive, UserTimeout};

/// Which peer.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub const BOTH: [Side; 2] = [Side::Client, Side::Server];

    pub fn as_str(self) -> &'static str {
        match self {
            Side::Client => "client",
            Side::Server => "server",
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The failures flatline can inject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FaultKind {
    /// SIGKILL the target process; heal restarts it.
    ProcessKill,
    /// Drop traffic between client and server in the wire namespace (nftables).
    FirewallDrop,
    /// Take a link down; heal brings it back with its routes.
    CablePull,
    /// SIGSTOP the target process; SIGCONT heals. Its kernel still answers for it.
    Freeze,
    /// The wire answers with a TCP reset or an ICMP error instead of forwarding.
    Reject,
    /// The wire drops a percentage of packets at random.
    Loss,
    /// The target's host reboots: it drops off the network, loses every connection and its
    /// process, and comes back at the same address when healed.
    HostReboot,
    /// The wire is a NAT from the start; from `at` it forgets flows idle for `timeout`.
    NatTimeout,
}

impl FaultKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::ProcessKill => "process-kill",
            FaultKind::FirewallDrop => "firewall-drop",
            FaultKind::CablePull => "cable-pull",
            FaultKind::Freeze => "freeze",
            FaultKind::Reject => "reject",
            FaultKind::Loss => "loss",
            FaultKind::HostReboot => "host-reboot",
            FaultKind::NatTimeout => "nat-timeout",
        }
    }

    /// Faults that act on packets in the wire and take a `direction`.
    pub fn is_firewall(self) -> bool {
        matches!(
            self,
            FaultKind::FirewallDrop | FaultKind::Reject | FaultKind::Loss
        )
    }
}

/// Which packets a firewall drop eats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Direction {
    #[default]
    Both,
    ToServer,
    ToClient,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Both => "both",
            Direction::ToServer => "to-server",
            Direction::ToClient => "to-client",
        }
    }
}

/// The signal a process kill sends: KILL (abrupt) or TERM (the default action: an ordinary
/// exit, whose close sends FIN when nothing is left unread).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
pub enum KillSignal {
    #[default]
    #[serde(rename = "KILL")]
    Kill,
    #[serde(rename = "TERM")]
    Term,
}

/// What a reject answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RejectWith {
    #[default]
    TcpReset,
    IcmpHostUnreachable,
    IcmpPortUnreachable,
}

/// Which end of a link a cable pull takes down: the wire's (a remote failure, the default) or
/// the peer's own (a local failure: its routes vanish and send() still succeeds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkEnd {
    #[default]
    Wire,
    Peer,
}

/// The client's pause between a loss or failed attempt and the next connect, by default.
pub const DEFAULT_RECONNECT_INTERVAL_MS: u64 = 500;
/// How long a client connect attempt may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    keepalive: Keepalive,
    user_timeout: Option<UserTimeout>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    #[serde(default)]
    keepalive: Keepalive,
    user_timeout: Option<UserTimeout>,
    reconnect_interval: Option<Dur>,
    connect_timeout: Option<Dur>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    id: Option<String>,
    kind: FaultKind,
    at: Dur,
    heal: Option<Dur>,
    target: Option<Side>,
    direction: Option<Direction>,
    end: Option<LinkEnd>,
    signal: Option<KillSignal>,
    with: Option<RejectWith>,
    percent: Option<u8>,
    timeout: Option<Dur>,
    reset: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    side: Side,
    fault: Option<String>,
    detects: Option<Detects>,
    error: Option<String>,
    reconnects: Option<Window>,
    tolerance: Option<Dur>,
}

/// A detection window as written: explicit, or "predicted" (the model's window).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Detects {
    Window(Window),
    Predicted,
}

impl<'de> Deserialize<'de> for Detects {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim() == "predicted" {
            return Ok(Detects::Predicted);
        }
        Window::parse(&text)
            .map(Detects::Window)
            .map_err(|e| serde::de::Error::custom(format!("{e}, or `predicted`")))
    }
}

/// What the peers send while connected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Nothing: only keepalives, if on, cross the wire.
    #[default]
    Idle,
    /// The client writes a record every interval (unacked data when the path dies).
    Stream,
    /// The client sends a request every interval; the server answers each.
    RequestResponse,
    /// The server sends a record every interval (the seed's server).
    Push,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Idle => "idle",
            Pattern::Stream => "stream",
            Pattern::RequestResponse => "request-response",
            Pattern::Push => "push",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTraffic {
    pattern: Pattern,
    interval: Option<Dur>,
    record_bytes: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHeartbeat {
    interval: Dur,
    misses: Option<u32>,
}

/// Traffic on the connection, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Traffic {
    pub pattern: Pattern,
    pub interval_ms: u64,
    pub record_bytes: u32,
}

/// The application heartbeat: the client pings every interval, the server answers; either
/// side declares the other lost after `misses` intervals without hearing from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Heartbeat {
    pub interval_ms: u64,
    pub misses: u32,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLab {
    tcp_retries2: Option<Spanned<u8>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    end: Dur,
    server: Option<RawServer>,
    client: Option<RawClient>,
    traffic: Option<Spanned<RawTraffic>>,
    heartbeat: Option<Spanned<RawHeartbeat>>,
    lab: Option<RawLab>,
    #[serde(default)]
    fault: Vec<Spanned<RawFault>>,
    #[serde(default)]
    expect: Vec<Spanned<RawExpect>>,
}

/// Settings of one peer, resolved.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct PeerSettings {
    #[serde(deserialize_with = "crate::keepalive::resolved")]
    pub keepalive: Keepalive,
    /// TCP_USER_TIMEOUT in ms; 0 leaves the system default.
    pub user_timeout_ms: u32,
    /// Client only: pause between a loss or failed attempt and the next connect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_interval_ms: Option<u64>,
    /// Client only: give up a connect attempt after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect_timeout_ms: Option<u64>,
}

/// One scheduled fault, resolved.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Fault {
    pub id: String,
    pub kind: FaultKind,
    /// Time after the client first connected.
    pub at: Dur,
    pub heal: Option<Dur>,
    /// process-kill, freeze: the process; cable-pull: whose link.
    pub target: Side,
    pub direction: Direction,
    pub end: LinkEnd,
    pub signal: KillSignal,
    pub with: RejectWith,
    /// loss: percentage of packets dropped.
    pub percent: u8,
    /// nat-timeout: idle time after which the NAT forgets a flow, whole seconds.
    pub timeout_s: u32,
    /// nat-timeout: answer packets of forgotten flows with a TCP reset instead of dropping.
    pub reset: bool,
}

/// What a scenario expects of one side.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "what")]
pub enum Check {
    /// Detection latency (fault-injected to peer-lost) in a window, optionally with an error.
    Detects {
        window: Window,
        error: Option<String>,
    },
    /// Reconnect latency (fault-healed to connected again) in a window.
    Reconnects { window: Window },
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Expectation {
    pub side: Side,
    pub fault: String,
    #[serde(flatten)]
    pub check: Check,
}

impl fmt::Display for Expectation {
    /// Writes the expectation in scenario syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{{ side = \"{}\", fault = \"{}\", ",
            self.side, self.fault
        )?;
        match &self.check {
            Check::Detects { window, error } => {
                write!(f, "detects = \"{window}\"")?;
                if let Some(e) = error {
                    write!(f, ", error = \"{e}\"")?;
                }
            }
            Check::Reconnects { window } => write!(f, "reconnects = \"{window}\"")?,
        }
        f.write_str(" }")
    }
}

/// A validated scenario.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Scenario {
    pub name: String,
    pub file: PathBuf,
    pub description: String,
    /// Longest run, counted from the client's first connection.
    pub end: Dur,
    pub server: PeerSettings,
    pub client: PeerSettings,
    pub traffic: Traffic,
    pub heartbeat: Option<Heartbeat>,
    pub lab: crate::lab::LabConfig,
    pub faults: Vec<Fault>,
    pub expectations: Vec<Expectation>,
}

impl Scenario {
    pub fn settings(&self, side: Side) -> &PeerSettings {
        match side {
            Side::Client => &self.client,
            Side::Server => &self.server,
        }
    }

    pub fn fault(&self, id: &str) -> Option<&Fault> {
        self.faults.iter().find(|f| f.id == id)
    }
}

/// Errors an error code names: EOF for an orderly close, else an errno name.
pub const KNOWN_ERRORS: &[&str] = &[
    "EOF",
    "ETIMEDOUT",
    "ECONNRESET",
    "ECONNREFUSED",
    "EHOSTUNREACH",
    "ENETUNREACH",
    "EPIPE",
    "HEARTBEAT",
];

/// A scenario that cannot be used, located in its file.
#[derive(Debug, thiserror::Error)]
#[error("{}:{line}:{column}: {field}{message}", file.display())]
pub struct ScenarioError {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
    /// Dotted path of the field, with a trailing ": ", or empty.
    pub field: String,
    pub message: String,
}

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    let text = std::fs::read_to_string(path).map_err(|e| ScenarioError {
        file: path.to_owned(),
        line: 0,
        column: 0,
        field: String::new(),
        message: format!("cannot read the scenario file: {e}"),
    })?;
    parse(path, &text)
}

/// Parses and validates scenario text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = deserialize(path, text)?;
    validate(raw, path, &|span, field, msg| {
        located(path, text, Some(span), field.to_owned(), msg)
    })
}

fn located(
    path: &Path,
    text: &str,
    span: Option<std::ops::Range<usize>>,
    field: String,
    message: String,
) -> ScenarioError {
    let (line, column) = line_col(text, span.map_or(0, |s| s.start));
    ScenarioError {
        file: path.to_owned(),
        line,
        column,
        field: if field.is_empty() || field == "." {
            String::new()
        } else {
            format!("{field}: ")
        },
        message,
    }
}

/// Deserializes TOML text, locating any error by line, column and field path.
pub fn deserialize<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
) -> Result<T, ScenarioError> {
    let de = toml::Deserializer::new(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        // toml's Spanned shows up in the path as a private field; users never wrote it.
        let field = e
            .path()
            .to_string()
            .replace("$__serde_spanned_private_value.", "");
        let inner = e.into_inner();
        located(path, text, inner.span(), field, inner.message().to_owned())
    })
}

fn validate(
    raw: RawScenario,
    path: &Path,
    err: &dyn Fn(std::ops::Range<usize>, &str, String) -> ScenarioError,
) -> Result<Scenario, ScenarioError> {
    let s = raw.server.unwrap_or_default();
    let server = PeerSettings {
        keepalive: s.keepalive,
        user_timeout_ms: s.user_timeout.map_or(0, |u| u.0),
        reconnect_interval_ms: None,
        connect_timeout_ms: None,
    };
    let c = raw.client.unwrap_or_default();
    let client = PeerSettings {
        keepalive: c.keepalive,
        user_timeout_ms: c.user_timeout.map_or(0, |u| u.0),
        reconnect_interval_ms: Some(
            c.reconnect_interval
                .map_or(DEFAULT_RECONNECT_INTERVAL_MS, Dur::as_millis),
        ),
        connect_timeout_ms: Some(
            c.connect_timeout
                .map_or(DEFAULT_CONNECT_TIMEOUT_MS, Dur::as_millis),
        ),
    };

    let traffic = match &raw.traffic {
        None => Traffic {
            pattern: Pattern::Idle,
            interval_ms: 100,
            record_bytes: 64,
        },
        Some(t) => {
            let (span, t) = (t.span(), t.get_ref());
            let interval_ms = t.interval.map_or(100, Dur::as_millis);
            if interval_ms == 0 {
                return Err(err(span, "traffic.interval", "must be at least 1ms".into()));
            }
            let record_bytes = t.record_bytes.unwrap_or(64);
            if !(1..=1 << 20).contains(&record_bytes) {
                return Err(err(
                    span,
                    "traffic.record_bytes",
                    "must be 1..=1048576".into(),
                ));
            }
            Traffic {
                pattern: t.pattern,
                interval_ms,
                record_bytes,
            }
        }
    };
    let heartbeat = match &raw.heartbeat {
        None => None,
        Some(h) => {
            let (span, h) = (h.span(), h.get_ref());
            if h.interval.as_millis() == 0 {
                return Err(err(
                    span,
                    "heartbeat.interval",
                    "must be at least 1ms".into(),
                ));
            }
            let misses = h.misses.unwrap_or(3);
            if misses == 0 {
                return Err(err(span, "heartbeat.misses", "must be at least 1".into()));
            }
            Some(Heartbeat {
                interval_ms: h.interval.as_millis(),
                misses,
            })
        }
    };

    let mut lab = crate::lab::LabConfig::default();
    if let Some(r) = raw.lab.as_ref().and_then(|l| l.tcp_retries2.as_ref()) {
        lab.tcp_retries2 = Some(*r.get_ref());
    }

    let mut faults: Vec<Fault> = Vec::new();
    for (i, spanned) in raw.fault.iter().enumerate() {
        let span = spanned.span();
        let f = spanned.get_ref();
        let here = |field: &str| format!("fault[{i}].{field}");
        let id = f.id.clone().unwrap_or_else(|| {
            if raw.fault.len() == 1 {
                f.kind.as_str().to_owned()
            } else {
                format!("{}-{}", f.kind.as_str(), i + 1)
            }
        });
        if faults.iter().any(|g| g.id == id) {
            return Err(err(
                span,
                &here("id"),
                format!("`{id}` is used by another fault"),
            ));
        }
        if f.at > raw.end {
            return Err(err(
                span,
                &here("at"),
                format!("{} is after the scenario's end ({})", f.at, raw.end),
            ));
        }
        if let Some(h) = f.heal {
            if h <= f.at {
                return Err(err(
                    span,
                    &here("heal"),
                    format!("{h} must be after the injection at {}", f.at),
                ));
            }
            if h > raw.end {
                return Err(err(
                    span,
                    &here("heal"),
                    format!("{h} is after the scenario's end ({})", raw.end),
                ));
            }
        }
        let only = |present: bool, applies: bool, field: &str, kinds: &str| {
            if present && !applies {
                Err(err(
                    span.clone(),
                    &here(field),
                    format!("only applies to {kinds}"),
                ))
            } else {
                Ok(())
            }
        };
        only(
            f.direction.is_some(),
            f.kind.is_firewall(),
            "direction",
            "firewall-drop, reject and loss",
        )?;
        only(
            f.end.is_some(),
            f.kind == FaultKind::CablePull,
            "end",
            "cable-pull",
        )?;
        only(
            f.signal.is_some(),
            f.kind == FaultKind::ProcessKill,
            "signal",
            "process-kill",
        )?;
        only(
            f.with.is_some(),
            f.kind == FaultKind::Reject,
            "with",
            "reject",
        )?;
        only(
            f.percent.is_some(),
            f.kind == FaultKind::Loss,
            "percent",
            "loss",
        )?;
        only(
            f.target.is_some(),
            matches!(
                f.kind,
                FaultKind::ProcessKill
                    | FaultKind::Freeze
                    | FaultKind::CablePull
                    | FaultKind::HostReboot
            ),
            "target",
            "process-kill, freeze, cable-pull and host-reboot",
        )?;
        only(
            f.reset.is_some(),
            f.kind == FaultKind::NatTimeout,
            "reset",
            "nat-timeout",
        )?;
        only(
            f.timeout.is_some(),
            f.kind == FaultKind::NatTimeout,
            "timeout",
            "nat-timeout",
        )?;
        let timeout_s = match (f.kind, f.timeout) {
            (FaultKind::NatTimeout, Some(t)) => crate::keepalive::keep_secs(t)
                .map_err(|m| err(span.clone(), &here("timeout"), m.replace("TCP_KEEP", "")))?,
            (FaultKind::NatTimeout, None) => {
                return Err(err(
                    span,
                    &here("timeout"),
                    "nat-timeout needs `timeout = \"30s\"`".into(),
                ))
            }
            _ => 0,
        };
        if f.kind == FaultKind::NatTimeout && faults.iter().any(|g| g.kind == FaultKind::NatTimeout)
        {
            return Err(err(
                span,
                &here("kind"),
                "the wire has one NAT: one nat-timeout per scenario".into(),
            ));
        }
        let percent = match (f.kind, f.percent) {
            (FaultKind::Loss, Some(p @ 1..=100)) => p,
            (FaultKind::Loss, Some(p)) => {
                return Err(err(
                    span,
                    &here("percent"),
                    format!("must be 1..=100, got {p}"),
                ))
            }
            (FaultKind::Loss, None) => {
                return Err(err(
                    span,
                    &here("percent"),
                    "loss needs `percent = 1..100`".into(),
                ))
            }
            _ => 0,
        };
        faults.push(Fault {
            id,
            kind: f.kind,
            at: f.at,
            heal: f.heal,
            target: f.target.unwrap_or(Side::Server),
            direction: f.direction.unwrap_or_default(),
            end: f.end.unwrap_or_default(),
            signal: f.signal.unwrap_or_default(),
            with: f.with.unwrap_or_default(),
            percent,
            timeout_s,
            reset: f.reset.unwrap_or(false),
        });
    }

    let mut expectations = Vec::new();
    let mut predicted = Vec::new();
    for (i, spanned) in raw.expect.iter().enumerate() {
        let span = spanned.span();
        let e = spanned.get_ref();
        let here = |field: &str| format!("expect[{i}].{field}");
        let fault = match &e.fault {
            Some(id) => faults.iter().find(|f| &f.id == id).ok_or_else(|| {
                let known: Vec<&str> = faults.iter().map(|f| f.id.as_str()).collect();
                err(
                    span.clone(),
                    &here("fault"),
                    format!("no fault has id `{id}` (faults: {})", known.join(", ")),
                )
            })?,
            None => faults.first().ok_or_else(|| {
                err(
                    span.clone(),
                    &here("fault"),
                    "the scenario has no [[fault]] to expect anything of".into(),
                )
            })?,
        };
        if e.tolerance.is_some() && e.detects != Some(Detects::Predicted) {
            return Err(err(
                span,
                &here("tolerance"),
                "only applies to detects = \"predicted\"".into(),
            ));
        }
        let check = match (e.detects, e.reconnects) {
            (Some(Detects::Predicted), None) => {
                // Resolved against the model once the whole scenario is known.
                predicted.push((expectations.len(), e.tolerance.unwrap_or_default()));
                Check::Detects {
                    window: Window::Never,
                    error: e.error.clone(),
                }
            }
            (Some(Detects::Window(window)), None) => {
                if let Some(name) = &e.error {
                    if !KNOWN_ERRORS.contains(&name.as_str()) {
                        return Err(err(
                            span,
                            &here("error"),
                            format!(
                                "unknown error `{name}`: use one of {}",
                                KNOWN_ERRORS.join(", ")
                            ),
                        ));
                    }
                    if window == Window::Never {
                        return Err(err(
                            span,
                            &here("error"),
                            "makes no sense with detects = \"never\"".into(),
                        ));
                    }
                }
                Check::Detects {
                    window,
                    error: e.error.clone(),
                }
            }
            (None, Some(window)) => {
                if e.error.is_some() {
                    return Err(err(
                        span,
                        &here("error"),
                        "only applies to `detects`".into(),
                    ));
                }
                if fault.heal.is_none() && window != Window::Never {
                    return Err(err(
                        span,
                        &here("reconnects"),
                        format!("fault `{}` is never healed: give it `heal = ...`", fault.id),
                    ));
                }
                Check::Reconnects { window }
            }
            _ => {
                return Err(err(
                    span,
                    &here("detects"),
                    "give exactly one of `detects` or `reconnects`".into(),
                ))
            }
        };
        expectations.push(Expectation {
            side: e.side,
            fault: fault.id.clone(),
            check,
        });
    }

    let mut scenario = Scenario {
        name: raw.name,
        file: path.to_owned(),
        description: raw.description,
        end: raw.end,
        server,
        client,
        traffic,
        heartbeat,
        lab,
        faults,
        expectations,
    };
    for (index, tolerance) in predicted {
        let e = &scenario.expectations[index];
        let fault = scenario
            .faults
            .iter()
            .position(|f| f.id == e.fault)
            .expect("validated above");
        let p = crate::model::predict(&scenario, fault, e.side);
        let tol = tolerance.as_millis() as f64;
        let window = match p.window_ms {
            None => Window::Never,
            Some((lo, hi)) => Window::Within {
                from: Some(Dur::from_millis((lo - tol).max(0.0).floor() as u64)),
                to: Some(Dur::from_millis((hi + tol).ceil() as u64)),
            },
        };
        let e = &mut scenario.expectations[index];
        if let Check::Detects { error, .. } = &e.check {
            let error = error.clone().or(p.error);
            e.check = Check::Detects { window, error };
        }
    }
    Ok(scenario)
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "t"
end = "20s"

[server]
keepalive = { idle = "3s", interval = "1s", count = 10 }

[client]
keepalive = "off"
user_timeout = "1500ms"

[[fault]]
kind = "cable-pull"
at = "2s"
heal = "10s"

[[expect]]
side = "client"
detects = "10s..15s"
error = "ETIMEDOUT"

[[expect]]
side = "client"
reconnects = "..2s"
"#;

    fn err(text: &str) -> String {
        parse(Path::new("s.toml"), text).unwrap_err().to_string()
    }

    #[test]
    fn parses_a_good_scenario() {
        let s = parse(Path::new("s.toml"), GOOD).unwrap();
        assert_eq!(
            s.server.keepalive,
            Keepalive::On {
                idle_s: 3,
                interval_s: 1,
                count: 10
            }
        );
        assert_eq!(s.client.keepalive, Keepalive::Off);
        assert_eq!(s.client.user_timeout_ms, 1500);
        assert_eq!(s.client.reconnect_interval_ms, Some(500));
        assert_eq!(s.faults[0].id, "cable-pull");
        assert_eq!(s.faults[0].target, Side::Server);
        assert_eq!(s.expectations.len(), 2);
        assert_eq!(
            s.expectations[0].to_string(),
            r#"{ side = "client", fault = "cable-pull", detects = "10s..15s", error = "ETIMEDOUT" }"#
        );
    }

    #[test]
    fn keepalive_out_of_range_names_line_column_and_field() {
        let text = GOOD.replace(r#"idle = "3s""#, r#"idle = "0s""#);
        let e = err(&text);
        assert!(
            e.starts_with("s.toml:6:22: server.keepalive.idle: must be between 1s"),
            "{e}"
        );
        let text = GOOD.replace("count = 10", "count = 200");
        let e = err(&text);
        assert!(e.starts_with("s.toml:6:"), "{e}");
        assert!(
            e.contains("server.keepalive.count: must be between 1 and 127"),
            "{e}"
        );
    }

    #[test]
    fn unknown_fields_and_bad_values_are_located() {
        let e = err(&GOOD.replace("at = \"2s\"", "at = \"2 parsecs\""));
        assert!(e.starts_with("s.toml:14:"), "{e}");
        assert!(
            e.starts_with("s.toml:14:6: fault[0].at: `2 parsecs` has unknown unit"),
            "{e}"
        );
        let e = err(&GOOD.replace("[client]", "[client]\nidel = 3"));
        assert!(e.contains("unknown field `idel`"), "{e}");
        let e = err(&GOOD.replace("cable-pull", "cable-cut"));
        assert!(
            e.contains("fault[0].kind") && e.contains("cable-cut"),
            "{e}"
        );
        let e = err("name = \"x\"\nend = [");
        assert!(e.starts_with("s.toml:2:"), "{e}");
    }

    #[test]
    fn cross_field_rules_are_checked() {
        let e = err(&GOOD.replace("heal = \"10s\"", "heal = \"1s\""));
        assert!(
            e.starts_with("s.toml:12:1: fault[0].heal: 1s must be after"),
            "{e}"
        );
        let e = err(&GOOD.replace("heal = \"10s\"", "heal = \"30s\""));
        assert!(e.contains("after the scenario's end"), "{e}");
        let e = err(&GOOD.replace("error = \"ETIMEDOUT\"", "error = \"ETIMEOUT\""));
        assert!(
            e.contains("expect[0].error: unknown error `ETIMEOUT`"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "side = \"client\"\nreconnects",
            "side = \"client\"\nfault = \"nope\"\nreconnects",
        ));
        assert!(e.contains("expect[1].fault: no fault has id `nope`"), "{e}");
        let e = err(&GOOD.replace("heal = \"10s\"\n", ""));
        assert!(e.contains("never healed"), "{e}");
        let e = err(&GOOD.replace(
            "kind = \"cable-pull\"",
            "kind = \"cable-pull\"\ndirection = \"both\"",
        ));
        assert!(
            e.contains("fault[0].direction: only applies to firewall-drop"),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"cable-pull\"", "kind = \"loss\""));
        assert!(e.contains("fault[0].percent: loss needs"), "{e}");
        let e = err(&GOOD.replace("kind = \"cable-pull\"", "kind = \"loss\"\npercent = 101"));
        assert!(e.contains("fault[0].percent: must be 1..=100"), "{e}");
    }

    #[test]
    fn predicted_windows_come_from_the_model() {
        let text = GOOD
            .replace(
                "detects = \"10s..15s\"\nerror = \"ETIMEDOUT\"",
                "detects = \"predicted\"\ntolerance = \"500ms\"",
            )
            .replace("side = \"client\"\ndetects", "side = \"server\"\ndetects");
        let s = parse(Path::new("s.toml"), &text).unwrap();
        // Server keepalive 3s/1s/10, idle, cable pull: [10 s, 13 s] plus slack, ETIMEDOUT.
        let Check::Detects { window, error } = &s.expectations[0].check else {
            panic!()
        };
        assert_eq!(error.as_deref(), Some("ETIMEDOUT"));
        let Window::Within { from, to } = window else {
            panic!("{window}")
        };
        assert_eq!(from.unwrap().as_millis(), 9500);
        assert!(
            (13_500..15_500).contains(&to.unwrap().as_millis()),
            "{window}"
        );
        let e = err(&GOOD.replace(
            "error = \"ETIMEDOUT\"",
            "error = \"ETIMEDOUT\"\ntolerance = \"1s\"",
        ));
        assert!(e.contains("expect[0].tolerance: only applies"), "{e}");
    }

    #[test]
    fn shipped_scenarios_parse() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        for entry in std::fs::read_dir(dir.join("long")).unwrap() {
            load(&entry.unwrap().path()).unwrap_or_else(|e| panic!("{e}"));
        }
        assert!(n >= 3, "expected the three seed scenarios, found {n}");
    }
}
