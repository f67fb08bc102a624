//! Everything that reads or writes SQLite: the service database (`db` and one module per group
//! of tables, all DDL in the top-level `schema.sql`) and BioPhi's OASis database, read-only.

pub mod accounts;
pub mod db;
pub mod jobs;
pub mod oasis_db;
pub mod requests;
pub mod variants;
