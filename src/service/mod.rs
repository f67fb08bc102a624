//! The rules of the service, between the HTTP layer and the store: keys and scopes, credits,
//! idempotency, variants, job submission, cancellation, the daily quota and long polls. No
//! status codes or headers here (that is `http/`), no SQL or transaction (that is `store/`).

pub mod humanization;
pub mod jobs;
pub mod keys;
pub mod submit;

use crate::store::{Status, StoreError};

/// Everything a service call can refuse or fail with; `http::problem` maps each to a status.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("not found")]
    NotFound,
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidSequence(String),
    #[error("insufficient credits: cost {cost}, balance {balance}")]
    InsufficientCredits { cost: i64, balance: i64 },
    #[error("the job is already {}", .0.name())]
    AlreadyTerminal(Status),
    #[error("the job is {}, not completed", .0.name())]
    NotCompleted(Status),
    #[error("the job is in stage {0}, which cannot be canceled")]
    CancelUnavailable(String),
    #[error("the idempotency key was used with a different request body")]
    IdempotencyMismatch,
    #[error("the idempotency key's first request is still in progress")]
    IdempotencyInProgress,
    #[error(transparent)]
    Store(#[from] StoreError),
}
