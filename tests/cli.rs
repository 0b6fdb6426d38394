//! The command line on bad input: exit 2, a message naming file, line and field, nothing
//! created.

use crate::support::{describe, flatline, run, scenario};

#[test]
fn a_bad_scenario_is_located_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    let text = std::fs::read_to_string(scenario("seed-firewall-drop.toml"))
        .unwrap()
        .replacen("count = 10", "count = 200", 2);
    std::fs::write(&file, &text).unwrap();
    let out = dir.path().join("results");
    let (output, record) = run(&file, &out);
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    let line = text
        .lines()
        .position(|l| l.contains("count = 200"))
        .unwrap()
        + 1;
    assert!(
        stderr.contains(&format!("bad.toml:{line}:"))
            && stderr.contains("server.keepalive.count: must be between 1 and 127"),
        "{stderr}"
    );
    assert!(record.is_none());
    assert!(
        !out.exists(),
        "a rejected scenario must not create {}",
        out.display()
    );
}

#[test]
fn one_bad_file_stops_the_whole_batch_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nend = \"1s\"\n[client]\nkeepalive = { idle = \"0s\" }\n",
    )
    .unwrap();
    let out = dir.path().join("results");
    let output = flatline()
        .arg("run")
        .arg(scenario("seed-process-kill.toml"))
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:4:15: client.keepalive.idle"),
        "{stderr}"
    );
    assert!(!out.exists());
}

#[test]
fn a_missing_file_is_reported() {
    let output = flatline()
        .args(["run", "/nonexistent/s.toml"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("/nonexistent/s.toml"));
}

#[test]
fn predict_answers_for_the_seeds_windows_settings_without_a_lab() {
    let output = flatline()
        .args([
            "predict",
            "--os",
            "windows",
            "--keepalive-ms",
            "3000/1",
            "--fault",
            "cable-pull",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    // 3000 ms idle + 10 probes x 1 ms after the last activity (docs/physics.md, Windows); the
    // lower bound, 10 ms, less the jiffy clock's margin.
    assert!(
        stdout.contains("0ms..3.36s") && stdout.contains("ETIMEDOUT"),
        "{stdout}"
    );
}

#[test]
fn predict_reads_scenarios_and_rejects_bad_flags() {
    let output = flatline()
        .arg("predict")
        .arg(scenario("freeze-heartbeat.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("HEARTBEAT") && stdout.contains("app-heartbeat"),
        "{stdout}"
    );
    let output = flatline()
        .args(["predict", "--fault", "nat-timeout"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("nat-timeout needs its timeout"));
    // The same limits as a scenario file (issue 9): count 200 is refused.
    let output = flatline()
        .args([
            "predict",
            "--keepalive-ms",
            "3000/1000/200",
            "--fault",
            "cable-pull",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("count must be between 1 and 127"));
}

#[test]
fn report_on_a_bad_record_says_where_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.json");
    std::fs::write(&file, "{\"format_version\": 2,\n \"status\": 7}\n").unwrap();
    let output = flatline().arg("report").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("{}:2:", file.display())) && stderr.contains("status: "),
        "{stderr}"
    );
    std::fs::write(&file, "{\"format_version\": 1}").unwrap();
    let output = flatline().arg("report").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("format_version 1"),
        "{}",
        describe(&output)
    );
}

#[test]
fn advise_says_why_a_target_cannot_be_met_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("advised.toml");
    // 500 ms on a link whose round trip reaches 300 ms: no heartbeat may be that short.
    let output = flatline()
        .args([
            "advise",
            "--detect-within",
            "500ms",
            "--healthy-jitter",
            "200ms",
            "--write",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("error: the target cannot be met")
            && stderr.contains("  freeze: a frozen peer's kernel still answers TCP")
            && stderr.contains("at least 600ms (2 x 300ms)"),
        "{stderr}"
    );
    assert!(output.stdout.is_empty() && !file.exists());
    // A flag in words, exit 2.
    let output = flatline()
        .args(["advise", "--detect-within", "10s", "--traffic", "busy"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown traffic `busy`"));
}
