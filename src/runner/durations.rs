//! The job duration histogram `/metrics` exposes (Prometheus cumulative buckets).

use std::sync::Mutex;
use std::sync::PoisonError;
use std::time::Duration;

/// Upper bounds in seconds; the engine takes milliseconds per strategy, so the low end is fine.
pub const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

#[derive(Default)]
pub struct Durations {
    inner: Mutex<Histogram>,
}

#[derive(Default, Clone)]
pub struct Histogram {
    /// Observations at or below each bound of [`BUCKETS`] (not cumulative; summed on render).
    pub counts: [u64; BUCKETS.len()],
    pub count: u64,
    pub sum: f64,
}

impl Durations {
    pub fn observe(&self, elapsed: Duration) {
        let seconds = elapsed.as_secs_f64();
        let mut h = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            h.counts[i] += 1;
        }
        h.count += 1;
        h.sum += seconds;
    }

    pub fn snapshot(&self) -> Histogram {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}
