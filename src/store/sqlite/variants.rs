//! Registered antibody variants.

use super::db::exec;
use crate::store::model::VariantRow;
use rusqlite::{Connection, OptionalExtension, params};

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<VariantRow> {
    Ok(VariantRow {
        id: r.get(0)?,
        org_id: r.get(1)?,
        name: r.get(2)?,
        vh: r.get(3)?,
        vl: r.get(4)?,
        vl_chain_type: r.get(5)?,
        scfv: r.get(6)?,
        created_at: r.get(7)?,
    })
}

const COLUMNS: &str = "id, org_id, name, vh, vl, vl_chain_type, scfv, created_at";

pub fn insert(tx: &Connection, v: &VariantRow) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, scfv, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            v.id,
            v.org_id,
            v.name,
            v.vh,
            v.vl,
            v.vl_chain_type,
            v.scfv,
            v.created_at
        ],
    )?;
    Ok(())
}

/// The variant when it exists and belongs to `org_id`.
pub fn get(conn: &Connection, org_id: &str, id: &str) -> rusqlite::Result<Option<VariantRow>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM variants WHERE id = ?1 AND org_id = ?2"
    ))?
    .query_row(params![id, org_id], from_row)
    .optional()
}

pub fn page(
    conn: &Connection,
    org_id: &str,
    before: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<VariantRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM variants WHERE org_id = ?1 AND (?2 IS NULL OR id < ?2) \
         ORDER BY id DESC LIMIT ?3"
    ))?;
    stmt.query_map(params![org_id, before, limit as i64], from_row)?
        .collect()
}

/// Every variant, oldest first (for `veneer migrate`).
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<VariantRow>> {
    let mut stmt = conn.prepare(&format!("SELECT {COLUMNS} FROM variants ORDER BY id"))?;
    stmt.query_map([], from_row)?.collect()
}

/// Deletes the variant; false when it does not exist for this organization.
pub fn delete(tx: &Connection, org_id: &str, id: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "DELETE FROM variants WHERE id = ?1 AND org_id = ?2",
        params![id, org_id],
    )? == 1)
}
