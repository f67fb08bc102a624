//! Everything that reads or writes a database: the service's store, one facade ([`Store`]) of
//! named operations over two backends — SQLite, embedded, one file (`sqlite/`, DDL in the
//! top-level `schema.sql`), and PostgreSQL, shared by many nodes (`postgres/`, DDL in
//! `schema.postgres.sql`) — and BioPhi's OASis database, read-only (`oasis_db`).
//!
//! No backend type (a rusqlite connection, a Postgres client or row) leaves this module: the
//! operations take and return the plain values of [`model`]. Each operation is one
//! transaction, so the service above states rules and never holds a transaction open.

pub mod charge;
pub mod migrate;
pub mod model;
pub mod oasis_db;
pub mod postgres;
pub mod sqlite;

use std::sync::Arc;
use std::time::Duration;

pub use model::*;

use charge::{Counted, WriteCharge};

/// Everything a store operation can fail with. The backend's own error is kept as text and
/// source only, so callers never depend on which database answered.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Database(Box<dyn std::error::Error + Send + Sync>),
    #[error("database task: {0}")]
    Task(String),
    #[error(
        "the database {database} has schema version {found}, newer than this binary's {supported}"
    )]
    NewerSchema {
        database: String,
        found: i64,
        supported: i64,
    },
    /// A request the store refuses as given (a database URL it cannot use, a non-empty
    /// migration target, an operation the backend does not have).
    #[error("{0}")]
    Refused(String),
    /// The request's write was not run: its organization has used its daily write quota
    /// (counted in the write's own transaction, see [`charge`]).
    #[error("the organization has used its {quota} writes for today")]
    QuotaExceeded { quota: i64 },
    /// The request's write was not run: its API key was revoked (or removed) after the
    /// request was authenticated (confirmed in the write's own transaction, see [`charge`]).
    #[error("the request's API key is revoked")]
    KeyRevoked,
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<r2d2::Error> for StoreError {
    fn from(e: r2d2::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        StoreError::Database(Box::new(e))
    }
}

impl From<deadpool_postgres::PoolError> for StoreError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        StoreError::Database(Box::new(e))
    }
}

/// Now, as the one timestamp format of the API and the database: `2026-04-22T14:15:00+00:00`.
pub fn now() -> String {
    format_timestamp(jiff::Timestamp::now())
}

pub fn format_timestamp(ts: jiff::Timestamp) -> String {
    ts.to_zoned(jiff::tz::TimeZone::UTC)
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A new time-ordered id.
pub fn new_id() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

/// The operator setting that pauses taking pending jobs (`1`) on every node.
pub const QUEUE_PAUSED: &str = "queue_paused";

/// Which database a `--db` value names: a `postgres://` (or `postgresql://`) URL, or else
/// the path of a SQLite file.
pub fn is_postgres_url(db: &str) -> bool {
    db.starts_with("postgres://") || db.starts_with("postgresql://")
}

/// Something a running job's holder should hear about from another node.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    /// A cancel of this running job was stored.
    CancelRequested(String),
    /// A job reached a terminal status (long polls re-read).
    JobEnded(String),
    /// The queue setting or a key changed (reread settings).
    Changed,
    /// The listener reconnected: notifications may have been lost, so re-read everything.
    Reconnected,
}

/// The service's database, on either backend.
#[derive(Clone)]
pub enum Store {
    Sqlite(Arc<sqlite::Sqlite>),
    Postgres(Arc<postgres::Postgres>),
}

/// Runs the same call on whichever backend this is.
macro_rules! on_backend {
    ($self:expr, $b:ident => $call:expr) => {
        match $self {
            Store::Sqlite($b) => $call,
            Store::Postgres($b) => $call,
        }
    };
}

impl Store {
    /// Opens (creating or upgrading the schema as needed) the database `db` names, with
    /// `connections` pooled connections.
    pub async fn open(db: &str, connections: u32) -> Result<Store, StoreError> {
        if is_postgres_url(db) {
            Ok(Store::Postgres(Arc::new(
                postgres::Postgres::connect(db, connections).await?,
            )))
        } else {
            let path = std::path::PathBuf::from(db);
            let store =
                tokio::task::spawn_blocking(move || sqlite::Sqlite::open(&path, connections))
                    .await
                    .map_err(|e| StoreError::Task(e.to_string()))??;
            Ok(Store::Sqlite(Arc::new(store)))
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// True when several processes share this database (so other nodes' changes arrive as
    /// [`Notice`]s, and this process's start must not assume it is alone).
    pub fn is_shared(&self) -> bool {
        matches!(self, Store::Postgres(_))
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        on_backend!(self, b => b.ping().await)
    }

    // ---- organizations, keys, credits ----

    /// Creates an organization with `credits` granted to its subscription bucket.
    pub async fn create_org(&self, name: &str, credits: i64) -> Result<Organization, StoreError> {
        on_backend!(self, b => b.create_org(name, credits).await)
    }

    /// On a database without organizations: creates one with `credits` and `key`; None
    /// (and nothing written) when any organization exists.
    pub async fn bootstrap(
        &self,
        name: &str,
        credits: i64,
        key: NewApiKey,
    ) -> Result<Option<Organization>, StoreError> {
        on_backend!(self, b => b.bootstrap(name, credits, key).await)
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        on_backend!(self, b => b.get_org(id).await)
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        on_backend!(self, b => b.list_orgs().await)
    }

    pub async fn insert_key(&self, org_id: &str, key: NewApiKey) -> Result<ApiKey, StoreError> {
        on_backend!(self, b => b.insert_key(org_id, key).await)
    }

    /// Keys whose public prefix matches; the caller compares hashes in constant time.
    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>, StoreError> {
        on_backend!(self, b => b.keys_with_prefix(prefix).await)
    }

    /// Whether the key of this id exists and is not revoked.
    pub async fn key_live(&self, key_id: &str) -> Result<bool, StoreError> {
        on_backend!(self, b => b.key_live(key_id).await)
    }

    pub async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        on_backend!(self, b => b.list_keys(org_id).await)
    }

    /// Marks a key revoked (the first revocation's time stays); false when there is no such key.
    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, StoreError> {
        on_backend!(self, b => b.revoke_key(key_id).await)
    }

    /// Grants credits; the organization's new balance, or None when it does not exist.
    pub async fn grant(
        &self,
        org_id: &str,
        bucket: Bucket,
        amount: i64,
    ) -> Result<Option<i64>, StoreError> {
        on_backend!(self, b => b.grant(org_id, bucket, amount).await)
    }

    /// The ledger newest first, `limit` rows older than the cursor.
    pub async fn ledger_page(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        on_backend!(self, b => b.ledger_page(org_id, before, limit).await)
    }

    // ---- requests: quota, settings, idempotency ----

    /// Runs one read request: on SQLite its key's lookup and the row it asks for share one
    /// read transaction (one WAL read lock, one snapshot); on PostgreSQL each read is its own.
    pub async fn reads_together<T>(&self, fut: impl Future<Output = T>) -> T {
        match self {
            Store::Sqlite(b) => b.reads_together(fut).await,
            Store::Postgres(_) => fut.await,
        }
    }

    /// Whether the backend's writes count the request's owed quota charge in their own
    /// transaction ([`charge`]); otherwise the caller counts each write request first.
    pub fn counts_in_writes(&self) -> bool {
        match self {
            Store::Sqlite(b) => b.counts_in_writes(),
            Store::Postgres(_) => false,
        }
    }

    /// Counts one write request against its organization's quota for its day, once its key
    /// is confirmed live, in one transaction of its own.
    pub async fn count_write(&self, charge: &WriteCharge) -> Result<Counted, StoreError> {
        on_backend!(self, b => b.count_write(charge).await)
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        on_backend!(self, b => b.get_setting(key).await)
    }

    /// Sets an operator switch; every node sees it within a poll (and at once on PostgreSQL).
    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        on_backend!(self, b => b.set_setting(key, value).await)
    }

    /// Drops expired idempotency keys and in-flight reservations made before
    /// `abandoned_before` (their request can no longer be running).
    pub async fn sweep_keys(&self, now: &str, abandoned_before: &str) -> Result<usize, StoreError> {
        on_backend!(self, b => b.sweep_keys(now, abandoned_before).await)
    }

    /// Looks the key up and, when no live record exists, reserves it for this request.
    pub async fn begin_key(&self, key: &KeyUse) -> Result<KeyState, StoreError> {
        on_backend!(self, b => b.begin_key(key).await)
    }

    /// Frees a reservation whose request created nothing.
    pub async fn release_key(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        on_backend!(self, b => b.release_key(scope).await)
    }

    // ---- variants ----

    /// Inserts the variants and, in the same transaction, stores `response` under the key.
    pub async fn insert_variants(
        &self,
        rows: Vec<VariantRow>,
        key: Option<(IdempotencyScope, StoredResponse)>,
    ) -> Result<(), StoreError> {
        on_backend!(self, b => b.insert_variants(rows, key).await)
    }

    pub async fn get_variant(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<VariantRow>, StoreError> {
        on_backend!(self, b => b.get_variant(org_id, id).await)
    }

    pub async fn page_variants(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VariantRow>, StoreError> {
        on_backend!(self, b => b.page_variants(org_id, before, limit).await)
    }

    pub async fn delete_variant(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        on_backend!(self, b => b.delete_variant(org_id, id).await)
    }

    // ---- jobs ----

    /// One transaction: the idempotency key (when given) is checked and taken, the variant
    /// and organization are read (the organization's row locked), `plan` decides (the service's
    /// rules: does the variant exist, is there credit, what the job is), and the job, its debit
    /// and the key's stored response are written together.
    pub async fn submit<E, F>(
        &self,
        org_id: &str,
        variant_id: &str,
        key: Option<KeyUse>,
        plan: F,
    ) -> Result<Submitted<E>, StoreError>
    where
        F: Fn(Option<&VariantRow>, &Organization) -> Result<NewJob, E> + Send + 'static,
        E: Send + 'static,
    {
        on_backend!(self, b => b.submit(org_id, variant_id, key, plan).await)
    }

    /// The job when it exists and belongs to `org_id` (and is of `kind`, when given).
    pub async fn get_job(
        &self,
        org_id: &str,
        id: &str,
        kind: Option<&str>,
    ) -> Result<Option<JobRow>, StoreError> {
        on_backend!(self, b => b.get_job(org_id, id, kind).await)
    }

    pub async fn page_jobs(
        &self,
        org_id: &str,
        kind: Option<&str>,
        status: Option<Status>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRow>, StoreError> {
        on_backend!(self, b => b.page_jobs(org_id, kind, status, before, limit).await)
    }

    /// `(kind, status, count)` over every job.
    pub async fn count_jobs(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        on_backend!(self, b => b.count_jobs().await)
    }

    /// Claims the next job for `node` at `stage`, leased for `lease`. `rank` orders the
    /// organizations with pending jobs (each given with its number of running jobs, on every
    /// node) by whose turn it is; the oldest pending job of the first that still has one is
    /// taken.
    pub async fn claim_next<F>(
        &self,
        stage: &str,
        node: &str,
        lease: Duration,
        rank: F,
    ) -> Result<Option<Lease>, StoreError>
    where
        F: Fn(Vec<(String, i64)>) -> Vec<String> + Send + 'static,
    {
        on_backend!(self, b => b.claim_next(stage, node, lease, rank).await)
    }

    /// Records the stage of a job this attempt holds (refused once a cancel is stored).
    pub async fn set_stage(
        &self,
        job_id: &str,
        attempt: i64,
        stage: &str,
    ) -> Result<StageWrite, StoreError> {
        on_backend!(self, b => b.set_stage(job_id, attempt, stage).await)
    }

    /// Completes a job this attempt holds unless a cancel is stored on it (`CancelRequested`,
    /// nothing written) or it is no longer this attempt's (`Lost`).
    pub async fn complete(
        &self,
        job_id: &str,
        attempt: i64,
        results: String,
        parental: String,
        duration_ms: i64,
    ) -> Result<StageWrite, StoreError> {
        on_backend!(self, b => b.complete(job_id, attempt, results, parental, duration_ms).await)
    }

    /// Ends a job this attempt holds as `failed` (with `error`) or `canceled`, refunding its
    /// cost in the same transaction; false when it no longer holds the job.
    pub async fn end_refunded(
        &self,
        job_id: &str,
        attempt: i64,
        status: Status,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        on_backend!(self, b => b.end_refunded(job_id, attempt, status, error).await)
    }

    /// Gives a job this attempt holds back to the queue (shutdown): `pending`, not refunded —
    /// unless a cancel was requested meanwhile, which then ends it `canceled` and refunded.
    pub async fn release(&self, job_id: &str, attempt: i64) -> Result<(), StoreError> {
        on_backend!(self, b => b.release(job_id, attempt).await)
    }

    /// A client's cancel: a pending job is canceled and refunded at once; a running one outside
    /// `refusing_stage` gets the request stored on its row and announced to every node.
    pub async fn cancel(
        &self,
        org_id: &str,
        job_id: &str,
        kind: Option<&str>,
        refusing_stage: &str,
    ) -> Result<CancelDecision, StoreError> {
        on_backend!(self, b => b.cancel(org_id, job_id, kind, refusing_stage).await)
    }

    /// Renews the leases of the jobs `node` holds; returns them with their cancel requests.
    pub async fn heartbeat(&self, node: &str, lease: Duration) -> Result<Vec<Held>, StoreError> {
        on_backend!(self, b => b.heartbeat(node, lease).await)
    }

    /// Puts running jobs whose lease ran out back to `pending` (or ends them canceled and
    /// refunded when a cancel was requested); with `all`, every running job (start-up of the
    /// one process on a SQLite file).
    pub async fn rescue(&self, all: bool) -> Result<Rescued, StoreError> {
        on_backend!(self, b => b.rescue(all).await)
    }

    /// Other nodes' news, when the database is shared: a receiver fed by one dedicated
    /// listening connection (reconnecting by itself). None on SQLite.
    pub fn listen(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Notice>> {
        match self {
            Store::Sqlite(_) => None,
            Store::Postgres(b) => Some(b.listen()),
        }
    }

    // ---- operations ----

    /// Makes the database self-contained before the process stops (SQLite folds its WAL back).
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(b) => b.checkpoint().await,
            Store::Postgres(_) => Ok(()),
        }
    }

    /// A consistent online copy into a new SQLite file.
    pub async fn backup_to(&self, dest: &str) -> Result<(), StoreError> {
        match self {
            Store::Sqlite(b) => b.backup_to(dest).await,
            Store::Postgres(_) => Err(StoreError::Refused(
                "backup copies a SQLite database; back PostgreSQL up with pg_dump".into(),
            )),
        }
    }

    /// Every row, for `veneer migrate`.
    pub async fn dump(&self) -> Result<Dump, StoreError> {
        on_backend!(self, b => b.dump().await)
    }

    /// Row counts and ledger sums, to verify a migration by.
    pub async fn census(&self) -> Result<Census, StoreError> {
        on_backend!(self, b => b.census().await)
    }

    /// Writes a dump into this (empty) database in one transaction.
    pub async fn load(&self, dump: Dump) -> Result<(), StoreError> {
        on_backend!(self, b => b.load(dump).await)
    }
}
