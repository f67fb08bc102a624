//! The shared backend: PostgreSQL through tokio-postgres, pooled by deadpool-postgres, with one
//! dedicated connection that LISTENs for other nodes' news (`listen`). DDL in the top-level
//! `schema.postgres.sql`.
//!
//! Each operation is one transaction at READ COMMITTED. Where two nodes can race, the
//! statement itself decides: claims take the oldest pending row with `FOR UPDATE SKIP LOCKED`;
//! a submit locks its organization's row before it reads the balance; an idempotency key is
//! taken with `INSERT … ON CONFLICT`, which waits for a concurrent holder's commit; every
//! write to a running job carries `status = 'running' AND attempt = $n`.

mod listen;

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::charge::{Counted, WriteCharge};
use super::model::*;
use super::{StoreError, format_timestamp, new_id};

pub const SCHEMA: &str = include_str!("../../../schema.postgres.sql");
pub const SCHEMA_VERSION: i32 = 1;

pub struct Postgres {
    pool: Pool,
    config: tokio_postgres::Config,
}

/// An id as PostgreSQL stores it; None for text that cannot be one (so it names nothing).
fn uid(id: &str) -> Option<Uuid> {
    Uuid::parse_str(id).ok()
}

fn need_uid(id: &str) -> Result<Uuid, StoreError> {
    uid(id).ok_or_else(|| StoreError::Refused(format!("{id:?} is not a UUID")))
}

fn text(ts: jiff::Timestamp) -> String {
    format_timestamp(ts)
}

fn opt_text(ts: Option<jiff::Timestamp>) -> Option<String> {
    ts.map(format_timestamp)
}

fn timestamp(s: &str) -> Result<jiff::Timestamp, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Refused(format!("{s:?} is not a timestamp: {e}")))
}

fn lease_ms(lease: Duration) -> i64 {
    lease.as_millis().min(i64::MAX as u128) as i64
}

const ORG_COLUMNS: &str = "id, name, subscription_credits, purchased_credits, created_at";

fn org(r: &Row) -> Organization {
    Organization {
        id: r.get::<_, Uuid>(0).to_string(),
        name: r.get(1),
        subscription: r.get(2),
        purchased: r.get(3),
        created_at: text(r.get(4)),
    }
}

const KEY_COLUMNS: &str = "id, org_id, prefix, hash, scopes, created_at, revoked_at";

fn api_key(r: &Row) -> ApiKey {
    ApiKey {
        id: r.get::<_, Uuid>(0).to_string(),
        org_id: r.get::<_, Uuid>(1).to_string(),
        prefix: r.get(2),
        hash: r.get(3),
        scopes: r.get(4),
        created_at: text(r.get(5)),
        revoked_at: opt_text(r.get(6)),
    }
}

const VARIANT_COLUMNS: &str = "id, org_id, name, vh, vl, vl_chain_type, scfv, created_at";

fn variant(r: &Row) -> VariantRow {
    VariantRow {
        id: r.get::<_, Uuid>(0).to_string(),
        org_id: r.get::<_, Uuid>(1).to_string(),
        name: r.get(2),
        vh: r.get(3),
        vl: r.get(4),
        vl_chain_type: r.get(5),
        scfv: r.get(6),
        created_at: text(r.get(7)),
    }
}

const JOB_COLUMNS: &str = "id, org_id, kind, status, stage, inputs, snapshot, credit_cost, \
     created_at, started_at, finished_at, results, parental, error";

fn job(r: &Row) -> JobRow {
    let status: String = r.get(3);
    JobRow {
        id: r.get::<_, Uuid>(0).to_string(),
        org_id: r.get::<_, Uuid>(1).to_string(),
        kind: r.get(2),
        // The CHECK constraint admits only the five names.
        status: Status::parse(&status).unwrap_or(Status::Failed),
        stage: r.get(4),
        inputs: r.get(5),
        snapshot: r.get(6),
        credit_cost: r.get(7),
        created_at: text(r.get(8)),
        started_at: opt_text(r.get(9)),
        finished_at: opt_text(r.get(10)),
        results: r.get(11),
        parental: r.get(12),
        error: r.get(13),
    }
}

/// What a fenced write to a running job found, from its statement's one row (`count written`,
/// `cancel requested`), or none when the job is no longer this attempt's.
fn stage_write(row: Option<Row>) -> StageWrite {
    match row {
        None => StageWrite::Lost,
        Some(r) if r.get::<_, i64>(0) == 1 => StageWrite::Recorded,
        Some(r) if r.get::<_, bool>(1) => StageWrite::CancelRequested,
        Some(_) => StageWrite::Lost,
    }
}

fn ledger_entry(r: &Row) -> LedgerEntry {
    LedgerEntry {
        id: r.get::<_, Uuid>(0).to_string(),
        org_id: r.get::<_, Uuid>(1).to_string(),
        bucket: r.get(2),
        delta: r.get(3),
        reason: r.get(4),
        job_id: r.get::<_, Option<Uuid>>(5).map(|u| u.to_string()),
        created_at: text(r.get(6)),
    }
}

type Tx<'a> = deadpool_postgres::Transaction<'a>;

async fn insert_ledger(
    tx: &Tx<'_>,
    org_id: Uuid,
    bucket: Bucket,
    delta: i64,
    reason: &str,
    job_id: Option<Uuid>,
) -> Result<(), StoreError> {
    // The AFTER INSERT trigger moves the cached bucket balance with the row.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, now())",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &need_uid(&new_id())?,
            &org_id,
            &bucket.name(),
            &delta,
            &reason,
            &job_id,
        ],
    )
    .await?;
    Ok(())
}

/// A new organization with `credits` granted to its subscription bucket, as it now stands.
async fn insert_org(tx: &Tx<'_>, name: &str, credits: i64) -> Result<Organization, StoreError> {
    let id = need_uid(&new_id())?;
    tx.execute(
        "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, now())",
        &[&id, &name],
    )
    .await?;
    if credits > 0 {
        insert_ledger(tx, id, Bucket::Subscription, credits, "grant", None).await?;
    }
    let row = tx
        .query_one(
            &format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"),
            &[&id],
        )
        .await?;
    Ok(org(&row))
}

/// Refunds a job's cost to the subscription bucket, at most once (the unique index decides).
async fn refund(tx: &Tx<'_>, org_id: Uuid, job_id: Uuid, cost: i64) -> Result<bool, StoreError> {
    if cost <= 0 {
        return Ok(false);
    }
    let stmt = tx
        .prepare_cached(
            "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at) \
             VALUES ($1, $2, 'subscription', $3, 'refund', $4, now()) \
             ON CONFLICT (job_id) WHERE reason = 'refund' DO NOTHING",
        )
        .await?;
    Ok(tx
        .execute(&stmt, &[&need_uid(&new_id())?, &org_id, &cost, &job_id])
        .await?
        == 1)
}

/// Ends a running job of this attempt unsuccessfully and refunds it.
async fn end_refunded(
    tx: &Tx<'_>,
    id: Uuid,
    attempt: i64,
    status: Status,
    error: Option<&str>,
) -> Result<bool, StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE jobs SET status = $3, stage = NULL, finished_at = now(), error = $4, \
             results = NULL, lease_owner = NULL, lease_expires_at = NULL \
             WHERE id = $1 AND status = 'running' AND attempt = $2 \
             RETURNING org_id, credit_cost",
        )
        .await?;
    let Some(row) = tx
        .query_opt(&stmt, &[&id, &attempt, &status.name(), &error])
        .await?
    else {
        return Ok(false);
    };
    refund(tx, row.get(0), id, row.get(1)).await?;
    Ok(true)
}

async fn begin_key(tx: &Tx<'_>, key: &KeyUse) -> Result<KeyState, StoreError> {
    let org_id = need_uid(&key.scope.org_id)?;
    let expires = timestamp(&key.expires_at)?;
    let s = &key.scope;
    // Waits for a concurrent holder of the key to commit (then finds its record) or roll back
    // (then takes the key); an expired record is replaced.
    let stmt = tx
        .prepare_cached(
            "INSERT INTO idempotency_keys \
             (org_id, method, route, key, fingerprint, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5, now(), $6) \
             ON CONFLICT (org_id, method, route, key) DO UPDATE SET \
               fingerprint = EXCLUDED.fingerprint, created_at = EXCLUDED.created_at, \
               expires_at = EXCLUDED.expires_at, response_status = NULL, \
               response_body = NULL, response_location = NULL \
             WHERE idempotency_keys.expires_at <= now() \
             RETURNING 1",
        )
        .await?;
    let taken = tx
        .query_opt(
            &stmt,
            &[
                &org_id,
                &s.method,
                &s.route,
                &s.key,
                &key.fingerprint,
                &expires,
            ],
        )
        .await?;
    if taken.is_some() {
        return Ok(KeyState::Fresh);
    }
    let stmt = tx
        .prepare_cached(
            "SELECT fingerprint, response_status, response_body, response_location \
             FROM idempotency_keys WHERE org_id = $1 AND method = $2 AND route = $3 AND key = $4",
        )
        .await?;
    let Some(row) = tx
        .query_opt(&stmt, &[&org_id, &s.method, &s.route, &s.key])
        .await?
    else {
        // Gone between the two statements (swept): ask again.
        return Ok(KeyState::InProgress);
    };
    let fingerprint: String = row.get(0);
    if fingerprint != key.fingerprint {
        return Ok(KeyState::Mismatch);
    }
    let status: Option<i32> = row.get(1);
    let body: Option<String> = row.get(2);
    Ok(match status.zip(body) {
        Some((status, body)) => KeyState::Replay(StoredResponse {
            status: status as u16,
            body,
            location: row.get(3),
        }),
        None => KeyState::InProgress,
    })
}

async fn complete_key(
    tx: &Tx<'_>,
    scope: &IdempotencyScope,
    response: &StoredResponse,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "UPDATE idempotency_keys SET response_status = $5, response_body = $6, \
             response_location = $7 \
             WHERE org_id = $1 AND method = $2 AND route = $3 AND key = $4",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &need_uid(&scope.org_id)?,
            &scope.method,
            &scope.route,
            &scope.key,
            &i32::from(response.status),
            &response.body,
            &response.location,
        ],
    )
    .await?;
    Ok(())
}

async fn insert_variant(tx: &Tx<'_>, v: &VariantRow) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, scfv, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .await?;
    tx.execute(
        &stmt,
        &[
            &need_uid(&v.id)?,
            &need_uid(&v.org_id)?,
            &v.name,
            &v.vh,
            &v.vl,
            &v.vl_chain_type,
            &v.scfv,
            &timestamp(&v.created_at)?,
        ],
    )
    .await?;
    Ok(())
}

impl Postgres {
    /// Connects a pool of `connections` and applies the schema to a new database.
    pub async fn connect(url: &str, connections: u32) -> Result<Postgres, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|e| StoreError::Refused(format!("the database URL: {e}")))?;
        // An unreachable server fails a request (503) in seconds instead of hanging it until
        // the kernel gives up on the TCP connect; a URL's own `connect_timeout` wins.
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(connections.max(2) as usize)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Refused(format!("the connection pool: {e}")))?;
        let store = Postgres { pool, config };
        store.migrate(url).await?;
        Ok(store)
    }

    async fn migrate(&self, url: &str) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // One node applies the schema; the others wait here, then find it applied.
        tx.execute("SELECT pg_advisory_xact_lock(7065786)", &[])
            .await?;
        let exists: Option<String> = tx
            .query_one("SELECT to_regclass('veneer_schema')::text", &[])
            .await?
            .get(0);
        if exists.is_none() {
            tx.batch_execute(SCHEMA).await?;
            tx.execute(
                "INSERT INTO veneer_schema (version) VALUES ($1)",
                &[&SCHEMA_VERSION],
            )
            .await?;
        } else {
            let found: i32 = tx
                .query_one("SELECT max(version) FROM veneer_schema", &[])
                .await?
                .get::<_, Option<i32>>(0)
                .unwrap_or(0);
            if found > SCHEMA_VERSION {
                return Err(StoreError::NewerSchema {
                    database: redact(url),
                    found: i64::from(found),
                    supported: i64::from(SCHEMA_VERSION),
                });
            }
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn ping(&self) -> Result<(), StoreError> {
        let client = self.pool.get().await?;
        client.query_one("SELECT 1", &[]).await?;
        Ok(())
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query(&stmt, params).await?)
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.query_opt(&stmt, params).await?)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.pool.get().await?;
        let stmt = client.prepare_cached(sql).await?;
        Ok(client.execute(&stmt, params).await?)
    }

    pub async fn create_org(&self, name: &str, credits: i64) -> Result<Organization, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let organization = insert_org(&tx, name, credits).await?;
        tx.commit().await?;
        Ok(organization)
    }

    pub async fn bootstrap(
        &self,
        name: &str,
        credits: i64,
        key: NewApiKey,
    ) -> Result<Option<Organization>, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Nodes starting together on a new database: one bootstraps.
        tx.execute("SELECT pg_advisory_xact_lock(7065787)", &[])
            .await?;
        let any = tx
            .query_opt("SELECT 1 FROM organizations LIMIT 1", &[])
            .await?;
        if any.is_some() {
            return Ok(None);
        }
        let organization = insert_org(&tx, name, credits).await?;
        tx.execute(
            "INSERT INTO api_keys (id, org_id, prefix, hash, scopes, created_at) \
             VALUES ($1, $2, $3, $4, $5, now())",
            &[
                &need_uid(&new_id())?,
                &need_uid(&organization.id)?,
                &key.prefix,
                &key.hash,
                &key.scopes,
            ],
        )
        .await?;
        tx.commit().await?;
        Ok(Some(organization))
    }

    pub async fn get_org(&self, id: &str) -> Result<Option<Organization>, StoreError> {
        let Some(id) = uid(id) else { return Ok(None) };
        Ok(self
            .query_opt(
                &format!("SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1"),
                &[&id],
            )
            .await?
            .as_ref()
            .map(org))
    }

    pub async fn list_orgs(&self) -> Result<Vec<Organization>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {ORG_COLUMNS} FROM organizations ORDER BY id"),
                &[],
            )
            .await?
            .iter()
            .map(org)
            .collect())
    }

    pub async fn insert_key(&self, org_id: &str, key: NewApiKey) -> Result<ApiKey, StoreError> {
        let row = self
            .query_opt(
                &format!(
                    "INSERT INTO api_keys (id, org_id, prefix, hash, scopes, created_at) \
                     VALUES ($1, $2, $3, $4, $5, now()) RETURNING {KEY_COLUMNS}"
                ),
                &[
                    &need_uid(&new_id())?,
                    &need_uid(org_id)?,
                    &key.prefix,
                    &key.hash,
                    &key.scopes,
                ],
            )
            .await?
            .ok_or_else(|| StoreError::Refused("the key was not stored".into()))?;
        Ok(api_key(&row))
    }

    pub async fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<ApiKey>, StoreError> {
        Ok(self
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE prefix = $1"),
                &[&prefix],
            )
            .await?
            .iter()
            .map(api_key)
            .collect())
    }

    pub async fn key_live(&self, key_id: &str) -> Result<bool, StoreError> {
        let Some(id) = uid(key_id) else {
            return Ok(false);
        };
        Ok(self
            .query_opt(
                "SELECT 1 FROM api_keys WHERE id = $1 AND revoked_at IS NULL",
                &[&id],
            )
            .await?
            .is_some())
    }

    pub async fn list_keys(&self, org_id: &str) -> Result<Vec<ApiKey>, StoreError> {
        let Some(org_id) = uid(org_id) else {
            return Ok(Vec::new());
        };
        Ok(self
            .query(
                &format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE org_id = $1 ORDER BY id"),
                &[&org_id],
            )
            .await?
            .iter()
            .map(api_key)
            .collect())
    }

    pub async fn revoke_key(&self, key_id: &str) -> Result<bool, StoreError> {
        let Some(id) = uid(key_id) else {
            return Ok(false);
        };
        let found = self
            .query_opt(
                "UPDATE api_keys SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1 \
                 RETURNING 1",
                &[&id],
            )
            .await?;
        Ok(found.is_some())
    }

    pub async fn grant(
        &self,
        org_id: &str,
        bucket: Bucket,
        amount: i64,
    ) -> Result<Option<i64>, StoreError> {
        let Some(id) = uid(org_id) else {
            return Ok(None);
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let exists = tx
            .query_opt(
                "SELECT 1 FROM organizations WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await?;
        if exists.is_none() {
            return Ok(None);
        }
        insert_ledger(&tx, id, bucket, amount, "grant", None).await?;
        let balance: i64 = tx
            .query_one(
                "SELECT subscription_credits + purchased_credits FROM organizations WHERE id = $1",
                &[&id],
            )
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Some(balance))
    }

    pub async fn ledger_page(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let Some(org_id) = uid(org_id) else {
            return Ok(Vec::new());
        };
        let before = before.and_then(uid);
        Ok(self
            .query(
                "SELECT id, org_id, bucket, delta, reason, job_id, created_at FROM credit_ledger \
                 WHERE org_id = $1 AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3",
                &[&org_id, &before, &(limit as i64)],
            )
            .await?
            .iter()
            .map(ledger_entry)
            .collect())
    }

    /// One statement: the key's liveness and, only if live, the count.
    pub async fn count_write(&self, charge: &WriteCharge) -> Result<Counted, StoreError> {
        let org_id = need_uid(&charge.org_id)?;
        let Some(key_id) = uid(&charge.key_id) else {
            return Ok(Counted::KeyGone);
        };
        let day: jiff::civil::Date = charge
            .day
            .parse()
            .map_err(|e| StoreError::Refused(format!("{:?} is not a date: {e}", charge.day)))?;
        let row = self
            .query_opt(
                "WITH live AS (SELECT EXISTS (SELECT 1 FROM api_keys \
                     WHERE id = $4 AND revoked_at IS NULL) AS ok), \
                 counted AS (INSERT INTO daily_writes (org_id, day, count) \
                     SELECT $1, $2, 1 FROM live WHERE ok \
                     ON CONFLICT (org_id, day) DO UPDATE SET count = daily_writes.count + 1 \
                     WHERE daily_writes.count < $3 RETURNING count) \
                 SELECT (SELECT ok FROM live), (SELECT count FROM counted)",
                &[&org_id, &day, &charge.quota, &key_id],
            )
            .await?
            .ok_or_else(|| StoreError::Task("the count returned no row".into()))?;
        let (live, count): (bool, Option<i64>) = (row.get(0), row.get(1));
        Ok(match count {
            _ if !live => Counted::KeyGone,
            Some(c) if c <= charge.quota => Counted::Within,
            _ => Counted::OverQuota,
        })
    }

    pub async fn get_setting(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self
            .query_opt("SELECT value FROM settings WHERE key = $1", &[&key])
            .await?
            .map(|r| r.get(0)))
    }

    pub async fn set_setting(&self, key: &str, value: &str) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO settings (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            &[&key, &value],
        )
        .await?;
        Ok(())
    }

    pub async fn sweep_keys(&self, now: &str, abandoned_before: &str) -> Result<usize, StoreError> {
        let (now, before) = (timestamp(now)?, timestamp(abandoned_before)?);
        let expired = self
            .execute(
                "DELETE FROM idempotency_keys WHERE expires_at <= $1",
                &[&now],
            )
            .await?;
        let abandoned = self
            .execute(
                "DELETE FROM idempotency_keys WHERE response_status IS NULL AND created_at < $1",
                &[&before],
            )
            .await?;
        Ok((expired + abandoned) as usize)
    }

    pub async fn begin_key(&self, key: &KeyUse) -> Result<KeyState, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let state = begin_key(&tx, key).await?;
        tx.commit().await?;
        Ok(state)
    }

    pub async fn release_key(&self, scope: &IdempotencyScope) -> Result<(), StoreError> {
        let Some(org_id) = uid(&scope.org_id) else {
            return Ok(());
        };
        self.execute(
            "DELETE FROM idempotency_keys WHERE org_id = $1 AND method = $2 AND route = $3 \
             AND key = $4 AND response_status IS NULL",
            &[&org_id, &scope.method, &scope.route, &scope.key],
        )
        .await?;
        Ok(())
    }

    pub async fn insert_variants(
        &self,
        rows: Vec<VariantRow>,
        key: Option<(IdempotencyScope, StoredResponse)>,
    ) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for row in &rows {
            insert_variant(&tx, row).await?;
        }
        if let Some((scope, response)) = &key {
            complete_key(&tx, scope, response).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn get_variant(
        &self,
        org_id: &str,
        id: &str,
    ) -> Result<Option<VariantRow>, StoreError> {
        let (Some(org_id), Some(id)) = (uid(org_id), uid(id)) else {
            return Ok(None);
        };
        Ok(self
            .query_opt(
                &format!("SELECT {VARIANT_COLUMNS} FROM variants WHERE id = $1 AND org_id = $2"),
                &[&id, &org_id],
            )
            .await?
            .as_ref()
            .map(variant))
    }

    pub async fn page_variants(
        &self,
        org_id: &str,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<VariantRow>, StoreError> {
        let Some(org_id) = uid(org_id) else {
            return Ok(Vec::new());
        };
        let before = before.and_then(uid);
        Ok(self
            .query(
                &format!(
                    "SELECT {VARIANT_COLUMNS} FROM variants WHERE org_id = $1 \
                     AND ($2::uuid IS NULL OR id < $2) ORDER BY id DESC LIMIT $3"
                ),
                &[&org_id, &before, &(limit as i64)],
            )
            .await?
            .iter()
            .map(variant)
            .collect())
    }

    pub async fn delete_variant(&self, org_id: &str, id: &str) -> Result<bool, StoreError> {
        let (Some(org_id), Some(id)) = (uid(org_id), uid(id)) else {
            return Ok(false);
        };
        Ok(self
            .execute(
                "DELETE FROM variants WHERE id = $1 AND org_id = $2",
                &[&id, &org_id],
            )
            .await?
            == 1)
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
        let org_uid = need_uid(org_id)?;
        let variant_uid = uid(variant_id);
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        if let Some(key) = &key {
            // Waits here for a concurrent request holding the key, then replays its answer.
            match begin_key(&tx, key).await? {
                KeyState::Fresh => {}
                decided => return Ok(Submitted::Key(decided)),
            }
        }
        // The variant, and the organization's row locked so concurrent submits of one
        // organization read its balance one at a time. FOR NO KEY UPDATE, not FOR UPDATE: the
        // share locks that inserts referencing the row take do not conflict with it, so two
        // submits can never deadlock on them. Both statements go out in one round trip.
        let variant_stmt = tx
            .prepare_cached(&format!(
                "SELECT {VARIANT_COLUMNS} FROM variants WHERE id = $1 AND org_id = $2"
            ))
            .await?;
        let org_stmt = tx
            .prepare_cached(&format!(
                "SELECT {ORG_COLUMNS} FROM organizations WHERE id = $1 FOR NO KEY UPDATE"
            ))
            .await?;
        let (variant_row, org_row) = tokio::try_join!(
            async {
                match variant_uid {
                    Some(vid) => tx.query_opt(&variant_stmt, &[&vid, &org_uid]).await,
                    None => Ok(None),
                }
            },
            async { tx.query_opt(&org_stmt, &[&org_uid]).await },
        )?;
        let Some(organization) = org_row.as_ref().map(org) else {
            return Err(StoreError::Refused(format!("no organization {org_id}")));
        };
        let new = match plan(variant_row.as_ref().map(variant).as_ref(), &organization) {
            Ok(new) => new,
            // Dropping the transaction rolls the key's reservation back.
            Err(refusal) => return Ok(Submitted::Refused(refusal)),
        };
        let j = &new.job;
        let job_id = need_uid(&j.id)?;
        let created_at = timestamp(&j.created_at)?;
        let job_stmt = tx
            .prepare_cached(
                "INSERT INTO jobs (id, org_id, kind, status, inputs, snapshot, credit_cost, \
                 created_at) VALUES ($1, $2, $3, 'pending', $4, $5, $6, $7)",
            )
            .await?;
        // Subscription bucket first; the CHECKs abort the transaction on an overdraft.
        let from_subscription = j.credit_cost.min(organization.subscription);
        let debits = [
            (Bucket::Subscription, from_subscription),
            (Bucket::Purchased, j.credit_cost - from_subscription),
        ];
        // The job, its debit rows and the key's stored answer, pipelined: polled in this
        // order, the statements go out and run in this order (the debit's reference finds the
        // job) in one round trip.
        let job_insert = async {
            tx.execute(
                &job_stmt,
                &[
                    &job_id,
                    &org_uid,
                    &j.kind,
                    &j.inputs,
                    &j.snapshot,
                    &j.credit_cost,
                    &created_at,
                ],
            )
            .await
            .map_err(StoreError::from)
        };
        let debit_inserts = futures_util::future::try_join_all(
            debits
                .iter()
                .filter(|(_, amount)| *amount > 0)
                .map(|&(bucket, amount)| {
                    insert_ledger(&tx, org_uid, bucket, -amount, "debit", Some(job_id))
                }),
        );
        let key_update = async {
            match &key {
                Some(key) => complete_key(&tx, &key.scope, &new.response).await,
                None => Ok(()),
            }
        };
        tokio::try_join!(job_insert, debit_inserts, key_update)?;
        tx.commit().await?;
        Ok(Submitted::Created(Box::new(new)))
    }

    pub async fn get_job(
        &self,
        org_id: &str,
        id: &str,
        kind: Option<&str>,
    ) -> Result<Option<JobRow>, StoreError> {
        let (Some(org_id), Some(id)) = (uid(org_id), uid(id)) else {
            return Ok(None);
        };
        Ok(self
            .query_opt(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 AND org_id = $2 \
                     AND ($3::text IS NULL OR kind = $3)"
                ),
                &[&id, &org_id, &kind],
            )
            .await?
            .as_ref()
            .map(job))
    }

    pub async fn page_jobs(
        &self,
        org_id: &str,
        kind: Option<&str>,
        status: Option<Status>,
        before: Option<&str>,
        limit: usize,
    ) -> Result<Vec<JobRow>, StoreError> {
        let Some(org_id) = uid(org_id) else {
            return Ok(Vec::new());
        };
        let before = before.and_then(uid);
        Ok(self
            .query(
                &format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE org_id = $1 \
                     AND ($2::text IS NULL OR kind = $2) AND ($3::text IS NULL OR status = $3) \
                     AND ($4::uuid IS NULL OR id < $4) ORDER BY id DESC LIMIT $5"
                ),
                &[
                    &org_id,
                    &kind,
                    &status.map(Status::name),
                    &before,
                    &(limit as i64),
                ],
            )
            .await?
            .iter()
            .map(job)
            .collect())
    }

    pub async fn count_jobs(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        Ok(self
            .query(
                "SELECT kind, status, COUNT(*) FROM jobs GROUP BY kind, status",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect())
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
        // Ranked from a snapshot; each claim then skips rows other nodes hold, and moves to
        // the next organization when another node took the last pending job of one.
        for org in rank(self.pending_orgs().await?) {
            if let Some(lease) = self.claim(&org, stage, node, lease).await? {
                return Ok(Some(lease));
            }
        }
        Ok(None)
    }

    async fn pending_orgs(&self) -> Result<Vec<(String, i64)>, StoreError> {
        // A loose index scan over the pending index: one probe per organization with work,
        // however many jobs each has queued (PostgreSQL has no skip scan of its own).
        Ok(self
            .query(
                "WITH RECURSIVE o AS ( \
                   (SELECT org_id FROM jobs WHERE status = 'pending' ORDER BY org_id LIMIT 1) \
                   UNION ALL \
                   SELECT (SELECT j.org_id FROM jobs j WHERE j.status = 'pending' \
                           AND j.org_id > o.org_id ORDER BY j.org_id LIMIT 1) \
                   FROM o WHERE o.org_id IS NOT NULL) \
                 SELECT o.org_id, (SELECT COUNT(*) FROM jobs r WHERE r.status = 'running' \
                                   AND r.org_id = o.org_id) \
                 FROM o WHERE o.org_id IS NOT NULL",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, Uuid>(0).to_string(), r.get(1)))
            .collect())
    }

    async fn claim(
        &self,
        org_id: &str,
        stage: &str,
        node: &str,
        lease: Duration,
    ) -> Result<Option<Lease>, StoreError> {
        let Some(org_id) = uid(org_id) else {
            return Ok(None);
        };
        let row = self
            .query_opt(
                &format!(
                    "UPDATE jobs SET status = 'running', stage = $2, started_at = now(), \
                     attempt = attempt + 1, lease_owner = $3, \
                     lease_expires_at = clock_timestamp() + $4::bigint * interval '1 millisecond' \
                     WHERE id = (SELECT id FROM jobs WHERE status = 'pending' AND org_id = $1 \
                                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) \
                     RETURNING {JOB_COLUMNS}, attempt"
                ),
                &[&org_id, &stage, &node, &lease_ms(lease)],
            )
            .await?;
        Ok(row.map(|r| Lease {
            job: job(&r),
            attempt: r.get(14),
        }))
    }

    pub async fn set_stage(
        &self,
        job_id: &str,
        attempt: i64,
        stage: &str,
    ) -> Result<StageWrite, StoreError> {
        let id = need_uid(job_id)?;
        // One statement: the row as it stands decides which of the three it is.
        let row = self
            .query_opt(
                "WITH held AS (SELECT id, cancel_requested_at FROM jobs \
                               WHERE id = $1 AND status = 'running' AND attempt = $2 FOR UPDATE), \
                      written AS (UPDATE jobs SET stage = $3 FROM held \
                                  WHERE jobs.id = held.id AND held.cancel_requested_at IS NULL \
                                  RETURNING 1) \
                 SELECT (SELECT count(*) FROM written), held.cancel_requested_at IS NOT NULL \
                 FROM held",
                &[&id, &attempt, &stage],
            )
            .await?;
        Ok(stage_write(row))
    }

    pub async fn complete(
        &self,
        job_id: &str,
        attempt: i64,
        results: String,
        parental: String,
        duration_ms: i64,
    ) -> Result<StageWrite, StoreError> {
        let id = need_uid(job_id)?;
        // One statement, as in `set_stage`: the row as it stands decides which of the three.
        let row = self
            .query_opt(
                "WITH held AS (SELECT id, cancel_requested_at FROM jobs \
                               WHERE id = $1 AND status = 'running' AND attempt = $2 FOR UPDATE), \
                      written AS (UPDATE jobs SET status = 'completed', stage = NULL, \
                                  finished_at = now(), results = $3, parental = $4, \
                                  duration_ms = $5, lease_owner = NULL, lease_expires_at = NULL \
                                  FROM held \
                                  WHERE jobs.id = held.id AND held.cancel_requested_at IS NULL \
                                  RETURNING 1) \
                 SELECT (SELECT count(*) FROM written), held.cancel_requested_at IS NOT NULL \
                 FROM held",
                &[&id, &attempt, &results, &parental, &duration_ms],
            )
            .await?;
        Ok(stage_write(row))
    }

    pub async fn end_refunded(
        &self,
        job_id: &str,
        attempt: i64,
        status: Status,
        error: Option<String>,
    ) -> Result<bool, StoreError> {
        let id = need_uid(job_id)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let ended = end_refunded(&tx, id, attempt, status, error.as_deref()).await?;
        tx.commit().await?;
        Ok(ended)
    }

    pub async fn release(&self, job_id: &str, attempt: i64) -> Result<(), StoreError> {
        let id = need_uid(job_id)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let requeued = tx
            .execute(
                "UPDATE jobs SET status = 'pending', stage = NULL, started_at = NULL, \
                 lease_owner = NULL, lease_expires_at = NULL \
                 WHERE id = $1 AND status = 'running' AND attempt = $2 \
                 AND cancel_requested_at IS NULL",
                &[&id, &attempt],
            )
            .await?;
        if requeued == 0 {
            end_refunded(&tx, id, attempt, Status::Canceled, None).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn cancel(
        &self,
        org_id: &str,
        job_id: &str,
        kind: Option<&str>,
        refusing_stage: &str,
    ) -> Result<CancelDecision, StoreError> {
        let (Some(org_id), Some(id)) = (uid(org_id), uid(job_id)) else {
            return Ok(CancelDecision::NotFound);
        };
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let stmt = tx
            .prepare_cached(
                "SELECT status, stage, credit_cost FROM jobs WHERE id = $1 AND org_id = $2 \
                 AND ($3::text IS NULL OR kind = $3) FOR UPDATE",
            )
            .await?;
        let Some(row) = tx.query_opt(&stmt, &[&id, &org_id, &kind]).await? else {
            return Ok(CancelDecision::NotFound);
        };
        let status = Status::parse(row.get(0)).unwrap_or(Status::Failed);
        let stage: Option<String> = row.get(1);
        let decision = match status {
            Status::Pending => {
                let canceled = tx
                    .query_one(
                        &format!(
                            "UPDATE jobs SET status = 'canceled', stage = NULL, finished_at = now() \
                             WHERE id = $1 RETURNING {JOB_COLUMNS}"
                        ),
                        &[&id],
                    )
                    .await?;
                refund(&tx, org_id, id, row.get(2)).await?;
                CancelDecision::Canceled(Box::new(job(&canceled)))
            }
            Status::Running if stage.as_deref() == Some(refusing_stage) => {
                CancelDecision::Unavailable(refusing_stage.to_string())
            }
            Status::Running => {
                // The trigger announces it to every node when this commits.
                tx.execute(
                    "UPDATE jobs SET cancel_requested_at = COALESCE(cancel_requested_at, now()) \
                     WHERE id = $1",
                    &[&id],
                )
                .await?;
                CancelDecision::Requested
            }
            status => CancelDecision::AlreadyTerminal(status),
        };
        tx.commit().await?;
        Ok(decision)
    }

    pub async fn heartbeat(&self, node: &str, lease: Duration) -> Result<Vec<Held>, StoreError> {
        Ok(self
            .query(
                "UPDATE jobs SET lease_expires_at = clock_timestamp() \
                   + $2::bigint * interval '1 millisecond' \
                 WHERE status = 'running' AND lease_owner = $1 \
                 RETURNING id, attempt, cancel_requested_at IS NOT NULL",
                &[&node, &lease_ms(lease)],
            )
            .await?
            .iter()
            .map(|r| Held {
                job_id: r.get::<_, Uuid>(0).to_string(),
                attempt: r.get(1),
                cancel_requested: r.get(2),
            })
            .collect())
    }

    pub async fn rescue(&self, all: bool) -> Result<Rescued, StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Each row's state is re-checked by the statement that moves it: a job renewed,
        // completed or already rescued by another node meanwhile is left alone.
        let canceled = tx
            .query(
                "UPDATE jobs SET status = 'canceled', stage = NULL, finished_at = now(), \
                 results = NULL, lease_owner = NULL, lease_expires_at = NULL \
                 WHERE status = 'running' AND ($1 OR lease_expires_at < clock_timestamp()) \
                 AND cancel_requested_at IS NOT NULL \
                 RETURNING id, org_id, credit_cost",
                &[&all],
            )
            .await?;
        for row in &canceled {
            refund(&tx, row.get(1), row.get(0), row.get(2)).await?;
        }
        let requeued = tx
            .execute(
                "UPDATE jobs SET status = 'pending', stage = NULL, started_at = NULL, \
                 lease_owner = NULL, lease_expires_at = NULL \
                 WHERE status = 'running' AND ($1 OR lease_expires_at < clock_timestamp()) \
                 AND cancel_requested_at IS NULL",
                &[&all],
            )
            .await?;
        tx.commit().await?;
        Ok(Rescued {
            requeued: requeued as usize,
            canceled: canceled.len(),
        })
    }

    pub fn listen(&self) -> tokio::sync::mpsc::UnboundedReceiver<super::Notice> {
        listen::spawn(self.config.clone())
    }

    pub async fn dump(&self) -> Result<Dump, StoreError> {
        Err(StoreError::Refused(
            "veneer migrate reads a SQLite database; the source must be a file".into(),
        ))
    }

    pub async fn census(&self) -> Result<Census, StoreError> {
        let client = self.pool.get().await?;
        let mut tables = Vec::new();
        for table in super::sqlite::TABLES {
            let n: i64 = client
                .query_one(&format!("SELECT COUNT(*) FROM {table}"), &[])
                .await?
                .get(0);
            tables.push((table, n));
        }
        let ledger_sums = client
            .query(
                "SELECT o.id, \
                   COALESCE((SELECT SUM(delta) FROM credit_ledger l WHERE l.org_id = o.id \
                             AND l.bucket = 'subscription'), 0)::bigint, \
                   COALESCE((SELECT SUM(delta) FROM credit_ledger l WHERE l.org_id = o.id \
                             AND l.bucket = 'purchased'), 0)::bigint \
                 FROM organizations o ORDER BY o.id",
                &[],
            )
            .await?
            .iter()
            .map(|r| (r.get::<_, Uuid>(0).to_string(), r.get(1), r.get(2)))
            .collect();
        Ok(Census {
            tables,
            ledger_sums,
        })
    }

    /// Loads a dump into this database in one transaction, refusing one that holds any row.
    pub async fn load(&self, dump: Dump) -> Result<(), StoreError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        for table in super::sqlite::TABLES {
            let any = tx
                .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])
                .await?;
            if any.is_some() {
                return Err(StoreError::Refused(format!(
                    "the target database is not empty ({table} has rows); migrate into a new database"
                )));
            }
        }
        for o in &dump.organizations {
            // Balances start at zero and are rebuilt by the ledger rows below.
            tx.execute(
                "INSERT INTO organizations (id, name, created_at) VALUES ($1, $2, $3)",
                &[&need_uid(&o.id)?, &o.name, &timestamp(&o.created_at)?],
            )
            .await?;
        }
        for k in &dump.api_keys {
            let revoked = k.revoked_at.as_deref().map(timestamp).transpose()?;
            tx.execute(
                "INSERT INTO api_keys (id, org_id, prefix, hash, scopes, created_at, revoked_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    &need_uid(&k.id)?,
                    &need_uid(&k.org_id)?,
                    &k.prefix,
                    &k.hash,
                    &k.scopes,
                    &timestamp(&k.created_at)?,
                    &revoked,
                ],
            )
            .await?;
        }
        for v in &dump.variants {
            insert_variant(&tx, v).await?;
        }
        let stmt = tx
            .prepare(
                "INSERT INTO jobs (id, org_id, kind, status, stage, inputs, snapshot, credit_cost, \
                 created_at, started_at, finished_at, results, parental, error, duration_ms, \
                 attempt) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                 $15, $16)",
            )
            .await?;
        for (j, attempt, duration_ms) in &dump.jobs {
            // A job the stopped SQLite server left running goes back to the queue, as that
            // server's own start-up recovery would have put it.
            let (status, stage, started) = match j.status {
                Status::Running => (Status::Pending, None, None),
                s => (s, j.stage.clone(), j.started_at.as_deref()),
            };
            let ts = |s: Option<&str>| s.map(timestamp).transpose();
            tx.execute(
                &stmt,
                &[
                    &need_uid(&j.id)?,
                    &need_uid(&j.org_id)?,
                    &j.kind,
                    &status.name(),
                    &stage,
                    &j.inputs,
                    &j.snapshot,
                    &j.credit_cost,
                    &timestamp(&j.created_at)?,
                    &ts(started)?,
                    &ts(j.finished_at.as_deref())?,
                    &j.results,
                    &j.parental,
                    &j.error,
                    duration_ms,
                    attempt,
                ],
            )
            .await?;
        }
        let stmt = tx
            .prepare(
                "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await?;
        for e in &dump.ledger {
            let job_id = e.job_id.as_deref().map(need_uid).transpose()?;
            tx.execute(
                &stmt,
                &[
                    &need_uid(&e.id)?,
                    &need_uid(&e.org_id)?,
                    &e.bucket,
                    &e.delta,
                    &e.reason,
                    &job_id,
                    &timestamp(&e.created_at)?,
                ],
            )
            .await?;
        }
        for k in &dump.idempotency_keys {
            let r = k.response.as_ref();
            tx.execute(
                "INSERT INTO idempotency_keys (org_id, method, route, key, fingerprint, \
                 response_status, response_body, response_location, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &need_uid(&k.scope.org_id)?,
                    &k.scope.method,
                    &k.scope.route,
                    &k.scope.key,
                    &k.fingerprint,
                    &r.map(|r| i32::from(r.status)),
                    &r.map(|r| r.body.as_str()),
                    &r.and_then(|r| r.location.as_deref()),
                    &timestamp(&k.created_at)?,
                    &timestamp(&k.expires_at)?,
                ],
            )
            .await?;
        }
        for (org_id, day, count) in &dump.daily_writes {
            let day: jiff::civil::Date = day
                .parse()
                .map_err(|e| StoreError::Refused(format!("{day:?} is not a date: {e}")))?;
            tx.execute(
                "INSERT INTO daily_writes (org_id, day, count) VALUES ($1, $2, $3)",
                &[&need_uid(org_id)?, &day, count],
            )
            .await?;
        }
        for (key, value) in &dump.settings {
            tx.execute(
                "INSERT INTO settings (key, value) VALUES ($1, $2)",
                &[key, value],
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A database URL fit for a log line: the password replaced.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}
