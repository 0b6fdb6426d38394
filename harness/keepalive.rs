//! Keepalive and user-timeout settings for one side, and the limits the Linux kernel enforces.

use std::fmt;

use schemars::JsonSchema;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::duration::Dur;

/// Default TCP_KEEPIDLE of a new network namespace (net.ipv4.tcp_keepalive_time), seconds.
pub const LINUX_DEFAULT_IDLE_S: u32 = 7200;
/// Default TCP_KEEPINTVL of a new network namespace (net.ipv4.tcp_keepalive_intvl), seconds.
pub const LINUX_DEFAULT_INTERVAL_S: u32 = 75;
/// Default TCP_KEEPCNT of a new network namespace (net.ipv4.tcp_keepalive_probes).
pub const LINUX_DEFAULT_COUNT: u32 = 9;
/// TCP_KEEPIDLE and TCP_KEEPINTVL accept 1..=32767 seconds (MAX_TCP_KEEPIDLE/KEEPINTVL).
pub const MAX_KEEP_SECS: u32 = 32767;
/// TCP_KEEPCNT accepts 1..=127 (MAX_TCP_KEEPCNT).
pub const MAX_KEEP_COUNT: u32 = 127;

/// Keepalive for one side: off, or on with resolved idle, interval and count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, JsonSchema)]
#[serde(rename_all = "kebab-case", tag = "mode")]
pub enum Keepalive {
    #[default]
    Off,
    On {
        idle_s: u32,
        interval_s: u32,
        count: u32,
    },
}

impl fmt::Display for Keepalive {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Keepalive::Off => f.write_str("off"),
            Keepalive::On {
                idle_s,
                interval_s,
                count,
            } => write!(f, "{idle_s}s/{interval_s}s/{count}"),
        }
    }
}

/// Whole seconds accepted by TCP_KEEPIDLE or TCP_KEEPINTVL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepSecs(pub u32);

impl<'de> Deserialize<'de> for KeepSecs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dur = Dur::deserialize(d)?;
        keep_secs(dur).map(KeepSecs).map_err(de::Error::custom)
    }
}

/// Checks a duration against the kernel's limits for TCP_KEEPIDLE and TCP_KEEPINTVL.
pub fn keep_secs(dur: Dur) -> Result<u32, String> {
    let ms = dur.as_millis();
    if !ms.is_multiple_of(1000) {
        return Err(format!(
            "Linux takes whole seconds here, got {dur}: round to {}s",
            (ms / 1000).max(1)
        ));
    }
    let secs = ms / 1000;
    if !(1..=u64::from(MAX_KEEP_SECS)).contains(&secs) {
        return Err(format!(
            "must be between 1s and {MAX_KEEP_SECS}s (the kernel refuses {dur} with EINVAL)"
        ));
    }
    Ok(secs as u32)
}

/// A probe count accepted by TCP_KEEPCNT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepCount(pub u32);

impl<'de> Deserialize<'de> for KeepCount {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let n = crate::input::whole(d, i64::MIN, i64::MAX)?;
        if !(1..=i64::from(MAX_KEEP_COUNT)).contains(&n) {
            return Err(de::Error::custom(format!(
                "must be between 1 and {MAX_KEEP_COUNT} (the kernel refuses {n} with EINVAL)"
            )));
        }
        Ok(KeepCount(n as u32))
    }
}

/// A TCP_USER_TIMEOUT in milliseconds; 0 means the system default (none).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UserTimeout(pub u32);

impl<'de> Deserialize<'de> for UserTimeout {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let dur = Dur::deserialize(d)?;
        u32::try_from(dur.as_millis())
            .ok()
            .filter(|&ms| ms <= i32::MAX as u32)
            .map(UserTimeout)
            .ok_or_else(|| {
                de::Error::custom(format!(
                    "{dur} is above the kernel's limit of {}ms",
                    i32::MAX
                ))
            })
    }
}

/// Keepalive as a scenario file writes it (for the schema): "off", or a table whose missing
/// keys take the defaults of a new network namespace.
pub struct KeepaliveInput;

impl JsonSchema for KeepaliveInput {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "KeepaliveInput".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let secs = g.subschema_for::<Dur>();
        schemars::json_schema!({
            "description": "\"off\", or { idle, interval, count }: TCP_KEEPIDLE and TCP_KEEPINTVL in whole seconds (1s to 32767s), TCP_KEEPCNT 1 to 127; missing keys take a new network namespace's defaults (7200s, 75s, 9).",
            "oneOf": [
                { "const": "off" },
                {
                    "type": "object",
                    "properties": {
                        "idle": secs,
                        "interval": secs,
                        "count": { "type": "integer", "minimum": 1, "maximum": MAX_KEEP_COUNT },
                    },
                    "additionalProperties": false,
                },
            ],
        })
    }
}

impl JsonSchema for UserTimeout {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "UserTimeout".into()
    }

    fn json_schema(g: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let mut schema = g.subschema_for::<Dur>();
        schema.insert(
            "description".into(),
            "TCP_USER_TIMEOUT: how long sent data may stay unacknowledged; \"0s\" leaves the system default.".into(),
        );
        schema
    }
}

/// The resolved form, as records write it: `{ "mode": "off" }` or
/// `{ "mode": "on", "idle_s": 3, "interval_s": 1, "count": 10 }` (the scenario form is
/// [`Keepalive`]'s own `Deserialize`).
pub fn resolved<'de, D: Deserializer<'de>>(d: D) -> Result<Keepalive, D::Error> {
    #[derive(Deserialize)]
    #[serde(rename_all = "kebab-case", tag = "mode", deny_unknown_fields)]
    enum Resolved {
        Off,
        On {
            idle_s: u32,
            interval_s: u32,
            count: u32,
        },
    }
    Ok(match Resolved::deserialize(d)? {
        Resolved::Off => Keepalive::Off,
        Resolved::On {
            idle_s,
            interval_s,
            count,
        } => Keepalive::On {
            idle_s,
            interval_s,
            count,
        },
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KeepaliveTable {
    idle: Option<KeepSecs>,
    interval: Option<KeepSecs>,
    count: Option<KeepCount>,
}

impl<'de> Deserialize<'de> for Keepalive {
    /// Accepts `"off"` or a table `{ idle = "3s", interval = "1s", count = 10 }`; missing
    /// fields take the defaults of a new network namespace (7200 s, 75 s, 9).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Keepalive;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#""off" or a table like { idle = "3s", interval = "1s", count = 10 }"#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Keepalive, E> {
                match v {
                    "off" => Ok(Keepalive::Off),
                    _ => Err(E::invalid_value(de::Unexpected::Str(v), &self)),
                }
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Keepalive, E> {
                Err(E::invalid_value(de::Unexpected::Bool(v), &self))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Keepalive, A::Error> {
                let t = KeepaliveTable::deserialize(de::value::MapAccessDeserializer::new(map))?;
                Ok(Keepalive::On {
                    idle_s: t.idle.map_or(LINUX_DEFAULT_IDLE_S, |s| s.0),
                    interval_s: t.interval.map_or(LINUX_DEFAULT_INTERVAL_S, |s| s.0),
                    count: t.count.map_or(LINUX_DEFAULT_COUNT, |c| c.0),
                })
            }
        }
        d.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_kernel() {
        assert_eq!(keep_secs(Dur::from_millis(3000)), Ok(3));
        assert!(keep_secs(Dur::from_millis(0))
            .unwrap_err()
            .contains("between 1s"));
        assert!(keep_secs(Dur::from_millis(1500))
            .unwrap_err()
            .contains("whole seconds"));
        assert!(keep_secs(Dur::from_millis(32_768_000)).is_err());
        assert_eq!(keep_secs(Dur::from_millis(32_767_000)), Ok(32767));
    }
}
