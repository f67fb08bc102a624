//! Splitting one single-chain Fv sequence into its VH and VL, as ANARCI finds the domains.

use std::fmt;

use serde::Serialize;

use super::numbering::{NumberedChain, number_domains};
use super::sequence::{ChainError, clean};

/// Where a domain lies in the scFv, 0-based with `end` inclusive (as `veneer number`'s `span`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

/// How an scFv was split: the two domains (the numbered residues only, as ANARCI's domains)
/// and what lies around and between them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScfvSplit {
    /// `VH-VL` or `VL-VH`: which domain comes first.
    pub order: &'static str,
    pub vh_span: Span,
    pub vl_span: Span,
    /// The residues between the two domains.
    pub linker: String,
    /// Residues before the first domain (a signal peptide, a tag) and after the second.
    pub n_terminal: String,
    pub c_terminal: String,
    #[serde(skip)]
    pub vh: String,
    #[serde(skip)]
    pub vl: String,
}

/// Why a sequence is not one scFv.
#[derive(Debug, Clone, PartialEq)]
pub enum ScfvError {
    Chain(ChainError),
    /// Not exactly two variable domains (with where each starts, 1-based).
    Domains {
        starts: Vec<usize>,
    },
    /// Two domains, but not one heavy and one light (a bivalent nanobody, say).
    NotAPair {
        types: [char; 2],
    },
}

impl fmt::Display for ScfvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ScfvError::Chain(error) => error.fmt(f),
            ScfvError::Domains { starts } if starts.len() == 1 => write!(
                f,
                "only one variable domain was found (from residue {}); an scFv holds a VH and a VL — register a single chain with vh (and vl)",
                starts[0]
            ),
            ScfvError::Domains { starts } => write!(
                f,
                "{} variable domains were found (starting at residues {}); an scFv holds one VH and one VL",
                starts.len(),
                starts
                    .iter()
                    .map(usize::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ScfvError::NotAPair { types } => {
                let kind = |t: char| match t {
                    'H' => "heavy",
                    'K' => "kappa",
                    _ => "lambda",
                };
                write!(
                    f,
                    "the two variable domains are {} and {}; an scFv holds one heavy and one light domain",
                    kind(types[0]),
                    kind(types[1])
                )
            }
        }
    }
}

impl std::error::Error for ScfvError {}

/// Splits an scFv (VH–linker–VL or VL–linker–VH, with any tags) into its two domains.
pub fn split_scfv(raw: &str) -> Result<ScfvSplit, ScfvError> {
    let residues = clean(raw).map_err(ScfvError::Chain)?;
    let domains = number_domains(&residues).map_err(ScfvError::Chain)?;
    let [first, second] = domains.as_slice() else {
        return Err(ScfvError::Domains {
            starts: domains.iter().map(|d| d.start + 1).collect(),
        });
    };
    let (vh, vl, order) = match (first.chain_type.is_heavy(), second.chain_type.is_heavy()) {
        (true, false) => (first, second, "VH-VL"),
        (false, true) => (second, first, "VL-VH"),
        _ => {
            return Err(ScfvError::NotAPair {
                types: [first.chain_type.letter(), second.chain_type.letter()],
            });
        }
    };
    let text = |bytes: &[u8]| bytes.iter().map(|&r| char::from(r)).collect::<String>();
    let span = |d: &NumberedChain| Span {
        start: d.start,
        end: d.start + d.residues.len() - 1,
    };
    let first_end = first.start + first.residues.len();
    let second_end = second.start + second.residues.len();
    Ok(ScfvSplit {
        order,
        vh_span: span(vh),
        vl_span: span(vl),
        linker: text(&residues[first_end..second.start]),
        n_terminal: text(&residues[..first.start]),
        c_terminal: text(&residues[second_end..]),
        vh: text(&vh.residues),
        vl: text(&vl.residues),
    })
}
