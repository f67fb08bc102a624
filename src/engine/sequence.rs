//! Turning what a user typed into a chain sequence the engine can number, or a clear refusal.

use std::fmt;

/// The longest input accepted for one chain. A variable domain is ~110–130 residues; a full
/// heavy chain with signal peptide and constant region is ~470. Anything longer is not one chain.
pub const MAX_CHAIN_LENGTH: usize = 1_000;

/// Why an input is not a usable antibody chain. Messages are complete sentences without the
/// chain's name; the caller prefixes it (`VH: ...`).
#[derive(Debug, Clone, PartialEq)]
pub enum ChainError {
    Empty,
    TooLong { length: usize },
    InvalidResidue { residue: char, position: usize },
    NotAntibody { detail: String },
    WrongChainType { expected: Expected, found: char },
    TooShort { length: usize },
}

/// Which kind of chain a field expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expected {
    Heavy,
    Light,
}

impl fmt::Display for ChainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChainError::Empty => write!(f, "the sequence is empty"),
            ChainError::TooLong { length } => write!(
                f,
                "the sequence has {length} residues; at most {MAX_CHAIN_LENGTH} are accepted for one chain"
            ),
            ChainError::InvalidResidue { residue, position } => write!(
                f,
                "{residue:?} at position {position} is not one of the 20 standard amino acids (one-letter codes ACDEFGHIKLMNPQRSTVWY)"
            ),
            ChainError::NotAntibody { detail } => {
                write!(
                    f,
                    "not recognised as an antibody variable domain ({detail})"
                )
            }
            ChainError::WrongChainType { expected, found } => {
                let found = match found {
                    'H' => "a heavy chain (VH)",
                    'K' => "a kappa light chain (VK)",
                    _ => "a lambda light chain (VL)",
                };
                let expected = match expected {
                    Expected::Heavy => "a heavy chain (VH)",
                    Expected::Light => "a light chain (VK or VL)",
                };
                write!(f, "this is {found}, but the field expects {expected}")
            }
            ChainError::TooShort { length } => write!(
                f,
                "the antibody domain found is only {length} residues long; a variable domain has about 110"
            ),
        }
    }
}

impl std::error::Error for ChainError {}

/// Normalises a user's sequence: whitespace removed, upper-cased, and every remaining letter
/// checked against the 20 standard amino acids. Positions in errors are 1-based over the
/// whitespace-free sequence, as a user counts them.
pub fn clean(raw: &str) -> Result<Vec<u8>, ChainError> {
    let mut residues = Vec::with_capacity(raw.len());
    for c in raw.chars().filter(|c| !c.is_whitespace()) {
        let upper = c.to_ascii_uppercase();
        if !upper.is_ascii() || !super::chain::is_amino_acid(upper as u8) {
            return Err(ChainError::InvalidResidue {
                residue: c,
                position: residues.len() + 1,
            });
        }
        residues.push(upper as u8);
        if residues.len() > MAX_CHAIN_LENGTH {
            let length = raw.chars().filter(|c| !c.is_whitespace()).count();
            return Err(ChainError::TooLong { length });
        }
    }
    if residues.is_empty() {
        return Err(ChainError::Empty);
    }
    Ok(residues)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_whitespace_and_upper_cases() {
        assert_eq!(clean(" evql\n vesg\t").unwrap(), b"EVQLVESG".to_vec());
    }

    #[test]
    fn rejects_non_amino_acid_letters_with_their_position() {
        assert_eq!(
            clean("EVQLXVE"),
            Err(ChainError::InvalidResidue {
                residue: 'X',
                position: 5
            })
        );
        assert_eq!(
            clean("EV*"),
            Err(ChainError::InvalidResidue {
                residue: '*',
                position: 3
            })
        );
        assert!(matches!(
            clean("EVQLβ"),
            Err(ChainError::InvalidResidue { residue: 'β', .. })
        ));
    }

    #[test]
    fn rejects_empty_and_absurdly_long_input() {
        assert_eq!(clean(""), Err(ChainError::Empty));
        assert_eq!(clean(" \n"), Err(ChainError::Empty));
        let long = "A".repeat(1_500);
        assert_eq!(clean(&long), Err(ChainError::TooLong { length: 1_500 }));
        assert!(clean(&"A".repeat(MAX_CHAIN_LENGTH)).is_ok());
    }
}
