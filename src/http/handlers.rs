//! One function per endpoint. Each turns an authenticated request into a service call and the
//! result into a response; refusals go back as `ApiError` for `problem.rs` to render.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION, VARY};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::problem::{ApiError, already_reason};
use super::router::Endpoint;
use super::{App, Ctx, HttpResponse, views};
use crate::service::humanization::{self, KIND as HUMANIZATION, NewHumanization};
use crate::service::jobs::{self, Cancel};
use crate::service::submit::{self, IdempotencyKey, NewVariant, Outcome, VariantImport};
use crate::store::{JobRow, Status, StoredResponse};

/// `Prefer: wait` values above this are treated as this (SPEC §6).
const MAX_PREFER_WAIT: u64 = 120;
/// `GET /v1/jobs/{id}?wait=true` waits this long (SPEC §9).
const JOBS_WAIT: u64 = 30;
/// How long a cancel of a running humanization waits for its task to stop.
const CANCEL_WAIT: Duration = Duration::from_secs(5);

pub const OPENAPI: &str = include_str!("openapi.json");

fn respond(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> HttpResponse {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn json_response(status: StatusCode, value: &impl Serialize) -> HttpResponse {
    respond(status, "application/json", to_json(value))
}

/// The JSON text of a response body. Serializing our own views cannot fail (string keys,
/// finite numbers); if it ever did, the body would be `null` rather than a dropped request.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".into())
}

/// The routes without an API key: health, readiness, metrics, the OpenAPI document.
pub async fn operator(app: &Arc<App>, endpoint: Endpoint) -> Result<HttpResponse, ApiError> {
    match endpoint {
        Endpoint::Healthz => Ok(json_response(StatusCode::OK, &json!({ "status": "ok" }))),
        Endpoint::Readyz => {
            if app.shutdown.is_cancelled() {
                return Err(ApiError::Unavailable("The server is shutting down."));
            }
            app.store.ping().await?;
            Ok(json_response(StatusCode::OK, &json!({ "status": "ready" })))
        }
        Endpoint::Metrics => {
            let jobs = app.store.count_jobs().await?;
            let text = super::metrics::render(
                &app.requests,
                &jobs,
                &app.runner.durations.snapshot(),
                app.runner.is_paused(),
            );
            Ok(respond(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                text,
            ))
        }
        Endpoint::OpenApi => Ok(respond(StatusCode::OK, "application/json", OPENAPI)),
        _ => Err(ApiError::NotFound),
    }
}

/// Runs the endpoint's handler. Each handler's future is boxed: they differ in size by
/// kilobytes, and unboxed the largest would set the size of every request's future, which is
/// copied whole each time it moves.
pub async fn authenticated(
    app: &Arc<App>,
    endpoint: Endpoint,
    ctx: Ctx,
) -> Result<HttpResponse, ApiError> {
    match endpoint {
        Endpoint::GetOrganization => Box::pin(get_organization(app, &ctx)).await,
        Endpoint::ListLedger => Box::pin(list_ledger(app, &ctx)).await,
        Endpoint::ListVariants => Box::pin(list_variants(app, &ctx)).await,
        Endpoint::CreateVariant => Box::pin(create_variant(app, &ctx)).await,
        Endpoint::ImportVariants => Box::pin(import_variants(app, &ctx)).await,
        Endpoint::GetVariant => Box::pin(get_variant(app, &ctx)).await,
        Endpoint::DeleteVariant => Box::pin(delete_variant(app, &ctx)).await,
        Endpoint::ListHumanizations => Box::pin(list_jobs(app, &ctx, Some(HUMANIZATION))).await,
        Endpoint::SubmitHumanization => Box::pin(submit_humanization(app, &ctx)).await,
        Endpoint::GetHumanization => Box::pin(get_humanization(app, &ctx)).await,
        Endpoint::CancelHumanization => Box::pin(cancel_humanization(app, &ctx)).await,
        Endpoint::ExportHumanization => Box::pin(export_humanization(app, &ctx)).await,
        Endpoint::ListJobs => Box::pin(list_jobs(app, &ctx, None)).await,
        Endpoint::GetJob => Box::pin(get_job(app, &ctx)).await,
        Endpoint::CancelJob => Box::pin(cancel_job(app, &ctx)).await,
        Endpoint::Healthz
        | Endpoint::Readyz
        | Endpoint::Metrics
        | Endpoint::OpenApi
        | Endpoint::WebPage
        | Endpoint::WebAsset => operator(app, endpoint).await,
    }
}

// ---- request parsing ----

/// Parses a JSON body into `T`, naming the offending field in the error.
fn parse_body<T: DeserializeOwned>(body: Option<&Bytes>) -> Result<T, ApiError> {
    let bytes = body.map(|b| b.as_ref()).unwrap_or(b"");
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::InvalidRequest(
            "the request body is empty; send a JSON object".into(),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ApiError::InvalidRequest(if path == "." || path.is_empty() {
            format!("malformed JSON body: {inner}")
        } else {
            format!("{path}: {inner}")
        })
    })?;
    de.end()
        .map_err(|e| ApiError::InvalidRequest(format!("malformed JSON body: {e}")))?;
    Ok(value)
}

/// A UUID from a path, normalised; anything else cannot name a resource, so it is 404.
fn path_id(id: &str) -> Result<String, ApiError> {
    uuid::Uuid::parse_str(id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| ApiError::NotFound)
}

fn route_id(ctx: &Ctx) -> Result<String, ApiError> {
    use super::router::Route;
    match &ctx.route {
        Route::Variant(id)
        | Route::Humanization(id)
        | Route::HumanizationCancel(id)
        | Route::HumanizationExport(id)
        | Route::Job(id)
        | Route::JobCancel(id) => path_id(id),
        _ => Err(ApiError::NotFound),
    }
}

struct Page {
    limit: usize,
    starting_after: Option<String>,
}

fn page(ctx: &Ctx) -> Result<Page, ApiError> {
    let limit = match ctx.query("limit") {
        None => 20,
        Some(v) => match v.parse::<usize>() {
            Ok(n @ 1..=100) => n,
            _ => {
                return Err(ApiError::InvalidRequest(format!(
                    "limit: must be a whole number from 1 to 100, not {v:?}"
                )));
            }
        },
    };
    let starting_after = ctx
        .query("starting_after")
        .map(|v| {
            uuid::Uuid::parse_str(v)
                .map(|u| u.hyphenated().to_string())
                .map_err(|_| {
                    ApiError::InvalidRequest(format!("starting_after: {v:?} is not a UUID"))
                })
        })
        .transpose()?;
    Ok(Page {
        limit,
        starting_after,
    })
}

/// `Prefer: wait=N` (RFC 7240), capped at 120; other preferences are ignored.
fn prefer_wait(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    let mut wait = None;
    for value in headers.get_all("prefer") {
        let text = value
            .to_str()
            .map_err(|_| ApiError::InvalidRequest("Prefer: not visible ASCII".into()))?;
        for preference in text.split(',') {
            let token = preference.split(';').next().unwrap_or("").trim();
            let Some((name, v)) = token.split_once('=') else {
                continue;
            };
            if name.trim().eq_ignore_ascii_case("wait") {
                let seconds = v.trim().trim_matches('"').parse::<u64>().map_err(|_| {
                    ApiError::InvalidRequest(format!(
                        "Prefer: wait must be a whole number of seconds, not {:?}",
                        v.trim()
                    ))
                })?;
                wait = Some(seconds.min(MAX_PREFER_WAIT));
            }
        }
    }
    Ok(wait)
}

fn idempotency_key(
    app: &App,
    headers: &HeaderMap,
    route: &'static str,
) -> Result<Option<IdempotencyKey>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bad = |why: &str| ApiError::InvalidIdempotencyKey(format!("Idempotency-Key {why}"));
    let key = value.to_str().map_err(|_| bad("must be printable ASCII"))?;
    if key.is_empty() {
        return Err(bad("must not be empty"));
    }
    if key.len() > 255 {
        return Err(bad("must be at most 255 characters"));
    }
    if !key.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        return Err(bad("must be printable ASCII"));
    }
    Ok(Some(IdempotencyKey {
        key: key.to_string(),
        method: "POST",
        route,
        ttl: app.config.idempotency_ttl,
    }))
}

fn stored(status: StatusCode, value: &impl Serialize, location: Option<String>) -> StoredResponse {
    StoredResponse {
        status: status.as_u16(),
        body: to_json(value),
        location,
    }
}

fn from_stored(response: &StoredResponse, replayed: bool) -> HttpResponse {
    let status = StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK);
    let mut r = respond(status, "application/json", response.body.clone());
    if let Some(location) = response
        .location
        .as_deref()
        .and_then(|l| HeaderValue::from_str(l).ok())
    {
        r.headers_mut().insert(LOCATION, location);
    }
    if replayed {
        r.headers_mut()
            .insert("idempotent-replayed", HeaderValue::from_static("true"));
    }
    r
}

/// A create call's answer: the new response, or the first one replayed.
fn outcome_response(outcome: &Outcome) -> HttpResponse {
    match outcome {
        Outcome::Created(r) => from_stored(r, false),
        Outcome::Replayed(r) => from_stored(r, true),
    }
}

// ---- organization and credits ----

async fn get_organization(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let org = app
        .store
        .get_org(ctx.org_id())
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &views::organization(&org)))
}

async fn list_ledger(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let page = page(ctx)?;
    let mut rows = app
        .store
        .ledger_page(ctx.org_id(), page.starting_after.as_deref(), page.limit + 1)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::list(&mut rows, page.limit, views::ledger_entry),
    ))
}

// ---- variants ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateVariantBody {
    name: String,
    #[serde(default)]
    vh: Option<String>,
    /// `null` or absent: a single-domain antibody.
    #[serde(default)]
    vl: Option<String>,
    #[serde(default)]
    scfv: Option<String>,
}

async fn create_variant(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let body: CreateVariantBody = parse_body(ctx.body.as_ref())?;
    let idem = idempotency_key(app, &ctx.headers, "/v1/variants")?;
    let outcome = submit::create_variant(
        &app.store,
        ctx.org_id(),
        NewVariant {
            name: body.name,
            vh: body.vh,
            vl: body.vl,
            scfv: body.scfv,
        },
        idem,
        |row| {
            stored(
                StatusCode::CREATED,
                &views::variant(row),
                Some(format!("/v1/variants/{}", row.id)),
            )
        },
    )
    .await?;
    Ok(outcome_response(&outcome))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportVariantsBody {
    content: String,
}

async fn import_variants(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let body: ImportVariantsBody = parse_body(ctx.body.as_ref())?;
    let idem = idempotency_key(app, &ctx.headers, "/v1/variants/import")?;
    let outcome = submit::import_variants(
        &app.store,
        ctx.org_id(),
        VariantImport {
            content: body.content,
        },
        idem,
        |records| stored(StatusCode::OK, &views::variant_import(records), None),
    )
    .await?;
    Ok(outcome_response(&outcome))
}

async fn get_variant(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    let row = app
        .store
        .get_variant(ctx.org_id(), &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(json_response(StatusCode::OK, &views::variant(&row)))
}

async fn list_variants(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let page = page(ctx)?;
    let mut rows = app
        .store
        .page_variants(ctx.org_id(), page.starting_after.as_deref(), page.limit + 1)
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::list(&mut rows, page.limit, views::variant),
    ))
}

async fn delete_variant(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    if !app.store.delete_variant(ctx.org_id(), &id).await? {
        return Err(ApiError::NotFound);
    }
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::NO_CONTENT;
    Ok(r)
}

// ---- humanizations and jobs ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SubmitBody {
    variant_id: String,
    strategies: Option<Vec<Value>>,
}

fn with_vary(mut r: HttpResponse) -> HttpResponse {
    r.headers_mut()
        .insert(VARY, HeaderValue::from_static("Prefer"));
    r
}

fn applied(mut r: HttpResponse, wait: u64) -> HttpResponse {
    if let Ok(v) = HeaderValue::from_str(&format!("wait={wait}")) {
        r.headers_mut().insert("preference-applied", v);
    }
    r
}

async fn load_job(
    app: &Arc<App>,
    org_id: &str,
    id: &str,
    kind: Option<&'static str>,
) -> Result<JobRow, ApiError> {
    Ok(jobs::get(&app.store, org_id, id, kind).await?)
}

/// Long-polls until the job is terminal or `seconds` pass (or the server starts stopping).
async fn wait_for_terminal(
    app: &Arc<App>,
    org_id: &str,
    id: &str,
    kind: Option<&'static str>,
    seconds: u64,
) -> Result<JobRow, ApiError> {
    let events = app.runner.subscribe();
    Ok(
        jobs::wait_for_terminal(&app.store, events, &app.shutdown, org_id, id, kind, seconds)
            .await?,
    )
}

async fn submit_humanization(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let body: SubmitBody = parse_body(ctx.body.as_ref())?;
    let variant_id = uuid::Uuid::parse_str(&body.variant_id)
        .map(|u| u.hyphenated().to_string())
        .map_err(|_| {
            ApiError::InvalidRequest(format!("variant_id: {:?} is not a UUID", body.variant_id))
        })?;
    // Canonical form (every option spelled out), so two ways of writing one request share an
    // idempotency fingerprint and the job shows exactly what runs.
    let strategies = body
        .strategies
        .as_deref()
        .map(humanization::parse_designs)
        .transpose()?
        .map(|designs| designs.iter().map(humanization::design_json).collect());
    let wait = prefer_wait(&ctx.headers)?;
    let idem = idempotency_key(app, &ctx.headers, "/v1/humanizations")?;
    let (outcome, created) = submit::submit_humanization(
        &app.store,
        ctx.org_id(),
        NewHumanization {
            variant_id,
            strategies,
        },
        idem,
        |job| {
            stored(
                StatusCode::ACCEPTED,
                &views::job(job),
                Some(format!("/v1/humanizations/{}", job.id)),
            )
        },
    )
    .await?;
    let response = match (outcome, created) {
        // SPEC §7: a replay answers with the job as it now stands, honouring its own wait.
        (Outcome::Replayed(r), _) => match stored_job_id(&r) {
            Some(id) => {
                let mut r = job_as_it_stands(app, ctx, &id, wait).await?;
                r.headers_mut()
                    .insert("idempotent-replayed", HeaderValue::from_static("true"));
                r
            }
            None => from_stored(&r, true),
        },
        (Outcome::Created(r), Some(id)) => {
            app.runner.notify();
            match wait {
                Some(seconds) if seconds > 0 => job_as_it_stands(app, ctx, &id, wait).await?,
                _ => from_stored(&r, false),
            }
        }
        (Outcome::Created(r), None) => from_stored(&r, false),
    };
    Ok(with_vary(response))
}

/// The id of the job a stored submit response created.
fn stored_job_id(response: &StoredResponse) -> Option<String> {
    let body: serde_json::Value = serde_json::from_str(&response.body).ok()?;
    body.get("id")?.as_str().map(str::to_string)
}

/// A submitted job as it stands, after waiting up to `wait` seconds for it to end: `200`
/// when it is terminal, else `202`, with its `Location`.
async fn job_as_it_stands(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    wait: Option<u64>,
) -> Result<HttpResponse, ApiError> {
    let mut r = match wait {
        Some(seconds) if seconds > 0 => {
            let job = wait_for_terminal(app, ctx.org_id(), id, Some(HUMANIZATION), seconds).await?;
            if job.status.is_terminal() {
                applied(json_response(StatusCode::OK, &views::job(&job)), seconds)
            } else {
                json_response(StatusCode::ACCEPTED, &views::job(&job))
            }
        }
        _ => {
            let job = load_job(app, ctx.org_id(), id, Some(HUMANIZATION)).await?;
            let status = if job.status.is_terminal() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            json_response(status, &views::job(&job))
        }
    };
    if let Ok(v) = HeaderValue::from_str(&format!("/v1/humanizations/{id}")) {
        r.headers_mut().insert(LOCATION, v);
    }
    Ok(r)
}

async fn get_humanization(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    let wait = prefer_wait(&ctx.headers)?;
    let response = match wait {
        Some(seconds) if seconds > 0 => {
            let job =
                wait_for_terminal(app, ctx.org_id(), &id, Some(HUMANIZATION), seconds).await?;
            let r = json_response(StatusCode::OK, &views::job(&job));
            if job.status.is_terminal() {
                applied(r, seconds)
            } else {
                r
            }
        }
        _ => {
            let job = load_job(app, ctx.org_id(), &id, Some(HUMANIZATION)).await?;
            json_response(StatusCode::OK, &views::job(&job))
        }
    };
    Ok(with_vary(response))
}

/// A completed job's designs as a file (SPEC §6): FASTA, CSV or XLSX, as an attachment.
async fn export_humanization(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    let format = match ctx.query("format") {
        Some(name) => crate::export::Format::parse(name).ok_or_else(|| {
            ApiError::InvalidRequest(format!("format: {name:?} is not one of fasta, csv, xlsx"))
        })?,
        None => {
            return Err(ApiError::InvalidRequest(
                "format: give ?format=fasta, csv or xlsx".into(),
            ));
        }
    };
    let job = load_job(app, ctx.org_id(), &id, Some(HUMANIZATION)).await?;
    if job.status != Status::Completed {
        return Err(crate::service::ServiceError::NotCompleted(job.status).into());
    }
    let snapshot: humanization::HumanizationSnapshot =
        serde_json::from_str(&job.snapshot).map_err(|_| ApiError::Internal)?;
    let parse = |text: Option<&str>| {
        text.and_then(|t| serde_json::from_str::<Value>(t).ok())
            .unwrap_or(Value::Null)
    };
    let results = parse(job.results.as_deref());
    let parental = parse(job.parental.as_deref());
    let results = results.as_array().cloned().unwrap_or_default();
    let job_id = job.id.clone();
    let name = snapshot.name.clone();
    // XLSX for a long job is real work: off the async threads.
    let body = tokio::task::spawn_blocking(move || {
        let antibody = crate::export::Antibody {
            name: &name,
            job_id: Some(&job_id),
            parental: &parental,
            results: &results,
        };
        format.write(&[antibody])
    })
    .await
    .map_err(|_| ApiError::Internal)?
    .map_err(|e| {
        tracing::error!(error = %e, "export failed");
        ApiError::Internal
    })?;
    let mut r = respond(StatusCode::OK, format.content_type(), body);
    let disposition = format!(
        "attachment; filename=\"{}-{}.{}\"",
        crate::export::file_stem(&snapshot.name),
        &job.id[job.id.len() - 8..],
        format.extension()
    );
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        r.headers_mut().insert(http::header::CONTENT_DISPOSITION, v);
    }
    Ok(r)
}

async fn get_job(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    let wait = match ctx.query("wait") {
        None | Some("false") => false,
        Some("true") => true,
        Some(v) => {
            return Err(ApiError::InvalidRequest(format!(
                "wait: must be true or false, not {v:?}"
            )));
        }
    };
    let job = if wait {
        wait_for_terminal(app, ctx.org_id(), &id, None, JOBS_WAIT).await?
    } else {
        load_job(app, ctx.org_id(), &id, None).await?
    };
    Ok(json_response(StatusCode::OK, &views::job(&job)))
}

async fn list_jobs(
    app: &Arc<App>,
    ctx: &Ctx,
    kind: Option<&'static str>,
) -> Result<HttpResponse, ApiError> {
    let page = page(ctx)?;
    let status = ctx
        .query("status")
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "status: must be one of pending, running, completed, failed, canceled, not {s:?}"
                ))
            })
        })
        .transpose()?;
    let kind = match (kind, ctx.query("object")) {
        (Some(kind), _) => Some(kind),
        (None, None) => None,
        (None, Some(HUMANIZATION)) => Some(HUMANIZATION),
        (None, Some(other)) => {
            return Err(ApiError::InvalidRequest(format!(
                "object: unknown job kind {other:?}; known: {HUMANIZATION}"
            )));
        }
    };
    let mut rows = app
        .store
        .page_jobs(
            ctx.org_id(),
            kind,
            status,
            page.starting_after.as_deref(),
            page.limit + 1,
        )
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &views::list(&mut rows, page.limit, views::job),
    ))
}

/// Cancels the job and tells this node's runner: long polls wake for a pending job ended now;
/// a running one held here has its token fired at once (the receiver turns true once its
/// task has stopped). A job running on another node hears of it from the database.
async fn cancel(
    app: &Arc<App>,
    ctx: &Ctx,
    id: &str,
    kind: Option<&'static str>,
) -> Result<(Cancel, Option<tokio::sync::watch::Receiver<bool>>), crate::service::ServiceError> {
    let outcome = jobs::cancel(&app.store, ctx.org_id(), id, kind).await?;
    let done = match outcome {
        Cancel::Canceled(_) => {
            app.runner.notify_ended();
            None
        }
        Cancel::Requested => app.runner.signal(id),
    };
    Ok((outcome, done))
}

async fn cancel_humanization(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    let job = match cancel(app, ctx, &id, Some(HUMANIZATION)).await? {
        // The cancel's own transaction read the job back: no second read.
        (Cancel::Canceled(job), _) => *job,
        // Bounded: the task notices its token between stages, or abandons an engine step at
        // once, so it normally stops within milliseconds (on another node: within a
        // notification's delivery, a heartbeat at worst).
        (Cancel::Requested, Some(mut done)) => {
            let _ = tokio::time::timeout(CANCEL_WAIT, done.wait_for(|stopped| *stopped)).await;
            load_job(app, ctx.org_id(), &id, Some(HUMANIZATION)).await?
        }
        (Cancel::Requested, None) => {
            wait_for_terminal(
                app,
                ctx.org_id(),
                &id,
                Some(HUMANIZATION),
                CANCEL_WAIT.as_secs(),
            )
            .await?
        }
    };
    Ok(json_response(StatusCode::OK, &views::job(&job)))
}

async fn cancel_job(app: &Arc<App>, ctx: &Ctx) -> Result<HttpResponse, ApiError> {
    let id = route_id(ctx)?;
    match cancel(app, ctx, &id, None).await {
        Ok(_) => Ok(json_response(
            StatusCode::ACCEPTED,
            &json!({ "job_id": id, "accepted": true }),
        )),
        Err(crate::service::ServiceError::AlreadyTerminal(status)) => Ok(json_response(
            StatusCode::OK,
            &json!({ "job_id": id, "accepted": false, "reason": already_reason(status) }),
        )),
        Err(e) => Err(e.into()),
    }
}
