//! The JSON shapes of resources, as the API renders them.

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use crate::service::ServiceError;
use crate::service::submit::ImportedRecord;
use crate::store::{JobRow, LedgerEntry, Organization, Status, VariantRow};

fn parsed(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// Stored JSON text as it is, or `null` if it is missing or not JSON: written into the
/// response without being parsed into a tree and rendered again.
fn raw(text: Option<&str>) -> Option<&RawValue> {
    text.and_then(|t| serde_json::from_str(t).ok())
}

/// The job envelope shared by every job kind (SPEC §6, §9), serialized straight from the row.
#[derive(Serialize)]
pub struct Job<'a> {
    id: &'a str,
    object: &'a str,
    status: &'static str,
    stage: Option<&'a str>,
    created_at: &'a str,
    started_at: Option<&'a str>,
    completed_at: Option<&'a str>,
    failed_at: Option<&'a str>,
    canceled_at: Option<&'a str>,
    credit_cost: i64,
    inputs: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
    results: Option<&'a RawValue>,
    parental: Option<&'a RawValue>,
}

pub fn job<'a>(job: &'a JobRow) -> Job<'a> {
    // A field that applies in one status only is `null` in every other.
    let only = |status: Status, text: Option<&'a str>| text.filter(|_| job.status == status);
    Job {
        id: &job.id,
        object: &job.kind,
        status: job.status.name(),
        stage: only(Status::Running, job.stage.as_deref()),
        created_at: &job.created_at,
        started_at: job.started_at.as_deref(),
        completed_at: only(Status::Completed, job.finished_at.as_deref()),
        failed_at: only(Status::Failed, job.finished_at.as_deref()),
        canceled_at: only(Status::Canceled, job.finished_at.as_deref()),
        credit_cost: job.credit_cost,
        inputs: raw(Some(&job.inputs)),
        error: raw(only(Status::Failed, job.error.as_deref())),
        results: raw(only(Status::Completed, job.results.as_deref())),
        parental: raw(only(Status::Completed, job.parental.as_deref())),
    }
}

pub fn variant(v: &VariantRow) -> Value {
    json!({
        "id": v.id,
        "object": "variant",
        "name": v.name,
        "vh": v.vh,
        "vl": v.vl,
        "vl_chain_type": v.vl_chain_type,
        "scfv": parsed(v.scfv.as_deref()),
        "created_at": v.created_at,
    })
}

pub fn organization(org: &Organization) -> Value {
    json!({
        "id": org.id,
        "object": "organization",
        "name": org.name,
        "credit_balance": org.balance(),
        "buckets": { "subscription": org.subscription, "purchased": org.purchased },
        "created_at": org.created_at,
    })
}

pub fn ledger_entry(e: &LedgerEntry) -> Value {
    json!({
        "id": e.id,
        "object": "ledger_entry",
        "bucket": e.bucket,
        "delta": e.delta,
        "reason": e.reason,
        "job_id": e.job_id,
        "created_at": e.created_at,
    })
}

/// A page of a list, serialized as `{"object": "list", "data": […], "has_more": …}`.
#[derive(Serialize)]
pub struct List<R> {
    object: &'static str,
    data: Vec<R>,
    has_more: bool,
}

/// A page of a list: `limit + 1` rows were fetched so `has_more` needs no second query. Each
/// row is rendered by `render`, which may borrow from it (a job's stored JSON is written out
/// as it is).
pub fn list<'a, T, R: Serialize>(
    rows: &'a mut Vec<T>,
    limit: usize,
    render: impl Fn(&'a T) -> R,
) -> List<R> {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    let rows: &'a Vec<T> = rows;
    List {
        object: "list",
        data: rows.iter().map(render).collect(),
        has_more,
    }
}

/// What `POST /v1/variants/import` made of each record of the file, in file order.
pub fn variant_import(records: &[ImportedRecord]) -> Value {
    let created = records.iter().filter(|r| r.outcome.is_ok()).count();
    let data: Vec<Value> = records
        .iter()
        .enumerate()
        .map(|(i, r)| match &r.outcome {
            Ok(row) => json!({
                "index": i,
                "name": r.name,
                "status": "created",
                "variant": variant(row),
                "error": Value::Null,
            }),
            Err(e) => {
                let code = match e {
                    ServiceError::InvalidSequence(_) => "invalid_sequence",
                    _ => "invalid_request",
                };
                json!({
                    "index": i,
                    "name": r.name,
                    "status": "failed",
                    "variant": Value::Null,
                    "error": { "code": code, "detail": e.to_string() },
                })
            }
        })
        .collect();
    json!({
        "object": "variant_import",
        "created": created,
        "failed": records.len() - created,
        "records": data,
    })
}
