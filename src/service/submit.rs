//! Creating things: variants and humanization jobs, with Stripe-style idempotency keys.
//!
//! A job is created, its credits debited and its idempotency key's response stored in ONE
//! store transaction ([`Store::submit`]), so concurrent requests with the same key are
//! serialized by the database (SQLite's one writer, PostgreSQL's conflict on the key's row):
//! the first creates, the rest find its stored response. A variant is validated (numbered)
//! outside any transaction, so its key is first reserved in its own; a second request
//! meanwhile sees the reservation (`IdempotencyInProgress`).

use std::time::Duration;

use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::engine::chain::ChainType;
use crate::engine::humanize::Variant;
use crate::engine::scfv::split_scfv;
use crate::engine::sequence::clean;
use crate::store::{
    IdempotencyScope, JobRow, KeyState, KeyUse, NewJob, Status, Store, StoreError, StoredResponse,
    Submitted, VariantRow, format_timestamp, new_id, now,
};

use super::ServiceError;
use super::humanization::{self, HumanizationSnapshot, NewHumanization};

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

/// A variant to register: `vh` (with `vl`, or without for a single-domain antibody), or one
/// `scfv` sequence to split.
#[derive(Debug, Clone, Serialize)]
pub struct NewVariant {
    pub name: String,
    pub vh: Option<String>,
    pub vl: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scfv: Option<String>,
}

/// A variant's chains as stored: cleaned VH, VL and its type (`None` for a single domain), and
/// the scFv split as JSON when it came from one.
pub struct CheckedChains {
    pub vh: String,
    pub vl: Option<String>,
    pub vl_chain_type: Option<&'static str>,
    pub scfv: Option<String>,
}

/// Checks the chains of a variant to register: the combination of fields, then the engine's
/// validation of each chain (or the split of the scFv).
pub fn check_variant(request: &NewVariant) -> Result<CheckedChains, ServiceError> {
    match (&request.vh, &request.vl, &request.scfv) {
        (_, _, Some(_)) if request.vh.is_some() || request.vl.is_some() => {
            Err(ServiceError::InvalidRequest(
                "give either scfv, or vh (with vl for a paired antibody), not both".into(),
            ))
        }
        (_, _, Some(scfv)) => {
            let split = split_scfv(scfv)
                .map_err(|e| ServiceError::InvalidSequence(format!("scFv: {e}")))?;
            let (vh, vl, vl_chain_type) = validate_chains(&split.vh, Some(&split.vl))?;
            Ok(CheckedChains {
                vh,
                vl,
                vl_chain_type,
                // Strings and numbers only: encoding cannot fail.
                scfv: serde_json::to_string(&split).ok(),
            })
        }
        (None, Some(_), None) => Err(ServiceError::InvalidRequest(
            "vh: required; a variant needs a heavy chain (or give scfv)".into(),
        )),
        (None, None, None) => Err(ServiceError::InvalidRequest(
            "vh: required (vh and vl for a paired antibody, vh alone for a single domain, or scfv)"
                .into(),
        )),
        (Some(vh), vl, None) => {
            let (vh, vl, vl_chain_type) = validate_chains(vh, vl.as_deref())?;
            Ok(CheckedChains {
                vh,
                vl,
                vl_chain_type,
                scfv: None,
            })
        }
    }
}

/// Validates and registers a variant. `render` turns the stored row into the response kept
/// for replays.
pub async fn create_variant(
    store: &Store,
    org_id: &str,
    request: NewVariant,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&VariantRow) -> StoredResponse + Send + 'static,
) -> Result<Outcome, ServiceError> {
    let print = fingerprint(&request);
    let org = org_id.to_string();
    let key = idempotency.clone();
    with_reserved_key(store, org_id, print, idempotency, move || {
        register_variant(store, org, request, key, render)
    })
    .await
}

/// The stored response of a key's request, or its refusal.
fn decided(state: KeyState) -> Result<Option<StoredResponse>, ServiceError> {
    match state {
        KeyState::Fresh => Ok(None),
        KeyState::Replay(response) => Ok(Some(response)),
        KeyState::Mismatch => Err(ServiceError::IdempotencyMismatch),
        KeyState::InProgress => Err(ServiceError::IdempotencyInProgress),
    }
}

fn key_use(org_id: &str, idem: &IdempotencyKey, fingerprint: &str) -> KeyUse {
    KeyUse {
        scope: scope_of(org_id, idem),
        fingerprint: fingerprint.to_string(),
        expires_at: expiry(idem.ttl),
    }
}

/// Runs `create` under an idempotency key reserved in its own transaction first (numbering
/// happens outside any transaction), so a concurrent request with the key sees the
/// reservation. `create` stores its response under the key in the transaction that creates
/// its rows; a `create` that fails releases the key, so a request that created nothing does
/// not consume it.
async fn with_reserved_key<F, Fut>(
    store: &Store,
    org_id: &str,
    print: String,
    idempotency: Option<IdempotencyKey>,
    create: F,
) -> Result<Outcome, ServiceError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<StoredResponse, ServiceError>>,
{
    if let Some(idem) = &idempotency {
        let state = store.begin_key(&key_use(org_id, idem, &print)).await?;
        if let Some(response) = decided(state)? {
            return Ok(Outcome::Replayed(response));
        }
    }
    let created = create().await;
    if created.is_err()
        && let Some(idem) = &idempotency
    {
        store.release_key(&scope_of(org_id, idem)).await?;
    }
    created.map(Outcome::Created)
}

/// The longest variant name, in characters (SPEC §5).
pub const MAX_NAME_CHARS: usize = 200;

/// A variant name as stored (trimmed), or why it cannot be one.
fn checked_name(name: &str) -> Result<String, String> {
    let name = name.trim();
    if name.is_empty() {
        return Err("name: must not be empty".into());
    }
    let chars = name.chars().count();
    if chars > MAX_NAME_CHARS {
        return Err(format!(
            "name: must be at most {MAX_NAME_CHARS} characters, not {chars}"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name: must not contain control characters".into());
    }
    Ok(name.to_string())
}

#[derive(Debug, Clone, Serialize)]
pub struct VariantImport {
    pub content: String,
}

/// One record of an imported file: the variant it registered, or why it was refused.
#[derive(Debug)]
pub struct ImportedRecord {
    pub name: String,
    pub outcome: Result<VariantRow, ServiceError>,
}

/// Registers every valid antibody of a FASTA or CSV file (the formats of `veneer variants
/// import`) in one transaction; each invalid record is reported with its reason and blocks
/// none of the others. A file that is not FASTA or CSV at all is `InvalidRequest`.
pub async fn import_variants(
    store: &Store,
    org_id: &str,
    request: VariantImport,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&[ImportedRecord]) -> StoredResponse + Send + 'static,
) -> Result<Outcome, ServiceError> {
    let print = fingerprint(&request);
    let org = org_id.to_string();
    let key = idempotency.clone();
    with_reserved_key(store, org_id, print, idempotency, move || async move {
        let checked_org = org.clone();
        let records =
            tokio::task::spawn_blocking(move || check_import(&checked_org, &request.content))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
        let rows: Vec<VariantRow> = records
            .iter()
            .filter_map(|r| r.outcome.as_ref().ok().cloned())
            .collect();
        let response = render(&records);
        let stored = key
            .as_ref()
            .map(|idem| (scope_of(&org, idem), response.clone()));
        store.insert_variants(rows, stored).await?;
        Ok(response)
    })
    .await
}

fn check_import(org_id: &str, content: &str) -> Result<Vec<ImportedRecord>, ServiceError> {
    let records = crate::input::parse_antibodies(content, "content")
        .map_err(|e| ServiceError::InvalidRequest(e.to_string()))?;
    Ok(records
        .into_iter()
        .map(|record| {
            let outcome = (|| {
                let name = checked_name(&record.name).map_err(ServiceError::InvalidRequest)?;
                let (vh, vl) = record.chains.map_err(ServiceError::InvalidRequest)?;
                let (vh, vl, vl_type) = validate_chains(&vh, vl.as_deref())?;
                Ok(VariantRow {
                    id: new_id(),
                    org_id: org_id.to_string(),
                    name,
                    vh,
                    vl,
                    vl_chain_type: vl_type.map(str::to_string),
                    scfv: None,
                    created_at: now(),
                })
            })();
            ImportedRecord {
                name: record.name,
                outcome,
            }
        })
        .collect())
}

fn scope_of(org_id: &str, idem: &IdempotencyKey) -> IdempotencyScope {
    IdempotencyScope {
        org_id: org_id.to_string(),
        method: idem.method.to_string(),
        route: idem.route.to_string(),
        key: idem.key.clone(),
    }
}

async fn register_variant(
    store: &Store,
    org_id: String,
    request: NewVariant,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&VariantRow) -> StoredResponse + Send + 'static,
) -> Result<StoredResponse, ServiceError> {
    let name = checked_name(&request.name).map_err(ServiceError::InvalidRequest)?;
    // Numbering is CPU work: keep it off the async threads.
    let chains = tokio::task::spawn_blocking(move || check_variant(&request))
        .await
        .map_err(|e| StoreError::Task(e.to_string()))??;
    let row = VariantRow {
        id: new_id(),
        org_id,
        name,
        vh: chains.vh,
        vl: chains.vl,
        vl_chain_type: chains.vl_chain_type.map(str::to_string),
        scfv: chains.scfv,
        created_at: now(),
    };
    let response = render(&row);
    let stored = idempotency
        .as_ref()
        .map(|idem| (scope_of(&row.org_id, idem), response.clone()));
    store.insert_variants(vec![row], stored).await?;
    Ok(response)
}

/// The cleaned chains (upper case, no whitespace) and the light chain's type (`None` without a
/// light chain), or the engine's reason naming the chain (`VH: ...`).
pub fn validate_chains(
    vh: &str,
    vl: Option<&str>,
) -> Result<(String, Option<String>, Option<&'static str>), ServiceError> {
    let variant = Variant::new(vh, vl).map_err(|e| ServiceError::InvalidSequence(e.to_string()))?;
    let light = variant.vl.as_ref().map(|c| match c.chain_type {
        ChainType::L => "lambda",
        _ => "kappa",
    });
    // Variant::new has cleaned both already, so these cannot fail here.
    let text = |raw: &str| {
        clean(raw)
            .map(|r| r.into_iter().map(char::from).collect::<String>())
            .map_err(|e| ServiceError::InvalidSequence(e.to_string()))
    };
    Ok((text(vh)?, vl.map(text).transpose()?, light))
}

/// Submits a humanization: job, debit and idempotency record in one transaction. The rules
/// (the variant must exist, the balance must cover the cost, what the job runs on) are here;
/// the store runs them inside its transaction.
pub async fn submit_humanization(
    store: &Store,
    org_id: &str,
    request: NewHumanization,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&JobRow) -> StoredResponse + Send + 'static,
) -> Result<(Outcome, Option<String>), ServiceError> {
    let print = fingerprint(&request);
    let key = idempotency
        .as_ref()
        .map(|idem| key_use(org_id, idem, &print));
    let owner = org_id.to_string();
    let variant_id = request.variant_id.clone();
    let submitted = store
        .submit(org_id, &variant_id, key, move |variant, org| {
            let variant = variant.ok_or(ServiceError::NotFound)?;
            if org.balance() < humanization::COST {
                return Err(ServiceError::InsufficientCredits {
                    cost: humanization::COST,
                    balance: org.balance(),
                });
            }
            let snapshot = HumanizationSnapshot {
                variant_id: variant.id.clone(),
                name: variant.name.clone(),
                vh: variant.vh.clone(),
                vl: variant.vl.clone(),
                strategies: request.strategies.clone(),
            };
            let mut inputs = serde_json::json!({ "variant_id": variant.id });
            if let Some(designs) = &request.strategies {
                inputs["strategies"] = serde_json::Value::Array(designs.clone());
            }
            let job = JobRow {
                id: new_id(),
                org_id: owner.clone(),
                kind: humanization::KIND.into(),
                status: Status::Pending,
                stage: None,
                inputs: inputs.to_string(),
                snapshot: serde_json::to_string(&snapshot).unwrap_or_default(),
                credit_cost: humanization::COST,
                created_at: now(),
                started_at: None,
                finished_at: None,
                results: None,
                parental: None,
                error: None,
            };
            let response = render(&job);
            Ok(NewJob { job, response })
        })
        .await?;
    match submitted {
        Submitted::Created(new) => Ok((Outcome::Created(new.response), Some(new.job.id))),
        Submitted::Key(state) => match decided(state)? {
            Some(response) => Ok((Outcome::Replayed(response), None)),
            // A fresh key is taken inside the submit; it never comes back as a decision.
            None => Err(ServiceError::IdempotencyInProgress),
        },
        Submitted::Refused(e) => Err(e),
    }
}
