//! The daily-quota count a write request owes (SPEC §8), carried with the request's task so
//! that the first write the request commits also counts it, in the same transaction.
//!
//! Every authenticated write request counts once against its organization's quota, whatever
//! it answers. Counting it in a transaction of its own before the handler ran cost every write
//! request two transactions; on the embedded backend the HTTP layer instead runs the handler
//! under [`owing`], and the backend's write takes the charge ([`take`]) and counts it inside
//! its own transaction — over the quota, the write is not run at all and the store answers
//! [`StoreError::QuotaExceeded`](super::StoreError::QuotaExceeded). A write that fails rolls
//! its count back with it and puts the charge back ([`restore`]); a request that ends with the
//! charge still owed (it wrote nothing: a refusal, a read-only answer) is counted by the HTTP
//! layer after its handler, and answers `429` instead if that count finds the quota used up —
//! the same answers as counting first, one transaction fewer for every request that writes.
//!
//! The count also confirms the request's key: a key revoked (or gone) since the request was
//! authenticated counts nothing and its write is not run ([`Counted::KeyGone`]), so a write
//! request authenticated from memory (`service::keys::KeyCache`) still answers `401` at once
//! after `veneer keys revoke`, from any process or node on the database.

use std::cell::RefCell;
use std::future::Future;

/// One write request's count against the quota.
#[derive(Debug, Clone)]
pub struct WriteCharge {
    /// The key the request was authenticated with, confirmed live by the count.
    pub key_id: String,
    pub org_id: String,
    /// The UTC day counted against, `YYYY-MM-DD`.
    pub day: String,
    /// The organization's daily limit: the count is refused once it would pass it.
    pub quota: i64,
}

/// What counting a write request found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Counted, within the quota.
    Within,
    /// Not counted: the organization has used its quota for the day.
    OverQuota,
    /// Not counted: the request's key is revoked or no longer exists.
    KeyGone,
}

tokio::task_local! {
    static OWED: RefCell<Option<WriteCharge>>;
}

/// Runs `request` owing `charge`; returns its output and the charge if no write took it.
pub async fn owing<F: Future>(charge: WriteCharge, request: F) -> (F::Output, Option<WriteCharge>) {
    OWED.scope(RefCell::new(Some(charge)), async move {
        let output = request.await;
        (output, take())
    })
    .await
}

/// The charge the current task owes, taken so no other write counts it again; None outside
/// [`owing`] (the runner, the admin commands) or once taken.
pub fn take() -> Option<WriteCharge> {
    OWED.try_with(|owed| owed.borrow_mut().take())
        .ok()
        .flatten()
}

/// Gives back a charge whose write failed (and whose count was rolled back with it).
pub fn restore(charge: WriteCharge) {
    let _ = OWED.try_with(|owed| *owed.borrow_mut() = Some(charge));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn charge() -> WriteCharge {
        WriteCharge {
            key_id: "key".into(),
            org_id: "org".into(),
            day: "2026-12-03".into(),
            quota: 5,
        }
    }

    #[tokio::test]
    async fn a_charge_is_taken_once_and_can_be_given_back() {
        let ((), left) = owing(charge(), async {
            let first = take();
            assert!(first.is_some());
            assert!(take().is_none(), "a second write must not count it again");
            restore(first.expect("taken"));
        })
        .await;
        assert_eq!(left.map(|c| c.org_id), Some("org".to_string()));
        let ((), left) = owing(charge(), async {
            take();
        })
        .await;
        assert!(left.is_none());
    }

    #[tokio::test]
    async fn nothing_is_owed_outside_a_request_or_in_a_spawned_task() {
        assert!(take().is_none());
        let (spawned, left) = owing(charge(), async {
            tokio::spawn(async { take().is_some() }).await.ok()
        })
        .await;
        assert_eq!(spawned, Some(false));
        assert!(left.is_some());
    }
}
