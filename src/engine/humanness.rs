//! Humanness by OASis (BioPhi; Prihoda et al., mAbs 2022): how many of a chain's
//! overlapping 9-mers are common in human antibody repertoires.
//!
//! A 9-mer is *human* when it occurs in at least a threshold fraction of the human
//! subjects of the Observed Antibody Space. The embedded [`OasisSet`] is the 10 %
//! ("relaxed") set shipped by `promb` 1.0.2; `store::oasis_db` answers the same
//! question from BioPhi's full database at any threshold. Both sit behind
//! [`HumanPeptides`], so the scores below do not know which one they use.
//!
//! Counting follows BioPhi's `biophi/humanization/methods/humanness.py`:
//! `chop_seq_peptides` takes one 9-mer per start position (`len - 8` of them, repeats
//! counted every time they occur), `get_oasis_identity` divides the human ones by all
//! of them, and the antibody identity pools the VH and VL counts
//! (`AntibodyHumanness.get_num_human_peptides() / get_num_peptides()`).

use std::fmt;
use std::sync::OnceLock;

use serde::Serialize;

use crate::engine::chain::{AMINO_ACIDS, ChainType};

/// OASis peptides are 9-mers.
pub const PEPTIDE_LEN: usize = 9;

/// A source of the answer "is this 9-mer human?".
pub trait HumanPeptides: Send + Sync {
    /// Whether `peptide` (9 upper-case residues) is human. `chain` matters to the full
    /// database, which counts heavy-chain or light-chain subjects. A source that cannot
    /// answer (a database error) says so to this caller, and only to it: a result built on
    /// a guess would under-count humanness. The embedded set cannot fail.
    fn is_human(&self, peptide: &[u8], chain: ChainType) -> Result<bool, PeptideError>;

    /// One line naming the peptide set and threshold, for reports.
    fn describe(&self) -> String;

    /// The prevalence threshold in percent of subjects (BioPhi's `min_fraction_subjects` ×
    /// 100), which picks the percentile table. The embedded set is BioPhi's relaxed 10 %.
    fn threshold_percent(&self) -> u32 {
        10
    }
}

/// Which of BioPhi's percentile tables an identity is placed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PercentileTable {
    Heavy,
    Light,
    /// The antibody's pooled identity.
    Mean,
}

const PERCENTILES_JSON: &str = include_str!("../../data/oasis/oasis_percentiles.json");

type Percentiles = std::collections::HashMap<String, Vec<f64>>;

fn percentile_tables() -> &'static Option<[Percentiles; 3]> {
    static TABLES: std::sync::OnceLock<Option<[Percentiles; 3]>> = std::sync::OnceLock::new();
    TABLES.get_or_init(|| {
        #[derive(serde::Deserialize)]
        struct File {
            heavy: Percentiles,
            light: Percentiles,
            mean: Percentiles,
        }
        serde_json::from_str::<File>(PERCENTILES_JSON)
            .ok()
            .map(|f| [f.heavy, f.light, f.mean])
    })
}

/// BioPhi's `get_oasis_percentile`: the percentile of therapeutic antibodies whose OASis
/// identity (at `threshold_percent`) is below this one, interpolated linearly between the
/// table's whole-percent entries exactly as BioPhi computes it. `None` for an identity outside
/// 0..=1 or a threshold without a table.
pub fn oasis_percentile(
    table: PercentileTable,
    identity: f64,
    threshold_percent: u32,
) -> Option<f64> {
    if !(0.0..=1.0).contains(&identity) {
        return None;
    }
    let tables = percentile_tables().as_ref()?;
    let rows = &tables[match table {
        PercentileTable::Heavy => 0,
        PercentileTable::Light => 1,
        PercentileTable::Mean => 2,
    }];
    let row = rows.get(&threshold_percent.to_string())?;
    let scaled = identity * 100.0;
    let (lower, upper) = (scaled.floor(), scaled.ceil());
    let (low, high) = (row.get(lower as usize)?, row.get(upper as usize)?);
    Some(low + (high - low) * (scaled - lower))
}

/// A peptide source that could not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeptideError(pub String);

impl std::fmt::Display for PeptideError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PeptideError {}

/// Which of a chain's overlapping 9-mers are human, in sequence order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainOasis {
    /// `human[s]`: the 9-mer starting at residue `s` is human.
    human: Vec<bool>,
    residues: usize,
}

impl ChainOasis {
    /// Looks up every overlapping 9-mer of `seq` (BioPhi's `chop_seq_peptides`: one per
    /// start position, no deduplication).
    pub fn new(
        seq: &[u8],
        chain: ChainType,
        peptides: &dyn HumanPeptides,
    ) -> Result<ChainOasis, PeptideError> {
        let human = seq
            .windows(PEPTIDE_LEN)
            .map(|peptide| peptides.is_human(peptide, chain))
            .collect::<Result<_, _>>()?;
        Ok(ChainOasis {
            human,
            residues: seq.len(),
        })
    }

    /// The number of overlapping 9-mers (`len - 8`, or 0 for a chain shorter than 9).
    pub fn num_peptides(&self) -> usize {
        self.human.len()
    }

    pub fn num_human_peptides(&self) -> usize {
        self.human.iter().filter(|&&human| human).count()
    }

    /// Human 9-mers / all 9-mers; `None` for a chain shorter than 9 residues, where
    /// BioPhi would divide by zero.
    pub fn identity(&self) -> Option<f64> {
        ratio(self.num_human_peptides(), self.num_peptides())
    }

    /// Per residue, the fraction of the 9-mers covering it that are human: the
    /// windows BioPhi's `get_positional_humanness` lists for a residue (start
    /// positions `i - 8 ..= i` that begin a full 9-mer). Empty for a chain shorter than
    /// 9 residues, whose residues no 9-mer covers.
    pub fn residue_scores(&self) -> Vec<f64> {
        let windows = self.human.len();
        if windows == 0 {
            return Vec::new();
        }
        // human_before[s] = human windows among starts 0..s.
        let mut human_before = Vec::with_capacity(windows + 1);
        human_before.push(0usize);
        for (s, &human) in self.human.iter().enumerate() {
            human_before.push(human_before[s] + usize::from(human));
        }
        (0..self.residues)
            .map(|i| {
                let first = i.saturating_sub(PEPTIDE_LEN - 1);
                let last = i.min(windows - 1);
                let covering = last + 1 - first;
                (human_before[last + 1] - human_before[first]) as f64 / covering as f64
            })
            .collect()
    }
}

/// `oasis_identity` of one chain: human 9-mers / all overlapping 9-mers.
pub fn oasis_identity(
    seq: &[u8],
    chain: ChainType,
    peptides: &dyn HumanPeptides,
) -> Result<Option<f64>, PeptideError> {
    Ok(ChainOasis::new(seq, chain, peptides)?.identity())
}

/// The antibody's identity: the human 9-mers of all its chains over all their 9-mers
/// (BioPhi pools counts, it does not average the chain identities).
pub fn pooled_oasis_identity(chains: &[&ChainOasis]) -> Option<f64> {
    let human = chains.iter().map(|c| c.num_human_peptides()).sum();
    let all = chains.iter().map(|c| c.num_peptides()).sum();
    ratio(human, all)
}

/// `oasis_score` (SCIENCE.md §4): mean and median of the per-residue scores over all
/// residues of the chains taken together.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OasisScore {
    pub mean: f64,
    pub median: f64,
}

/// Pools the per-residue scores of `chains`; `None` when no residue has a score.
pub fn oasis_score(chains: &[&ChainOasis]) -> Option<OasisScore> {
    let mut scores: Vec<f64> = chains.iter().flat_map(|c| c.residue_scores()).collect();
    if scores.is_empty() {
        return None;
    }
    let mean = scores.iter().sum::<f64>() / scores.len() as f64;
    scores.sort_by(f64::total_cmp);
    let mid = scores.len() / 2;
    // numpy's median: the mean of the two middle values when the count is even.
    let median = if scores.len().is_multiple_of(2) {
        (scores[mid - 1] + scores[mid]) / 2.0
    } else {
        scores[mid]
    };
    Some(OasisScore { mean, median })
}

/// `oasis_identity` of a variant as the result reports it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OasisIdentity {
    pub vh: Option<f64>,
    pub vl: Option<f64>,
    pub antibody: Option<f64>,
}

/// Everything OASis says about one VH/VL pair.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AntibodyOasis {
    pub identity: OasisIdentity,
    pub score: Option<OasisScore>,
}

/// OASis identity (per chain and pooled) and score of a VH/VL pair; `vl_type` is
/// `K` or `L`.
pub fn antibody_oasis(
    vh: &[u8],
    vl: &[u8],
    vl_type: ChainType,
    peptides: &dyn HumanPeptides,
) -> Result<AntibodyOasis, PeptideError> {
    let vh = ChainOasis::new(vh, ChainType::H, peptides)?;
    let vl = ChainOasis::new(vl, vl_type, peptides)?;
    Ok(AntibodyOasis {
        identity: OasisIdentity {
            vh: vh.identity(),
            vl: vl.identity(),
            antibody: pooled_oasis_identity(&[&vh, &vl]),
        },
        score: oasis_score(&[&vh, &vl]),
    })
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The OASis 10 % peptide set, embedded (`data/oasis/oasis_9mers_v1_10perc.bin`, made
/// by `tools/convert_oasis.py`, whose docstring specifies the format).
///
/// Each 9-mer is a base-20 number (< 2^39) scrambled by a fixed bijection so buckets
/// stay small despite antibody peptides clustering; the sorted numbers are an
/// Elias–Fano sequence: a bit vector with, per bucket of `value >> 16`, one 1-bit per
/// peptide and a closing 0-bit, a start position sampled every 64 buckets, and the
/// low 16 bits of every value. Membership is exact. The sections are read in place
/// from the embedded bytes, little-endian, so nothing is copied or aligned at load.
pub struct OasisSet {
    len: u64,
    source_sha256: [u8; 32],
    words: &'static [u8],
    samples: &'static [u8],
    lows: &'static [u8],
}

static EMBEDDED_BYTES: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/data/oasis/oasis_9mers_v1_10perc.bin"
));

const MAGIC: &[u8; 8] = b"VNROASIS";
const VERSION: u32 = 1;
const HEADER_LEN: usize = 128;
const LOW_BITS: u32 = 16;
const VALUE_BITS: u32 = 39;
const MIX_ID: u32 = 1;
/// A start position is sampled every 64 buckets (fixed, so the division is a shift).
const BUCKETS_PER_SAMPLE: u64 = 64;

/// Why a peptide-set file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum OasisSetError {
    #[error("not a veneer OASis peptide set (bad magic)")]
    BadMagic,
    #[error("unsupported OASis peptide set: {0}")]
    Unsupported(String),
    #[error("corrupt OASis peptide set: {0}")]
    Corrupt(&'static str),
}

impl OasisSet {
    /// The embedded 10 % set, parsed on first use (the parse reads the header and
    /// counts the bits of a 1.8 MB section; the data itself stays where it is).
    pub fn embedded() -> &'static OasisSet {
        static SET: OnceLock<OasisSet> = OnceLock::new();
        SET.get_or_init(|| {
            // The embedded file is fixed at build time and parsed by a unit test.
            OasisSet::from_bytes(EMBEDDED_BYTES)
                .expect("embedded data/oasis/oasis_9mers_v1_10perc.bin is invalid")
        })
    }

    /// Reads a set in the format of `tools/convert_oasis.py`.
    pub fn from_bytes(bytes: &'static [u8]) -> Result<OasisSet, OasisSetError> {
        let header = bytes
            .get(..HEADER_LEN)
            .ok_or(OasisSetError::Corrupt("shorter than its header"))?;
        if &header[..8] != MAGIC {
            return Err(OasisSetError::BadMagic);
        }
        let version = read_u32(header, 8);
        if version != VERSION {
            return Err(OasisSetError::Unsupported(format!(
                "format version {version}"
            )));
        }
        let peptide_len = read_u32(header, 12);
        let len = read_u64(header, 16);
        let low_bits = read_u32(header, 24);
        let buckets_per_sample = u64::from(read_u32(header, 28));
        let num_buckets = read_u64(header, 32);
        let num_words = read_u64(header, 40);
        let num_samples = read_u64(header, 48);
        let mix_id = read_u32(header, 108);
        if peptide_len as usize != PEPTIDE_LEN
            || low_bits != LOW_BITS
            || mix_id != MIX_ID
            || &header[88..108] != AMINO_ACIDS
            || num_buckets != 1 << (VALUE_BITS - LOW_BITS)
            || buckets_per_sample != BUCKETS_PER_SAMPLE
        {
            return Err(OasisSetError::Unsupported(format!(
                "{peptide_len}-mers, {low_bits} low bits, scramble {mix_id}, \
                 {num_buckets} buckets, {buckets_per_sample} per sample, alphabet {:?}",
                String::from_utf8_lossy(&header[88..108])
            )));
        }
        let bits = len.saturating_add(num_buckets);
        if num_words != bits.div_ceil(64) || num_samples != num_buckets.div_ceil(buckets_per_sample)
        {
            return Err(OasisSetError::Corrupt(
                "section sizes disagree with the count",
            ));
        }
        let mut source_sha256 = [0; 32];
        source_sha256.copy_from_slice(&header[56..88]);

        let mut rest = &bytes[HEADER_LEN..];
        let words = take_section(&mut rest, num_words, 8)?;
        let samples = take_section(&mut rest, num_samples, 4)?;
        let lows = take_section(&mut rest, len, 2)?;
        if !rest.is_empty() {
            return Err(OasisSetError::Corrupt("trailing bytes"));
        }
        // Every peptide is one 1-bit: a cheap check that the bit vector is whole.
        let ones: u64 = words
            .chunks_exact(8)
            .map(|w| u64::from(read_u64(w, 0).count_ones()))
            .sum();
        if ones != len {
            return Err(OasisSetError::Corrupt(
                "bit vector does not hold one bit per peptide",
            ));
        }
        Ok(OasisSet {
            len,
            source_sha256,
            words,
            samples,
            lows,
        })
    }

    /// The number of peptides in the set.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// SHA-256 of the file the set was converted from.
    pub fn source_sha256(&self) -> &[u8; 32] {
        &self.source_sha256
    }

    /// Whether `peptide` is in the set. Only 9-mers of the 20 standard amino acids
    /// can be: anything else (X, B, lower case, another length) never is.
    pub fn contains(&self, peptide: &[u8]) -> bool {
        encode(peptide).is_some_and(|value| self.contains_value(value))
    }

    fn contains_value(&self, value: u64) -> bool {
        let high = value >> LOW_BITS;
        let low = (value & ((1 << LOW_BITS) - 1)) as u16;
        let sample = self.sample(high / BUCKETS_PER_SAMPLE);
        let start = self.skip_zeros(sample, high % BUCKETS_PER_SAMPLE);
        // Exactly `high` 0-bits precede the bucket, so this is the rank of its first
        // value (saturating only so that corrupt data cannot panic).
        let first = start.saturating_sub(high);
        // Buckets hold a handful of values (at most 8 in the embedded set): a short scan.
        let size = self.ones_from(start);
        (first..first + size).fold(false, |found, rank| found | (self.low(rank) == low))
    }

    /// The bit position after the `count`-th 0-bit at or after `position`.
    fn skip_zeros(&self, position: u64, mut count: u64) -> u64 {
        if count == 0 {
            return position;
        }
        let mut word = position / 64;
        // Zeros as ones, from `position` on.
        let mut zeros = !self.word(word) & (u64::MAX << (position % 64));
        loop {
            let here = u64::from(zeros.count_ones());
            if count <= here {
                return word * 64 + u64::from(select_in_word(zeros, count - 1)) + 1;
            }
            count -= here;
            word += 1;
            zeros = !self.word(word);
        }
    }

    /// The number of consecutive 1-bits from `position` on.
    fn ones_from(&self, mut position: u64) -> u64 {
        let mut count = 0;
        loop {
            let (index, shift) = (position / 64, position % 64);
            let mut bits = self.word(index) >> shift;
            if shift > 0 {
                bits |= self.word(index + 1) << (64 - shift);
            }
            let run = u64::from(bits.trailing_ones());
            count += run;
            if run < 64 {
                return count;
            }
            position += 64;
        }
    }

    // Out-of-range reads cannot happen in a set `from_bytes` accepted (the sections
    // were sized from the header); they read as zero rather than panic.
    fn word(&self, index: u64) -> u64 {
        read_u64(self.words, index as usize * 8)
    }

    fn sample(&self, index: u64) -> u64 {
        u64::from(read_u32(self.samples, index as usize * 4))
    }

    fn low(&self, rank: u64) -> u16 {
        let at = rank as usize * 2;
        self.lows
            .get(at..at + 2)
            .map_or(0, |b| u16::from_le_bytes([b[0], b[1]]))
    }

    /// Every value in the set in increasing order (for tests of the format).
    #[cfg(test)]
    fn values(&self) -> impl Iterator<Item = u64> + '_ {
        let words = self.words.len() as u64 / 8;
        let ones = (0..words).flat_map(move |index| {
            let mut word = self.word(index);
            std::iter::from_fn(move || {
                (word != 0).then(|| {
                    let bit = u64::from(word.trailing_zeros());
                    word &= word - 1;
                    index * 64 + bit
                })
            })
        });
        ones.enumerate()
            .map(|(rank, p)| ((p - rank as u64) << LOW_BITS) | u64::from(self.low(rank as u64)))
    }
}

impl fmt::Debug for OasisSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OasisSet")
            .field("len", &self.len)
            .finish_non_exhaustive()
    }
}

impl HumanPeptides for OasisSet {
    /// The 10 % set pools heavy and light chains, so `chain` does not matter here.
    fn is_human(&self, peptide: &[u8], _chain: ChainType) -> Result<bool, PeptideError> {
        Ok(self.contains(peptide))
    }

    fn describe(&self) -> String {
        format!(
            "OASis 9-mers in >= 10% of human subjects (promb 1.0.2, {} peptides)",
            self.len
        )
    }
}

/// The position of the `k`-th (0-based) 1-bit of `word`, which has more than `k`,
/// without loops (Vigna, "Broadword implementation of rank/select queries", 2008):
/// byte-wise prefix popcounts find the byte, a table the bit within it.
fn select_in_word(word: u64, k: u64) -> u32 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let mut bytes = word - ((word >> 1) & 0x5555_5555_5555_5555);
    bytes = (bytes & 0x3333_3333_3333_3333) + ((bytes >> 2) & 0x3333_3333_3333_3333);
    bytes = (bytes + (bytes >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
    // Byte i: the 1-bits in bytes 0..=i (at most 64, so no carries between bytes).
    let prefix = bytes.wrapping_mul(ONES);
    // High bit of byte i set where prefix_i <= k; the count is the byte holding bit k.
    let at_most_k = ((k.wrapping_mul(ONES) | HIGHS).wrapping_sub(prefix)) & HIGHS;
    let shift = at_most_k.count_ones() * 8;
    let before = (prefix << 8).checked_shr(shift).unwrap_or(0) & 0xFF;
    let byte = word.checked_shr(shift).unwrap_or(0) & 0xFF;
    let rank_in_byte = k.wrapping_sub(before) & 7;
    shift + u32::from(SELECT_IN_BYTE[(byte | rank_in_byte << 8) as usize])
}

/// `SELECT_IN_BYTE[byte | k << 8]`: the position of the `k`-th 1-bit of `byte`.
const SELECT_IN_BYTE: [u8; 2048] = {
    let mut table = [0u8; 2048];
    let mut byte = 0;
    while byte < 256 {
        let mut bit = 0;
        let mut seen = 0;
        while bit < 8 {
            if byte >> bit & 1 == 1 {
                table[byte | seen << 8] = bit as u8;
                seen += 1;
            }
            bit += 1;
        }
        byte += 1;
    }
    table
};

/// Residue letter → base-20 digit, 255 for anything that is not a standard amino acid.
const DIGITS: [u8; 256] = {
    let mut table = [255u8; 256];
    let mut i = 0;
    while i < AMINO_ACIDS.len() {
        table[AMINO_ACIDS[i] as usize] = i as u8;
        i += 1;
    }
    table
};

/// The scrambled base-20 value of a 9-mer, as `tools/convert_oasis.py` computes it.
fn encode(peptide: &[u8]) -> Option<u64> {
    if peptide.len() != PEPTIDE_LEN {
        return None;
    }
    let mut value = 0u64;
    for &residue in peptide {
        let digit = DIGITS[usize::from(residue)];
        if digit == 255 {
            return None;
        }
        value = value * 20 + u64::from(digit);
    }
    Some(mix(value))
}

/// A bijection on 39-bit values (xor-shifts and multiplications by odd constants
/// modulo 2^39 are each invertible); must equal `mix` in `tools/convert_oasis.py`.
fn mix(mut x: u64) -> u64 {
    const MASK: u64 = (1 << VALUE_BITS) - 1;
    x ^= x >> 20;
    x = x.wrapping_mul(0x9E37_79B9_7F4A_7C15) & MASK;
    x ^= x >> 19;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9) & MASK;
    x ^= x >> 20;
    x
}

fn take_section(
    rest: &mut &'static [u8],
    count: u64,
    width: u64,
) -> Result<&'static [u8], OasisSetError> {
    let len = count
        .checked_mul(width)
        .and_then(|len| usize::try_from(len).ok())
        .ok_or(OasisSetError::Corrupt("section larger than memory"))?;
    let padded = len.next_multiple_of(8);
    if rest.len() < padded {
        return Err(OasisSetError::Corrupt("truncated"));
    }
    let section = &rest[..len];
    *rest = &rest[padded..];
    Ok(section)
}

fn read_u32(bytes: &[u8], at: usize) -> u32 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |b| u32::from_le_bytes(*b))
}

fn read_u64(bytes: &[u8], at: usize) -> u64 {
    bytes
        .get(at..)
        .and_then(<[u8]>::first_chunk)
        .map_or(0, |b| u64::from_le_bytes(*b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::{HashMap, HashSet};

    /// SHA-256 of promb 1.0.2's `OASis_9mers_v1_10perc_subjects.txt.gz`.
    const SOURCE_SHA256: &str = "1229593380f472c534ba819f2542832e19cccdd4b6b8aa23d61610532da12f29";

    #[test]
    fn embedded_set_matches_its_source() {
        let set = OasisSet::embedded();
        assert_eq!(set.len(), 5_725_303);
        let hex: String = set
            .source_sha256()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(hex, SOURCE_SHA256);
    }

    #[test]
    fn membership_agrees_with_the_source_file() {
        // Checked against the .txt.gz with Python: the first and last lines, and
        // framework peptides in and out of the set.
        let set = OasisSet::embedded();
        for peptide in [
            "AAAAAAVYY",
            "AAAAADAFD",
            "AAAAADTAV",
            "YYYYYYYYM",
            "YYYYYYYYY",
            "QVQLVQSGA",
            "EVQLVESGG",
            "DIQMTQSPS",
            "PPPPPPPPP",
            "GGGGGGGGG",
            "WGQGTLVTV",
            "CARDKGYSY",
        ] {
            assert!(
                set.contains(peptide.as_bytes()),
                "{peptide} should be human"
            );
        }
        for peptide in [
            "WWWWWWWWW",
            "CCCCCCCCC",
            "EVKLQQSGP",
            "AAAAAAAAA",
            "MMMMMMMMM",
        ] {
            assert!(
                !set.contains(peptide.as_bytes()),
                "{peptide} should not be human"
            );
        }
    }

    #[test]
    fn non_standard_peptides_are_never_human() {
        let set = OasisSet::embedded();
        for peptide in [
            "QVQLVQSGX",
            "qvqlvqsga",
            "QVQLVQSG",
            "QVQLVQSGAE",
            "QVQLBQSGA",
            "",
        ] {
            assert!(!set.contains(peptide.as_bytes()), "{peptide:?}");
        }
    }

    #[test]
    fn every_stored_value_is_found_and_nothing_else() {
        // Walks the whole structure: values strictly increase, there are as many as
        // the header says, and the query path finds a spread of them but not the
        // values next to them.
        let set = OasisSet::embedded();
        let mut values = set.values().peekable();
        let mut count = 0;
        while let Some(value) = values.next() {
            let next_stored = values.peek().copied();
            assert!(
                next_stored.is_none_or(|next| next > value),
                "values must increase"
            );
            if count % 997 == 0 {
                assert!(set.contains_value(value));
                if next_stored != Some(value + 1) && value + 1 < 1 << VALUE_BITS {
                    assert!(!set.contains_value(value + 1));
                }
            }
            count += 1;
        }
        assert_eq!(count, set.len());
    }

    #[test]
    fn select_in_word_finds_every_set_bit() {
        for word in [
            1u64,
            0x8000_0000_0000_0000,
            u64::MAX,
            0xF0F0_0000_0001_8001,
            0x0123_4567_89AB_CDEF,
        ] {
            let positions: Vec<u32> = (0..64).filter(|&b| word >> b & 1 == 1).collect();
            for (k, &position) in positions.iter().enumerate() {
                assert_eq!(select_in_word(word, k as u64), position, "{word:#x} k={k}");
            }
        }
    }

    #[test]
    fn corrupt_data_is_an_error() {
        assert!(matches!(
            OasisSet::from_bytes(b"short"),
            Err(OasisSetError::Corrupt(_))
        ));
        let mut bad_magic = EMBEDDED_BYTES[..HEADER_LEN].to_vec();
        bad_magic[0] = b'X';
        assert!(matches!(
            OasisSet::from_bytes(bad_magic.leak()),
            Err(OasisSetError::BadMagic)
        ));
        let truncated = &EMBEDDED_BYTES[..EMBEDDED_BYTES.len() - 8];
        assert!(matches!(
            OasisSet::from_bytes(truncated),
            Err(OasisSetError::Corrupt(_))
        ));
    }

    /// A peptide set for hand-worked examples: human iff listed.
    struct Listed(HashSet<Vec<u8>>);

    impl Listed {
        fn new(peptides: &[&str]) -> Listed {
            Listed(peptides.iter().map(|p| p.as_bytes().to_vec()).collect())
        }
    }

    impl HumanPeptides for Listed {
        fn is_human(&self, peptide: &[u8], _chain: ChainType) -> Result<bool, PeptideError> {
            Ok(self.0.contains(peptide))
        }
        fn describe(&self) -> String {
            "listed".to_string()
        }
    }

    #[test]
    fn identity_counts_every_window_including_repeats() {
        // 12 residues, 4 windows: GGGGGGGGG occurs at starts 0, 1 and 2 and counts
        // three times, as BioPhi keys peptides by position.
        let seq = b"GGGGGGGGGGGA";
        let peptides = Listed::new(&["GGGGGGGGG"]);
        let chain = ChainOasis::new(seq, ChainType::H, &peptides).expect("answers");
        assert_eq!(chain.num_peptides(), 4);
        assert_eq!(chain.num_human_peptides(), 3);
        assert_eq!(chain.identity(), Some(0.75));
    }

    #[test]
    fn chains_shorter_than_a_peptide_have_no_identity() {
        let peptides = Listed::new(&[]);
        assert_eq!(
            oasis_identity(b"QVQLVQSG", ChainType::H, &peptides),
            Ok(None)
        );
        assert_eq!(
            oasis_identity(b"QVQLVQSGA", ChainType::H, &peptides),
            Ok(Some(0.0))
        );
        let short = ChainOasis::new(b"QVQ", ChainType::H, &peptides).expect("answers");
        assert!(short.residue_scores().is_empty());
        assert_eq!(oasis_score(&[&short]), None);
        assert_eq!(pooled_oasis_identity(&[&short]), None);
    }

    #[test]
    fn residue_scores_average_the_covering_windows() {
        // 11 residues, windows at starts 0, 1, 2; only the middle one is human.
        // Residue 0 is covered by window 0 only; residue 1 by 0-1; residues 2..=8 by
        // all three; residue 9 by 1-2; residue 10 by 2 only.
        let seq = b"ACDEFGHIKLM";
        let peptides = Listed::new(&["CDEFGHIKL"]);
        let chain = ChainOasis::new(seq, ChainType::K, &peptides).expect("answers");
        let third = 1.0 / 3.0;
        let expected = [
            0.0, 0.5, third, third, third, third, third, third, third, 0.5, 0.0,
        ];
        assert_eq!(chain.residue_scores(), expected);

        let score = oasis_score(&[&chain]).expect("11 scored residues");
        let mean = expected.iter().sum::<f64>() / 11.0;
        assert!((score.mean - mean).abs() < 1e-12);
        assert_eq!(score.median, third);
    }

    #[test]
    fn antibody_values_pool_both_chains() {
        // VH: 10 residues, 2 windows, 1 human. VL: 9 residues, 1 window, human.
        let peptides = Listed::new(&["ACDEFGHIK", "LMNPQRSTV"]);
        let oasis =
            antibody_oasis(b"ACDEFGHIKW", b"LMNPQRSTV", ChainType::L, &peptides).expect("answers");
        assert_eq!(oasis.identity.vh, Some(0.5));
        assert_eq!(oasis.identity.vl, Some(1.0));
        assert_eq!(oasis.identity.antibody, Some(2.0 / 3.0));
        // VH residue scores: [1, .5 x 8, 0]; VL: [1 x 9]. Sorted, the 19 values are
        // [0, .5 x 8, 1 x 10]: the median (10th) is 1.
        let score = oasis.score.expect("both chains scored");
        assert!((score.mean - (1.0 + 4.0 + 0.0 + 9.0) / 19.0).abs() < 1e-12);
        assert_eq!(score.median, 1.0);
    }

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        // VH: 11 residues, windows 0 (human), 1, 2 (not): scores
        // [1, .5, 1/3 x 7, 0, 0]. VL: 9 residues, its one window human: [1 x 9].
        // Sorted, the 20 values are [0, 0, 1/3 x 7, .5, 1 x 10]; the middle pair is
        // (.5, 1).
        let peptides = Listed::new(&["ACDEFGHIK", "LMNPQRSTV"]);
        let oasis =
            antibody_oasis(b"ACDEFGHIKLM", b"LMNPQRSTV", ChainType::K, &peptides).expect("answers");
        let score = oasis.score.expect("both chains scored");
        assert_eq!(score.median, 0.75);
        assert!((score.mean - (1.0 + 0.5 + 7.0 / 3.0 + 9.0) / 20.0).abs() < 1e-12);
    }

    struct Parental {
        vh: String,
        vl: String,
    }

    fn fixture(name: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/humab25/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
    }

    fn parental_chains() -> HashMap<String, Parental> {
        let mut chains: HashMap<String, Parental> = HashMap::new();
        let text = fixture("parental.fa");
        let mut lines = text.lines();
        while let Some(header) = lines.next() {
            let (name, kind) = header
                .trim_start_matches('>')
                .split_once(' ')
                .expect("header is '>NAME VH' or '>NAME VL'");
            let seq = lines
                .next()
                .expect("one sequence line per record")
                .to_string();
            let entry = chains.entry(name.to_string()).or_insert_with(|| Parental {
                vh: String::new(),
                vl: String::new(),
            });
            match kind {
                "VH" => entry.vh = seq,
                "VL" => entry.vl = seq,
                other => panic!("unknown chain {other}"),
            }
        }
        chains
    }

    struct BiophiRow {
        antibody: String,
        identity: f64,
        heavy_identity: f64,
        heavy_non_human: usize,
        light_type: ChainType,
        light_identity: f64,
        light_non_human: usize,
    }

    fn biophi_rows() -> Vec<BiophiRow> {
        let text = fixture("parental_oasis_biophi.csv");
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().expect("header").split(',').collect();
        let column = |name: &str| {
            header
                .iter()
                .position(|&c| c == name)
                .unwrap_or_else(|| panic!("no column {name}"))
        };
        let antibody = column("Antibody");
        let identity = column("OASis Identity");
        let heavy = column("Heavy OASis Identity");
        let heavy_non_human = column("Heavy Non-human peptides");
        let light_v = column("Light V Germline");
        let light = column("Light OASis Identity");
        let light_non_human = column("Light Non-human peptides");
        lines
            .map(|line| {
                let cells: Vec<&str> = line.split(',').collect();
                let number = |i: usize| cells[i].parse::<f64>().expect("a number");
                BiophiRow {
                    antibody: cells[antibody].to_string(),
                    identity: number(identity),
                    heavy_identity: number(heavy),
                    heavy_non_human: number(heavy_non_human) as usize,
                    light_type: if cells[light_v].starts_with("IGLV") {
                        ChainType::L
                    } else {
                        ChainType::K
                    },
                    light_identity: number(light),
                    light_non_human: number(light_non_human) as usize,
                }
            })
            .collect()
    }

    /// BioPhi's peptide count, recovered from its identity and non-human count.
    fn biophi_peptides(identity: f64, non_human: usize) -> usize {
        (non_human as f64 / (1.0 - identity)).round() as usize
    }

    /// A chain with BioPhi's counts: `non_human` of `all` peptides not human.
    fn counted(all: usize, non_human: usize) -> ChainOasis {
        let mut human = vec![true; all - non_human];
        human.resize(all, false);
        ChainOasis {
            human,
            residues: all + PEPTIDE_LEN - 1,
        }
    }

    #[test]
    fn antibody_identity_pools_counts_as_biophi_does() {
        for row in biophi_rows() {
            let vh = counted(
                biophi_peptides(row.heavy_identity, row.heavy_non_human),
                row.heavy_non_human,
            );
            let vl = counted(
                biophi_peptides(row.light_identity, row.light_non_human),
                row.light_non_human,
            );
            let pooled = pooled_oasis_identity(&[&vh, &vl]).expect("peptides");
            assert!((pooled - row.identity).abs() < 1e-12, "{}", row.antibody);
        }
    }

    /// The two parental VLs where the pooled 10 % set calls one more peptide human than
    /// BioPhi's report (which judged light-chain peptides against light-chain subjects
    /// of the full database). Their peptide counts equal BioPhi's, so trimming to the
    /// numbered domain does not explain it.
    const VL_ONE_MORE_HUMAN: [&str; 2] = ["Etaracizumab", "Lorvotuzumab"];

    #[test]
    fn parental_identities_match_biophi() {
        let chains = parental_chains();
        let rows = biophi_rows();
        assert_eq!(rows.len(), 25);
        let set = OasisSet::embedded();
        let mut heavy_differences = Vec::new();
        for row in &rows {
            let parental = &chains[&row.antibody];
            let vh = ChainOasis::new(parental.vh.as_bytes(), ChainType::H, set).expect("answers");
            let vl = ChainOasis::new(parental.vl.as_bytes(), row.light_type, set).expect("answers");
            // Same windows as BioPhi: the chains are the numbered domains it scored.
            let biophi_vh = biophi_peptides(row.heavy_identity, row.heavy_non_human);
            let biophi_vl = biophi_peptides(row.light_identity, row.light_non_human);
            assert_eq!(vh.num_peptides(), biophi_vh, "{} VH", row.antibody);
            assert_eq!(vl.num_peptides(), biophi_vl, "{} VL", row.antibody);

            let light = vl.identity().expect("a V domain is longer than 9");
            if VL_ONE_MORE_HUMAN.contains(&row.antibody.as_str()) {
                let biophi_human = biophi_vl - row.light_non_human;
                assert_eq!(
                    vl.num_human_peptides(),
                    biophi_human + 1,
                    "{} VL",
                    row.antibody
                );
            } else {
                assert!(
                    (light - row.light_identity).abs() <= 0.002,
                    "{} VL: ours {light}, BioPhi {}",
                    row.antibody,
                    row.light_identity
                );
            }
            let heavy = vh.identity().expect("a V domain is longer than 9");
            heavy_differences.push(heavy - row.heavy_identity);
        }
        // BioPhi's report used the full database, judging VH peptides against
        // heavy-chain subjects; the pooled 10 % set calls more of them human, never
        // fewer. Measured: mean +0.0350, min 0.0000, max +0.0804.
        let mean = heavy_differences.iter().sum::<f64>() / heavy_differences.len() as f64;
        let min = heavy_differences
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let max = heavy_differences
            .iter()
            .copied()
            .fold(f64::NEG_INFINITY, f64::max);
        assert!(min >= 0.0, "VH: ours below BioPhi by {min}");
        assert!((0.030..=0.040).contains(&mean), "mean VH difference {mean}");
        assert!(max <= 0.085, "max VH difference {max}");
    }
}
