//! Dumps the first numbered residues of every oracle chain (research aid for ANARCI parity).
use serde_json::Value;
use veneer::engine::numbering::{Scheme, number};
use veneer::engine::sequence::clean;

fn main() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/anarci_numbering.jsonl"
    );
    for line in std::fs::read_to_string(path).expect("fixture").lines() {
        let e: Value = serde_json::from_str(line).expect("json");
        let Some(seq) = e["sequence"].as_str() else {
            continue;
        };
        let Ok(chain) = clean(seq)
            .map_err(|_| ())
            .and_then(|r| number(&r).map_err(|_| ()))
        else {
            continue;
        };
        let first: Vec<String> = chain
            .numbered(Scheme::Imgt)
            .take(12)
            .map(|(p, r)| format!("{}:{}", r as char, p))
            .collect();
        println!(
            "{}\t{}\t{}\t{}",
            e["name"].as_str().unwrap_or(""),
            chain.chain_type.letter(),
            chain.start,
            first.join(" ")
        );
    }
}
