//! Reading the committed oracle fixtures (`tests/fixtures/`, made by `tools/oracle/`).

use std::collections::BTreeSet;

use serde_json::Value;

/// Every line of a JSON-lines fixture.
pub fn jsonl(file: &str) -> Vec<Value> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .map(|line| serde_json::from_str(line).expect("fixture line is JSON"))
        .collect()
}

/// The record names (first word of each header) of a FASTA fixture.
#[allow(dead_code)] // not every test file reads FASTA fixtures
pub fn names_in(file: &str) -> BTreeSet<String> {
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{path}: {e}"))
        .lines()
        .filter_map(|l| l.strip_prefix('>'))
        .map(|l| l.split_whitespace().next().unwrap_or("").to_string())
        .collect()
}
