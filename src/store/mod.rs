//! Everything that reads or writes SQLite. Today: BioPhi's OASis database, read-only.

pub mod oasis_db;
