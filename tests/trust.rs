//! Trust tests: signals at any moment, restarts, the binary replaced mid-run, records written
//! whole, tools checked up front, and a seeded campaign of random kills.

use std::path::Path;
use std::process::{Child, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;

use crate::support::{describe, flatline, scenario};

/// A small seeded generator (xorshift64*): the seed is printed, so a failure can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn seeded(name: &str) -> Rng {
        let seed = std::env::var("FLATLINE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos() as u64
            });
        eprintln!("{name}: seed {seed} (replay with FLATLINE_SEED={seed})");
        Rng(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Starts `cmd` with SIGINT, SIGTERM and SIGHUP at their defaults, whatever this process
/// inherited (a test run from a script's `cmd &` has SIGINT ignored, and flatline rightly keeps
/// an inherited ignore), or with `ignored` ignored, as nohup does.
pub fn with_signals(cmd: &mut std::process::Command, ignored: &'static [libc::c_int]) {
    use std::os::unix::process::CommandExt;
    // SAFETY: signal(2) is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
                let how = if ignored.contains(&sig) {
                    libc::SIG_IGN
                } else {
                    libc::SIG_DFL
                };
                libc::signal(sig, how);
            }
            Ok(())
        });
    }
}

/// Waits for a child at most `limit`; None if it is still running (then it is killed).
pub fn wait_at_most(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The signal a status reports: an exit code 128 + N, or death by signal N.
pub fn signal_of(status: &ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status
        .signal()
        .or_else(|| status.code().filter(|c| *c > 128).map(|c| c - 128))
}

#[test]
fn a_signal_at_any_early_moment_stops_the_run() {
    // The window that lost signals: between the fork of the runner (PID 1 of its PID
    // namespace, which drops signals it has no handler for) and its handlers: 2-3 ms after
    // start here with the handlers installed first thing, up to the lab's setup (~10-50 ms)
    // before they were. Half the delays fall in 0..6 ms, half in 0..40 ms; a lost signal lets
    // the run go on to its end (~4.5 s) and exit 0.
    let mut rng = Rng::seeded("early signals");
    let dir = tempfile::tempdir().unwrap();
    for attempt in 0..40 {
        let sig = [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP][attempt % 3];
        let delay = Duration::from_micros(rng.below([6_000, 40_000][attempt % 2]));
        let mut cmd = flatline();
        with_signals(&mut cmd, &[]);
        let mut child = cmd
            .arg("run")
            .arg(scenario("seed-process-kill.toml"))
            .arg("--out")
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let status = wait_at_most(&mut child, Duration::from_secs(3)).unwrap_or_else(|| {
            panic!("attempt {attempt}: {sig} after {delay:?} was lost: the run went on")
        });
        assert_eq!(
            signal_of(&status),
            Some(sig as i32),
            "attempt {attempt}: {sig} after {delay:?}: {status:?}"
        );
    }
}

#[test]
fn sigterm_exits_143_and_sighup_129_with_a_record_that_says_so() {
    for (sig, code) in [(Signal::SIGTERM, 143), (Signal::SIGHUP, 129)] {
        let dir = tempfile::tempdir().unwrap();
        let tag = format!("sig-{}-{}", std::process::id(), sig.as_str());
        let mut cmd = flatline();
        with_signals(&mut cmd, &[]);
        let child = cmd
            .arg("run")
            .arg(scenario("seed-process-kill.toml"))
            .arg("--out")
            .arg(dir.path())
            .env("FLATLINE_TEST_TAG", &tag)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Once the lab is up (it has written a record ever since).
        wait_for_client(&tag);
        kill(Pid::from_raw(child.id() as i32), sig).unwrap();
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(code), "{}", describe(&output));
        let t = record(dir.path(), "seed-process-kill");
        assert_eq!(t["status"]["state"], "interrupted", "{}", t["status"]);
        assert_eq!(t["status"]["signal"], sig.as_str());
    }
}

#[test]
fn a_signal_ignored_at_start_stays_ignored() {
    // nohup: a hangup must not stop the run; SIGTERM still does.
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("nohup-{}", std::process::id());
    let mut cmd = flatline();
    with_signals(&mut cmd, &[libc::SIGHUP]);
    let child = cmd
        .arg("run")
        .arg(scenario("seed-process-kill.toml"))
        .arg("--out")
        .arg(dir.path())
        .env("FLATLINE_TEST_TAG", &tag)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(child.id() as i32);
    std::thread::sleep(Duration::from_millis(300));
    kill(pid, Signal::SIGHUP).unwrap();
    // SIGTERM once the lab is up, so the run writes the record that names it.
    wait_for_client(&tag);
    kill(pid, Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));
    assert_eq!(
        record(dir.path(), "seed-process-kill")["status"]["signal"],
        "SIGTERM"
    );
}

/// Waits until the run tagged `tag` has started its client peer: its lab is up, so a run
/// stopped from here on writes a record. (A fixed sleep bet the lab's setup on the machine's
/// load.)
fn wait_for_client(tag: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !tagged(tag).iter().any(|p| is_peer(&p.cmdline, "client")) {
        assert!(
            Instant::now() < deadline,
            "the run's client peer did not start within 20 s (or the run ended)"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The record `name` in `dir`, parsed.
fn record(dir: &Path, name: &str) -> Value {
    let path = dir.join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("no record {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A process-kill of the server, healed by a restart, with a client that retries every
/// millisecond: it reconnects the moment the restarted server listens.
const FAST_RESTART: &str = r#"
name = "fast-restart"
end = "6s"

[client]
reconnect_interval = "1ms"

[[fault]]
kind = "process-kill"
target = "server"
at = "1s"
heal = "2s"

[[expect]]
side = "client"
reconnects = "..1s"
"#;

fn events(t: &Value) -> &Vec<Value> {
    t["events"].as_array().expect("events")
}

/// The heal of a restart is stamped when the restarted server listens, so no reconnection can
/// precede it; returns the reconnect latency.
fn assert_heal_at_listen(t: &Value) -> f64 {
    let healed = events(t)
        .iter()
        .find(|e| e["kind"] == "fault-healed")
        .expect("healed");
    let heal_ms = healed["t_ms"].as_f64().unwrap();
    let listens: Vec<f64> = events(t)
        .iter()
        .filter(|e| e["kind"] == "listening")
        .map(|e| e["t_ms"].as_f64().unwrap())
        .collect();
    assert_eq!(listens.len(), 2, "the server listened twice: {listens:?}");
    assert_eq!(
        heal_ms, listens[1],
        "heal stamped at the restarted server's listen"
    );
    // (A client retrying every millisecond may "reconnect" to the dying server, whose listening
    // socket can outlive its connection by a moment: look after the restart only.)
    let back = events(t)
        .iter()
        .find(|e| e["kind"] == "reconnected" && e["t_ms"].as_f64().unwrap() >= listens[1])
        .expect("the client came back");
    let back_ms = back["t_ms"].as_f64().unwrap();
    assert!(
        back_ms >= heal_ms,
        "reconnected at {back_ms} before the heal at {heal_ms}"
    );
    t["summary"]["client"]["reconnect_ms"]
        .as_f64()
        .expect("reconnect measured, not never")
}

#[test]
fn a_restart_is_healed_when_the_server_listens_before_any_reconnect() {
    // Three at once, for load: each client retries every 1 ms, so under the old stamp (after
    // the spawn returned) a client could reconnect "before" the heal and read `never`.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("fast-restart.toml");
    std::fs::write(&file, FAST_RESTART).unwrap();
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let out = dir.path().join(format!("out-{i}"));
            let child = flatline()
                .arg("run")
                .arg(&file)
                .arg("--out")
                .arg(&out)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (child, out)
        })
        .collect();
    for (child, out) in runs {
        let output = child.wait_with_output().unwrap();
        assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
        let back = assert_heal_at_listen(&record(&out, "fast-restart"));
        // 1 ms retries: back within a few ms of the listen (timer slack under load).
        assert!(back < 200.0, "back after {back} ms");
    }
}

#[test]
fn replacing_the_binary_mid_run_changes_nothing() {
    // Peers are started from the running binary, not its path: a `cargo build` (or a delete)
    // between the start and the restart at heal must not matter.
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("flatline");
    crate::support::copy_flatline(&exe);
    let file = dir.path().join("fast-restart.toml");
    std::fs::write(&file, FAST_RESTART).unwrap();
    let out = dir.path().join("out");
    let child = std::process::Command::new(&exe)
        .arg("run")
        .arg(&file)
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The fault is at 1 s after the connection, the heal (a restart) at 2 s.
    std::thread::sleep(Duration::from_millis(500));
    std::fs::remove_file(&exe).unwrap();
    std::fs::write(&exe, "#!/bin/sh\necho 'not flatline' >&2\nexit 3\n").unwrap();
    std::fs::set_permissions(&exe, PermissionsExt::from_mode(0o755)).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    assert_heal_at_listen(&record(&out, "fast-restart"));
}

#[test]
fn a_missing_tool_is_found_before_the_lab_and_says_how_to_install_it() {
    // A PATH with everything the firewall-drop scenario needs but nft.
    let bin = tempfile::tempdir().unwrap();
    for tool in ["ip", "ss", "sh"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is installed"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    let out = tempfile::tempdir().unwrap();
    let start = Instant::now();
    let output = flatline()
        .arg("run")
        .arg(scenario("seed-firewall-drop.toml"))
        .arg("--out")
        .arg(out.path())
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("`nft`") && stderr.contains("apt-get install nftables"),
        "{stderr}"
    );
    // One line, not the embedded script.
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    // Found before any lab: nothing ran, nothing was written.
    assert!(start.elapsed() < Duration::from_secs(2));
    assert_eq!(std::fs::read_dir(out.path()).unwrap().count(), 0);
}

#[test]
fn an_unwritable_out_is_refused_before_any_lab() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "").unwrap();
    let output = flatline()
        .arg("run")
        .arg(scenario("seed-process-kill.toml"))
        .arg("--out")
        .arg(file.join("out"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("cannot write") && stderr.contains("a-file/out"),
        "{stderr}"
    );
    assert!(!stderr.contains("lab"), "{stderr}");
}

/// What the kill campaign does to one run.
#[derive(Clone, Copy, Debug)]
struct KillPlan {
    scenario: &'static str,
    /// Run as nobody through a user namespace (when the test runs as root).
    unprivileged: bool,
    target: Target,
    signal: Signal,
    delay: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    /// The process the user started.
    Watcher,
    /// PID 1 of the run's PID namespace.
    Runner,
    Server,
    Client,
}

/// What happened to one run.
#[derive(Debug)]
struct KillOutcome {
    plan: KillPlan,
    /// The target actually signalled (the watcher when the planned one did not exist yet).
    hit: Target,
    status: ExitStatus,
    /// The record's `status.state`, if a record was written.
    record: Option<String>,
    /// From the signal until no process or namespace of the run was left.
    cleanup: Duration,
    /// What was left behind or wrong (empty: nothing).
    problems: Vec<String>,
}

/// A process of a run, from /proc.
pub struct Proc {
    pub pid: i32,
    pub ppid: i32,
    pub cmdline: String,
}

/// The processes whose environment carries FLATLINE_TEST_TAG=`tag`.
pub fn tagged(tag: &str) -> Vec<Proc> {
    let needle = format!("FLATLINE_TEST_TAG={tag}");
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .map(|env| env.split(|&b| b == 0).any(|v| v == needle.as_bytes()))
                .unwrap_or(false)
        })
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // pid (comm) state ppid ...: comm may hold spaces, so split after the last ')'.
            let ppid = stat[stat.rfind(')')? + 2..]
                .split(' ')
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                .ok()?
                .split(|&b| b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ");
            Some(Proc { pid, ppid, cmdline })
        })
        .collect()
}

/// Network namespaces `pids` are in or hold open.
pub fn netns_held_by(pids: &[i32]) -> Vec<String> {
    let mut refs = Vec::new();
    for pid in pids {
        if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net")) {
            refs.push(ns.to_string_lossy().into_owned());
        }
        if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
            for fd in fds.flatten() {
                if let Ok(t) = std::fs::read_link(fd.path()) {
                    let t = t.to_string_lossy().into_owned();
                    if t.starts_with("net:[") {
                        refs.push(t);
                    }
                }
            }
        }
    }
    refs.sort();
    refs.dedup();
    refs
}

pub fn all_pids() -> std::collections::BTreeSet<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The network namespaces among `sampled` still referenced: by a process that already existed
/// when they were sampled (`old_pids`) and is not another flatline run, or by a mount. A
/// namespace's inode number is reused as soon as it is freed, so a process started since, or
/// another run (which holds only namespaces it made), holding the same number holds a new
/// namespace, not ours. (The run's own processes are checked by their tag.)
pub fn netns_still_held(
    sampled: &[String],
    old_pids: &std::collections::BTreeSet<i32>,
) -> Vec<String> {
    let other_run = |pid: &i32| {
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .and_then(|p| Some(p.file_name()?.to_string_lossy().starts_with("flatline")))
            .unwrap_or(false)
    };
    let pids: Vec<i32> = all_pids()
        .intersection(old_pids)
        .copied()
        .filter(|p| !other_run(p))
        .collect();
    let mut refs: std::collections::BTreeSet<String> = netns_held_by(&pids).into_iter().collect();
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    refs.extend(
        mounts
            .split_whitespace()
            .filter(|w| w.starts_with("net:["))
            .map(str::to_owned),
    );
    sampled
        .iter()
        .filter(|n| refs.contains(*n))
        .cloned()
        .collect()
}

/// The host namespace's links, addresses, routes, named namespaces and nftables rules.
pub fn host_network_state() -> String {
    let mut state = String::new();
    for args in [
        &["-o", "link"][..],
        &["-o", "addr"],
        &["route"],
        &["netns", "list"],
    ] {
        if let Ok(out) = std::process::Command::new("ip").args(args).output() {
            state += &String::from_utf8_lossy(&out.stdout);
        }
    }
    if let Ok(out) = std::process::Command::new("nft")
        .args(["list", "ruleset"])
        .output()
    {
        state += &String::from_utf8_lossy(&out.stdout);
    }
    state
}

/// Where an unprivileged run's binary and scenarios live: a directory nobody can read.
struct Shared {
    dir: tempfile::TempDir,
}

impl Shared {
    fn new() -> Shared {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
        crate::support::copy_flatline(&dir.path().join("flatline"));
        for name in ["seed-cable-pull.toml", "seed-firewall-drop.toml"] {
            std::fs::copy(scenario(name), dir.path().join(name)).unwrap();
            std::fs::set_permissions(dir.path().join(name), PermissionsExt::from_mode(0o644))
                .unwrap();
        }
        Shared { dir }
    }

    /// A fresh output directory nobody may write to.
    fn out(&self, n: usize) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let out = self.dir.path().join(format!("out-{n}"));
        std::fs::create_dir(&out).unwrap();
        std::fs::set_permissions(&out, PermissionsExt::from_mode(0o777)).unwrap();
        out
    }
}

/// Whether a command line is the reference peer of `side` (`flatline peer ... --plan
/// {"side":"server",...}`).
fn is_peer(cmdline: &str, side: &str) -> bool {
    cmdline.contains(" peer ")
        && (cmdline.contains(&format!("\"side\":\"{side}\""))
            || cmdline.contains(&format!(" peer {side}")))
}

fn kill_one(n: usize, plan: KillPlan, shared: &Shared) -> KillOutcome {
    let tag = format!("kill-{}-{n}", std::process::id());
    let out = shared.out(n);
    let mut cmd = if plan.unprivileged {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(shared.dir.path().join("flatline"))
            .arg("run")
            .arg(shared.dir.path().join(plan.scenario));
        c
    } else {
        let mut c = flatline();
        c.arg("run").arg(scenario(plan.scenario));
        c
    };
    with_signals(&mut cmd, &[]);
    let mut child = cmd
        .arg("--out")
        .arg(&out)
        .env("FLATLINE_TEST_TAG", &tag)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("flatline (and setpriv) start");
    let watcher = child.id() as i32;
    std::thread::sleep(plan.delay);
    let procs = tagged(&tag);
    let find = |t: Target| -> Option<i32> {
        procs
            .iter()
            .find(|p| match t {
                Target::Watcher => p.pid == watcher,
                Target::Runner => p.ppid == watcher,
                Target::Server => is_peer(&p.cmdline, "server"),
                Target::Client => is_peer(&p.cmdline, "client"),
            })
            .map(|p| p.pid)
    };
    let peers_up = find(Target::Server).is_some() && find(Target::Client).is_some();
    let (hit, pid) = match find(plan.target) {
        Some(pid) => (plan.target, pid),
        None => (Target::Watcher, watcher),
    };
    let pids: Vec<i32> = procs.iter().map(|p| p.pid).collect();
    let netns = netns_held_by(&pids);
    let old_pids = all_pids();
    let signalled = Instant::now();
    let _ = kill(Pid::from_raw(pid), plan.signal);
    let mut problems = Vec::new();
    let status = match wait_at_most(&mut child, Duration::from_secs(30)) {
        Some(s) => s,
        None => {
            problems.push("still running 30 s after the signal".into());
            child.wait().unwrap()
        }
    };
    // The kernel reaps a PID namespace asynchronously: give it a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let cleanup = loop {
        let left: Vec<i32> = tagged(&tag).iter().map(|p| p.pid).collect();
        // The host's own namespace is the test's too: it is checked for changes elsewhere.
        let host = std::fs::read_link("/proc/self/ns/net")
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ns_left: Vec<String> = netns_still_held(&netns, &old_pids)
            .into_iter()
            .filter(|n| *n != host)
            .collect();
        if left.is_empty() && ns_left.is_empty() {
            break signalled.elapsed();
        }
        if Instant::now() > deadline {
            problems.push(format!(
                "left behind: processes {left:?}, network namespaces {ns_left:?}"
            ));
            break signalled.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        problems.push("exited 0 although interrupted".into());
    }
    // A signal to the watcher or the runner ends the run with that signal's status; a peer
    // that dies unasked fails the run (exit 2).
    match hit {
        Target::Watcher | Target::Runner if signal_of(&status) != Some(plan.signal as i32) => {
            problems.push(format!("{status:?} after {}", plan.signal.as_str()))
        }
        Target::Server | Target::Client if status.code() != Some(2) => {
            problems.push(format!("{status:?} after the peer died"))
        }
        _ => {}
    }
    // Nothing half-written: every file is a whole record.
    let mut record = None;
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if name.ends_with(".json") && v["status"]["state"].is_string() => {
                record = v["status"]["state"].as_str().map(str::to_owned);
            }
            _ => problems.push(format!("not a whole record: {name} ({} bytes)", text.len())),
        }
    }
    // A run that got as far as the lab writes its record, unless its runner was SIGKILLed.
    let runner_killed =
        plan.signal == Signal::SIGKILL && matches!(hit, Target::Watcher | Target::Runner);
    if peers_up && !runner_killed {
        let want = match hit {
            Target::Watcher | Target::Runner => "interrupted",
            Target::Server | Target::Client => "failed",
        };
        if record.as_deref() != Some(want) {
            problems.push(format!(
                "record {record:?}, expected {want}: the lab was up"
            ));
        }
    }
    if !problems.is_empty() {
        let mut stderr = String::new();
        if let Some(mut e) = child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut stderr);
        }
        problems.push(format!("stderr: {}", stderr.trim()));
    }
    KillOutcome {
        plan,
        hit,
        status,
        record,
        cleanup,
        problems,
    }
}

/// Kills runs at random moments: KILL, TERM or INT to the process the user started, the
/// runner (PID 1 of its namespace) or a peer; root and unprivileged; several runs at once.
/// Asserts each interrupted run exits non-zero and leaves no process, namespace (and so no
/// link or nftables rule), half-written record or change to the host's network behind.
/// FLATLINE_KILL_RUNS sets how many (scripts/soak.sh runs 1,000); FLATLINE_SEED replays one.
#[test]
fn kill_campaign_leaves_nothing_behind() {
    let runs: usize = std::env::var("FLATLINE_KILL_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(36);
    let at_once: usize = std::env::var("FLATLINE_KILL_AT_ONCE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    let mut rng = Rng::seeded("kill campaign");
    let root = nix::unistd::geteuid().is_root();
    let plans: Vec<KillPlan> = (0..runs)
        .map(|_| {
            let scenario =
                ["seed-cable-pull.toml", "seed-firewall-drop.toml"][rng.below(2) as usize];
            let unprivileged = !root || rng.below(2) == 0;
            let target = [
                Target::Watcher,
                Target::Runner,
                Target::Server,
                Target::Client,
            ][rng.below(4) as usize];
            let signal = [Signal::SIGKILL, Signal::SIGTERM, Signal::SIGINT][rng.below(3) as usize];
            // Before, during and after the lab's setup (~50 ms), the peers' start and the
            // fault (2 s): a third within 50 ms, a third within 500 ms, a third within 3 s.
            let within = [50_000, 500_000, 3_000_000][rng.below(3) as usize];
            let delay = Duration::from_micros(rng.below(within));
            KillPlan {
                scenario,
                unprivileged,
                target,
                signal,
                delay,
            }
        })
        .collect();
    let host_before = host_network_state();
    let shared = Shared::new();
    let start = Instant::now();
    let mut outcomes: Vec<KillOutcome> = Vec::new();
    for (batch, chunk) in plans.chunks(at_once).enumerate() {
        let done: Vec<KillOutcome> = std::thread::scope(|s| {
            let handles: Vec<_> = chunk
                .iter()
                .enumerate()
                .map(|(i, plan)| {
                    let shared = &shared;
                    s.spawn(move || kill_one(batch * at_once + i, *plan, shared))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        outcomes.extend(done);
    }
    let host_after = host_network_state();
    // The figures, for the README.
    let mut by: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for o in &outcomes {
        let code = o.status.code().map_or_else(
            || format!("signal {}", signal_of(&o.status).unwrap_or(0)),
            |c| format!("exit {c}"),
        );
        *by.entry(format!(
            "{:?} {} -> {code}, record {}",
            o.hit,
            o.plan.signal.as_str(),
            o.record.as_deref().unwrap_or("none")
        ))
        .or_default() += 1;
    }
    let mut cleanups: Vec<f64> = outcomes
        .iter()
        .map(|o| o.cleanup.as_secs_f64() * 1000.0)
        .collect();
    cleanups.sort_by(f64::total_cmp);
    let failed: Vec<&KillOutcome> = outcomes.iter().filter(|o| !o.problems.is_empty()).collect();
    eprintln!(
        "kill campaign: {} runs ({} unprivileged) in {:.1} s, {at_once} at once; \
         {} with something left behind or wrong; cleanup after the signal: median {:.0} ms, \
         max {:.0} ms",
        outcomes.len(),
        outcomes.iter().filter(|o| o.plan.unprivileged).count(),
        start.elapsed().as_secs_f64(),
        failed.len(),
        cleanups.get(cleanups.len() / 2).copied().unwrap_or(0.0),
        cleanups.last().copied().unwrap_or(0.0),
    );
    for (what, n) in &by {
        eprintln!("  {n:4}  {what}");
    }
    // The campaign reached the peers (a third of runs plan one, most after they are up): if
    // none was found, finding them broke, and the campaign would test less than it says.
    if outcomes.len() >= 24 {
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o.hit, Target::Server | Target::Client)),
            "no peer was ever found to signal"
        );
    }
    assert!(
        failed.is_empty(),
        "{} of {} runs: {:#?}",
        failed.len(),
        outcomes.len(),
        failed
    );
    assert_eq!(host_before, host_after, "the host's network changed");
}

#[test]
fn a_full_disk_keeps_the_previous_record_and_leaves_no_half_written_one() {
    // A 64 KiB tmpfs, in a mount namespace of our own (unshare -rm: no root needed, nothing
    // mounted on the host), holding yesterday's record and filled to the last block.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("full");
    std::fs::create_dir(&out).unwrap();
    let script = format!(
        "set -u
         mount -t tmpfs -o size=64k tmpfs {out}
         printf '{{\"previous\": true}}\\n' > {out}/seed-process-kill.json
         dd if=/dev/zero of={out}/filler bs=4096 2>/dev/null || true
         {exe} run {scenario} --out {out}
         echo \"exit $?\"
         ls -a {out}
         cat {out}/seed-process-kill.json",
        out = out.display(),
        exe = env!("CARGO_BIN_EXE_flatline"),
        scenario = scenario("seed-process-kill.toml").display(),
    );
    let output = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .output()
        .expect("unshare (util-linux) runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("exit 2"), "{}", describe(&output));
    assert!(
        stderr.contains("cannot write") && stderr.contains("No space left on device"),
        "{stderr}"
    );
    let listing: Vec<&str> = stdout
        .lines()
        .skip_while(|l| !l.starts_with("exit"))
        .skip(1)
        .take_while(|l| !l.starts_with('{'))
        .collect();
    assert_eq!(
        listing,
        [".", "..", "filler", "seed-process-kill.json"],
        "{stdout}"
    );
    assert!(
        stdout.trim_end().ends_with("{\"previous\": true}"),
        "{stdout}"
    );
}

#[test]
fn a_fault_that_fails_mid_run_writes_a_failed_record_naming_it() {
    // An `nft` that refuses everything: found in PATH, so the run starts, and the injection
    // at 2 s fails.
    use std::os::unix::fs::PermissionsExt;
    let bin = tempfile::tempdir().unwrap();
    for tool in ["ip", "ss", "sh"] {
        let found = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|d| d.join(tool))
            .find(|p| p.exists())
            .unwrap_or_else(|| panic!("{tool} is installed"));
        std::os::unix::fs::symlink(found, bin.path().join(tool)).unwrap();
    }
    let nft = bin.path().join("nft");
    std::fs::write(
        &nft,
        "#!/bin/sh\necho 'nft: simulated refusal' >&2\nexit 1\n",
    )
    .unwrap();
    std::fs::set_permissions(&nft, PermissionsExt::from_mode(0o755)).unwrap();
    let out = tempfile::tempdir().unwrap();
    let output = flatline()
        .arg("run")
        .arg(scenario("seed-firewall-drop.toml"))
        .arg("--out")
        .arg(out.path())
        .env("PATH", bin.path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let t = record(out.path(), "seed-firewall-drop");
    assert_eq!(t["status"]["state"], "failed", "{}", t["status"]);
    let reason = t["status"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("inject fault `firewall-drop`") && reason.contains("simulated refusal"),
        "{reason}"
    );
    // The script as a user would run it, not its embedded text.
    assert!(reason.contains("scripts/fault/firewall.sh"), "{reason}");
    assert!(!reason.contains("nft -f"), "{reason}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("simulated refusal"), "{stderr}");
}

#[test]
fn an_interrupted_compare_exits_143_and_keeps_every_cell_s_record() {
    let dir = tempfile::tempdir().unwrap();
    let tag = format!("compare-{}", std::process::id());
    let mut cmd = flatline();
    with_signals(&mut cmd, &[]);
    let child = cmd
        .arg("compare")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/compare/compare-seed.toml"))
        .arg("--out")
        .arg(dir.path())
        .env("FLATLINE_TEST_TAG", &tag)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Once a cell's lab is up (its client peer started), so at least one record is written,
    // and a second for the others to come up; none can end before its fault at 2 s plus a
    // detection.
    wait_for_client(&tag);
    std::thread::sleep(Duration::from_secs(1));
    kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM).unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(143), "{}", describe(&output));
    let cells: Vec<_> = std::fs::read_dir(dir.path().join("compare-seed"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(!cells.is_empty());
    for cell in cells {
        let t: Value = serde_json::from_str(&std::fs::read_to_string(&cell).unwrap()).unwrap();
        assert_eq!(t["status"]["state"], "interrupted", "{}", cell.display());
        assert_eq!(t["status"]["signal"], "SIGTERM");
    }
}
