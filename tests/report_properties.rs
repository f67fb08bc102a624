//! Properties of the humanness report that would fail if its parts broke: the Sapiens score,
//! the VH/VL interface mutations and the liability mitigation hints, on the 25 Hu-mAb
//! parental antibodies (BioPhi's publication set) and every design of each.
//!
//! Nothing here is compared with our own earlier output: the Sapiens score is recomputed from
//! the model's probabilities (themselves equal to `sapiens.predict_scores`, see
//! tests/sapiens_parity.rs), hints are checked by applying them and re-finding liabilities,
//! and interface labels against the published position list.

use std::collections::BTreeMap;

use veneer::engine::chain::AMINO_ACIDS;
use veneer::engine::humanize::{AntibodyReport, Humanizer, Strategy, StrategySpec, Variant};
use veneer::engine::humanness::OasisSet;
use veneer::engine::liabilities::{self, Liabilities};
use veneer::engine::mitigation::MIN_PROBABILITY;
use veneer::engine::numbering::{Position, Scheme, is_kabat_cdr, number};
use veneer::engine::sapiens::SapiensModel;
use veneer::engine::sequence::clean;

fn parental_pairs() -> Vec<(String, String, String)> {
    let path = format!(
        "{}/tests/fixtures/humab25/parental.fa",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(path).expect("fixture");
    let mut chains: BTreeMap<String, String> = BTreeMap::new();
    let mut name = String::new();
    for line in text.lines() {
        if let Some(header) = line.strip_prefix('>') {
            name = header
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ");
        } else {
            chains
                .entry(name.clone())
                .or_default()
                .push_str(line.trim());
        }
    }
    let antibodies: Vec<String> = chains
        .keys()
        .filter_map(|k| k.strip_suffix(" VH").map(str::to_string))
        .collect();
    antibodies
        .into_iter()
        .map(|a| {
            let vh = chains[&format!("{a} VH")].clone();
            let vl = chains[&format!("{a} VL")].clone();
            (a, vh, vl)
        })
        .collect()
}

fn designs() -> Vec<StrategySpec> {
    let mut specs: Vec<StrategySpec> = Strategy::DEFAULT.iter().map(|&s| s.into()).collect();
    specs.push(Strategy::CdrGraftingSapiens.into());
    specs
}

/// Kabat `(position, residue)` of a chain as the report's numbering holds it.
fn kabat_of(report: &AntibodyReport, heavy: bool) -> Vec<(Position, u8)> {
    let numbering = if heavy {
        &report.numbering.vh
    } else {
        report.numbering.vl.as_ref().expect("a light chain")
    };
    numbering
        .iter()
        .map(|(label, residue)| (label[1..].parse().expect("label"), *residue as u8))
        .collect()
}

fn own_probability_mean(heavy: bool, residues: &[u8]) -> f64 {
    let model = if heavy {
        SapiensModel::vh()
    } else {
        SapiensModel::vl()
    };
    let rows = model.predict(residues).expect("scored");
    let own: Vec<f64> = residues
        .iter()
        .zip(&rows)
        .map(|(r, row)| {
            let i = AMINO_ACIDS.iter().position(|a| a == r).expect("amino acid");
            f64::from(row[i])
        })
        .collect();
    own.iter().sum::<f64>() / own.len() as f64
}

fn all_liabilities(found: &Liabilities) -> Vec<(String, String)> {
    let classes = [
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
        .flat_map(|(c, labels)| labels.iter().map(move |l| (c.to_string(), l.clone())))
        .collect()
}

/// Checks one antibody's report (parental or a design).
fn check_report(name: &str, report: &AntibodyReport, vh: &str, vl: &str) {
    // Sapiens score: the mean model probability of each chain's own residues, and of all.
    let score_vh = own_probability_mean(true, vh.as_bytes());
    let score_vl = own_probability_mean(false, vl.as_bytes());
    let got = &report.sapiens_score;
    assert!(
        (got.vh.expect("vh score") - score_vh).abs() < 6e-5,
        "{name}"
    );
    assert!(
        (got.vl.flatten().expect("vl score") - score_vl).abs() < 6e-5,
        "{name}"
    );
    let pooled =
        (score_vh * vh.len() as f64 + score_vl * vl.len() as f64) / (vh.len() + vl.len()) as f64;
    assert!(
        (got.antibody.expect("pooled") - pooled).abs() < 6e-5,
        "{name}"
    );

    // Pooled germline content and non-human peptides lie between / add up the chains'.
    let gc = &report.germline_content;
    let gc_vl = gc.vl.expect("vl");
    assert!(gc.antibody >= gc.vh.min(gc_vl) - 1e-12 && gc.antibody <= gc.vh.max(gc_vl) + 1e-12);
    let nh = &report.oasis_non_human_peptides;
    assert_eq!(nh.antibody, nh.vh + nh.vl.expect("vl"), "{name}");

    // Hints: one per CDR liability, each alternative inside the motif, accepted by the model,
    // removing the liability and creating none; most probable first.
    for (heavy, chain) in [(true, vh), (false, vl)] {
        let kabat = kabat_of(report, heavy);
        assert_eq!(
            kabat.iter().map(|&(_, r)| r).collect::<Vec<_>>(),
            chain.as_bytes(),
            "{name}: numbering is the chain"
        );
        let chain_type = number(&clean(chain).expect("clean"))
            .expect("numbered")
            .chain_type;
        let prefix = if heavy { 'H' } else { 'L' };
        let before = all_liabilities(&liabilities::find(chain_type, &kabat));
        let in_cdr: Vec<&(String, String)> = before
            .iter()
            .filter(|(_, at)| {
                kabat
                    .iter()
                    .any(|&(p, _)| p.label(chain_type) == *at && is_kabat_cdr(chain_type, p))
            })
            .collect();
        let hints: Vec<_> = report
            .liability_hints
            .iter()
            .filter(|h| h.at.starts_with(prefix))
            .collect();
        assert_eq!(hints.len(), in_cdr.len(), "{name} {prefix}: {hints:?}");
        let rows = if heavy {
            SapiensModel::vh()
        } else {
            SapiensModel::vl()
        }
        .predict(chain.as_bytes())
        .expect("scored");
        for hint in hints {
            assert!(
                in_cdr.contains(&&(hint.liability.to_string(), hint.at.clone())),
                "{name}: {hint:?}"
            );
            let start = kabat
                .iter()
                .position(|&(p, _)| p.label(chain_type) == hint.at)
                .expect("motif start");
            for pair in hint.alternatives.windows(2) {
                assert!(
                    pair[0].probability >= pair[1].probability,
                    "{name}: {hint:?}"
                );
            }
            for alternative in &hint.alternatives {
                let i = kabat
                    .iter()
                    .position(|&(p, _)| p.label(chain_type) == alternative.position)
                    .expect("position");
                assert!(
                    i >= start && i < start + hint.motif.len(),
                    "{name}: {hint:?}"
                );
                assert_eq!(kabat[i].1 as char, alternative.from);
                let a = AMINO_ACIDS
                    .iter()
                    .position(|&x| x as char == alternative.to)
                    .expect("amino acid");
                assert!(rows[i][a] >= MIN_PROBABILITY, "{name}: {alternative:?}");
                assert!((f64::from(rows[i][a]) - alternative.probability).abs() < 6e-5);
                let mut changed = kabat.clone();
                changed[i].1 = alternative.to as u8;
                let after = all_liabilities(&liabilities::find(chain_type, &changed));
                assert!(
                    !after.contains(&(hint.liability.to_string(), hint.at.clone())),
                    "{name}: {alternative:?} leaves {hint:?}"
                );
                assert!(
                    after.iter().all(|l| before.contains(l)),
                    "{name}: {alternative:?} adds a liability"
                );
            }
        }
    }
}

#[test]
fn every_report_scores_interfaces_and_hints_consistently() {
    let pairs = parental_pairs();
    assert_eq!(pairs.len(), 25);
    let peptides = OasisSet::embedded();
    let humanizer = Humanizer::new(peptides);
    let mut interface_mutations = 0;
    let mut hints_with_alternatives = 0;
    for (name, vh, vl) in &pairs {
        let variant = Variant::new(vh, Some(vl)).expect("variant");
        let parental = humanizer.parental(&variant).expect("parental");
        check_report(
            name,
            &parental,
            &String::from_utf8(variant.vh.residues.clone()).expect("text"),
            &variant_vl(&variant),
        );
        for result in humanizer.humanize(&variant, &designs()).expect("designs") {
            let hvl = result.humanized_vl.clone().expect("vl");
            check_report(name, &result.report, &result.humanized_vh, &hvl);
            hints_with_alternatives += result
                .report
                .liability_hints
                .iter()
                .filter(|h| !h.alternatives.is_empty())
                .count();
            for (list, interface, heavy) in [
                (
                    &result.mutation_list.vh,
                    &result.interface_mutations.vh,
                    true,
                ),
                (
                    result.mutation_list.vl.as_ref().expect("vl"),
                    result.interface_mutations.vl.as_ref().expect("vl"),
                    false,
                ),
            ] {
                // Exactly the mutations at the published interface positions.
                let expected: Vec<&String> = list
                    .iter()
                    .filter(|m| {
                        let label = m[1..].split(':').next().expect("label");
                        let p: Position = label.parse().expect("position");
                        is_listed_interface(heavy, p, &variant)
                    })
                    .collect();
                assert_eq!(interface.iter().collect::<Vec<_>>(), expected, "{name}");
                interface_mutations += interface.len();
            }
        }
    }
    // The set exercises what is checked: humanizing mouse frameworks touches the interface,
    // and CDR liabilities with accepted fixes occur.
    assert!(interface_mutations > 25, "{interface_mutations}");
    assert!(hints_with_alternatives > 25, "{hints_with_alternatives}");
}

/// Chothia et al. 1985 / Vargas-Madrazo & Paz 2003, written out here independently of the
/// engine: VH 35 37 39 45 47 91 93 95 100x 103, VL 34 36 38 44 46 87 89 91 96 98.
fn is_listed_interface(heavy: bool, p: Position, variant: &Variant) -> bool {
    if heavy {
        if p.insertion.is_none() && [35, 37, 39, 45, 47, 91, 93, 95, 103].contains(&p.number) {
            return true;
        }
        // 100x: the residue right before H101 in the parental chain.
        let kabat: Vec<(Position, u8)> = variant.vh.numbered(Scheme::Kabat).collect();
        kabat
            .windows(2)
            .any(|w| w[0].0 == p && w[1].0.number == 101 && (95..=100).contains(&p.number))
    } else {
        p.insertion.is_none() && [34, 36, 38, 44, 46, 87, 89, 91, 96, 98].contains(&p.number)
    }
}

fn variant_vl(variant: &Variant) -> String {
    let vl = variant.vl.as_ref().expect("vl");
    String::from_utf8(vl.residues.clone()).expect("text")
}

/// Nanobodies: one chain, so every pooled value is the chain's own.
#[test]
fn a_single_domain_report_pools_one_chain() {
    let vhh = "EVQLVESGGGLVQAGGSLRLSCAASGRTLSSYAMGWFRQAPGKEREFVAARSWNGLSTYYADSVKGRFTISRDNAKNTVYLQMNSLKPEDTAVYYCAAGRYGGTWYGDREYNYWGQGTQVTVSS";
    let variant = Variant::new(vhh, None).expect("variant");
    let humanizer = Humanizer::new(OasisSet::embedded());
    let parental = humanizer.parental(&variant).expect("parental");
    assert_eq!(parental.sapiens_score.vl, None);
    assert_eq!(parental.sapiens_score.antibody, parental.sapiens_score.vh);
    assert_eq!(
        parental.germline_content.antibody,
        parental.germline_content.vh
    );
    assert_eq!(
        parental.oasis_non_human_peptides.antibody,
        parental.oasis_non_human_peptides.vh
    );
    let score = own_probability_mean(true, vhh.as_bytes());
    assert!((parental.sapiens_score.vh.expect("score") - score).abs() < 6e-5);
}
