//! Black-box lab tests: real programs from Debian packages in the lab, watched from outside.
//! Windows come from physics.md, independently of the scenarios' own expectations; the lower
//! bound proves the fault took effect, the upper bound that the program noticed.

use serde_json::Value;

use crate::support::{describe, run, scenario};

/// Timer slack: physics.md measured +24..32 ms per 1 s timer; allow 100 ms per timer.
const SLACK_PER_TIMER_MS: f64 = 100.0;

fn events<'a>(t: &'a Value, source: &str, kind: &str) -> Vec<&'a Value> {
    t["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["source"] == source && e["kind"] == kind)
        .collect()
}

fn fault_at(t: &Value) -> f64 {
    t["summary"]["faults"][0]["injected_at_ms"]
        .as_f64()
        .expect("the fault was injected")
}

/// Runs a black-box scenario that must pass; returns its record.
fn run_passing(name: &str) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let (output, record) = run(&scenario(name), dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    record.expect("a record was written")
}

/// How the observer must have watched: by trace as root, by dumps otherwise.
fn expected_via() -> &'static str {
    if nix::unistd::geteuid().is_root() {
        "trace"
    } else {
        "dump"
    }
}

#[test]
fn socat_keepalive_abort_is_seen_in_the_kernel_and_in_the_program() {
    let t = run_passing("blackbox/socat-keepalive-drop.toml");
    let fault = fault_at(&t);
    for side in ["client", "server"] {
        // What socat really set, read from its socket: idle 1 s, interval 1 s, 3 probes.
        let seen = events(&t, side, "connection-observed");
        let options = &seen
            .first()
            .unwrap_or_else(|| panic!("{side}: no connection"))["options"];
        assert_eq!(options["keepalive"], true, "{side}: {options}");
        assert_eq!(
            (
                &options["idle_s"],
                &options["interval_s"],
                &options["count"]
            ),
            (&Value::from(1), &Value::from(1), &Value::from(3)),
            "{side}"
        );
        // Idle keepalive I/V/N = 1/1/3: abort N*V..I+N*V after the drop (physics.md formula 1).
        let gave_up = events(&t, side, "kernel-gave-up");
        let k = gave_up
            .first()
            .unwrap_or_else(|| panic!("{side}: kernel never gave up"));
        assert_eq!(k["error"], "ETIMEDOUT", "{side}: {k}");
        assert_eq!(k["via"], expected_via(), "{side}: {k}");
        if expected_via() == "trace" {
            assert_eq!(k["reason"], "keepalive", "{side}: {k}");
        }
        let after = k["t_ms"].as_f64().unwrap() - fault;
        let window = 3000.0 - 50.0..=4000.0 + 4.0 * SLACK_PER_TIMER_MS;
        assert!(
            window.contains(&after),
            "{side}: kernel gave up {after} ms after the drop"
        );
        // socat blocks in read(): it gets the error at once and closes. The lower bound proves
        // the close answers the abort; 50 ms covers a loaded machine's scheduling.
        let closed = events(&t, side, "program-closed");
        let c = closed
            .first()
            .unwrap_or_else(|| panic!("{side}: never closed"));
        let delay = c["t_ms"].as_f64().unwrap() - k["t_ms"].as_f64().unwrap();
        assert!(
            (0.0..50.0).contains(&delay),
            "{side}: closed {delay} ms after the abort"
        );
        let lost = events(&t, side, "peer-lost");
        assert_eq!(lost[0]["error"], "ETIMEDOUT", "{side}");
        assert_eq!(lost[0]["conn"], k["conn"], "{side}");
    }
    // Both ends of the one connection carry the same number.
    assert_eq!(
        events(&t, "client", "connected")[0]["conn"],
        events(&t, "server", "connected")[0]["conn"]
    );
}

/// Runs a scenario written here; returns the output.
fn run_text(text: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, text).unwrap();
    run(&file, dir.path()).0
}

#[test]
fn a_program_that_is_missing_exits_at_once_or_never_listens_is_exit_2_with_its_output() {
    let head = "name = \"bad\"\nend = \"2s\"\nexpect = \"none\"\n";
    let out = run_text(&format!(
        "{head}[server]\ncommand = [\"flatline-no-such-program\"]\nport = 7000\n"
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        err.contains("could not start") && err.contains("is it installed"),
        "{err}"
    );

    let out = run_text(&format!(
        "{head}[server]\ncommand = [\"sh\", \"-c\", \"echo cannot bind >&2; exit 3\"]\nport = 7000\n"
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(
        err.contains("exited (exit status: 3)") && err.contains("cannot bind"),
        "{err}"
    );

    // Listens on the wrong port: never ready. The startup timeout bounds the wait.
    let start = std::time::Instant::now();
    let out = run_text(&format!(
        "{head}[server]\ncommand = [\"socat\", \"TCP-LISTEN:7001\", \"-\"]\nport = 7000\n"
    ));
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    assert!(err.contains("did not listen within"), "{err}");
    assert!(start.elapsed() < std::time::Duration::from_secs(15));
}
