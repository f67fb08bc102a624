//! Several `veneer serve` nodes on one PostgreSQL database (the suite's `postgres` run; on
//! SQLite these tests have nothing to test and say so): the drain spreads and runs every job
//! once, a cancel reaches the node running the job, a killed node's jobs are rescued by the
//! others, and idempotency and credits hold across nodes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::common::{Backend, Server, assert_spent_exactly, backend, fast, id_of};

/// Held by each test here for its whole run: three nodes each are a lot of processes for a
/// 2-core machine, and the latency tests measure the service, not a starved scheduler.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Three nodes on one new database, each with its own extra flags; the first bootstraps.
fn nodes(flags: [&[&str]; 3]) -> Option<Vec<Server>> {
    if backend() != Backend::Postgres {
        eprintln!("skipped: several nodes need VENEER_TEST_BACKEND=postgres");
        return None;
    }
    let first = Server::start(&fast(flags[0]));
    let mut all = vec![first];
    for extra in &flags[1..] {
        let node = beside(&all[0], extra);
        all.push(node);
    }
    Some(all)
}

/// Another node on `first`'s database with `FAST` and `extra` flags, using its key.
fn beside(first: &Server, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Server::start_on(dir, Some(first.db()), "127.0.0.1:0", &fast(extra));
    node.key = first.key.clone();
    node
}

/// How many times each node's log says it completed `id`.
fn completions(nodes: &[Server], id: &str) -> usize {
    nodes
        .iter()
        .map(|n| {
            n.log()
                .lines()
                .filter(|l| l.contains("job completed") && l.contains(id))
                .count()
        })
        .sum()
}

fn attempts(s: &Server, id: &str) -> i64 {
    crate::pg::query_value(
        &s.db(),
        &format!("SELECT attempt FROM jobs WHERE id = '{id}'"),
    )
    .parse()
    .expect("attempt")
}

#[test]
fn submits_spread_over_three_nodes_drain_with_every_job_done_once() {
    let _serial = one_at_a_time();
    let Some(nodes) = nodes([
        &["--workers", "2"],
        &["--workers", "2"],
        &["--workers", "2"],
    ]) else {
        return;
    };
    let (org, _) = (nodes[0].get("/v1/organization").json, ());
    let variant = nodes[0].create_variant("v");
    const JOBS: usize = 60;
    let ids: Vec<String> = (0..JOBS)
        .map(|i| {
            let r = nodes[i % 3].submit(&variant);
            assert_eq!(r.status, 202, "{}", r.text);
            id_of(&r.json)
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        let job = nodes[(i + 1) % 3].wait_status(id, "completed", Duration::from_secs(60));
        assert!(job["results"].is_array());
    }
    for id in &ids {
        assert_eq!(completions(&nodes, id), 1, "job {id} completed once");
        assert_eq!(attempts(&nodes[0], id), 1, "job {id} claimed once");
    }
    let ran_somewhere: Vec<usize> = nodes
        .iter()
        .map(|n| n.log().matches("job completed").count())
        .collect();
    assert_eq!(ran_somewhere.iter().sum::<usize>(), JOBS);
    assert!(
        ran_somewhere.iter().filter(|&&n| n > 0).count() >= 2,
        "the drain spread over the nodes: {ran_somewhere:?}"
    );
    let ledger = nodes[2].ledger_all();
    assert_eq!(
        ledger.iter().filter(|e| e["reason"] == "debit").count(),
        JOBS
    );
    assert_eq!(ledger.iter().filter(|e| e["reason"] == "refund").count(), 0);
    let start = org["credit_balance"].as_i64().expect("balance");
    assert_eq!(nodes[1].balance(), start - JOBS as i64);
}

#[test]
fn a_cancel_sent_to_node_a_stops_a_job_running_on_node_b_within_100_ms() {
    let _serial = one_at_a_time();
    // A serves the API only; B runs jobs, slowly enough to be caught mid-pipeline.
    let Some(nodes) = nodes([
        &["--workers", "0"],
        &["--workers", "1", "--stage-delay-ms", "5000"],
        &["--workers", "0"],
    ]) else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let variant = a.create_variant("v");
    let before = a.balance();
    for _ in 0..3 {
        let id = id_of(&a.submit(&variant).json);
        a.wait_running(&id);
        let holder = crate::pg::query_value(
            &a.db(),
            &format!("SELECT lease_owner FROM jobs WHERE id = '{id}'"),
        );
        assert!(
            !holder.is_empty() && b.log().contains(&holder),
            "node B ({holder}) holds the job"
        );
        let started = Instant::now();
        let r = a.cancel(&id);
        let took = started.elapsed();
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["status"], "canceled", "{}", r.text);
        // From the moment node A stored the request to the moment node B ended the job, both
        // on the database's clock (the client's round trip adds this machine's scheduling).
        let stopped_ms: f64 = crate::pg::query_value(
            &a.db(),
            &format!(
                "SELECT extract(epoch FROM finished_at - cancel_requested_at) * 1000 \
                 FROM jobs WHERE id = '{id}'"
            ),
        )
        .parse()
        .expect("milliseconds");
        eprintln!("stopped in {stopped_ms:.1} ms; the client saw {took:?}");
        assert!(
            stopped_ms <= 100.0,
            "node B stopped the job {stopped_ms:.1} ms after node A stored the cancel"
        );
        assert!(
            took <= Duration::from_secs(1),
            "the cancel answered in {took:?}"
        );
        assert_eq!(b.get(&format!("/v1/jobs/{id}")).json["status"], "canceled");
    }
    assert_eq!(a.balance(), before, "every canceled job was refunded");
    let refunds = a
        .ledger_all()
        .iter()
        .filter(|e| e["reason"] == "refund")
        .count();
    assert_eq!(refunds, 3);
}

#[test]
fn a_killed_nodes_jobs_are_finished_by_another_within_lease_plus_2_s() {
    let _serial = one_at_a_time();
    const LEASE: u64 = 2;
    let lease = LEASE.to_string();
    // A holds its jobs a long while; B and C would run them at once.
    let Some(mut nodes) = nodes([
        &[
            "--workers",
            "2",
            "--stage-delay-ms",
            "20000",
            "--job-lease-seconds",
            &lease,
        ],
        &["--workers", "0", "--job-lease-seconds", &lease],
        &["--workers", "0", "--job-lease-seconds", &lease],
    ]) else {
        return;
    };
    let variant = nodes[0].create_variant("v");
    let before = nodes[0].balance();
    let ids: Vec<String> = (0..2)
        .map(|_| id_of(&nodes[0].submit(&variant).json))
        .collect();
    for id in &ids {
        nodes[0].wait_running(id);
    }
    // Runners for B and C: restart them with workers now that A holds both jobs.
    for n in &mut nodes[1..] {
        assert!(n.terminate().success());
    }
    for slot in 1..nodes.len() {
        nodes[slot] = beside(
            &nodes[0],
            &["--workers", "2", "--job-lease-seconds", &lease],
        );
    }
    let killed = Instant::now();
    let mut a = nodes.remove(0);
    let mut child = a.child.take().expect("running");
    child.kill().expect("kill -9");
    let _ = child.wait();
    for id in &ids {
        let job = nodes[0].wait_status(id, "completed", Duration::from_secs(LEASE + 10));
        assert!(job["results"].is_array());
    }
    let took = killed.elapsed();
    assert!(
        took <= Duration::from_secs(LEASE + 2),
        "rescued and finished {took:?} after the kill (lease {LEASE} s)"
    );
    for id in &ids {
        assert_eq!(completions(&nodes, id), 1, "job {id} completed once");
        assert_eq!(attempts(&nodes[0], id), 2, "claimed by A, then once more");
    }
    let ledger = nodes[1].ledger_all();
    assert_eq!(ledger.iter().filter(|e| e["reason"] == "debit").count(), 2);
    assert_eq!(ledger.iter().filter(|e| e["reason"] == "refund").count(), 0);
    assert_eq!(nodes[1].balance(), before - 2);
    drop(a);
}

#[test]
fn one_idempotency_key_over_three_nodes_makes_one_job_and_one_debit() {
    let _serial = one_at_a_time();
    let Some(nodes) = nodes([&["--paused"], &[], &[]]) else {
        return;
    };
    let variant = nodes[0].create_variant("v");
    let before = nodes[0].balance();
    let nodes = Arc::new(nodes);
    let threads: Vec<_> = (0..12)
        .map(|i| {
            let (nodes, variant) = (Arc::clone(&nodes), variant.clone());
            std::thread::spawn(move || {
                nodes[i % 3]
                    .req()
                    .method("POST")
                    .path("/v1/humanizations")
                    .header("idempotency-key", "one-submit")
                    .json(&json!({ "variant_id": variant }))
                    .send()
            })
        })
        .collect();
    let answers: Vec<_> = threads
        .into_iter()
        .map(|t| t.join().expect("thread"))
        .collect();
    let ids: Vec<String> = answers
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.text);
            id_of(&r.json)
        })
        .collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "one job: {ids:?}");
    let replayed = answers
        .iter()
        .filter(|r| r.header("idempotent-replayed") == Some("true"))
        .count();
    assert_eq!(replayed, 11, "the first created, the rest replayed");
    let jobs = nodes[1].get("/v1/jobs?limit=100").json;
    assert_eq!(jobs["data"].as_array().map(Vec::len), Some(1));
    let debits = nodes[2]
        .ledger_all()
        .iter()
        .filter(|e| e["reason"] == "debit")
        .count();
    assert_eq!(debits, 1);
    assert_eq!(nodes[0].balance(), before - 1);
}

#[test]
fn forty_submits_against_seven_credits_over_three_nodes_accept_exactly_seven() {
    let _serial = one_at_a_time();
    const CREDITS: i64 = 7;
    let Some(nodes) = nodes([&["--paused"], &[], &[]]) else {
        return;
    };
    let (_org, key) = nodes[0].new_org("poor lab", CREDITS, None);
    let variant = nodes[0].create_variant_as(&key);
    let nodes = Arc::new(nodes);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (nodes, key, variant) = (Arc::clone(&nodes), key.clone(), variant.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        nodes[(t + i) % 3].as_key(
                            &key,
                            "POST",
                            "/v1/humanizations",
                            Some(json!({ "variant_id": variant })),
                        )
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let answers: Vec<_> = threads
        .into_iter()
        .flat_map(|t| t.join().expect("thread"))
        .collect();
    assert_eq!(answers.len(), 40);
    // Read back through a node other than most of the submits' (all share the database).
    assert_spent_exactly(&answers, &nodes[2], &key, CREDITS);
}

#[test]
fn a_cancel_whose_notification_is_lost_still_stops_the_job_within_a_heartbeat() {
    let _serial = one_at_a_time();
    // Lease 1.5 s: B's heartbeat re-reads the stored cancel requests every 0.5 s.
    let Some(nodes) = nodes([
        &["--workers", "0"],
        &[
            "--workers",
            "1",
            "--stage-delay-ms",
            "10000",
            "--job-lease-seconds",
            "1.5",
        ],
        &["--workers", "0"],
    ]) else {
        return;
    };
    let (a, b) = (&nodes[0], &nodes[1]);
    let variant = a.create_variant("v");
    let id = id_of(&a.submit(&variant).json);
    a.wait_running(&id);
    // Keep cutting every listening connection (each node's reconnects at once), so the
    // cancel's notification finds no listener on node B, or one that is being cut.
    let db = a.db();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let cutter = {
        let (db, stop) = (db.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                crate::pg::query_value(
                    &db,
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity \
                     WHERE query = 'LISTEN veneer'",
                );
            }
        })
    };
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let r = a
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{id}/cancel"))
        .send();
    assert_eq!(r.status, 202, "{}", r.text);
    let job = b.wait_status(&id, "canceled", Duration::from_secs(5));
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    cutter.join().expect("cutter");
    assert!(
        took <= Duration::from_millis(500 + 1000),
        "stopped {took:?} after the cancel: within a heartbeat (0.5 s) and a second"
    );
    assert!(job["results"].is_null());
    assert_eq!(
        a.ledger_all()
            .iter()
            .filter(|e| e["reason"] == "refund" && e["job_id"] == id.as_str())
            .count(),
        1
    );
    assert!(
        b.log().contains("notification connection"),
        "node B's listener was cut and reconnected"
    );
}

#[test]
fn pause_resume_and_key_revocation_reach_every_node_within_a_second() {
    let _serial = one_at_a_time();
    let Some(nodes) = nodes([&[], &[], &[]]) else {
        return;
    };
    let variant = nodes[0].create_variant("v");
    let (ok, out) = nodes[0].admin(&["queue", "pause"]);
    assert!(ok && out == "paused\n");
    std::thread::sleep(Duration::from_secs(1));
    let id = id_of(&nodes[1].submit(&variant).json);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(
        nodes[2].get(&format!("/v1/jobs/{id}")).json["status"],
        "pending",
        "no node takes jobs while paused"
    );
    let (ok, _) = nodes[0].admin(&["queue", "resume"]);
    assert!(ok);
    let resumed = Instant::now();
    nodes[2].wait_status(&id, "completed", Duration::from_secs(5));
    assert!(
        resumed.elapsed() <= Duration::from_secs(1),
        "resumed in {:?}",
        resumed.elapsed()
    );

    let (org, key) = nodes[0].new_org("lab two", 5, None);
    // A write on each node first, so each holds the key in memory (service::keys::KeyCache).
    for n in nodes.iter() {
        assert_eq!(n.as_key(&key, "GET", "/v1/organization", None).status, 200);
        let r = n.as_key(&key, "POST", "/v1/variants", Some(json!({ "name": "x" })));
        r.problem(400, "invalid_request");
    }
    let (ok, listed) = nodes[0].admin(&["keys", "list", "--org", &org]);
    assert!(ok);
    let key_id = listed.split('\t').next().expect("key id").to_string();
    assert!(nodes[0].admin(&["keys", "revoke", &key_id]).0);
    let revoked = Instant::now();
    for n in nodes.iter() {
        n.as_key(&key, "GET", "/v1/organization", None)
            .problem(401, "unauthenticated");
        n.as_key(&key, "POST", "/v1/variants", Some(json!({ "name": "x" })))
            .problem(401, "unauthenticated");
    }
    assert!(revoked.elapsed() <= Duration::from_secs(1));
}

#[test]
fn a_node_that_was_only_slow_is_fenced_out_and_the_job_completes_once() {
    let _serial = one_at_a_time();
    if backend() != Backend::Postgres {
        eprintln!("skipped: several nodes need VENEER_TEST_BACKEND=postgres");
        return;
    }
    let slow = Server::start(&fast(&[
        "--workers",
        "1",
        "--stage-delay-ms",
        "1000",
        "--job-lease-seconds",
        "1",
    ]));
    let variant = slow.create_variant("v");
    let before = slow.balance();
    let id = id_of(&slow.submit(&variant).json);
    slow.wait_running(&id);
    // Frozen, not dead: its lease runs out while it cannot renew it.
    let pid = slow.pid().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-STOP", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let other = beside(&slow, &["--workers", "1", "--job-lease-seconds", "1"]);
    other.wait_status(&id, "completed", Duration::from_secs(10));
    // Thawed, the slow node carries on where it was: every write it tries is refused.
    assert!(
        std::process::Command::new("kill")
            .args(["-CONT", &pid])
            .status()
            .expect("kill")
            .success()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !slow.log().contains("no longer this node's") {
        assert!(
            Instant::now() < deadline,
            "the slow node noticed it lost the job"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(500));
    let job = other.get(&format!("/v1/jobs/{id}")).json;
    assert_eq!(job["status"], "completed");
    assert!(job["results"].is_array());
    assert_eq!(attempts(&other, &id), 2);
    let nodes = [slow, other];
    assert_eq!(
        completions(&nodes, &id),
        1,
        "completed once, by the other node"
    );
    let ledger = nodes[1].ledger_all();
    assert_eq!(ledger.iter().filter(|e| e["reason"] == "debit").count(), 1);
    assert_eq!(ledger.iter().filter(|e| e["reason"] == "refund").count(), 0);
    assert_eq!(nodes[1].balance(), before - 1);
}
