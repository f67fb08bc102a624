//! Sequence liabilities: motifs that risk glycosylation, deamidation, isomerization,
//! oxidation, fragmentation or hydrolysis, and cysteines that cannot pair.
//!
//! The motif list is Satlawa et al. 2024 (PLoS Comput Biol 20:e1011881) as AntPack applies it:
//! glycosylation and cysteines are checked everywhere, the rest only where the motif's first
//! residue lies in a CDR (Kabat definition, since labels are Kabat). Each hit is reported as the
//! Kabat label of the motif's first residue, in sequence order.

use serde::Serialize;

use super::chain::ChainType;
use super::numbering::{Position, is_kabat_cdr};

/// Every liability class, each always present (empty when none), as the API reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Liabilities {
    pub glycosylation: Vec<String>,
    pub deamidation: Vec<String>,
    pub isomerization: Vec<String>,
    pub oxidation: Vec<String>,
    pub fragmentation: Vec<String>,
    pub hydrolysis: Vec<String>,
    pub unpaired_cysteine: Vec<String>,
}

impl Liabilities {
    /// The two chains' liabilities together, VH first (labels carry their chain letter).
    pub fn merged(mut self, other: Liabilities) -> Liabilities {
        self.glycosylation.extend(other.glycosylation);
        self.deamidation.extend(other.deamidation);
        self.isomerization.extend(other.isomerization);
        self.oxidation.extend(other.oxidation);
        self.fragmentation.extend(other.fragmentation);
        self.hydrolysis.extend(other.hydrolysis);
        self.unpaired_cysteine.extend(other.unpaired_cysteine);
        self
    }
}

/// The conserved disulfide pair of a variable domain, in Kabat numbering.
fn conserved_cysteines(chain_type: ChainType) -> [Position; 2] {
    if chain_type.is_heavy() {
        [Position::new(22), Position::new(92)]
    } else {
        [Position::new(23), Position::new(88)]
    }
}

/// Finds the liabilities of one Kabat-numbered chain (`(position, residue)` in sequence order).
pub fn find(chain_type: ChainType, kabat: &[(Position, u8)]) -> Liabilities {
    let mut found = Liabilities::default();
    let label = |position: Position| position.label(chain_type);
    let conserved = conserved_cysteines(chain_type);

    for (i, &(position, residue)) in kabat.iter().enumerate() {
        let next = kabat.get(i + 1).map(|&(_, r)| r);
        let after_next = kabat.get(i + 2).map(|&(_, r)| r);

        // Anywhere: N-linked glycosylation sequon N-X-S/T with X not proline.
        if residue == b'N'
            && next.is_some_and(|x| x != b'P')
            && matches!(after_next, Some(b'S' | b'T'))
        {
            found.glycosylation.push(label(position));
        }
        // Anywhere: a cysteine that is not one of the conserved pair has no partner.
        if residue == b'C' && !conserved.contains(&position) {
            found.unpaired_cysteine.push(label(position));
        }

        if !is_kabat_cdr(chain_type, position) {
            continue;
        }
        match (residue, next) {
            (b'M' | b'W', _) => found.oxidation.push(label(position)),
            (b'N', Some(b'G' | b'S' | b'A' | b'H' | b'N' | b'T')) => {
                found.deamidation.push(label(position))
            }
            (b'S' | b'T' | b'K', Some(b'N')) => found.deamidation.push(label(position)),
            _ => {}
        }
        match (residue, next) {
            (b'D', Some(b'D' | b'G' | b'H' | b'S' | b'T')) => {
                found.isomerization.push(label(position))
            }
            (b'D', Some(b'P')) | (b'T', Some(b'S')) => found.fragmentation.push(label(position)),
            (b'N', Some(b'P')) => found.hydrolysis.push(label(position)),
            _ => {}
        }
    }

    // A conserved cysteine that is mutated away or deleted leaves its partner unpaired. It is
    // reported at the conserved position, in sequence order with the other cysteine hits.
    for position in conserved {
        let present = kabat.iter().any(|&(p, r)| p == position && r == b'C');
        if !present {
            found.unpaired_cysteine.push(label(position));
        }
    }
    if found.unpaired_cysteine.len() > 1 {
        let order = |l: &String| l[1..].parse::<Position>().ok();
        found.unpaired_cysteine.sort_by_key(order);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::numbering::{Scheme, number};
    use crate::engine::sequence::clean;

    // Campath-1H (alemtuzumab) parental rat VH and VL, from the Hu-mAb set (humab25).
    const CAMPATH_VH: &str = "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
    const CAMPATH_VL: &str = "DIKMTQSPSFLSASVGDRVTLNCKASQNIDKYLNWYQQKLGESPKLLIYNTNNLQTGIPSRFSGSGSGTDFTLTISSLQPEDVATYFCLQHISRPRTFGTGTKLELK";

    fn kabat(seq: &str) -> (ChainType, Vec<(Position, u8)>) {
        let chain = number(&clean(seq).unwrap()).unwrap();
        (chain.chain_type, chain.numbered(Scheme::Kabat).collect())
    }

    fn at(chain: &[(Position, u8)], label: &str) -> u8 {
        let position: Position = label.parse().unwrap();
        chain.iter().find(|(p, _)| *p == position).unwrap().1
    }

    // Every expected label below was read off the sequence by hand against its Kabat numbering
    // (ANARCI's, see tests/fixtures/anarci_numbering.jsonl), not taken from this code's output.

    #[test]
    fn campath_vh_oxidation_in_cdr1_only() {
        // CDR-H1 (H31–H35) of Campath is DFYMN: M at H34. The framework Ms at H18 (GSMRL)
        // and H82 (YLQMN) do not count. CDR-H2 (H50–H65, 52A–C inserted) ...EYNPSVKG has
        // N60-P61: hydrolysis, and no sequon (N-P-S has proline in the middle).
        let (h, vh) = kabat(CAMPATH_VH);
        assert_eq!(at(&vh, "34"), b'M');
        assert_eq!(at(&vh, "60"), b'N');
        let found = find(h, &vh);
        assert_eq!(found.oxidation, vec!["H34"]);
        assert_eq!(found.hydrolysis, vec!["H60"]);
        assert!(found.glycosylation.is_empty());
        assert!(found.deamidation.is_empty());
        assert!(found.unpaired_cysteine.is_empty());
    }

    #[test]
    fn campath_vl_deamidation_and_glycosylation() {
        // CDR-L1 KASQNIDKYLN (L24–L34): N at L28 followed by I — no deamidation;
        // CDR-L2 NTNNLQT (L50–L56): N50-T deamidation (N[AHNT]), T51-N ([STK]N),
        // N52-N (N[AHNT]); N53-L none. Glycosylation N50-T51-N52? needs S/T third: N-T-N no;
        // N52-N53-L no. Framework "TLNCK" L20-L24: N22-C-K no sequon.
        let (l, vl) = kabat(CAMPATH_VL);
        assert_eq!(at(&vl, "50"), b'N');
        let found = find(l, &vl);
        assert_eq!(found.deamidation, vec!["L50", "L51", "L52"]);
        assert!(found.glycosylation.is_empty());
        assert!(found.unpaired_cysteine.is_empty());
    }

    #[test]
    fn glycosylation_sequon_anywhere_but_not_before_proline() {
        let h = ChainType::H;
        let chain: Vec<(Position, u8)> = [(1, b'N'), (2, b'A'), (3, b'S'), (4, b'N'), (5, b'P')]
            .iter()
            .map(|&(n, r)| (Position::new(n), r))
            .chain([(Position::new(6), b'T')])
            .collect();
        let found = find(h, &chain);
        assert_eq!(found.glycosylation, vec!["H1"]);
    }

    fn synthetic(start: u8, residues: &[u8]) -> Vec<(Position, u8)> {
        residues
            .iter()
            .enumerate()
            .map(|(i, &r)| (Position::new(start + i as u8), r))
            .collect()
    }

    #[test]
    fn cdr_only_motifs_are_ignored_in_frameworks() {
        // H36–H45 is framework 2: M, W, NG, DG, DP, NP there are not reported.
        let fw = synthetic(36, b"MWNGDGDPNP");
        let found = find(ChainType::H, &fw);
        assert!(found.oxidation.is_empty());
        assert!(found.deamidation.is_empty());
        assert!(found.isomerization.is_empty());
        assert!(found.fragmentation.is_empty());
        assert!(found.hydrolysis.is_empty());
    }

    #[test]
    fn each_cdr_motif_is_classified() {
        // H95–H102 is CDR-H3 under Kabat.
        let cdr3 = synthetic(95, b"DSNPTSKN");
        let found = find(ChainType::H, &cdr3);
        assert_eq!(found.isomerization, vec!["H95"]); // DS
        assert_eq!(found.hydrolysis, vec!["H97"]); // NP
        assert_eq!(found.fragmentation, vec!["H99"]); // TS
        assert_eq!(found.deamidation, vec!["H96", "H101"]); // SN, KN
        let cdr2 = synthetic(50, b"DPNGWM");
        let found = find(ChainType::K, &cdr2);
        assert_eq!(found.fragmentation, vec!["L50"]); // DP
        assert_eq!(found.deamidation, vec!["L52"]); // NG
        assert_eq!(found.oxidation, vec!["L54", "L55"]);
        assert!(found.isomerization.is_empty());
    }

    #[test]
    fn motif_starting_in_cdr_counts_even_if_it_ends_outside() {
        // L97 is the last CDR-L3 residue (Kabat); N97-G98 starts inside.
        let edge = synthetic(96, b"ANGQ");
        assert_eq!(find(ChainType::L, &edge).deamidation, vec!["L97"]);
    }

    #[test]
    fn extra_and_missing_cysteines_are_unpaired() {
        let (h, mut vh) = kabat(CAMPATH_VH);
        // Put a cysteine in CDR-H3 (H100) and remove the conserved one at H92.
        for (p, r) in vh.iter_mut() {
            if *p == Position::new(100) {
                *r = b'C';
            }
            if *p == Position::new(92) {
                *r = b'S';
            }
        }
        let found = find(h, &vh);
        assert_eq!(found.unpaired_cysteine, vec!["H92", "H100"]);
        // Kappa conserved pair is L23/L88: a light chain fragment without them reports both.
        let fragment = synthetic(30, b"AAAA");
        assert_eq!(
            find(ChainType::K, &fragment).unpaired_cysteine,
            vec!["L23", "L88"]
        );
    }
}
