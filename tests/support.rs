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

/// Runs `flatline run` on one scenario file; returns the output and the record, if written.
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
    let record = name
        .map(|n| out.join(format!("{n}.json")))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .map(|t| serde_json::from_str(&t).expect("the record is JSON"));
    (output, record)
}

pub fn describe(output: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}\n--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Asserts a record validates against the shipped schema (schema/record.schema.json).
pub fn assert_valid_record(record: &Value) {
    static VALIDATOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    let validator = VALIDATOR.get_or_init(|| {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/record.schema.json");
        let schema = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        jsonschema::validator_for(&schema).expect("the shipped schema is a valid JSON Schema")
    });
    let errors: Vec<String> = validator
        .iter_errors(record)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "the record does not match its schema: {errors:#?}"
    );
}

/// Copies the flatline binary to `to` (mode 0755) and returns once it can be executed.
///
/// While the copy is being written, another test thread may fork; its child holds the write
/// descriptor until it execs, and executing the copy in that moment fails with ETXTBSY ("Text
/// file busy"). Once the copy is closed no new writer can appear, so one successful probe
/// proves later executions succeed.
pub fn copy_flatline(to: &Path) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::copy(env!("CARGO_BIN_EXE_flatline"), to).unwrap();
    std::fs::set_permissions(to, PermissionsExt::from_mode(0o755)).unwrap();
    for _ in 0..500 {
        match Command::new(to).arg("--version").output() {
            Ok(o) if o.status.success() => return,
            Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) => {
                std::thread::sleep(std::time::Duration::from_millis(10))
            }
            other => panic!(
                "the copy of flatline at {} does not run: {other:?}",
                to.display()
            ),
        }
    }
    panic!(
        "the copy of flatline at {} stayed busy for 5 s",
        to.display()
    );
}
