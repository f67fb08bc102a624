//! Prints where veneer's numbering differs from ANARCI's for the named fixture chains.
//! `cargo run --release --example numbering_diff -- NAME...` (no names: every differing chain).

use serde_json::Value;
use veneer::engine::numbering::{Scheme, number};
use veneer::engine::sequence::clean;

fn main() {
    let wanted: Vec<String> = std::env::args().skip(1).collect();
    let file = std::env::var("FIXTURE").unwrap_or_else(|_| "anarci_numbering.jsonl".into());
    let path = format!("{}/tests/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(path).expect("fixture");
    for line in text.lines() {
        let entry: Value = serde_json::from_str(line).expect("json");
        let name = entry["name"].as_str().unwrap_or("");
        if (!wanted.is_empty() && !wanted.iter().any(|w| w == name)) || entry.get("error").is_some()
        {
            continue;
        }
        let seq = entry["sequence"].as_str().unwrap_or("");
        let ours = match clean(seq)
            .map_err(|e| e.to_string())
            .and_then(|r| number(&r).map_err(|e| e.to_string()))
        {
            Ok(c) => c,
            Err(e) => {
                println!("{name}: ours failed: {e}");
                continue;
            }
        };
        for scheme in [Scheme::Imgt, Scheme::Kabat] {
            let expected: Vec<String> = entry[scheme.name()]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| format!("{}{}", p[0].as_str().unwrap(), p[1].as_str().unwrap()))
                .collect();
            let got: Vec<String> = ours
                .numbered(scheme)
                .map(|(p, r)| format!("{p}{}", r as char))
                .collect();
            if expected != got
                || entry["chain_type"].as_str() != Some(&ours.chain_type.letter().to_string())
            {
                println!(
                    "{name} {} anarci {} ours {:?}",
                    scheme.name(),
                    entry["chain_type"],
                    ours.chain_type
                );
                let first = expected
                    .iter()
                    .zip(&got)
                    .position(|(a, b)| a != b)
                    .unwrap_or(expected.len().min(got.len()));
                let lo = first.saturating_sub(3);
                println!(
                    "  anarci: {}",
                    expected[lo.min(expected.len())..(first + 12).min(expected.len())].join(" ")
                );
                println!(
                    "  ours:   {}",
                    got[lo.min(got.len())..(first + 12).min(got.len())].join(" ")
                );
                println!("  lengths anarci {} ours {}", expected.len(), got.len());
            }
        }
    }
}
