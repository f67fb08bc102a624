//! Organizations, API keys and the credit ledger.

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{exec, new_id, now};
use crate::store::model::{ApiKey, Bucket, LedgerEntry, Organization};

fn org_from_row(r: &rusqlite::Row) -> rusqlite::Result<Organization> {
    Ok(Organization {
        id: r.get(0)?,
        name: r.get(1)?,
        subscription: r.get(2)?,
        purchased: r.get(3)?,
        created_at: r.get(4)?,
    })
}

const ORG_COLUMNS: &str = "id, name, subscription_credits, purchased_credits, created_at";

/// A new organization with `credits` granted to its subscription bucket.
pub fn create_org(tx: &Connection, name: &str, credits: i64) -> rusqlite::Result<Organization> {
    let id = new_id();
    let created_at = now();
    exec(
        tx,
        "INSERT INTO organizations (id, name, created_at) VALUES (?1, ?2, ?3)",
        params![id, name, created_at],
    )?;
    if credits > 0 {
        grant(tx, &id, Bucket::Subscription, credits)?;
    }
    Ok(Organization {
        id,
        name: name.to_string(),
        subscription: credits.max(0),
        purchased: 0,
        created_at,
    })
}

pub fn get_org(conn: &Connection, id: &str) -> rusqlite::Result<Option<Organization>> {
    conn.prepare_cached(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations WHERE id = ?1"
    ))?
    .query_row([id], org_from_row)
    .optional()
}

pub fn list_orgs(conn: &Connection) -> rusqlite::Result<Vec<Organization>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ORG_COLUMNS} FROM organizations ORDER BY id"
    ))?;
    stmt.query_map([], org_from_row)?.collect()
}

pub fn count_orgs(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("SELECT COUNT(*) FROM organizations", [], |r| r.get(0))
}

fn key_from_row(r: &rusqlite::Row) -> rusqlite::Result<ApiKey> {
    Ok(ApiKey {
        id: r.get(0)?,
        org_id: r.get(1)?,
        prefix: r.get(2)?,
        hash: r.get(3)?,
        scopes: r.get(4)?,
        created_at: r.get(5)?,
        revoked_at: r.get(6)?,
    })
}

/// A key's columns in [`key_from_row`]'s order (a macro, so the per-request lookup's query is
/// `concat!`ed at compile time).
macro_rules! key_columns {
    () => {
        "id, org_id, prefix, hash, scopes, created_at, revoked_at"
    };
}
const KEY_COLUMNS: &str = key_columns!();

pub fn insert_key(
    tx: &Connection,
    org_id: &str,
    prefix: &str,
    hash: &[u8],
    scopes: &str,
) -> rusqlite::Result<ApiKey> {
    let key = ApiKey {
        id: new_id(),
        org_id: org_id.to_string(),
        prefix: prefix.to_string(),
        hash: hash.to_vec(),
        scopes: scopes.to_string(),
        created_at: now(),
        revoked_at: None,
    };
    exec(
        tx,
        "INSERT INTO api_keys (id, org_id, prefix, hash, scopes, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            key.id,
            key.org_id,
            key.prefix,
            key.hash,
            key.scopes,
            key.created_at
        ],
    )?;
    Ok(key)
}

/// Keys whose public prefix matches; the caller compares hashes in constant time.
pub fn keys_with_prefix(conn: &Connection, prefix: &str) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare_cached(concat!(
        "SELECT ",
        key_columns!(),
        " FROM api_keys WHERE prefix = ?1"
    ))?;
    stmt.query_map([prefix], key_from_row)?.collect()
}

/// Whether the key of this id exists and is not revoked.
pub fn key_live(conn: &Connection, id: &str) -> rusqlite::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM api_keys WHERE id = ?1 AND revoked_at IS NULL")?
        .query_row([id], |_| Ok(()))
        .optional()
        .map(|row| row.is_some())
}

pub fn list_keys(conn: &Connection, org_id: &str) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = ?1 ORDER BY id"
    ))?;
    stmt.query_map([org_id], key_from_row)?.collect()
}

/// Marks a key revoked; false when there is no such key. Revoking twice keeps the first time.
pub fn revoke_key(tx: &Connection, key_id: &str) -> rusqlite::Result<bool> {
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM api_keys WHERE id = ?1", [key_id], |r| {
            r.get(0)
        })
        .optional()?;
    if exists.is_none() {
        return Ok(false);
    }
    exec(
        tx,
        "UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL",
        params![key_id, now()],
    )?;
    Ok(true)
}

fn insert_ledger(
    tx: &Connection,
    org_id: &str,
    bucket: Bucket,
    delta: i64,
    reason: &str,
    job_id: Option<&str>,
) -> rusqlite::Result<()> {
    // The AFTER INSERT trigger in schema.sql moves the cached bucket balance with the row.
    exec(
        tx,
        "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new_id(),
            org_id,
            bucket.name(),
            delta,
            reason,
            job_id,
            now()
        ],
    )?;
    Ok(())
}

pub fn grant(tx: &Connection, org_id: &str, bucket: Bucket, amount: i64) -> rusqlite::Result<()> {
    insert_ledger(tx, org_id, bucket, amount, "grant", None)
}

/// Debits `cost` for a job, subscription bucket first. The caller has checked the balance in
/// the same transaction; the schema's CHECKs abort it if a bucket would still go negative.
pub fn debit(tx: &Connection, org: &Organization, job_id: &str, cost: i64) -> rusqlite::Result<()> {
    let from_subscription = cost.min(org.subscription);
    let from_purchased = cost - from_subscription;
    if from_subscription > 0 {
        insert_ledger(
            tx,
            &org.id,
            Bucket::Subscription,
            -from_subscription,
            "debit",
            Some(job_id),
        )?;
    }
    if from_purchased > 0 {
        insert_ledger(
            tx,
            &org.id,
            Bucket::Purchased,
            -from_purchased,
            "debit",
            Some(job_id),
        )?;
    }
    Ok(())
}

/// Refunds a job's cost to the subscription bucket. Returns false (and changes nothing) when
/// the job was already refunded: the unique index on refunds decides, not the callers.
pub fn refund(tx: &Connection, org_id: &str, job_id: &str, cost: i64) -> rusqlite::Result<bool> {
    if cost <= 0 {
        return Ok(false);
    }
    let inserted = exec(
        tx,
        "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at) \
         VALUES (?1, ?2, 'subscription', ?3, 'refund', ?4, ?5) \
         ON CONFLICT (job_id) WHERE reason = 'refund' DO NOTHING",
        params![new_id(), org_id, cost, job_id, now()],
    )?;
    Ok(inserted == 1)
}

/// The ledger newest first, `limit` rows older than the cursor.
pub fn ledger_page(
    conn: &Connection,
    org_id: &str,
    before: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<LedgerEntry>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, org_id, bucket, delta, reason, job_id, created_at FROM credit_ledger \
         WHERE org_id = ?1 AND (?2 IS NULL OR id < ?2) ORDER BY id DESC LIMIT ?3",
    )?;
    stmt.query_map(params![org_id, before, limit as i64], ledger_from_row)?
        .collect()
}

fn ledger_from_row(r: &rusqlite::Row) -> rusqlite::Result<LedgerEntry> {
    Ok(LedgerEntry {
        id: r.get(0)?,
        org_id: r.get(1)?,
        bucket: r.get(2)?,
        delta: r.get(3)?,
        reason: r.get(4)?,
        job_id: r.get(5)?,
        created_at: r.get(6)?,
    })
}

/// Every key, oldest first (for `veneer migrate`).
pub fn all_keys(conn: &Connection) -> rusqlite::Result<Vec<ApiKey>> {
    let mut stmt = conn.prepare(&format!("SELECT {KEY_COLUMNS} FROM api_keys ORDER BY id"))?;
    stmt.query_map([], key_from_row)?.collect()
}

/// The whole ledger, oldest first (for `veneer migrate`).
pub fn all_ledger(conn: &Connection) -> rusqlite::Result<Vec<LedgerEntry>> {
    let mut stmt = conn.prepare(
        "SELECT id, org_id, bucket, delta, reason, job_id, created_at FROM credit_ledger ORDER BY id",
    )?;
    stmt.query_map([], ledger_from_row)?.collect()
}

/// The ledger's sums per bucket, to check the cached balances against.
pub fn ledger_sums(conn: &Connection, org_id: &str) -> rusqlite::Result<(i64, i64)> {
    conn.query_row(
        "SELECT COALESCE(SUM(CASE WHEN bucket = 'subscription' THEN delta END), 0), \
                COALESCE(SUM(CASE WHEN bucket = 'purchased' THEN delta END), 0) \
         FROM credit_ledger WHERE org_id = ?1",
        [org_id],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
}

#[cfg(test)]
mod tests {
    use super::super::db::Db;
    use super::*;
    use crate::store::StoreError;

    fn setup() -> (tempfile::TempDir, std::sync::Arc<Db>, Organization) {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = Db::open(dir.path().join("t.db"), 1).expect("open");
        let org = db
            .write(|tx| {
                let org = create_org(tx, "lab", 1)?;
                grant(tx, &org.id, Bucket::Purchased, 1)?;
                Ok::<_, StoreError>(org)
            })
            .expect("setup");
        (dir, db, org)
    }

    fn insert_job(tx: &Connection, org: &str, id: &str) -> rusqlite::Result<()> {
        exec(
            tx,
            "INSERT INTO jobs (id, org_id, kind, status, inputs, snapshot, credit_cost, created_at) \
             VALUES (?1, ?2, 'humanization', 'pending', '{}', '{}', 1, 'now')",
            params![id, org],
        )
        .map(|_| ())
    }

    #[test]
    fn a_job_is_refunded_at_most_once_and_balances_follow_the_ledger() {
        let (_dir, db, org) = setup();
        let id = org.id.clone();
        let refunds = db
            .write(move |tx| {
                insert_job(tx, &id, "j1")?;
                let org = get_org(tx, &id)?.expect("org");
                debit(tx, &org, "j1", 1)?;
                let first = refund(tx, &org.id, "j1", 1)?;
                let second = refund(tx, &org.id, "j1", 1)?;
                Ok::<_, StoreError>((first, second))
            })
            .expect("refunds");
        assert_eq!(refunds, (true, false));
        let (org_now, sums) = db
            .read(|c| {
                Ok::<_, StoreError>((get_org(c, &org.id)?.expect("org"), ledger_sums(c, &org.id)?))
            })
            .expect("read");
        assert_eq!((org_now.subscription, org_now.purchased), sums);
        assert_eq!(org_now.balance(), 2);
    }

    #[test]
    fn the_ledger_is_append_only_and_a_bucket_never_goes_negative() {
        let (_dir, db, org) = setup();
        let update = db.write(|tx| {
            exec(tx, "UPDATE credit_ledger SET delta = 100", []).map_err(StoreError::from)
        });
        assert!(update.is_err());
        let delete =
            db.write(|tx| exec(tx, "DELETE FROM credit_ledger", []).map_err(StoreError::from));
        assert!(delete.is_err());
        // Two credits in two buckets: a debit of 2 takes one from each; a third fails whole.
        let id = org.id.clone();
        let debited = db.write(move |tx| {
            insert_job(tx, &id, "j1")?;
            let o = get_org(tx, &id)?.expect("org");
            debit(tx, &o, "j1", 2)?;
            Ok::<_, StoreError>(get_org(tx, &id)?.expect("org"))
        });
        let after = debited.expect("debit");
        assert_eq!((after.subscription, after.purchased), (0, 0));
        let (id, stale) = (
            org.id.clone(),
            Organization {
                subscription: 1,
                ..after.clone()
            },
        );
        let overdraft = db.write(move |tx| {
            insert_job(tx, &id, "j2")?;
            debit(tx, &stale, "j2", 1).map_err(StoreError::from)
        });
        assert!(overdraft.is_err(), "the CHECK refuses a negative bucket");
        let still = db
            .read(|c| get_org(c, &org.id).map_err(StoreError::from))
            .expect("read")
            .expect("org");
        assert_eq!(
            still.balance(),
            0,
            "the failed transaction left nothing behind"
        );
    }
}
