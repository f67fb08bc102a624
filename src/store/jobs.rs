//! Jobs of every kind, and the queue they form while `pending`.

use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::db::{exec, now};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pending,
    Running,
    Completed,
    Failed,
    Canceled,
}

impl Status {
    pub const ALL: [Status; 5] = [
        Status::Pending,
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Canceled,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Canceled => "canceled",
        }
    }

    pub fn parse(s: &str) -> Option<Status> {
        Status::ALL.into_iter().find(|st| st.name() == s)
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Canceled)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct JobRow {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub status: Status,
    pub stage: Option<String>,
    pub inputs: String,
    pub snapshot: String,
    pub credit_cost: i64,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub results: Option<String>,
    pub parental: Option<String>,
    pub error: Option<String>,
}

const COLUMNS: &str = "id, org_id, kind, status, stage, inputs, snapshot, credit_cost, created_at, \
     started_at, finished_at, results, parental, error";

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

pub fn insert(tx: &Transaction, job: &JobRow) -> rusqlite::Result<()> {
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
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE id = ?1 AND org_id = ?2 AND (?3 IS NULL OR kind = ?3)"
    ))?
    .query_row(params![id, org_id, kind], from_row)
    .optional()
}

/// Any job by id, for the runner.
pub fn get_any(conn: &Connection, id: &str) -> rusqlite::Result<Option<JobRow>> {
    conn.prepare_cached(&format!("SELECT {COLUMNS} FROM jobs WHERE id = ?1"))?
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

/// Organizations with pending work, for the runner's fair pick. SQLite answers this DISTINCT
/// from the `jobs_queue` index with a skip-ahead per organization (15 µs with 300,000
/// pending jobs measured), so a lab's large batch does not slow every claim.
pub fn orgs_with_pending(conn: &Connection) -> rusqlite::Result<Vec<String>> {
    let mut stmt =
        conn.prepare_cached("SELECT DISTINCT org_id FROM jobs WHERE status = 'pending'")?;
    stmt.query_map([], |r| r.get(0))?.collect()
}

/// Moves the organization's oldest pending job to `running` at `stage`; None when it has none.
pub fn claim_oldest(
    tx: &Transaction,
    org_id: &str,
    stage: &str,
) -> rusqlite::Result<Option<JobRow>> {
    let id: Option<String> = tx
        .prepare_cached(
            "SELECT id FROM jobs WHERE status = 'pending' AND org_id = ?1 ORDER BY id LIMIT 1",
        )?
        .query_row([org_id], |r| r.get(0))
        .optional()?;
    let Some(id) = id else { return Ok(None) };
    exec(
        tx,
        "UPDATE jobs SET status = 'running', stage = ?2, started_at = ?3 WHERE id = ?1",
        params![id, stage, now()],
    )?;
    get_any(tx, &id)
}

/// Records the running job's stage; false when it is no longer running.
pub fn set_stage(tx: &Transaction, id: &str, stage: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET stage = ?2 WHERE id = ?1 AND status = 'running'",
        params![id, stage],
    )? == 1)
}

pub fn complete(
    tx: &Transaction,
    id: &str,
    results: &str,
    parental: &str,
    duration_ms: i64,
) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET status = 'completed', stage = NULL, finished_at = ?2, results = ?3, \
         parental = ?4, duration_ms = ?5 WHERE id = ?1 AND status = 'running'",
        params![id, now(), results, parental, duration_ms],
    )? == 1)
}

/// Ends a pending or running job as `failed` or `canceled`; false when it was not active.
/// The caller refunds in the same transaction.
pub fn finish_unsuccessfully(
    tx: &Transaction,
    id: &str,
    status: Status,
    error: Option<&str>,
) -> rusqlite::Result<bool> {
    debug_assert!(matches!(status, Status::Failed | Status::Canceled));
    Ok(exec(
        tx,
        "UPDATE jobs SET status = ?2, stage = NULL, finished_at = ?3, error = ?4, results = NULL \
         WHERE id = ?1 AND status IN ('pending', 'running')",
        params![id, status.name(), now(), error],
    )? == 1)
}

/// Cancels a job only if it is still pending (the runner may have just claimed it).
pub fn cancel_if_pending(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET status = 'canceled', stage = NULL, finished_at = ?2 \
         WHERE id = ?1 AND status = 'pending'",
        params![id, now()],
    )? == 1)
}

/// Puts one running job back in the queue (shutdown): no refund, it will run again.
pub fn requeue(tx: &Transaction, id: &str) -> rusqlite::Result<bool> {
    Ok(exec(
        tx,
        "UPDATE jobs SET status = 'pending', stage = NULL, started_at = NULL \
         WHERE id = ?1 AND status = 'running'",
        [id],
    )? == 1)
}

/// Start-up recovery: every job a previous process left `running` goes back to `pending`.
pub fn requeue_all_running(tx: &Transaction) -> rusqlite::Result<usize> {
    exec(
        tx,
        "UPDATE jobs SET status = 'pending', stage = NULL, started_at = NULL \
         WHERE status = 'running'",
        [],
    )
}

pub fn count_by_status(conn: &Connection) -> rusqlite::Result<Vec<(String, String, i64)>> {
    let mut stmt =
        conn.prepare_cached("SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status")?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect()
}
