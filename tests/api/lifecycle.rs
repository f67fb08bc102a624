//! The process around the API: graceful shutdown, recovery after restart, rate limits, the
//! persisted quota, and the admin commands' exact output.

use std::time::{Duration, Instant};

use crate::common::{Server, id_of};
use serde_json::json;

#[test]
fn sigterm_exits_0_and_a_restart_finishes_what_was_pending_and_running() {
    let mut s = Server::start(&["--workers", "1", "--stage-delay-ms", "300"]);
    let variant = s.create_variant("v");
    let ids: Vec<String> = (0..3).map(|_| id_of(&s.submit(&variant).json)).collect();
    s.wait_running(&ids[0]);
    let status = s.terminate();
    assert!(status.success(), "exit status {status:?}");
    // On SQLite, the WAL was checkpointed into the main file.
    if let Some(file) = s.db_file() {
        let wal = file.with_extension("db-wal");
        assert!(std::fs::metadata(&wal).map_or(0, |m| m.len()) == 0);
    }

    // A restart prints no new key, finds the interrupted job pending again and runs it all.
    assert_eq!(s.spawn(), None, "the bootstrap key is printed once");
    for id in &ids {
        let job = s.wait_status(id, "completed", Duration::from_secs(20));
        assert!(job["results"].is_array());
    }
    let ledger = s.ledger();
    assert!(
        ledger.iter().all(|e| e["reason"] != "refund"),
        "shutdown is not a cancel"
    );
    assert_eq!(s.get("/v1/organization").json["credit_balance"], 97);
    assert!(s.terminate().success());
}

#[test]
fn sigterm_requeues_a_running_job_without_refund() {
    let mut s = Server::start(&["--stage-delay-ms", "2000"]);
    let variant = s.create_variant("v");
    let id = id_of(
        &s.post("/v1/humanizations", &json!({"variant_id": variant}))
            .json,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while s.get(&format!("/v1/jobs/{id}")).json["status"] != "running" {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    let started = Instant::now();
    assert!(s.terminate().success());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the running task was stopped, not awaited"
    );
    // Read the database offline through the admin tool: pending, no refund.
    let (ok, ledger) = s.admin(&["credits", "ledger", "--org", &org_of(&s)]);
    assert!(ok);
    assert!(!ledger.contains("refund"), "{ledger}");
    s.spawn();
    let job = s.get(&format!("/v1/jobs/{id}")).json;
    assert!(
        job["status"] == "pending" || job["status"] == "running",
        "requeued, not canceled: {job}"
    );
    assert!(s.terminate().success());
}

fn org_of(s: &Server) -> String {
    let (ok, list) = s.admin(&["orgs", "list"]);
    assert!(ok);
    list.split('\t').next().expect("org id").to_string()
}

#[test]
fn rate_limits_answer_429_with_retry_after_and_headers() {
    // Slow refills, so a stalled test machine cannot refill a bucket between two requests.
    let s = Server::start(&[
        "--read-rate",
        "0.2",
        "--read-burst",
        "3",
        "--write-rate",
        "0.5",
        "--write-burst",
        "1",
    ]);
    let r = s.get("/v1/organization");
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("2"));
    assert!(r.header("x-ratelimit-reset").is_some());
    s.get("/v1/organization");
    s.get("/v1/organization");
    let r = s.get("/v1/organization");
    r.problem(429, "rate_limited");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(
        (1..=5).contains(&retry),
        "one token takes 5 s at 0.2/s: {retry}"
    );
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-limit"), Some("3"));
    // Writes have their own bucket.
    let r = s.post(
        "/v1/variants",
        &json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL}),
    );
    assert_eq!(r.status, 201);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1"));
    let first = r.json.clone();
    let r = s.post(
        "/v1/variants",
        &json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL}),
    );
    r.problem(429, "rate_limited");
    // Another key has its own buckets.
    let (_, other) = s.new_org("b", 0, None);
    assert_eq!(
        s.req()
            .key(Some(&other))
            .path("/v1/organization")
            .send()
            .status,
        200
    );
    // Buckets refill (writes at 0.5/s: slow enough that a stalled machine cannot refill the
    // bucket between the two writes above, fast enough to wait for here).
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        s.req()
            .method("DELETE")
            .path(&format!("/v1/variants/{}", id_of(&first)))
            .send()
            .status,
        204
    );
}

#[test]
fn the_daily_write_quota_survives_a_restart() {
    let mut s = Server::start(&["--daily-write-quota", "2"]);
    let body = json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL});
    assert_eq!(s.post("/v1/variants", &body).status, 201);
    assert_eq!(s.post("/v1/variants", &body).status, 201);
    let r = s.post("/v1/variants", &body);
    r.problem(429, "quota_exceeded");
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("retry-after");
    assert!((1..=86_400).contains(&retry));
    // Reads are not writes.
    assert_eq!(s.get("/v1/variants").status, 200);
    assert!(s.terminate().success());
    s.spawn();
    s.post("/v1/variants", &body).problem(429, "quota_exceeded");
}

/// Every write request counts once against its organization's quota, whatever it answers —
/// created, refused before the store (400), refused by it (402, 404), replayed — and past the
/// quota every write request answers 429 and changes nothing (SPEC §8).
#[test]
fn every_write_request_counts_once_and_past_the_quota_each_answers_429() {
    let s = Server::start(&["--daily-write-quota", "7"]);
    let (org, key) = s.new_org("Quota Lab", 0, None);
    let as_b = |method: &str, path: &str, body: Option<serde_json::Value>| {
        s.as_key(&key, method, path, body)
    };
    let variant = json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL});
    let unknown = "01900000-0000-7000-8000-000000000000";
    // 1: created.
    let created = as_b("POST", "/v1/variants", Some(variant.clone()));
    assert_eq!(created.status, 201, "{}", created.text);
    let variant_id = id_of(&created.json);
    // 2: refused before anything is stored.
    as_b("POST", "/v1/variants", Some(json!({"name": ""}))).problem(400, "invalid_request");
    // 3: refused by the store (no credits), 4: an unknown variant, 5: an unknown job.
    let submit = json!({ "variant_id": variant_id });
    as_b("POST", "/v1/humanizations", Some(submit.clone())).problem(402, "insufficient_credits");
    let r = as_b(
        "POST",
        "/v1/humanizations",
        Some(json!({ "variant_id": unknown })),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = as_b("POST", &format!("/v1/jobs/{unknown}/cancel"), None);
    assert_eq!(r.status, 404, "{}", r.text);
    // 6: created under an idempotency key, 7: its replay.
    let keyed = || {
        s.req()
            .key(Some(&key))
            .method("POST")
            .path("/v1/variants")
            .header("Idempotency-Key", "quota-replay")
            .json(&json!({"name": "b", "vh": crate::common::VH, "vl": crate::common::VL}))
            .send()
    };
    assert_eq!(keyed().status, 201);
    let replay = keyed();
    assert_eq!(replay.status, 201, "{}", replay.text);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));

    // The quota is used up: whatever the request, 429 — and nothing happens.
    let (ok, _) = s.admin(&["credits", "grant", "--org", &org, "--amount", "100"]);
    assert!(ok);
    let refusals = [
        as_b("POST", "/v1/variants", Some(variant.clone())),
        as_b("POST", "/v1/variants", Some(json!({"name": ""}))),
        as_b("POST", "/v1/humanizations", Some(submit.clone())),
        as_b("POST", &format!("/v1/jobs/{unknown}/cancel"), None),
        as_b("DELETE", &format!("/v1/variants/{variant_id}"), None),
        keyed(),
    ];
    for r in &refusals {
        r.problem(429, "quota_exceeded");
        assert!(r.header("retry-after").is_some());
    }
    // Reads are not writes: two variants, no job, the grant untouched.
    let variants = as_b("GET", "/v1/variants", None);
    assert_eq!(variants.status, 200);
    assert_eq!(variants.json["data"].as_array().map(Vec::len), Some(2));
    let jobs = as_b("GET", "/v1/jobs", None);
    assert_eq!(jobs.json["data"].as_array().map(Vec::len), Some(0));
    let organization = as_b("GET", "/v1/organization", None);
    assert_eq!(organization.json["credit_balance"], 100);
    // The quota is the organization's: the bootstrap organization still writes.
    assert_eq!(s.post("/v1/variants", &variant).status, 201);
}

#[test]
fn admin_commands_print_what_spec_says() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = crate::common::fresh_db(dir.path());
    let (ok, org) = crate::common::admin(&db, &["orgs", "create", "Lab One", "--credits", "7"]);
    assert!(ok);
    let org = org.trim_end_matches('\n');
    assert_eq!(org.len(), 36, "a lone UUID: {org:?}");
    assert!(!org.contains('\n'));
    let (ok, key) = crate::common::admin(
        &db,
        &[
            "keys",
            "create",
            "--org",
            org,
            "--scopes",
            "variants:read,jobs:read",
        ],
    );
    assert!(ok);
    assert_eq!(key.lines().count(), 1);
    assert!(key.starts_with("vnr_") && key.trim().len() >= 36, "{key}");
    let (ok, keys) = crate::common::admin(&db, &["keys", "list", "--org", org]);
    assert!(ok);
    assert!(
        keys.contains("variants:read,jobs:read") && keys.contains("active"),
        "{keys}"
    );
    let (ok, _) = crate::common::admin(
        &db,
        &["keys", "create", "--org", org, "--scopes", "everything"],
    );
    assert!(!ok, "unknown scopes are refused");
    let (ok, _) = crate::common::admin(&db, &["keys", "create", "--org", "nope"]);
    assert!(!ok);
    let (ok, balance) =
        crate::common::admin(&db, &["credits", "grant", "--org", org, "--amount", "3"]);
    assert!(ok);
    assert_eq!(balance, "10\n");
    let (ok, orgs) = crate::common::admin(&db, &["orgs", "list"]);
    assert!(ok);
    assert!(
        orgs.starts_with(&format!("{org}\tLab One\t10\t10\t0\t")),
        "{orgs}"
    );
    let (ok, ledger) = crate::common::admin(&db, &["credits", "ledger", "--org", org]);
    assert!(ok);
    assert_eq!(ledger.lines().count(), 2);
    assert!(ledger.lines().all(|l| l.contains("\tgrant\t")));

    // Import: CSV and FASTA through the shared reader; bad records are reported, good kept.
    let csv = dir.path().join("v.csv");
    std::fs::write(
        &csv,
        format!(
            "name,vh,vl\nok1,{},{}\nbad,EVQLXX,{}\n",
            crate::common::VH,
            crate::common::VL,
            crate::common::VL
        ),
    )
    .expect("write");
    let out = std::process::Command::new(crate::common::BIN)
        .arg("--db")
        .arg(&db)
        .args(["variants", "import", "--org", org])
        .arg(&csv)
        .output()
        .expect("run");
    assert!(!out.status.success(), "one record was bad");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.trim_end().ends_with("\tok1"), "{stdout}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bad: VH:"));
    let fasta = dir.path().join("v.fa");
    std::fs::write(
        &fasta,
        format!(
            ">ab1 VH\n{}\n>ab1 VL\n{}\n",
            crate::common::VH,
            crate::common::VL
        ),
    )
    .expect("write");
    let (ok, imported) = crate::common::admin(
        &db,
        &[
            "variants",
            "import",
            "--org",
            org,
            fasta.to_str().expect("path"),
        ],
    );
    assert!(ok);
    assert!(imported.trim_end().ends_with("\tab1"));

    let (ok, out) = crate::common::admin(&db, &["queue", "pause"]);
    assert!(ok && out == "paused\n");
    let (ok, out) = crate::common::admin(&db, &["queue", "resume"]);
    assert!(ok && out == "resumed\n");

    // Backup: a consistent copy another process can open and read (SQLite; PostgreSQL is
    // backed up with its own tools, and the command says so instead of writing anything).
    let copy = dir.path().join("copy.db");
    let copy = copy.to_str().expect("path");
    let (ok, _) = crate::common::admin(&db, &["backup", copy]);
    if crate::common::backend() == crate::common::Backend::Sqlite {
        assert!(ok);
        let (ok, orgs_in_copy) = crate::common::admin(copy, &["orgs", "list"]);
        assert!(ok);
        assert_eq!(orgs_in_copy, orgs);
        let (ok, _) = crate::common::admin(&db, &["backup", copy]);
        assert!(!ok, "an existing file is not overwritten");
    } else {
        assert!(!ok, "backup refuses a PostgreSQL database");
        assert!(!std::path::Path::new(copy).exists());
    }

    // VENEER_DB names the database too.
    let out = std::process::Command::new(crate::common::BIN)
        .env("VENEER_DB", &db)
        .args(["orgs", "list"])
        .output()
        .expect("run");
    assert_eq!(String::from_utf8_lossy(&out.stdout), orgs);
}

#[test]
fn a_second_start_on_the_same_database_keeps_organizations_and_keys() {
    let mut s = Server::start(&[]);
    let first_key = s.key.clone();
    assert!(s.terminate().success());
    assert_eq!(s.spawn(), None);
    let r = s
        .req()
        .key(Some(&first_key))
        .path("/v1/organization")
        .send();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["credit_balance"], 100);
    // readyz and shutdown.
    assert_eq!(s.req().key(None).path("/readyz").send().status, 200);
    assert!(s.terminate().success());
}

#[test]
fn a_killed_server_loses_nothing_and_reruns_interrupted_jobs_on_start() {
    let mut s = Server::start(&["--workers", "1", "--stage-delay-ms", "200"]);
    let variant = s.create_variant("v");
    let ids: Vec<String> = (0..3).map(|_| id_of(&s.submit(&variant).json)).collect();
    s.wait_running(&ids[0]);
    // SIGKILL: no shutdown code runs at all.
    let mut child = s.child.take().expect("running");
    child.kill().expect("kill");
    child.wait().expect("wait");
    s.spawn();
    for id in &ids {
        s.wait_status(id, "completed", Duration::from_secs(20));
    }
    assert!(s.ledger().iter().all(|e| e["reason"] != "refund"));
    assert_eq!(s.get("/v1/organization").json["credit_balance"], 97);
}

#[test]
fn shutdown_ends_long_polls_promptly_and_still_exits_0() {
    let mut s = Server::start(&["--paused"]);
    let variant = s.create_variant("v");
    let addr = s.addr.clone();
    let key = s.key.clone();
    let body = json!({"variant_id": variant}).to_string();
    let poll = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&addr).expect("connect");
        let request = format!(
            "POST /v1/humanizations HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\nprefer: wait=60\r\nconnection: close\r\n\
             content-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("write");
        let started = Instant::now();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        (started.elapsed(), response)
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    assert!(s.terminate().success());
    assert!(started.elapsed() < Duration::from_secs(5));
    let (waited, response) = poll.join().expect("poll");
    assert!(
        waited < Duration::from_secs(10),
        "the long poll was released: {waited:?}"
    );
    assert!(response.starts_with("HTTP/1.1 202"), "{response}");
    assert!(response.contains("\"status\":\"pending\""));
    // The job survived the restart and runs once the queue is resumed.
    s.spawn();
    s.admin(&["queue", "resume"]);
    let jobs = s.get("/v1/jobs").json;
    let id = id_of(&jobs["data"][0]);
    s.wait_status(&id, "completed", Duration::from_secs(10));
}

#[test]
fn each_request_is_one_structured_log_line_on_stderr() {
    let mut s = Server::start(&[]);
    let r = s
        .req()
        .path("/v1/organization")
        .header("x-request-id", "log-me-7")
        .send();
    assert_eq!(r.status, 200);
    s.get("/v1/nowhere");
    assert!(s.terminate().success());
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("request_id=\"log-me-7\""))
        .unwrap_or_else(|| panic!("no line for the request in:\n{log}"));
    assert!(line.contains("route=\"/v1/organization\""), "{line}");
    assert!(line.contains("status=200"), "{line}");
    assert!(line.contains("latency_ms="), "{line}");
    assert!(
        log.lines()
            .any(|l| l.contains("route=\"unmatched\"") && l.contains("status=404"))
    );
    // Logs go to stderr only; stdout held just the two start-up lines (read by the helper).
    assert!(!log.contains("listening on"));
}
