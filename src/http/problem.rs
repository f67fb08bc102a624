//! Errors as `application/problem+json` (RFC 9457). [`ApiError::into_response`] is the ONE place
//! that turns any refusal or failure into a status, a stable `code` and headers.

use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde_json::{Value, json};

use crate::service::ServiceError;
use crate::store::{Status, StoreError};

#[derive(Debug)]
pub enum ApiError {
    Service(ServiceError),
    InvalidRequest(String),
    InvalidIdempotencyKey(String),
    Unauthenticated,
    Forbidden(&'static str),
    NotFound,
    MethodNotAllowed(&'static [&'static str]),
    PayloadTooLarge,
    UnsupportedMediaType,
    RateLimited {
        retry_after: u64,
    },
    QuotaExceeded {
        retry_after: u64,
        quota: i64,
    },
    Unavailable(&'static str),
    /// A bug; its cause is logged, never sent.
    Internal,
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Store(e) => e.into(),
            e => ApiError::Service(e),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // A write refused for the quota it counts in its own transaction (store::charge).
            StoreError::QuotaExceeded { quota } => ApiError::QuotaExceeded {
                retry_after: crate::service::jobs::seconds_to_utc_midnight(),
                quota,
            },
            // A key revoked since the request was authenticated (store::charge).
            StoreError::KeyRevoked => ApiError::Unauthenticated,
            e => ApiError::Service(ServiceError::Store(e)),
        }
    }
}

/// The parts of a problem besides the standard members.
struct Problem {
    status: StatusCode,
    code: &'static str,
    title: &'static str,
    detail: String,
    extra: Vec<(&'static str, Value)>,
}

impl ApiError {
    fn problem(&self) -> Problem {
        let p = |status, code, title, detail: String| Problem {
            status,
            code,
            title,
            detail,
            extra: Vec::new(),
        };
        match self {
            ApiError::InvalidRequest(detail) => p(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "Invalid request",
                detail.clone(),
            ),
            ApiError::InvalidIdempotencyKey(detail) => p(
                StatusCode::BAD_REQUEST,
                "invalid_idempotency_key",
                "Invalid idempotency key",
                detail.clone(),
            ),
            ApiError::Unauthenticated => p(
                StatusCode::UNAUTHORIZED,
                "unauthenticated",
                "Unauthenticated",
                "Send a valid, unrevoked API key as `Authorization: Bearer <key>` or \
                 `x-api-key: <key>`."
                    .into(),
            ),
            ApiError::Forbidden(scope) => p(
                StatusCode::FORBIDDEN,
                "forbidden",
                "Forbidden",
                format!("This API key lacks the scope `{scope}` this route needs."),
            ),
            ApiError::NotFound => p(
                StatusCode::NOT_FOUND,
                "not_found",
                "Not found",
                "No such resource.".into(),
            ),
            ApiError::MethodNotAllowed(allowed) => p(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "Method not allowed",
                format!("This path accepts {}.", allowed.join(", ")),
            ),
            ApiError::PayloadTooLarge => p(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "Payload too large",
                format!("Request bodies are limited to {} bytes.", super::BODY_LIMIT),
            ),
            ApiError::UnsupportedMediaType => p(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "Unsupported media type",
                "Send the body as `Content-Type: application/json`.".into(),
            ),
            ApiError::RateLimited { retry_after } => p(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                "Rate limited",
                format!("Too many requests for this API key; retry in {retry_after} s."),
            ),
            ApiError::QuotaExceeded { retry_after, quota } => p(
                StatusCode::TOO_MANY_REQUESTS,
                "quota_exceeded",
                "Quota exceeded",
                format!(
                    "The organization has used its {quota} writes for today (UTC); \
                     the quota resets in {retry_after} s."
                ),
            ),
            ApiError::Unavailable(why) => p(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "Service unavailable",
                (*why).to_string(),
            ),
            ApiError::Internal => p(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "Internal error",
                "Something went wrong on our side; the request id identifies it in the logs."
                    .into(),
            ),
            ApiError::Service(e) => match e {
                ServiceError::NotFound => ApiError::NotFound.problem(),
                ServiceError::InvalidRequest(detail) => p(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "Invalid request",
                    detail.clone(),
                ),
                ServiceError::InvalidSequence(detail) => p(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "invalid_sequence",
                    "Invalid sequence",
                    detail.clone(),
                ),
                ServiceError::InsufficientCredits { cost, balance } => Problem {
                    extra: vec![
                        ("credit_cost", json!(cost)),
                        ("credit_balance", json!(balance)),
                    ],
                    ..p(
                        StatusCode::PAYMENT_REQUIRED,
                        "insufficient_credits",
                        "Insufficient credits",
                        format!(
                            "Humanization costs {cost} credit{}; the organization has {balance}.",
                            if *cost == 1 { "" } else { "s" }
                        ),
                    )
                },
                // RFC 9457 reserves `status` for the HTTP status, so the job's goes beside it.
                ServiceError::AlreadyTerminal(status) => Problem {
                    extra: vec![("job_status", json!(status.name()))],
                    ..p(
                        StatusCode::CONFLICT,
                        "conflict",
                        "Conflict",
                        format!("The job is already {}.", status.name()),
                    )
                },
                ServiceError::NotCompleted(status) => Problem {
                    extra: vec![("job_status", json!(status.name()))],
                    ..p(
                        StatusCode::CONFLICT,
                        "conflict",
                        "Conflict",
                        format!(
                            "The job is {}; only a completed job has designs to export.",
                            status.name()
                        ),
                    )
                },
                ServiceError::CancelUnavailable(stage) => Problem {
                    extra: vec![("stage", json!(stage))],
                    ..p(
                        StatusCode::CONFLICT,
                        "job_cancel_unavailable",
                        "Job cannot be canceled during this stage",
                        format!("The job is in stage `{stage}`, which refuses cancellation."),
                    )
                },
                ServiceError::IdempotencyMismatch => p(
                    StatusCode::CONFLICT,
                    "idempotency_mismatch",
                    "Idempotency key reused",
                    "This Idempotency-Key was first used with a different request body.".into(),
                ),
                ServiceError::IdempotencyInProgress => p(
                    StatusCode::CONFLICT,
                    "idempotency_in_progress",
                    "Idempotency key in use",
                    "The first request with this Idempotency-Key is still being processed; \
                     retry shortly to get its response."
                        .into(),
                ),
                ServiceError::Store(e) => {
                    // The cause goes to the log, never to the client.
                    tracing::error!(error = %e, "store failure");
                    p(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "unavailable",
                        "Service unavailable",
                        "The database is unreachable; retry shortly.".into(),
                    )
                }
            },
        }
    }

    /// The problem+json response for this error.
    pub fn into_response(self, instance: &str, request_id: &str) -> Response<Full<Bytes>> {
        let problem = self.problem();
        let mut body = json!({
            "type": format!("/problems/{}", problem.code),
            "title": problem.title,
            "status": problem.status.as_u16(),
            "detail": problem.detail,
            "instance": instance,
            "code": problem.code,
            "request_id": request_id,
        });
        if let Some(map) = body.as_object_mut() {
            for (k, v) in problem.extra {
                map.insert(k.to_string(), v);
            }
        }
        let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
        *response.status_mut() = problem.status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            ApiError::Unauthenticated => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::MethodNotAllowed(allowed) => {
                if let Ok(v) = HeaderValue::from_str(&allowed.join(", ")) {
                    headers.insert(ALLOW, v);
                }
            }
            ApiError::RateLimited { retry_after } | ApiError::QuotaExceeded { retry_after, .. } => {
                headers.insert(RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            // Both pass on their own within a moment: say when to come back (RFC 9110 §10.2.3).
            ApiError::Service(ServiceError::IdempotencyInProgress)
            | ApiError::Unavailable(_)
            | ApiError::Service(ServiceError::Store(_)) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(1u64));
            }
            _ => {}
        }
        response
    }
}

/// The problem object a failed job carries in its `error` field.
pub fn job_error(code: &'static str, detail: &str, job_id: &str) -> Value {
    let (status, title) = match code {
        "invalid_sequence" => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid sequence"),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "Internal error"),
    };
    let detail = if status == StatusCode::INTERNAL_SERVER_ERROR {
        "The pipeline failed; the job was refunded.".to_string()
    } else {
        detail.to_string()
    };
    json!({
        "type": format!("/problems/{code}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
        "instance": format!("/v1/jobs/{job_id}"),
        "code": if status == StatusCode::INTERNAL_SERVER_ERROR { "internal" } else { code },
        // The failure happened in the runner, not while answering a request.
        "request_id": null,
    })
}

/// Whether a status code is terminal, as the jobs-cancel route reports it.
pub fn already_reason(status: Status) -> &'static str {
    match status {
        Status::Completed => "already_completed",
        Status::Failed => "already_failed",
        _ => "already_canceled",
    }
}
