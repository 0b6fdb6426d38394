//! Shard records joined into one result, as one unsharded run would have produced it: a pure
//! fold over records, checked so that a missing or doubled shard is an error, not a table.

use std::path::{Path, PathBuf};

use crate::compare::{self, Comparison, Results};
use crate::record::Record;

/// Scenario records from the shards of one `flatline run --partition`, ordered as an
/// unsharded `flatline run` of the same files in sorted order (`scenarios/*.toml`) printed
/// them: by scenario file, then name. Two records of one scenario are an error (the shards
/// overlapped, or a record was given twice).
pub fn runs(mut records: Vec<(PathBuf, Record)>) -> Result<Vec<(PathBuf, Record)>, String> {
    records.sort_by(|(pa, a), (pb, b)| {
        (&a.scenario.file, &a.scenario.name, pa).cmp(&(&b.scenario.file, &b.scenario.name, pb))
    });
    if let Some(w) = records
        .windows(2)
        .find(|w| w[0].1.scenario.name == w[1].1.scenario.name)
    {
        return Err(format!(
            "{} and {} are both records of `{}`: did two shards run it? Give each scenario once",
            w[0].0.display(),
            w[1].0.display(),
            w[0].1.scenario.name
        ));
    }
    Ok(records)
}

/// A comparison's results from its cells' records (from the shards of `flatline compare
/// --partition`): every cell in the comparison's order, each from its record at
/// `dir/<cell>.json`; a cell the model says is too slow and no shard ran is "not run", as
/// without `--run-slow`. A cell with no record, two records, or a record of no cell is an error.
pub fn comparison(
    c: &Comparison,
    records: Vec<(PathBuf, Record)>,
    dir: &Path,
) -> Result<(Results, Vec<(PathBuf, Record)>), String> {
    let mut by_name: std::collections::BTreeMap<String, (PathBuf, Record)> = Default::default();
    for (path, r) in records {
        let name = r.scenario.name.clone();
        if !c.cells.iter().any(|cell| cell.plan.scenario.name == name) {
            return Err(format!(
                "{}: `{name}` is not a cell of {} ({})",
                path.display(),
                c.name,
                c.file.display()
            ));
        }
        if let Some((other, _)) = by_name.insert(name.clone(), (path.clone(), r)) {
            return Err(format!(
                "{} and {} are both records of cell `{name}`: did two shards run it? Give each \
                 cell once",
                other.display(),
                path.display()
            ));
        }
    }
    let mut cells = Vec::new();
    let mut placed = Vec::new();
    for cell in &c.cells {
        let name = &cell.plan.scenario.name;
        match by_name.remove(name) {
            Some((_, record)) => {
                let path = dir.join(format!("{name}.json"));
                cells.push(compare::cell_result(
                    cell,
                    Some((&record, path.display().to_string())),
                ));
                placed.push((path, record));
            }
            None if cell.too_slow => cells.push(compare::cell_result(cell, None)),
            None => {
                return Err(format!(
                    "no record of cell `{name}`: is a shard missing? (every shard's \
                     {}/{name}.json, or {}-*.json, must be given)",
                    c.name, c.name
                ))
            }
        }
    }
    compare::judge_against_control(&mut cells, c.control.as_deref(), c.tolerance_ms);
    let results = Results {
        name: c.name.clone(),
        description: c.description.clone(),
        control: c.control.clone(),
        wall_ms: 0.0,
        cells,
    };
    // The shards ran side by side: the matrix took as long as its slowest cell, at least.
    let wall_ms = results.slowest_cell_ms();
    Ok((Results { wall_ms, ..results }, placed))
}
