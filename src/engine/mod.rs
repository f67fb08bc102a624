//! The humanization engine: a pure library from sequences to results.
//! No tokio, no SQL, no HTTP; the only data it reads is embedded in the binary.

pub mod chain;
pub mod germlines;
pub mod grafting;
pub mod humanize;
pub mod humanness;
pub mod liabilities;
pub mod mitigation;
pub mod numbering;
pub mod oasis_rules;
pub mod sapiens;
pub mod scfv;
pub mod sequence;
