//! Reports for CI: JUnit XML (one test case per expectation) and the Markdown table GitHub
//! Actions shows for a job (`$GITHUB_STEP_SUMMARY`). Pure functions over records, so `run`,
//! `report` and a merge of shards render the same thing from the same records.

use std::fmt::Write;
use std::time::Duration;

use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};

use crate::record::{Record, RunStatus, Status};

/// One run as the reports see it: its record and where the record was written.
pub struct Run<'a> {
    pub record: &'a Record,
    pub path: &'a str,
}

/// How long the run lasted: to its last event, or its planned end if nothing happened.
fn run_time(r: &Record) -> Duration {
    let last = r.events.iter().map(|e| e.t_ms).fold(0.0, f64::max);
    Duration::from_secs_f64(last.max(0.0) / 1000.0)
}

/// A run that did not complete fails as a whole, whatever its expectations say.
fn status_problem(r: &Record) -> Option<String> {
    match &r.status {
        RunStatus::Completed => None,
        RunStatus::Interrupted { signal } => Some(format!(
            "run interrupted by {signal}: the record ends there"
        )),
        RunStatus::Failed { reason } => Some(format!("run failed: {reason}")),
    }
}

fn suite(run: &Run) -> TestSuite {
    let r = run.record;
    let mut suite = TestSuite::new(r.scenario.name.as_str());
    suite.set_time(run_time(r));
    suite.add_property(("file", r.scenario.file.display().to_string().as_str()));
    suite.add_property(("record", run.path));
    suite.add_property(("kernel", r.environment.kernel.as_str()));
    let classname = format!("flatline.{}", r.scenario.name);
    if let Some(problem) = status_problem(r) {
        let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
        status.set_message(problem.as_str());
        let mut case = TestCase::new("run", status);
        case.set_classname(classname.as_str());
        suite.add_test_case(case);
    }
    for o in &r.verdict.expectations {
        let status = match o.status {
            Status::Passed => TestCaseStatus::success(),
            Status::Failed | Status::Pending => {
                let mut s = TestCaseStatus::non_success(NonSuccessKind::Failure);
                s.set_message(o.reason.as_str());
                s.set_type("expectation");
                s.set_description(format!("expected: {}\nactual: {}", o.expected, o.actual));
                s
            }
        };
        let mut case = TestCase::new(o.expected.as_str(), status);
        case.set_classname(classname.as_str());
        case.set_system_out(format!("actual: {}", o.actual));
        suite.add_test_case(case);
    }
    suite
}

/// JUnit XML for a set of runs: a test suite per run, a test case per expectation (named in
/// scenario syntax), a failure carrying the reason and the actual result in scenario syntax.
pub fn render(runs: &[Run]) -> String {
    let mut report = Report::new("flatline");
    report.set_time(
        runs.iter()
            .map(|r| run_time(r.record))
            .max()
            .unwrap_or_default(),
    );
    for run in runs {
        report.add_test_suite(suite(run));
    }
    report.to_string().expect("a JUnit report serializes")
}

/// Escapes text for a Markdown table cell.
fn cell(text: &str) -> String {
    text.replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace(['\n', '\r'], " ")
}

/// The Markdown summary GitHub Actions shows for a job: one row per expectation, and a count.
pub fn render_markdown(runs: &[Run]) -> String {
    let mut out =
        String::from("### flatline\n\n| | scenario | expectation | actual |\n|---|---|---|---|\n");
    let (mut passed, mut failed) = (0, 0);
    for run in runs {
        let r = run.record;
        let name = cell(&r.scenario.name);
        if let Some(problem) = status_problem(r) {
            failed += 1;
            let _ = writeln!(out, "| ❌ | {name} | {} | |", cell(&problem));
        }
        for o in &r.verdict.expectations {
            let mark = if o.passed { "✅" } else { "❌" };
            if o.passed {
                passed += 1;
            } else {
                failed += 1;
            }
            let _ = writeln!(
                out,
                "| {mark} | {name} | `{}` | {} |",
                cell(&o.expected),
                cell(&o.actual)
            );
        }
    }
    let _ = writeln!(out, "\n{passed} passed, {failed} failed\n");
    out
}

/// Appends the Markdown summary to the file `$GITHUB_STEP_SUMMARY` names, when it is set.
pub fn append_step_summary(runs: &[Run]) -> std::io::Result<()> {
    append_to_step_summary(&render_markdown(runs))
}

/// Appends `markdown` to the file `$GITHUB_STEP_SUMMARY` names, when it is set.
pub fn append_to_step_summary(markdown: &str) -> std::io::Result<()> {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY") else {
        return Ok(());
    };
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    f.write_all(markdown.as_bytes())
}

/// JUnit XML for a comparison: one test suite, a test case per cell and side, failed when the
/// measurement fell outside the predicted window, skipped when the cell was only predicted.
pub fn render_comparison(r: &crate::compare::Results) -> String {
    let mut report = Report::new("flatline");
    let mut suite = TestSuite::new(r.name.as_str());
    suite.set_time(Duration::from_secs_f64(r.wall_ms.max(0.0) / 1000.0));
    for c in &r.cells {
        for (side, s) in [("client", &c.client), ("server", &c.server)] {
            let measured = match (s.measured_ms, &s.error) {
                (Some(ms), Some(e)) => format!("detects = \"{ms:.1}ms\" error = \"{e}\""),
                (Some(ms), None) => format!("detects = \"{ms:.1}ms\""),
                (None, _) => "did not detect".to_owned(),
            };
            let status = match s.as_predicted {
                Some(true) => TestCaseStatus::success(),
                Some(false) => {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(format!("{measured}, predicted {}", s.predicted));
                    st.set_type("outside the predicted window");
                    st
                }
                None => {
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(format!("not run: predicted {}", s.predicted));
                    st
                }
            };
            let mut case = TestCase::new(format!("{side} detects {}", s.predicted), status);
            case.set_classname(format!("flatline.{}.{}.{}", r.name, c.fault, c.settings));
            if let Some(ms) = c.run_ms {
                case.set_time(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
            }
            // Against the control: a property CI tools can read, and the words in the output.
            let versus = match (&s.versus_control, &r.control) {
                (Some(v), Some(control)) => {
                    case.add_property(quick_junit::Property::new(
                        "flatline.versus-control",
                        v.text(),
                    ));
                    format!("\nagainst the control `{control}`: {}", v.text())
                }
                (None, Some(control)) if *control == c.settings => {
                    case.add_property(quick_junit::Property::new(
                        "flatline.versus-control",
                        "control",
                    ));
                    "\nthe control".to_owned()
                }
                _ => String::new(),
            };
            case.set_system_out(measured + &versus);
            suite.add_test_case(case);
        }
    }
    report.add_test_suite(suite);
    report.to_string().expect("a JUnit report serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(status: RunStatus) -> Record {
        crate::report::tests::record(status)
    }

    #[test]
    fn junit_has_a_case_per_expectation_and_failures_in_scenario_syntax() {
        let r = record(RunStatus::Completed);
        let xml = render(&[Run {
            record: &r,
            path: "results/t.json",
        }]);
        let doc = roxmltree::Document::parse(&xml).expect("JUnit parses as XML");
        let cases: Vec<_> = doc
            .descendants()
            .filter(|n| n.has_tag_name("testcase"))
            .collect();
        assert_eq!(cases.len(), r.verdict.expectations.len());
        for (case, o) in cases.iter().zip(&r.verdict.expectations) {
            assert_eq!(case.attribute("name"), Some(o.expected.as_str()));
            let failure = case.children().find(|n| n.has_tag_name("failure"));
            assert_eq!(failure.is_some(), !o.passed, "{}", o.expected);
            if let Some(f) = failure {
                assert_eq!(f.attribute("message"), Some(o.reason.as_str()));
                assert!(f.text().unwrap_or("").contains(&o.actual));
            }
        }
        let suites = doc.root_element();
        assert_eq!(suites.tag_name().name(), "testsuites");
        let failures: usize = suites.attribute("failures").unwrap().parse().unwrap();
        assert_eq!(
            failures,
            r.verdict.expectations.iter().filter(|o| !o.passed).count()
        );
        assert!(failures > 0, "the fixture has a failing expectation");
    }

    #[test]
    fn a_run_that_did_not_complete_is_an_error_case() {
        let r = record(RunStatus::Interrupted {
            signal: "SIGINT".into(),
        });
        let xml = render(&[Run {
            record: &r,
            path: "results/t.json",
        }]);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let error = doc
            .descendants()
            .find(|n| n.has_tag_name("error"))
            .expect("an error element");
        assert!(error.attribute("message").unwrap().contains("SIGINT"));
        let md = render_markdown(&[Run {
            record: &r,
            path: "x",
        }]);
        assert!(md.contains("run interrupted by SIGINT"), "{md}");
    }

    #[test]
    fn markdown_escapes_cells_and_counts() {
        let r = record(RunStatus::Completed);
        let md = render_markdown(&[Run {
            record: &r,
            path: "x",
        }]);
        let n = r.verdict.expectations.len();
        let failed = r.verdict.expectations.iter().filter(|o| !o.passed).count();
        assert!(md.contains(&format!("{} passed, {failed} failed", n - failed)));
        assert_eq!(md.lines().filter(|l| l.starts_with("| ")).count(), n + 1);
        assert_eq!(cell("a|b\nc"), "a\\|b c");
    }

    #[test]
    fn a_comparison_has_a_case_per_cell_and_side() {
        use crate::compare::{CellResult, Results, SideResult};
        let side = |as_predicted: Option<bool>| SideResult {
            measured_ms: as_predicted.map(|_| 3000.0),
            error: Some("ETIMEDOUT".into()),
            mechanism: None,
            predicted: "3s..4s".into(),
            predicted_ms: Some((3000.0, 4000.0)),
            predicted_error: None,
            as_predicted,
            versus_control: None,
        };
        let cell = |settings: &str, c: Option<bool>, s: Option<bool>| CellResult {
            fault: "cable-pull".into(),
            settings: settings.into(),
            ran: c.is_some(),
            client: side(c),
            server: side(s),
            run_ms: Some(5000.0),
            pool: None,
            record: None,
        };
        let r = Results {
            name: "m".into(),
            description: String::new(),
            control: None,
            cells: vec![cell("a", Some(true), Some(false)), cell("b", None, None)],
            wall_ms: 5100.0,
        };
        let xml = render_comparison(&r);
        let doc = roxmltree::Document::parse(&xml).unwrap();
        let count = |tag| doc.descendants().filter(|n| n.has_tag_name(tag)).count();
        assert_eq!(count("testcase"), 4, "{xml}");
        assert_eq!(count("failure"), 1, "{xml}");
        assert_eq!(count("skipped"), 2, "{xml}");
        let failed = doc
            .descendants()
            .find(|n| n.has_tag_name("failure"))
            .unwrap();
        assert_eq!(
            failed.parent().unwrap().attribute("classname"),
            Some("flatline.m.cable-pull.a")
        );
        assert!(failed
            .attribute("message")
            .unwrap()
            .contains("predicted 3s..4s"));
    }
}
