//! JSON Schemas of what flatline writes, generated from the types themselves (schemars) and
//! shipped in `schema/`; a test keeps the shipped files equal to these.

use schemars::generate::SchemaSettings;
use schemars::transform::RecursiveTransform;

use crate::record::Record;

/// Which document.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Of {
    /// The JSON record `flatline run` writes per scenario (`schema/record.schema.json`).
    Record,
    /// A scenario file, its TOML read as the same structure (`schema/scenario.schema.json`).
    Scenario,
}

impl Of {
    /// Where the schema is shipped, relative to the repository.
    pub fn shipped_path(self) -> &'static str {
        match self {
            Of::Record => "schema/record.schema.json",
            Of::Scenario => "schema/scenario.schema.json",
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

/// The schema of a scenario file: what it may contain (the checks that need more than one key
/// at a time, like a window's order, are the parser's).
pub fn scenario() -> schemars::Schema {
    let settings = SchemaSettings::draft2020_12()
        .for_deserialize()
        .with_transform(RecursiveTransform(no_null));
    crate::scenario::file_schema(settings)
}

/// TOML has no null: an optional key is simply left out.
fn no_null(schema: &mut schemars::Schema) {
    if schema.get("default") == Some(&serde_json::Value::Null) {
        schema.remove("default");
    }
    let null = serde_json::json!({ "type": "null" });
    if let Some(serde_json::Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if let [one] = &types[..] {
            let one = one.clone();
            schema.insert("type".into(), one);
        }
    }
    let Some(serde_json::Value::Array(any)) = schema.get_mut("anyOf") else {
        return;
    };
    any.retain(|s| *s != null);
    if let [one] = &any[..] {
        let one = one.clone();
        schema.remove("anyOf");
        if let serde_json::Value::Object(inner) = one {
            for (k, v) in inner {
                schema.insert(k, v);
            }
        }
    }
}

/// The schema as pretty JSON, as shipped.
pub fn text(of: Of) -> String {
    let schema = match of {
        Of::Record => record(),
        Of::Scenario => scenario(),
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
    fn the_shipped_schemas_are_the_generated_ones() {
        for (of, name) in [(Of::Record, "record"), (Of::Scenario, "scenario")] {
            assert!(
                shipped(of) == text(of),
                "{} is stale: run `cargo run -- schema {name} > {}`",
                of.shipped_path(),
                of.shipped_path()
            );
        }
    }

    /// Every scenario file under `dir`, recursively (comparison files are another format).
    fn scenario_files(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() && !path.ends_with("compare") {
                scenario_files(&path, out);
            } else if path.extension().is_some_and(|e| e == "toml") {
                out.push(path);
            }
        }
    }

    fn scenario_validator() -> jsonschema::Validator {
        jsonschema::validator_for(&serde_json::to_value(scenario()).unwrap()).unwrap()
    }

    fn as_json(toml_text: &str) -> serde_json::Value {
        serde_json::to_value(toml_text.parse::<toml::Table>().unwrap()).unwrap()
    }

    #[test]
    fn every_shipped_scenario_file_matches_the_scenario_schema() {
        let validator = scenario_validator();
        let mut files = Vec::new();
        scenario_files(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios"),
            &mut files,
        );
        assert!(files.len() > 20, "{files:?}");
        for f in files {
            let value = as_json(&std::fs::read_to_string(&f).unwrap());
            let errors: Vec<String> = validator
                .iter_errors(&value)
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{}: {errors:#?}", f.display());
        }
    }

    #[test]
    fn the_scenario_schema_rejects_what_the_parser_rejects() {
        let validator = scenario_validator();
        let base = "name = \"t\"\nend = \"30s\"\n[[fault]]\nkind = \"cable-pull\"\nat = \"2s\"\n";
        assert!(validator.is_valid(&as_json(base)));
        for bad in [
            "typo = 1\n",
            "with = \"tcp-reset\"\n",
            "percent = 20\n",
            "target = \"router\"\n",
            "at2 = \"1s\"\n",
        ] {
            let text = format!("{base}{bad}");
            assert!(!validator.is_valid(&as_json(&text)), "accepted: {text}");
            assert!(
                crate::scenario::parse(std::path::Path::new("t.toml"), &text).is_err(),
                "the parser accepts: {text}"
            );
        }
        for bad in [
            "name = \"t\"\nend = \"-2s\"\n",
            "name = \"t\"\nend = \"30s\"\n[client]\nkeepalive = { idle = \"3s\", count = 200 }\n",
            "name = \"t\"\nend = \"30s\"\n[[fault]]\nkind = \"loss\"\nat = \"1s\"\npercent = 100\n",
            "name = \"t\"\nend = \"30s\"\nexpect = \"all\"\n",
        ] {
            assert!(!validator.is_valid(&as_json(bad)), "accepted: {bad}");
        }
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
