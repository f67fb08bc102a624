//! CDR grafting parity with AbNumber's `graft_cdrs_onto_human_germline` on the oracle set.
//!
//! `tests/fixtures/abnumber_grafts.jsonl` was made by `tools/oracle/make_fixtures.py` with
//! AbNumber 0.4.4 (`Chain(seq, scheme='kabat', allowed_species=['human','mouse'])`). Inside
//! `graft_cdrs_onto_human_germline`, AbNumber renumbers the parental chain (IMGT, to rank
//! germlines) and the merged germline (Kabat) with *all* ANARCI species, which shifts many
//! kappa chains by one (SCIENCE.md §1: wrong, not a target). The fixture's `hm` entry is the
//! same AbNumber procedure with human+mouse numbering at every step, which is what the issue's
//! bar names; the raw all-species output is kept beside it for the README's account.
//! The bar (issue 2): both strategies equal AbNumber's chain for ≥ 95 % of chains.

mod oracle;

use serde_json::Value;
use veneer::engine::grafting::{Backmutations, graft_onto_human_germline};
use veneer::engine::numbering::number;
use veneer::engine::sequence::clean;

fn fixtures() -> Vec<Value> {
    oracle::jsonl("abnumber_grafts.jsonl")
}

#[test]
fn grafts_match_abnumber_on_at_least_95_percent_of_chains() {
    let entries: Vec<Value> = fixtures()
        .into_iter()
        .filter(|e| e.get("error").is_none())
        .collect();
    assert!(
        entries.len() >= 300,
        "only {} grafted chains in the oracle set",
        entries.len()
    );
    for (strategy, vernier) in [("straight", false), ("vernier", true)] {
        let mut differing = Vec::new();
        let mut genes_differ = 0;
        for entry in &entries {
            let name = entry["name"].as_str().expect("name");
            let chain =
                clean(entry["sequence"].as_str().expect("sequence")).and_then(|r| number(&r));
            let graft = chain.ok().and_then(|c| {
                graft_onto_human_germline(
                    &c,
                    Backmutations {
                        vernier,
                        hallmark: false,
                    },
                )
                .ok()
            });
            let oracle = &entry["hm"];
            let expected = oracle[strategy].as_str().expect("grafted sequence");
            match graft {
                Some(graft) if graft.sequence() == expected => {}
                Some(graft) => {
                    if Some(graft.acceptor.v_gene) != oracle["v_gene"].as_str()
                        || Some(graft.acceptor.j_gene) != oracle["j_gene"].as_str()
                    {
                        genes_differ += 1;
                    }
                    differing.push(format!(
                        "{name} (ours {}+{}, AbNumber {}+{})",
                        graft.acceptor.v_gene,
                        graft.acceptor.j_gene,
                        entry["v_gene"],
                        entry["j_gene"]
                    ));
                }
                None => differing.push(format!("{name} (not grafted)")),
            }
        }
        let share = 1.0 - differing.len() as f64 / entries.len() as f64;
        eprintln!(
            "{strategy}: {}/{} equal AbNumber ({:.2} %); {genes_differ} of the differences chose other genes: {differing:#?}",
            entries.len() - differing.len(),
            entries.len(),
            share * 100.0
        );
        assert!(share >= 0.95, "{strategy} parity {share:.3} < 0.95");
    }
}

/// Nanobodies: AbNumber's `graft_cdrs_onto(germline, backmutate_vernier, backmutate_vhh_hallmark)`
/// on 40 germline-derived alpaca VHH chains (`tools/oracle/make_vhh_multidomain.py`), every
/// combination of the two back-mutations. 16 of the chains come from true-VHH germlines
/// (IGHV3-3, IGHV3S53), whose hallmarks differ from the human acceptor's, so the hallmark
/// option changes their answer; every chain must equal AbNumber's in all four.
#[test]
fn nanobody_grafts_match_abnumber_with_and_without_hallmark_backmutation() {
    let entries = oracle::jsonl("abnumber_vhh_grafts.jsonl");
    assert_eq!(entries.len(), 40);
    let changed_by_hallmarks = entries
        .iter()
        .filter(|e| e["straight"] != e["straight_hallmark"])
        .count();
    assert!(changed_by_hallmarks >= 10, "{changed_by_hallmarks}");
    let mut differing = Vec::new();
    for entry in &entries {
        let name = entry["name"].as_str().expect("name");
        let residues = clean(entry["sequence"].as_str().expect("sequence")).expect("residues");
        let chain = number(&residues).expect("numbered");
        for (field, vernier, hallmark) in [
            ("straight", false, false),
            ("straight_hallmark", false, true),
            ("vernier", true, false),
            ("vernier_hallmark", true, true),
        ] {
            let graft = graft_onto_human_germline(&chain, Backmutations { vernier, hallmark })
                .expect("grafted");
            assert_eq!(
                Some(graft.acceptor.v_gene),
                entry["v_gene"].as_str(),
                "{name}"
            );
            assert_eq!(
                Some(graft.acceptor.j_gene),
                entry["j_gene"].as_str(),
                "{name}"
            );
            if Some(graft.sequence().as_str()) != entry[field].as_str() {
                differing.push(format!("{name} {field}"));
            }
        }
        // The hallmark option keeps the parental residue at Kabat H37/H44/H45/H47.
        let graft = graft_onto_human_germline(
            &chain,
            Backmutations {
                vernier: false,
                hallmark: true,
            },
        )
        .expect("grafted");
        let hallmarks = entry["hallmarks"].as_object().expect("hallmarks");
        assert_eq!(hallmarks.len(), 4, "{name}");
        for (label, residue) in hallmarks {
            let at = graft
                .kabat
                .iter()
                .find(|(p, _)| p.label(chain.chain_type) == *label);
            let kept = at.map(|&(_, r)| (r as char).to_string());
            assert_eq!(kept.as_deref(), residue.as_str(), "{name} {label}");
        }
    }
    assert!(differing.is_empty(), "differ from AbNumber: {differing:#?}");
}
