//! The HTML report as a browser sees it: real runs rendered, each page loaded in headless
//! Chromium, whose DOM dump carries what the page's own script counted in its SVG.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{describe, flatline, scenario};

/// The browser's DOM of `page` after load, and its log on stderr.
fn load_in_chromium(page: &Path, profile: &Path) -> (String, String) {
    let output = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-extensions",
            "--no-first-run",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", page.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run chromium ({e}): the HTML test needs a headless browser; \
                 install it with `apt-get install -y chromium` (.ci/run does)"
            )
        });
    assert!(output.status.success(), "chromium: {}", describe(&output));
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// What the page's script counted, from `<body data-check="...">` in the DOM dump.
fn check_of(dom: &str) -> Value {
    let start = dom
        .find("data-check=\"")
        .unwrap_or_else(|| panic!("the page's script did not run:\n{dom}"))
        + "data-check=\"".len();
    let end = start + dom[start..].find('"').unwrap();
    let json = dom[start..end]
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    serde_json::from_str(&json).unwrap()
}

fn no_page_errors(log: &str) {
    // A script error ("Uncaught ...") or something the page's Content-Security-Policy refused
    // (an external script, style, font or image) is logged by the browser.
    for line in log.lines() {
        assert!(
            !line.contains("Uncaught") && !line.contains("Refused to"),
            "the page logged an error: {line}\n{log}"
        );
    }
}

#[test]
fn pages_of_real_runs_load_in_a_browser_with_their_lanes_and_markers() {
    let dir = tempfile::tempdir().unwrap();
    let (out, html) = (dir.path().join("results"), dir.path().join("html"));
    let run = flatline()
        .arg("run")
        .arg(scenario("seed-process-kill.toml"))
        .arg(scenario("fleet/pool-server-host-dies.toml"))
        .arg("--out")
        .arg(&out)
        .arg("--html")
        .arg(&html)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", describe(&run));
    let profile = dir.path().join("chromium-profile");

    // One fault, both sides notice (EOF / reset): two detections, three lanes.
    let (dom, log) = load_in_chromium(&html.join("seed-process-kill.html"), &profile);
    no_page_errors(&log);
    let check = check_of(&dom);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!(check["timelines"], 1, "{check}");
    assert_eq!(
        check["lanes"],
        serde_json::json!(["client", "wire", "server"]),
        "{check}"
    );
    assert_eq!(check["faults"], 1, "{check}");
    let record: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seed-process-kill.json")).unwrap())
            .unwrap();
    let detected = ["client", "server"]
        .iter()
        .filter(|s| !record["summary"]["faults"][0][**s]["detection_ms"].is_null())
        .count();
    assert_eq!(check["detections"], detected, "{check}");
    assert_eq!(check["histograms"], 0, "{check}");

    // A pool of 100: a histogram of the client's detections, reconnections on the timeline.
    let (dom, log) = load_in_chromium(&html.join("fleet-pool-server-host-dies.html"), &profile);
    no_page_errors(&log);
    let check = check_of(&dom);
    assert!(check["histograms"].as_u64().unwrap() >= 1, "{check}");
    assert!(check["bars"].as_u64().unwrap() >= 1, "{check}");
    assert!(check["reconnects"].as_u64().unwrap() >= 100, "{check}");

    // The index links both pages.
    let (dom, log) = load_in_chromium(&html.join("index.html"), &profile);
    no_page_errors(&log);
    for page in ["seed-process-kill.html", "fleet-pool-server-host-dies.html"] {
        assert!(dom.contains(&format!("href=\"{page}\"")), "{dom}");
    }
    assert!(dom.contains("2 passed, 0 failed"), "{dom}");

    // `flatline report --html` renders the same pages from the saved records.
    let again = dir.path().join("again");
    let report = flatline()
        .arg("report")
        .arg(out.join("seed-process-kill.json"))
        .arg(out.join("fleet-pool-server-host-dies.json"))
        .arg("--html")
        .arg(&again)
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(0), "{}", describe(&report));
    for page in ["seed-process-kill.html", "index.html"] {
        let a = std::fs::read_to_string(html.join(page)).unwrap();
        let b = std::fs::read_to_string(again.join(page)).unwrap();
        // The summary names where the record was written: the same path both times.
        assert_eq!(a, b, "{page}");
    }
}
