//! Progress while labs run: shown on a terminal (a pseudo-terminal here, by util-linux's
//! `script`), quiet when stderr is not a terminal or under CI, and the results unchanged.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::{describe, flatline, scenario};

/// CI systems' variables: progress must be asked for by a terminal alone in these tests.
const CI_VARS: [&str; 6] = [
    "CI",
    "GITHUB_ACTIONS",
    "GITLAB_CI",
    "BUILDKITE",
    "JENKINS_URL",
    "TF_BUILD",
];

fn quoted(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// `flatline run FILE --out OUT` with stdin, stdout and stderr on a pseudo-terminal 120
/// columns wide (`script` is in Debian's essential bsdutils, so it is always there; a missing
/// one fails the test with the reason).
fn run_on_a_terminal(file: &Path, out: &Path, ci: Option<&str>) -> Output {
    let line = format!(
        "stty cols 120 rows 40; {} run {} --out {}",
        quoted(Path::new(env!("CARGO_BIN_EXE_flatline"))),
        quoted(file),
        quoted(out)
    );
    let mut cmd = Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"]);
    for v in CI_VARS {
        cmd.env_remove(v);
    }
    if let Some(value) = ci {
        cmd.env("CI", value);
    }
    cmd.env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot start `script` (util-linux) for a terminal: {e}"))
}

/// What the terminal shows, without its control sequences.
fn plain(bytes: &[u8]) -> String {
    let escapes = regex::Regex::new(r"\x1b\[[0-9;?]*[A-Za-z]").unwrap();
    escapes
        .replace_all(&String::from_utf8_lossy(bytes), "")
        .into_owned()
}

#[test]
fn a_terminal_shows_each_running_scenario_with_its_faults_and_detections() {
    let dir = tempfile::tempdir().unwrap();
    let output = run_on_a_terminal(&scenario("graceful-exit.toml"), dir.path(), None);
    let screen = plain(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{screen}");
    // A line of the scenario while it runs (elapsed against its 8 s end), and one after the
    // server's exit was injected and the client read EOF: the counts come from the lab.
    let running =
        regex::Regex::new(r"graceful-exit +\[[=> ]+\] \d+\.\d s / 8 s · faults 0 · detections 0")
            .unwrap();
    assert!(running.is_match(&screen), "no progress line: {screen}");
    let detected = regex::Regex::new(
        r"graceful-exit +\[[=> ]+\] (\d+\.\d s / 8 s|done in \d+\.\d s) · faults 1 · detections 1",
    )
    .unwrap();
    assert!(detected.is_match(&screen), "no detection counted: {screen}");
    assert!(screen.contains("1 running · 0 of 1 done"), "{screen}");
    // The results as without a terminal, the count last.
    assert!(screen.contains("PASS graceful-exit"), "{screen}");
    // The display is cleared (carriage returns and erased lines) before the count.
    let last = screen
        .split(['\n', '\r'])
        .map(str::trim)
        .rfind(|l| !l.is_empty());
    assert_eq!(last, Some("1 passed, 0 failed"), "{screen}");
}

#[test]
fn no_progress_without_a_terminal_or_under_ci() {
    let dir = tempfile::tempdir().unwrap();
    let (piped_out, ci_out) = (dir.path().join("piped"), dir.path().join("ci"));
    // Both at once: each is a few seconds of a lab.
    let mut piped = flatline();
    for v in CI_VARS {
        piped.env_remove(v);
    }
    let piped = piped
        .env("TERM", "xterm")
        .arg("run")
        .arg(scenario("graceful-exit.toml"))
        .arg("--out")
        .arg(&piped_out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let under_ci = run_on_a_terminal(&scenario("graceful-exit.toml"), &ci_out, Some("true"));
    let piped = piped.wait_with_output().unwrap();

    assert_eq!(piped.status.code(), Some(0), "{}", describe(&piped));
    assert!(
        piped.stderr.is_empty(),
        "stderr is not a terminal: nothing on it: {}",
        describe(&piped)
    );
    let stdout = String::from_utf8_lossy(&piped.stdout);
    assert!(stdout.starts_with("PASS graceful-exit"), "{stdout}");
    assert!(stdout.ends_with("1 passed, 0 failed\n"), "{stdout}");

    let screen = plain(&under_ci.stdout);
    assert_eq!(under_ci.status.code(), Some(0), "{screen}");
    for mark in ["detections", "running ·"] {
        assert!(!screen.contains(mark), "CI=true, yet `{mark}`: {screen}");
    }
    let raw = String::from_utf8_lossy(&under_ci.stdout);
    assert!(
        !raw.contains('\x1b'),
        "CI=true, yet control sequences: {raw:?}"
    );
    assert!(screen.contains("PASS graceful-exit"), "{screen}");
    assert!(screen.contains("1 passed, 0 failed"), "{screen}");
}
