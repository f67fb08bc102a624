//! `veneer migrate`: a lab's SQLite database moved into a new PostgreSQL database, verified by
//! the row count of every table and every organization's ledger sums on both sides.

use super::{Census, Store, StoreError};

/// Copies `from` (SQLite) into `to` (PostgreSQL, empty) in one target transaction, then checks
/// that the target counts and sums what the source did. Returns the verified census.
pub async fn migrate(from: &Store, to: &Store) -> Result<Census, StoreError> {
    if !matches!(from, Store::Sqlite(_)) {
        return Err(StoreError::Refused(
            "--from must be a SQLite database file".into(),
        ));
    }
    if !matches!(to, Store::Postgres(_)) {
        return Err(StoreError::Refused("--to must be a postgres:// URL".into()));
    }
    // The dump and its census are read in one SQLite transaction: one consistent snapshot.
    let dump = from.dump().await?;
    let source = dump.census.clone();
    to.load(dump).await?;
    let target = to.census().await?;
    if source != target {
        let mut differences = Vec::new();
        for ((table, a), (_, b)) in source.tables.iter().zip(&target.tables) {
            if a != b {
                differences.push(format!(
                    "{table}: {a} rows in the source, {b} in the target"
                ));
            }
        }
        if source.ledger_sums != target.ledger_sums {
            differences.push("the ledger sums differ".into());
        }
        return Err(StoreError::Refused(format!(
            "the copy does not match its source: {}",
            differences.join("; ")
        )));
    }
    Ok(target)
}
