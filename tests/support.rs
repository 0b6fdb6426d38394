//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub fn flatline() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flatline"))
}

pub fn scenario(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scenarios")
        .join(name)
}

/// Runs `flatline run` on one scenario file; returns the output and the timeline, if written.
pub fn run(file: &Path, out: &Path) -> (Output, Option<Value>) {
    let output = flatline()
        .arg("run")
        .arg(file)
        .arg("--out")
        .arg(out)
        .output()
        .expect("flatline starts");
    let name = std::fs::read_to_string(file)
        .ok()
        .and_then(|t| t.parse::<toml::Table>().ok())
        .and_then(|t| t.get("name").and_then(|n| n.as_str().map(str::to_owned)));
    let timeline = name
        .map(|n| out.join(format!("{n}.json")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| serde_json::from_str(&t).expect("the timeline is JSON"));
    (output, timeline)
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}
