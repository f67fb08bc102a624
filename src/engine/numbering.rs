//! Numbering one chain in IMGT, Kabat and Chothia from a single alignment.
//!
//! A thin adapter over `immunum` (MIT, pinned): it aligns the chain against per-chain-type
//! profiles, finds the variable domain inside a longer sequence, and applies the schemes'
//! insertion rules. What this module adds: our position labels, our errors, one alignment for
//! every scheme, and the checks that an input field holds the chain it claims to.

use std::cell::RefCell;
use std::fmt;
use std::sync::OnceLock;

use immunum::alignment::{AlignBuffer, AlignedPosition};
use immunum::numbering::apply_numbering;
use immunum::{Alignment, Chain, Scheme as ImmunumScheme, ScoringMatrix, align};
use serde::Serialize;

use super::chain::ChainType;
use super::sequence::ChainError;

/// A numbering scheme veneer reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    Imgt,
    Kabat,
    Chothia,
}

impl Scheme {
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Imgt => "imgt",
            Scheme::Kabat => "kabat",
            Scheme::Chothia => "chothia",
        }
    }
}

impl std::str::FromStr for Scheme {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "imgt" => Ok(Scheme::Imgt),
            "kabat" => Ok(Scheme::Kabat),
            "chothia" => Ok(Scheme::Chothia),
            other => Err(format!(
                "unknown numbering scheme {other:?}; use imgt, kabat or chothia"
            )),
        }
    }
}

/// A numbered position: number plus optional insertion letter (`100`, `100A`).
///
/// The derived order (number, then no letter before `A` before `B`) is sequence order in Kabat
/// and Chothia, where insertions always follow their number. IMGT numbers some CDR3 insertions
/// in descending order (`112A` before `112`), so IMGT positions are only ever kept in sequence
/// order, never sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    pub number: u8,
    pub insertion: Option<u8>,
}

impl Position {
    pub const fn new(number: u8) -> Self {
        Position {
            number,
            insertion: None,
        }
    }

    /// The API's label: chain letter + number + insertion (`H100A`; kappa and lambda use `L`).
    pub fn label(self, chain_type: ChainType) -> String {
        format!("{}{}", chain_type.label_prefix(), self)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.insertion {
            Some(letter) => write!(f, "{}{}", self.number, letter as char),
            None => write!(f, "{}", self.number),
        }
    }
}

impl std::str::FromStr for Position {
    type Err = String;

    /// Parses `100`, `100A`, and also labels with a chain letter (`H100A`, `L27`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim_start_matches(['H', 'L', 'K']);
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let number = s[..digits]
            .parse()
            .map_err(|_| format!("{s:?} is not a position"))?;
        let insertion = match s.as_bytes()[digits..] {
            [] => None,
            [letter] if letter.is_ascii_uppercase() => Some(letter),
            _ => return Err(format!("{s:?} is not a position")),
        };
        Ok(Position { number, insertion })
    }
}

/// One chain's variable domain, numbered in every scheme from the same alignment.
#[derive(Debug, Clone)]
pub struct NumberedChain {
    pub chain_type: ChainType,
    /// The residues of the numbered domain (flanks trimmed off).
    pub residues: Vec<u8>,
    /// 0-based index of the domain's first residue in the input.
    pub start: usize,
    /// Length of the whole input, so trims at either end can be reported.
    pub input_length: usize,
    imgt: Vec<Position>,
    kabat: Vec<Position>,
    chothia: Vec<Position>,
}

impl NumberedChain {
    /// Positions parallel to `residues` under `scheme`.
    pub fn positions(&self, scheme: Scheme) -> &[Position] {
        match scheme {
            Scheme::Imgt => &self.imgt,
            Scheme::Kabat => &self.kabat,
            Scheme::Chothia => &self.chothia,
        }
    }

    /// `(position, residue)` pairs in sequence order.
    pub fn numbered(&self, scheme: Scheme) -> impl Iterator<Item = (Position, u8)> + '_ {
        self.positions(scheme)
            .iter()
            .copied()
            .zip(self.residues.iter().copied())
    }

    /// Residues trimmed before and after the domain.
    pub fn trimmed(&self) -> (usize, usize) {
        (
            self.start,
            self.input_length - self.start - self.residues.len(),
        )
    }
}

/// Which residues of a Kabat-numbered chain lie in a Kabat-definition CDR (the definition
/// BioPhi and AbNumber graft with): H31–H35B, H50–H65, H95–H102; L24–L34, L50–L56, L89–L97.
pub fn is_kabat_cdr(chain_type: ChainType, position: Position) -> bool {
    kabat_cdr(chain_type, position).is_some()
}

/// The Kabat-definition CDR (1, 2 or 3) a Kabat position falls in, if any.
pub fn kabat_cdr(chain_type: ChainType, position: Position) -> Option<u8> {
    let n = position.number;
    let spans: [(u8, u8); 3] = if chain_type.is_heavy() {
        [(31, 35), (50, 65), (95, 102)]
    } else {
        [(24, 34), (50, 56), (89, 97)]
    };
    spans
        .iter()
        .position(|&(start, end)| (start..=end).contains(&n))
        .map(|i| i as u8 + 1)
}

/// The CDR (1, 2 or 3) a position falls in under `scheme`'s own CDR definition, as ANARCI and
/// AbNumber delimit them: IMGT 27–38, 56–65, 105–117; Kabat as [`kabat_cdr`]; Chothia
/// H26–H32, H52–H56, H95–H102 and L24–L34, L50–L56, L89–L97.
pub fn cdr(scheme: Scheme, chain_type: ChainType, position: Position) -> Option<u8> {
    let spans: [(u8, u8); 3] = match scheme {
        Scheme::Kabat => return kabat_cdr(chain_type, position),
        Scheme::Imgt => [(27, 38), (56, 65), (105, 117)],
        Scheme::Chothia if chain_type.is_heavy() => [(26, 32), (52, 56), (95, 102)],
        Scheme::Chothia => [(24, 34), (50, 56), (89, 97)],
    };
    let n = position.number;
    spans
        .iter()
        .position(|&(start, end)| (start..=end).contains(&n))
        .map(|i| i as u8 + 1)
}

/// The shortest domain accepted: FR1 to FR4 of the shortest real V domains is ~100 residues;
/// below ~70 a "domain" is a fragment an alignment happened to fit.
const MIN_DOMAIN_LENGTH: usize = 70;

/// immunum's own threshold on normalised alignment score for "this is an antibody domain".
const MIN_CONFIDENCE: f32 = immunum::DEFAULT_MIN_CONFIDENCE;

/// The last IMGT position ANARCI's human models reach: the length of the first human J germline
/// in ANARCI's table (`get_hmm_length`), 127 for kappa, 128 for heavy and lambda.
fn last_imgt_state(chain_type: ChainType) -> u8 {
    match chain_type {
        ChainType::K => 127,
        ChainType::H | ChainType::L => 128,
    }
}

fn profiles() -> &'static [(ChainType, ScoringMatrix); 3] {
    static PROFILES: OnceLock<[(ChainType, ScoringMatrix); 3]> = OnceLock::new();
    PROFILES.get_or_init(|| {
        [
            (ChainType::H, ScoringMatrix::load(Chain::IGH)),
            (ChainType::K, ScoringMatrix::load(Chain::IGK)),
            (ChainType::L, ScoringMatrix::load(Chain::IGL)),
        ]
    })
}

thread_local! {
    // Reused by every alignment on this thread, as immunum's own annotator does.
    static ALIGN_BUFFER: RefCell<AlignBuffer> = RefCell::new(AlignBuffer::new());
}

/// The best alignment of `text` against the profiles of `chain_types`, by raw score.
fn best_alignment(text: &str, chain_types: &[ChainType]) -> (ChainType, Alignment) {
    ALIGN_BUFFER.with_borrow_mut(|buffer| {
        let mut best: Option<(ChainType, Alignment)> = None;
        for (chain_type, profile) in profiles() {
            if !chain_types.contains(chain_type) {
                continue;
            }
            let alignment = align(text, &profile.positions, Some(&mut *buffer));
            if best.as_ref().is_none_or(|(_, b)| alignment.score > b.score) {
                best = Some((*chain_type, alignment));
            }
        }
        best.expect("at least one chain type is always searched")
    })
}

fn confidence(alignment: &Alignment) -> f32 {
    if alignment.max_confidence_score > 0.0 {
        (alignment.confidence_score / alignment.max_confidence_score).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn immunum_chain(chain_type: ChainType) -> Chain {
    match chain_type {
        ChainType::H => Chain::IGH,
        ChainType::K => Chain::IGK,
        ChainType::L => Chain::IGL,
    }
}

/// Numbers one chain (already cleaned by [`super::sequence::clean`]), detecting its type. A
/// sequence holding two variable domains (an scFv) is refused: see [`number_domains`].
pub fn number(residues: &[u8]) -> Result<NumberedChain, ChainError> {
    let chain = detect_and_number(residues)?;
    refuse_second_domain(
        residues,
        &chain,
        &[ChainType::H, ChainType::K, ChainType::L],
    )?;
    Ok(chain)
}

/// The best domain of any chain type, without looking for others.
fn detect_and_number(residues: &[u8]) -> Result<NumberedChain, ChainError> {
    // Aligning against one profile instead of three is most of numbering's cost; when the
    // chain's 4-mers leave no doubt about its type, align only against that one.
    if let Some(chain_type) = obvious_chain_type(residues)
        && let Ok(chain) = number_among(residues, &[chain_type])
    {
        return Ok(chain);
    }
    number_among(residues, &[ChainType::H, ChainType::K, ChainType::L])
}

/// Every variable domain of a sequence (an scFv, a tandem bispecific, a bivalent nanobody), in
/// sequence order, each numbered as ANARCI numbers each of its HMMER hits: the best domain of
/// the whole sequence first, then, while a stretch before or after the domains found is long
/// enough to hold one, the best confident domain of that stretch. `start` and `input_length`
/// refer to the whole sequence. Fails only when no domain at all is found.
pub fn number_domains(residues: &[u8]) -> Result<Vec<NumberedChain>, ChainError> {
    let first = detect_and_number(residues)?;
    let mut stretches = vec![
        (0, first.start),
        (first.start + first.residues.len(), residues.len()),
    ];
    // Each domain with the stretch of the sequence it was found in.
    let mut found = vec![((0, residues.len()), first)];
    while let Some((from, to)) = stretches.pop() {
        if to - from < MIN_DOMAIN_LENGTH {
            continue;
        }
        let Ok(domain) = detect_and_number(&residues[from..to]) else {
            continue;
        };
        let start = from + domain.start;
        stretches.push((from, start));
        stretches.push((start + domain.residues.len(), to));
        found.push(((from, to), domain));
    }
    if found.len() == 1 {
        return Ok(found.into_iter().map(|(_, domain)| domain).collect());
    }
    found.sort_by_key(|((from, _), domain)| from + domain.start);
    // ANARCI's end rules for a sequence of several domains differ from a lone domain's.
    found
        .into_iter()
        .enumerate()
        .map(|(index, ((from, to), domain))| {
            let to = from
                + domain.start
                + framework_4_reach(&domain).unwrap_or(to - from - domain.start);
            let ends = Ends {
                extend_start: index == 0,
                extend_end: false,
            };
            let mut domain = number_with(&residues[from..to], &[domain.chain_type], ends)?;
            domain.start += from;
            domain.input_length = residues.len();
            Ok(domain)
        })
        .collect()
}

/// When a domain's IMGT 118 is not the W/F of framework 4's W/F-G-x-G but such a motif follows
/// its CDR3 (the aligner took the glycines of a following linker for framework 4), how far the
/// domain can reach: through the motif and the ten framework-4 positions after it. The aligner
/// is then run again on the sequence up to there, as hmmscan never reads a linker as FR4.
fn framework_4_reach(domain: &NumberedChain) -> Option<usize> {
    let imgt = domain.positions(Scheme::Imgt);
    let at = |n: u8| {
        imgt.iter()
            .position(|p| p.number == n && p.insertion.is_none())
    };
    let anchor = at(118)?;
    if matches!(domain.residues[anchor], b'W' | b'F') {
        return None;
    }
    let cdr3 = at(104)? + 4;
    let motif = domain
        .residues
        .get(cdr3..)?
        .windows(4)
        .position(|w| matches!(w[0], b'W' | b'F') && w[1] == b'G' && w[3] == b'G')?;
    Some(cdr3 + motif + 11)
}

/// 4-mers are indexed in base 20 over [`super::chain::AMINO_ACIDS`].
const KMER_SPACE: usize = 20 * 20 * 20 * 20;

/// For every 4-mer, a bit per chain type (H, K, L) whose V genes (any species in ANARCI's table)
/// contain it.
fn kmer_table() -> &'static [u8] {
    static TABLE: OnceLock<Vec<u8>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = vec![0u8; KMER_SPACE];
        for (bit, chain_type) in [ChainType::H, ChainType::K, ChainType::L]
            .into_iter()
            .enumerate()
        {
            for gene in super::germlines::species_genes(chain_type) {
                let residues: Vec<u8> = gene.iter().copied().filter(|&r| r != b'-').collect();
                for_each_kmer(&residues, |k| table[k] |= 1 << bit);
            }
        }
        table
    })
}

fn for_each_kmer(residues: &[u8], mut visit: impl FnMut(usize)) {
    let codes: Vec<Option<usize>> = residues.iter().map(|&r| aa(r)).collect();
    for window in codes.windows(4) {
        if let [Some(a), Some(b), Some(c), Some(d)] = *window {
            visit(((a * 20 + b) * 20 + c) * 20 + d);
        }
    }
}

/// The chain type whose germline 4-mers the chain shares clearly more of than the others':
/// at least 20 shared 4-mers and twice the runner-up. `None` leaves the choice to alignment.
pub fn obvious_chain_type(residues: &[u8]) -> Option<ChainType> {
    let table = kmer_table();
    let mut hits = [0u32; 3];
    for_each_kmer(residues, |k| {
        let bits = table[k];
        for (bit, count) in hits.iter_mut().enumerate() {
            *count += u32::from(bits >> bit & 1);
        }
    });
    let mut order = [0usize, 1, 2];
    order.sort_by_key(|&i| std::cmp::Reverse(hits[i]));
    let (best, second) = (hits[order[0]], hits[order[1]]);
    (best >= 20 && best >= 2 * second).then(|| [ChainType::H, ChainType::K, ChainType::L][order[0]])
}

/// Numbers a chain whose type is already known (a germline, or a chain we built ourselves),
/// skipping the alignments against the other chain types.
pub fn number_as(residues: &[u8], chain_type: ChainType) -> Result<NumberedChain, ChainError> {
    let chain = number_among(residues, &[chain_type])?;
    refuse_second_domain(residues, &chain, &[chain_type])?;
    Ok(chain)
}

fn number_among(residues: &[u8], chain_types: &[ChainType]) -> Result<NumberedChain, ChainError> {
    number_with(residues, chain_types, Ends::ALONE)
}

/// Which of ANARCI's end rules apply to a domain (`_hmm_alignment_to_states`): the N-terminal
/// extension over up to 4 unmatched first states only for the first domain of a sequence, the
/// C-terminal extension through framework 4 only when the sequence holds one domain.
#[derive(Debug, Clone, Copy)]
struct Ends {
    extend_start: bool,
    extend_end: bool,
}

impl Ends {
    const ALONE: Ends = Ends {
        extend_start: true,
        extend_end: true,
    };
}

fn number_with(
    residues: &[u8],
    chain_types: &[ChainType],
    ends: Ends,
) -> Result<NumberedChain, ChainError> {
    // `clean` guarantees ASCII upper-case letters, so this cannot fail.
    let text = std::str::from_utf8(residues).map_err(|_| ChainError::NotAntibody {
        detail: "the sequence is not text".into(),
    })?;
    if residues.len() < 30 {
        return Err(ChainError::TooShort {
            length: residues.len(),
        });
    }
    let (chain_type, alignment) = best_alignment(text, chain_types);
    let confidence = confidence(&alignment);
    if confidence < MIN_CONFIDENCE {
        return Err(ChainError::NotAntibody {
            detail: format!(
                "its best alignment to heavy, kappa and lambda profiles scores {confidence:.2} of a perfect match; {MIN_CONFIDENCE:.2} is needed"
            ),
        });
    }
    let mut states = alignment.positions;
    let (start, mut end) = (alignment.query_start, alignment.query_end);
    if ends.extend_end {
        end = extend_to_framework_end(&mut states, end, last_imgt_state(chain_type));
    }
    let start = anarci_start(
        &mut states,
        residues,
        start,
        end,
        chain_type,
        ends.extend_start,
    );
    place_framework_deletions(&mut states[start..=end], &residues[start..=end], chain_type);
    let length = end + 1 - start;
    if length < MIN_DOMAIN_LENGTH {
        return Err(ChainError::TooShort { length });
    }
    let domain = &states[start..=end];
    let chain = immunum_chain(chain_type);
    let positions = |scheme| -> Vec<Position> {
        let mut positions: Vec<Position> = apply_numbering(domain, scheme, chain)
            .iter()
            .map(|p| Position {
                number: p.number,
                insertion: p.insertion.map(|c| c as u8),
            })
            .collect();
        // immunum's Kabat and Chothia light-chain rules stop at IMGT 127 (L107); ANARCI numbers a
        // lambda's IMGT 128 residue as L108, the same offset as the rest of framework 4.
        if !chain_type.is_heavy()
            && positions.len() + 1 == domain.len()
            && domain.last() == Some(&AlignedPosition::Aligned(128))
        {
            positions.push(Position::new(108));
        }
        positions
    };
    Ok(NumberedChain {
        chain_type,
        residues: residues[start..=end].to_vec(),
        start,
        input_length: residues.len(),
        imgt: positions(ImmunumScheme::IMGT),
        kabat: positions(ImmunumScheme::Kabat),
        chothia: positions(ImmunumScheme::Chothia),
    })
}

/// ANARCI's C-terminal rule (`_hmm_alignment_to_states`): when the alignment stops inside the
/// last few framework-4 positions (after IMGT 123) and residues follow, the domain is extended
/// through them up to IMGT 128, because a C-terminus unlike germline (a lambda `G` before the
/// constant region, say) is still part of the domain. Returns the new last residue index.
fn extend_to_framework_end(states: &mut [AlignedPosition], end: usize, last: u8) -> usize {
    let last_state = states[..=end].iter().rev().find_map(|s| match s {
        AlignedPosition::Aligned(n) => Some(*n),
        AlignedPosition::Insertion() => None,
    });
    let Some(last_state) = last_state.filter(|&n| n > 123 && n < last) else {
        return end;
    };
    let room = usize::from(last - last_state);
    let extension = room.min(states.len() - 1 - end);
    for (k, state) in states[end + 1..=end + extension].iter_mut().enumerate() {
        *state = AlignedPosition::Aligned(last_state + 1 + k as u8);
    }
    end + extension
}

/// One HMM node of ANARCI's human or mouse model: 20 match emission log-odds (A…Y), then the
/// log-probabilities of the moves to the next node (see `tools/convert_anarci_hmm.py`).
type Node = [f32; 27];
/// A model's nodes, `[state - 1]`.
type Emissions = Vec<Node>;
const MM: usize = 20;
const MD: usize = 22;
const DM: usize = 25;
const DD: usize = 26;

fn anarci_emissions(chain_type: ChainType) -> &'static [Emissions; 2] {
    static TABLES: OnceLock<[[Emissions; 2]; 3]> = OnceLock::new();
    let tables = TABLES.get_or_init(|| {
        let text = include_str!("../../data/numbering/anarci_match_logodds.tsv");
        let mut tables: [[Emissions; 2]; 3] = Default::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut fields = line.split('\t');
            let model = fields.next().unwrap_or("");
            let (Some(species), Some(chain)) = (
                ["human", "mouse"].iter().position(|s| model.starts_with(s)),
                ['H', 'K', 'L'].iter().position(|&c| model.ends_with(c)),
            ) else {
                continue;
            };
            let _state = fields.next();
            let mut row: Node = [0f32; 27];
            for (slot, value) in row.iter_mut().zip(fields) {
                *slot = value.parse().unwrap_or(0.0);
            }
            tables[chain][species].push(row);
        }
        tables
    });
    match chain_type {
        ChainType::H => &tables[0],
        ChainType::K => &tables[1],
        ChainType::L => &tables[2],
    }
}

/// Residues at the start of a domain over which HMMER's local alignment start is decoded.
const START_WINDOW: usize = 10;

/// The better-scoring of ANARCI's two species models for this alignment (hmmscan reports the
/// best hit), by the summed match emissions of the aligned residues.
fn best_model<'a>(
    models: &'a [Emissions; 2],
    states: &[AlignedPosition],
    residues: &[u8],
) -> &'a Emissions {
    let score = |model: &Emissions| -> f32 {
        states
            .iter()
            .zip(residues)
            .filter_map(|(s, &r)| match s {
                AlignedPosition::Aligned(n) => {
                    Some(model.get(usize::from(*n).checked_sub(1)?)?[aa(r)?])
                }
                AlignedPosition::Insertion() => None,
            })
            .sum()
    };
    if score(&models[1]) > score(&models[0]) {
        &models[1]
    } else {
        &models[0]
    }
}

/// Places the domain's first residue where ANARCI does.
///
/// ANARCI numbers from hmmscan's local alignment, which leaves out leading residues that the
/// human and mouse HMMs do not support (a rabbit VH's first residues, say); then
/// `_hmm_alignment_to_states` adds some back: when the alignment starts at HMM state 2–5, it
/// extends backwards by the state offset, or by `min(seq_start, hmm_start - seq_start)` when
/// fewer residues precede it.
///
/// HMMER places a local alignment's start by optimal accuracy: each leading residue's posterior
/// probability of being unaligned (emitted by the N state, as likely as background) or matched
/// to each HMM state, summed over every path that enters the model (uniformly, in local mode)
/// and reaches immunum's state for the residue after the window. We compute those posteriors by
/// forward–backward over the window with the HMM's emissions and moves, take the most accurate
/// start, then apply ANARCI's rule.
fn anarci_start(
    states: &mut [AlignedPosition],
    residues: &[u8],
    start: usize,
    end: usize,
    chain_type: ChainType,
    extend: bool,
) -> usize {
    let model = best_model(
        anarci_emissions(chain_type),
        &states[start..=end],
        &residues[start..=end],
    );
    let aligned = |i: usize| match states[i] {
        AlignedPosition::Aligned(n) => Some(n),
        AlignedPosition::Insertion() => None,
    };
    let window = START_WINDOW.min(end - start);
    let anchor = start + window;
    // The window must be plain match states (no immunum insertions) ending at an anchor residue.
    let Some(anchor_state) = aligned(anchor) else {
        return start;
    };
    if (start..anchor).any(|i| aligned(i).is_none()) || anchor_state < 2 {
        return start;
    }
    let last = usize::from(anchor_state) - 1; // HMM states 1..=last precede the anchor
    let w = window;
    let node = |t: usize| model.get(t.wrapping_sub(1));
    let step = |t: usize, kind: usize| node(t).map_or(0.0, |row| f64::from(row[kind]).exp());
    let emit = |t: usize, i: usize| -> f64 {
        node(t)
            .and_then(|row| Some(f64::from(row[aa(residues[start + i])?]).exp()))
            .unwrap_or(0.0)
    };
    // forward[t][j]: (in M_t having emitted residue j-1, in D_t) after j residues, every residue
    // before the first match emitted by N (weight 1: background odds). Entry is uniform.
    let mut forward = vec![vec![(0.0f64, 0.0f64); w + 1]; last + 1];
    for t in 1..=last {
        for j in 0..=w {
            let (pm, pd) = if t > 1 { forward[t - 1][j] } else { (0.0, 0.0) };
            let delete = if t > 1 {
                pm * step(t - 1, MD) + pd * step(t - 1, DD)
            } else {
                0.0
            };
            let matched = if j > 0 {
                let (m, d) = if t > 1 {
                    forward[t - 1][j - 1]
                } else {
                    (0.0, 0.0)
                };
                let from = 1.0
                    + if t > 1 {
                        m * step(t - 1, MM) + d * step(t - 1, DM)
                    } else {
                        0.0
                    };
                from * emit(t, j - 1)
            } else {
                0.0
            };
            forward[t][j] = (matched, delete);
        }
    }
    // backward[t][j]: from (M_t or D_t, j residues used) to the anchor's match state.
    let mut backward = vec![vec![(0.0f64, 0.0f64); w + 1]; last + 2];
    backward[last][w] = (step(last, MM), step(last, DM));
    for t in (1..last).rev() {
        for j in 0..=w {
            let next_match = if j < w {
                backward[t + 1][j + 1].0 * emit(t + 1, j)
            } else {
                0.0
            };
            let next_delete = backward[t + 1][j].1;
            backward[t][j] = (
                next_match * step(t, MM) + next_delete * step(t, MD),
                next_match * step(t, DM) + next_delete * step(t, DD),
            );
        }
    }
    // Every residue in N, entering straight at the anchor, is a path too.
    let total = 1.0 + forward[last][w].0 * step(last, MM) + forward[last][w].1 * step(last, DM);
    if !(total.is_finite() && total > 0.0) {
        return start;
    }
    let matched = |t: usize, i: usize| forward[t][i + 1].0 * backward[t][i + 1].0 / total;
    let unaligned: Vec<f64> = (0..w)
        .map(|i| (1.0 - (1..=last).map(|t| matched(t, i)).sum::<f64>()).max(0.0))
        .collect();

    // Optimal accuracy: k leading residues unaligned, then residues k.. at increasing states.
    // best[i][t]: residues < i placed, residue i-1 at state t (t = 0: all of them unaligned).
    let mut best = vec![vec![f64::NEG_INFINITY; last + 1]; w + 1];
    best[0][0] = 0.0;
    for i in 1..=w {
        best[i][0] = best[i - 1][0] + unaligned[i - 1];
        let mut running = best[i - 1][0];
        for t in 1..=last {
            // `running`: the best of the previous residue at any state below t (or unaligned).
            running = running.max(best[i - 1][t - 1]);
            best[i][t] = running + matched(t, i - 1);
        }
    }
    let Some((mut t, _)) = (0..=last).map(|t| (t, best[w][t])).fold(
        None,
        |acc: Option<(usize, f64)>, (t, v)| match acc {
            Some((_, bv)) if bv >= v => acc,
            _ => Some((t, v)),
        },
    ) else {
        return start;
    };
    let mut placed = vec![0usize; w];
    for i in (1..=w).rev() {
        placed[i - 1] = t;
        if t == 0 {
            continue;
        }
        let target = best[i][t] - matched(t, i - 1);
        t = (0..t)
            .rev()
            .find(|&u| (best[i - 1][u] - target).abs() <= 1e-12 * target.abs().max(1.0))
            .unwrap_or(0);
    }
    let Some(first) = placed.iter().position(|&t| t > 0) else {
        return start;
    };
    for (i, &t) in placed.iter().enumerate().skip(first) {
        states[start + i] = AlignedPosition::Aligned(t as u8);
    }
    let seq_start = start + first;
    let hmm_start = placed[first] - 1;
    let extend = match hmm_start {
        _ if !extend => 0,
        1..=4 if hmm_start <= seq_start => hmm_start,
        1..=4 => seq_start.min(hmm_start - seq_start),
        _ => 0,
    };
    let new_start = seq_start - extend;
    for (k, state) in states[new_start..seq_start].iter_mut().enumerate() {
        // `extend <= hmm_start < 5`, so these are states 1..=4.
        *state = AlignedPosition::Aligned((hmm_start - extend + 1 + k) as u8);
    }
    new_start
}

/// The framework regions in IMGT states; deletions inside CDRs are placed by the schemes' own
/// rules, so only framework deletions depend on the aligner.
const FRAMEWORKS: [(u8, u8); 4] = [(1, 26), (39, 55), (66, 104), (118, 128)];
/// Residues each side of a deletion among which it may move.
const DELETION_WINDOW: u8 = 4;

/// Moves each framework deletion to where ANARCI's HMM puts it.
///
/// immunum and hmmscan agree on which residues form a framework, but where a residue is
/// missing (rabbit FR3, a kappa lacking IMGT 10) they can place the gap a state or two apart.
/// Around each framework deletion (deletions close together form one window) we re-place the
/// gaps among the residues of the window to maximise the HMM's own score, match emissions plus
/// position-specific move probabilities, so they land where hmmscan's alignment puts them.
/// Ties keep immunum's placement.
fn place_framework_deletions(
    states: &mut [AlignedPosition],
    residues: &[u8],
    chain_type: ChainType,
) {
    let aligned = |s: &AlignedPosition| match s {
        AlignedPosition::Aligned(n) => Some(*n),
        AlignedPosition::Insertion() => None,
    };
    let framework = |n: u8| {
        FRAMEWORKS
            .iter()
            .copied()
            .find(|&(a, b)| (a..=b).contains(&n))
    };

    // State ranges around each framework deletion, clipped to its framework, merged if they touch.
    let mut windows: Vec<(u8, u8)> = Vec::new();
    for pair in states.windows(2) {
        let (Some(here), Some(next)) = (aligned(&pair[0]), aligned(&pair[1])) else {
            continue;
        };
        let Some((fr_start, fr_end)) = framework(here).filter(|&f| framework(next) == Some(f))
        else {
            continue;
        };
        if next <= here + 1 {
            continue;
        }
        let low = here.saturating_sub(DELETION_WINDOW).max(fr_start + 1);
        let high = (next + DELETION_WINDOW).min(fr_end - 1);
        match windows.last_mut() {
            Some(last) if last.1 + 1 >= low => last.1 = last.1.max(high),
            _ => windows.push((low, high)),
        }
    }
    if windows.is_empty() {
        return;
    }
    let model = best_model(anarci_emissions(chain_type), states, residues);
    for (low, high) in windows {
        // The residues inside the window, anchored by match states just outside it.
        let inside: Vec<usize> = (0..states.len())
            .filter(|&i| aligned(&states[i]).is_some_and(|n| (low..=high).contains(&n)))
            .collect();
        let (Some(&first), Some(&last)) = (inside.first(), inside.last()) else {
            continue;
        };
        if first == 0 || last + 1 >= states.len() || last + 1 - first != inside.len() {
            continue;
        }
        let (Some(before), Some(after)) = (aligned(&states[first - 1]), aligned(&states[last + 1]))
        else {
            continue;
        };
        if before >= low || after <= high {
            continue;
        }
        let current: Vec<u8> = inside.iter().filter_map(|&i| aligned(&states[i])).collect();
        let best = best_placement(model, &residues[first..=last], before, after, &current);
        for (state, n) in states[first..=last].iter_mut().zip(best) {
            *state = AlignedPosition::Aligned(n);
        }
    }
}

fn aa(residue: u8) -> Option<usize> {
    super::chain::AMINO_ACIDS.iter().position(|&a| a == residue)
}

/// The states for `window`'s residues between match states `before` and `after`, as HMMER's
/// optimal-accuracy alignment places them under `model`; `current` wins ties.
///
/// HMMER aligns by optimal accuracy, not by best score: each residue's posterior probability of
/// sitting at each state (forward–backward over every placement of the window's residues among
/// its match and delete states), then the placement with the largest summed posterior.
fn best_placement(
    model: &Emissions,
    window: &[u8],
    before: u8,
    after: u8,
    current: &[u8],
) -> Vec<u8> {
    let m = window.len();
    let n = usize::from(after - before - 1);
    let node = |state: usize| model.get(usize::from(before) + state - 1);
    let (Some(emissions), true) = (
        (1..=n)
            .map(|t| {
                let row = node(t)?;
                window
                    .iter()
                    .map(|&r| aa(r).map(|a| f64::from(row[a])))
                    .collect::<Option<Vec<f64>>>()
            })
            .collect::<Option<Vec<Vec<f64>>>>(),
        (0..=n).all(|t| node(t).is_some()),
    ) else {
        return current.to_vec();
    };
    // `node(t)` holds the moves from local state t (0 = `before`) to t + 1. A window spans at
    // most a couple of dozen states, so path probabilities stay far inside f64's range and
    // forward–backward runs on plain probabilities (no log-sum-exp).
    let moves: Vec<[f64; 4]> = (0..=n)
        .map(|t| {
            node(t).map_or([0.0; 4], |row| {
                [MM, MD, DM, DD].map(|kind| f64::from(row[kind]).exp())
            })
        })
        .collect();
    let (mm, md, dm, dd) = (0, 1, 2, 3);
    let emit: Vec<Vec<f64>> = emissions
        .iter()
        .map(|row| row.iter().map(|e| e.exp()).collect())
        .collect();
    let emit = |t: usize, j: usize| emit[t - 1][j - 1];
    // forward[t][j] = (ends in match, ends in delete) after local state t with j residues used.
    let mut forward = vec![vec![(0.0f64, 0.0f64); m + 1]; n + 1];
    forward[0][0].0 = 1.0;
    for t in 1..=n {
        let step = moves[t - 1];
        for j in 0..=m {
            let (prev_m, prev_d) = forward[t - 1][j];
            let delete = prev_m * step[md] + prev_d * step[dd];
            let matched = if j > 0 {
                let (pm, pd) = forward[t - 1][j - 1];
                (pm * step[mm] + pd * step[dm]) * emit(t, j)
            } else {
                0.0
            };
            forward[t][j] = (matched, delete);
        }
    }
    let mut backward = vec![vec![(0.0f64, 0.0f64); m + 1]; n + 1];
    backward[n][m] = (moves[n][mm], moves[n][dm]);
    for t in (0..n).rev() {
        let step = moves[t];
        for j in 0..=m {
            let next_delete = backward[t + 1][j].1;
            let next_match = if j < m {
                backward[t + 1][j + 1].0 * emit(t + 1, j + 1)
            } else {
                0.0
            };
            backward[t][j] = (
                next_match * step[mm] + next_delete * step[md],
                next_match * step[dm] + next_delete * step[dd],
            );
        }
    }
    let total = forward[n][m].0 * moves[n][mm] + forward[n][m].1 * moves[n][dm];
    if !(total.is_finite() && total > 0.0) {
        return current.to_vec();
    }
    // posterior(t, j): residue j sits at local state t.
    let posterior = |t: usize, j: usize| forward[t][j].0 * backward[t][j].0 / total;

    // Optimal accuracy: the increasing placement with the largest summed posterior.
    let mut best = vec![vec![f64::NEG_INFINITY; m + 1]; n + 1];
    for row in best.iter_mut() {
        row[0] = 0.0;
    }
    for t in 1..=n {
        for j in 1..=m.min(t) {
            best[t][j] = best[t - 1][j].max(best[t - 1][j - 1] + posterior(t, j));
        }
    }
    let accuracy = |placement: &[u8]| -> f64 {
        placement
            .iter()
            .enumerate()
            .map(|(j, &state)| posterior(usize::from(state - before), j + 1))
            .sum()
    };
    if accuracy(current) >= best[n][m] - 1e-9 {
        return current.to_vec();
    }
    let mut placement = vec![0u8; m];
    let (mut t, mut j) = (n, m);
    while j > 0 {
        if best[t][j] == best[t - 1][j] && t > j {
            t -= 1;
        } else {
            placement[j - 1] = before + t as u8;
            t -= 1;
            j -= 1;
        }
    }
    placement
}

/// Refuses a sequence that holds a second confident variable domain outside `chain`'s.
fn refuse_second_domain(
    residues: &[u8],
    chain: &NumberedChain,
    chain_types: &[ChainType],
) -> Result<(), ChainError> {
    let end = chain.start + chain.residues.len();
    let flanks = [(0, chain.start), (end, residues.len())];
    let second = flanks.into_iter().find_map(|(from, to)| {
        if to - from < MIN_DOMAIN_LENGTH {
            return None;
        }
        let text = std::str::from_utf8(&residues[from..to]).ok()?;
        let (_, alignment) = best_alignment(text, chain_types);
        let length = alignment.query_end + 1 - alignment.query_start;
        (confidence(&alignment) >= MIN_CONFIDENCE && length >= MIN_DOMAIN_LENGTH)
            .then_some(from + alignment.query_start)
    });
    match second {
        Some(second) => Err(ChainError::NotAntibody {
            detail: format!(
                "it holds two variable domains (the other one starts at residue {}); give each chain on its own, or register the sequence as an scFv",
                second + 1
            ),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_order_as_kabat_reads() {
        let p = |s: &str| s.parse::<Position>().unwrap();
        assert!(p("100") < p("100A"));
        assert!(p("100A") < p("100B"));
        assert!(p("100K") < p("101"));
        assert_eq!(p("H35B").to_string(), "35B");
        assert_eq!(p("L27").label(ChainType::K), "L27");
        assert_eq!(p("52A").label(ChainType::H), "H52A");
        assert!("H".parse::<Position>().is_err());
        assert!("12ab".parse::<Position>().is_err());
    }

    #[test]
    fn kabat_cdrs_follow_the_kabat_definition() {
        let h = ChainType::H;
        let p = |s: &str| s.parse::<Position>().unwrap();
        assert!(!is_kabat_cdr(h, p("30")));
        assert!(is_kabat_cdr(h, p("31")));
        assert!(is_kabat_cdr(h, p("35B")));
        assert!(!is_kabat_cdr(h, p("36")));
        assert!(is_kabat_cdr(h, p("100K")));
        assert!(!is_kabat_cdr(h, p("103")));
        assert!(is_kabat_cdr(ChainType::K, p("27F")));
        assert!(!is_kabat_cdr(ChainType::L, p("98")));
    }
}
