//! Jobs after submit: reading them, waiting for their end, canceling them, and the daily
//! write quota every write request counts against.

use std::time::Duration;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::ServiceError;
use super::humanization;
use crate::store::charge::{Counted, WriteCharge};
use crate::store::{ApiKey, CancelDecision, JobRow, Store};

/// What a cancel did.
#[derive(Debug, Clone)]
pub enum Cancel {
    /// The job was pending: it is canceled and refunded; the job as it now stands.
    Canceled(Box<JobRow>),
    /// The job is running: the request is stored, and the node running it stops it (and
    /// refunds it) within a heartbeat at worst.
    Requested,
}

/// Cancels the organization's job (of `kind`, when given): pending → canceled and refunded;
/// running → the request is stored for its holder, except in `finalizing`, which refuses.
pub async fn cancel(
    store: &Store,
    org_id: &str,
    job_id: &str,
    kind: Option<&str>,
) -> Result<Cancel, ServiceError> {
    match store
        .cancel(org_id, job_id, kind, humanization::FINALIZING)
        .await?
    {
        CancelDecision::NotFound => Err(ServiceError::NotFound),
        CancelDecision::Canceled(job) => Ok(Cancel::Canceled(job)),
        CancelDecision::Requested => Ok(Cancel::Requested),
        CancelDecision::Unavailable(stage) => Err(ServiceError::CancelUnavailable(stage)),
        CancelDecision::AlreadyTerminal(status) => Err(ServiceError::AlreadyTerminal(status)),
    }
}

pub async fn get(
    store: &Store,
    org_id: &str,
    job_id: &str,
    kind: Option<&str>,
) -> Result<JobRow, ServiceError> {
    store
        .get_job(org_id, job_id, kind)
        .await?
        .ok_or(ServiceError::NotFound)
}

/// How often a long poll on a shared database re-reads its job even without news: a lost
/// notification (another node's job ended while the listener reconnected) delays an answer
/// by at most this. Alone on a SQLite file every end is this process's own and wakes the poll.
const REREAD: Duration = Duration::from_secs(1);

/// Long-polls until the job is terminal, `seconds` pass, or `shutdown` fires. `events` ticks
/// whenever some job ends (here or, on a shared database, on another node).
pub async fn wait_for_terminal(
    store: &Store,
    mut events: watch::Receiver<u64>,
    shutdown: &CancellationToken,
    org_id: &str,
    job_id: &str,
    kind: Option<&str>,
    seconds: u64,
) -> Result<JobRow, ServiceError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
    loop {
        // The receiver was subscribed before this read, so an end between the read and the
        // wait below still wakes it.
        events.mark_unchanged();
        let job = get(store, org_id, job_id, kind).await?;
        if job.status.is_terminal()
            || tokio::time::Instant::now() >= deadline
            || shutdown.is_cancelled()
        {
            return Ok(job);
        }
        let reread = if store.is_shared() {
            (tokio::time::Instant::now() + REREAD).min(deadline)
        } else {
            deadline
        };
        tokio::select! {
            changed = events.changed() => {
                if changed.is_err() {
                    return Ok(job);
                }
            }
            _ = tokio::time::sleep_until(reread) => {}
            _ = shutdown.cancelled() => {}
        }
    }
}

/// Seconds until the next UTC midnight, when the daily quota resets.
pub fn seconds_to_utc_midnight() -> u64 {
    let now = jiff::Timestamp::now().as_second();
    (86_400 - now.rem_euclid(86_400)) as u64
}

/// One write request of the organization, to count against today's quota (shared by every
/// node on the database).
pub fn write_charge(key: &ApiKey, quota: i64) -> WriteCharge {
    WriteCharge {
        key_id: key.id.clone(),
        org_id: key.org_id.clone(),
        day: crate::store::now()[..10].to_string(),
        quota,
    }
}

/// Counts one write request against its quota in a transaction of its own, confirming its
/// key is still live.
pub async fn count_write(store: &Store, charge: &WriteCharge) -> Result<Counted, ServiceError> {
    Ok(store.count_write(charge).await?)
}
