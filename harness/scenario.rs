//! Scenario files: the TOML a user writes, as types (one per fault kind, each with only its own
//! fields), with errors that name file, line, column and field.

use std::fmt;
use std::path::{Path, PathBuf};

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::{Dur, Window};
pub use crate::input::ScenarioError;
use crate::input::{self, FieldPath, Source};
use crate::keepalive::{Keepalive, UserTimeout};

pub use crate::side::Side;

fn server() -> Side {
    Side::Server
}

/// The failures flatline can inject, by name.
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
    /// The server's service moves to a standby host with no connection state: its address
    /// moves there (`mode = "address-move"`), or the old address goes dark and clients must
    /// find the standby's new one (`mode = "dns"`). Not healed.
    Failover,
}

impl FaultKind {
    pub const ALL: [FaultKind; 9] = [
        FaultKind::ProcessKill,
        FaultKind::FirewallDrop,
        FaultKind::CablePull,
        FaultKind::Freeze,
        FaultKind::Reject,
        FaultKind::Loss,
        FaultKind::HostReboot,
        FaultKind::NatTimeout,
        FaultKind::Failover,
    ];

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
            FaultKind::Failover => "failover",
        }
    }

    /// Faults that act on packets in the wire and take a `direction`.
    pub fn is_firewall(self) -> bool {
        matches!(
            self,
            FaultKind::FirewallDrop | FaultKind::Reject | FaultKind::Loss
        )
    }

    /// The keys of this kind besides `id`, `kind`, `at` and `heal`, read off its type.
    pub fn fields(self) -> &'static [&'static str] {
        match self {
            FaultKind::ProcessKill => fields_of::<ProcessKill>(),
            FaultKind::FirewallDrop => fields_of::<FirewallDrop>(),
            FaultKind::CablePull => fields_of::<CablePull>(),
            FaultKind::Freeze => fields_of::<Freeze>(),
            FaultKind::Reject => fields_of::<Reject>(),
            FaultKind::Loss => fields_of::<Loss>(),
            FaultKind::HostReboot => fields_of::<HostReboot>(),
            FaultKind::NatTimeout => fields_of::<NatTimeout>(),
            FaultKind::Failover => fields_of::<Failover>(),
        }
    }
}

/// The field names a derived `Deserialize` struct accepts (serde hands them to the
/// deserializer; this one only listens).
fn fields_of<T: serde::de::DeserializeOwned>() -> &'static [&'static str] {
    use serde::de::value::Error;
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> Deserializer<'de> for Probe<'_> {
        type Error = Error;
        fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: serde::de::Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("listened"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes
            byte_buf option unit unit_struct newtype_struct seq tuple tuple_struct map enum
            identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

/// Which packets a firewall fault acts on.
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

/// The share of packets a loss fault drops: 1 to 99 (100 is a firewall-drop).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(transparent)]
pub struct Percent(#[schemars(range(min = 1, max = 99))] pub u8);

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match input::whole(d, i64::MIN, i64::MAX)? {
            100 => Err(serde::de::Error::custom(
                "100 % loss drops every packet: use kind = \"firewall-drop\"",
            )),
            n @ 1..=99 => Ok(Percent(n as u8)),
            n => Err(serde::de::Error::custom(format!(
                "must be between 1 and 99, got {n}"
            ))),
        }
    }
}

/// SIGKILL (or SIGTERM) the target process; heal restarts it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProcessKill {
    #[serde(default = "server")]
    pub target: Side,
    #[serde(default)]
    pub signal: KillSignal,
}

/// Drop traffic in the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FirewallDrop {
    #[serde(default)]
    pub direction: Direction,
}

/// Take the target's link down.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CablePull {
    #[serde(default = "server")]
    pub target: Side,
    #[serde(default)]
    pub end: LinkEnd,
}

/// SIGSTOP the target process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Freeze {
    #[serde(default = "server")]
    pub target: Side,
}

/// Answer with a reset or an ICMP error in the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Reject {
    #[serde(default)]
    pub direction: Direction,
    #[serde(default)]
    pub with: RejectWith,
}

/// Drop a share of packets at random in the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Loss {
    #[serde(default)]
    pub direction: Direction,
    pub percent: Percent,
}

/// The target's host reboots.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HostReboot {
    #[serde(default = "server")]
    pub target: Side,
}

/// How a failover hands the service to the standby host.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FailoverMode {
    /// The server's address moves to the standby (a VIP or an elastic IP moving): old
    /// connections' next packets reach a host that has no socket for them and answer RST.
    #[default]
    AddressMove,
    /// The old address goes dark (silent drop) and the standby answers at a new address,
    /// which the client learns from a hosts file or a list (`resolve`).
    Dns,
}

/// How a client learns the standby's address in a `dns` failover.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Resolve {
    /// A hosts file the run controls names the server; the failover points the name at the
    /// standby. The client reads it at every connect.
    #[default]
    HostsFile,
    /// The client holds both addresses, the server's first, and tries them in order at
    /// every connect, each for its connect timeout.
    List,
}

/// The server's service moves to a standby host.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Failover {
    /// address-move (default) or dns.
    #[serde(default)]
    pub mode: FailoverMode,
    /// dns only: hosts-file (default) or list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolve: Option<Resolve>,
}

impl Failover {
    /// How the client finds the server, for a dns failover.
    pub fn resolver(&self) -> Option<Resolve> {
        match self.mode {
            FailoverMode::AddressMove => None,
            FailoverMode::Dns => Some(self.resolve.unwrap_or_default()),
        }
    }
}

/// The wire's NAT forgets flows idle for `timeout` (whole seconds).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(try_from = "RawNatTimeout")]
pub struct NatTimeout {
    pub timeout: Dur,
    /// Answer packets of forgotten flows with a TCP reset instead of dropping them.
    pub reset: bool,
    /// The cloud middlebox whose documented timeout and behaviour this is, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preset: Option<NatPreset>,
    /// The preset's timeout was divided by this: a scaled twin, seconds instead of minutes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale: Option<u32>,
}

/// A cloud NAT or load balancer's documented idle timeout and what it does to a forgotten
/// flow (README, "Cloud presets", cites each vendor's page).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum NatPreset {
    /// AWS Network Load Balancer, TCP listener: 350 s, then a reset to the next packet.
    AwsNlb,
    /// AWS NAT Gateway: 350 s, then a reset to the next packet.
    AwsNatGateway,
    /// Azure Load Balancer, default rule: 4 minutes, then silence (TCP reset on idle off).
    AzureLb,
    /// Google Cloud NAT: established TCP 1200 s, then silence.
    GcpCloudNat,
}

impl NatPreset {
    /// The documented idle timeout, seconds.
    pub fn timeout_s(self) -> u32 {
        match self {
            NatPreset::AwsNlb | NatPreset::AwsNatGateway => 350,
            NatPreset::AzureLb => 240,
            NatPreset::GcpCloudNat => 1200,
        }
    }

    /// Whether a packet of a forgotten flow draws a reset (else it vanishes).
    pub fn reset(self) -> bool {
        matches!(self, NatPreset::AwsNlb | NatPreset::AwsNatGateway)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NatPreset::AwsNlb => "aws-nlb",
            NatPreset::AwsNatGateway => "aws-nat-gateway",
            NatPreset::AzureLb => "azure-lb",
            NatPreset::GcpCloudNat => "gcp-cloud-nat",
        }
    }
}

impl NatTimeout {
    /// How the record and the summary name it: "aws-nlb 350 s, reset", or for a scaled twin
    /// "aws-nlb scaled 1/70: 5 s, reset".
    pub fn describe(&self) -> String {
        let secs = self.timeout.as_millis() / 1000;
        let then = if self.reset { "reset" } else { "silent drop" };
        match (self.preset, self.scale) {
            (Some(p), Some(n)) if n > 1 => format!(
                "{} scaled 1/{n}: {secs} s instead of {} s, {then}",
                p.as_str(),
                p.timeout_s()
            ),
            (Some(p), _) => format!("{} {secs} s, {then}", p.as_str()),
            (None, _) => format!("{secs} s, {then}"),
        }
    }
}

/// A `nat-timeout` fault as written: a timeout, or a preset (optionally scaled down).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNatTimeout {
    /// Whole seconds; required unless `preset` gives it.
    #[serde(default, deserialize_with = "whole_seconds_opt")]
    timeout: Option<Dur>,
    /// Answer packets of forgotten flows with a TCP reset; default: the preset's, else false.
    reset: Option<bool>,
    /// A cloud middlebox's documented timeout and behaviour: aws-nlb, aws-nat-gateway,
    /// azure-lb, gcp-cloud-nat.
    preset: Option<NatPreset>,
    /// Divide the preset's timeout by this (a scaled twin); the result must be whole seconds.
    #[schemars(range(min = 1, max = 100000))]
    scale: Option<u32>,
}

impl TryFrom<RawNatTimeout> for NatTimeout {
    type Error = String;
    fn try_from(r: RawNatTimeout) -> Result<NatTimeout, String> {
        let Some(p) = r.preset else {
            let Some(timeout) = r.timeout else {
                return Err("timeout: required, but missing (or give a preset)".into());
            };
            if r.scale.is_some() {
                return Err("scale: only scales a preset; write the timeout itself".into());
            }
            return Ok(NatTimeout {
                timeout,
                reset: r.reset.unwrap_or(false),
                preset: None,
                scale: None,
            });
        };
        let n = r.scale.unwrap_or(1);
        if n == 0 || p.timeout_s() % n != 0 {
            return Err(format!(
                "scale: {} s / {n} is not whole seconds (conntrack takes whole seconds); use a \
                 divisor of {}",
                p.timeout_s(),
                p.timeout_s()
            ));
        }
        let timeout = Dur::from_millis(u64::from(p.timeout_s() / n) * 1000);
        // A record repeats the timeout next to its preset: the same value is no conflict.
        if r.timeout.is_some_and(|t| t != timeout) {
            return Err(format!(
                "timeout: preset {} sets the timeout ({} s); give one or the other",
                p.as_str(),
                p.timeout_s()
            ));
        }
        Ok(NatTimeout {
            timeout,
            reset: r.reset.unwrap_or(p.reset()),
            preset: Some(p),
            scale: r.scale,
        })
    }
}

fn whole_seconds_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Dur>, D::Error> {
    whole_seconds(d).map(Some)
}

fn whole_seconds<'de, D: Deserializer<'de>>(d: D) -> Result<Dur, D::Error> {
    let dur = Dur::deserialize(d)?;
    crate::keepalive::keep_secs(dur)
        .map(|s| Dur::from_millis(u64::from(s) * 1000))
        .map_err(|m| {
            serde::de::Error::custom(m.replace(" (the kernel refuses", " (conntrack refuses"))
        })
}

/// What a fault does: one variant per kind, each with only its own fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum FaultSpec {
    ProcessKill(ProcessKill),
    FirewallDrop(FirewallDrop),
    CablePull(CablePull),
    Freeze(Freeze),
    Reject(Reject),
    Loss(Loss),
    HostReboot(HostReboot),
    NatTimeout(NatTimeout),
    Failover(Failover),
}

impl FaultSpec {
    pub fn kind(&self) -> FaultKind {
        match self {
            FaultSpec::ProcessKill(_) => FaultKind::ProcessKill,
            FaultSpec::FirewallDrop(_) => FaultKind::FirewallDrop,
            FaultSpec::CablePull(_) => FaultKind::CablePull,
            FaultSpec::Freeze(_) => FaultKind::Freeze,
            FaultSpec::Reject(_) => FaultKind::Reject,
            FaultSpec::Loss(_) => FaultKind::Loss,
            FaultSpec::HostReboot(_) => FaultKind::HostReboot,
            FaultSpec::NatTimeout(_) => FaultKind::NatTimeout,
            FaultSpec::Failover(_) => FaultKind::Failover,
        }
    }

    /// The process or host a fault acts on, for the kinds that have one.
    pub fn target(&self) -> Option<Side> {
        match *self {
            FaultSpec::ProcessKill(ProcessKill { target, .. })
            | FaultSpec::CablePull(CablePull { target, .. })
            | FaultSpec::Freeze(Freeze { target })
            | FaultSpec::HostReboot(HostReboot { target }) => Some(target),
            _ => None,
        }
    }

    /// Which packets a firewall fault acts on.
    pub fn direction(&self) -> Option<Direction> {
        match *self {
            FaultSpec::FirewallDrop(FirewallDrop { direction })
            | FaultSpec::Reject(Reject { direction, .. })
            | FaultSpec::Loss(Loss { direction, .. }) => Some(direction),
            _ => None,
        }
    }

    fn from_table(
        src: &Source,
        at: &FieldPath,
        kind: FaultKind,
        table: toml::Value,
    ) -> Result<FaultSpec, ScenarioError> {
        Ok(match kind {
            FaultKind::ProcessKill => FaultSpec::ProcessKill(src.deserialize_value(at, table)?),
            FaultKind::FirewallDrop => FaultSpec::FirewallDrop(src.deserialize_value(at, table)?),
            FaultKind::CablePull => FaultSpec::CablePull(src.deserialize_value(at, table)?),
            FaultKind::Freeze => FaultSpec::Freeze(src.deserialize_value(at, table)?),
            FaultKind::Reject => FaultSpec::Reject(src.deserialize_value(at, table)?),
            FaultKind::Loss => FaultSpec::Loss(src.deserialize_value(at, table)?),
            FaultKind::HostReboot => FaultSpec::HostReboot(src.deserialize_value(at, table)?),
            FaultKind::NatTimeout => FaultSpec::NatTimeout(src.deserialize_value(at, table)?),
            FaultKind::Failover => FaultSpec::Failover(src.deserialize_value(at, table)?),
        })
    }
}

/// One scheduled fault.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Fault {
    pub id: String,
    /// Time after the client first connected.
    pub at: Dur,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heal: Option<Dur>,
    #[serde(flatten)]
    pub what: FaultSpec,
}

// For the schema only: faults are read by `Fault`'s parser, which names the offending key.
/// A `[[fault]]` table: the keys every fault has, and its kind's own.
#[derive(JsonSchema)]
#[schemars(extend("unevaluatedProperties" = false))]
#[expect(dead_code, reason = "describes the file for the schema, never built")]
struct FaultInput {
    /// Names the fault in expectations and events; default: its kind.
    id: Option<String>,
    /// When the fault is injected, after the client first connected.
    at: Dur,
    /// When it is undone, after the client first connected.
    heal: Option<Dur>,
    #[serde(flatten)]
    what: FaultSpec,
}

/// The JSON Schema of a scenario file (TOML, read as the same structure).
pub fn file_schema(settings: schemars::generate::SchemaSettings) -> schemars::Schema {
    settings
        .into_generator()
        .into_root_schema_for::<RawScenario>()
}

/// Keys every fault has, whatever its kind.
const FAULT_KEYS: [&str; 4] = ["id", "kind", "at", "heal"];
/// Longest fault id: it names an nftables table (`flatline_<id>_down`, at most 255 bytes).
pub const MAX_ID_LEN: usize = 64;

impl Fault {
    pub fn kind(&self) -> FaultKind {
        self.what.kind()
    }

    /// The nftables table this fault's rules live in, if it has any.
    pub fn nft_table(&self) -> Option<String> {
        let ident: String = self
            .id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        match self.kind() {
            k if k.is_firewall() => Some(format!("flatline_{ident}")),
            FaultKind::HostReboot => Some(format!("flatline_{ident}_down")),
            // A dns failover makes the old address dark with a drop of its own.
            FaultKind::Failover => match self.what {
                FaultSpec::Failover(Failover {
                    mode: FailoverMode::Dns,
                    ..
                }) => Some(format!("flatline_{ident}")),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The client's pause between a loss or failed attempt and the next connect, by default.
pub const DEFAULT_RECONNECT_INTERVAL_MS: u64 = 500;
/// How long a client connect attempt may take, by default.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 1000;
/// Most a listen backlog may be (the kernel caps it at net.core.somaxconn anyway).
pub const MAX_BACKLOG: u32 = 65_535;

/// How a client spreads its retries: the pause before each is drawn from the backoff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Jitter {
    /// Exactly the backoff.
    None,
    /// Uniform in [0, backoff] (AWS's "full jitter").
    Full,
    /// Half the backoff plus uniform in [0, half].
    Equal,
}

/// Exponential backoff between a client's connect attempts: `initial` after a loss, doubled
/// after each failed attempt up to `max`, with `jitter`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Backoff {
    pub initial_ms: u64,
    pub max_ms: u64,
    pub jitter: Jitter,
}

impl Backoff {
    /// The pause after `failures` failed attempts in a row (0 right after a loss), drawn with
    /// `unit` uniform in [0, 1].
    pub fn pause_ms(&self, failures: u32, unit: f64) -> u64 {
        let base = self
            .initial_ms
            .saturating_mul(1u64 << failures.min(32))
            .min(self.max_ms);
        match self.jitter {
            Jitter::None => base,
            Jitter::Full => (base as f64 * unit).round() as u64,
            Jitter::Equal => base / 2 + ((base - base / 2) as f64 * unit).round() as u64,
        }
    }
}

/// `[client] reconnect`: a fixed interval ("500ms") or a backoff table.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum RawReconnect {
    Fixed(Dur),
    Backoff(RawBackoff),
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackoff {
    /// The pause after a loss; doubled after each failed attempt.
    initial: Dur,
    /// The longest pause.
    max: Dur,
    /// none | full (default) | equal.
    jitter: Option<Jitter>,
}

impl<'de> Deserialize<'de> for RawReconnect {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawReconnect;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(
                    "a fixed interval (\"500ms\") or a backoff \
                     ({ initial = \"100ms\", max = \"5s\", jitter = \"full\" })",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                use serde::de::IntoDeserializer;
                Dur::deserialize(v.into_deserializer()).map(RawReconnect::Fixed)
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<Self::Value, A::Error> {
                RawBackoff::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(RawReconnect::Backoff)
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawReconnect {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Reconnect".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let fixed = g.subschema_for::<Dur>();
        let backoff = g.subschema_for::<RawBackoff>();
        schemars::json_schema!({
            "description": "A fixed pause between attempts (\"500ms\"), or exponential backoff with jitter.",
            "oneOf": [fixed, backoff],
        })
    }
}

/// Heartbeat intervals without a word before a peer is declared lost, by default.
pub const DEFAULT_HEARTBEAT_MISSES: u32 = 3;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawServer {
    #[serde(default)]
    #[schemars(with = "crate::keepalive::KeepaliveInput", extend("default" = "off"))]
    keepalive: Keepalive,
    user_timeout: Option<UserTimeout>,
    /// The reference server's listen backlog (default 128).
    backlog: Option<u32>,
    command: Option<Vec<String>>,
    port: Option<u16>,
    lost: Option<String>,
    back: Option<String>,
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    sysctl: Option<std::collections::BTreeMap<String, toml::Value>>,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawClient {
    #[serde(default)]
    #[schemars(with = "crate::keepalive::KeepaliveInput", extend("default" = "off"))]
    keepalive: Keepalive,
    user_timeout: Option<UserTimeout>,
    reconnect_interval: Option<Dur>,
    /// A fixed interval, like `reconnect_interval`, or a backoff table.
    reconnect: Option<RawReconnect>,
    connect_timeout: Option<Dur>,
    /// How many connections the reference client holds (default 1).
    connections: Option<u32>,
    command: Option<Vec<String>>,
    lost: Option<String>,
    back: Option<String>,
    #[schemars(with = "Option<std::collections::BTreeMap<String, serde_json::Value>>")]
    sysctl: Option<std::collections::BTreeMap<String, toml::Value>>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    side: Side,
    fault: Option<String>,
    detects: Option<Detects>,
    error: Option<String>,
    reconnects: Option<Window>,
    tolerance: Option<Dur>,
    /// A pool: judge this quantile of its connections (0 < q <= 1).
    quantile: Option<f64>,
    /// A pool: judge every connection (default) or the first.
    connections: Option<RawPick>,
    /// At most this many connections of this side end during the whole run (a soak:
    /// `disconnects = 0`); needs no fault.
    disconnects: Option<u32>,
}

#[derive(Clone, Copy, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
enum RawPick {
    All,
    Any,
}

/// `expect`: [[expect]] tables, or "none" for a scenario that only observes.
#[derive(Clone, Debug, PartialEq)]
enum RawExpectations {
    None,
    Listed(Vec<RawExpect>),
}

impl<'de> Deserialize<'de> for RawExpectations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawExpectations;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("[[expect]] tables, or \"none\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                match v {
                    "none" => Ok(RawExpectations::None),
                    _ => Err(E::invalid_value(serde::de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut out = Vec::new();
                while let Some(e) = seq.next_element()? {
                    out.push(e);
                }
                Ok(RawExpectations::Listed(out))
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for RawExpectations {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Expectations".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let listed = g.subschema_for::<Vec<RawExpect>>();
        schemars::json_schema!({
            "description": "[[expect]] tables, or \"none\" for a scenario that only observes.",
            "oneOf": [{ "const": "none" }, listed],
        })
    }
}

/// A detection window as written: explicit, or "predicted" (the model's window).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Detects {
    Window(Window),
    Predicted,
}

impl JsonSchema for Detects {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Detects".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let window = g.subschema_for::<Window>();
        schemars::json_schema!({
            "description": "A detection window, or \"predicted\": the model's window for these settings.",
            "anyOf": [{ "const": "predicted" }, window],
        })
    }
}

impl<'de> Deserialize<'de> for Detects {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
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
    /// One request at a time, as a database driver sends a query: the client sends a
    /// request, waits for its answer however long that takes, then waits one interval before
    /// the next. A fault finds a request unacknowledged or about to leave: keepalive cannot
    /// fire, the retransmission timer or TCP_USER_TIMEOUT decides.
    RequestInFlight,
    /// The server sends a record every interval (the seed's server).
    Push,
}

impl Pattern {
    pub fn as_str(self) -> &'static str {
        match self {
            Pattern::Idle => "idle",
            Pattern::Stream => "stream",
            Pattern::RequestResponse => "request-response",
            Pattern::RequestInFlight => "request-in-flight",
            Pattern::Push => "push",
        }
    }
}

/// Largest record the traffic patterns send.
pub const MAX_RECORD_BYTES: i64 = 1 << 20;

fn record_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    input::whole(d, 1, MAX_RECORD_BYTES).map(|n| Some(n as u32))
}

fn misses<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    input::whole(d, 1, 1000).map(|n| Some(n as u32))
}

fn retries<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u8>, D::Error> {
    input::whole(d, 1, 255).map(|n| Some(n as u8))
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTraffic {
    pattern: Pattern,
    interval: Option<Dur>,
    #[serde(default, deserialize_with = "record_bytes")]
    #[schemars(range(min = 1, max = MAX_RECORD_BYTES))]
    record_bytes: Option<u32>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHeartbeat {
    interval: Dur,
    #[serde(default, deserialize_with = "misses")]
    #[schemars(range(min = 1, max = 1000))]
    misses: Option<u32>,
    /// The server enforces a minimum ping interval, as gRPC servers do
    /// (`GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS`, grpc-go's
    /// `EnforcementPolicy.MinTime`): a PING sooner than this after the last one is a strike,
    /// and the third strike closes the connection ("too_many_pings").
    server_min_interval: Option<Dur>,
}

/// Traffic on the connection, resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Traffic {
    pub pattern: Pattern,
    pub interval_ms: u64,
    pub record_bytes: u32,
}

impl Default for Traffic {
    fn default() -> Self {
        Traffic {
            pattern: Pattern::Idle,
            interval_ms: 100,
            record_bytes: 64,
        }
    }
}

/// The application heartbeat: the client pings every interval, the server answers; either
/// side declares the other lost after `misses` intervals without hearing from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Heartbeat {
    pub interval_ms: u64,
    pub misses: u32,
    /// The server closes a connection whose PINGs come sooner than this, three times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_min_interval_ms: Option<u64>,
}

/// Strikes a server enforcing a minimum ping interval allows before it closes (gRPC's
/// max_ping_strikes = 2: the third early PING closes).
pub const MAX_PING_STRIKES: u32 = 2;

#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLab {
    #[serde(default, deserialize_with = "retries")]
    #[schemars(range(min = 1, max = 255))]
    tcp_retries2: Option<u8>,
}

impl RawLab {
    pub fn resolve(self) -> crate::lab::LabConfig {
        crate::lab::LabConfig {
            tcp_retries2: self.tcp_retries2,
        }
    }
}

/// `[wire]`: delay and jitter on every packet the wire forwards (harness/delay.rs).
#[derive(Clone, Debug, Default, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWire {
    /// Added to each direction ("40ms": the round trip grows by 80 ms), at most 10 s.
    delay: Option<Dur>,
    /// Each packet's delay is uniform in delay - jitter ..= delay + jitter, no reordering.
    jitter: Option<Dur>,
}

/// The longest `[wire] delay` (and delay + jitter): beyond it a run is about the delayer.
pub const MAX_WIRE_DELAY_MS: u64 = 10_000;

fn wire(
    src: &Source,
    at: &FieldPath,
    raw: Option<&RawWire>,
) -> Result<crate::delay::WireDelay, ScenarioError> {
    let Some(w) = raw else {
        return Ok(Default::default());
    };
    let delay = w.delay.unwrap_or_default();
    let jitter = w.jitter.unwrap_or_default();
    if delay.as_millis() > MAX_WIRE_DELAY_MS {
        return Err(src.error(
            &at.key("delay"),
            format!("must be at most {MAX_WIRE_DELAY_MS}ms, not `{delay}`"),
        ));
    }
    if jitter > delay {
        return Err(src.error(
            &at.key("jitter"),
            format!(
                "`{jitter}` is more than the delay `{delay}`: a packet cannot leave before it \
                 arrived; raise `delay` or lower `jitter`"
            ),
        ));
    }
    if delay.as_millis() + jitter.as_millis() > MAX_WIRE_DELAY_MS {
        return Err(src.error(
            &at.key("jitter"),
            format!("delay + jitter must be at most {MAX_WIRE_DELAY_MS}ms"),
        ));
    }
    Ok(crate::delay::WireDelay { delay, jitter })
}

/// A scenario file.
#[derive(Clone, Debug, PartialEq, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "flatline scenario file")]
struct RawScenario {
    name: String,
    #[serde(default)]
    description: String,
    end: Dur,
    server: Option<RawServer>,
    client: Option<RawClient>,
    traffic: Option<RawTraffic>,
    heartbeat: Option<RawHeartbeat>,
    lab: Option<RawLab>,
    wire: Option<RawWire>,
    #[serde(default)]
    #[schemars(with = "Vec<FaultInput>")]
    fault: Vec<toml::Table>,
    expect: Option<RawExpectations>,
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
    /// Client only: how many connections the reference client holds; absent means one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connections: Option<u32>,
    /// Client only: exponential backoff between attempts instead of the fixed interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reconnect_backoff: Option<Backoff>,
    /// Server only: the reference server's listen backlog; absent means 128.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backlog: Option<u32>,
    /// A user program instead of the reference peer (black box).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub program: Option<crate::program::Program>,
    /// net.ipv4.* sysctls of the side's namespace.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub sysctl: std::collections::BTreeMap<String, String>,
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
    /// At most `max` connections of the side end during the whole run, fault or not.
    Disconnects { max: u32 },
}

/// Which of a pool's connections an expectation judges (with one connection, all are one).
#[derive(Clone, Copy, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Pick {
    /// Every connection the fault cut: the last one to notice (or come back).
    All,
    /// The first connection to notice (or come back).
    Any,
    /// The connection at this quantile, by nearest rank among those the fault cut.
    Quantile(f64),
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize, JsonSchema)]
pub struct Expectation {
    pub side: Side,
    pub fault: String,
    #[serde(flatten)]
    pub check: Check,
    /// Which connections of a pool are judged; absent: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pick: Option<Pick>,
    /// `detects = "predicted"`: the window is the model's, widened by this tolerance.
    // As parsed, the window is a placeholder; plan::plan fills it in from the model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub predicted: Option<Dur>,
}

impl fmt::Display for Expectation {
    /// Writes the expectation in scenario syntax.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Check::Disconnects { max } = self.check {
            return write!(f, "{{ side = \"{}\", disconnects = {max} }}", self.side);
        }
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
            Check::Disconnects { .. } => unreachable!("written above"),
        }
        match self.pick {
            None => {}
            Some(Pick::All) => f.write_str(", connections = \"all\"")?,
            Some(Pick::Any) => f.write_str(", connections = \"any\"")?,
            Some(Pick::Quantile(q)) => write!(f, ", quantile = {q}")?,
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
    /// Delay and jitter on the wire (`[wire]`); none when absent.
    #[serde(default, skip_serializing_if = "crate::delay::WireDelay::is_off")]
    pub wire: crate::delay::WireDelay,
    pub faults: Vec<Fault>,
    pub expectations: Vec<Expectation>,
}

impl PeerSettings {
    /// A side's settings; the client's reconnect timing takes its defaults.
    pub fn new(side: Side, keepalive: Keepalive, user_timeout: Option<UserTimeout>) -> Self {
        let client = side == Side::Client;
        PeerSettings {
            keepalive,
            user_timeout_ms: user_timeout.map_or(0, |u| u.0),
            reconnect_interval_ms: client.then_some(DEFAULT_RECONNECT_INTERVAL_MS),
            connect_timeout_ms: client.then_some(DEFAULT_CONNECT_TIMEOUT_MS),
            connections: None,
            reconnect_backoff: None,
            backlog: None,
            program: None,
            sysctl: Default::default(),
        }
    }
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

    /// The scenario's failover, if it has one (at most one: the lab has one standby host).
    pub fn failover(&self) -> Option<Failover> {
        self.faults.iter().find_map(|f| match f.what {
            FaultSpec::Failover(fo) => Some(fo),
            _ => None,
        })
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

/// Reads and validates a scenario file.
pub fn load(path: &Path) -> Result<Scenario, ScenarioError> {
    validate(&Source::read(path)?)
}

/// Parses and validates scenario text; `path` is only used in errors.
pub fn parse(path: &Path, text: &str) -> Result<Scenario, ScenarioError> {
    validate(&Source::new(path, text.to_owned())?)
}

/// Reads several scenario files; every error, and an error for two scenarios with one name
/// (their records would overwrite each other).
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Scenario>, Vec<ScenarioError>> {
    let mut loaded: Vec<Scenario> = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        match Source::read(path).and_then(|src| {
            let s = validate(&src)?;
            match loaded.iter().find(|o| o.name == s.name) {
                Some(other) => Err(src.error(
                    &FieldPath::root().key("name"),
                    format!(
                        "`{}` is also the name of {}: their records would overwrite each other",
                        s.name,
                        other.file.display()
                    ),
                )),
                None => Ok(s),
            }
        }) {
            Ok(s) => loaded.push(s),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(loaded)
    } else {
        Err(errors)
    }
}

/// Checks that a name can be a file name: `<name>.json` in the output directory.
pub fn check_file_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty: it names the record file".into());
    }
    if name.contains(['/', '\\']) || name.chars().any(char::is_control) {
        return Err(format!(
            "`{name}` must be a file name: no `/`, `\\` or control characters"
        ));
    }
    if name == "." || name == ".." || name.starts_with('.') {
        return Err(format!("`{name}` must not start with `.`"));
    }
    if name.len() > 200 {
        return Err("must be at most 200 bytes: it names the record file".into());
    }
    Ok(())
}

fn validate(src: &Source) -> Result<Scenario, ScenarioError> {
    let raw: RawScenario = src.deserialize()?;
    let root = FieldPath::root();
    check_file_name(&raw.name).map_err(|m| src.error(&root.key("name"), m))?;
    let (server, client) = peers(src, raw.server.clone(), raw.client.clone())?;
    let traffic = traffic(src, &root.key("traffic"), raw.traffic.as_ref())?;
    let heartbeat = heartbeat(src, &root.key("heartbeat"), raw.heartbeat.as_ref())?;
    let lab = raw.lab.clone().unwrap_or_default().resolve();
    let wire = wire(src, &root.key("wire"), raw.wire.as_ref())?;
    let faults = faults(src, &raw.fault, raw.end)?;
    if let (Some(i), Some(_)) = (
        faults.iter().position(|f| f.kind() == FaultKind::Failover),
        &server.program,
    ) {
        return Err(src.error(
            &root.key("fault").index(i).key("kind"),
            "the standby host runs flatline's reference server: a failover needs the \
             reference server, not a [server] command",
        ));
    }
    let expectations = match &raw.expect {
        Some(RawExpectations::None) => Vec::new(),
        Some(RawExpectations::Listed(list)) if !list.is_empty() => {
            expectations(src, list, &faults)?
        }
        _ => {
            let what = if faults.is_empty() {
                "no [[fault]] and no [[expect]]"
            } else {
                "no [[expect]]"
            };
            return Err(src.error(
                &root.key("expect"),
                format!(
                    "the scenario has {what}: a run would assert nothing; add them, or write \
                     expect = \"none\" to only observe"
                ),
            ));
        }
    };
    Ok(Scenario {
        name: raw.name,
        file: src.file.clone(),
        description: raw.description,
        end: raw.end,
        server,
        client,
        traffic,
        heartbeat,
        lab,
        wire,
        faults,
        expectations,
    })
}

fn peers(
    src: &Source,
    server: Option<RawServer>,
    client: Option<RawClient>,
) -> Result<(PeerSettings, PeerSettings), ScenarioError> {
    let s = server.unwrap_or_default();
    let mut server = PeerSettings::new(Side::Server, s.keepalive, s.user_timeout);
    (server.program, server.sysctl) = crate::program::RawProgram {
        command: s.command,
        port: s.port,
        lost: s.lost,
        back: s.back,
        sysctl: s.sysctl,
    }
    .resolve(src, &FieldPath::root().key("server"))?;
    let at = FieldPath::root().key("server").key("backlog");
    server.backlog = backlog(src, &at, s.backlog, server.program.is_some())?;
    let c = client.unwrap_or_default();
    if c.connect_timeout == Some(Dur::from_millis(0)) {
        return Err(src.error(
            &FieldPath::root().key("client").key("connect_timeout"),
            "must be at least 1ms: a connect that may take no time never succeeds",
        ));
    }
    if c.reconnect_interval == Some(Dur::from_millis(0)) {
        return Err(src.error(
            &FieldPath::root().key("client").key("reconnect_interval"),
            "must be at least 1ms: without a pause the client retries in a busy loop, an event \
             per attempt",
        ));
    }
    let mut client = PeerSettings::new(Side::Client, c.keepalive, c.user_timeout);
    (client.program, client.sysctl) = crate::program::RawProgram {
        command: c.command,
        port: None,
        lost: c.lost,
        back: c.back,
        sysctl: c.sysctl,
    }
    .resolve(src, &FieldPath::root().key("client"))?;
    if let Some(d) = c.reconnect_interval {
        client.reconnect_interval_ms = Some(d.as_millis());
    }
    let at = FieldPath::root().key("client").key("reconnect");
    apply_reconnect(
        src,
        &at,
        c.reconnect,
        c.reconnect_interval.is_some(),
        &mut client,
    )?;
    if let Some(d) = c.connect_timeout {
        client.connect_timeout_ms = Some(d.as_millis());
    }
    let at = FieldPath::root().key("client").key("connections");
    client.connections = connections(src, &at, c.connections, client.program.is_some())?;
    Ok((server, client))
}

/// `[server] backlog`, checked: 1 to [`MAX_BACKLOG`], for the reference server only.
pub(crate) fn backlog(
    src: &Source,
    at: &FieldPath,
    n: Option<u32>,
    program: bool,
) -> Result<Option<u32>, ScenarioError> {
    let Some(n) = n else { return Ok(None) };
    if n == 0 || n > MAX_BACKLOG {
        return Err(src.error(at, format!("must be 1 to {MAX_BACKLOG}")));
    }
    if program {
        return Err(src.error(
            at,
            "only for the reference server: a `command` sets its own backlog",
        ));
    }
    Ok(Some(n))
}

/// `reconnect` (found at `at`), checked and applied to the client's settings.
pub(crate) fn apply_reconnect(
    src: &Source,
    at: &FieldPath,
    r: Option<RawReconnect>,
    interval_too: bool,
    client: &mut PeerSettings,
) -> Result<(), ScenarioError> {
    match reconnect(src, at, r, interval_too)? {
        Some(RawReconnect::Fixed(d)) => client.reconnect_interval_ms = Some(d.as_millis()),
        Some(RawReconnect::Backoff(b)) => {
            client.reconnect_backoff = Some(Backoff {
                initial_ms: b.initial.as_millis(),
                max_ms: b.max.as_millis(),
                jitter: b.jitter.unwrap_or(Jitter::Full),
            })
        }
        None => {}
    }
    Ok(())
}

/// `[client] reconnect`, checked: not with `reconnect_interval`, no zero pause, `max` not
/// below `initial`.
fn reconnect(
    src: &Source,
    at: &FieldPath,
    r: Option<RawReconnect>,
    interval_too: bool,
) -> Result<Option<RawReconnect>, ScenarioError> {
    let zero = "must be at least 1ms: without a pause the client retries in a busy loop, an \
                event per attempt";
    match r {
        Some(_) if interval_too => {
            Err(src.error(at, "give `reconnect` or `reconnect_interval`, not both"))
        }
        Some(RawReconnect::Fixed(d)) if d.as_millis() == 0 => Err(src.error(at, zero)),
        Some(RawReconnect::Backoff(b)) if b.initial.as_millis() == 0 => {
            Err(src.error(&at.key("initial"), zero))
        }
        Some(RawReconnect::Backoff(b)) if b.max.as_millis() < b.initial.as_millis() => Err(src
            .error(
                &at.key("max"),
                format!("{} is below initial = \"{}\"", b.max, b.initial),
            )),
        r => Ok(r),
    }
}

/// Most connections one reference client holds: each is a descriptor on both peers, and the
/// lab's client has one address (about 28,000 ephemeral ports to one server port).
pub const MAX_CONNECTIONS: u32 = 20_000;

/// `[client] connections`, checked: at least 1, at most [`MAX_CONNECTIONS`], and only for the
/// reference client (a user program opens what it opens).
pub(crate) fn connections(
    src: &Source,
    at: &FieldPath,
    n: Option<u32>,
    program: bool,
) -> Result<Option<u32>, ScenarioError> {
    let Some(n) = n else { return Ok(None) };
    if n == 0 {
        return Err(src.error(at, "must be at least 1"));
    }
    if n > MAX_CONNECTIONS {
        return Err(src.error(
            at,
            format!("at most {MAX_CONNECTIONS}: the lab's client has one address and about 28,000 ephemeral ports"),
        ));
    }
    if program {
        return Err(src.error(
            at,
            "only for the reference client: a `command` opens the connections it opens",
        ));
    }
    Ok(Some(n))
}

/// The traffic table found at `at`, resolved.
pub fn traffic(
    src: &Source,
    at: &FieldPath,
    raw: Option<&RawTraffic>,
) -> Result<Traffic, ScenarioError> {
    let default = Traffic::default();
    let Some(t) = raw else {
        return Ok(default);
    };
    let interval_ms = t.interval.map_or(default.interval_ms, Dur::as_millis);
    if interval_ms == 0 {
        return Err(src.error(&at.key("interval"), "must be at least 1ms"));
    }
    Ok(Traffic {
        pattern: t.pattern,
        interval_ms,
        record_bytes: t.record_bytes.unwrap_or(default.record_bytes),
    })
}

/// The heartbeat table found at `at`, resolved.
pub fn heartbeat(
    src: &Source,
    at: &FieldPath,
    raw: Option<&RawHeartbeat>,
) -> Result<Option<Heartbeat>, ScenarioError> {
    let Some(h) = raw else {
        return Ok(None);
    };
    if h.interval.as_millis() == 0 {
        return Err(src.error(&at.key("interval"), "must be at least 1ms"));
    }
    Ok(Some(Heartbeat {
        interval_ms: h.interval.as_millis(),
        misses: h.misses.unwrap_or(DEFAULT_HEARTBEAT_MISSES),
        server_min_interval_ms: h.server_min_interval.map(|d| d.as_millis()),
    }))
}

/// Reads the `[[fault]]` tables, and checks them against each other and the scenario's end.
fn faults(src: &Source, tables: &[toml::Table], end: Dur) -> Result<Vec<Fault>, ScenarioError> {
    let mut faults: Vec<Fault> = Vec::new();
    for (i, table) in tables.iter().enumerate() {
        let here = FieldPath::root().key("fault").index(i);
        let default_id = |kind: FaultKind| {
            if tables.len() == 1 {
                kind.as_str().to_owned()
            } else {
                format!("{}-{}", kind.as_str(), i + 1)
            }
        };
        let f = fault_at(src, &here, table, default_id, end)?;
        clash_rules(src, &here, &f, &faults)?;
        faults.push(f);
    }
    Ok(faults)
}

/// One `[[fault]]` table found at `here`, checked against the scenario's end.
pub fn fault_at(
    src: &Source,
    here: &FieldPath,
    table: &toml::Table,
    default_id: impl Fn(FaultKind) -> String,
    end: Dur,
) -> Result<Fault, ScenarioError> {
    let f = fault(src, here, table, default_id)?;
    schedule_rules(src, here, &f, end)?;
    failover_rules(src, here, &f)?;
    clash_rules(src, here, &f, &[])?;
    Ok(f)
}

/// One `[[fault]]` table: its kind picks the type its other keys must fit.
fn fault(
    src: &Source,
    here: &FieldPath,
    table: &toml::Table,
    default_id: impl Fn(FaultKind) -> String,
) -> Result<Fault, ScenarioError> {
    let names: Vec<&str> = FaultKind::ALL.iter().map(|k| k.as_str()).collect();
    let kind: FaultKind = match table.get("kind") {
        None => return Err(src.error(here, format!("missing `kind`: one of {}", names.join(", ")))),
        Some(v) => src
            .deserialize_value(&here.key("kind"), v.clone())
            .map_err(|_| {
                let v = v.to_string();
                src.error(
                    &here.key("kind"),
                    format!("unknown kind {v}: use one of {}", names.join(", ")),
                )
            })?,
    };
    for key in table.keys() {
        if !FAULT_KEYS.contains(&key.as_str()) && !kind.fields().contains(&key.as_str()) {
            return Err(src.error(&here.key(key), not_for(key, kind)));
        }
    }
    #[derive(Deserialize)]
    struct Common {
        id: Option<String>,
        at: Dur,
        heal: Option<Dur>,
    }
    let (common, own): (toml::Table, toml::Table) = table
        .clone()
        .into_iter()
        .partition(|(k, _)| FAULT_KEYS.contains(&k.as_str()));
    let common: Common = src.deserialize_value(here, toml::Value::Table(common))?;
    let what = FaultSpec::from_table(src, here, kind, toml::Value::Table(own))?;
    Ok(Fault {
        id: common.id.unwrap_or_else(|| default_id(kind)),
        at: common.at,
        heal: common.heal,
        what,
    })
}

/// Why `key` is not a key of a fault of `kind`: which kinds take it, if any.
fn not_for(key: &str, kind: FaultKind) -> String {
    let takers: Vec<&str> = FaultKind::ALL
        .iter()
        .filter(|k| k.fields().contains(&key))
        .map(|k| k.as_str())
        .collect();
    let own = kind.fields();
    let own = if own.is_empty() {
        format!("a {} takes only id, at and heal", kind.as_str())
    } else {
        format!(
            "a {} takes id, at, heal and {}",
            kind.as_str(),
            own.join(", ")
        )
    };
    if takers.is_empty() {
        format!("unknown field `{key}`: {own}")
    } else {
        format!("`{key}` only applies to {}: {own}", takers.join(", "))
    }
}

/// `at` and `heal` within the run, heal after injection.
fn schedule_rules(
    src: &Source,
    here: &FieldPath,
    f: &Fault,
    end: Dur,
) -> Result<(), ScenarioError> {
    if f.at > end {
        return Err(src.error(
            &here.key("at"),
            format!("{} is after the scenario's end ({end})", f.at),
        ));
    }
    if let Some(h) = f.heal {
        if h <= f.at {
            return Err(src.error(
                &here.key("heal"),
                format!("{h} must be after the injection at {}", f.at),
            ));
        }
        if h > end {
            return Err(src.error(
                &here.key("heal"),
                format!("{h} is after the scenario's end ({end})"),
            ));
        }
    }
    Ok(())
}

/// A failover is not healed (the service stays on the standby), and only a dns failover
/// says how the client resolves.
fn failover_rules(src: &Source, here: &FieldPath, f: &Fault) -> Result<(), ScenarioError> {
    let FaultSpec::Failover(fo) = f.what else {
        return Ok(());
    };
    if f.heal.is_some() {
        return Err(src.error(
            &here.key("heal"),
            "a failover is not healed: the service stays on the standby, and reconnects are \
             measured from the failover; leave `heal` out",
        ));
    }
    if fo.mode == FailoverMode::AddressMove && fo.resolve.is_some() {
        return Err(src.error(
            &here.key("resolve"),
            "only applies to mode = \"dns\": after an address move the client finds the \
             standby at the old address",
        ));
    }
    Ok(())
}

/// Ids that the run can use and that do not collide with earlier faults; one NAT.
fn clash_rules(
    src: &Source,
    here: &FieldPath,
    f: &Fault,
    earlier: &[Fault],
) -> Result<(), ScenarioError> {
    let id_at = here.key("id");
    if f.id.is_empty() || f.id.len() > MAX_ID_LEN || f.id.chars().any(char::is_control) {
        return Err(src.error(
            &id_at,
            format!(
                "must be 1 to {MAX_ID_LEN} characters, without control characters (it names \
                 the fault's firewall table)"
            ),
        ));
    }
    if earlier.iter().any(|g| g.id == f.id) {
        return Err(src.error(&id_at, format!("`{}` is used by another fault", f.id)));
    }
    if let Some(table) = f.nft_table() {
        if let Some(g) = earlier
            .iter()
            .find(|g| g.nft_table() == Some(table.clone()))
        {
            return Err(src.error(
                &id_at,
                format!(
                    "`{}` and `{}` both name the firewall table `{table}` (only letters and \
                     digits count): healing one would lift the other's rules; rename one",
                    f.id, g.id
                ),
            ));
        }
    }
    if f.kind() == FaultKind::NatTimeout
        && earlier.iter().any(|g| g.kind() == FaultKind::NatTimeout)
    {
        return Err(src.error(
            &here.key("kind"),
            "the wire has one NAT: one nat-timeout per scenario",
        ));
    }
    if f.kind() == FaultKind::Failover && earlier.iter().any(|g| g.kind() == FaultKind::Failover) {
        return Err(src.error(
            &here.key("kind"),
            "the lab has one standby host: one failover per scenario",
        ));
    }
    Ok(())
}

fn expectations(
    src: &Source,
    raw: &[RawExpect],
    faults: &[Fault],
) -> Result<Vec<Expectation>, ScenarioError> {
    raw.iter()
        .enumerate()
        .map(|(i, e)| expectation(src, &FieldPath::root().key("expect").index(i), e, faults))
        .collect()
}

fn expectation(
    src: &Source,
    here: &FieldPath,
    e: &RawExpect,
    faults: &[Fault],
) -> Result<Expectation, ScenarioError> {
    if let Some(max) = e.disconnects {
        return disconnects(src, here, e, max);
    }
    let fault = match &e.fault {
        Some(id) => faults.iter().find(|f| &f.id == id).ok_or_else(|| {
            let known: Vec<&str> = faults.iter().map(|f| f.id.as_str()).collect();
            src.error(
                &here.key("fault"),
                format!("no fault has id `{id}` (faults: {})", known.join(", ")),
            )
        })?,
        None => faults.first().ok_or_else(|| {
            src.error(
                &here.key("fault"),
                "the scenario has no [[fault]] to expect anything of",
            )
        })?,
    };
    if e.tolerance.is_some() && e.detects != Some(Detects::Predicted) {
        return Err(src.error(
            &here.key("tolerance"),
            "only applies to detects = \"predicted\"",
        ));
    }
    let (check, predicted) = match (e.detects, e.reconnects) {
        (Some(Detects::Predicted), None) => (
            Check::Detects {
                window: Window::Never,
                error: known_error(src, here, e.error.as_deref())?,
            },
            Some(e.tolerance.unwrap_or_default()),
        ),
        (Some(Detects::Window(window)), None) => {
            let error = known_error(src, here, e.error.as_deref())?;
            if error.is_some() && window == Window::Never {
                return Err(src.error(
                    &here.key("error"),
                    "makes no sense with detects = \"never\"",
                ));
            }
            (Check::Detects { window, error }, None)
        }
        (None, Some(window)) => {
            if e.error.is_some() {
                return Err(src.error(&here.key("error"), "only applies to `detects`"));
            }
            let back_by_itself = fault.kind() == FaultKind::Failover;
            if fault.heal.is_none() && window != Window::Never && !back_by_itself {
                return Err(src.error(
                    &here.key("reconnects"),
                    format!("fault `{}` is never healed: give it `heal = ...`", fault.id),
                ));
            }
            (Check::Reconnects { window }, None)
        }
        _ => {
            return Err(src.error(
                &here.key("detects"),
                "give exactly one of `detects` or `reconnects`",
            ))
        }
    };
    Ok(Expectation {
        side: e.side,
        fault: fault.id.clone(),
        check,
        pick: pick(src, here, e)?,
        predicted,
    })
}

/// `disconnects = N`: a count over the whole run, of no fault; the other keys do not apply.
fn disconnects(
    src: &Source,
    here: &FieldPath,
    e: &RawExpect,
    max: u32,
) -> Result<Expectation, ScenarioError> {
    let others = [
        ("fault", e.fault.is_some()),
        ("detects", e.detects.is_some()),
        ("error", e.error.is_some()),
        ("reconnects", e.reconnects.is_some()),
        ("tolerance", e.tolerance.is_some()),
        ("quantile", e.quantile.is_some()),
        ("connections", e.connections.is_some()),
    ];
    if let Some((key, _)) = others.iter().find(|(_, given)| *given) {
        return Err(src.error(
            &here.key(key),
            "does not apply with `disconnects` (a count over the whole run, fault or not)",
        ));
    }
    Ok(Expectation {
        side: e.side,
        fault: String::new(),
        check: Check::Disconnects { max },
        pick: None,
        predicted: None,
    })
}

/// `quantile` or `connections`, checked.
fn pick(src: &Source, here: &FieldPath, e: &RawExpect) -> Result<Option<Pick>, ScenarioError> {
    match (e.quantile, e.connections) {
        (Some(_), Some(_)) => Err(src.error(
            &here.key("quantile"),
            "give `quantile` or `connections`, not both",
        )),
        (Some(q), None) if !(q > 0.0 && q <= 1.0) => Err(src.error(
            &here.key("quantile"),
            format!("{q} is not a quantile: give one above 0 and at most 1 (0.99 for p99)"),
        )),
        (Some(q), None) => Ok(Some(Pick::Quantile(q))),
        (None, Some(RawPick::All)) => Ok(Some(Pick::All)),
        (None, Some(RawPick::Any)) => Ok(Some(Pick::Any)),
        (None, None) => Ok(None),
    }
}

fn known_error(
    src: &Source,
    here: &FieldPath,
    name: Option<&str>,
) -> Result<Option<String>, ScenarioError> {
    match name {
        Some(name) if !KNOWN_ERRORS.contains(&name) => Err(src.error(
            &here.key("error"),
            format!(
                "unknown error `{name}`: use one of {}",
                KNOWN_ERRORS.join(", ")
            ),
        )),
        _ => Ok(name.map(str::to_owned)),
    }
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

    fn nat(fault: &str) -> Result<NatTimeout, String> {
        let text = GOOD.replace(
            "kind = \"cable-pull\"\nat = \"2s\"\nheal = \"10s\"",
            &format!("kind = \"nat-timeout\"\nat = \"2s\"\nheal = \"10s\"\n{fault}"),
        );
        assert_ne!(text, GOOD);
        let s = parse(Path::new("s.toml"), &text).map_err(|e| e.to_string())?;
        match s.faults[0].what {
            FaultSpec::NatTimeout(n) => Ok(n),
            ref other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_nat_preset_sets_the_vendors_timeout_and_behaviour() {
        let n = nat("preset = \"aws-nlb\"").unwrap();
        assert_eq!((n.timeout.as_millis(), n.reset), (350_000, true));
        assert_eq!(n.describe(), "aws-nlb 350 s, reset");
        let n = nat("preset = \"azure-lb\"").unwrap();
        assert_eq!((n.timeout.as_millis(), n.reset), (240_000, false));
        let n = nat("preset = \"gcp-cloud-nat\"\nscale = 300").unwrap();
        assert_eq!((n.timeout.as_millis(), n.reset), (4_000, false));
        assert_eq!(
            n.describe(),
            "gcp-cloud-nat scaled 1/300: 4 s instead of 1200 s, silent drop"
        );
        // The behaviour can be overridden (Azure's "TCP reset on idle" is a rule setting).
        let n = nat("preset = \"aws-nat-gateway\"\nscale = 70\nreset = false").unwrap();
        assert_eq!((n.timeout.as_millis(), n.reset), (5_000, false));
        let n = nat("preset = \"aws-nlb\"\nscale = 70\ntimeout = \"5s\"").unwrap();
        assert_eq!(
            n.timeout.as_millis(),
            5_000,
            "a record's own form reads back"
        );
        let n = nat("timeout = \"3s\"").unwrap();
        assert_eq!(
            (n.timeout.as_millis(), n.reset, n.preset),
            (3_000, false, None)
        );
    }

    #[test]
    fn a_nat_preset_rejects_what_it_cannot_mean() {
        let e = nat("preset = \"aws-nlb\"\ntimeout = \"10s\"").unwrap_err();
        assert!(e.starts_with("s.toml:"), "{e}");
        assert!(e.contains("preset aws-nlb sets the timeout (350 s)"), "{e}");
        let e = nat("preset = \"aws-nlb\"\nscale = 100").unwrap_err();
        assert!(e.contains("scale: 350 s / 100 is not whole seconds"), "{e}");
        let e = nat("timeout = \"10s\"\nscale = 2").unwrap_err();
        assert!(e.contains("scale: only scales a preset"), "{e}");
        let e = nat("preset = \"aws-alb\"").unwrap_err();
        assert!(e.contains("preset"), "{e}");
        let e = nat("reset = true").unwrap_err();
        assert!(e.contains("timeout: required"), "{e}");
    }

    const SOAK: &str = "name = \"s\"\nend = \"5s\"\n[heartbeat]\ninterval = \"1s\"\n\
                        server_min_interval = \"500ms\"\n[[expect]]\nside = \"client\"\n\
                        disconnects = 0\n";

    #[test]
    fn a_soak_needs_no_fault_and_counts_disconnects() {
        let s = parse(Path::new("s.toml"), SOAK).unwrap();
        assert!(s.faults.is_empty());
        assert_eq!(s.expectations[0].check, Check::Disconnects { max: 0 });
        assert_eq!(
            s.expectations[0].to_string(),
            "{ side = \"client\", disconnects = 0 }"
        );
        assert_eq!(s.heartbeat.unwrap().server_min_interval_ms, Some(500));
    }

    #[test]
    fn disconnects_takes_no_fault_window_or_pick() {
        for (extra, key) in [
            ("detects = \"never\"", "detects"),
            ("fault = \"x\"", "fault"),
            ("quantile = 0.5", "quantile"),
        ] {
            let e = err(&format!("{SOAK}{extra}\n"));
            assert!(
                e.contains(&format!(
                    "expect[0].{key}: does not apply with `disconnects`"
                )),
                "{e}"
            );
        }
        let e = err(&SOAK.replace("disconnects = 0", "disconnects = -1"));
        assert!(e.contains("expect[0].disconnects"), "{e}");
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
        assert_eq!(s.faults[0].what.target(), Some(Side::Server));
        assert_eq!(s.expectations.len(), 2);
        assert_eq!(
            s.expectations[0].to_string(),
            r#"{ side = "client", fault = "cable-pull", detects = "10s..15s", error = "ETIMEDOUT" }"#
        );
    }

    #[test]
    fn a_fault_serializes_only_the_fields_of_its_kind() {
        let s = parse(Path::new("s.toml"), GOOD).unwrap();
        let json = serde_json::to_value(&s.faults[0]).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "id": "cable-pull", "at": "2s", "heal": "10s",
                "kind": "cable-pull", "target": "server", "end": "wire"
            })
        );
        // And reads back.
        let back: Scenario = serde_json::from_value(serde_json::to_value(&s).unwrap()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn keepalive_out_of_range_names_line_column_and_field() {
        let text = GOOD.replace(r#"idle = "3s""#, r#"idle = "0s""#);
        let e = err(&text);
        assert!(
            e.starts_with("s.toml:6:15: server.keepalive.idle: must be between 1s"),
            "{e}"
        );
        let text = GOOD.replace("count = 10", "count = 200");
        let e = err(&text);
        assert!(
            e.starts_with("s.toml:6:45: server.keepalive.count: must be between 1 and 127"),
            "{e}"
        );
        let e = err(&GOOD.replace("count = 10", "count = \"ten\""));
        assert!(e.contains("expected a whole number"), "{e}");
    }

    #[test]
    fn unknown_fields_and_bad_values_are_located() {
        let e = err(&GOOD.replace("at = \"2s\"", "at = \"2 parsecs\""));
        assert!(
            e.starts_with("s.toml:14:1: fault[0].at: `2 parsecs` has unknown unit"),
            "{e}"
        );
        let e = err(&GOOD.replace("[client]", "[client]\nidel = 3"));
        assert!(
            e.starts_with("s.toml:9:1: client.idel: unknown field `idel`"),
            "{e}"
        );
        let e = err(&GOOD.replace("cable-pull", "cable-cut"));
        assert!(
            e.starts_with("s.toml:13:1: fault[0].kind: unknown kind \"cable-cut\""),
            "{e}"
        );
        let e = err("name = \"x\"\nend = [");
        assert!(e.starts_with("s.toml:2:"), "{e}");
    }

    #[test]
    fn rule_errors_point_at_the_key_not_the_table() {
        // Regression: these used to point at the [[fault]] header (line 12).
        let e = err(&GOOD.replace("heal = \"10s\"", "heal = \"1s\""));
        assert!(
            e.starts_with("s.toml:15:1: fault[0].heal: 1s must be after"),
            "{e}"
        );
        let e = err(&GOOD.replace("heal = \"10s\"", "heal = \"30s\""));
        assert!(e.contains("after the scenario's end"), "{e}");
        let e = err(&GOOD.replace("error = \"ETIMEDOUT\"", "error = \"ETIMEOUT\""));
        assert!(
            e.starts_with("s.toml:20:1: expect[0].error: unknown error `ETIMEOUT`"),
            "{e}"
        );
        let e = err(&GOOD.replace(
            "side = \"client\"\nreconnects",
            "side = \"client\"\nfault = \"nope\"\nreconnects",
        ));
        assert!(e.contains("expect[1].fault: no fault has id `nope`"), "{e}");
        let e = err(&GOOD.replace("heal = \"10s\"\n", ""));
        assert!(e.contains("never healed"), "{e}");
    }

    #[test]
    fn each_kind_takes_only_its_own_fields() {
        let e = err(&GOOD.replace(
            "kind = \"cable-pull\"",
            "kind = \"cable-pull\"\ndirection = \"both\"",
        ));
        assert!(
            e.starts_with(
                "s.toml:14:1: fault[0].direction: `direction` only applies to firewall-drop, \
                 reject, loss: a cable-pull takes id, at, heal and target, end"
            ),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"cable-pull\"", "kind = \"loss\""));
        assert!(e.contains("fault[0].percent: required, but missing"), "{e}");
        let e = err(&GOOD.replace("kind = \"cable-pull\"", "kind = \"loss\"\npercent = 101"));
        assert!(
            e.contains("fault[0].percent: must be between 1 and 99"),
            "{e}"
        );
        let e = err(&GOOD.replace("kind = \"cable-pull\"", "kind = \"freeze\"\nwith = 1"));
        assert!(
            e.contains("fault[0].with: `with` only applies to reject"),
            "{e}"
        );
    }

    #[test]
    fn what_the_run_cannot_do_is_rejected() {
        // Regression (issue 9, item 3): each of these was accepted and failed at run time.
        let loss = GOOD.replace("kind = \"cable-pull\"", "kind = \"loss\"\npercent = 100");
        assert!(
            err(&loss).contains("use kind = \"firewall-drop\""),
            "{}",
            err(&loss)
        );
        let two = |a: &str, b: &str| {
            GOOD.replace(
                "[[fault]]\nkind = \"cable-pull\"",
                &format!(
                    "[[fault]]\nid = \"{a}\"\nkind = \"firewall-drop\"\nat = \"1s\"\n\n\
                     [[fault]]\nid = \"{b}\"\nkind = \"cable-pull\""
                ),
            )
            .replace(
                "side = \"client\"\n",
                &format!("side = \"client\"\nfault = \"{b}\"\n"),
            )
        };
        let ok = parse(Path::new("s.toml"), &two("a-b", "x"));
        assert!(ok.is_ok(), "{ok:?}");
        let clash = two("a-b", "a_b").replace("kind = \"cable-pull\"", "kind = \"reject\"");
        let e = err(&clash);
        assert!(
            e.contains("both name the firewall table `flatline_a_b`"),
            "{e}"
        );
        let long = "x".repeat(248);
        let e = err(&GOOD.replace(
            "kind = \"cable-pull\"",
            &format!("id = \"{long}\"\nkind = \"cable-pull\""),
        ));
        assert!(e.contains("fault[0].id: must be 1 to 64 characters"), "{e}");
        let e = err(&GOOD.replace("user_timeout = \"1500ms\"", "connect_timeout = \"0ms\""));
        assert!(
            e.starts_with("s.toml:10:1: client.connect_timeout: must be at least 1ms"),
            "{e}"
        );
        let e = err(&GOOD.replace("user_timeout = \"1500ms\"", "reconnect_interval = \"0s\""));
        assert!(
            e.starts_with("s.toml:10:1: client.reconnect_interval: must be at least 1ms"),
            "{e}"
        );
    }

    #[test]
    fn durations_cannot_be_negative_or_unitless() {
        let e = err(&GOOD.replace("at = \"2s\"", "at = \"-2s\""));
        assert!(
            e.contains("fault[0].at: `-2s`: durations cannot be negative"),
            "{e}"
        );
        let e = err(&GOOD.replace("at = \"2s\"", "at = -2"));
        assert!(
            e.contains("fault[0].at: durations cannot be negative"),
            "{e}"
        );
        let e = err(&GOOD.replace("at = \"2s\"", "at = 2"));
        assert!(e.contains("fault[0].at: a duration needs a unit"), "{e}");
    }

    #[test]
    fn names_must_be_file_names() {
        let e = err(&GOOD.replace("name = \"t\"", "name = \"a/b\""));
        assert!(
            e.starts_with("s.toml:2:1: name: `a/b` must be a file name"),
            "{e}"
        );
        let e = err(&GOOD.replace("name = \"t\"", "name = \"\""));
        assert!(e.contains("name: must not be empty"), "{e}");
    }

    #[test]
    fn a_scenario_must_assert_something_or_say_it_does_not() {
        let observe = "name = \"o\"\nend = \"1s\"\n";
        assert!(err(observe).contains("no [[fault]] and no [[expect]]"));
        let s = parse(
            Path::new("s.toml"),
            &format!("{observe}expect = \"none\"\n"),
        )
        .unwrap();
        assert!(s.expectations.is_empty());
        let no_expect = GOOD.split("[[expect]]").next().unwrap();
        let e = err(no_expect);
        assert!(e.contains("expect: the scenario has no [[expect]]"), "{e}");
    }

    #[test]
    fn two_scenarios_with_one_name_are_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a.toml"), dir.path().join("b.toml"));
        std::fs::write(&a, GOOD).unwrap();
        std::fs::write(&b, GOOD).unwrap();
        let errors = load_all(&[a.clone(), b.clone()]).unwrap_err();
        assert_eq!(errors.len(), 1);
        let e = errors[0].to_string();
        assert!(
            e.starts_with(&format!(
                "{}:2:1: name: `t` is also the name of",
                b.display()
            )),
            "{e}"
        );
    }

    #[test]
    fn tolerance_only_with_predicted() {
        let e = err(&GOOD.replace(
            "error = \"ETIMEDOUT\"",
            "error = \"ETIMEDOUT\"\ntolerance = \"1s\"",
        ));
        assert!(e.contains("expect[0].tolerance: only applies"), "{e}");
    }

    #[test]
    fn connections_are_a_pool_of_the_reference_client() {
        let pool = |n: &str| GOOD.replace("keepalive = \"off\"", &format!("connections = {n}"));
        let s = parse(Path::new("s.toml"), &pool("500")).unwrap();
        assert_eq!(s.client.connections, Some(500));
        assert_eq!(
            parse(Path::new("s.toml"), GOOD).unwrap().client.connections,
            None
        );
        let e = err(&pool("0"));
        assert!(
            e.starts_with("s.toml:9:1: client.connections: must be at least 1"),
            "{e}"
        );
        let e = err(&pool("20001"));
        assert!(e.contains("client.connections: at most 20000"), "{e}");
        let e = err(&pool("-3"));
        assert!(e.contains("client.connections"), "{e}");
        let program = pool("2").replace("[client]\n", "[client]\ncommand = [\"true\"]\n");
        let e = err(&program);
        assert!(
            e.contains("client.connections: only for the reference client"),
            "{e}"
        );
    }

    #[test]
    fn a_pool_expectation_takes_a_quantile_or_all_or_any() {
        let with = |extra: &str| {
            GOOD.replace(
                "reconnects = \"..2s\"",
                &format!("reconnects = \"..2s\"\n{extra}"),
            )
        };
        let s = parse(Path::new("s.toml"), &with("quantile = 0.99")).unwrap();
        assert_eq!(s.expectations[1].pick, Some(Pick::Quantile(0.99)));
        assert!(s.expectations[1]
            .to_string()
            .ends_with("reconnects = \"..2s\", quantile = 0.99 }"));
        let s = parse(Path::new("s.toml"), &with("connections = \"any\"")).unwrap();
        assert_eq!(s.expectations[1].pick, Some(Pick::Any));
        assert_eq!(
            parse(Path::new("s.toml"), GOOD).unwrap().expectations[1].pick,
            None
        );
        for bad in ["quantile = 0", "quantile = 1.5", "quantile = -0.1"] {
            let e = err(&with(bad));
            assert!(e.starts_with("s.toml:25:1: expect[1].quantile: "), "{e}");
            assert!(e.contains("is not a quantile"), "{e}");
        }
        let e = err(&with("quantile = 0.9\nconnections = \"all\""));
        assert!(
            e.contains("give `quantile` or `connections`, not both"),
            "{e}"
        );
        let e = err(&with("connections = \"most\""));
        assert!(e.contains("connections"), "{e}");
    }

    #[test]
    fn reconnect_is_a_fixed_interval_or_a_backoff() {
        let with = |line: &str| GOOD.replace("keepalive = \"off\"", line);
        let s = parse(Path::new("s.toml"), &with("reconnect = \"250ms\"")).unwrap();
        assert_eq!(s.client.reconnect_interval_ms, Some(250));
        assert_eq!(s.client.reconnect_backoff, None);
        let s = parse(
            Path::new("s.toml"),
            &with("reconnect = { initial = \"100ms\", max = \"5s\" }"),
        )
        .unwrap();
        let b = Backoff {
            initial_ms: 100,
            max_ms: 5000,
            jitter: Jitter::Full,
        };
        assert_eq!(s.client.reconnect_backoff, Some(b));
        let e = err(&with("reconnect = \"1s\"\nreconnect_interval = \"1s\""));
        assert!(
            e.starts_with("s.toml:9:1: client.reconnect: give `reconnect` or"),
            "{e}"
        );
        let e = err(&with("reconnect = { initial = \"1s\", max = \"500ms\" }"));
        assert!(
            e.contains("client.reconnect.max: 500ms is below initial"),
            "{e}"
        );
        let e = err(&with("reconnect = { initial = \"0ms\", max = \"5s\" }"));
        assert!(
            e.contains("client.reconnect.initial: must be at least 1ms"),
            "{e}"
        );
        let e = err(&with("reconnect = \"0s\""));
        assert!(e.contains("client.reconnect: must be at least 1ms"), "{e}");
        let e = err(&with(
            "reconnect = { initial = \"1s\", max = \"5s\", jitter = \"lots\" }",
        ));
        assert!(e.contains("client.reconnect") && e.contains("lots"), "{e}");
        let e = err(&with("reconnect = 5"));
        assert!(
            e.contains("client.reconnect") && e.contains("a fixed interval"),
            "{e}"
        );
    }

    #[test]
    fn backoff_doubles_up_to_max_with_jitter() {
        let b = |jitter| Backoff {
            initial_ms: 100,
            max_ms: 1000,
            jitter,
        };
        let none: Vec<u64> = (0..6).map(|n| b(Jitter::None).pause_ms(n, 0.5)).collect();
        assert_eq!(none, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(b(Jitter::Full).pause_ms(2, 0.0), 0);
        assert_eq!(b(Jitter::Full).pause_ms(2, 0.5), 200);
        assert_eq!(b(Jitter::Full).pause_ms(9, 1.0), 1000);
        assert_eq!(b(Jitter::Equal).pause_ms(2, 0.0), 200);
        assert_eq!(b(Jitter::Equal).pause_ms(2, 1.0), 400);
        assert_eq!(b(Jitter::None).pause_ms(u32::MAX, 0.0), 1000);
    }

    #[test]
    fn backlog_is_the_reference_servers() {
        let with = |line: &str| GOOD.replace("[server]\n", &format!("[server]\n{line}\n"));
        let s = parse(Path::new("s.toml"), &with("backlog = 16")).unwrap();
        assert_eq!(s.server.backlog, Some(16));
        let e = err(&with("backlog = 0"));
        assert!(
            e.starts_with("s.toml:6:1: server.backlog: must be 1 to 65535"),
            "{e}"
        );
        let e = err(&with("backlog = 16\ncommand = [\"true\"]\nport = 7000"));
        assert!(
            e.contains("server.backlog: only for the reference server"),
            "{e}"
        );
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
        for sub in ["long", "fleet"] {
            for entry in std::fs::read_dir(dir.join(sub)).unwrap() {
                load(&entry.unwrap().path()).unwrap_or_else(|e| panic!("{e}"));
            }
        }
        assert!(n >= 3, "expected the three seed scenarios, found {n}");
    }
}
