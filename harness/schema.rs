//! JSON Schemas of what flatline writes, generated from the types themselves (schemars) and
//! shipped in `schema/`; a test keeps the shipped files equal to these.

use schemars::generate::SchemaSettings;

use crate::record::Record;

/// Which document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Of {
    /// The JSON record `flatline run` writes per scenario (`schema/record.schema.json`).
    Record,
}

impl Of {
    /// Where the schema is shipped, relative to the repository.
    pub fn shipped_path(self) -> &'static str {
        match self {
            Of::Record => "schema/record.schema.json",
        }
    }
}

/// The schema of a record as written: the serialized form of [`Record`].
pub fn record() -> schemars::Schema {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<Record>()
}

/// The schema as pretty JSON, as shipped.
pub fn text(of: Of) -> String {
    let schema = match of {
        Of::Record => record(),
    };
    serde_json::to_string_pretty(&schema).expect("schemas serialize") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn shipped(of: Of) -> String {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(of.shipped_path());
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    }

    #[test]
    fn the_shipped_schema_is_the_generated_one() {
        assert!(
            shipped(Of::Record) == text(Of::Record),
            "schema/record.schema.json is stale: run `cargo run -- schema record > schema/record.schema.json`"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// Every kind of event, every status: what the types write, the schema accepts.
        #[test]
        fn records_validate_against_the_schema(r in crate::record::tests::record()) {
            let schema = serde_json::to_value(record()).unwrap();
            let validator = jsonschema::validator_for(&schema).unwrap();
            let value = serde_json::to_value(&r).unwrap();
            let errors: Vec<String> = validator.iter_errors(&value).map(|e| e.to_string()).collect();
            prop_assert!(errors.is_empty(), "{errors:?}");
        }
    }

    #[test]
    fn the_schema_rejects_what_is_not_a_record() {
        let schema = serde_json::to_value(record()).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        let mut value: serde_json::Value = serde_json::from_str(&shipped_example()).unwrap();
        assert!(validator.is_valid(&value));
        value["events"][0]["kind"] = "lab-upp".into();
        assert!(!validator.is_valid(&value));
    }

    /// A small record, as a run writes it.
    fn shipped_example() -> String {
        let scenario = crate::scenario::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("scenarios/seed-process-kill.toml"),
        )
        .unwrap();
        let env = crate::record::Environment {
            kernel: "6.1".into(),
            flatline_version: "0.1.0".into(),
            run_date: "2026-11-28T17:45:52Z".into(),
            privileges: "root".into(),
        };
        let events = crate::analysis::tests::run_events();
        let r =
            crate::verdict::judge_run(scenario, env, crate::record::RunStatus::Completed, events);
        serde_json::to_string(&r).unwrap()
    }
}
