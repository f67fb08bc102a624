//! The vocabulary every engine module shares: chain types and amino acids.

use serde::Serialize;

/// The type of an antibody variable domain, as ANARCI names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum ChainType {
    /// Heavy chain (VH).
    H,
    /// Kappa light chain (VK).
    K,
    /// Lambda light chain (VL).
    L,
}

impl ChainType {
    pub fn is_heavy(self) -> bool {
        self == ChainType::H
    }

    /// The letter ANARCI uses (`H`, `K`, `L`).
    pub fn letter(self) -> char {
        match self {
            ChainType::H => 'H',
            ChainType::K => 'K',
            ChainType::L => 'L',
        }
    }

    /// The letter that prefixes position labels: kappa and lambda both use `L`.
    pub fn label_prefix(self) -> char {
        match self {
            ChainType::H => 'H',
            ChainType::K | ChainType::L => 'L',
        }
    }
}

/// The 20 standard amino acids in alphabetical one-letter order (Sapiens' vocabulary order).
pub const AMINO_ACIDS: &[u8; 20] = b"ACDEFGHIKLMNPQRSTVWY";

/// Whether `residue` (upper case) is one of the 20 standard amino acids.
pub fn is_amino_acid(residue: u8) -> bool {
    AMINO_ACIDS.contains(&residue)
}
