//! A user's TOML file in: bytes to text, text to typed values, every error located at the file,
//! line and column of the key it is about, naming the field, in words.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use toml_edit::{ImDocument, Item, Value};

/// A file that cannot be used, located at the key it is about when there is one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ScenarioError {
    pub file: PathBuf,
    /// 1-based line and column; None when the file could not be read at all.
    pub at: Option<(usize, usize)>,
    /// The field, as a dotted path (`fault[0].percent`), or empty.
    pub field: String,
    pub message: String,
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, column)) = self.at {
            write!(f, ":{line}:{column}")?;
        }
        f.write_str(": ")?;
        if !self.field.is_empty() {
            write!(f, "{}: ", self.field)?;
        }
        f.write_str(&self.message)
    }
}

/// One step of a path to a field.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

/// Where a field sits in a file: `fault[0].percent`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(Vec<Seg>);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath::default()
    }

    /// This path, then a key.
    pub fn key(&self, key: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Key(key.to_owned()));
        p
    }

    /// This path, then an element of an array.
    pub fn index(&self, index: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Seg::Index(index));
        p
    }

    fn extend(&self, path: &serde_path_to_error::Path) -> Self {
        use serde_path_to_error::Segment;
        let mut p = self.clone();
        for seg in path.iter() {
            match seg {
                Segment::Seq { index } => p.0.push(Seg::Index(*index)),
                // toml's Spanned shows up as a private key; users never wrote it.
                Segment::Map { key } if key.starts_with("$__serde_spanned") => {}
                Segment::Map { key } => p.0.push(Seg::Key(key.clone())),
                Segment::Enum { .. } | Segment::Unknown => {}
            }
        }
        p
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(k) if i == 0 => f.write_str(&clip_to(k, 60))?,
                Seg::Key(k) => write!(f, ".{}", clip_to(k, 60))?,
                Seg::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// A user's file, read and known to be TOML, with the position of every key.
#[derive(Debug)]
pub struct Source {
    pub file: PathBuf,
    doc: ImDocument<String>,
}

impl Source {
    /// Reads a file: it must be readable, UTF-8, free of control characters, and TOML.
    pub fn read(file: &Path) -> Result<Source, ScenarioError> {
        let bytes = std::fs::read(file).map_err(|e| ScenarioError {
            file: file.to_owned(),
            at: None,
            field: String::new(),
            message: format!("cannot read the file: {}", io_words(&e)),
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = e.utf8_error().valid_up_to();
            let bytes = e.as_bytes();
            let text = String::from_utf8_lossy(&bytes[..valid]);
            ScenarioError {
                file: file.to_owned(),
                at: Some(line_col(&text, valid)),
                field: line_key(&text, valid),
                message: format!(
                    "the file is not UTF-8 text (byte 0x{:02X}): save it as UTF-8",
                    bytes[valid]
                ),
            }
        })?;
        Source::new(file, text)
    }

    /// Text already in memory; `file` names it in errors.
    pub fn new(file: &Path, text: String) -> Result<Source, ScenarioError> {
        let syntax = |offset: usize, message: String| ScenarioError {
            file: file.to_owned(),
            at: Some(line_col(&text, offset)),
            field: line_key(&text, offset),
            message: clip(&message),
        };
        if let Some((offset, c)) = text
            .char_indices()
            .find(|&(_, c)| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
        {
            return Err(syntax(
                offset,
                format!(
                    "control character U+{:04X} is not allowed in a TOML file: remove it",
                    c as u32
                ),
            ));
        }
        match ImDocument::parse(text.clone()) {
            Ok(doc) => Ok(Source {
                file: file.to_owned(),
                doc,
            }),
            Err(e) => Err(syntax(
                e.span().map_or(0, |s| s.start),
                syntax_words(e.message()),
            )),
        }
    }

    pub fn text(&self) -> &str {
        self.doc.raw()
    }

    /// An error about the field at `path`, located at its key (or, when the key is missing,
    /// at the nearest enclosing table that exists).
    pub fn error(&self, path: &FieldPath, message: impl AsRef<str>) -> ScenarioError {
        let (span, _) = self.span_of(path);
        self.error_at(path, span.start, message.as_ref())
    }

    fn error_at(&self, path: &FieldPath, offset: usize, message: &str) -> ScenarioError {
        ScenarioError {
            file: self.file.clone(),
            at: Some(line_col(self.text(), offset)),
            field: path.to_string(),
            message: clip(&words(message)),
        }
    }

    /// Deserializes the whole file.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, ScenarioError> {
        let de = toml::Deserializer::new(self.text());
        serde_path_to_error::deserialize(de).map_err(|e| self.serde_error(&FieldPath::root(), e))
    }

    /// Deserializes a value taken out of the file, found at `at`.
    pub fn deserialize_value<T: DeserializeOwned>(
        &self,
        at: &FieldPath,
        value: toml::Value,
    ) -> Result<T, ScenarioError> {
        serde_path_to_error::deserialize(value).map_err(|e| self.serde_error(at, e))
    }

    fn serde_error(
        &self,
        base: &FieldPath,
        e: serde_path_to_error::Error<toml::de::Error>,
    ) -> ScenarioError {
        let mut path = base.extend(e.path());
        let inner = e.into_inner();
        let message = inner.message().to_owned();
        // serde names an unknown key only in its message: point at the key itself.
        if let Some(key) = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
        {
            if path.0.last() != Some(&Seg::Key(key.to_owned())) {
                path = path.key(key);
            }
        }
        // Likewise a missing key: name it, at the table it is missing from.
        let mut message = message;
        if let Some(key) = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next())
            .map(str::to_owned)
        {
            path = path.key(&key);
            message = "required, but missing".into();
        }
        let (span, resolved) = self.span_of(&path);
        let offset = match inner.span() {
            Some(s) if !resolved => s.start,
            _ => span.start,
        };
        self.error_at(&path, offset, &message)
    }

    /// The span of the key at `path`, and whether the whole path was found; else the span of
    /// the deepest part that exists.
    fn span_of(&self, path: &FieldPath) -> (Range<usize>, bool) {
        let mut best = 0..0;
        let mut node = Node::Item(self.doc.as_item());
        for seg in &path.0 {
            let next = match (node, seg) {
                (Node::Item(item), Seg::Key(k)) => entry(item, k),
                (Node::Value(Value::InlineTable(t)), Seg::Key(k)) => t
                    .get_key_value(k)
                    .map(|(key, item)| (key.span().or_else(|| item.span()), Node::Item(item))),
                (Node::Item(Item::ArrayOfTables(a)), Seg::Index(i)) => {
                    a.get(*i).map(|t| (t.span(), Node::Table(t)))
                }
                (Node::Item(Item::Value(Value::Array(a))), Seg::Index(i))
                | (Node::Value(Value::Array(a)), Seg::Index(i)) => {
                    a.get(*i).map(|v| (v.span(), Node::Value(v)))
                }
                (Node::Table(t), Seg::Key(k)) => t
                    .get_key_value(k)
                    .map(|(key, item)| (key.span().or_else(|| item.span()), Node::Item(item))),
                _ => None,
            };
            let Some((span, found)) = next else {
                return (best, false);
            };
            if let Some(s) = span {
                best = s;
            }
            node = found;
        }
        (best, true)
    }
}

#[derive(Clone, Copy)]
enum Node<'a> {
    Item(&'a Item),
    Table(&'a toml_edit::Table),
    Value(&'a Value),
}

fn entry<'a>(item: &'a Item, key: &str) -> Option<(Option<Range<usize>>, Node<'a>)> {
    match item {
        Item::Table(t) => t
            .get_key_value(key)
            .map(|(k, item)| (k.span().or_else(|| item.span()), Node::Item(item))),
        Item::Value(Value::InlineTable(t)) => t
            .get_key_value(key)
            .map(|(k, item)| (k.span().or_else(|| item.span()), Node::Item(item))),
        _ => None,
    }
}

/// A whole number between `lo` and `hi`, with errors in words (never `expected u8`).
pub fn whole<'de, D: serde::Deserializer<'de>>(d: D, lo: i64, hi: i64) -> Result<i64, D::Error> {
    struct V;
    impl serde::de::Visitor<'_> for V {
        type Value = i64;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a whole number")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<i64, E> {
            Ok(v)
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<i64, E> {
            i64::try_from(v).map_err(|_| E::custom("the number is too large"))
        }
    }
    let n = d.deserialize_any(V)?;
    if !(lo..=hi).contains(&n) {
        return Err(serde::de::Error::custom(format!(
            "must be between {lo} and {hi}, got {n}"
        )));
    }
    Ok(n)
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The key written on the line of `offset` (with its table), for errors the TOML parser finds
/// before any key is known.
fn line_key(text: &str, offset: usize) -> String {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    let Some((key, _)) = line.split_once('=') else {
        return String::new();
    };
    let key = key.trim();
    let plain = |k: &str| {
        !k.is_empty()
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
    };
    if !plain(key) {
        return String::new();
    }
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim())
        .filter(|t| plain(t));
    clip_to(
        &match table {
            Some(t) => format!("{t}.{key}"),
            None => key.to_owned(),
        },
        120,
    )
}

/// A reading error in words (no `os error 2`).
fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ if e.raw_os_error() == Some(libc::EISDIR) => "it is a directory".into(),
        _ => e.to_string(),
    }
}

fn syntax_words(message: &str) -> String {
    let message = message.trim();
    if message.contains("too large to fit") {
        return "the number is too large: whole numbers must fit in 64 bits".into();
    }
    if message.is_empty() {
        return "this is not valid TOML".into();
    }
    message.replace('\n', "; ")
}

/// Rust's names for things, in the words of a TOML file.
fn words(message: &str) -> String {
    let mut m = message.replace("$__serde_spanned_private_value", "value");
    for t in [
        "u8", "u16", "u32", "u64", "u128", "usize", "i8", "i16", "i32", "i64", "i128",
    ] {
        m = m.replace(&format!("expected {t}"), "expected a whole number");
        m = m.replace(&format!("to {t}"), "to a whole number");
    }
    for t in ["f32", "f64"] {
        m = m.replace(&format!("expected {t}"), "expected a number");
    }
    for (from, to) in [
        ("expected internally tagged enum", "expected a table"),
        ("expected struct", "expected a table"),
        ("expected tuple struct", "expected a table"),
        ("expected enum", "expected a name"),
    ] {
        while let Some(i) = m.find(from) {
            let rest = &m[i + from.len()..];
            let name_end = rest
                .trim_start()
                .find(|c: char| !c.is_alphanumeric() && c != '_')
                .map_or(rest.len(), |n| n + (rest.len() - rest.trim_start().len()));
            m = format!("{}{to}{}", &m[..i], &rest[name_end..]);
        }
    }
    m.replace("a map", "a table")
        .replace("invalid type: map", "invalid type: table")
        .replace("a sequence", "a list")
        .replace("invalid type: sequence", "invalid type: list")
}

/// Long user values cut down, so a 16 MB value is not echoed back.
pub fn clip(message: &str) -> String {
    let mut out = String::new();
    for (i, part) in message.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            out += &clip_to(part, 60);
        } else {
            out += part;
        }
    }
    clip_to(&out, 400)
}

fn clip_to(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let head: String = s.chars().take(max).collect();
    format!("{head}… ({} bytes)", s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(text: &str) -> Result<Source, ScenarioError> {
        Source::new(Path::new("f.toml"), text.to_owned())
    }

    #[test]
    fn paths_locate_keys_in_every_kind_of_table() {
        let s = src("a = 1\n[b]\nc = { d = 2 }\n[[e]]\nf = 3\n[[e]]\n  g = [1, 2]\n").unwrap();
        let at = |p: FieldPath| s.error(&p, "x").at.unwrap();
        let root = FieldPath::root();
        assert_eq!(at(root.key("a")), (1, 1));
        assert_eq!(at(root.key("b").key("c").key("d")), (3, 7));
        assert_eq!(at(root.key("e").index(1).key("g")), (7, 3));
        assert_eq!(at(root.key("e").index(1).key("g").index(1)), (7, 11));
        // A missing key: the nearest table that exists.
        assert_eq!(at(root.key("e").index(0).key("nope")), (4, 1));
        assert_eq!(root.key("e").index(1).key("g").to_string(), "e[1].g");
    }

    #[test]
    fn bad_text_is_located_in_words() {
        let e = src("a = 1\n# bell \u{7} here\n").unwrap_err();
        assert_eq!(e.at, Some((2, 8)));
        assert!(e.message.contains("control character U+0007"), "{e}");
        let e = src("a = 1\nn = 99999999999999999999999\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("f.toml:2:5: n: the number is too large"),
            "{e}"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("x.toml");
        std::fs::write(&file, b"a = 1\nb = \"\xff\"\n").unwrap();
        let e = Source::read(&file).unwrap_err();
        assert_eq!(e.at, Some((2, 6)), "{e}");
        assert!(e.message.contains("not UTF-8"), "{e}");
        let e = Source::read(&dir.path().join("missing.toml")).unwrap_err();
        assert!(!e.to_string().contains(":0:0"), "{e}");
        assert!(
            e.to_string()
                .ends_with("cannot read the file: no such file"),
            "{e}"
        );
    }

    #[test]
    fn long_values_are_clipped() {
        let long = "x".repeat(100_000);
        let m = clip(&format!("`{long}` has unknown unit"));
        assert!(m.len() < 200, "{m}");
        assert!(m.ends_with("` has unknown unit"), "{m}");
    }

    #[test]
    fn rust_names_become_words() {
        assert_eq!(
            words("invalid value: integer `300`, expected u8"),
            "invalid value: integer `300`, expected a whole number"
        );
        assert_eq!(
            words("invalid type: string \"x\", expected struct RawServer"),
            "invalid type: string \"x\", expected a table"
        );
    }
}
