//! What the store keeps about requests rather than resources: idempotency keys, the daily
//! write quota, and the operator settings a running server polls.

use super::db::exec;
use crate::store::charge::{Counted, WriteCharge};
use crate::store::model::{IdempotencyScope, StoredResponse};
use rusqlite::{Connection, OptionalExtension, params};

/// A stored idempotency key.
#[derive(Debug, Clone, PartialEq)]
pub struct IdempotencyRecord {
    pub fingerprint: String,
    /// None while the first request is in flight.
    pub response: Option<StoredResponse>,
}

/// The live record for the key, ignoring expired ones.
pub fn find_key(
    conn: &Connection,
    scope: &IdempotencyScope,
    now: &str,
) -> rusqlite::Result<Option<IdempotencyRecord>> {
    conn.prepare_cached(
        "SELECT fingerprint, response_status, response_body, response_location \
         FROM idempotency_keys WHERE org_id = ?1 AND method = ?2 AND route = ?3 AND key = ?4 \
         AND expires_at > ?5",
    )?
    .query_row(
        params![scope.org_id, scope.method, scope.route, scope.key, now],
        |r| {
            let status: Option<u16> = r.get(1)?;
            let body: Option<String> = r.get(2)?;
            Ok(IdempotencyRecord {
                fingerprint: r.get(0)?,
                response: status.zip(body).map(|(status, body)| StoredResponse {
                    status,
                    body,
                    location: r.get(3).ok().flatten(),
                }),
            })
        },
    )
    .optional()
}

/// Claims the key for a first request (replacing an expired record).
pub fn reserve_key(
    tx: &Connection,
    scope: &IdempotencyScope,
    fingerprint: &str,
    now: &str,
    expires_at: &str,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT OR REPLACE INTO idempotency_keys \
         (org_id, method, route, key, fingerprint, created_at, expires_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            scope.org_id,
            scope.method,
            scope.route,
            scope.key,
            fingerprint,
            now,
            expires_at
        ],
    )?;
    Ok(())
}

/// Stores the response of the request that holds the key.
pub fn complete_key(
    tx: &Connection,
    scope: &IdempotencyScope,
    response: &StoredResponse,
) -> rusqlite::Result<()> {
    exec(
        tx,
        "UPDATE idempotency_keys SET response_status = ?5, response_body = ?6, \
         response_location = ?7 WHERE org_id = ?1 AND method = ?2 AND route = ?3 AND key = ?4",
        params![
            scope.org_id,
            scope.method,
            scope.route,
            scope.key,
            response.status,
            response.body,
            response.location
        ],
    )?;
    Ok(())
}

/// Frees a key whose request failed before creating anything, so it can be used again.
pub fn release_key(tx: &Connection, scope: &IdempotencyScope) -> rusqlite::Result<()> {
    exec(
        tx,
        "DELETE FROM idempotency_keys WHERE org_id = ?1 AND method = ?2 AND route = ?3 \
         AND key = ?4 AND response_status IS NULL",
        params![scope.org_id, scope.method, scope.route, scope.key],
    )?;
    Ok(())
}

/// Drops expired keys, and in-flight reservations left by a process that stopped mid-request
/// (`abandoned_before`: nothing started before this process can still be in flight).
pub fn sweep_keys(tx: &Connection, now: &str, abandoned_before: &str) -> rusqlite::Result<usize> {
    let expired = exec(
        tx,
        "DELETE FROM idempotency_keys WHERE expires_at <= ?1",
        [now],
    )?;
    let abandoned = exec(
        tx,
        "DELETE FROM idempotency_keys WHERE response_status IS NULL AND created_at < ?1",
        [abandoned_before],
    )?;
    Ok(expired + abandoned)
}

/// Counts one write request for its organization on its day, once its key is confirmed live;
/// nothing is counted when the key is revoked or gone, or the day's quota is used up.
pub fn count_write(tx: &Connection, charge: &WriteCharge) -> rusqlite::Result<Counted> {
    if !super::accounts::key_live(tx, &charge.key_id)? {
        return Ok(Counted::KeyGone);
    }
    let (org_id, day, quota) = (&charge.org_id, &charge.day, charge.quota);
    // Within the quota on a day already counted (nearly every write), a plain UPDATE: the
    // upsert below costs about twice as much (its insert attempt, its RETURNING).
    let counted = exec(
        tx,
        "UPDATE daily_writes SET count = count + 1 \
         WHERE org_id = ?1 AND day = ?2 AND count < ?3",
        params![org_id, day, quota],
    )?;
    if counted == 1 {
        return Ok(Counted::Within);
    }
    // The day's first write, or the quota used up: the upsert tells them apart.
    let count: Option<i64> = tx
        .prepare_cached(
            "INSERT INTO daily_writes (org_id, day, count) VALUES (?1, ?2, 1) \
             ON CONFLICT (org_id, day) DO UPDATE SET count = count + 1 WHERE count < ?3 \
             RETURNING count",
        )?
        .query_row(params![org_id, day, quota], |r| r.get(0))
        .optional()?;
    Ok(match count {
        Some(c) if c <= quota => Counted::Within,
        _ => Counted::OverQuota,
    })
}

pub fn get_setting(conn: &Connection, key: &str) -> rusqlite::Result<Option<String>> {
    conn.prepare_cached("SELECT value FROM settings WHERE key = ?1")?
        .query_row([key], |r| r.get(0))
        .optional()
}

pub fn set_setting(tx: &Connection, key: &str, value: &str) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}
