//! Per-key token buckets (SPEC §8), one per cost class, kept in memory: a restart refills
//! them, which is harmless; the daily write quota is the limit that must survive restarts and
//! lives in the database.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use super::router::CostClass;

#[derive(Debug, Clone, Copy)]
pub struct Rate {
    /// Tokens added per second.
    pub per_second: f64,
    /// Bucket capacity.
    pub burst: f64,
}

/// The outcome of taking one token, with what the `X-RateLimit-*` headers report.
#[derive(Debug, Clone, Copy)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
    /// Seconds until one token is available (for `Retry-After`).
    pub retry_after: u64,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

pub struct RateLimiter {
    read: Rate,
    write: Rate,
    /// Each key's buckets, read and write.
    buckets: Mutex<HashMap<String, [Bucket; 2]>>,
}

impl RateLimiter {
    pub fn new(read: Rate, write: Rate) -> Self {
        RateLimiter {
            read,
            write,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn take(&self, key_id: &str, class: CostClass) -> Decision {
        // A key's buckets are kept in this order: read, write.
        let rates = [self.read, self.write];
        let slot = match class {
            CostClass::Read => 0,
            CostClass::Write => 1,
        };
        let rate = rates[slot];
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        // Looked up by the borrowed id first: the id is copied only for a key's first request.
        let pair = match buckets.get_mut(key_id) {
            Some(pair) => pair,
            None => buckets.entry(key_id.to_string()).or_insert_with(|| {
                rates.map(|rate| Bucket {
                    tokens: rate.burst,
                    at: now,
                })
            }),
        };
        let bucket = &mut pair[slot];
        let refill = now.duration_since(bucket.at).as_secs_f64() * rate.per_second;
        bucket.tokens = (bucket.tokens + refill).min(rate.burst);
        bucket.at = now;
        let allowed = bucket.tokens >= 1.0;
        if allowed {
            bucket.tokens -= 1.0;
        }
        let per_second = rate.per_second.max(f64::MIN_POSITIVE);
        Decision {
            allowed,
            limit: rate.burst as u64,
            remaining: bucket.tokens.floor().max(0.0) as u64,
            reset: ((rate.burst - bucket.tokens) / per_second).ceil().max(0.0) as u64,
            retry_after: if allowed {
                0
            } else {
                ((1.0 - bucket.tokens) / per_second).ceil().max(1.0) as u64
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_retry_time() {
        let limiter = RateLimiter::new(
            Rate {
                per_second: 1.0,
                burst: 3.0,
            },
            Rate {
                per_second: 1.0,
                burst: 1.0,
            },
        );
        for remaining in [2, 1, 0] {
            let d = limiter.take("k", CostClass::Read);
            assert!(d.allowed);
            assert_eq!(d.remaining, remaining);
            assert_eq!(d.limit, 3);
        }
        let d = limiter.take("k", CostClass::Read);
        assert!(!d.allowed);
        assert_eq!(d.retry_after, 1);
        // Another key and another class have their own buckets.
        assert!(limiter.take("other", CostClass::Read).allowed);
        assert!(limiter.take("k", CostClass::Write).allowed);
    }
}
