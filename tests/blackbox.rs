//! Black-box lab tests: real programs from Debian packages in the lab, watched from outside.
//! Windows come from docs/physics.md, independently of the scenarios' own expectations; the lower
//! bound proves the fault took effect, the upper bound that the program noticed.

use serde_json::Value;

use crate::support::{describe, run, scenario};

/// Timer slack: docs/physics.md measured +24..32 ms per 1 s timer; allow 100 ms per timer.
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
    // On failure, the programs' events too: the record goes with the temporary directory.
    let observed = record.as_ref().map_or_else(String::new, |t| {
        t["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["source"] != "runner")
            .map(|e| format!("{e}\n"))
            .collect()
    });
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\nevents:\n{observed}",
        describe(&output)
    );
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
        // Idle keepalive I/V/N = 1/1/3: abort N*V..I+N*V after the drop (docs/physics.md, K1).
        let gave_up = events(&t, side, "kernel-gave-up");
        let k = gave_up
            .first()
            .unwrap_or_else(|| panic!("{side}: kernel never gave up"));
        assert_eq!(k["error"], "ETIMEDOUT", "{side}: {k}");
        assert_eq!(k["via"], expected_via(), "{side}: {k}");
        if expected_via() == "trace" {
            assert_eq!(k["reason"], "keepalive", "{side}: {k}");
            // The rootless mechanism, measured against the kernel's stamp in the same run:
            // one dump interval (2 ms) late, 50 ms on a loaded machine. The kernel unhashes
            // the socket a few microseconds before it reports the error: hence -1 ms.
            let lag = k["dump_lag_ms"]
                .as_f64()
                .unwrap_or_else(|| panic!("{side}: {k}"));
            assert!(
                (-1.0..50.0).contains(&lag),
                "{side}: a dump saw it {lag} ms late"
            );
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
        if expected_via() == "trace" {
            // Its read returned the kernel's error: after the abort, before the close.
            let saw = &events(&t, side, "program-saw-error")[0];
            assert_eq!(saw["error"], "ETIMEDOUT", "{side}");
            let at = saw["t_ms"].as_f64().unwrap();
            assert!(k["t_ms"].as_f64().unwrap() <= at && at <= c["t_ms"].as_f64().unwrap());
        }
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

fn healed_at(t: &Value) -> f64 {
    t["summary"]["faults"][0]["healed_at_ms"]
        .as_f64()
        .expect("the fault was healed")
}

#[test]
fn mosquitto_notices_a_silent_drop_by_its_own_keepalive_and_reconnects() {
    let t = run_passing("blackbox/mosquitto-drop.toml");
    let (fault, heal) = (fault_at(&t), healed_at(&t));
    for side in ["client", "server"] {
        // No TCP keepalive, no data in flight: no kernel gives up. Only MQTT notices.
        assert!(events(&t, side, "kernel-gave-up").is_empty(), "{side}");
        let seen = events(&t, side, "connection-observed");
        assert!(seen.iter().all(|c| c["keepalive_armed"] == false), "{side}");
    }
    // PINGREQ after 5 s idle, closed when unanswered 5 s later, checked once a second: the
    // close lies 5..10 s (+1 s) after the drop. The lower bound rules out anything but the
    // keepalive (TCP has no timer this short here); the upper bound proves it fired.
    let lost = &events(&t, "client", "peer-lost")[0];
    let after = lost["t_ms"].as_f64().unwrap() - fault;
    assert!(
        (4950.0..=11_100.0).contains(&after),
        "client closed {after} ms after the drop"
    );
    assert_eq!(lost["error"], "HEARTBEAT");
    // Its own reconnect logic: a new connection after the heal, within a few SYNs.
    let back = &events(&t, "client", "reconnected")[0];
    let back_after = back["t_ms"].as_f64().unwrap() - heal;
    assert!(
        (0.0..=4500.0).contains(&back_after),
        "back {back_after} ms after the heal"
    );
    assert_ne!(back["conn"], lost["conn"]);
    // And it says so: its `back` line, after the heal.
    let lines = events(&t, "client", "program-output");
    assert!(
        lines
            .iter()
            .any(|l| l["matched"] == "back" && l["t_ms"].as_f64().unwrap() >= heal),
        "no `back` line after the heal"
    );
}

#[test]
fn mosquitto_reads_eof_when_the_broker_dies_and_comes_back_after_its_restart() {
    let t = run_passing("blackbox/mosquitto-broker-restart.toml");
    let (fault, heal) = (fault_at(&t), healed_at(&t));
    // The broker's kernel sends FIN as the process dies: the client's kernel has it at once,
    // and the program closes (docs/physics.md: ~1 ms; 100 ms allows for a loaded machine).
    let fin = &events(&t, "client", "fin-received")[0];
    let fin_after = fin["t_ms"].as_f64().unwrap() - fault;
    assert!(
        (0.0..100.0).contains(&fin_after),
        "FIN {fin_after} ms after the kill"
    );
    let lost = &events(&t, "client", "peer-lost")[0];
    assert_eq!(lost["error"], "EOF");
    let delay = lost["t_ms"].as_f64().unwrap() - fin["t_ms"].as_f64().unwrap();
    assert!(
        (0.0..100.0).contains(&delay),
        "closed {delay} ms after the FIN"
    );
    // The broker was killed: its closes are its death, not a detection.
    assert!(events(&t, "server", "peer-lost").is_empty());
    // While nothing listens, libmosquitto retries (refused at once), then is back within a
    // retry interval (1 s) of the restart, plus start-up.
    let attempts: Vec<&Value> = events(&t, "client", "reconnect-attempt");
    assert!(!attempts.is_empty(), "no reconnect attempts seen");
    let back = &events(&t, "client", "reconnected")[0];
    let back_after = back["t_ms"].as_f64().unwrap() - heal;
    assert!(
        (0.0..=2000.0).contains(&back_after),
        "back {back_after} ms after the restart"
    );
}

/// Without root there is no trace: the observer sees the abort in sock_diag dumps, names its
/// cause from the namespace's TCPAbortOnTimeout counter, and still reads socat's options. As
/// root the test drops to nobody, so the run goes through a user namespace.
#[test]
fn without_root_dumps_see_the_abort_and_its_cause() {
    let dir = tempfile::tempdir().unwrap();
    let name = "socat-keepalive-drop";
    let output = if nix::unistd::geteuid().is_root() {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), PermissionsExt::from_mode(0o777)).unwrap();
        let exe = dir.path().join("flatline");
        crate::support::copy_flatline(&exe);
        let file = dir.path().join(format!("{name}.toml"));
        std::fs::copy(scenario(&format!("blackbox/{name}.toml")), &file).unwrap();
        std::fs::set_permissions(&file, PermissionsExt::from_mode(0o644)).unwrap();
        std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .arg("run")
            .arg(&file)
            .arg("--out")
            .arg(dir.path())
            .output()
            .expect("setpriv (util-linux) runs")
    } else {
        run(&scenario(&format!("blackbox/{name}.toml")), dir.path()).0
    };
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let t: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join(format!("{name}.json"))).unwrap(),
    )
    .unwrap();
    assert_eq!(t["environment"]["privileges"], "user-namespace");
    let fault = fault_at(&t);
    for side in ["client", "server"] {
        let up = events(&t, "observer", "observer-up");
        assert!(up.iter().all(|o| o["via"] == "dump"), "{up:?}");
        let k = &events(&t, side, "kernel-gave-up")[0];
        assert_eq!(
            (&k["via"], &k["error"], &k["reason"]),
            (&"dump".into(), &"ETIMEDOUT".into(), &"keepalive".into()),
            "{side}: {k}"
        );
        // The same physics window as with the trace (1/1/3), plus one dump interval.
        let after = k["t_ms"].as_f64().unwrap() - fault;
        let window = 3000.0 - 50.0..=4000.0 + 4.0 * SLACK_PER_TIMER_MS + 10.0;
        assert!(
            window.contains(&after),
            "{side}: seen {after} ms after the drop"
        );
        let options = &events(&t, side, "connection-observed")[0]["options"];
        assert_eq!(options["count"], 3, "{side}: {options}");
    }
}

#[test]
fn a_program_that_never_reads_holds_a_connection_its_kernel_gave_up() {
    let dir = tempfile::tempdir().unwrap();
    let (output, record) = run(&scenario("blackbox/never-closes.toml"), dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let t = record.expect("a record was written");
    let fault = fault_at(&t);
    // Keepalive 1/1/3 on the program's socket: the kernel aborts N*V..I+N*V after the drop.
    let k = &events(&t, "client", "kernel-gave-up")[0];
    assert_eq!(k["error"], "ETIMEDOUT", "{k}");
    let after = k["t_ms"].as_f64().unwrap() - fault;
    let window = 3000.0 - 50.0..=4000.0 + 4.0 * SLACK_PER_TIMER_MS;
    assert!(
        window.contains(&after),
        "kernel gave up {after} ms after the drop"
    );
    // The program holds on: no close, no loss noticed, and the finding says so.
    assert!(events(&t, "client", "program-closed").is_empty());
    assert!(events(&t, "client", "peer-lost").is_empty());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("the client program never closed the dead connection"),
        "{stdout}"
    );
}

/// Whether a process runs (a zombie does not).
fn alive(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        !s.rsplit_once(')')
            .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
    })
}

/// SIGKILL to flatline mid-run: the programs go with the lab's PID namespace, and the tracefs
/// instance the dead run left (as root) is removed by the next run.
#[test]
fn a_killed_run_leaves_no_program_and_its_trace_is_swept_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    // The broker's command line names this directory: its processes are findable as ours.
    for f in ["mosquitto-broker-restart.toml", "mosquitto.conf"] {
        std::fs::copy(scenario(&format!("blackbox/{f}")), dir.path().join(f)).unwrap();
    }
    let mut child = crate::support::flatline()
        .arg("run")
        .arg(dir.path().join("mosquitto-broker-restart.toml"))
        .arg("--out")
        .arg(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let marker = dir.path().to_string_lossy().into_owned();
    let ours = || -> Vec<String> {
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&marker) && c.contains("mosquitto "))
            .collect()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while ours().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !ours().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "left behind: {:?}",
            ours()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // The next run sweeps the instance of every run that died.
    let _ = run_passing("blackbox/mosquitto-broker-restart.toml");
    if nix::unistd::geteuid().is_root() {
        let dead: Vec<String> = std::thread::spawn(|| {
            nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
            nix::mount::mount(
                None::<&str>,
                "/",
                None::<&str>,
                nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_PRIVATE,
                None::<&str>,
            )
            .unwrap();
            let root = std::path::Path::new("/sys/kernel/tracing");
            if !root.join("instances").is_dir() {
                nix::mount::mount(
                    Some("nodev"),
                    root,
                    Some("tracefs"),
                    nix::mount::MsFlags::empty(),
                    None::<&str>,
                )
                .unwrap();
            }
            std::fs::read_dir(root.join("instances"))
                .unwrap()
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| flatline::tracefs::owner_of(n).is_some_and(|pid| !alive(pid)))
                .collect()
        })
        .join()
        .unwrap();
        assert!(dead.is_empty(), "instances of dead runs: {dead:?}");
    }
}

/// A Python client holding a pool of 50 connections (scenarios/blackbox/pool.py): the observer
/// numbers each connection, and the record has the same pool summary and storm as flatline's
/// own pooled client.
#[test]
fn a_programs_pool_gets_per_connection_events_and_the_pool_summary() {
    let dir = tempfile::tempdir().unwrap();
    let (output, record) = run(&scenario("blackbox/python-pool-drop.toml"), dir.path());
    assert_eq!(output.status.code(), Some(0), "{}", describe(&output));
    let t = record.expect("a record was written");
    let fault = fault_at(&t);
    let healed = t["summary"]["faults"][0]["healed_at_ms"]
        .as_f64()
        .expect("the drop was healed");
    // The pool opens with 50 connections (not reconnections) and replaces each one it lost.
    assert_eq!(events(&t, "client", "connected").len(), 50);
    let gave_up = events(&t, "client", "kernel-gave-up");
    let conns: std::collections::BTreeSet<u64> = gave_up
        .iter()
        .map(|k| k["conn"].as_u64().unwrap())
        .collect();
    assert_eq!(conns.len(), 50, "one abort per connection: {gave_up:?}");
    let lost = events(&t, "client", "peer-lost");
    assert_eq!(lost.len(), 50);
    for k in &gave_up {
        // Keepalive 1/1/3 on each socket: abort N*V..I+N*V after the drop (docs/physics.md,
        // K1); the lower bound proves the drop took effect.
        let after = k["t_ms"].as_f64().unwrap() - fault;
        let window = 3000.0 - 50.0..=4000.0 + 4.0 * SLACK_PER_TIMER_MS + 10.0;
        assert!(window.contains(&after), "{k}: {after} ms after the drop");
        assert_eq!(k["error"], "ETIMEDOUT", "{k}");
        // The program waits in select(): it reads the error and closes at once; the notice
        // names the same connection. All 50 abort in the same tick and one Python loop handles
        // them in turn: the last notice came 53-59 ms after its abort on the loaded 2-core
        // machine (twice in session 6), so 250 ms.
        let noticed = lost
            .iter()
            .find(|l| l["conn"] == k["conn"])
            .unwrap_or_else(|| panic!("{k}: never noticed"));
        assert_eq!(noticed["error"], "ETIMEDOUT", "{noticed}");
        let delay = noticed["t_ms"].as_f64().unwrap() - k["t_ms"].as_f64().unwrap();
        assert!((0.0..250.0).contains(&delay), "{noticed}: {delay} ms");
    }
    let back = events(&t, "client", "reconnected");
    assert_eq!(back.len(), 50, "{back:?}");
    let fault_summary = &t["summary"]["faults"][0];
    let pool = &fault_summary["client"]["pool"];
    assert_eq!(
        (
            &pool["connections"],
            &pool["detected"],
            &pool["never_detected"]
        ),
        (&50.into(), &50.into(), &0.into()),
        "{pool}"
    );
    assert_eq!(pool["errors"]["ETIMEDOUT"], 50, "{pool}");
    // Attempts time out while the drop lasts (their SYNs vanish): nobody is back before the
    // heal; an attempt under way at the heal is given up 800 ms later and the next, 500 ms
    // after that, gets through: every connection is back within 1.3 s plus slack.
    assert_eq!(pool["reconnected"], 50, "{pool}");
    let min = pool["reconnect"]["min_ms"].as_f64().unwrap();
    let all = pool["all_back_ms"].as_f64().expect("all back");
    assert!(min >= -5.0, "{pool}");
    assert!(all <= 1300.0 + 2.0 * SLACK_PER_TIMER_MS, "{pool}");
    for b in &back {
        assert!(b["t_ms"].as_f64().unwrap() >= healed - 5.0, "{b}");
    }
    // The reference server's side of the same 50 connections, and the storm.
    let server = &fault_summary["server"]["pool"];
    assert_eq!(server["detected"], 50, "{server}");
    // The program stopped at the end of the run closes its connections: the server's EOFs
    // then are not the storm's collateral damage.
    assert!(
        server["collateral"]
            .as_object()
            .is_none_or(|m| m.is_empty()),
        "{server}"
    );
    let storm = &fault_summary["storm"];
    assert!(storm["attempts"].as_u64().unwrap() >= 50, "{storm}");
    assert_eq!(storm["listen_overflows"], 0, "{storm}");
    // One finding for the pool, not fifty.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.matches("finding:").count(), 1, "{stdout}");
    assert!(
        stdout.contains("the client noticed each of 50 dead connections"),
        "{stdout}"
    );
}
