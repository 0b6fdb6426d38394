//! Fuzzing the scenario and comparison parsers: shipped files, mutated (values swapped for
//! hostile ones, keys added, lines dropped or doubled, bytes flipped, text cut short). Whatever
//! comes in, no panic, and every error names file:line:column and the field, in words.
//!
//! `cargo test fuzz` runs a few thousand cases; `FLATLINE_FUZZ_CASES=100000 cargo test
//! --release fuzz` runs a long campaign (README, "Fuzzing").

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn cases(default: u32) -> u32 {
    std::env::var("FLATLINE_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Every shipped scenario and comparison file: the seeds.
fn seeds(compare: bool) -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let dirs = if compare {
        vec![root.join("compare")]
    } else {
        let mut dirs = vec![root.clone()];
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("compare") {
                dirs.push(path);
            }
        }
        dirs
    };
    let mut out = Vec::new();
    for dir in dirs {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                out.push(std::fs::read_to_string(path).unwrap());
            }
        }
    }
    assert!(!out.is_empty());
    out
}

const KEYS: &[&str] = &[
    "name",
    "end",
    "kind",
    "id",
    "at",
    "heal",
    "percent",
    "target",
    "direction",
    "end",
    "signal",
    "with",
    "timeout",
    "reset",
    "side",
    "fault",
    "detects",
    "reconnects",
    "error",
    "tolerance",
    "keepalive",
    "user_timeout",
    "connect_timeout",
    "reconnect_interval",
    "pattern",
    "interval",
    "misses",
    "record_bytes",
    "tcp_retries2",
    "expect",
    "settings",
    "traffic",
    "heartbeat",
    "idle",
    "count",
    "command",
    "port",
    "lost",
    "back",
    "sysctl",
    "bogus",
];

/// Values a hostile or careless user writes.
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("\"-2s\"".to_owned()),
        Just("-1".to_owned()),
        Just("0".to_owned()),
        Just("100".to_owned()),
        Just("99999999999999999999999".to_owned()),
        Just("-99999999999999999999999".to_owned()),
        Just("1e400".to_owned()),
        Just("nan".to_owned()),
        Just("\"\\u0007\"".to_owned()),
        Just("\"\\u0000\"".to_owned()),
        Just(format!("\"{}\"", "x".repeat(100_000))),
        Just(format!("\"{}s\"", "9".repeat(5_000))),
        Just("true".to_owned()),
        Just("[]".to_owned()),
        Just("[1, \"a\"]".to_owned()),
        Just("{}".to_owned()),
        Just("{ idle = \"0s\" }".to_owned()),
        Just("{ idle = \"1.5s\", count = 200 }".to_owned()),
        Just("\"off\"".to_owned()),
        Just("\"never\"".to_owned()),
        Just("\"predicted\"".to_owned()),
        Just("\"none\"".to_owned()),
        Just("\"a/b\"".to_owned()),
        Just("\"\"".to_owned()),
        Just("\"0ms\"".to_owned()),
        Just("\"1.0005s\"".to_owned()),
        Just("\"5s..1s\"".to_owned()),
        Just("\"..\"".to_owned()),
        Just("\"a-b\"".to_owned()),
        Just("\"a_b\"".to_owned()),
        Just("\"loss\"".to_owned()),
        Just("\"nat-timeout\"".to_owned()),
        Just("\"host-reboot\"".to_owned()),
        Just("1979-05-27T07:32:00Z".to_owned()),
        any::<i64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|n| format!("{n:?}")),
        "\\PC{0,12}".prop_map(|s| format!("{s:?}")),
        "[0-9]{1,4}(ms|s|m|h)?".prop_map(|s| format!("\"{s}\"")),
    ]
}

#[derive(Clone, Debug)]
enum Mutation {
    /// Replace the value of the n-th `key = value` line.
    Value(usize, String),
    /// Insert `key = value` before line n.
    Key(usize, &'static str, String),
    /// Insert a table header before line n.
    Header(usize, &'static str),
    Drop(usize),
    Double(usize),
    /// Replace the byte at n.
    Byte(usize, u8),
    Cut(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let n = any::<usize>();
    prop_oneof![
        4 => (n, value()).prop_map(|(i, v)| Mutation::Value(i, v)),
        3 => (n, prop::sample::select(KEYS), value()).prop_map(|(i, k, v)| Mutation::Key(i, k, v)),
        1 => (n, prop::sample::select(&["[[fault]]", "[[expect]]", "[client]", "[server]",
                                         "[traffic]", "[lab]", "[[settings]]", "[heartbeat]",
                                         "[fault]", "[[name]]"][..]))
            .prop_map(|(i, h)| Mutation::Header(i, h)),
        1 => n.prop_map(Mutation::Drop),
        1 => n.prop_map(Mutation::Double),
        1 => (n, any::<u8>()).prop_map(|(i, b)| Mutation::Byte(i, b)),
        1 => n.prop_map(Mutation::Cut),
    ]
}

fn apply(text: &str, m: &Mutation) -> Vec<u8> {
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    let at = |i: usize, len: usize| if len == 0 { 0 } else { i % len };
    match m {
        Mutation::Value(i, v) => {
            let assigns: Vec<usize> = (0..lines.len())
                .filter(|&j| !lines[j].trim_start().starts_with('#') && lines[j].contains('='))
                .collect();
            if !assigns.is_empty() {
                let j = assigns[at(*i, assigns.len())];
                let key = lines[j].split('=').next().unwrap().to_owned();
                lines[j] = format!("{key}= {v}");
            }
        }
        Mutation::Key(i, k, v) => {
            let j = at(*i, lines.len() + 1);
            lines.insert(j, format!("{k} = {v}"));
        }
        Mutation::Header(i, h) => {
            let j = at(*i, lines.len() + 1);
            lines.insert(j, (*h).to_owned());
        }
        Mutation::Drop(i) if !lines.is_empty() => {
            let j = at(*i, lines.len());
            lines.remove(j);
        }
        Mutation::Double(i) if !lines.is_empty() => {
            let j = at(*i, lines.len());
            lines.insert(j, lines[j].clone());
        }
        Mutation::Byte(i, b) if !text.is_empty() => {
            let mut bytes = text.as_bytes().to_vec();
            let j = at(*i, bytes.len());
            bytes[j] = *b;
            return bytes;
        }
        Mutation::Cut(i) => {
            let bytes = text.as_bytes();
            return bytes[..at(*i, bytes.len() + 1)].to_vec();
        }
        _ => {}
    }
    (lines.join("\n") + "\n").into_bytes()
}

/// Rust's own names, which a user never wrote and must never read.
const RUST_WORDS: &[&str] = &[
    "u8",
    "u16",
    "u32",
    "u64",
    "u128",
    "usize",
    "i8",
    "i16",
    "i32",
    "i64",
    "i128",
    "isize",
    "f32",
    "f64",
    "__serde",
    "struct",
    "enum",
    "Option",
    "Vec",
    "String",
    "Raw",
    "Spanned",
    "Deserialize",
];

/// Checks an error: located, naming the field, in words, short.
fn check(file: &Path, text: &[u8], e: &flatline::scenario::ScenarioError) {
    let shown = e.to_string();
    let (line, column) =
        e.at.unwrap_or_else(|| panic!("a readable file gives a line and column: {shown}"));
    let prefix = format!("{}:{line}:{column}: ", file.display());
    assert!(shown.starts_with(&prefix), "{shown}");
    let lines = text.split(|&b| b == b'\n').count();
    assert!(
        line >= 1 && line <= lines && column >= 1,
        "{shown} ({lines} lines)"
    );
    assert!(!e.message.trim().is_empty(), "empty message: {shown}");
    assert!(shown.len() < 1200, "long message: {} bytes", shown.len());
    for word in shown
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
    {
        assert!(!RUST_WORDS.contains(&word), "Rust's `{word}` in: {shown}");
    }
    // A field is named unless the text itself is at fault where no key is written (a control
    // character in a comment, bytes that are not UTF-8, a line TOML cannot read).
    if e.field.is_empty() {
        let bad_line = text
            .split(|&b| b == b'\n')
            .nth(line - 1)
            .unwrap_or_default();
        let bad_line = String::from_utf8_lossy(bad_line);
        let key_before = bad_line
            .split('=')
            .next()
            .is_some_and(|k| bad_line.contains('=') && !k.trim().is_empty() && !k.contains('#'));
        let text_level = [
            "control character",
            "not UTF-8",
            "TOML",
            "expected",
            "invalid",
        ]
        .iter()
        .any(|w| e.message.contains(w));
        assert!(
            text_level || !key_before,
            "no field named for a key's error: {shown}"
        );
    }
}

/// The fuzz cases run next to the timer-bound lab tests, in the same test binary: at the
/// lowest priority (this thread only; Linux's nice is per thread), they take only the CPU the
/// labs leave.
fn lower_priority() {
    // SAFETY: plain syscalls on the calling thread; failure only leaves the priority as it was.
    unsafe {
        let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
        libc::setpriority(libc::PRIO_PROCESS, tid, 19);
    }
}

fn fuzz_one(dir: &Path, seed: &str, mutations: &[Mutation], compare: bool) {
    lower_priority();
    let mut text = seed.as_bytes().to_vec();
    for m in mutations {
        text = apply(&String::from_utf8_lossy(&text), m);
    }
    let file: PathBuf = dir.join("f.toml");
    std::fs::write(&file, &text).unwrap();
    let result = if compare {
        flatline::compare::load(&file).map(|_| ())
    } else {
        flatline::scenario::load(&file).map(|s| {
            // What parses must plan.
            flatline::plan::plan(&s);
        })
    };
    if let Err(e) = result {
        check(&file, &text, &e);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(3000),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_scenarios_never_panic_and_locate_every_error(
        seed in prop::sample::select(seeds(false)),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        fuzz_one(dir.path(), &seed, &mutations, false);
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(3000) / 3,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn fuzz_comparisons_never_panic_and_locate_every_error(
        seed in prop::sample::select(seeds(true)),
        mutations in prop::collection::vec(mutation(), 1..4),
    ) {
        let dir = tempfile::tempdir().unwrap();
        fuzz_one(dir.path(), &seed, &mutations, true);
    }
}
