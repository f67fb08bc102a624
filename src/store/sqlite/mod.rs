//! The embedded backend: one SQLite file in WAL mode, one writer connection and a pool of
//! readers (`db`), the statements grouped by table (`accounts`, `jobs`, `requests`,
//! `variants`). Each operation of [`Sqlite`] is one transaction run on tokio's blocking pool.

pub mod accounts;
pub mod db;
pub mod jobs;
pub mod requests;
pub mod variants;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;

use super::charge::{Counted, WriteCharge};
use super::model::*;
use super::{StoreError, charge, now};
pub use db::Db;

pub struct Sqlite {
    db: Arc<Db>,
}

/// Unix milliseconds `lease` from now.
fn lease_until(lease: Duration) -> i64 {
    jiff::Timestamp::now().as_millisecond() + lease.as_millis() as i64
}

impl Sqlite {
    pub fn open(path: &Path, readers: u32) -> Result<Sqlite, StoreError> {
        Ok(Sqlite {
            db: Db::open(path, readers)?,
        })
    }

    /// The connection pair itself, for the load bench's raw-SQLite baselines.
    pub fn db(&self) -> &Arc<Db> {
        &self.db
    }

    async fn write<T: Send + 'static>(
        &self,
        f: impl Fn(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.counted(f).await
    }

    /// Runs a write in the writer's transaction, counting in it the quota charge the request
    /// owes if it still owes one ([`charge`](crate::store::charge)): over the quota, `f` is not
    /// run and the answer is [`StoreError::QuotaExceeded`]; with the request's key revoked,
    /// [`StoreError::KeyRevoked`]; if `f` fails, its count is rolled
    /// back with it and the charge given back for the request's next write (or the HTTP
    /// layer's own count).
    async fn counted<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let Some(owed) = charge::take() else {
            return self.db.write_async(f).await;
        };
        let counted = owed.clone();
        let ran = self
            .db
            .write_async(move |tx| {
                // Refused (over the quota, or the key revoked), nothing was counted and `f`
                // does not run.
                match requests::count_write(tx, &counted).map_err(StoreError::from)? {
                    Counted::Within => f(tx).map(Ok),
                    refused => Ok(Err(refused)),
                }
            })
            .await;
        match ran {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(Counted::KeyGone)) => Err(StoreError::KeyRevoked.into()),
            Ok(Err(_)) => Err(StoreError::QuotaExceeded { quota: owed.quota }.into()),
            Err(e) => {
                charge::restore(owed);
                Err(e)
            }
        }
    }

    /// Runs one request's future with its first two point reads in one read transaction
    /// ([`Db::reads_together`]).
    pub async fn reads_together<T>(&self, fut: impl Future<Output = T>) -> T {
        self.db.reads_together(fut).await
    }

    /// Whether this backend counts a request's quota charge in the transaction of its first
    /// write ([`Sqlite::counted`]).
    pub fn counts_in_writes(&self) -> bool {
        true
    }

    /// A point read on the calling thread when a reader is free ([`Db::read_point`]).
    async fn point<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.db.read_point(f).await
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        self.db.read_async(f).await
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        self.read(|c| Ok(c.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    pub async fn create_org(&self, name: &str, credits: i64) -> Result<Organization, StoreError> {
        let name = name.to_string();
        self.write(move |tx| Ok(accounts::create_org(tx, &name, credits)?))
            .await
    }

    pub async fn bootstrap(
        &self,
        name: &str,
        credits: i64,
        key: NewApiKey,
    ) -> Result<Option<Organization>, StoreError> {
        let name = name.to_string();
        self.write(move |tx| {
            if accounts::count_orgs(tx)? > 0 {
                return Ok(None);
            }
            let org = accounts::create_org(tx, &name, credits)?;
            accounts::insert_key(tx, &org.id, &key.prefix, &key.hash, &key.scopes)?;
            Ok(Some(org))
        })
        .await
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let id = id.to_string();
        self.point(move |c| Ok(accounts::get_org(c, &id)?)).await
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        self.read(|c| Ok(accounts::list_orgs(c)?)).await
    }

    pub async fn insert_key(&self, org_id: &str, key: NewApiKey) -> Result<ApiKey, StoreError> {
        let org_id = org_id.to_string();
        self.write(move |tx| {
            Ok(accounts::insert_key(
                tx,
                &org_id,
                &key.prefix,
                &key.hash,
                &key.scopes,
            )?)
        })
        .await
    }

    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>, StoreError> {
        let prefix = prefix.to_string();
        self.point(move |c| Ok(accounts::keys_with_prefix(c, &prefix)?))
            .await
    }

    pub async fn key_live(&self, key_id: &str) -> Result<bool, StoreError> {
        let key_id = key_id.to_string();
        self.point(move |c| Ok(accounts::key_live(c, &key_id)?))
            .await
    }

    pub async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let org_id = org_id.to_string();
        self.read(move |c| Ok(accounts::list_keys(c, &org_id)?))
            .await
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let key_id = key_id.to_string();
        self.write(move |tx| Ok(accounts::revoke_key(tx, &key_id)?))
            .await
    }

    pub async fn grant(
        &self,
        org_id: &str,
        bucket: Bucket,
        amount: i64,
    ) -> Result<Option<i64>, StoreError> {
        let org_id = org_id.to_string();
        self.write(move |tx| {
            if accounts::get_org(tx, &org_id)?.is_none() {
                return Ok(None);
            }
            accounts::grant(tx, &org_id, bucket, amount)?;
            Ok(accounts::get_org(tx, &org_id)?.map(|o| o.balance()))
        })
        .await
    }

    pub async fn ledger_page(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let (org_id, before) = (org_id.to_string(), before.map(str::to_string));
        self.read(move |c| Ok(accounts::ledger_page(c, &org_id, before.as_deref(), limit)?))
            .await
    }

    pub async fn count_write(&self, charge: &WriteCharge) -> Result<Counted, StoreError> {
        let charge = charge.clone();
        // Its own transaction: the count of a request whose writes did not take its charge.
        self.db
            .write_async(move |tx| Ok(requests::count_write(tx, &charge)?))
            .await
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        let key = key.to_string();
        self.point(move |c| Ok(requests::get_setting(c, &key)?))
            .await
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let (key, value) = (key.to_string(), value.to_string());
        self.write(move |tx| Ok(requests::set_setting(tx, &key, &value)?))
            .await
    }

    pub async fn sweep_keys(&self, now: &str, abandoned_before: &str) -> Result<usize, StoreError> {
        let (now, before) = (now.to_string(), abandoned_before.to_string());
        self.write(move |tx| Ok(requests::sweep_keys(tx, &now, &before)?))
            .await
    }

    pub async fn begin_key(&self, key: &KeyUse) -> Result<KeyState, StoreError> {
        let key = key.clone();
        self.write(move |tx| begin_key(tx, &key)).await
    }

    pub async fn release_key(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        let scope = scope.clone();
        self.write(move |tx| Ok(requests::release_key(tx, &scope)?))
            .await
    }

    pub async fn insert_variants(
        &self,
        rows: Vec<VariantRow>,
        key: Option<(IdempotencyScope, StoredResponse)>,
    ) -> Result<(), StoreError> {
        self.write(move |tx| {
            for row in &rows {
                variants::insert(tx, row)?;
            }
            if let Some((scope, response)) = &key {
                requests::complete_key(tx, scope, response)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn get_variant(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<VariantRow>, StoreError> {
        let (org_id, id) = (org_id.to_string(), id.to_string());
        self.point(move |c| Ok(variants::get(c, &org_id, &id)?))
            .await
    }

    pub async fn page_variants(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VariantRow>, StoreError> {
        let (org_id, before) = (org_id.to_string(), before.map(str::to_string));
        self.read(move |c| Ok(variants::page(c, &org_id, before.as_deref(), limit)?))
            .await
    }

    pub async fn delete_variant(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let (org_id, id) = (org_id.to_string(), id.to_string());
        self.write(move |tx| Ok(variants::delete(tx, &org_id, &id)?))
            .await
    }

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
        let (org_id, variant_id) = (org_id.to_string(), variant_id.to_string());
        self.counted(move |tx| {
            if let Some(key) = &key {
                match begin_key(tx, key)? {
                    KeyState::Fresh => {}
                    decided => return Ok(Submitted::Key(decided)),
                }
            }
            let variant = variants::get(tx, &org_id, &variant_id)?;
            let Some(org) = accounts::get_org(tx, &org_id)? else {
                return Err(StoreError::Refused(format!("no organization {org_id}")).into());
            };
            let new = match plan(variant.as_ref(), &org) {
                Ok(new) => new,
                // Rolls the key's reservation back with the rest.
                Err(refusal) => return Err(Refusal(refusal).into()),
            };
            jobs::insert(tx, &new.job)?;
            accounts::debit(tx, &org, &new.job.id, new.job.credit_cost)?;
            if let Some(key) = &key {
                requests::complete_key(tx, &key.scope, &new.response)?;
            }
            Ok(Submitted::Created(Box::new(new)))
        })
        .await
        .or_else(|e: SubmitError<E>| match e {
            SubmitError::Refused(refusal) => Ok(Submitted::Refused(refusal)),
            SubmitError::Store(e) => Err(e),
        })
    }

    pub async fn get_job(
        &self,
        org_id: &str,
        id: &str,
        kind: Option<&str>,
    ) -> Result<Option<JobRow>, StoreError> {
        let (org_id, id, kind) = (org_id.to_string(), id.to_string(), kind.map(str::to_string));
        self.point(move |c| Ok(jobs::get(c, &org_id, &id, kind.as_deref())?))
            .await
    }

    pub async fn page_jobs(
        &self,
        org_id: &str,
        kind: Option<&str>,
        status: Option<Status>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRow>, StoreError> {
        let (org_id, kind, before) = (
            org_id.to_string(),
            kind.map(str::to_string),
            before.map(str::to_string),
        );
        self.read(move |c| {
            Ok(jobs::page(
                c,
                &org_id,
                kind.as_deref(),
                status,
                before.as_deref(),
                limit,
            )?)
        })
        .await
    }

    pub async fn count_jobs(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        self.read(|c| Ok(jobs::count_by_status(c)?)).await
    }

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
        let (stage, node) = (stage.to_string(), node.to_string());
        // One writer transaction: the queue it ranks is the queue it claims from.
        self.write(move |tx| {
            for org in rank(jobs::pending_orgs(tx)?) {
                if let Some((job, attempt)) =
                    jobs::claim_oldest(tx, &org, &stage, &node, lease_until(lease))?
                {
                    return Ok(Some(Lease { job, attempt }));
                }
            }
            Ok(None)
        })
        .await
    }

    pub async fn set_stage(
        &self,
        job_id: &str,
        attempt: i64,
        stage: &str,
    ) -> Result<StageWrite, StoreError> {
        let (id, stage) = (job_id.to_string(), stage.to_string());
        self.write(move |tx| Ok(jobs::set_stage(tx, &id, attempt, &stage)?))
            .await
    }

    pub async fn complete(
        &self,
        job_id: &str,
        attempt: i64,
        results: String,
        parental: String,
        duration_ms: i64,
    ) -> Result<StageWrite, StoreError> {
        let id = job_id.to_string();
        self.write(move |tx| {
            Ok(jobs::complete(
                tx,
                &id,
                attempt,
                &results,
                &parental,
                duration_ms,
            )?)
        })
        .await
    }

    pub async fn end_refunded(
        &self,
        job_id: &str,
        attempt: i64,
        status: Status,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let id = job_id.to_string();
        self.write(move |tx| end_refunded(tx, &id, attempt, status, error.as_deref()))
            .await
    }

    pub async fn release(&self, job_id: &str, attempt: i64) -> Result<(), StoreError> {
        let id = job_id.to_string();
        self.write(move |tx| {
            // Not requeued when a cancel was requested meanwhile: then it ends canceled.
            if !jobs::requeue(tx, &id, attempt)? {
                end_refunded(tx, &id, attempt, Status::Canceled, None)?;
            }
            Ok(())
        })
        .await
    }

    pub async fn cancel(
        &self,
        org_id: &str,
        job_id: &str,
        kind: Option<&str>,
        refusing_stage: &str,
    ) -> Result<CancelDecision, StoreError> {
        let (org_id, id, kind, refusing) = (
            org_id.to_string(),
            job_id.to_string(),
            kind.map(str::to_string),
            refusing_stage.to_string(),
        );
        self.write(move |tx| {
            let Some(mut job) = jobs::get(tx, &org_id, &id, kind.as_deref())? else {
                return Ok(CancelDecision::NotFound);
            };
            Ok(match job.status {
                // Read as pending in this same transaction, so the update below takes it.
                Status::Pending => {
                    let at = now();
                    if jobs::cancel_if_pending(tx, &job.id, &at)? {
                        accounts::refund(tx, &job.org_id, &job.id, job.credit_cost)?;
                    }
                    job.status = Status::Canceled;
                    job.stage = None;
                    job.finished_at = Some(at);
                    CancelDecision::Canceled(Box::new(job))
                }
                Status::Running => {
                    if jobs::request_cancel(tx, &job.id, &refusing)? {
                        CancelDecision::Requested
                    } else {
                        CancelDecision::Unavailable(job.stage.unwrap_or_else(|| refusing.clone()))
                    }
                }
                status => CancelDecision::AlreadyTerminal(status),
            })
        })
        .await
    }

    pub async fn heartbeat(&self, node: &str, lease: Duration) -> Result<Vec<Held>, StoreError> {
        let node = node.to_string();
        self.write(move |tx| Ok(jobs::heartbeat(tx, &node, lease_until(lease))?))
            .await
    }

    pub async fn rescue(&self, all: bool) -> Result<Rescued, StoreError> {
        self.write(move |tx| {
            let now_ms = (!all).then(|| jiff::Timestamp::now().as_millisecond());
            let mut rescued = Rescued::default();
            for (id, attempt, cancel_requested) in jobs::expired(tx, now_ms)? {
                if cancel_requested {
                    if end_refunded(tx, &id, attempt, Status::Canceled, None)? {
                        rescued.canceled += 1;
                    }
                } else if jobs::requeue(tx, &id, attempt)? {
                    rescued.requeued += 1;
                }
            }
            Ok(rescued)
        })
        .await
    }

    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        let db = Arc::clone(&self.db);
        tokio::task::spawn_blocking(move || db.checkpoint())
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub async fn backup_to(&self, dest: &str) -> Result<(), StoreError> {
        let (db, dest) = (Arc::clone(&self.db), dest.to_string());
        tokio::task::spawn_blocking(move || db.backup_to(&dest))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))?
    }

    pub async fn dump(&self) -> Result<Dump, StoreError> {
        self.read(|c| {
            // One read transaction: the rows and their census are one snapshot.
            c.execute_batch("BEGIN")?;
            let mut d = dump(c)?;
            d.census = census(c)?;
            c.execute_batch("COMMIT")?;
            Ok(d)
        })
        .await
    }

    pub async fn census(&self) -> Result<Census, StoreError> {
        self.read(|c| Ok(census(c)?)).await
    }

    pub async fn load(&self, _dump: Dump) -> Result<(), StoreError> {
        Err(StoreError::Refused(
            "veneer migrate moves a SQLite database to PostgreSQL; the target must be a \
             postgres:// URL"
                .into(),
        ))
    }
}

/// Checks an idempotency key and reserves it when no live record exists.
fn begin_key(tx: &Connection, key: &KeyUse) -> Result<KeyState, StoreError> {
    let now = now();
    match requests::find_key(tx, &key.scope, &now)? {
        None => {
            requests::reserve_key(tx, &key.scope, &key.fingerprint, &now, &key.expires_at)?;
            Ok(KeyState::Fresh)
        }
        Some(record) if record.fingerprint != key.fingerprint => Ok(KeyState::Mismatch),
        Some(record) => Ok(match record.response {
            Some(response) => KeyState::Replay(response),
            None => KeyState::InProgress,
        }),
    }
}

/// Ends a running job of this attempt unsuccessfully and refunds it, in the caller's transaction.
fn end_refunded(
    tx: &Connection,
    id: &str,
    attempt: i64,
    status: Status,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let Some((org_id, cost)) = jobs::finish_unsuccessfully(tx, id, attempt, status, error)? else {
        return Ok(false);
    };
    accounts::refund(tx, &org_id, id, cost)?;
    Ok(true)
}

/// A service refusal carried out of the write closure, so the transaction rolls back.
struct Refusal<E>(E);

enum SubmitError<E> {
    Refused(E),
    Store(StoreError),
}

impl<E> From<StoreError> for SubmitError<E> {
    fn from(e: StoreError) -> Self {
        SubmitError::Store(e)
    }
}

impl<E> From<rusqlite::Error> for SubmitError<E> {
    fn from(e: rusqlite::Error) -> Self {
        SubmitError::Store(e.into())
    }
}

impl<E> From<Refusal<E>> for SubmitError<E> {
    fn from(r: Refusal<E>) -> Self {
        SubmitError::Refused(r.0)
    }
}

fn dump(c: &Connection) -> rusqlite::Result<Dump> {
    let mut d = Dump {
        organizations: accounts::list_orgs(c)?,
        ..Dump::default()
    };
    d.api_keys = accounts::all_keys(c)?;
    d.variants = variants::all(c)?;
    d.jobs = jobs::all(c)?;
    d.ledger = accounts::all_ledger(c)?;
    let mut s = c.prepare(
        "SELECT org_id, method, route, key, fingerprint, response_status, response_body, \
         response_location, created_at, expires_at FROM idempotency_keys",
    )?;
    d.idempotency_keys = s
        .query_map([], |r| {
            let status: Option<u16> = r.get(5)?;
            let body: Option<String> = r.get(6)?;
            let location: Option<String> = r.get(7)?;
            Ok(StoredKey {
                scope: IdempotencyScope {
                    org_id: r.get(0)?,
                    method: r.get(1)?,
                    route: r.get(2)?,
                    key: r.get(3)?,
                },
                fingerprint: r.get(4)?,
                response: status.zip(body).map(|(status, body)| StoredResponse {
                    status,
                    body,
                    location,
                }),
                created_at: r.get(8)?,
                expires_at: r.get(9)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut s = c.prepare("SELECT org_id, day, count FROM daily_writes")?;
    d.daily_writes = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    let mut s = c.prepare("SELECT key, value FROM settings")?;
    d.settings = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(d)
}

/// The tables a migration moves, in an order their references allow.
pub const TABLES: [&str; 8] = [
    "organizations",
    "api_keys",
    "variants",
    "jobs",
    "credit_ledger",
    "idempotency_keys",
    "daily_writes",
    "settings",
];

fn census(c: &Connection) -> rusqlite::Result<Census> {
    let mut tables = Vec::new();
    for table in TABLES {
        let n: i64 = c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))?;
        tables.push((table, n));
    }
    let mut s = c.prepare(
        "SELECT o.id, \
           COALESCE((SELECT SUM(delta) FROM credit_ledger l WHERE l.org_id = o.id \
                     AND l.bucket = 'subscription'), 0), \
           COALESCE((SELECT SUM(delta) FROM credit_ledger l WHERE l.org_id = o.id \
                     AND l.bucket = 'purchased'), 0) \
         FROM organizations o ORDER BY o.id",
    )?;
    let ledger_sums = s
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<_, _>>()?;
    Ok(Census {
        tables,
        ledger_sums,
    })
}
