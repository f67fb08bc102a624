//! Numbering parity with ANARCI (human + mouse models) on the committed oracle fixtures.
//!
//! `tests/fixtures/anarci_numbering.jsonl` was made by `tools/oracle/make_fixtures.py` from
//! ANARCI itself; nothing in it comes from veneer. The bar (SCIENCE.md §1): the numbering
//! (label → residue) equals ANARCI's for ≥ 99.5 % of chains, in IMGT and in Kabat.

mod oracle;

use std::collections::BTreeSet;

use serde_json::Value;
use veneer::engine::numbering::{Scheme, number};
use veneer::engine::sequence::clean;

fn fixtures() -> Vec<Value> {
    oracle::jsonl("anarci_numbering.jsonl")
}

fn fixture(file: &str) -> Vec<Value> {
    oracle::jsonl(file)
}

use oracle::names_in;

fn expected_numbering(entry: &Value, scheme: &str) -> Vec<(String, char)> {
    entry[scheme]
        .as_array()
        .expect("numbering list")
        .iter()
        .map(|pair| {
            let label = pair[0].as_str().expect("label").to_string();
            let residue = pair[1]
                .as_str()
                .and_then(|r| r.chars().next())
                .expect("residue");
            (label, residue)
        })
        .collect()
}

/// Per scheme: (chains compared, chains equal, names of the differing ones).
fn parity_in(
    entries: Vec<Value>,
    set: &BTreeSet<String>,
) -> Vec<(Scheme, usize, usize, Vec<String>)> {
    let schemes = [Scheme::Imgt, Scheme::Kabat, Scheme::Chothia];
    let mut tallies: Vec<(Scheme, usize, usize, Vec<String>)> =
        schemes.iter().map(|&s| (s, 0, 0, Vec::new())).collect();
    for entry in entries {
        let name = entry["name"].as_str().expect("name");
        if !set.contains(name) || entry.get("error").is_some() {
            continue;
        }
        let sequence = entry["sequence"].as_str().expect("sequence");
        let ours = clean(sequence).ok().and_then(|r| number(&r).ok());
        for (scheme, compared, equal, differing) in tallies.iter_mut() {
            *compared += 1;
            let expected = expected_numbering(&entry, scheme.name());
            let same = ours.as_ref().is_some_and(|chain| {
                chain.chain_type.letter().to_string() == entry["chain_type"].as_str().unwrap_or("")
                    && chain
                        .numbered(*scheme)
                        .map(|(p, r)| (p.to_string(), r as char))
                        .eq(expected.iter().cloned())
            });
            if same {
                *equal += 1;
            } else {
                differing.push(name.to_string());
            }
        }
    }
    tallies
}

/// Asserts the parity bar on every chain of `fasta` (at least `minimum` of them), printing the
/// tallies and the differing chains under `label`.
fn assert_parity(label: &str, fasta: &str, oracle: Vec<Value>, minimum: usize) {
    let chains = names_in(fasta);
    assert!(
        chains.len() >= minimum,
        "{label} has {} chains",
        chains.len()
    );
    for (scheme, compared, equal, differing) in parity_in(oracle, &chains) {
        let share = equal as f64 / compared as f64;
        eprintln!(
            "{label}, {}: {equal}/{compared} chains equal ANARCI ({:.2} %); differing: {differing:?}",
            scheme.name(),
            share * 100.0
        );
        // The bar is IMGT and Kabat; Chothia is reported.
        if scheme != Scheme::Chothia {
            assert!(
                share >= 0.995,
                "{label}: {} parity {share:.3} < 0.995",
                scheme.name()
            );
        }
    }
}

#[test]
fn numbering_matches_anarci_on_at_least_99_5_percent_of_chains() {
    assert_parity("parity set", "chains.fasta", fixtures(), 300);
}

/// The same bar on chains the ANARCI rules were not tuned on (`tools/oracle/make_holdout.py`).
#[test]
fn numbering_matches_anarci_on_held_out_chains() {
    assert_parity(
        "held out",
        "holdout_chains.fasta",
        fixture("anarci_holdout.jsonl"),
        200,
    );
}

#[test]
fn domains_inside_longer_sequences_are_trimmed_as_anarci_trims_them() {
    let flanked = names_in("with_flanks.fasta");
    let mut checked = 0;
    for entry in fixtures() {
        let name = entry["name"].as_str().expect("name");
        if !flanked.contains(name) || entry.get("error").is_some() {
            continue;
        }
        let sequence = clean(entry["sequence"].as_str().expect("sequence")).expect("clean");
        if entry["domains"].as_u64().is_some_and(|n| n > 1) {
            // ANARCI numbers the first domain of an scFv; veneer refuses a chain field that holds
            // two, so one field never silently stands for another chain.
            assert!(number(&sequence).is_err(), "{name} holds two domains");
            continue;
        }
        let chain = number(&sequence).unwrap_or_else(|e| panic!("{name}: {e}"));
        let kabat: Vec<(String, char)> = chain
            .numbered(Scheme::Kabat)
            .map(|(p, r)| (p.to_string(), r as char))
            .collect();
        assert_eq!(kabat, expected_numbering(&entry, "kabat"), "{name}");
        assert_eq!(
            chain.start as u64,
            entry["seq_start"].as_u64().expect("start"),
            "{name}"
        );
        checked += 1;
    }
    assert!(checked >= 5);
}

#[test]
fn sequences_anarci_cannot_number_are_refused() {
    let others = names_in("not_antibodies.fasta");
    let mut checked = 0;
    for entry in fixtures() {
        let name = entry["name"].as_str().expect("name");
        if !others.contains(name) {
            continue;
        }
        let sequence = entry["sequence"].as_str().expect("sequence");
        let ours = clean(sequence).ok().and_then(|r| number(&r).ok());
        if entry.get("error").is_some() {
            assert!(ours.is_none(), "{name} was numbered but ANARCI refuses it");
            checked += 1;
        }
    }
    assert!(checked >= 5);
}

#[test]
fn the_chain_type_prefilter_agrees_with_anarci_whenever_it_decides() {
    let mut decided = 0;
    for entry in fixtures() {
        let (Some(sequence), Some(expected)) =
            (entry["sequence"].as_str(), entry["chain_type"].as_str())
        else {
            continue;
        };
        let residues = clean(sequence).expect("clean");
        if let Some(chain_type) = veneer::engine::numbering::obvious_chain_type(&residues) {
            assert_eq!(
                chain_type.letter().to_string(),
                expected,
                "{}",
                entry["name"]
            );
            decided += 1;
        }
    }
    assert!(
        decided >= 450,
        "the prefilter decided only {decided} chains"
    );
}
