//! The record is complete: `flatline report` judges saved records again and prints exactly what
//! `flatline run` printed, and real records match the shipped schema.

use crate::support::{assert_valid_record, describe, flatline, scenario};

#[test]
fn report_reproduces_the_summary_of_run_byte_for_byte() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("results");
    // One that passes and one that fails: EOF arrives within a millisecond, not after 5 s.
    let wrong = dir.path().join("wrong.toml");
    let text = std::fs::read_to_string(scenario("seed-process-kill.toml"))
        .unwrap()
        .replace(
            "name = \"seed-process-kill\"",
            "name = \"wrong-process-kill\"",
        )
        .replace("detects = \"..500ms\"", "detects = \"5s..6s\"");
    std::fs::write(&wrong, text).unwrap();
    let step_summary = dir.path().join("step-summary.md");
    let run = flatline()
        .arg("run")
        .arg(scenario("seed-process-kill.toml"))
        .arg(&wrong)
        .arg("--out")
        .arg(&out)
        .arg("--junit")
        .arg(dir.path().join("run.xml"))
        .env("GITHUB_STEP_SUMMARY", &step_summary)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    let junit = std::fs::read_to_string(dir.path().join("run.xml")).unwrap();
    check_junit(&junit);
    let md = std::fs::read_to_string(&step_summary).unwrap();
    assert!(
        md.contains("| ❌ | wrong-process-kill | `{ side = \"client\"")
            && md.contains("| ✅ | seed-process-kill |"),
        "{md}"
    );

    let records = [
        out.join("seed-process-kill.json"),
        out.join("wrong-process-kill.json"),
    ];
    for r in &records {
        let value = serde_json::from_str(&std::fs::read_to_string(r).unwrap()).unwrap();
        assert_valid_record(&value);
    }
    let report = flatline()
        .arg("report")
        .args(&records)
        .arg("--junit")
        .arg(dir.path().join("report.xml"))
        .env_remove("GITHUB_STEP_SUMMARY")
        .output()
        .unwrap();
    assert_eq!(report.status.code(), Some(1), "{}", describe(&report));
    assert_eq!(
        std::fs::read_to_string(dir.path().join("report.xml")).unwrap(),
        junit,
        "report's JUnit must be run's"
    );
    assert_eq!(
        String::from_utf8_lossy(&report.stdout),
        String::from_utf8_lossy(&run.stdout),
        "report must print what run printed"
    );
    assert!(
        report.stderr.is_empty(),
        "judged again, nothing may differ: {}",
        String::from_utf8_lossy(&report.stderr)
    );

    // Times vary from run to run; the shape of the summary must not. Measured times ("2.006 s",
    // "0.9 ms" with their padding, "\"0.402ms\"") become [t].
    let summary = String::from_utf8_lossy(&run.stdout)
        .replace(&dir.path().display().to_string(), "[dir]")
        .replace(env!("CARGO_MANIFEST_DIR"), "[repo]");
    let mut settings = insta::Settings::clone_current();
    settings.add_filter(r" +[0-9]+\.[0-9]+ m?s\b", " [t]");
    settings.add_filter(r#""[0-9][0-9.]*m?s""#, "\"[t]\"");
    settings.add_filter(r"after [0-9][0-9.]*m?s\b", "after [t]");
    settings.bind(|| insta::assert_snapshot!("run_summary", summary));
}

/// JUnit from the two runs above: a suite per scenario, a case per expectation, and exactly
/// the wrong window failing, in scenario syntax.
fn check_junit(xml: &str) {
    let doc = roxmltree::Document::parse(xml).expect("JUnit is XML");
    let suites: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("testsuite"))
        .collect();
    let names: Vec<_> = suites.iter().filter_map(|s| s.attribute("name")).collect();
    assert_eq!(names, ["seed-process-kill", "wrong-process-kill"], "{xml}");
    let failures: Vec<_> = doc
        .descendants()
        .filter(|n| n.has_tag_name("failure"))
        .map(|f| f.parent().unwrap().attribute("name").unwrap().to_owned())
        .collect();
    assert_eq!(failures.len(), 1, "{xml}");
    assert!(failures[0].contains("detects = \"5s..6s\""), "{xml}");
    for s in suites {
        let cases = s.children().filter(|n| n.has_tag_name("testcase")).count();
        assert!(cases >= 1, "{xml}");
        assert_eq!(s.attribute("tests"), Some(cases.to_string().as_str()));
    }
}
