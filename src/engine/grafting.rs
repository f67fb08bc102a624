//! CDR grafting onto a human acceptor framework, with optional Vernier and VHH-hallmark
//! back-mutations.
//!
//! The rule is AbNumber's `Chain.graft_cdrs_onto`: both chains in Kabat numbering, the
//! acceptor's residues everywhere outside the Kabat CDRs, then every parental residue inside a
//! Kabat CDR (and, for the Vernier strategy, at a Vernier position) placed at its own position.
//! Parental framework positions the acceptor lacks are dropped; acceptor positions the parental
//! chain lacks are kept. The result is read in Kabat order.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::chain::ChainType;
use super::germlines::{Acceptor, Germlines};
use super::numbering::{NumberedChain, Position, Scheme, is_kabat_cdr, number_as};
use super::sequence::ChainError;

/// A chain grafted onto its closest human germline.
#[derive(Debug, Clone)]
pub struct Graft {
    pub acceptor: Acceptor,
    /// The grafted chain, Kabat-numbered, in Kabat order.
    pub kabat: Vec<(Position, u8)>,
}

impl Graft {
    pub fn sequence(&self) -> String {
        self.kabat.iter().map(|&(_, r)| r as char).collect()
    }
}

/// AbNumber's `graft_cdrs_onto_human_germline`: the closest human V and J (by the chain's IMGT
/// numbering), merged and renumbered in Kabat, then the parental Kabat CDRs grafted onto it.
pub fn graft_onto_human_germline(
    chain: &NumberedChain,
    back: Backmutations,
) -> Result<Graft, ChainError> {
    let imgt: Vec<(Position, u8)> = chain.numbered(Scheme::Imgt).collect();
    let acceptor = Germlines::human().acceptor(chain.chain_type, &imgt);
    graft_onto(chain, acceptor, back)
}

/// Which framework positions keep the parental residue besides the CDRs (AbNumber's
/// `graft_cdrs_onto(backmutate_vernier, backmutate_vhh_hallmark)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backmutations {
    pub vernier: bool,
    pub hallmark: bool,
}

impl Backmutations {
    pub const NONE: Backmutations = Backmutations {
        vernier: false,
        hallmark: false,
    };
    pub const VERNIER: Backmutations = Backmutations {
        vernier: true,
        hallmark: false,
    };
}

/// Grafts onto a given acceptor (the caller may already have chosen it).
pub fn graft_onto(
    chain: &NumberedChain,
    acceptor: Acceptor,
    back: Backmutations,
) -> Result<Graft, ChainError> {
    let acceptor_kabat = acceptor_kabat(chain.chain_type, &acceptor)?;
    let parental: Vec<(Position, u8)> = chain.numbered(Scheme::Kabat).collect();
    let kabat = graft(chain.chain_type, &parental, &acceptor_kabat, back);
    Ok(Graft { acceptor, kabat })
}

type AcceptorKey = (ChainType, &'static str, &'static str);
type AcceptorCache = Mutex<HashMap<AcceptorKey, Arc<Vec<(Position, u8)>>>>;

/// The merged germline's Kabat numbering. It depends only on the V and J genes, and there are a
/// few thousand pairs at most, so each is numbered once per process (an alignment is most of a
/// graft's cost).
fn acceptor_kabat(
    chain_type: ChainType,
    acceptor: &Acceptor,
) -> Result<Arc<Vec<(Position, u8)>>, ChainError> {
    static CACHE: OnceLock<AcceptorCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let key = (chain_type, acceptor.v_gene, acceptor.j_gene);
    if let Some(found) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(&key)
    {
        return Ok(Arc::clone(found));
    }
    let numbered = number_as(&acceptor.sequence(), chain_type)?;
    let kabat = Arc::new(numbered.numbered(Scheme::Kabat).collect::<Vec<_>>());
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(key, Arc::clone(&kabat));
    Ok(kabat)
}

/// Vernier-zone positions (Foote & Winter 1992), by Kabat number; insertions at these numbers
/// count too, as AbNumber compares the number alone.
pub fn is_vernier(chain_type: ChainType, position: Position) -> bool {
    let n = position.number;
    if chain_type.is_heavy() {
        matches!(n, 2 | 27..=30 | 47..=49 | 67 | 69 | 71 | 73 | 78 | 93 | 94 | 103)
    } else {
        matches!(n, 2 | 4 | 35 | 36 | 46..=49 | 64 | 66 | 68 | 69 | 71 | 98)
    }
}

/// The VHH hallmark positions of a heavy chain, Kabat H37, H44, H45 and H47 (by number, as
/// AbNumber's `is_vhh_hallmark`): where a nanobody's framework 2 differs from a VH that pairs
/// with a VL (V37/G44/L45/W47 against F/Y37, E/Q44, R45, F/L/G47), keeping it soluble alone.
pub fn is_vhh_hallmark(chain_type: ChainType, position: Position) -> bool {
    chain_type.is_heavy() && matches!(position.number, 37 | 44 | 45 | 47)
}

/// The VH/VL interface positions of a Kabat-numbered chain, in sequence order: the residues
/// whose side chains pack against the other domain (Chothia, Novotny, Bruccoleri & Karplus
/// 1985, J Mol Biol 186:651, and the list Vargas-Madrazo & Paz 2003, J Mol Biol 326:801,
/// give): VL 34, 36, 38, 44, 46, 87, 89, 91, 96, 98 and VH 35, 37, 39, 45, 47, 91, 93, 95,
/// 100x, 103, where 100x is the last CDR-H3 residue before H101 (whatever its insertion
/// letter). The framework ones (L36, L38, L44, L46, L87, L98, H37, H39, H45, H47, H91, H103)
/// are the conserved core of the packing; a mutation there can change how the chains pair.
pub fn interface_positions(chain_type: ChainType, kabat: &[(Position, u8)]) -> Vec<Position> {
    let listed = |p: Position| {
        p.insertion.is_none()
            && if chain_type.is_heavy() {
                matches!(p.number, 35 | 37 | 39 | 45 | 47 | 91 | 93 | 95 | 103)
            } else {
                matches!(p.number, 34 | 36 | 38 | 44 | 46 | 87 | 89 | 91 | 96 | 98)
            }
    };
    let before_101 = |i: usize| {
        chain_type.is_heavy()
            && (95..=100).contains(&kabat[i].0.number)
            && kabat.get(i + 1).is_some_and(|(next, _)| next.number == 101)
    };
    (0..kabat.len())
        .filter(|&i| listed(kabat[i].0) || before_101(i))
        .map(|i| kabat[i].0)
        .collect()
}

/// Grafts the parental chain's Kabat CDRs onto the acceptor; both Kabat-numbered.
pub fn graft(
    chain_type: ChainType,
    parental: &[(Position, u8)],
    acceptor: &[(Position, u8)],
    back: Backmutations,
) -> Vec<(Position, u8)> {
    let mut grafted: BTreeMap<Position, u8> = acceptor
        .iter()
        .copied()
        .filter(|&(p, _)| !is_kabat_cdr(chain_type, p))
        .collect();
    for &(position, residue) in parental {
        if is_kabat_cdr(chain_type, position)
            || (back.vernier && is_vernier(chain_type, position))
            || (back.hallmark && is_vhh_hallmark(chain_type, position))
        {
            grafted.insert(position, residue);
        }
    }
    grafted.into_iter().collect()
}

/// The mutations from `parental` to `humanized`, aligned by Kabat position, in Kabat order, as
/// `H5:Q>V`; a position present in only one chain counts, with `-` for the missing residue.
pub fn mutation_list(
    chain_type: ChainType,
    parental: &[(Position, u8)],
    humanized: &[(Position, u8)],
) -> Vec<String> {
    let mut aligned: BTreeMap<Position, (u8, u8)> = BTreeMap::new();
    for &(p, r) in parental {
        aligned.entry(p).or_insert((b'-', b'-')).0 = r;
    }
    for &(p, r) in humanized {
        aligned.entry(p).or_insert((b'-', b'-')).1 = r;
    }
    aligned
        .into_iter()
        .filter(|(_, (from, to))| from != to)
        .map(|(p, (from, to))| format!("{}:{}>{}", p.label(chain_type), from as char, to as char))
        .collect()
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

    #[test]
    fn vernier_positions_are_the_kabat_zone() {
        let h = ChainType::H;
        for n in [2, 27, 30, 47, 49, 67, 69, 71, 73, 78, 93, 94, 103] {
            assert!(is_vernier(h, Position::new(n)), "H{n}");
        }
        for n in [1, 3, 26, 31, 46, 50, 68, 82, 95, 104] {
            assert!(!is_vernier(h, Position::new(n)), "H{n}");
        }
        for n in [2, 4, 35, 36, 46, 49, 64, 66, 68, 69, 71, 98] {
            assert!(is_vernier(ChainType::K, Position::new(n)), "L{n}");
        }
        assert!(!is_vernier(ChainType::L, Position::new(67)));
    }

    #[test]
    fn interface_positions_include_the_residue_before_h101() {
        // Kabat H3 with insertions 100A-100C: the residue before H101 is H100C.
        let heavy = chain(&[
            ("35", b'N'),
            ("35A", b'Y'),
            ("37", b'V'),
            ("95", b'D'),
            ("100", b'Y'),
            ("100A", b'A'),
            ("100C", b'M'),
            ("101", b'D'),
            ("103", b'W'),
        ]);
        let labels: Vec<String> = interface_positions(ChainType::H, &heavy)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(labels, ["35", "37", "95", "100C", "103"]);
        let light = chain(&[("34", b'N'), ("35", b'W'), ("36", b'Y'), ("98", b'F')]);
        let labels: Vec<String> = interface_positions(ChainType::K, &light)
            .into_iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(labels, ["34", "36", "98"]);
    }

    #[test]
    fn cdrs_come_from_parental_and_frameworks_from_acceptor() {
        let h = ChainType::H;
        // H30 framework (Vernier), H31–H35A CDR-H1, H36 framework.
        let parental = chain(&[
            ("30", b'T'),
            ("31", b'D'),
            ("35", b'N'),
            ("35A", b'Y'),
            ("36", b'W'),
            ("82A", b'N'),
        ]);
        let acceptor = chain(&[
            ("29", b'F'),
            ("30", b'S'),
            ("31", b'S'),
            ("35", b'S'),
            ("36", b'W'),
        ]);
        let straight = graft(h, &parental, &acceptor, Backmutations::NONE);
        assert_eq!(
            straight,
            chain(&[
                ("29", b'F'),
                ("30", b'S'),
                ("31", b'D'),
                ("35", b'N'),
                ("35A", b'Y'),
                ("36", b'W')
            ])
        );
        let vernier = graft(h, &parental, &acceptor, Backmutations::VERNIER);
        assert_eq!(vernier[1], ("30".parse().unwrap(), b'T'));
        assert_eq!(
            mutation_list(h, &parental, &straight),
            ["H29:->F", "H30:T>S", "H82A:N>-"]
        );
    }
}
