//! The offline commands (`veneer number`, `veneer humanize`): input files in, JSON lines out.

pub mod humanize;
pub mod input;
pub mod number;
