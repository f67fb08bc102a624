//! The JSON shapes of resources, as the API renders them.

use serde_json::{Value, json};

use crate::service::ServiceError;
use crate::service::submit::ImportedRecord;
use crate::store::{JobRow, LedgerEntry, Organization, Status, VariantRow};

fn parsed(text: Option<&str>) -> Value {
    text.and_then(|t| serde_json::from_str(t).ok())
        .unwrap_or(Value::Null)
}

/// The job envelope shared by every job kind (SPEC §6, §9).
pub fn job(job: &JobRow) -> Value {
    let finished_if = |status: Status| {
        if job.status == status {
            json!(job.finished_at)
        } else {
            Value::Null
        }
    };
    json!({
        "id": job.id,
        "object": job.kind,
        "status": job.status.name(),
        "stage": if job.status == Status::Running { json!(job.stage) } else { Value::Null },
        "created_at": job.created_at,
        "started_at": job.started_at,
        "completed_at": finished_if(Status::Completed),
        "failed_at": finished_if(Status::Failed),
        "canceled_at": finished_if(Status::Canceled),
        "credit_cost": job.credit_cost,
        "inputs": parsed(Some(&job.inputs)),
        "error": if job.status == Status::Failed { parsed(job.error.as_deref()) } else { Value::Null },
        "results": if job.status == Status::Completed { parsed(job.results.as_deref()) } else { Value::Null },
        "parental": if job.status == Status::Completed { parsed(job.parental.as_deref()) } else { Value::Null },
    })
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

/// A page of a list: `limit + 1` rows were fetched so `has_more` needs no second query.
pub fn list<T>(mut rows: Vec<T>, limit: usize, render: impl Fn(&T) -> Value) -> Value {
    let has_more = rows.len() > limit;
    rows.truncate(limit);
    json!({
        "object": "list",
        "data": rows.iter().map(render).collect::<Vec<_>>(),
        "has_more": has_more,
    })
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
