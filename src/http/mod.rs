//! The HTTP API on hyper 1 with a hand-rolled router: request ids, auth, scopes, rate limits and
//! quota, body limits, problem+json, one structured log line per request. Handlers live in
//! `handlers.rs`; statuses and headers are decided only in this module tree.

pub mod handlers;
pub mod limits;
pub mod metrics;
pub mod problem;
pub mod router;
pub mod views;
pub mod web;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, X_CONTENT_TYPE_OPTIONS};
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runner::Runner;
use crate::service::{jobs, keys};
use crate::store::charge::{self, Counted, WriteCharge};
use crate::store::{ApiKey, Store};
use limits::{Decision, RateLimiter};
use problem::ApiError;
use router::{CostClass, Endpoint, Route};

/// Request bodies above this are refused with 413 (SPEC §1).
pub const BODY_LIMIT: usize = 1024 * 1024;
/// How long a request body may take to arrive.
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a connection may take to send a complete request head (also how long an idle
/// connection is kept before its first request), so stalled or silent clients let go of their
/// socket and buffer.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// The most a connection may buffer while reading: bounds a request head (request line and
/// headers) to 32 KiB, answered 431 above it. hyper's default (~400 KiB) would let each
/// connection hold that much for a head no client of this API needs; bodies are streamed
/// through the buffer and limited separately (`BODY_LIMIT`).
const MAX_BUF_SIZE: usize = 32 * 1024;

pub struct Config {
    pub rate_limiter: RateLimiter,
    pub daily_write_quota: i64,
    pub idempotency_ttl: Duration,
}

/// Everything a request can reach.
pub struct App {
    pub store: Store,
    pub runner: Arc<Runner>,
    pub config: Config,
    pub requests: metrics::RequestCounters,
    /// Cancelled when the server starts shutting down: long polls return, new requests get 503.
    pub shutdown: CancellationToken,
    /// Keys write requests may take from memory, each confirmed by the request's count.
    pub keys: keys::KeyCache,
}

/// An authenticated request's context.
pub struct Ctx {
    pub key: ApiKey,
    pub route: Route,
    pub path: String,
    pub headers: HeaderMap,
    pub query: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

impl Ctx {
    pub fn org_id(&self) -> &str {
        &self.key.org_id
    }

    pub fn query(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

pub type HttpResponse = Response<Full<Bytes>>;

/// Accepts connections until `shutdown`, then lets in-flight requests finish (bounded).
///
/// Each connection is served start to end on one of `lanes` (round robin): single-threaded
/// runtimes, one thread each, so a request's tasks never wake or park another API thread
/// (work stealing between API threads cost a third of each request's CPU on two cores). With
/// no lanes, connections are served on the calling runtime.
pub async fn serve(
    app: Arc<App>,
    listener: TcpListener,
    lanes: Vec<tokio::runtime::Handle>,
    shutdown: CancellationToken,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut turn = 0usize;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(e) => {
                // Usually EMFILE; back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let (app, watcher) = (Arc::clone(&app), graceful.watcher());
        if lanes.is_empty() {
            tokio::spawn(serve_connection(app, stream, peer, watcher));
            continue;
        }
        // A socket belongs to the runtime that registered it: handed over as a std socket
        // (still non-blocking) and registered again on its lane.
        let stream = match stream.into_std() {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(error = %e, "could not hand a connection to an API thread");
                continue;
            }
        };
        let lane = &lanes[turn % lanes.len()];
        turn = turn.wrapping_add(1);
        lane.spawn(async move {
            match tokio::net::TcpStream::from_std(stream) {
                Ok(stream) => serve_connection(app, stream, peer, watcher).await,
                Err(e) => tracing::warn!(error = %e, "could not register a connection"),
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(10), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections were still open after 10 s");
    }
}

/// One connection's requests, until the client closes it or the server shuts down.
async fn serve_connection(
    app: Arc<App>,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    watcher: hyper_util::server::graceful::Watcher,
) {
    let service = service_fn(move |req| {
        let app = Arc::clone(&app);
        async move { Ok::<_, Infallible>(handle(app, req, peer).await) }
    });
    let connection = http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_BUF_SIZE)
        .serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

fn static_method(method: &http::Method) -> &'static str {
    match method.as_str() {
        "GET" => "GET",
        "POST" => "POST",
        "DELETE" => "DELETE",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "HEAD" => "HEAD",
        _ => "OTHER",
    }
}

/// A client's request id is echoed when it is short, visible ASCII; otherwise a new one.
fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 128 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_string)
        .unwrap_or_else(|| {
            let mut id = String::with_capacity(36);
            id.push_str("req_");
            id.push_str(
                uuid::Uuid::now_v7()
                    .simple()
                    .encode_lower(&mut uuid::Uuid::encode_buffer()),
            );
            id
        })
}

/// Response headers every request may carry, named once (a name given as text is parsed and
/// hashed again at each insert).
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
const X_RATELIMIT_RESET: HeaderName = HeaderName::from_static("x-ratelimit-reset");

async fn handle(app: Arc<App>, req: Request<Incoming>, peer: SocketAddr) -> HttpResponse {
    let started = Instant::now();
    let request_id = request_id(req.headers());
    let method = static_method(req.method());
    let path = req.uri().path().to_string();
    let route = Route::resolve(&path);
    let template = route.as_ref().map_or("unmatched", Route::template);
    // A bug that panics in a handler still gets a problem+json 500 (and a log line) instead
    // of a dropped connection: the panic is caught here, on the connection's own task (no
    // task per request to schedule and wake).
    let dispatched = {
        use futures_util::FutureExt;
        std::panic::AssertUnwindSafe(dispatch(&app, req, route, &path))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| {
                tracing::error!(request_id, "request handler panicked");
                Err((ApiError::Internal, None))
            })
    };
    let (mut response, limit) = match dispatched {
        Ok((response, limit)) => (response, limit),
        Err((e, limit)) => (e.into_response(&path, &request_id), limit),
    };
    let headers = response.headers_mut();
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(X_REQUEST_ID, v);
    }
    if let Some(d) = limit {
        headers.insert(X_RATELIMIT_LIMIT, HeaderValue::from(d.limit));
        headers.insert(X_RATELIMIT_REMAINING, HeaderValue::from(d.remaining));
        headers.insert(X_RATELIMIT_RESET, HeaderValue::from(d.reset));
    }
    let status = response.status().as_u16();
    app.requests.record(method, template, status);
    tracing::info!(
        request_id,
        method,
        route = template,
        path,
        status,
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        peer = %peer,
        "request"
    );
    response
}

type Dispatched = Result<(HttpResponse, Option<Decision>), (ApiError, Option<Decision>)>;

async fn dispatch(
    app: &Arc<App>,
    req: Request<Incoming>,
    route: Option<Route>,
    path: &str,
) -> Dispatched {
    let route = route.ok_or((ApiError::NotFound, None))?;
    let endpoint = route.endpoint(req.method()).map_err(|e| (e, None))?;
    match (&route, endpoint) {
        (Route::WebPage, _) => return Ok((web::page(req.headers()), None)),
        (Route::WebAsset(name), _) => {
            return web::asset(name, req.headers())
                .map(|r| (r, None))
                .map_err(|e| (e, None));
        }
        _ => {}
    }
    if !endpoint.authenticated() {
        return handlers::operator(app, endpoint)
            .await
            .map(|r| (r, None))
            .map_err(|e| (e, None));
    }
    if app.shutdown.is_cancelled() {
        return Err((ApiError::Unavailable("The server is shutting down."), None));
    }
    // Boxed, as the handlers are (handlers::authenticated): a future passed by value is copied
    // whole at each layer it passes through.
    let request = Box::pin(keyed(app, req, route, endpoint, path));
    match endpoint.class() {
        CostClass::Read => app.store.reads_together(request).await,
        CostClass::Write => request.await,
    }
}

/// A request that needs a key: its key, rate limit, scope, quota and handler.
async fn keyed(
    app: &Arc<App>,
    req: Request<Incoming>,
    route: Route,
    endpoint: Endpoint,
    path: &str,
) -> Dispatched {
    let secret = presented_secret(req.headers()).ok_or((ApiError::Unauthenticated, None))?;
    // A write request may take its key from memory: its quota count confirms the key live in
    // the transaction of its first write (service::keys::KeyCache).
    let writes = endpoint.class() == CostClass::Write;
    let presented = app
        .keys
        .authenticate(&app.store, &secret, writes)
        .await
        .map_err(|e| (e.into(), None))?
        .ok_or((ApiError::Unauthenticated, None))?;
    // Rate limits apply to every authenticated request, before its scope is even checked, so
    // a key cannot probe routes for free.
    let decision = app
        .config
        .rate_limiter
        .take(&presented.key.id, endpoint.class());
    let limit = Some(decision);
    let refusal = if !decision.allowed {
        Some(ApiError::RateLimited {
            retry_after: decision.retry_after,
        })
    } else {
        endpoint
            .scope()
            .filter(|scope| !keys::has_scope(&presented.key, scope))
            .map(ApiError::Forbidden)
    };
    if let Some(refusal) = refusal {
        // Refused before any count: a key from memory is read again, so a revoked one hears
        // 401 rather than what it would have heard while live.
        return match app.keys.confirm(&app.store, &presented).await {
            Ok(true) => Err((refusal, limit)),
            Ok(false) => Err((ApiError::Unauthenticated, None)),
            Err(e) => Err((e.into(), limit)),
        };
    }
    // Every write request counts against the daily quota, and over it answers 429 whatever
    // else it would have answered. Where the store counts it in the request's first write
    // (store::charge), only a request that wrote nothing is counted here, afterwards.
    let charge = writes.then(|| jobs::write_charge(&presented.key, app.config.daily_write_quota));
    let key = presented.key.clone();
    // Boxed like the handlers; a future does nothing until awaited, so it is made once here.
    let handler = Box::pin(authorized(app, endpoint, key, route, path, req));
    let handled = match charge {
        Some(charge) if app.store.counts_in_writes() => {
            let (handled, owed) = charge::owing(charge, handler).await;
            match owed {
                Some(owed) => count_write(app, &owed).await.and(handled),
                None => handled,
            }
        }
        Some(charge) => match count_write(app, &charge).await {
            Ok(()) => handler.await,
            Err(e) => Err(e),
        },
        None => handler.await,
    };
    match handled {
        Ok(response) => Ok((response, limit)),
        // The count found the key revoked: no rate-limit headers for a key that is gone.
        Err(ApiError::Unauthenticated) => {
            app.keys.forget(&presented);
            Err((ApiError::Unauthenticated, None))
        }
        Err(e) => Err((e, limit)),
    }
}

/// An authenticated request past its rate limit, scope and quota: its query, its body, its
/// handler.
async fn authorized(
    app: &Arc<App>,
    endpoint: Endpoint,
    key: ApiKey,
    route: Route,
    path: &str,
    req: Request<Incoming>,
) -> Result<HttpResponse, ApiError> {
    let query = parse_query(req.uri().query(), endpoint)?;
    let (parts, body) = req.into_parts();
    let body = if endpoint.has_body() {
        Some(read_json_body(&parts.headers, body).await?)
    } else {
        None
    };
    let ctx = Ctx {
        key,
        route,
        path: path.to_string(),
        headers: parts.headers,
        query,
        body,
    };
    handlers::authenticated(app, endpoint, ctx).await
}

/// The key a request presents: `Authorization: Bearer …`, else `X-API-Key`.
fn presented_secret(headers: &HeaderMap) -> Option<String> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    bearer
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .map(|s| s.trim().to_string())
}

/// Counts a write request in a transaction of its own: `429` over the quota, `401` if its
/// key has been revoked meanwhile.
async fn count_write(app: &Arc<App>, charge: &WriteCharge) -> Result<(), ApiError> {
    match jobs::count_write(&app.store, charge).await? {
        Counted::Within => Ok(()),
        Counted::OverQuota => Err(ApiError::QuotaExceeded {
            retry_after: jobs::seconds_to_utc_midnight(),
            quota: charge.quota,
        }),
        Counted::KeyGone => Err(ApiError::Unauthenticated),
    }
}

fn parse_query(query: Option<&str>, endpoint: Endpoint) -> Result<Vec<(String, String)>, ApiError> {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    let allowed = endpoint.query_params();
    for (name, _) in &pairs {
        if !allowed.contains(&name.as_str()) {
            return Err(ApiError::InvalidRequest(if allowed.is_empty() {
                format!("unknown query parameter `{name}`; this route takes none")
            } else {
                format!(
                    "unknown query parameter `{name}`; this route takes {}",
                    allowed.join(", ")
                )
            }));
        }
    }
    for (i, (name, _)) in pairs.iter().enumerate() {
        if pairs[..i].iter().any(|(n, _)| n == name) {
            return Err(ApiError::InvalidRequest(format!(
                "query parameter `{name}` is given twice"
            )));
        }
    }
    Ok(pairs)
}

async fn read_json_body(headers: &HeaderMap, body: Incoming) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    let is_json = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .eq_ignore_ascii_case("application/json")
        })
        .unwrap_or(false);
    if !is_json {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A client that trickles its body must not hold a connection (and a handler) forever.
    let collected = tokio::time::timeout(BODY_TIMEOUT, Limited::new(body, BODY_LIMIT).collect())
        .await
        .map_err(|_| {
            ApiError::InvalidRequest(format!(
                "the request body did not arrive within {} s",
                BODY_TIMEOUT.as_secs()
            ))
        })?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::PayloadTooLarge)
        }
        Err(e) => Err(ApiError::InvalidRequest(format!(
            "the request body could not be read: {e}"
        ))),
    }
}
