//! The library from a user's own `#[test]`: flatline::testing runs a scenario file and hands
//! back its record.

use flatline::testing::{Error, Runner};

use crate::support::scenario;

fn runner() -> Runner {
    Runner::with_binary(env!("CARGO_BIN_EXE_flatline"))
}

#[test]
fn a_test_runs_a_scenario_and_reads_its_record() {
    let record = runner()
        .run(&scenario("seed-process-kill.toml"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(record.status.is_completed(), "{:?}", record.status);
    assert!(flatline::report::passed(&record), "{:#?}", record.verdict);
    assert_eq!(record.scenario.name, "seed-process-kill");
}

#[test]
fn a_bad_scenario_is_reported_before_anything_runs() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "name = \"x\"\nend = \"-2s\"\nexpect = \"none\"\n").unwrap();
    // No binary is needed to find that out.
    let e = Runner::with_binary("/nonexistent/flatline")
        .run(&file)
        .unwrap_err();
    assert!(matches!(e, Error::Scenario(_)), "{e:?}");
    assert!(
        e.to_string()
            .ends_with("bad.toml:2:1: end: `-2s`: durations cannot be negative"),
        "{e}"
    );
    let e = Runner::with_binary("/nonexistent/flatline")
        .run(&scenario("seed-process-kill.toml"))
        .unwrap_err();
    assert!(matches!(e, Error::Spawn { .. }), "{e:?}");
}
