//! Human germline V and J genes and the choice of an acceptor framework.
//!
//! The table is AbNumber 0.4.4's `germlines.py` (MIT; derived from IMGT®), converted by
//! `tools/convert_germlines.py` and embedded. The ranking follows AbNumber's
//! `Chain.find_human_germlines`: genes with a duplicate ungapped sequence are skipped, each
//! remaining gene is scored over the IMGT positions it shares with the chain as
//! `identical + 0.01 × BLOSUM62-similar` (identical residues count as similar too), and a stable
//! sort keeps the earliest gene of the table on ties.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Deserialize;

use super::chain::ChainType;
use super::numbering::Position;

const HUMAN_IMGT_JSON: &str = include_str!("../../data/germlines/human_imgt.json");

/// One germline gene, aligned to its set's IMGT positions (`b'-'` where it has no residue).
#[derive(Debug)]
pub struct Gene {
    pub name: String,
    aligned: Vec<u8>,
    /// `aligned` with gaps as 0, the value [`PositionMap::get`] gives a missing residue, so
    /// neither can match or be similar in the ranking.
    codes: Vec<u8>,
}

/// The V (or J) genes of one chain type, on one shared list of IMGT positions.
#[derive(Debug)]
struct GeneSet {
    positions: Vec<Position>,
    genes: Vec<Gene>,
}

/// The embedded human germline table.
#[derive(Debug)]
pub struct Germlines {
    v: [GeneSet; 3],
    j: [GeneSet; 3],
}

/// The acceptor chosen for one chain: the best V and J genes and their merge.
#[derive(Debug, Clone)]
pub struct Acceptor {
    pub v_gene: &'static str,
    pub j_gene: &'static str,
    /// The V gene's residues, then the J gene's at positions the V gene does not cover,
    /// in IMGT sequence order (AbNumber's `Chain.merge`, V taking priority).
    pub merged: Vec<(Position, u8)>,
}

impl Acceptor {
    /// The merged germline as a plain sequence.
    pub fn sequence(&self) -> Vec<u8> {
        self.merged.iter().map(|&(_, r)| r).collect()
    }
}

fn slot(chain_type: ChainType) -> usize {
    match chain_type {
        ChainType::H => 0,
        ChainType::K => 1,
        ChainType::L => 2,
    }
}

/// Sort key putting IMGT positions in sequence order: insertions follow their number, except at
/// 33, 61 and 112, where IMGT places them before it in descending order (…32A, 33B, 33A, 33).
pub fn imgt_order(position: &Position) -> (u8, i16) {
    let letter = position
        .insertion
        .map_or(0, |l| i16::from(l) - i16::from(b'A') + 1);
    if matches!(position.number, 33 | 61 | 112) {
        (position.number, -letter)
    } else {
        (position.number, letter)
    }
}

/// Residues by IMGT (or Kabat) position without hashing: numbers up to 128, insertions A–Z.
struct PositionMap {
    residues: Vec<[u8; 27]>,
}

impl PositionMap {
    fn new(numbered: &[(Position, u8)]) -> PositionMap {
        let mut residues = vec![[0u8; 27]; 129];
        for &(p, r) in numbered {
            if let Some(row) = residues.get_mut(usize::from(p.number)) {
                row[Self::column(p)] = r;
            }
        }
        PositionMap { residues }
    }

    fn column(p: Position) -> usize {
        p.insertion
            .map_or(0, |l| usize::from(l.saturating_sub(b'A')).min(25) + 1)
    }

    /// The residue at `p`, or 0 when the chain has none there.
    fn get(&self, p: Position) -> u8 {
        self.residues
            .get(usize::from(p.number))
            .map_or(0, |row| row[Self::column(p)])
    }
}

/// [`similar`] as a table indexed by the low five bits of two upper-case letters.
fn similarity_table() -> &'static [[bool; 32]; 32] {
    static TABLE: OnceLock<[[bool; 32]; 32]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [[false; 32]; 32];
        for &a in super::chain::AMINO_ACIDS {
            for &b in super::chain::AMINO_ACIDS {
                table[usize::from(a & 31)][usize::from(b & 31)] = similar(a, b);
            }
        }
        table
    })
}

/// BLOSUM62-positive pairs, as AbNumber's `SIMILAR_PAIRS` lists them (symmetric, and every
/// residue similar to itself).
fn similar(a: u8, b: u8) -> bool {
    if a == b {
        return true;
    }
    let (a, b) = if a < b { (a, b) } else { (b, a) };
    matches!(
        (a, b),
        (b'A', b'S')
            | (b'D', b'E')
            | (b'D', b'N')
            | (b'E', b'K')
            | (b'E', b'Q')
            | (b'F', b'W')
            | (b'F', b'Y')
            | (b'H', b'N')
            | (b'H', b'Y')
            | (b'I', b'L')
            | (b'I', b'M')
            | (b'I', b'V')
            | (b'K', b'Q')
            | (b'K', b'R')
            | (b'L', b'M')
            | (b'L', b'V')
            | (b'M', b'V')
            | (b'N', b'S')
            | (b'Q', b'R')
            | (b'S', b'T')
            | (b'W', b'Y')
    )
}

#[derive(Deserialize)]
struct RawSet {
    positions: Vec<String>,
    aligned_sequences: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct RawTable {
    v: HashMap<String, RawSet>,
    j: HashMap<String, RawSet>,
}

fn parse_set(raw: &RawSet) -> Result<GeneSet, String> {
    let positions = raw
        .positions
        .iter()
        .map(|label| label.parse::<Position>())
        .collect::<Result<Vec<_>, _>>()?;
    let mut seen = std::collections::HashSet::new();
    let mut genes = Vec::new();
    for (name, aligned) in &raw.aligned_sequences {
        let aligned = aligned
            .as_str()
            .ok_or_else(|| format!("{name}: not a string"))?
            .as_bytes()
            .to_vec();
        if aligned.len() != positions.len() {
            return Err(format!(
                "{name}: {} residues for {} positions",
                aligned.len(),
                positions.len()
            ));
        }
        // AbNumber's `unique=True`: a gene whose ungapped sequence repeats an earlier one's is
        // skipped, so the earlier name is the one reported.
        let ungapped: Vec<u8> = aligned.iter().copied().filter(|&r| r != b'-').collect();
        if seen.insert(ungapped) {
            let codes = aligned
                .iter()
                .map(|&r| if r == b'-' { 0 } else { r })
                .collect();
            genes.push(Gene {
                name: name.clone(),
                aligned,
                codes,
            });
        }
    }
    Ok(GeneSet { positions, genes })
}

impl Germlines {
    /// The embedded human table, parsed once.
    pub fn human() -> &'static Germlines {
        static TABLE: OnceLock<Germlines> = OnceLock::new();
        TABLE.get_or_init(|| {
            Germlines::parse(HUMAN_IMGT_JSON)
                .expect("the embedded germline table is checked by the germlines tests")
        })
    }

    fn parse(json: &str) -> Result<Germlines, String> {
        let raw: RawTable = serde_json::from_str(json).map_err(|e| e.to_string())?;
        let set = |sets: &HashMap<String, RawSet>, t: &str| {
            sets.get(t)
                .ok_or_else(|| format!("no {t} genes"))
                .and_then(parse_set)
        };
        Ok(Germlines {
            v: [set(&raw.v, "H")?, set(&raw.v, "K")?, set(&raw.v, "L")?],
            j: [set(&raw.j, "H")?, set(&raw.j, "K")?, set(&raw.j, "L")?],
        })
    }

    /// The best gene of a set against a chain: the highest score, the earliest gene on ties
    /// (numpy's stable argsort of the negated scores).
    fn best(set: &GeneSet, chain: &PositionMap) -> usize {
        let residues: Vec<u8> = set.positions.iter().map(|p| chain.get(*p)).collect();
        let identical = |gene: &Gene| -> u32 {
            // Vectorised: 0 (no residue on either side) never counts.
            gene.codes
                .iter()
                .zip(&residues)
                .map(|(&g, &r)| u32::from(g == r) & u32::from(r != 0))
                .sum()
        };
        // Similar pairs add at most 0.01 per position, less than 2 in all, while a gene's own
        // similar count is at least its identical count: a gene two or more identities behind
        // the most identical one cannot reach its score, so only the rest are scored in full.
        let most = set.genes.iter().map(identical).max().unwrap_or(0);
        let similarity = similarity_table();
        let mut best = (0, f64::INFINITY);
        for (i, gene) in set.genes.iter().enumerate() {
            let same = identical(gene);
            if same + 2 <= most {
                continue;
            }
            let similar_count: u32 = gene
                .codes
                .iter()
                .zip(&residues)
                .map(|(&g, &r)| u32::from(similarity[usize::from(g & 31)][usize::from(r & 31)]))
                .sum();
            // The same float expression numpy evaluates, so ties fall the same way.
            let score = -f64::from(same) - f64::from(similar_count) * 0.01;
            if score < best.1 {
                best = (i, score);
            }
        }
        best.0
    }

    /// The closest human V and J genes of the chain's own type (kappa never mixed with lambda),
    /// from its IMGT numbering, and their merge.
    pub fn acceptor(&'static self, chain_type: ChainType, imgt: &[(Position, u8)]) -> Acceptor {
        let chain = PositionMap::new(imgt);
        let (v_set, j_set) = (&self.v[slot(chain_type)], &self.j[slot(chain_type)]);
        let v = &v_set.genes[Self::best(v_set, &chain)];
        let j = &j_set.genes[Self::best(j_set, &chain)];

        let mut merged: Vec<(Position, u8)> = Vec::with_capacity(v.aligned.len() + j.aligned.len());
        let present = |set: &'static GeneSet, gene: &'static Gene| {
            set.positions
                .iter()
                .copied()
                .zip(gene.aligned.iter().copied())
                .filter(|&(_, r)| r != b'-')
        };
        merged.extend(present(v_set, v));
        for (position, residue) in present(j_set, j) {
            if !merged.iter().any(|&(p, _)| p == position) {
                merged.push((position, residue));
            }
        }
        merged.sort_by_key(|(p, _)| imgt_order(p));
        Acceptor {
            v_gene: &v.name,
            j_gene: &j.name,
            merged,
        }
    }
}

const SPECIES_V_JSON: &str = include_str!("../../data/germlines/species_v.json");

/// V genes of every species in ANARCI's germline table, 128 IMGT positions each (no insertions),
/// for calling the species a chain is closest to.
struct SpeciesTable {
    /// Per chain type: (species, gene) with its residues at IMGT 1..=128 (`b'-'` for none).
    genes: [Vec<(&'static str, [u8; 128])>; 3],
    /// Residues per gene, parallel to `genes`.
    lengths: [Vec<usize>; 3],
}

#[derive(Deserialize)]
#[serde(rename_all = "UPPERCASE")]
struct RawSpecies {
    v: HashMap<String, serde_json::Map<String, serde_json::Value>>,
}

fn species_table() -> &'static SpeciesTable {
    static TABLE: OnceLock<SpeciesTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        parse_species(SPECIES_V_JSON)
            .expect("the embedded species table is checked by the germlines tests")
    })
}

fn parse_species(json: &'static str) -> Result<SpeciesTable, String> {
    let raw: RawSpecies = serde_json::from_str(json).map_err(|e| e.to_string())?;
    let mut genes: [Vec<(&'static str, [u8; 128])>; 3] = Default::default();
    for (slot, chain) in ["H", "K", "L"].iter().enumerate() {
        let by_species = raw
            .v
            .get(*chain)
            .ok_or_else(|| format!("no {chain} genes"))?;
        for (species, table) in by_species {
            // Species names are few; leaking them once gives the results `'static` names.
            let species: &'static str = Box::leak(species.clone().into_boxed_str());
            for (name, aligned) in table.as_object().ok_or("species table is not an object")? {
                let aligned = aligned
                    .as_str()
                    .ok_or_else(|| format!("{name}: not a string"))?;
                let residues: [u8; 128] = aligned
                    .as_bytes()
                    .try_into()
                    .map_err(|_| format!("{name}: {} positions, not 128", aligned.len()))?;
                genes[slot].push((species, residues));
            }
        }
    }
    let lengths = genes.each_ref().map(|genes| {
        genes
            .iter()
            .map(|(_, g)| g.iter().filter(|&&r| r != b'-').count().max(1))
            .collect()
    });
    Ok(SpeciesTable { genes, lengths })
}

/// Every species' V genes of one chain type, IMGT-aligned over 128 positions (`b'-'` for none).
pub fn species_genes(chain_type: ChainType) -> impl Iterator<Item = &'static [u8; 128]> {
    species_table().genes[slot(chain_type)]
        .iter()
        .map(|(_, gene)| gene)
}

/// The smallest share of a V gene's residues a chain must match for its species to be named.
const MIN_SPECIES_IDENTITY: f64 = 0.6;

/// The species of the V germline closest to the chain (identical residues at the same IMGT
/// position, over ANARCI's germline table), or `None` when no germline is close enough.
pub fn closest_species(chain_type: ChainType, imgt: &[(Position, u8)]) -> Option<&'static str> {
    let mut chain = [b'.'; 128];
    for (position, residue) in imgt {
        if position.insertion.is_none() && (1..=128).contains(&position.number) {
            chain[usize::from(position.number) - 1] = *residue;
        }
    }
    let table = species_table();
    let mut best: Option<(&'static str, f64)> = None;
    let genes = &table.genes[slot(chain_type)];
    for ((species, gene), &length) in genes.iter().zip(&table.lengths[slot(chain_type)]) {
        // Byte-wide, branch-free counting the compiler vectorises: at most 128 matches, so a
        // u8 accumulator cannot overflow.
        let identical = chain
            .iter()
            .zip(gene)
            .fold(0u8, |count, (c, g)| count + u8::from(c == g));
        let identity = f64::from(identical) / length as f64;
        if best.is_none_or(|(_, b)| identity > b) {
            best = Some((species, identity));
        }
    }
    best.filter(|&(_, identity)| identity >= MIN_SPECIES_IDENTITY)
        .map(|(species, _)| species)
}

/// Fraction of a chain's residues identical to the germline at the same IMGT position.
pub fn germline_content(imgt: &[(Position, u8)], germline: &[(Position, u8)]) -> f64 {
    if imgt.is_empty() {
        return 0.0;
    }
    let germline = PositionMap::new(germline);
    let identical = imgt.iter().filter(|&&(p, r)| germline.get(p) == r).count();
    identical as f64 / imgt.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_table_parses_with_every_chain_type() {
        let table = Germlines::parse(HUMAN_IMGT_JSON).unwrap();
        for set in table.v.iter().chain(table.j.iter()) {
            assert!(!set.genes.is_empty());
        }
        // AbNumber 0.4.4 ships 241 human IGHV alleles, some with identical protein sequences.
        assert!(table.v[0].genes.len() < 241);
        assert!(table.v[0].genes.iter().all(|g| g.name.starts_with("IGHV")));
        assert!(table.v[1].genes.iter().all(|g| g.name.starts_with("IGKV")));
        assert!(table.j[2].genes.iter().all(|g| g.name.starts_with("IGLJ")));
    }

    #[test]
    fn species_table_parses_with_human_and_mouse_for_every_chain_type() {
        let table = parse_species(SPECIES_V_JSON).unwrap();
        for genes in &table.genes {
            assert!(genes.iter().any(|(s, _)| *s == "human"));
            assert!(genes.iter().any(|(s, _)| *s == "mouse"));
        }
    }

    #[test]
    fn imgt_order_puts_cdr_insertions_where_imgt_does() {
        let p = |s: &str| s.parse::<Position>().unwrap();
        let mut labels = [
            p("112"),
            p("111A"),
            p("112A"),
            p("111"),
            p("112B"),
            p("113"),
        ];
        labels.sort_by_key(imgt_order);
        let shown: Vec<String> = labels.iter().map(ToString::to_string).collect();
        assert_eq!(shown, ["111", "111A", "112B", "112A", "112", "113"]);
    }

    fn gene(name: &str, aligned: &[u8]) -> Gene {
        Gene {
            name: name.into(),
            aligned: aligned.to_vec(),
            codes: aligned
                .iter()
                .map(|&r| if r == b'-' { 0 } else { r })
                .collect(),
        }
    }

    #[test]
    fn a_germline_gap_is_never_similar_and_ties_keep_the_earlier_gene() {
        // Chain MLL at positions 1–3. C (ALL) and A (-LL) both have 2 identities and 2 similar
        // pairs (A–M is not BLOSUM-positive, a gap is never similar): a tie, so the earlier
        // gene, C, wins as numpy's stable argsort picks it.
        let set = GeneSet {
            positions: vec![Position::new(1), Position::new(2), Position::new(3)],
            genes: vec![gene("C", b"ALL"), gene("A", b"-LL")],
        };
        let chain = PositionMap::new(&[
            (Position::new(1), b'M'),
            (Position::new(2), b'L'),
            (Position::new(3), b'L'),
        ]);
        assert_eq!(Germlines::best(&set, &chain), 0);
        // One more identity beats any number of similar pairs.
        let set = GeneSet {
            positions: set.positions,
            genes: vec![gene("V", b"VII"), gene("M", b"MLA")],
        };
        assert_eq!(Germlines::best(&set, &chain), 1);
    }

    #[test]
    fn similarity_is_symmetric_and_reflexive() {
        assert!(similar(b'S', b'A') && similar(b'A', b'S'));
        assert!(similar(b'W', b'W'));
        assert!(!similar(b'W', b'A'));
    }
}
