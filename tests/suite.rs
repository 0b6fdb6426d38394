//! `flatline run` on many scenarios: several labs at once, results in the order given, the
//! final count, selection (`--list`, `--filter`, `--fail-fast`), `flatline check`, and signals
//! with many labs live.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{describe, flatline, scenario};
use crate::trust::{
    all_pids, host_network_state, netns_held_by, netns_still_held, signal_of, tagged, wait_at_most,
    with_signals,
};

/// The lines of a run's output that start a scenario's summary, and the final count.
fn headlines(stdout: &[u8]) -> Vec<String> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter(|l| !l.starts_with(' '))
        .map(str::to_owned)
        .collect()
}

/// graceful-exit, but expecting the wrong error: it fails (exit 1) after its 8 s.
fn failing_scenario(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(scenario("graceful-exit.toml"))
        .unwrap()
        .replace("name = \"graceful-exit\"", "name = \"graceful-exit-wrong\"")
        .replace("error = \"EOF\"", "error = \"ECONNRESET\"");
    let file = dir.join("graceful-exit-wrong.toml");
    std::fs::write(&file, text).unwrap();
    file
}

#[test]
fn list_and_filter_select_without_a_lab() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    let output = flatline()
        .arg("run")
        .args(["--list", "--filter", "seed-"])
        .arg(scenario("graceful-exit.toml"))
        .arg(scenario("seed-process-kill.toml"))
        .arg(scenario("seed-cable-pull.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let names: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| l.split(' ').next().unwrap().to_owned())
        .collect();
    // In the order given, graceful-exit filtered out.
    assert_eq!(names, ["seed-process-kill", "seed-cable-pull"]);
    assert!(!out.exists(), "--list must not create {}", out.display());
}

#[test]
fn a_bad_jobs_count_is_refused() {
    let output = flatline()
        .args(["run", "-j", "0"])
        .arg(scenario("graceful-exit.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    assert!(String::from_utf8_lossy(&output.stderr).contains("-j"));
}

#[test]
fn check_validates_and_predicts_without_a_lab() {
    let output = flatline()
        .arg("check")
        .arg(scenario("seed-cable-pull.toml"))
        .arg(scenario("graceful-exit.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("ok seed-cable-pull"), "{stdout}");
    assert!(stdout.contains("ok graceful-exit"), "{stdout}");
    // The seed's cable pull is predicted (ETIMEDOUT after the keepalive probes).
    assert!(stdout.contains("ETIMEDOUT"), "{stdout}");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "name = \"x\"\nend = \"1s\"\n[client]\nkeepalive = { idle = \"0s\" }\n",
    )
    .unwrap();
    let output = flatline()
        .arg("check")
        .arg(scenario("graceful-exit.toml"))
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("bad.toml:4:15: client.keepalive.idle"),
        "{stderr}"
    );
}

#[test]
fn scenarios_run_at_once_and_report_in_the_order_given() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = failing_scenario(dir.path());
    let out = dir.path().join("results");
    let start = Instant::now();
    let output = flatline()
        .arg("run")
        .args(["-j", "3"])
        .arg(scenario("seed-process-kill.toml"))
        .arg(&wrong)
        .arg(scenario("kill-unread-data.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let wall = start.elapsed();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let lines = headlines(&output.stdout);
    assert_eq!(
        lines.len(),
        4,
        "a summary per scenario and the count: {}",
        describe(&output)
    );
    assert!(lines[0].starts_with("PASS seed-process-kill"), "{lines:?}");
    assert!(
        lines[1].starts_with("FAIL graceful-exit-wrong"),
        "{lines:?}"
    );
    assert!(lines[2].starts_with("PASS kill-unread-data"), "{lines:?}");
    assert_eq!(lines[3], "2 passed, 1 failed");
    // Each run's length, from the lab coming up to its teardown, as its record says.
    let runs: Vec<f64> = [
        "seed-process-kill",
        "graceful-exit-wrong",
        "kill-unread-data",
    ]
    .iter()
    .map(|name| {
        let path = out.join(format!("{name}.json"));
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        t["events"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["t_ms"].as_f64())
            .fold(0.0, f64::max)
    })
    .collect();
    let longest = runs.iter().copied().fold(0.0, f64::max);
    let others: f64 = runs.iter().sum::<f64>() - longest;
    let wall_ms = wall.as_secs_f64() * 1000.0;
    // The lower bound proves the longest ran to its end inside this command; the upper bound
    // that the runs overlapped: one after another is longest + others, and at least half of
    // the others' time must have been spent alongside the longest.
    assert!(
        wall_ms >= longest && wall_ms < longest + others / 2.0,
        "wall {wall_ms:.0} ms, runs {runs:?} ms"
    );
}

#[test]
fn fail_fast_starts_nothing_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = failing_scenario(dir.path());
    let out = dir.path().join("results");
    let output = flatline()
        .arg("run")
        .args(["-j", "1", "--fail-fast"])
        .arg(&wrong)
        .arg(scenario("kill-unread-data.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let lines = headlines(&output.stdout);
    assert_eq!(
        lines.last().map(String::as_str),
        Some("0 passed, 1 failed, 1 skipped"),
        "{}",
        describe(&output)
    );
    assert!(!out.join("kill-unread-data.json").exists());
}

/// SIGINT, SIGTERM and SIGHUP with several labs up: exit 128+N, every record says it was
/// interrupted, and no process, namespace or host network change is left behind.
#[test]
fn a_signal_with_many_labs_live_leaves_nothing_behind() {
    let names = [
        "seed-process-kill",
        "graceful-exit",
        "kill-unread-data",
        "seed-cable-pull",
        "seed-firewall-drop",
        "freeze-keepalive",
    ];
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        let host_before = host_network_state();
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("suite-{}-{}", std::process::id(), sig.as_str());
        let mut cmd = flatline();
        with_signals(&mut cmd, &[]);
        cmd.arg("run").args(["-j", "6"]);
        for n in names {
            cmd.arg(scenario(&format!("{n}.toml")));
        }
        let mut child = cmd
            .arg("--out")
            .arg(dir.path())
            .env("FLATLINE_TEST_TAG", &tag)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Every lab is up and connected well within 2 s; none ends before 8 s.
        std::thread::sleep(Duration::from_millis(2000));
        let procs = tagged(&tag);
        let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
        // Two peers per lab, all six labs live.
        let peers = procs
            .iter()
            .filter(|p| p.cmdline.contains(" peer "))
            .count();
        assert!(peers >= 2 * names.len(), "{sig}: {peers} peers live");
        let netns = netns_held_by(&pids);
        let old_pids = all_pids();
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{sig}: still running 30 s after the signal"));
        assert_eq!(signal_of(&status), Some(sig as i32), "{sig}: {status:?}");
        let host = std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        // The kernel reaps a PID namespace asynchronously: give it a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let left: Vec<i32> = tagged(&tag).iter().map(|p| p.pid).collect();
            let ns_left: Vec<String> = netns_still_held(&netns, &old_pids)
                .into_iter()
                .filter(|n| *n != host)
                .collect();
            if left.is_empty() && ns_left.is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{sig}: left behind: processes {left:?}, network namespaces {ns_left:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(host_network_state(), host_before, "{sig}");
        for n in names {
            let path = dir.path().join(format!("{n}.json"));
            let t: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{sig}: {}: {e}", path.display()));
            assert_eq!(t["status"]["state"], "interrupted", "{sig}: {n}");
            assert_eq!(t["status"]["signal"], sig.as_str(), "{sig}: {n}");
        }
    }
}
