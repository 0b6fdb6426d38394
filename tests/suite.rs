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
    // Long runs (16-30 s ends): all are still going when every lab is up, even under load.
    let names = [
        "seed-cable-pull",
        "seed-firewall-drop",
        "interval-longer-than-idle",
        "keepalive-5s-3s-3",
        "nat-timeout-interval",
        "nat-timeout-survives",
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
        // Until every lab is up: two peers each.
        let deadline = Instant::now() + Duration::from_secs(15);
        let procs = loop {
            let procs = tagged(&tag);
            let peers = procs
                .iter()
                .filter(|p| p.cmdline.contains(" peer "))
                .count();
            if peers >= 2 * names.len() {
                break procs;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{sig}: only {peers} peers up after 15 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
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

/// Measured times (and the "outside the window" mark they decide) vary from run to run; the
/// rest of a table or summary must not. Directories become [dir].
fn masked(text: &str, dirs: &[&Path]) -> String {
    let mut text = text.to_owned();
    for d in dirs {
        text = text.replace(&d.display().to_string(), "[dir]");
    }
    // Padding varies with a time's digits ("    1.2 s", "   11.2 s"): it goes too.
    let times = regex::Regex::new(r" +-?[0-9]+\.[0-9]+ m?s( [A-Z]+)?( !)?").unwrap();
    times.replace_all(&text, " [t]$1").into_owned()
}

/// Two compare tables from separate runs agree, timings aside, and the measured error aside in
/// a cell either run flags "!" (outside its prediction) or whose prediction, the next column,
/// admits both runs' errors ("ETIMEDOUT or ENETUNREACH": a probe due at the fault's moment
/// races it): separate runs of the same cell can differ there as they differ in timing (a
/// cable pull once gave one run ENETUNREACH where the other, and the model, had ETIMEDOUT).
/// Everything else, cell by cell, is the same.
fn same_tables(a: &str, b: &str) {
    let (ma, mb) = (masked(a, &[]), masked(b, &[]));
    let (la, lb): (Vec<&str>, Vec<&str>) = (ma.lines().collect(), mb.lines().collect());
    assert_eq!(la.len(), lb.len(), "{ma}\n---\n{mb}");
    let (oa, ob): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    for i in 0..la.len() {
        if la[i] == lb[i] {
            continue;
        }
        let cells = |l: &str| l.split('|').map(str::to_owned).collect::<Vec<_>>();
        let (ca, cb, fa, fb) = (cells(la[i]), cells(lb[i]), cells(oa[i]), cells(ob[i]));
        assert_eq!(ca.len(), cb.len(), "{}\n{}", la[i], lb[i]);
        for j in 0..ca.len() {
            let measured = ca[j].trim().starts_with("[t]") && cb[j].trim().starts_with("[t]");
            let flagged = fa[j].contains(" !") || fb[j].contains(" !");
            let error = |c: &str| c.split_whitespace().nth(1).map(str::to_owned);
            let admitted = |c: &Option<String>| {
                c.as_ref().is_some_and(|e| {
                    ca.get(j + 1)
                        .is_some_and(|p| p.split_whitespace().any(|w| w == e))
                })
            };
            let either = admitted(&error(&ca[j])) && admitted(&error(&cb[j]));
            assert!(
                ca[j] == cb[j] || (measured && (flagged || either)),
                "cell {j} differs: {}\n{}",
                oa[i],
                ob[i]
            );
        }
    }
}

/// same_tables lets a measured error differ only where a run flags it or the prediction next
/// to it admits both; any other difference fails.
#[test]
fn same_tables_allows_only_an_error_the_prediction_admits() {
    let row = |m: &str, p: &str| {
        format!("| settings | client measured | client predicted |\n| 1s | {m} | {p} |\n")
    };
    let either = "2.99s..4.20s ETIMEDOUT or ENETUNREACH";
    same_tables(
        &row("4.10 s ETIMEDOUT", either),
        &row("3.02 s ENETUNREACH", either),
    );
    same_tables(
        &row("4.10 s ETIMEDOUT", "2.99s..4.20s ETIMEDOUT"),
        &row("9.10 s ENETUNREACH !", "2.99s..4.20s ETIMEDOUT"),
    );
    for (a, b) in [
        (
            row("4.10 s ETIMEDOUT", "2.99s..4.20s ETIMEDOUT"),
            row("3.02 s ENETUNREACH", "2.99s..4.20s ETIMEDOUT"),
        ),
        (
            row("4.10 s ETIMEDOUT", either),
            row("3.02 s ECONNRESET", either),
        ),
    ] {
        let differs = std::panic::catch_unwind(|| same_tables(&a, &b)).is_err();
        assert!(differs, "{a}{b}");
    }
}

/// Runs `flatline` with `args` in the background.
fn spawn(args: &[std::ffi::OsString]) -> std::process::Child {
    flatline()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn compare_shards_cover_every_cell_once_and_merge_into_the_unsharded_tables() {
    let dir = tempfile::tempdir().unwrap();
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/compare/bench-matrix.toml");
    let out = |name: &str| dir.path().join(name);
    // The two shards side by side (12 labs, as many as the whole matrix), then the whole
    // matrix: at most one matrix's labs at a time, next to the other lab tests.
    let runs = [
        ("all", None),
        ("shard-1", Some("hash:1/2")),
        ("shard-2", Some("hash:2/2")),
    ]
    .iter()
    .map(|(name, partition)| {
        let o = out(name);
        let mut args = vec![
            "compare".as_ref(),
            file.as_os_str(),
            "--out".as_ref(),
            o.as_os_str(),
            "--format".as_ref(),
            "markdown".as_ref(),
        ]
        .into_iter()
        .map(ToOwned::to_owned)
        .collect::<Vec<std::ffi::OsString>>();
        if let Some(p) = partition {
            args.extend(["--partition".into(), (*p).into()]);
        }
        args
    })
    .collect::<Vec<_>>();
    let shards: Vec<_> = runs.iter().skip(1).map(|args| spawn(args)).collect();
    let mut outputs: Vec<_> = shards
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    outputs.push(spawn(&runs[0]).wait_with_output().unwrap());
    for output in outputs {
        // 1 is a measurement outside its window: timing, which this test sets aside.
        assert!(
            matches!(output.status.code(), Some(0 | 1)),
            "{}",
            describe(&output)
        );
    }
    let cells = |name: &str| -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(out(name).join("bench-matrix"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("bench-matrix-")
            })
            .collect();
        v.sort();
        v
    };
    let name_of = |p: &PathBuf| p.file_name().unwrap().to_owned();
    let (all, one, two) = (cells("all"), cells("shard-1"), cells("shard-2"));
    let mut joined: Vec<_> = one.iter().chain(&two).map(name_of).collect();
    joined.sort();
    // Every cell in exactly one shard: together the names are the whole matrix's, no repeats.
    assert_eq!(joined, all.iter().map(name_of).collect::<Vec<_>>());
    assert!(!one.is_empty() && !two.is_empty(), "{one:?} {two:?}");

    let merged = out("merged");
    let output = flatline()
        .arg("merge")
        .arg("--compare")
        .arg(&file)
        .args(&one)
        .args(&two)
        .arg("--out")
        .arg(&merged)
        .args(["--format", "markdown"])
        .output()
        .unwrap();
    assert!(
        matches!(output.status.code(), Some(0 | 1)),
        "{}",
        describe(&output)
    );
    let table = |d: &Path| std::fs::read_to_string(d.join("bench-matrix/table.md")).unwrap();
    same_tables(&table(&merged), &table(&out("all")));
    same_tables(
        &String::from_utf8_lossy(&output.stdout),
        &table(&out("all")),
    );
    assert_eq!(
        cells("merged").iter().map(name_of).collect::<Vec<_>>(),
        all.iter().map(name_of).collect::<Vec<_>>()
    );

    // A missing shard, or one given twice, is an error that writes nothing.
    for (records, says) in [
        (one.clone(), "no record of cell"),
        (
            [one.clone(), one.clone(), two.clone()].concat(),
            "both records of cell",
        ),
    ] {
        let again = out("again");
        let output = flatline()
            .arg("merge")
            .arg("--compare")
            .arg(&file)
            .args(&records)
            .arg("--out")
            .arg(&again)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
        assert!(
            String::from_utf8_lossy(&output.stderr).contains(says),
            "{}",
            describe(&output)
        );
        assert!(!again.exists());
    }
}

#[test]
fn run_shards_merge_into_what_one_run_prints() {
    let dir = tempfile::tempdir().unwrap();
    let files = [
        scenario("graceful-exit.toml"),
        scenario("kill-unread-data.toml"),
        scenario("seed-process-kill.toml"),
    ];
    let out = |name: &str| dir.path().join(name);
    let runs: Vec<_> = [
        ("all", None),
        ("s1", Some("count:1/2")),
        ("s2", Some("count:2/2")),
    ]
    .iter()
    .map(|(name, partition)| {
        let mut cmd = flatline();
        cmd.arg("run").args(&files).arg("--out").arg(out(name));
        if let Some(p) = partition {
            cmd.args(["--partition", p]);
        }
        cmd.stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    })
    .collect();
    let outputs: Vec<_> = runs
        .into_iter()
        .map(|c| c.wait_with_output().unwrap())
        .collect();
    for o in &outputs {
        assert_eq!(o.status.code(), Some(0), "{}", describe(o));
    }
    // count:1/2 takes the 1st and 3rd file, count:2/2 the 2nd.
    assert_eq!(
        headlines(&outputs[1].stdout).last().unwrap(),
        "2 passed, 0 failed"
    );
    assert_eq!(
        headlines(&outputs[2].stdout).last().unwrap(),
        "1 passed, 0 failed"
    );
    let records: Vec<PathBuf> = ["s1", "s2"]
        .iter()
        .flat_map(|s| {
            std::fs::read_dir(out(s))
                .unwrap()
                .map(|e| e.unwrap().path())
        })
        .collect();
    assert_eq!(records.len(), 3, "{records:?}");
    let merged = out("merged");
    let output = flatline()
        .arg("merge")
        .args(&records)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    // The same summaries in the same order (the files' order), and the same count.
    assert_eq!(
        masked(&String::from_utf8_lossy(&output.stdout), &[&merged]),
        masked(&String::from_utf8_lossy(&outputs[0].stdout), &[&out("all")])
    );
    for f in ["graceful-exit", "kill-unread-data", "seed-process-kill"] {
        assert!(merged.join(format!("{f}.json")).exists(), "{f}");
    }
}

/// The value after `key:` on the first line that has one (`key: value` in YAML; a `key:`
/// opening a block is passed over). Lines, not a YAML parser: no YAML crate is in the offline
/// registry, and these files keep each setting on one line.
fn yaml_value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(&format!("{key}:")))
        .map(|v| v.trim().trim_matches('"'))
        .find(|v| !v.is_empty())
        .unwrap_or_else(|| panic!("no `{key}: value` line"))
}

/// Every shipped scenario's name.
fn shipped_names() -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| flatline::scenario::load(&p).unwrap().name)
        .collect();
    names.sort();
    names
}

/// Shards 1..=n, as the examples compute them, run every shipped scenario exactly once.
fn assert_shards_cover(shards: &[flatline::suite::Partition], n: u32) {
    let ks: Vec<u32> = shards.iter().map(|p| p.shard).collect();
    assert_eq!(ks, (1..=n).collect::<Vec<_>>());
    assert!(shards.iter().all(|p| p.of == n), "{shards:?}");
    for (i, name) in shipped_names().iter().enumerate() {
        let holders = shards.iter().filter(|p| p.keeps(i, name)).count();
        assert_eq!(holders, 1, "{name}");
    }
}

#[test]
fn the_github_actions_example_runs_every_shard_once() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/github-actions.yml"),
    )
    .unwrap();
    let n: u32 = yaml_value(&text, "SHARDS").parse().unwrap();
    let matrix: Vec<u32> = yaml_value(&text, "shard")
        .trim_matches(['[', ']'])
        .split(',')
        .map(|s| s.trim().parse().unwrap())
        .collect();
    // Both commands shard with the matrix's value over SHARDS.
    let flag = "--partition hash:${{ matrix.shard }}/${{ env.SHARDS }}";
    assert_eq!(text.matches(flag).count(), 2, "{flag}");
    let shards: Vec<flatline::suite::Partition> = matrix
        .iter()
        .map(|k| format!("hash:{k}/{n}").parse().unwrap())
        .collect();
    assert_shards_cover(&shards, n);
    // The merge reads what the shards wrote.
    assert!(text.contains("--out shard-${{ matrix.shard }}"));
    assert!(text.contains("flatline merge shard-*/*.json"));
}

#[test]
fn the_kubernetes_example_runs_every_shard_once() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/k8s-indexed-job.yaml"),
    )
    .unwrap();
    assert_eq!(yaml_value(&text, "completionMode"), "Indexed");
    let n: u32 = yaml_value(&text, "value").parse().unwrap(); // SHARDS
    assert_eq!(yaml_value(&text, "completions"), n.to_string());
    assert_eq!(yaml_value(&text, "parallelism"), n.to_string());
    // JOB_COMPLETION_INDEX runs 0..completions; the shard is one more.
    assert!(text.contains("K=$((JOB_COMPLETION_INDEX + 1))"));
    assert!(text.contains("--partition \"hash:$K/$SHARDS\""));
    let shards: Vec<flatline::suite::Partition> = (0..n)
        .map(|index| format!("hash:{}/{n}", index + 1).parse().unwrap())
        .collect();
    assert_shards_cover(&shards, n);
}

/// `flatline bench --suite`: the whole `flatline run` timed against its slowest scenario's
/// lab (from the records), with the ratio, the per-run line and bench-suite.json.
#[test]
fn bench_suite_times_the_run_against_its_slowest_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let output = flatline()
        .args(["bench", "--runs", "1", "--out"])
        .arg(dir.path())
        .arg("--suite")
        .arg(scenario("graceful-exit.toml"))
        .arg(scenario("seed-process-kill.toml"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("| suite of 2 scenarios, wall time (`flatline run`, default -j) | "),
        "{stdout}"
    );
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("bench-suite.json")).unwrap(),
    )
    .unwrap();
    let run = &report["runs"][0];
    assert_eq!(run["tally"], "2 passed, 0 failed", "{report}");
    let labs: Vec<f64> = run["scenarios_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s[1].as_f64().unwrap())
        .collect();
    let (wall, slowest) = (run["wall_ms"].as_f64().unwrap(), labs[0].max(labs[1]));
    // The lower bound proves the wall time covers the slowest lab inside the command; the upper
    // bound that the two ran at once (one after another takes the sum).
    assert!(
        wall >= slowest && wall < labs[0] + labs[1],
        "wall {wall:.0} ms, labs {labs:?}"
    );
    let ratio = report["figures"][0]["ratio"].as_f64().unwrap();
    assert!((ratio - wall / slowest).abs() < 1e-6, "{report}");
    assert!(stdout.contains("run 1: wall "), "{stdout}");
}
