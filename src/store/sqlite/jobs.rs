//! Jobs of every kind, and the queue they form while `pending`.

use rusqlite::{Connection, OptionalExtension, params};

use super::db::{exec, now};
use crate::store::model::{Held, JobRow, StageWrite, Status};

/// A job's columns in [`from_row`]'s order; a macro so the hot queries are `concat!`ed once,
/// at compile time, instead of formatted at each call.
macro_rules! columns {
    () => {
        "id, org_id, kind, status, stage, inputs, snapshot, credit_cost, created_at, \
         started_at, finished_at, results, parental, error"
    };
}
const COLUMNS: &str = columns!();

fn from_row(r: &rusqlite::Row) -> rusqlite::Result<JobRow> {
    let status: String = r.get(3)?;
    Ok(JobRow {
        id: r.get(0)?,
        org_id: r.get(1)?,
        kind: r.get(2)?,
        // The CHECK constraint admits only the five names.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        stage: r.get(4)?,
        inputs: r.get(5)?,
        snapshot: r.get(6)?,
        credit_cost: r.get(7)?,
        created_at: r.get(8)?,
        started_at: r.get(9)?,
        finished_at: r.get(10)?,
        results: r.get(11)?,
        parental: r.get(12)?,
        error: r.get(13)?,
    })
}

pub fn insert(tx: &Connection, job: &JobRow) -> rusqlite::Result<()> {
    exec(
        tx,
        "INSERT INTO jobs (id, org_id, kind, status, inputs, snapshot, credit_cost, created_at) \
         VALUES (?1, ?2, ?3, 'pending', ?4, ?5, ?6, ?7)",
        params![
            job.id,
            job.org_id,
            job.kind,
            job.inputs,
            job.snapshot,
            job.credit_cost,
            job.created_at
        ],
    )?;
    Ok(())
}

/// The job when it exists and belongs to `org_id` (and is of `kind`, when given).
pub fn get(
    conn: &Connection,
    org_id: &str,
    id: &str,
    kind: Option<&str>,
) -> rusqlite::Result<Option<JobRow>> {
    conn.prepare_cached(concat!(
        "SELECT ",
        columns!(),
        " FROM jobs WHERE id = ?1 AND org_id = ?2 AND (?3 IS NULL OR kind = ?3)"
    ))?
    .query_row(params![id, org_id, kind], from_row)
    .optional()
}

/// Any job by id, for the runner.
pub fn get_any(conn: &Connection, id: &str) -> rusqlite::Result<Option<JobRow>> {
    conn.prepare_cached(concat!("SELECT ", columns!(), " FROM jobs WHERE id = ?1"))?
        .query_row([id], from_row)
        .optional()
}

pub fn page(
    conn: &Connection,
    org_id: &str,
    kind: Option<&str>,
    status: Option<Status>,
    before: Option<&str>,
    limit: usize,
) -> rusqlite::Result<Vec<JobRow>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE org_id = ?1 AND (?2 IS NULL OR kind = ?2) \
         AND (?3 IS NULL OR status = ?3) AND (?4 IS NULL OR id < ?4) ORDER BY id DESC LIMIT ?5"
    ))?;
    stmt.query_map(
        params![org_id, kind, status.map(Status::name), before, limit as i64],
        from_row,
    )?
    .collect()
}

// The queue's statements; each states `status = 'pending'` or `status = 'running'` as the
// partial index it reads from does (`jobs_pending`, `jobs_running`), which is what lets SQLite
// use that index (tests below).
const PENDING_ORGS: &str = "SELECT p.org_id, (SELECT COUNT(*) FROM jobs r \
     WHERE r.status = 'running' AND r.org_id = p.org_id) \
     FROM (SELECT DISTINCT org_id FROM jobs WHERE status = 'pending') p";
const OLDEST_PENDING: &str =
    "SELECT id FROM jobs WHERE status = 'pending' AND org_id = ?1 ORDER BY id LIMIT 1";
const HEARTBEAT: &str = "UPDATE jobs SET lease_expires_at = ?2 \
     WHERE status = 'running' AND lease_owner = ?1 \
     RETURNING id, attempt, cancel_requested_at IS NOT NULL";
const EXPIRED: &str = "SELECT id, attempt, cancel_requested_at IS NOT NULL FROM jobs \
     WHERE status = 'running' AND (?1 IS NULL OR lease_expires_at IS NULL \
     OR lease_expires_at < ?1)";

/// Organizations with pending work and how many jobs each has running, for the runner's fair
/// pick, from the `jobs_pending` and `jobs_running` indexes.
pub fn pending_orgs(conn: &Connection) -> rusqlite::Result<Vec<(String, i64)>> {
    let mut stmt = conn.prepare_cached(PENDING_ORGS)?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// Moves the organization's oldest pending job to `running` at `stage` under a new attempt
/// held by `node` until `lease_until` (unix ms); None when it has none.
pub fn claim_oldest(
    tx: &Connection,
    org_id: &str,
    stage: &str,
    node: &str,
    lease_until: i64,
) -> rusqlite::Result<Option<(JobRow, i64)>> {
    let id: Option<String> = tx
        .prepare_cached(OLDEST_PENDING)?
        .query_row([org_id], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    let attempt: i64 = tx
        .prepare_cached(
            "UPDATE jobs SET status = 'running', stage = ?2, started_at = ?3, \
             attempt = attempt + 1, lease_owner = ?4, lease_expires_at = ?5 \
             WHERE id = ?1 RETURNING attempt",
        )?
        .query_row(params![id, stage, now(), node, lease_until], |r| r.get(0))?;
    Ok(get_any(tx, &id)?.map(|job| (job, attempt)))
}

/// Records the stage of a job this attempt holds, unless a cancel was requested.
pub fn set_stage(
    tx: &Connection,
    id: &str,
    attempt: i64,
    stage: &str,
) -> rusqlite::Result<StageWrite> {
    let written = exec(
        tx,
        "UPDATE jobs SET stage = ?3 WHERE id = ?1 AND status = 'running' AND attempt = ?2 \
         AND cancel_requested_at IS NULL",
        params![id, attempt, stage],
    )?;
    if written == 1 {
        return Ok(StageWrite::Recorded);
    }
    refused(tx, id, attempt)
}

/// Why a fenced write to a running job changed nothing: a cancel stored on it, or the job no
/// longer this attempt's.
fn refused(tx: &Connection, id: &str, attempt: i64) -> rusqlite::Result<StageWrite> {
    let held: Option<bool> = tx
        .prepare_cached(
            "SELECT cancel_requested_at IS NOT NULL FROM jobs \
             WHERE id = ?1 AND status = 'running' AND attempt = ?2",
        )?
        .query_row(params![id, attempt], |r| r.get(0))
        .optional()?;
    Ok(match held {
        Some(true) => StageWrite::CancelRequested,
        _ => StageWrite::Lost,
    })
}

/// Completes a running job of this attempt that nobody asked to cancel (`Recorded`); otherwise
/// writes nothing and says why, as [`set_stage`] does.
pub fn complete(
    tx: &Connection,
    id: &str,
    attempt: i64,
    results: &str,
    parental: &str,
    duration_ms: i64,
) -> rusqlite::Result<StageWrite> {
    let written = exec(
        tx,
        "UPDATE jobs SET status = 'completed', stage = NULL, finished_at = ?3, results = ?4, \
         parental = ?5, duration_ms = ?6, lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND status = 'running' AND attempt = ?2 AND cancel_requested_at IS NULL",
        params![id, attempt, now(), results, parental, duration_ms],
    )?;
    if written == 1 {
        return Ok(StageWrite::Recorded);
    }
    refused(tx, id, attempt)
}

/// Ends a running job of this attempt as `failed` or `canceled`, returning its organization
/// and cost; None when it was not this attempt's any more. The caller refunds in the same
/// transaction.
pub fn finish_unsuccessfully(
    tx: &Connection,
    id: &str,
    attempt: i64,
    status: Status,
    error: Option<&str>,
) -> rusqlite::Result<Option<(String, i64)>> {
    debug_assert!(matches!(status, Status::Failed | Status::Canceled));
    tx.prepare_cached(
        "UPDATE jobs SET status = ?3, stage = NULL, finished_at = ?4, error = ?5, results = NULL, \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND status = 'running' AND attempt = ?2 RETURNING org_id, credit_cost",
    )?
    .query_row(params![id, attempt, status.name(), now(), error], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()
}

/// Cancels a job only if it is still pending (a runner may have just claimed it).
pub fn cancel_if_pending(tx: &Connection, id: &str, at: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET status = 'canceled', stage = NULL, finished_at = ?2 \
         WHERE id = ?1 AND status = 'pending'",
        params![id, at],
    )? == 1)
}

/// Stores a cancel request on a running job outside `refusing_stage`; false otherwise.
pub fn request_cancel(tx: &Connection, id: &str, refusing_stage: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, ?2) \
         WHERE id = ?1 AND status = 'running' AND stage IS NOT ?3",
        params![id, now(), refusing_stage],
    )? == 1)
}

/// Puts one running job of this attempt back in the queue: no refund, it will run again.
/// False (nothing changed) when it is not this attempt's, or a cancel of it was requested
/// (then it is to end canceled instead).
pub fn requeue(tx: &Connection, id: &str, attempt: i64) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET status = 'pending', stage = NULL, started_at = NULL, \
         lease_owner = NULL, lease_expires_at = NULL \
         WHERE id = ?1 AND status = 'running' AND attempt = ?2 AND cancel_requested_at IS NULL",
        params![id, attempt],
    )? == 1)
}

/// Renews the leases of every job `node` holds; returns them with their cancel requests.
pub fn heartbeat(tx: &Connection, node: &str, lease_until: i64) -> rusqlite::Result<Vec<Held>> {
    let mut stmt = tx.prepare_cached(HEARTBEAT)?;
    stmt.query_map(params![node, lease_until], |r| {
        Ok(Held {
            job_id: r.get(0)?,
            attempt: r.get(1)?,
            cancel_requested: r.get(2)?,
        })
    })?
    .collect()
}

/// Running jobs whose lease ran out before `now_ms` (every running job with `None`): each with
/// its attempt and whether a cancel was requested.
pub fn expired(
    conn: &Connection,
    now_ms: Option<i64>,
) -> rusqlite::Result<Vec<(String, i64, bool)>> {
    let mut stmt = conn.prepare_cached(EXPIRED)?;
    stmt.query_map([now_ms], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

/// Every job with its attempt number and duration, oldest first (for `veneer migrate`).
pub fn all(conn: &Connection) -> rusqlite::Result<Vec<(JobRow, i64, Option<i64>)>> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {COLUMNS}, attempt, duration_ms FROM jobs ORDER BY id"
    ))?;
    stmt.query_map([], |r| Ok((from_row(r)?, r.get(14)?, r.get(15)?)))?
        .collect()
}

pub fn count_by_status(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use crate::store::sqlite::db::Db;

    /// What SQLite plans for `sql`: the detail lines of `EXPLAIN QUERY PLAN`, joined.
    fn plan(db: &Db, sql: &str) -> String {
        db.read(|c| {
            let mut s = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?;
            // Planned without values: every parameter NULL.
            let nulls = vec![rusqlite::types::Null; s.parameter_count()];
            let lines = s
                .query_map(rusqlite::params_from_iter(nulls), |r| r.get::<_, String>(3))?
                .collect::<Result<Vec<_>, _>>()?;
            Ok::<_, StoreError>(lines.join("; "))
        })
        .unwrap_or_else(|e| panic!("plan of {sql}: {e}"))
    }

    #[test]
    fn the_queue_statements_read_the_pending_and_running_indexes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path().join("q.db"), 1).expect("open");
        let pending_orgs = plan(&db, PENDING_ORGS);
        assert!(
            pending_orgs.contains("jobs_pending") && pending_orgs.contains("jobs_running"),
            "{pending_orgs}"
        );
        for (sql, index) in [
            (OLDEST_PENDING, "jobs_pending"),
            (HEARTBEAT, "jobs_running"),
            (EXPIRED, "jobs_running"),
        ] {
            let plan = plan(&db, sql);
            assert!(plan.contains(index), "{sql}: {plan}");
        }
    }
}
