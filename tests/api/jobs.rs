//! Humanization jobs and the generic /v1/jobs routes: submit, wait, credits, idempotency,
//! cancellation of pending and running jobs, pause/resume and fairness.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::{Server, id_of};
use serde_json::{Value, json};

fn ledger_for(s: &Server, job: &str) -> Vec<Value> {
    s.ledger()
        .into_iter()
        .filter(|e| e["job_id"] == job)
        .collect()
}

#[test]
fn a_submit_is_accepted_debited_once_and_completes_with_results() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let r = s.submit(&variant);
    assert_eq!(r.status, 202, "{}", r.text);
    let id = id_of(&r.json);
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/humanizations/{id}").as_str())
    );
    assert_eq!(r.header("vary"), Some("Prefer"));
    assert_eq!(r.json["object"], "humanization");
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["credit_cost"], 1);
    assert_eq!(r.json["inputs"], json!({ "variant_id": variant }));
    for field in [
        "stage",
        "started_at",
        "completed_at",
        "failed_at",
        "canceled_at",
        "error",
        "results",
    ] {
        assert!(r.json[field].is_null(), "{field} is null while pending");
    }
    assert!(
        r.json["created_at"]
            .as_str()
            .unwrap_or("")
            .ends_with("+00:00")
    );

    let done = s.wait_status(&id, "completed", Duration::from_secs(20));
    assert!(done["completed_at"].is_string() && done["started_at"].is_string());
    assert!(done["failed_at"].is_null() && done["canceled_at"].is_null());
    assert!(done["stage"].is_null() && done["error"].is_null());
    let results = done["results"].as_array().expect("results");
    assert!(!results.is_empty());
    let names: Vec<&str> = results
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    assert!(names.contains(&"cdr_grafting"), "{names:?}");
    for result in results {
        for field in [
            "humanized_vh",
            "humanized_vl",
            "liabilities",
            "mutations",
            "oasis_score",
        ] {
            assert!(!result[field].is_null(), "{field} in {result}");
        }
        assert_ne!(result["humanized_vh"], crate::common::VH);
    }
    assert!(done["parental"].is_object());

    // Credits: one debit, no refund, balance 99, and the cache equals the ledger.
    let entries = ledger_for(&s, &id);
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0]["reason"], "debit");
    assert_eq!(entries[0]["delta"], -1);
    assert_eq!(entries[0]["bucket"], "subscription");
    assert_eq!(s.balance(), 99);
    let sum: i64 = s.ledger().iter().filter_map(|e| e["delta"].as_i64()).sum();
    assert_eq!(sum, 99);

    let got = s.get(&format!("/v1/humanizations/{id}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.header("vary"), Some("Prefer"));
    assert_eq!(got.json, done);
    let listed = s.get("/v1/humanizations?status=completed");
    assert_eq!(listed.json["data"][0]["id"], id.as_str());
    let listed = s.get("/v1/jobs?object=humanization&status=completed");
    assert_eq!(listed.json["data"][0]["id"], id.as_str());
    assert_eq!(s.get("/v1/jobs?status=pending").json["data"], json!([]));
    let metrics = s.req().key(None).path("/metrics").send().text;
    assert!(
        metrics.contains("veneer_job_duration_seconds_count 1"),
        "{metrics}"
    );
    assert!(metrics.contains("veneer_jobs{kind=\"humanization\",status=\"completed\"} 1"));
    let waited = s.get(&format!("/v1/jobs/{id}?wait=true"));
    assert_eq!(waited.json["status"], "completed");
    s.get(&format!("/v1/jobs/{id}?wait=maybe"))
        .problem(400, "invalid_request");
}

#[test]
fn prefer_wait_answers_200_when_terminal_in_time() {
    let s = Server::start(&[]);
    let variant = s.create_variant("v");
    let submit_preferring = |prefer: &str| {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("prefer", prefer)
            .json(&json!({ "variant_id": variant }))
            .send()
    };
    let r = submit_preferring("wait=10");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "completed");
    assert_eq!(r.header("preference-applied"), Some("wait=10"));
    assert_eq!(r.header("vary"), Some("Prefer"));
    assert!(r.header("location").is_some());
    // Above 120 is treated as 120.
    let r = submit_preferring("respond-async, wait=500");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("preference-applied"), Some("wait=120"));
    let r = submit_preferring("respond-async");
    assert_eq!(r.status, 202);
    assert!(r.header("preference-applied").is_none());
    // GET honours it too.
    let id = id_of(&r.json);
    let got = s
        .req()
        .path(&format!("/v1/humanizations/{id}"))
        .header("prefer", "wait=10")
        .send();
    assert_eq!(got.json["status"], "completed");
    assert_eq!(got.header("preference-applied"), Some("wait=10"));
    submit_preferring("wait=soon").problem(400, "invalid_request");
}

#[test]
fn insufficient_credits_is_402_and_creates_nothing_then_purchased_credits_are_used() {
    let s = Server::start(&[]);
    let (org, key) = s.new_org("small lab", 1, None);
    let as_lab = |method: &str, path: &str, body: Option<Value>| s.as_key(&key, method, path, body);
    let v = as_lab(
        "POST",
        "/v1/variants",
        Some(json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL})),
    );
    let variant = id_of(&v.json);
    let first = as_lab(
        "POST",
        "/v1/humanizations",
        Some(json!({ "variant_id": variant })),
    );
    assert_eq!(first.status, 202);
    let r = as_lab(
        "POST",
        "/v1/humanizations",
        Some(json!({ "variant_id": variant })),
    );
    let p = r.problem(402, "insufficient_credits");
    assert_eq!(p["credit_cost"], 1);
    assert_eq!(p["credit_balance"], 0);
    assert_eq!(
        as_lab("GET", "/v1/jobs", None).json["data"]
            .as_array()
            .map(Vec::len),
        Some(1)
    );

    let (ok, balance) = s.admin(&[
        "credits",
        "grant",
        "--org",
        &org,
        "--amount",
        "2",
        "--bucket",
        "purchased",
    ]);
    assert!(ok);
    assert_eq!(balance.trim(), "2");
    let r = as_lab(
        "POST",
        "/v1/humanizations",
        Some(json!({ "variant_id": variant })),
    );
    assert_eq!(r.status, 202);
    let job = id_of(&r.json);
    let ledger = as_lab("GET", "/v1/credits/ledger", None).json;
    let debit = ledger["data"]
        .as_array()
        .and_then(|d| d.iter().find(|e| e["job_id"] == job.as_str()).cloned())
        .expect("debit");
    assert_eq!(debit["bucket"], "purchased");
    let o = as_lab("GET", "/v1/organization", None).json;
    assert_eq!(o["buckets"], json!({"subscription": 0, "purchased": 1}));
    let (ok, rows) = s.admin(&["credits", "ledger", "--org", &org]);
    assert!(ok);
    assert_eq!(
        rows.lines().count(),
        4,
        "grant, debit, grant, debit:\n{rows}"
    );
}

#[test]
fn idempotency_keys_replay_refuse_mismatches_and_free_failed_requests() {
    let s = Server::start(&[]);
    let variant = s.create_variant("v");
    let other = s.create_variant("w");
    let with_key = |key: &str, variant: &str| {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("idempotency-key", key)
            .json(&json!({ "variant_id": variant }))
            .send()
    };
    let first = with_key("k-1", &variant);
    assert_eq!(first.status, 202);
    assert!(first.header("idempotent-replayed").is_none());
    let id = id_of(&first.json);
    assert_eq!(first.json["status"], "pending");
    s.wait_status(&id, "completed", Duration::from_secs(20));
    // SPEC §7: the replay answers with the job as it now stands, not the stale first copy.
    let again = with_key("k-1", &variant);
    assert_eq!(
        again.status, 200,
        "the job as it now stands: {}",
        again.text
    );
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json["id"], first.json["id"]);
    assert_eq!(again.json["status"], "completed");
    assert!(again.json["results"].is_array());
    assert_eq!(again.header("location"), first.header("location"));
    with_key("k-1", &other).problem(409, "idempotency_mismatch");
    assert_eq!(ledger_for(&s, &id).len(), 1, "one debit");
    assert_eq!(
        s.get("/v1/jobs").json["data"].as_array().map(Vec::len),
        Some(1)
    );

    // A replay honours its own `Prefer: wait`: a client that lost a waiting answer and
    // retries with the wait gets the finished job (200, `Preference-Applied`).
    let waiting = |key: &str| {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("idempotency-key", key)
            .header("prefer", "wait=30")
            .json(&json!({ "variant_id": variant }))
            .send()
    };
    let lost = s
        .req()
        .method("POST")
        .path("/v1/humanizations")
        .header("idempotency-key", "k-wait")
        .json(&json!({ "variant_id": variant }))
        .send();
    assert_eq!(lost.status, 202);
    let retried = waiting("k-wait");
    assert_eq!(retried.status, 200, "{}", retried.text);
    assert_eq!(retried.header("idempotent-replayed"), Some("true"));
    assert_eq!(retried.header("preference-applied"), Some("wait=30"));
    assert_eq!(retried.json["id"], lost.json["id"]);
    assert_eq!(retried.json["status"], "completed");

    // A request that failed before creating anything does not consume its key.
    with_key("k-2", "01a20651-60bf-7071-8acf-dd18d042cc9e").problem(404, "not_found");
    assert_eq!(with_key("k-2", &variant).status, 202);

    with_key("", &variant).problem(400, "invalid_idempotency_key");
    with_key(&"k".repeat(256), &variant).problem(400, "invalid_idempotency_key");
    assert_eq!(with_key(&"k".repeat(255), &variant).status, 202);

    // Variants: the same key replays the 201 and creates one variant.
    let make = |key: &str, name: &str| {
        s.req()
            .method("POST")
            .path("/v1/variants")
            .header("idempotency-key", key)
            .json(&json!({ "name": name, "vh": crate::common::VH, "vl": crate::common::VL }))
            .send()
    };
    let a = make("k-1", "same");
    assert_eq!(a.status, 201, "keys are scoped per route: k-1 is new here");
    let b = make("k-1", "same");
    assert_eq!(b.status, 201);
    assert_eq!(b.header("idempotent-replayed"), Some("true"));
    assert_eq!(a.json["id"], b.json["id"]);
    make("k-1", "different").problem(409, "idempotency_mismatch");
    // A 422 does not consume the key either.
    let bad = s
        .req()
        .method("POST")
        .path("/v1/variants")
        .header("idempotency-key", "k-3")
        .json(&json!({ "name": "x", "vh": "XXXX", "vl": crate::common::VL }))
        .send();
    bad.problem(422, "invalid_sequence");
    assert_eq!(make("k-3", "x").status, 201);
}

#[test]
fn twelve_concurrent_submits_with_one_key_make_one_job_and_one_debit() {
    let s = Arc::new(Server::start(&[
        "--write-burst",
        "100",
        "--write-rate",
        "100",
    ]));
    let variant = s.create_variant("v");
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(&s);
            let variant = variant.clone();
            std::thread::spawn(move || {
                s.req()
                    .method("POST")
                    .path("/v1/humanizations")
                    .header("idempotency-key", "same-for-all")
                    .json(&json!({ "variant_id": variant }))
                    .send()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    let mut created = 0;
    for t in threads {
        let r = t.join().expect("thread");
        match r.status {
            202 => {
                ids.insert(id_of(&r.json));
                if r.header("idempotent-replayed").is_none() {
                    created += 1;
                }
            }
            409 => {
                r.problem(409, "idempotency_in_progress");
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(created, 1);
    let id = ids.into_iter().next().expect("id");
    assert_eq!(
        s.get("/v1/jobs").json["data"].as_array().map(Vec::len),
        Some(1)
    );
    let debits: Vec<Value> = ledger_for(&s, &id)
        .into_iter()
        .filter(|e| e["reason"] == "debit")
        .collect();
    assert_eq!(debits.len(), 1);
    assert_eq!(s.balance(), 99);

    // The same for variants, whose key is reserved while the chains are numbered.
    let threads: Vec<_> = (0..12)
        .map(|_| {
            let s = Arc::clone(&s);
            std::thread::spawn(move || {
                s.req()
                    .method("POST")
                    .path("/v1/variants")
                    .header("idempotency-key", "variant-key")
                    .json(&json!({ "name": "c", "vh": crate::common::VH, "vl": crate::common::VL }))
                    .send()
            })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in threads {
        let r = t.join().expect("thread");
        match r.status {
            201 => {
                ids.insert(id_of(&r.json));
            }
            409 => {
                r.problem(409, "idempotency_in_progress");
            }
            other => panic!("unexpected {other}: {}", r.text),
        }
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        s.get("/v1/variants").json["data"].as_array().map(Vec::len),
        Some(2)
    );
}

#[test]
fn a_pending_job_is_canceled_at_once_refunded_once_and_stays_canceled() {
    let s = Server::start(&["--paused"]);
    let variant = s.create_variant("v");
    let id = id_of(&s.submit(&variant).json);
    assert_eq!(s.balance(), 99);
    let r = s.cancel(&id);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "canceled");
    assert!(r.json["canceled_at"].is_string());
    assert!(r.json["results"].is_null() && r.json["completed_at"].is_null());
    // The cancel answers with the job exactly as stored (its own transaction read it back).
    assert_eq!(
        r.json,
        s.get(&format!("/v1/humanizations/{id}")).json,
        "the cancel's answer is the job as a GET reads it"
    );
    assert_eq!(s.balance(), 100);
    let entries = ledger_for(&s, &id);
    assert_eq!(
        entries.iter().filter(|e| e["reason"] == "refund").count(),
        1
    );
    let refund = entries
        .iter()
        .find(|e| e["reason"] == "refund")
        .expect("refund");
    assert_eq!(refund["bucket"], "subscription");
    assert_eq!(refund["delta"], 1);

    let p = s.cancel(&id);
    let body = p.problem(409, "conflict");
    assert_eq!(body["job_status"], "canceled");
    let r = s
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{id}/cancel"))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(
        r.json,
        json!({"job_id": id, "accepted": false, "reason": "already_canceled"})
    );
    // Sticky: resuming the queue never runs it.
    let (ok, out) = s.admin(&["queue", "resume"]);
    assert!(ok);
    assert_eq!(out.trim(), "resumed");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.get(&format!("/v1/jobs/{id}")).json["status"], "canceled");
    assert_eq!(ledger_for(&s, &id).len(), 2, "one debit and one refund");

    // The generic route cancels a pending job with 202.
    s.admin(&["queue", "pause"]);
    std::thread::sleep(Duration::from_millis(1000));
    let id2 = id_of(&s.submit(&variant).json);
    let r = s
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{id2}/cancel"))
        .send();
    assert_eq!(r.status, 202);
    assert_eq!(r.json, json!({"job_id": id2, "accepted": true}));
    s.wait_status(&id2, "canceled", Duration::from_secs(5));
}

#[test]
fn a_running_job_is_canceled_mid_pipeline_and_refunded_exactly_once() {
    let s = Server::start(&["--stage-delay-ms", "400"]);
    let variant = s.create_variant("v");
    let id = id_of(&s.submit(&variant).json);
    // Wait until it is past numbering, inside a strategy stage.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let j = s.get(&format!("/v1/humanizations/{id}")).json;
        if j["status"] == "running" && j["stage"] != "numbering" && j["stage"].is_string() {
            assert_ne!(j["stage"], "finalizing");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reached a strategy stage: {j}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    let r = s.cancel(&id);
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "canceled");
    assert!(r.json["results"].is_null());
    assert!(r.json["started_at"].is_string() && r.json["canceled_at"].is_string());
    assert!(took < Duration::from_secs(2), "cancel took {took:?}");
    // Let any stage that was in flight run out; nothing may change afterwards.
    std::thread::sleep(Duration::from_millis(1200));
    let j = s.get(&format!("/v1/jobs/{id}")).json;
    assert_eq!(j["status"], "canceled");
    let entries = ledger_for(&s, &id);
    assert_eq!(
        entries.iter().filter(|e| e["reason"] == "refund").count(),
        1,
        "{entries:?}"
    );
    assert_eq!(entries.len(), 2);
    assert_eq!(s.balance(), 100);

    // The generic route signals a running job with 202; polling shows it canceled.
    let id2 = id_of(&s.submit(&variant).json);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(&format!("/v1/jobs/{id2}")).json["status"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = s
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{id2}/cancel"))
        .send();
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json, json!({"job_id": id2, "accepted": true}));
    s.wait_status(&id2, "canceled", Duration::from_secs(5));
    assert_eq!(ledger_for(&s, &id2).len(), 2);
}

#[test]
fn finalizing_refuses_cancel_and_completed_jobs_are_conflicts() {
    let s = Server::start(&["--stage-delay-ms", "600", "--strategies", "cdr_grafting"]);
    let variant = s.create_variant("v");
    let id = id_of(&s.submit(&variant).json);
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(&format!("/v1/jobs/{id}")).json["stage"] != "finalizing" {
        assert!(Instant::now() < deadline, "never reached finalizing");
        std::thread::sleep(Duration::from_millis(10));
    }
    // Both cancel routes refuse the same way.
    for route in [
        format!("/v1/humanizations/{id}/cancel"),
        format!("/v1/jobs/{id}/cancel"),
    ] {
        let r = s.req().method("POST").path(&route).send();
        assert_eq!(
            r.problem(409, "job_cancel_unavailable")["stage"],
            "finalizing",
            "{route}"
        );
    }
    let done = s.wait_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(done["results"].as_array().map(Vec::len), Some(1));
    let r = s.cancel(&id);
    assert_eq!(r.problem(409, "conflict")["job_status"], "completed");
    let r = s
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{id}/cancel"))
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["reason"], "already_completed");
    assert_eq!(r.json["accepted"], false);
    assert_eq!(
        ledger_for(&s, &id).len(),
        1,
        "a completed job is never refunded"
    );
    s.req()
        .method("POST")
        .path("/v1/humanizations/01a20651-60bf-7071-8acf-dd18d042cc9e/cancel")
        .send()
        .problem(404, "not_found");
}

#[test]
fn a_paused_queue_keeps_jobs_pending_and_prefer_wait_1_returns_202_after_a_second() {
    let s = Server::start(&["--paused"]);
    let variant = s.create_variant("v");
    let started = Instant::now();
    let r = s
        .req()
        .method("POST")
        .path("/v1/humanizations")
        .header("prefer", "wait=1")
        .json(&json!({ "variant_id": variant }))
        .send();
    let took = started.elapsed();
    assert_eq!(r.status, 202, "{}", r.text);
    assert_eq!(r.json["status"], "pending");
    assert!(r.header("preference-applied").is_none());
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "took {took:?}"
    );
    let id = id_of(&r.json);
    let metrics = s.req().key(None).path("/metrics").send().text;
    assert!(metrics.contains("veneer_queue_depth 1"), "{metrics}");
    assert!(metrics.contains("veneer_queue_paused 1"));

    let (ok, out) = s.admin(&["queue", "resume"]);
    assert!(ok && out.trim() == "resumed");
    let resumed = Instant::now();
    s.wait_status(&id, "completed", Duration::from_secs(5));
    assert!(
        resumed.elapsed() < Duration::from_secs(3),
        "noticed within a second or so"
    );

    let (ok, out) = s.admin(&["queue", "pause"]);
    assert!(ok && out.trim() == "paused");
    std::thread::sleep(Duration::from_millis(1000));
    let id = id_of(&s.submit(&variant).json);
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(s.get(&format!("/v1/jobs/{id}")).json["status"], "pending");
}

#[test]
fn one_labs_batch_does_not_starve_another_labs_single_job() {
    let s = Server::start(&[
        "--paused",
        "--workers",
        "1",
        "--stage-delay-ms",
        "40",
        "--write-burst",
        "50",
    ]);
    let variant = s.create_variant("v");
    let batch: Vec<String> = (0..8).map(|_| id_of(&s.submit(&variant).json)).collect();
    let (_, other) = s.new_org("second lab", 5, None);
    let as_other =
        |method: &str, path: &str, body: Option<Value>| s.as_key(&other, method, path, body);
    let v = as_other(
        "POST",
        "/v1/variants",
        Some(json!({"name": "b", "vh": crate::common::VH, "vl": crate::common::VL})),
    );
    let single = id_of(
        &as_other(
            "POST",
            "/v1/humanizations",
            Some(json!({"variant_id": id_of(&v.json)})),
        )
        .json,
    );
    s.admin(&["queue", "resume"]);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let j = as_other("GET", &format!("/v1/jobs/{single}"), None).json;
        if j["status"] == "completed" {
            break;
        }
        assert!(Instant::now() < deadline, "the single job never ran");
        std::thread::sleep(Duration::from_millis(5));
    }
    let unfinished = batch
        .iter()
        .filter(|id| s.get(&format!("/v1/jobs/{id}")).json["status"] != "completed")
        .count();
    assert!(
        unfinished >= 5,
        "the single job waited behind {} of 8",
        8 - unfinished
    );
    for id in &batch {
        s.wait_status(id, "completed", Duration::from_secs(30));
    }
}

#[test]
fn a_job_keeps_its_snapshot_when_its_variant_is_deleted() {
    let s = Server::start(&["--paused"]);
    let variant = s.create_variant("v");
    let id = id_of(&s.submit(&variant).json);
    let del = s
        .req()
        .method("DELETE")
        .path(&format!("/v1/variants/{variant}"))
        .send();
    assert_eq!(del.status, 204);
    s.admin(&["queue", "resume"]);
    let done = s.wait_status(&id, "completed", Duration::from_secs(10));
    assert_eq!(done["inputs"]["variant_id"], variant.as_str());
    assert!(!done["results"].as_array().expect("results").is_empty());
}

#[test]
fn idempotency_keys_expire_after_their_ttl() {
    // A TTL of zero hours: every key has expired by the time it is looked up again.
    let s = Server::start(&["--idempotency-ttl-hours", "0"]);
    let variant = s.create_variant("v");
    let send = || {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("idempotency-key", "short-lived")
            .json(&json!({ "variant_id": variant }))
            .send()
    };
    let first = send();
    let second = send();
    assert_eq!(first.status, 202);
    assert_eq!(second.status, 202);
    assert!(second.header("idempotent-replayed").is_none());
    assert_ne!(first.json["id"], second.json["id"]);
}
