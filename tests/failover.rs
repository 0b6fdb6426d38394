//! Failover, for real: the server's address moves to a standby host, or the old address goes
//! dark and the client finds the standby's new one. Windows from docs/physics.md (K1, K16):
//! the lower bound proves the fault took effect, the upper bound proves detection.

use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::{assert_valid_record, describe, flatline, scenario};

/// Timer slack: docs/physics.md measured +24..32 ms per 1 s timer; allow 100 ms per timer.
const SLACK_PER_TIMER_MS: f64 = 100.0;

/// Runs a shipped scenario, checks it passed and left nothing in its temporary directory;
/// returns its record.
fn run_passing(file: &Path) -> Value {
    run_as(file, false)
}

/// For a failed run: each server-side connection's events (kind, t_ms, error), one line per
/// connection, from the record in `out`, so that a connection that never detected can be told
/// apart (a fleet failover once left 4 and 12 of 100 "never" in clean CI runs).
fn server_events(out: &Path) -> String {
    let Some(record) = std::fs::read_dir(out).ok().and_then(|d| {
        d.flatten()
            .find(|e| e.path().extension().is_some_and(|x| x == "json"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
    }) else {
        return "no record".into();
    };
    let mut lines = std::collections::BTreeMap::<String, Vec<String>>::new();
    for e in record["events"].as_array().into_iter().flatten() {
        if e["source"] != "server" && e["source"] != "observer" {
            continue;
        }
        let conn = e
            .get("conn")
            .or_else(|| e.get("peer"))
            .map_or("-".into(), |c| c.to_string());
        lines.entry(conn).or_default().push(format!(
            "{}@{}{}",
            e["kind"].as_str().unwrap_or("?"),
            e["t_ms"].as_f64().unwrap_or(f64::NAN).round(),
            e["error"]
                .as_str()
                .map_or(String::new(), |x| format!(" {x}"))
        ));
    }
    lines
        .iter()
        .map(|(c, v)| format!("{c}: {}", v.join(", ")))
        .collect::<Vec<_>>()
        .join("\n")
}

/// As [`run_passing`]; `nobody`: as root, drop to nobody first, so the run goes through a
/// user namespace (the hosts file a child inherits must work there too).
fn run_as(file: &Path, nobody: bool) -> Value {
    use std::os::unix::fs::PermissionsExt;
    let out = tempfile::tempdir().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let nobody = nobody && nix::unistd::geteuid().is_root();
    let mut cmd = if nobody {
        for d in [out.path(), tmp.path()] {
            std::fs::set_permissions(d, PermissionsExt::from_mode(0o777)).unwrap();
        }
        let exe = out.path().join("flatline");
        crate::support::copy_flatline(&exe);
        let copy = out.path().join(file.file_name().unwrap());
        std::fs::copy(file, &copy).unwrap();
        std::fs::set_permissions(&copy, PermissionsExt::from_mode(0o644)).unwrap();
        let mut cmd = std::process::Command::new("setpriv");
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(&exe)
            .arg("run")
            .arg(&copy);
        cmd
    } else {
        let mut cmd = flatline();
        cmd.arg("run").arg(file);
        cmd
    };
    let output: Output = cmd
        .arg("--out")
        .arg(out.path())
        .env("TMPDIR", tmp.path())
        .output()
        .expect("flatline starts");
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}\n--- server events per connection\n{}",
        describe(&output),
        server_events(out.path())
    );
    let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().flatten().collect();
    assert!(left.is_empty(), "the run left {left:?} behind");
    // The record is named after the scenario's `name`.
    let table: toml::Table = std::fs::read_to_string(file).unwrap().parse().unwrap();
    let name = table["name"].as_str().unwrap();
    let text = std::fs::read_to_string(out.path().join(format!("{name}.json"))).unwrap();
    let t: Value = serde_json::from_str(&text).unwrap();
    assert_valid_record(&t);
    assert_eq!(t["status"]["state"], "completed");
    if nobody {
        assert_eq!(t["environment"]["privileges"], "user-namespace");
    }
    t
}

fn events(t: &Value) -> &Vec<Value> {
    t["events"].as_array().unwrap()
}

fn summary<'a>(t: &'a Value, side: &str) -> &'a Value {
    &t["summary"]["faults"][0][side]
}

/// A side's detection latency and error, asserted in `window` (ms).
fn assert_detects(
    t: &Value,
    side: &str,
    window: std::ops::RangeInclusive<f64>,
    error: &str,
) -> f64 {
    let s = summary(t, side);
    let ms = s["detection_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("{side} never detected the failover: {s}"));
    assert!(
        window.contains(&ms),
        "{side} detected after {ms} ms, expected {window:?}"
    );
    assert_eq!(s["error"], error, "{side}");
    ms
}

/// Idle keepalive I/V/N against silence: D - F in [N*V, I + N*V] plus slack (K1).
fn keepalive_window(idle: f64, interval: f64, count: f64) -> std::ops::RangeInclusive<f64> {
    count * interval * 1000.0 - 50.0
        ..=(idle + count * interval) * 1000.0 + (count + 1.0) * SLACK_PER_TIMER_MS
}

/// The client's first connection after the failover: when (after the failover), to which
/// address, and which host the record says accepted it; the standby's own event agrees.
fn client_back(t: &Value) -> (f64, String, String) {
    let back = summary(t, "client")["reconnect_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("the client never came back: {}", t["summary"]));
    let injected = t["summary"]["faults"][0]["injected_at_ms"]
        .as_f64()
        .unwrap();
    let e = events(t)
        .iter()
        .find(|e| {
            e["source"] == "client"
                && e["kind"] == "reconnected"
                && e["t_ms"].as_f64().unwrap() >= injected
        })
        .expect("a reconnected event");
    let host = e["host"].as_str().unwrap_or("none").to_owned();
    if host == "standby" {
        let accepted = events(t).iter().any(|s| {
            s["source"] == "standby" && s["kind"] == "connected" && s["conn"] == e["conn"]
        });
        assert!(
            accepted,
            "the standby did not report connection {}",
            e["conn"]
        );
    }
    (back, e["peer"].as_str().unwrap().to_owned(), host)
}

#[test]
fn an_idle_client_without_keepalive_never_notices_an_address_move() {
    let t = run_passing(&scenario("failover-idle-no-keepalive.toml"));
    // The Postgres LISTEN case: nothing is sent, nothing draws the standby's reset.
    let client = summary(&t, "client");
    assert!(client["detection_ms"].is_null(), "{client}");
    assert!(client["reconnect_ms"].is_null(), "{client}");
    // The lower bound proves the old server was cut off at the failover: its three probes
    // went unanswered (K1).
    assert_detects(&t, "server", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    // The standby was up and listening all along, and nobody came.
    assert!(events(&t)
        .iter()
        .any(|e| e["source"] == "standby" && e["kind"] == "listening"));
    assert!(!events(&t)
        .iter()
        .any(|e| e["source"] == "standby" && e["kind"] == "connected"));
}

#[test]
fn an_idle_client_with_keepalive_is_reset_by_the_standby_and_lands_on_it() {
    let t = run_passing(&scenario("failover-idle-keepalive.toml"));
    // K16: the next probe, within max(I, V) = 1 s, draws the standby's RST. ECONNRESET on an
    // idle connection is the proof: the cut-off server sends nothing.
    let d = assert_detects(
        &t,
        "client",
        0.0..=1000.0 + 2.0 * SLACK_PER_TIMER_MS,
        "ECONNRESET",
    );
    assert_detects(&t, "server", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    let (back, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.2.2:7000", "standby")
    );
    // Back after the reconnect pause (500 ms) following detection, plus a connect.
    assert!(
        (d + 450.0..=d + 500.0 + 500.0).contains(&back),
        "back {back} ms after the failover, detected at {d} ms"
    );
}

#[test]
fn a_busy_client_is_reset_at_its_next_record_and_the_cut_off_server_never_notices() {
    let t = run_passing(&scenario("failover-busy-client.toml"));
    // K16: the next record (every 100 ms), or a retransmission RTO_MIN later, draws RST.
    assert_detects(
        &t,
        "client",
        0.0..=100.0 + 200.0 + 2.0 * SLACK_PER_TIMER_MS,
        "ECONNRESET",
    );
    assert!(summary(&t, "server")["detection_ms"].is_null());
    let lost = events(&t)
        .iter()
        .find(|e| e["source"] == "client" && e["kind"] == "peer-lost")
        .unwrap();
    assert!(lost["records_sent"].as_u64().unwrap() > 10, "{lost}");
    let (_, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.2.2:7000", "standby")
    );
}

#[test]
fn a_dns_failover_through_the_hosts_file_sends_the_client_to_the_new_address() {
    let t = run_passing(&scenario("failover-dns-hosts-file.toml"));
    // The old address is dark: silence, K1 on both sides; the lower bound proves the drop.
    let d = assert_detects(&t, "client", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    assert_detects(&t, "server", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    let (back, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.3.2:7000", "standby")
    );
    assert!(
        (d + 450.0..=d + 500.0 + 500.0).contains(&back),
        "back {back} ms after the failover, detected at {d} ms"
    );
    let injected = events(&t)
        .iter()
        .find(|e| e["kind"] == "fault-injected")
        .unwrap();
    assert!(
        injected["mechanism"]
            .as_str()
            .unwrap()
            .contains("point server.flatline.test at 198.18.3.2"),
        "{injected}"
    );
}

#[test]
fn without_root_the_client_still_reads_the_hosts_file_it_inherited() {
    let t = run_as(&scenario("failover-dns-hosts-file.toml"), true);
    assert_detects(&t, "client", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    let (_, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.3.2:7000", "standby")
    );
}

#[test]
fn a_dns_failover_with_a_list_costs_the_dark_first_address_a_connect_timeout() {
    let t = run_passing(&scenario("failover-dns-list.toml"));
    let d = assert_detects(&t, "client", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    let (back, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.3.2:7000", "standby")
    );
    // The pause (500 ms), then the dark 198.18.2.2 for the whole connect timeout (1 s): the
    // lower bound proves the list was walked in order.
    assert!(
        (d + 1500.0 - 50.0..=d + 1500.0 + 500.0).contains(&back),
        "back {back} ms after the failover, detected at {d} ms"
    );
    let failed = events(&t)
        .iter()
        .filter(|e| e["source"] == "client" && e["kind"] == "connect-failed")
        .count();
    assert_eq!(
        failed, 0,
        "the list's second address answered within the same attempt"
    );
}

#[test]
fn a_python_client_follows_the_hosts_file_to_the_standby() {
    let t = run_passing(&scenario("blackbox/failover-dns-python.toml"));
    let d = assert_detects(&t, "client", keepalive_window(1.0, 1.0, 3.0), "ETIMEDOUT");
    let (back, peer, host) = client_back(&t);
    assert_eq!(
        (peer.as_str(), host.as_str()),
        ("198.18.3.2:7000", "standby")
    );
    // Its own 500 ms pause, a fresh look at the file, a connect (the program is running
    // already: no interpreter start-up in this).
    assert!(
        (d + 450.0..=d + 500.0 + 600.0).contains(&back),
        "back {back} ms after the failover, detected at {d} ms"
    );
}

#[test]
fn a_pool_is_reset_connection_by_connection_and_every_one_lands_on_the_standby() {
    let t = run_passing(&scenario("fleet/failover-pool.toml"));
    let pool = &summary(&t, "client")["pool"];
    assert_eq!(
        (&pool["connections"], &pool["detected"]),
        (&100.into(), &100.into()),
        "{pool}"
    );
    assert_eq!(pool["errors"]["ECONNRESET"], 100, "{pool}");
    // K16: each connection's next probe, within max(I, V) = 2 s, draws the standby's RST.
    let last = pool["detection"]["max_ms"].as_f64().unwrap();
    assert!(last <= 2000.0 + 2.0 * SLACK_PER_TIMER_MS, "{pool}");
    // Each back after its own 500 ms pause, plus a connect: within 2 s + 0.5 s + slack.
    let all_back = pool["all_back_ms"]
        .as_f64()
        .expect("every connection came back");
    assert!(all_back <= 2500.0 + 3.0 * SLACK_PER_TIMER_MS, "{pool}");
    let injected = t["summary"]["faults"][0]["injected_at_ms"]
        .as_f64()
        .unwrap();
    let on_standby = events(&t)
        .iter()
        .filter(|e| {
            e["source"] == "client"
                && e["kind"] == "reconnected"
                && e["t_ms"].as_f64().unwrap() >= injected
        })
        .inspect(|e| assert_eq!(e["host"], "standby", "{e}"))
        .count();
    assert_eq!(on_standby, 100);
    // The old server's 100 connections time out on the silence (K1, keepalive 2s/1s/3).
    let server = &summary(&t, "server")["pool"];
    assert_eq!(server["errors"]["ETIMEDOUT"], 100, "{server}");
    let first = server["detection"]["min_ms"].as_f64().unwrap();
    assert!(first >= 3000.0 - 50.0, "{server}");
}

/// A client connection to the standby that gets the port of one of the old server's
/// connections has that connection's four-tuple (the standby took the old address), while the
/// cut-off old server still holds it until its keepalive gives up. The record must keep the
/// two apart: the old server's loss belongs to its own connection. The client's ephemeral
/// range is narrowed to 128 ports, so at least 72 of the pool's 100 reconnects take a port of
/// the first 100. (In CI the ports came round by themselves: the kernel's port counter for a
/// destination is shared by every namespace, and other labs' connects to the same address
/// moved it; 4 and 12 of the old server's 100 connections were recorded "never".)
#[test]
fn a_pool_reconnecting_on_its_old_ports_keeps_the_old_servers_losses_apart() {
    let shipped = std::fs::read_to_string(scenario("fleet/failover-pool.toml")).unwrap();
    let text = shipped.replacen(
        "reconnect_interval = \"500ms\"\n",
        "reconnect_interval = \"500ms\"\nsysctl = { ip_local_port_range = \"40000 40127\" }\n",
        1,
    );
    assert_ne!(
        text, shipped,
        "the shipped pool's [client] changed: update this test"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("failover-pool-ports-reused.toml");
    std::fs::write(&file, text).unwrap();
    let t = run_passing(&file);
    let of = |source: &str, kind: &str| -> Vec<&Value> {
        events(&t)
            .iter()
            .filter(|e| e["source"] == source && e["kind"] == kind)
            .collect()
    };
    let ports = |kind: &str| -> std::collections::BTreeSet<String> {
        of("client", kind)
            .iter()
            .map(|e| e["local"].as_str().unwrap().to_owned())
            .collect()
    };
    let reused = ports("connected")
        .intersection(&ports("reconnected"))
        .count();
    assert!(reused >= 72, "only {reused} reconnects took an old port");
    let numbers = |source: &str, kind: &str| -> std::collections::BTreeSet<u64> {
        of(source, kind)
            .iter()
            .map(|e| e["conn"].as_u64().unwrap())
            .collect()
    };
    let old = numbers("server", "connected");
    assert_eq!(old.len(), 100);
    assert!(old.is_disjoint(&numbers("standby", "connected")));
    assert_eq!(numbers("server", "peer-lost"), old);
    let server = &summary(&t, "server")["pool"];
    assert_eq!(
        (&server["detected"], &server["never_detected"]),
        (&100.into(), &0.into()),
        "{server}"
    );
    assert_eq!(server["errors"]["ETIMEDOUT"], 100, "{server}");
    // Each reconnect pairs with the standby's end of it.
    for e in of("client", "reconnected") {
        assert_eq!(e["host"], "standby", "{e}");
    }
}

/// Validates a scenario through `flatline check`: exit 2 and the message.
fn rejected(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("s.toml");
    std::fs::write(&file, text).unwrap();
    let output = flatline().arg("check").arg(&file).output().unwrap();
    assert_eq!(output.status.code(), Some(2), "{}", describe(&output));
    let err = String::from_utf8_lossy(&output.stderr).into_owned();
    err.replace(&file.display().to_string(), "s.toml")
}

const BASE: &str = "name = \"s\"\nend = \"10s\"\n\n[[fault]]\nkind = \"failover\"\nat = \"2s\"\n";
const EXPECT: &str = "\n[[expect]]\nside = \"client\"\ndetects = \"never\"\n";

#[test]
fn bad_failover_settings_are_named_at_their_key() {
    let e = rejected(&format!("{BASE}heal = \"5s\"\n{EXPECT}"));
    assert!(
        e.contains("s.toml:7:1: fault[0].heal: a failover is not healed"),
        "{e}"
    );
    let e = rejected(&format!("{BASE}resolve = \"list\"\n{EXPECT}"));
    assert!(
        e.contains("s.toml:7:1: fault[0].resolve: only applies to mode = \"dns\""),
        "{e}"
    );
    let e = rejected(&format!("{BASE}mode = \"vip\"\n{EXPECT}"));
    assert!(
        e.contains("s.toml:7:1: fault[0].mode: unknown variant `vip`"),
        "{e}"
    );
    let e = rejected(&format!(
        "{BASE}mode = \"dns\"\nresolve = \"dig\"\n{EXPECT}"
    ));
    assert!(
        e.contains("s.toml:8:1: fault[0].resolve: unknown variant `dig`"),
        "{e}"
    );
    let twice = format!("{BASE}\n[[fault]]\nkind = \"failover\"\nat = \"3s\"\n{EXPECT}");
    let e = rejected(&twice);
    assert!(
        e.contains("s.toml:9:1: fault[1].kind: the lab has one standby host"),
        "{e}"
    );
    let program = format!("{BASE}\n[server]\ncommand = [\"socat\"]\nport = 7000\n{EXPECT}");
    let e = rejected(&program);
    assert!(
        e.contains("s.toml:5:1: fault[0].kind: the standby host runs flatline's reference server"),
        "{e}"
    );
}
