//! Stress: many clients at once against the last credits of an organization, and many
//! cancels of one job. The invariants: a balance never goes below zero, exactly as many jobs
//! are accepted as there were credits, a job is refunded at most once, and the cached balance
//! equals the ledger.

use std::sync::Arc;

use crate::common::{Server, assert_spent_exactly, fast, id_of};
use serde_json::json;

#[test]
fn concurrent_submits_against_the_last_credits_accept_exactly_the_balance() {
    const CREDITS: i64 = 7;
    // Paused: the accepted jobs stay pending, so nothing is refunded behind the test's back.
    let s = Arc::new(Server::start(&fast(&["--paused"])));
    let (_org, key) = s.new_org("poor lab", CREDITS, None);
    let variant = s.create_variant_as(&key);
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (s, key, variant) = (Arc::clone(&s), key.clone(), variant.clone());
            std::thread::spawn(move || {
                (0..5)
                    .map(|i| {
                        let mut req = s
                            .req()
                            .key(Some(&key))
                            .method("POST")
                            .path("/v1/humanizations");
                        // Half with distinct keys, half with none: neither may overspend.
                        if (t + i) % 2 == 0 {
                            req = req.header("idempotency-key", &format!("k-{t}-{i}"));
                        }
                        req.json(&json!({"variant_id": variant})).send()
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
    assert_spent_exactly(&answers, &s, &key, CREDITS);
}

#[test]
fn many_concurrent_cancels_of_one_pending_job_refund_it_once() {
    let s = Arc::new(Server::start(&fast(&["--paused"])));
    let variant = s.create_variant("v");
    for round in 0..3 {
        let id = id_of(&s.submit(&variant).json);
        let barrier = Arc::new(std::sync::Barrier::new(16));
        let threads: Vec<_> = (0..16)
            .map(|t| {
                let (s, id, barrier) = (Arc::clone(&s), id.clone(), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    // Both cancel routes at once: they share one transition.
                    let generic = t % 4 == 3;
                    let path = if generic {
                        format!("/v1/jobs/{id}/cancel")
                    } else {
                        format!("/v1/humanizations/{id}/cancel")
                    };
                    (generic, s.req().method("POST").path(&path).send())
                })
            })
            .collect();
        let mut won = 0;
        for t in threads {
            let (generic, r) = t.join().expect("thread");
            match (generic, r.status) {
                (false, 200) => {
                    assert_eq!(r.json["status"], "canceled", "{}", r.text);
                    won += 1;
                }
                (false, 409) => {
                    let p = r.problem(409, "conflict");
                    assert_eq!(p["status"], 409);
                }
                (true, 202) => {
                    assert_eq!(r.json["accepted"], true, "{}", r.text);
                    won += 1;
                }
                (true, 200) => {
                    assert_eq!(r.json["accepted"], false, "{}", r.text);
                    assert_eq!(r.json["reason"], "already_canceled", "{}", r.text);
                }
                (_, other) => panic!("cancel answered {other}: {}", r.text),
            }
        }
        assert_eq!(won, 1, "round {round}: exactly one cancel wins");
        let job = s.get(&format!("/v1/jobs/{id}")).json;
        assert_eq!(job["status"], "canceled");
        let ledger = s.ledger();
        let refunds = ledger
            .iter()
            .filter(|e| e["job_id"] == id.as_str() && e["reason"] == "refund")
            .count();
        assert_eq!(refunds, 1, "round {round}: one refund");
    }
    assert_eq!(s.get("/v1/organization").json["credit_balance"], 100);
    let sum: i64 = s.ledger().iter().filter_map(|e| e["delta"].as_i64()).sum();
    assert_eq!(sum, 100);
}
