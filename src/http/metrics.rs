//! Request counters and the Prometheus text rendering of `/metrics`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Mutex, PoisonError};

use crate::runner::durations::{BUCKETS, Histogram};

#[derive(Default)]
pub struct RequestCounters {
    counts: Mutex<BTreeMap<(&'static str, &'static str, u16), u64>>,
}

impl RequestCounters {
    pub fn record(&self, method: &'static str, route: &'static str, status: u16) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry((method, route, status))
            .or_default() += 1;
    }

    fn snapshot(&self) -> BTreeMap<(&'static str, &'static str, u16), u64> {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Renders the exposition text.
pub fn render(
    requests: &RequestCounters,
    jobs: &[(String, String, i64)],
    durations: &Histogram,
    paused: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# HELP veneer_http_requests_total HTTP requests by route and status."
    );
    let _ = writeln!(out, "# TYPE veneer_http_requests_total counter");
    for ((method, route, status), n) in requests.snapshot() {
        let _ = writeln!(
            out,
            "veneer_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(out, "# HELP veneer_jobs Jobs by kind and status.");
    let _ = writeln!(out, "# TYPE veneer_jobs gauge");
    let mut pending = 0;
    for (kind, status, n) in jobs {
        if status == "pending" {
            pending += n;
        }
        let _ = writeln!(
            out,
            "veneer_jobs{{kind=\"{kind}\",status=\"{status}\"}} {n}"
        );
    }
    let _ = writeln!(
        out,
        "# HELP veneer_queue_depth Pending jobs waiting for a worker."
    );
    let _ = writeln!(out, "# TYPE veneer_queue_depth gauge");
    let _ = writeln!(out, "veneer_queue_depth {pending}");
    let _ = writeln!(
        out,
        "# HELP veneer_queue_paused 1 while the queue is paused."
    );
    let _ = writeln!(out, "# TYPE veneer_queue_paused gauge");
    let _ = writeln!(out, "veneer_queue_paused {}", u8::from(paused));
    let _ = writeln!(
        out,
        "# HELP veneer_job_duration_seconds Pipeline time of completed jobs in this process."
    );
    let _ = writeln!(out, "# TYPE veneer_job_duration_seconds histogram");
    let mut cumulative = 0;
    for (bound, n) in BUCKETS.iter().zip(durations.counts) {
        cumulative += n;
        let _ = writeln!(
            out,
            "veneer_job_duration_seconds_bucket{{le=\"{bound}\"}} {cumulative}"
        );
    }
    let _ = writeln!(
        out,
        "veneer_job_duration_seconds_bucket{{le=\"+Inf\"}} {}",
        durations.count
    );
    let _ = writeln!(out, "veneer_job_duration_seconds_sum {}", durations.sum);
    let _ = writeln!(out, "veneer_job_duration_seconds_count {}", durations.count);
    out
}
