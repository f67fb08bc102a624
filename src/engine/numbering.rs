//! Numbering one chain in IMGT, Kabat and Chothia from a single alignment.
//!
//! A thin adapter over `immunum` (MIT, pinned): it aligns the chain against per-chain-type
//! profiles, finds the variable domain inside a longer sequence, and applies the schemes'
//! insertion rules. What this module adds: our position labels, our errors, one alignment for
//! every scheme, and the checks that an input field holds the chain it claims to.

use std::fmt;
use std::sync::OnceLock;

use immunum::{Annotator, Chain, Scheme as ImmunumScheme};
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

fn annotator() -> &'static Annotator {
    static ANNOTATOR: OnceLock<Annotator> = OnceLock::new();
    ANNOTATOR.get_or_init(|| {
        Annotator::new(&[Chain::IGH, Chain::IGK, Chain::IGL], ImmunumScheme::IMGT, None)
            .expect("three antibody chains and IMGT are a valid immunum configuration")
    })
}

/// Numbers one chain (already cleaned by [`super::sequence::clean`]).
pub fn number(residues: &[u8]) -> Result<NumberedChain, ChainError> {
    // `clean` guarantees ASCII upper-case letters, so this cannot fail.
    let text = std::str::from_utf8(residues).map_err(|_| ChainError::NotAntibody {
        detail: "the sequence is not text".into(),
    })?;
    if residues.len() < 30 {
        return Err(ChainError::TooShort {
            length: residues.len(),
        });
    }
    let domains = annotator()
        .domains(text)
        .map_err(|error| ChainError::NotAntibody {
            detail: match error {
                immunum::SequenceError::LowConfidence { confidence, .. } => format!(
                    "its best alignment to heavy, kappa and lambda profiles scores {confidence:.2} of a perfect match; 0.50 is needed"
                ),
                other => other.to_string(),
            },
        })?;
    let domain = &domains[0];
    let chain_type = match domain.chain() {
        Chain::IGH => ChainType::H,
        Chain::IGK => ChainType::K,
        Chain::IGL => ChainType::L,
        other => {
            return Err(ChainError::NotAntibody {
                detail: format!("it aligns as a T-cell receptor chain ({other})"),
            });
        }
    };
    let length = domain.query_end() + 1 - domain.query_start();
    if length < MIN_DOMAIN_LENGTH {
        return Err(ChainError::TooShort { length });
    }
    let scheme_positions = |scheme| -> Result<Vec<Position>, ChainError> {
        let numbering = domain
            .number(scheme)
            .map_err(|error| ChainError::NotAntibody {
                detail: error.to_string(),
            })?;
        Ok(numbering
            .positions
            .iter()
            .map(|p| Position {
                number: p.number,
                insertion: p.insertion.map(|c| c as u8),
            })
            .collect())
    };
    Ok(NumberedChain {
        chain_type,
        residues: residues[domain.query_start()..=domain.query_end()].to_vec(),
        start: domain.query_start(),
        input_length: residues.len(),
        imgt: scheme_positions(ImmunumScheme::IMGT)?,
        kabat: scheme_positions(ImmunumScheme::Kabat)?,
        chothia: scheme_positions(ImmunumScheme::Chothia)?,
    })
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
