//! Crash loop: rounds of concurrent submit/cancel load, each ended by SIGKILL at a random
//! moment and followed by a restart on the same database. Afterwards nothing that was
//! acknowledged is lost, every job ends, and the credits add up:
//! - every job that got a 2xx exists and reaches a terminal status; none stays pending/running;
//! - each job is debited once and refunded exactly when it did not complete;
//! - the ledger sums to the cached balance, and balance = grants − cost of completed jobs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::common::{Server, id_of};
use serde_json::{Value, json};

/// One request that may fail in any way (the server can die mid-request): `None` unless a
/// whole response came back.
fn try_send(
    addr: &str,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\nauthorization: Bearer {key}\r\n"
    );
    if method == "POST" {
        head.push_str(&format!(
            "content-type: application/json\r\ncontent-length: {}\r\n",
            body.len()
        ));
    }
    head.push_str("\r\n");
    head.push_str(&body);
    stream.write_all(head.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&raw[..split])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    let json = serde_json::from_slice(&raw[split + 4..]).ok()?;
    Some((status, json))
}

/// A small xorshift generator seeded from the clock: different kill moments on every run,
/// printed so a failure can be related to its schedule.
struct Rng(u64);

impl Rng {
    fn next(&mut self, below: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % below
    }
}

#[test]
fn sigkill_under_load_loses_nothing_and_the_credits_add_up() {
    const GRANT: i64 = 100_000;
    const ROUNDS: usize = 5;
    let mut s = Server::start(&[
        "--workers",
        "2",
        "--stage-delay-ms",
        "5",
        "--write-rate",
        "10000",
        "--write-burst",
        "10000",
        "--read-rate",
        "10000",
        "--read-burst",
        "10000",
    ]);
    let (_org, key) = s.new_org("crash lab", GRANT, None);
    let variant = s.create_variant_as(&key);
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    eprintln!("crash loop seed {seed}");
    let mut rng = Rng(seed);
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..ROUNDS {
        let stop = Arc::new(AtomicBool::new(false));
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let (addr, key, variant, stop) = (
                    s.addr.clone(),
                    key.clone(),
                    variant.clone(),
                    Arc::clone(&stop),
                );
                std::thread::spawn(move || {
                    let mut ids = Vec::new();
                    let mut i = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        i += 1;
                        let body = json!({"variant_id": variant});
                        let Some((status, job)) =
                            try_send(&addr, &key, "POST", "/v1/humanizations", Some(&body))
                        else {
                            continue;
                        };
                        if (200..300).contains(&status) {
                            let id = id_of(&job);
                            // Cancel about a third of them, at varying delays, on either route.
                            if (i + t).is_multiple_of(3) {
                                std::thread::sleep(Duration::from_millis((i * 7 + t * 3) % 30));
                                let path = if i.is_multiple_of(2) {
                                    format!("/v1/humanizations/{id}/cancel")
                                } else {
                                    format!("/v1/jobs/{id}/cancel")
                                };
                                let _ = try_send(&addr, &key, "POST", &path, None);
                            }
                            ids.push(id);
                        } else {
                            assert!(
                                status < 500 || status == 503,
                                "submit answered {status}: {job}"
                            );
                        }
                        std::thread::sleep(Duration::from_millis(15));
                    }
                    ids
                })
            })
            .collect();
        let kill_after = Duration::from_millis(200 + rng.next(800));
        std::thread::sleep(kill_after);
        // SIGKILL: no shutdown code runs at all.
        let mut child = s.child.take().expect("running");
        child.kill().expect("kill");
        child.wait().expect("wait");
        stop.store(true, Ordering::Relaxed);
        let before = acknowledged.len();
        for t in threads {
            acknowledged.extend(t.join().expect("load thread"));
        }
        eprintln!(
            "round {round}: killed after {kill_after:?}, {} submits acknowledged",
            acknowledged.len() - before
        );
        s.spawn();
    }
    assert!(!acknowledged.is_empty(), "the load got no submit through");
    // Every acknowledged job exists and ends.
    let deadline = Instant::now() + Duration::from_secs(60);
    let jobs = loop {
        let jobs = s.all_pages(&key, "/v1/jobs");
        let open = jobs
            .iter()
            .filter(|j| j["status"] == "pending" || j["status"] == "running")
            .count();
        if open == 0 {
            break jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{open} of {} jobs still pending/running",
            jobs.len()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    for id in &acknowledged {
        let job = jobs
            .iter()
            .find(|j| j["id"] == id.as_str())
            .unwrap_or_else(|| panic!("acknowledged job {id} was lost"));
        assert!(
            ["completed", "canceled", "failed"].contains(&job["status"].as_str().unwrap_or("")),
            "{job}"
        );
    }
    let ledger = s.all_pages(&key, "/v1/credits/ledger");
    let mut completed = 0i64;
    for job in &jobs {
        let id = job["id"].as_str().expect("id");
        let of_job = |reason: &str| {
            ledger
                .iter()
                .filter(|e| e["job_id"] == id && e["reason"] == reason)
                .count()
        };
        assert_eq!(of_job("debit"), 1, "one debit for {id}");
        let expected_refunds = if job["status"] == "completed" {
            completed += job["credit_cost"].as_i64().expect("cost");
            0
        } else {
            1
        };
        assert_eq!(of_job("refund"), expected_refunds, "refunds of {job}");
    }
    let grants: i64 = ledger
        .iter()
        .filter(|e| e["reason"] == "grant")
        .filter_map(|e| e["delta"].as_i64())
        .sum();
    assert_eq!(grants, GRANT);
    let sum: i64 = ledger.iter().filter_map(|e| e["delta"].as_i64()).sum();
    let balance = s.as_key(&key, "GET", "/v1/organization", None).json["credit_balance"]
        .as_i64()
        .expect("balance");
    assert_eq!(sum, balance, "the ledger sums to the balance");
    assert_eq!(balance, grants - completed, "balance = grants − completed");
    let canceled = jobs.iter().filter(|j| j["status"] == "canceled").count();
    eprintln!(
        "{} jobs ({} acknowledged): {completed} completed, {canceled} canceled",
        jobs.len(),
        acknowledged.len()
    );
}
