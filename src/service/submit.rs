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
use crate::engine::humanize::{OptionValue, Strategy, StrategySpec, Variant};
use crate::engine::scfv::split_scfv;
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
    db: &Arc<Db>,
    org_id: &str,
    request: NewVariant,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&VariantRow) -> StoredResponse + Send + 'static,
) -> Result<Outcome, ServiceError> {
    let print = fingerprint(&request);
    let org = org_id.to_string();
    let key = idempotency.clone();
    with_reserved_key(db, org_id, print, idempotency, move || {
        register_variant(db, org, request, key, render)
    })
    .await
}

/// Runs `create` under an idempotency key reserved in its own transaction first (numbering
/// happens outside the writer), so a concurrent request with the key sees the reservation.
/// `create` stores its response under the key in the transaction that creates its rows; a
/// `create` that fails releases the key, so a request that created nothing does not consume it.
async fn with_reserved_key<F, Fut>(
    db: &Arc<Db>,
    org_id: &str,
    print: String,
    idempotency: Option<IdempotencyKey>,
    create: F,
) -> Result<Outcome, ServiceError>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<StoredResponse, ServiceError>>,
{
    let org = org_id.to_string();
    if let Some(idem) = idempotency.clone() {
        let org = org.clone();
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
    let created = create().await;
    if created.is_err()
        && let Some(idem) = idempotency
    {
        db.write_async(move |tx| {
            requests::release_key(tx, &scope_of(&org, &idem)).map_err(StoreError::from)
        })
        .await?;
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
    db: &Arc<Db>,
    org_id: &str,
    request: VariantImport,
    idempotency: Option<IdempotencyKey>,
    render: impl Fn(&[ImportedRecord]) -> StoredResponse + Send + 'static,
) -> Result<Outcome, ServiceError> {
    let print = fingerprint(&request);
    let org = org_id.to_string();
    let key = idempotency.clone();
    with_reserved_key(db, org_id, print, idempotency, move || async move {
        let checked_org = org.clone();
        let records =
            tokio::task::spawn_blocking(move || check_import(&checked_org, &request.content))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
        db.write_async(move |tx| {
            for row in records.iter().filter_map(|r| r.outcome.as_ref().ok()) {
                variants::insert(tx, row)?;
            }
            let response = render(&records);
            if let Some(idem) = &key {
                requests::complete_key(tx, &scope_of(&org, idem), &response)?;
            }
            Ok::<_, ServiceError>(response)
        })
        .await
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

#[derive(Debug, Clone, Serialize)]
pub struct NewHumanization {
    pub variant_id: String,
    /// The designs asked for, in canonical form (`design_json`); `None`: every configured
    /// strategy with its defaults.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<serde_json::Value>>,
}

/// What a humanization job runs on, copied from the variant at submit.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct HumanizationSnapshot {
    pub variant_id: String,
    pub name: String,
    pub vh: String,
    /// `None` for a single-domain antibody.
    #[serde(default)]
    pub vl: Option<String>,
    /// The designs asked for (`design_json` objects); absent: the server's configured ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategies: Option<Vec<serde_json::Value>>,
}

/// The most designs one submit may ask for.
pub const MAX_DESIGNS: usize = 10;

/// Reads a submit's `strategies`: each an object with `name` and that strategy's options
/// (`{"name": "sapiens", "iterations": 2}`). Refusals name the entry and the option.
pub fn parse_designs(entries: &[serde_json::Value]) -> Result<Vec<StrategySpec>, ServiceError> {
    if entries.is_empty() {
        return Err(ServiceError::InvalidRequest(
            "strategies: give at least one, or leave the field out for every strategy".into(),
        ));
    }
    if entries.len() > MAX_DESIGNS {
        return Err(ServiceError::InvalidRequest(format!(
            "strategies: at most {MAX_DESIGNS} designs per submit, not {}",
            entries.len()
        )));
    }
    let mut designs: Vec<StrategySpec> = Vec::with_capacity(entries.len());
    for (i, entry) in entries.iter().enumerate() {
        let bad = |why: String| ServiceError::InvalidRequest(format!("strategies[{i}]: {why}"));
        let object = entry
            .as_object()
            .ok_or_else(|| bad("must be an object with a `name`".into()))?;
        let name = object
            .get("name")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| bad("`name` (a string) is required".into()))?;
        let strategy: Strategy = name.parse().map_err(bad)?;
        let options = object.iter().filter(|(k, _)| *k != "name").map(|(k, v)| {
            let value = match v {
                serde_json::Value::Bool(b) => OptionValue::Boolean(*b),
                serde_json::Value::Number(n) => {
                    n.as_i64().map_or(OptionValue::Other, OptionValue::Integer)
                }
                _ => OptionValue::Other,
            };
            (k.as_str(), value)
        });
        let spec = StrategySpec::with_options(strategy, options).map_err(bad)?;
        if designs.contains(&spec) {
            return Err(bad("the same design is listed twice".into()));
        }
        designs.push(spec);
    }
    Ok(designs)
}

/// A design as a JSON object with every option spelled out, as inputs and snapshots keep it.
pub fn design_json(spec: &StrategySpec) -> serde_json::Value {
    let mut object = serde_json::Map::new();
    object.insert("name".into(), spec.strategy.name().into());
    // Exactly the options this strategy takes, so the runner reads back what was accepted.
    if let Ok(serde_json::Value::Object(options)) = serde_json::to_value(spec.options()) {
        object.extend(options);
    }
    serde_json::Value::Object(object)
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
            strategies: request.strategies.clone(),
        };
        let mut inputs = serde_json::json!({ "variant_id": variant.id });
        if let Some(designs) = &request.strategies {
            inputs["strategies"] = serde_json::Value::Array(designs.clone());
        }
        let job = JobRow {
            id: new_id(),
            org_id: org_id.clone(),
            kind: HUMANIZATION.into(),
            status: Status::Pending,
            stage: None,
            inputs: inputs.to_string(),
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
