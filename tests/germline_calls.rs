//! Species and human germline calls against ANARCI's own germline assignment
//! (`tests/fixtures/anarci_numbering.jsonl`: `closest_germline` over every species in ANARCI's
//! table, and `v_gene`/`j_gene` over human germlines).

mod oracle;

use serde_json::Value;
use veneer::engine::germlines::closest_species;
use veneer::engine::numbering::{Scheme, number};
use veneer::engine::sequence::clean;

fn fixtures() -> Vec<Value> {
    oracle::jsonl("anarci_numbering.jsonl")
}

#[test]
fn species_call_agrees_with_anarcis_closest_germline() {
    let (mut compared, mut equal, mut differing) = (0, 0, Vec::new());
    for entry in fixtures() {
        let Some(expected) = entry["closest_germline"]["species"].as_str() else {
            continue;
        };
        let Ok(chain) = clean(entry["sequence"].as_str().unwrap_or("")).and_then(|r| number(&r))
        else {
            continue;
        };
        let imgt: Vec<_> = chain.numbered(Scheme::Imgt).collect();
        let ours = closest_species(chain.chain_type, &imgt);
        compared += 1;
        if ours == Some(expected) {
            equal += 1;
        } else {
            differing.push(format!("{} ours {ours:?} ANARCI {expected}", entry["name"]));
        }
    }
    eprintln!("species: {equal}/{compared} equal ANARCI; differing: {differing:#?}");
    assert!(compared >= 500);
    assert!(equal as f64 >= 0.95 * compared as f64, "{equal}/{compared}");
}
