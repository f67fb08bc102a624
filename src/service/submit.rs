//! Creating things: variants and humanization jobs, with Stripe-style idempotency keys.
//!
//! A job is created, its credits debited and its idempotency key's response stored in ONE
//! `BEGIN IMMEDIATE` transaction on the one writer, so concurrent requests with the same key
//! are serialized by SQLite: the first creates, the rest find its stored response. A variant
//! is validated (numbered) outside the writer, so its key is first reserved in its own
//! transaction; a second request meanwhile sees the reservation (`IdempotencyInProgress`).

use std::sync::Arc;
use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::chain::ChainType;
use crate::engine::humanize::Variant;
use crate::engine::sequence::clean;
use crate::store::accounts;
use crate::store::db::{Db, StoreError, format_timestamp, new_id, now};
use crate::store::jobs::{self, JobRow, Status};
use crate::store::requests::{self, IdempotencyScope, StoredResponse};
use crate::store::variants::{self, VariantRow};

use super::ServiceError;

/// Credits one humanization costs.
pub const HUMANIZATION_COST: i64 = 1;
pub const HUMANIZATION: &str = "humanization";

/// An `Idempotency-Key` and where it applies.
#[derive(Debug, Clone)]
pub struct IdempotencyKey {
    pub key: String,
    pub method: &'static str,
    pub route: &'static str,
    pub ttl: Duration,
}

/// What a create call produced: a new response, or the first request's, replayed.
#[derive(Debug, Clone)]
pub enum Outcome {
    Created(StoredResponse),
    Replayed(StoredResponse),
}

/// The fingerprint of a request body: SHA-256 of its canonical JSON (the typed request
/// re-serialized, so key order and spacing in what the client sent do not matter).
pub fn fingerprint<T: Serialize>(body: &T) -> String {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn expiry(ttl: Duration) -> String {
    let ttl = jiff::SignedDuration::try_from(ttl).unwrap_or(jiff::SignedDuration::from_hours(24));
    let at = jiff::Timestamp::now()
        .checked_add(ttl)
        .unwrap_or(jiff::Timestamp::MAX);
    format_timestamp(at)
}

/// Looks the key up: a replay, a refusal, or None for a first use.
fn check_key(
    conn: &rusqlite::Connection,
    scope: &IdempotencyScope,
    fingerprint: &str,
) -> Result<Option<StoredResponse>, ServiceError> {
    match requests::find_key(conn, scope, &now())? {
        None => Ok(None),
        Some(record) if record.fingerprint != fingerprint => Err(ServiceError::IdempotencyMismatch),
        Some(record) => match record.response {
            Some(response) => Ok(Some(response)),
            None => Err(ServiceError::IdempotencyInProgress),
        },
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct NewVariant {
    pub name: String,
    pub vh: String,
    pub vl: String,
}

/// Validates and registers a variant. `render` turns the stored row into the response kept
/// for replays.
pub async fn create_variant(
    db: &Arc<Db>,
    org_id: &str,
    request: NewVariant,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&VariantRow) -> StoredResponse + Send + 'static,
) -> Result<Outcome, ServiceError> {
    let print = fingerprint(&request);
    let org = org_id.to_string();
    if let Some(idem) = idempotency.clone() {
        let org = org.clone();
        let print = print.clone();
        let replay = db
            .write_async(move |tx| {
                let scope = scope_of(&org, &idem);
                let replay = check_key(tx, &scope, &print)?;
                if replay.is_none() {
                    requests::reserve_key(tx, &scope, &print, &now(), &expiry(idem.ttl))?;
                }
                Ok::<_, ServiceError>(replay)
            })
            .await?;
        if let Some(response) = replay {
            return Ok(Outcome::Replayed(response));
        }
    }
    let created = register_variant(db, org.clone(), request, idempotency.clone(), render).await;
    if created.is_err()
        && let Some(idem) = idempotency
    {
        // A request that created nothing does not consume its key.
        db.write_async(move |tx| {
            requests::release_key(tx, &scope_of(&org, &idem)).map_err(StoreError::from)
        })
        .await?;
    }
    created.map(Outcome::Created)
}

fn scope_of<'a>(org_id: &'a str, idem: &'a IdempotencyKey) -> IdempotencyScope<'a> {
    IdempotencyScope {
        org_id,
        method: idem.method,
        route: idem.route,
        key: &idem.key,
    }
}

async fn register_variant(
    db: &Arc<Db>,
    org_id: String,
    request: NewVariant,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&VariantRow) -> StoredResponse + Send + 'static,
) -> Result<StoredResponse, ServiceError> {
    if request.name.trim().is_empty() {
        return Err(ServiceError::InvalidRequest(
            "name: must not be empty".into(),
        ));
    }
    // Numbering is CPU work: keep it off the async threads.
    let (vh, vl, vl_type) =
        tokio::task::spawn_blocking(move || validate_chains(&request.vh, &request.vl))
            .await
            .map_err(|e| StoreError::Task(e.to_string()))??;
    let row = VariantRow {
        id: new_id(),
        org_id,
        name: request.name.trim().to_string(),
        vh,
        vl,
        vl_chain_type: vl_type.to_string(),
        created_at: now(),
    };
    db.write_async(move |tx| {
        variants::insert(tx, &row)?;
        let response = render(&row);
        if let Some(idem) = &idempotency {
            requests::complete_key(tx, &scope_of(&row.org_id, idem), &response)?;
        }
        Ok::<_, ServiceError>(response)
    })
    .await
}

/// The cleaned chains (upper case, no whitespace) and the light chain's type, or the engine's
/// reason naming the chain (`VH: ...`).
pub fn validate_chains(vh: &str, vl: &str) -> Result<(String, String, &'static str), ServiceError> {
    let variant =
        Variant::new(vh, Some(vl)).map_err(|e| ServiceError::InvalidSequence(e.to_string()))?;
    let light = match variant.vl.as_ref().map(|c| c.chain_type) {
        Some(ChainType::L) => "lambda",
        _ => "kappa",
    };
    // Variant::new has cleaned both already, so these cannot fail here.
    let text = |raw: &str| {
        clean(raw)
            .map(|r| r.into_iter().map(char::from).collect::<String>())
            .map_err(|e| ServiceError::InvalidSequence(e.to_string()))
    };
    Ok((text(vh)?, text(vl)?, light))
}

#[derive(Debug, Clone, Serialize)]
pub struct NewHumanization {
    pub variant_id: String,
}

/// What a humanization job runs on, copied from the variant at submit.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HumanizationSnapshot {
    pub variant_id: String,
    pub name: String,
    pub vh: String,
    pub vl: String,
}

/// Submits a humanization: job, debit and idempotency record in one transaction.
pub async fn submit_humanization(
    db: &Arc<Db>,
    org_id: &str,
    request: NewHumanization,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&JobRow) -> StoredResponse + Send + 'static,
) -> Result<(Outcome, Option<String>), ServiceError> {
    let print = fingerprint(&request);
    let org_id = org_id.to_string();
    db.write_async(move |tx| {
        if let Some(idem) = &idempotency {
            let scope = scope_of(&org_id, idem);
            if let Some(response) = check_key(tx, &scope, &print)? {
                return Ok((Outcome::Replayed(response), None));
            }
        }
        let variant =
            variants::get(tx, &org_id, &request.variant_id)?.ok_or(ServiceError::NotFound)?;
        let org = accounts::get_org(tx, &org_id)?.ok_or(ServiceError::NotFound)?;
        if org.balance() < HUMANIZATION_COST {
            return Err(ServiceError::InsufficientCredits {
                cost: HUMANIZATION_COST,
                balance: org.balance(),
            });
        }
        let snapshot = HumanizationSnapshot {
            variant_id: variant.id.clone(),
            name: variant.name,
            vh: variant.vh,
            vl: variant.vl,
        };
        let job = JobRow {
            id: new_id(),
            org_id: org_id.clone(),
            kind: HUMANIZATION.into(),
            status: Status::Pending,
            stage: None,
            inputs: serde_json::json!({ "variant_id": variant.id }).to_string(),
            snapshot: serde_json::to_string(&snapshot).unwrap_or_default(),
            credit_cost: HUMANIZATION_COST,
            created_at: now(),
            started_at: None,
            finished_at: None,
            results: None,
            parental: None,
            error: None,
        };
        jobs::insert(tx, &job)?;
        accounts::debit(tx, &org, &job.id, HUMANIZATION_COST)?;
        let response = render(&job);
        if let Some(idem) = &idempotency {
            let scope = scope_of(&org_id, idem);
            requests::reserve_key(tx, &scope, &print, &job.created_at, &expiry(idem.ttl))?;
            requests::complete_key(tx, &scope, &response)?;
        }
        Ok((Outcome::Created(response), Some(job.id)))
    })
    .await
}
