//! Liability mitigation hints: for each liability motif a chain still carries in a CDR, the
//! single substitutions inside the motif that Sapiens would accept and that remove it
//! (BioPhi's PTM-mitigation idea: let the language model propose the replacement).
//!
//! A substitution is a hint when, at one residue of the motif, the model gives the new residue
//! a probability of at least [`MIN_PROBABILITY`] in the chain as it stands, and the chain with
//! that one change no longer has the liability at that place and has no liability it did not
//! have before. Hints are reported, never applied: a CDR residue can be part of the paratope,
//! and only the lab can say whether binding survives the change.

use serde::Serialize;

use super::chain::{AMINO_ACIDS, ChainType};
use super::liabilities::{self, Liabilities};
use super::numbering::{Position, is_kabat_cdr};

/// The least model probability for a residue to be proposed (5 %).
pub const MIN_PROBABILITY: f32 = 0.05;

/// One liability with the substitutions that would remove it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MitigationHint {
    /// The liability class, as in `liabilities` (`deamidation`, `oxidation`, …).
    pub liability: &'static str,
    /// Where the motif starts (the label the liability is reported at).
    pub at: String,
    /// The motif's residues as they stand.
    pub motif: String,
    /// The accepted substitutions, most probable first (then in motif and A…Y order); empty
    /// when the model accepts none that remove the motif.
    pub alternatives: Vec<Alternative>,
}

/// One substitution of a hint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alternative {
    /// The position changed, a label (`H53`).
    pub position: String,
    /// The residue there now.
    pub from: char,
    /// The proposed residue.
    pub to: char,
    /// The model's probability of `to` at `position`, to 4 decimals.
    pub probability: f64,
}

/// How many residues a liability class's motif spans from its first residue.
fn motif_length(class: &str) -> usize {
    match class {
        "glycosylation" => 3,
        "oxidation" | "unpaired_cysteine" => 1,
        _ => 2,
    }
}

/// Every `(class, label)` of a chain's liabilities.
fn entries(found: &Liabilities) -> Vec<(&'static str, &str)> {
    let classes: [(&'static str, &Vec<String>); 7] = [
        ("glycosylation", &found.glycosylation),
        ("deamidation", &found.deamidation),
        ("isomerization", &found.isomerization),
        ("oxidation", &found.oxidation),
        ("fragmentation", &found.fragmentation),
        ("hydrolysis", &found.hydrolysis),
        ("unpaired_cysteine", &found.unpaired_cysteine),
    ];
    classes
        .into_iter()
        .flat_map(|(class, labels)| labels.iter().map(move |l| (class, l.as_str())))
        .collect()
}

/// The hints for one Kabat-numbered chain, given the model's probabilities for it (one row per
/// residue, in `AMINO_ACIDS` order), in the order the liabilities are reported.
pub fn hints(
    chain_type: ChainType,
    kabat: &[(Position, u8)],
    probabilities: &[[f32; 20]],
) -> Vec<MitigationHint> {
    let found = liabilities::find(chain_type, kabat);
    let before = entries(&found);
    let mut hints = Vec::new();
    for &(class, at) in &before {
        let Some(start) = kabat.iter().position(|&(p, _)| p.label(chain_type) == at) else {
            // A conserved cysteine that is missing is reported where it should be.
            continue;
        };
        if !is_kabat_cdr(chain_type, kabat[start].0) {
            continue;
        }
        let end = (start + motif_length(class)).min(kabat.len());
        let mut alternatives = Vec::new();
        for i in start..end {
            let (position, from) = kabat[i];
            let Some(row) = probabilities.get(i) else {
                continue;
            };
            for (a, &to) in AMINO_ACIDS.iter().enumerate() {
                if to == from || row[a] < MIN_PROBABILITY {
                    continue;
                }
                let mut changed = kabat.to_vec();
                changed[i].1 = to;
                let after = liabilities::find(chain_type, &changed);
                let after = entries(&after);
                let removed = !after.contains(&(class, at));
                let nothing_new = after.iter().all(|entry| before.contains(entry));
                if removed && nothing_new {
                    alternatives.push(Alternative {
                        position: position.label(chain_type),
                        from: from as char,
                        to: to as char,
                        probability: (f64::from(row[a]) * 10_000.0).round() / 10_000.0,
                    });
                }
            }
        }
        // Stable: ties keep motif order, then A…Y.
        alternatives.sort_by(|a, b| b.probability.total_cmp(&a.probability));
        hints.push(MitigationHint {
            liability: class,
            at: at.to_string(),
            motif: kabat[start..end].iter().map(|&(_, r)| r as char).collect(),
            alternatives,
        });
    }
    hints
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(entries: &[(&str, u8)]) -> Vec<(Position, u8)> {
        entries
            .iter()
            .map(|&(l, r)| (l.parse().unwrap(), r))
            .collect()
    }

    fn uniform(n: usize, favoured: &[(usize, u8, f32)]) -> Vec<[f32; 20]> {
        let mut rows = vec![[0.01f32; 20]; n];
        for &(i, residue, p) in favoured {
            let a = AMINO_ACIDS.iter().position(|&x| x == residue).unwrap();
            rows[i][a] = p;
        }
        rows
    }

    /// CDR-H2 N52-G53 (deamidation): Q at N52 or Q at G53 removes it. A at G53 leaves N-A,
    /// still deamidation; P at G53 makes N-P, a new hydrolysis site, so neither is proposed
    /// however probable; S at N52 below 5 % is not either.
    #[test]
    fn proposes_accepted_substitutions_that_remove_the_motif_only() {
        let kabat = chain(&[
            ("50", b'Y'),
            ("51", b'I'),
            ("52", b'N'),
            ("53", b'G'),
            ("54", b'K'),
            ("55", b'Y'),
        ]);
        let rows = uniform(
            6,
            &[
                (2, b'Q', 0.30),
                (2, b'S', 0.04),
                (3, b'A', 0.50),
                (3, b'P', 0.40),
                (3, b'Q', 0.20),
            ],
        );
        let hints = hints(ChainType::H, &kabat, &rows);
        assert_eq!(hints.len(), 1, "{hints:?}");
        let hint = &hints[0];
        assert_eq!((hint.liability, hint.at.as_str()), ("deamidation", "H52"));
        assert_eq!(hint.motif, "NG");
        let proposed: Vec<(String, char, f64)> = hint
            .alternatives
            .iter()
            .map(|a| (a.position.clone(), a.to, a.probability))
            .collect();
        assert_eq!(
            proposed,
            [("H52".to_string(), 'Q', 0.3), ("H53".to_string(), 'Q', 0.2)]
        );
    }

    /// Framework motifs get no hint: only CDR liabilities are the design's to mitigate.
    #[test]
    fn framework_liabilities_get_no_hints() {
        // N-linked sequon at H82 (framework 3).
        let kabat = chain(&[("82", b'N'), ("82A", b'S'), ("82B", b'S')]);
        let rows = uniform(3, &[(0, b'Q', 0.9)]);
        assert!(hints(ChainType::H, &kabat, &rows).is_empty());
    }
}
