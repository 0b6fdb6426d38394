//! User programs in the lab (black box): the command a scenario gives for a side, the lines
//! that mark its notice of a loss and its return, what it is told about the lab, and its
//! output as the record keeps it. What the observer's view of its connections means for the
//! record is [`crate::blackbox`]'s.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::{Deserialize, Serialize, Serializer};

use crate::input::{FieldPath, ScenarioError, Source};
use crate::side::Side;

/// How many lines of a program's output become events (matching lines always do).
pub const OUTPUT_EVENTS: usize = 200;
/// How much of a program's output is kept for error messages, bytes.
pub const OUTPUT_TAIL: usize = 8 * 1024;

/// A regular expression from a scenario, kept with its text.
#[derive(Clone, Debug)]
pub struct Pattern(pub regex::Regex);

impl PartialEq for Pattern {
    fn eq(&self, other: &Self) -> bool {
        self.0.as_str() == other.0.as_str()
    }
}

impl Serialize for Pattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for Pattern {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        regex::Regex::new(&text)
            .map(Pattern)
            .map_err(serde::de::Error::custom)
    }
}

impl schemars::JsonSchema for Pattern {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Regex".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "description": "A regular expression (Rust regex syntax) matched against each line the program prints.",
        })
    }
}

/// A user program for one side.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Program {
    /// argv; `{server}`, `{client}`, `{port}` and `{dir}` (the scenario's directory) are
    /// replaced.
    pub command: Vec<String>,
    /// A line the program prints when it notices a loss.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<Pattern>,
    /// A line it prints when it is back.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub back: Option<Pattern>,
    /// Server: the program is ready when something listens on this port; clients connect
    /// to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
}

/// The black-box fields of `[server]` or `[client]`, as written.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawProgram {
    pub command: Option<Vec<String>>,
    pub port: Option<u16>,
    pub lost: Option<String>,
    pub back: Option<String>,
    pub sysctl: Option<BTreeMap<String, toml::Value>>,
}

/// `tcp_keepalive_time` or `net.ipv4.tcp_keepalive_time` -> `net.ipv4.tcp_keepalive_time`;
/// anything outside net.ipv4 is refused: a side's namespace is all a scenario may change.
pub fn sysctl_key(key: &str) -> Result<String, String> {
    let name = key.strip_prefix("net.ipv4.").unwrap_or(key);
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(format!("net.ipv4.{name}"))
    } else {
        Err(format!(
            "`{key}`: only net.ipv4.* settings of the side's namespace, e.g. tcp_keepalive_time"
        ))
    }
}

impl RawProgram {
    /// Validates the fields of the table at `at`: (program, sysctls).
    pub fn resolve(
        self,
        src: &Source,
        at: &FieldPath,
    ) -> Result<(Option<Program>, BTreeMap<String, String>), ScenarioError> {
        let mut sysctl = BTreeMap::new();
        for (key, value) in self.sysctl.iter().flatten() {
            let here = at.key("sysctl").key(key);
            let name = sysctl_key(key).map_err(|m| src.error(&here, m))?;
            let value = match value {
                toml::Value::Integer(n) => n.to_string(),
                toml::Value::String(v) if !v.contains(['\n', '/']) => v.clone(),
                other => {
                    return Err(src.error(
                        &here,
                        format!("expected a number or a string, found {other}"),
                    ))
                }
            };
            sysctl.insert(name, value);
        }
        let pattern = |p: &Option<String>, field: &str| {
            p.as_ref()
                .map(|p| {
                    regex::Regex::new(p).map(Pattern).map_err(|e| {
                        src.error(&at.key(field), format!("not a regular expression: {e}"))
                    })
                })
                .transpose()
        };
        let lost = pattern(&self.lost, "lost")?;
        let back = pattern(&self.back, "back")?;
        let Some(command) = self.command else {
            for (present, field) in [
                (self.port.is_some(), "port"),
                (self.lost.is_some(), "lost"),
                (self.back.is_some(), "back"),
            ] {
                if present {
                    return Err(src.error(
                        &at.key(field),
                        "only applies with `command` (a program of yours)",
                    ));
                }
            }
            return Ok((None, sysctl));
        };
        if command.first().is_none_or(|c| c.trim().is_empty()) {
            return Err(src.error(
                &at.key("command"),
                "must name a program, e.g. [\"socat\", \"TCP-LISTEN:7000\", \"EXEC:cat\"]",
            ));
        }
        let server = at.to_string() == "server";
        let port = match self.port {
            Some(0) => return Err(src.error(&at.key("port"), "must be 1..=65535")),
            None if server => {
                return Err(src.error(
                    &at.key("port"),
                    "missing: the port your server listens on (ready when something listens \
                     there), e.g. port = 7000",
                ))
            }
            p => p,
        };
        Ok((
            Some(Program {
                command,
                lost,
                back,
                port,
            }),
            sysctl,
        ))
    }
}

/// Where things are in the lab, as a program is told.
#[derive(Clone, Copy, Debug)]
pub struct Addresses {
    pub server: std::net::Ipv4Addr,
    pub client: std::net::Ipv4Addr,
    pub port: u16,
}

impl Program {
    /// The argv with the lab's addresses substituted, and `{dir}`: the directory of the
    /// scenario file (for files shipped next to it, like a config).
    pub fn argv(&self, at: Addresses, dir: &std::path::Path) -> Vec<String> {
        let dir = match dir.as_os_str().is_empty() {
            true => ".".into(),
            false => dir.to_string_lossy(),
        };
        self.command
            .iter()
            .map(|a| {
                a.replace("{server}", &at.server.to_string())
                    .replace("{client}", &at.client.to_string())
                    .replace("{port}", &at.port.to_string())
                    .replace("{dir}", &dir)
            })
            .collect()
    }

    /// The environment a program gets besides its inherited one.
    pub fn env(side: Side, at: Addresses) -> Vec<(&'static str, String)> {
        vec![
            ("FLATLINE_SIDE", side.as_str().into()),
            ("FLATLINE_SERVER_ADDR", at.server.to_string()),
            ("FLATLINE_SERVER_PORT", at.port.to_string()),
            ("FLATLINE_CLIENT_ADDR", at.client.to_string()),
        ]
    }

    /// Whether `line` is the program's notice of a loss or of being back.
    pub fn matches(&self, line: &str) -> Option<&'static str> {
        if self.lost.as_ref().is_some_and(|p| p.0.is_match(line)) {
            Some("lost")
        } else if self.back.as_ref().is_some_and(|p| p.0.is_match(line)) {
            Some("back")
        } else {
            None
        }
    }
}

/// A program's output: the first lines as events, the last bytes for error messages.
#[derive(Debug, Default)]
pub struct Output {
    pub lines: usize,
    tail: String,
}

impl Output {
    /// Takes one line; says whether it should become an event.
    pub fn push(&mut self, stream: &str, line: &str, matched: bool) -> bool {
        self.lines += 1;
        let _ = writeln!(self.tail, "{stream}: {line}");
        if self.tail.len() > OUTPUT_TAIL {
            let mut cut = self.tail.len() - OUTPUT_TAIL;
            while !self.tail.is_char_boundary(cut) {
                cut += 1;
            }
            self.tail.drain(..cut);
        }
        matched || self.lines <= OUTPUT_EVENTS
    }

    pub fn tail(&self) -> &str {
        self.tail.trim_end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_the_lab_into_the_command() {
        let p = Program {
            command: vec![
                "socat".into(),
                "TCP:{server}:{port},bind={client}".into(),
                "{dir}/x".into(),
            ],
            lost: None,
            back: None,
            port: None,
        };
        let at = Addresses {
            server: "198.18.2.2".parse().unwrap(),
            client: "198.18.1.2".parse().unwrap(),
            port: 7000,
        };
        assert_eq!(
            p.argv(at, std::path::Path::new("scenarios/blackbox")),
            [
                "socat",
                "TCP:198.18.2.2:7000,bind=198.18.1.2",
                "scenarios/blackbox/x"
            ]
        );
        assert_eq!(p.argv(at, std::path::Path::new(""))[2], "./x");
        assert!(Program::env(Side::Client, at).contains(&("FLATLINE_SERVER_PORT", "7000".into())));
    }

    fn parse(extra: &str) -> Result<crate::scenario::Scenario, String> {
        let text = format!("name = \"t\"\nend = \"5s\"\nexpect = \"none\"\n{extra}");
        crate::scenario::parse(std::path::Path::new("t.toml"), &text).map_err(|e| e.to_string())
    }

    #[test]
    fn scenarios_name_programs_and_their_mistakes() {
        let s = parse(
            "[server]\ncommand = [\"socat\", \"TCP-LISTEN:{port}\", \"EXEC:cat\"]\nport = 7001\n\
             sysctl = { tcp_keepalive_time = 60, \"net.ipv4.tcp_retries2\" = \"5\" }\n\
             [client]\ncommand = [\"c\"]\nlost = \"disconnected|reset\"\n",
        )
        .unwrap();
        let server = s.server.program.as_ref().unwrap();
        assert_eq!(server.port, Some(7001));
        assert_eq!(s.server.sysctl["net.ipv4.tcp_keepalive_time"], "60");
        assert_eq!(s.server.sysctl["net.ipv4.tcp_retries2"], "5");
        let client = s.client.program.as_ref().unwrap();
        assert_eq!(client.matches("peer disconnected"), Some("lost"));
        assert_eq!(client.matches("hello"), None);

        let e = parse("[server]\ncommand = [\"x\"]\n").unwrap_err();
        assert!(e.contains("t.toml:4:") && e.contains("server.port"), "{e}");
        let e = parse("[client]\ncommand = []\n").unwrap_err();
        assert!(
            e.contains("client.command") && e.contains("must name a program"),
            "{e}"
        );
        let e = parse("[client]\ncommand = [\"c\"]\nlost = \"(\"\n").unwrap_err();
        assert!(e.contains("t.toml:6:") && e.contains("client.lost"), "{e}");
        let e = parse("[client]\nlost = \"x\"\n").unwrap_err();
        assert!(e.contains("only applies with `command`"), "{e}");
        let e = parse("[server]\nsysctl = { \"kernel.panic\" = 1 }\n").unwrap_err();
        assert!(e.contains("server.sysctl") && e.contains("net.ipv4"), "{e}");
        let e = parse("[client]\nport = 7000\n").unwrap_err();
        assert!(e.contains("port"), "{e}");
    }

    #[test]
    fn output_is_bounded_but_matches_are_kept() {
        let mut o = Output::default();
        for i in 0..OUTPUT_EVENTS {
            assert!(o.push("stdout", &format!("line {i}"), false));
        }
        assert!(!o.push("stdout", "one too many", false));
        assert!(o.push("stdout", "disconnected", true));
        for _ in 0..1000 {
            o.push("stderr", "ééééééééééééééééééééééé", false);
        }
        assert!(o.tail().len() <= OUTPUT_TAIL);
        assert!(o.tail().ends_with("é"));
    }
}
