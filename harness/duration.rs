//! Human-written durations ("1500ms", "3s", "2.5s", "1m") and time windows ("3s..4.5s").

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A duration as a scenario file writes it, with millisecond resolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dur(pub Duration);

impl Dur {
    pub fn from_millis(ms: u64) -> Self {
        Dur(Duration::from_millis(ms))
    }

    pub fn as_millis(self) -> u64 {
        self.0.as_millis() as u64
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Parses "1500ms", "3s", "2.5s" or "1m": a non-negative number and a unit.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.starts_with('-') {
            return Err(format!("`{text}`: durations cannot be negative"));
        }
        let split = text
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| format!("`{text}` has no unit: write e.g. `1500ms`, `3s` or `1m`"))?;
        let (number, unit) = text.split_at(split);
        let scale_ms: u64 = match unit.trim() {
            "ms" => 1,
            "s" => 1000,
            "m" | "min" => 60_000,
            other => {
                return Err(format!(
                    "`{text}` has unknown unit `{other}`: use `ms`, `s` or `m`"
                ))
            }
        };
        // Exact decimal arithmetic: "1.05s" is 1050 ms, not 1050.0000000000002.
        let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
        if whole.is_empty() && frac.is_empty() || frac.contains('.') {
            return Err(format!("`{text}` does not start with a number"));
        }
        let digits = |s: &str| -> Result<u64, String> {
            if s.is_empty() {
                Ok(0)
            } else {
                s.parse().map_err(|_| format!("`{text}` is out of range"))
            }
        };
        let frac = frac.trim_end_matches('0');
        if frac.len() > 9 {
            return Err(format!("`{text}` is finer than a millisecond"));
        }
        let denom = 10u64.pow(frac.len() as u32);
        let frac_ms = digits(frac)? * scale_ms;
        if !frac_ms.is_multiple_of(denom) {
            return Err(format!("`{text}` is finer than a millisecond"));
        }
        let ms = digits(whole)?
            .checked_mul(scale_ms)
            .and_then(|w| w.checked_add(frac_ms / denom))
            .filter(|&ms| ms <= 1_000_000_000_000)
            .ok_or_else(|| format!("`{text}` is out of range"))?;
        Ok(Dur::from_millis(ms))
    }
}

impl fmt::Display for Dur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.as_millis();
        if ms != 0 && ms.is_multiple_of(1000) {
            write!(f, "{}s", ms / 1000)
        } else if ms > 1000 {
            let frac = format!("{:03}", ms % 1000);
            write!(f, "{}.{}s", ms / 1000, frac.trim_end_matches('0'))
        } else {
            write!(f, "{ms}ms")
        }
    }
}

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Dur;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a duration such as \"1500ms\", \"3s\" or \"1m\"")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Dur, E> {
                Dur::parse(v).map_err(E::custom)
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Dur, E> {
                if v < 0 {
                    return Err(E::custom("durations cannot be negative"));
                }
                self.visit_u64(v as u64)
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Dur, E> {
                Err(E::custom(format!(
                    "a duration needs a unit: write it as a string, e.g. \"{v}s\" or \"{v}ms\""
                )))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Dur, E> {
                if v < 0.0 {
                    return Err(E::custom("durations cannot be negative"));
                }
                Err(E::custom(format!(
                    "a duration needs a unit: write it as a string, e.g. \"{v}s\""
                )))
            }
        }
        d.deserialize_any(V)
    }
}

impl Serialize for Dur {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// When something must happen, relative to a reference moment: "3s..4.5s", "..2s", "1s..",
/// or "never".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Window {
    Within { from: Option<Dur>, to: Option<Dur> },
    Never,
}

/// Where a measured latency falls against a window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    TooEarly,
    Inside,
    TooLate,
}

impl Window {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "never" {
            return Ok(Window::Never);
        }
        let (from, to) = text.split_once("..").ok_or_else(|| {
            format!("`{text}` is not a window: write `3s..4.5s`, `..2s`, `1s..` or `never`")
        })?;
        let bound = |s: &str| -> Result<Option<Dur>, String> {
            if s.trim().is_empty() {
                Ok(None)
            } else {
                Dur::parse(s).map(Some)
            }
        };
        let (from, to) = (bound(from)?, bound(to)?);
        if from.is_none() && to.is_none() {
            return Err(format!("`{text}` has no bounds: give at least one"));
        }
        if let (Some(a), Some(b)) = (from, to) {
            if a > b {
                return Err(format!("`{text}` ends before it starts"));
            }
        }
        Ok(Window::Within { from, to })
    }

    /// Places a latency (in milliseconds, possibly fractional) against the window.
    /// For `never`, any latency is too early.
    pub fn place(&self, latency_ms: f64) -> Placement {
        match *self {
            Window::Never => Placement::TooEarly,
            Window::Within { from, to } => {
                if from.is_some_and(|f| latency_ms < f.as_millis() as f64) {
                    Placement::TooEarly
                } else if to.is_some_and(|t| latency_ms > t.as_millis() as f64) {
                    Placement::TooLate
                } else {
                    Placement::Inside
                }
            }
        }
    }

    /// The latest latency the window accepts, if it has an upper bound.
    pub fn deadline(&self) -> Option<Dur> {
        match *self {
            Window::Within { to, .. } => to,
            Window::Never => None,
        }
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Window::Never => f.write_str("never"),
            Window::Within { from, to } => {
                if let Some(a) = from {
                    write!(f, "{a}")?;
                }
                f.write_str("..")?;
                if let Some(b) = to {
                    write!(f, "{b}")?;
                }
                Ok(())
            }
        }
    }
}

impl<'de> Deserialize<'de> for Window {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Window::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Serialize for Window {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A duration as written: a non-negative number and a unit.
const DUR_PATTERN: &str = r"^\s*[0-9]+(\.[0-9]+)?\s*(ms|s|m)\s*$";

impl schemars::JsonSchema for Dur {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": DUR_PATTERN,
            "description": "A duration: a non-negative number and a unit, ms, s or m (\"1500ms\", \"3s\", \"2.5s\", \"1m\").",
        })
    }
}

impl schemars::JsonSchema for Window {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Window".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        let bound = r"([0-9]+(\.[0-9]+)?\s*(ms|s|m))";
        schemars::json_schema!({
            "type": "string",
            "pattern": format!(r"^\s*(never|{bound}?\s*\.\.\s*{bound}?)\s*$"),
            "description": "A window of latencies: \"3s..4.5s\", \"..2s\" (at most), \"1s..\" (at least) or \"never\".",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_units() {
        assert_eq!(Dur::parse("1500ms").unwrap(), Dur::from_millis(1500));
        assert_eq!(Dur::parse("3s").unwrap(), Dur::from_millis(3000));
        assert_eq!(Dur::parse("2.5s").unwrap(), Dur::from_millis(2500));
        assert_eq!(Dur::parse("1m").unwrap(), Dur::from_millis(60_000));
        assert!(Dur::parse("3").unwrap_err().contains("no unit"));
        assert!(Dur::parse("3h").unwrap_err().contains("unknown unit"));
        assert!(Dur::parse("0.5ms").unwrap_err().contains("finer"));
        assert!(Dur::parse("s").is_err());
        assert_eq!(Dur::from_millis(9800).to_string(), "9.8s");
        assert_eq!(Dur::from_millis(1050).to_string(), "1.05s");
        assert_eq!(Dur::from_millis(500).to_string(), "500ms");
    }

    #[test]
    fn windows_place_latencies() {
        let w = Window::parse("3s..4.5s").unwrap();
        assert_eq!(w.place(2999.0), Placement::TooEarly);
        assert_eq!(w.place(3000.0), Placement::Inside);
        assert_eq!(w.place(4500.0), Placement::Inside);
        assert_eq!(w.place(4500.5), Placement::TooLate);
        assert_eq!(Window::parse("..2s").unwrap().place(0.0), Placement::Inside);
        assert_eq!(
            Window::parse("never").unwrap().place(1.0),
            Placement::TooEarly
        );
        assert!(Window::parse("5s..1s").is_err());
        assert!(Window::parse("..").is_err());
        assert!(Window::parse("3s").is_err());
    }

    proptest! {
        #[test]
        fn dur_round_trips(ms in 0u64..10_000_000) {
            let d = Dur::from_millis(ms);
            prop_assert_eq!(Dur::parse(&d.to_string()).unwrap(), d);
        }

        #[test]
        fn window_round_trips(a in proptest::option::of(0u64..100_000), len in 0u64..100_000,
                              open_end in any::<bool>()) {
            let from = a.map(Dur::from_millis);
            let to = if open_end && from.is_some() { None }
                     else { Some(Dur::from_millis(a.unwrap_or(0) + len)) };
            let w = Window::Within { from, to };
            prop_assert_eq!(Window::parse(&w.to_string()).unwrap(), w);
        }

        #[test]
        fn parse_never_panics(s in "\\PC*") {
            let _ = Dur::parse(&s);
            let _ = Window::parse(&s);
        }
    }
}
