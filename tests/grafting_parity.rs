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
