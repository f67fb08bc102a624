//! `veneer migrate`: a lab's SQLite database moved into PostgreSQL keeps everything a client
//! and the operator can see, and a target that holds anything is refused. Needs the suite's
//! PostgreSQL (`VENEER_TEST_BACKEND=postgres`).

use std::time::Duration;

use serde_json::json;

use crate::common::{Backend, Server, admin, backend, id_of};

#[test]
fn a_sqlite_database_moves_to_postgres_with_everything_a_client_sees() {
    if backend() != Backend::Postgres {
        eprintln!("skipped: migrate needs VENEER_TEST_BACKEND=postgres");
        return;
    }
    // A lab on SQLite: variants, a completed, a canceled and a pending job, an idempotent
    // submit, a second organization, a revoked key.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lab.db").to_string_lossy().into_owned();
    let mut lab = Server::start_on(dir, Some(file.clone()), "127.0.0.1:0", &[]);
    assert!(!lab.key.is_empty());
    let variant = lab.create_variant("v");
    let done = id_of(&lab.submit(&variant).json);
    lab.wait_status(&done, "completed", Duration::from_secs(20));
    assert_eq!(lab.admin(&["queue", "pause"]).1, "paused\n");
    std::thread::sleep(Duration::from_millis(600));
    let canceled = id_of(&lab.submit(&variant).json);
    let r = lab.cancel(&canceled);
    assert_eq!(r.json["status"], "canceled");
    let submit = |s: &Server| {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("idempotency-key", "batch-7")
            .json(&json!({ "variant_id": variant }))
            .send()
    };
    let pending = id_of(&submit(&lab).json);
    let (org2, key2) = lab.new_org("second lab", 9, Some("variants:read"));
    let (_, listed) = lab.admin(&["keys", "list", "--org", &org2]);
    let key2_id = listed.split('\t').next().expect("key id").to_string();
    let (_, revoked_key) = lab.new_org("third lab", 0, None);
    let (_, orgs) = lab.admin(&["orgs", "list"]);
    let third = orgs
        .lines()
        .find(|l| l.contains("third lab"))
        .and_then(|l| l.split('\t').next())
        .expect("third org")
        .to_string();
    let (_, third_keys) = lab.admin(&["keys", "list", "--org", &third]);
    let third_key_id = third_keys.split('\t').next().expect("key").to_string();
    assert!(lab.admin(&["keys", "revoke", &third_key_id]).0);
    let balance = lab.balance();
    let ledger = lab.ledger_all();
    let jobs = lab.get("/v1/jobs?limit=100").json["data"].clone();
    let (_, orgs_before) = lab.admin(&["orgs", "list"]);
    let (_, keys_before) = lab.admin(&["keys", "list", "--org", &org2]);
    assert!(lab.terminate().success());

    let target = crate::pg::cluster().create_database();
    let out = std::process::Command::new(crate::common::BIN)
        .args(["migrate", "--from", &file, "--to", &target])
        .output()
        .expect("migrate");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One `table<TAB>rows` line per table, the counts of what was written above.
    let count = |table: &str| -> i64 {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{table}\t")))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no {table} line in {stdout:?}"))
    };
    assert_eq!(count("organizations"), 3);
    assert_eq!(count("api_keys"), 3);
    assert_eq!(count("variants"), 1);
    assert_eq!(count("jobs"), 3);
    assert_eq!(
        count("credit_ledger") as usize,
        ledger.len() + 1,
        "and the second lab's grant"
    );
    assert_eq!(count("idempotency_keys"), 1);
    assert_eq!(count("settings"), 1);

    // Migrating again into the now non-empty database is refused and changes nothing.
    let again = std::process::Command::new(crate::common::BIN)
        .args(["migrate", "--from", &file, "--to", &target])
        .output()
        .expect("migrate");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));
    assert_eq!(admin(&target, &["orgs", "list"]).1, orgs_before);

    // The same lab on PostgreSQL: balances, ledger, jobs, keys and the replay all hold.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut moved = Server::start_on(dir, Some(target.clone()), "127.0.0.1:0", &[]);
    assert!(
        moved.key.is_empty(),
        "no new bootstrap key: the organizations came along"
    );
    moved.key = lab.key.clone();
    assert_eq!(moved.balance(), balance);
    assert_eq!(moved.ledger_all(), ledger);
    assert_eq!(moved.get("/v1/jobs?limit=100").json["data"], jobs);
    assert_eq!(
        admin(&target, &["keys", "list", "--org", &org2]).1,
        keys_before
    );
    assert!(keys_before.contains(&key2_id));
    assert_eq!(
        moved.as_key(&key2, "GET", "/v1/variants", None).status,
        200,
        "a migrated key authenticates with its scopes"
    );
    moved
        .as_key(&revoked_key, "GET", "/v1/organization", None)
        .problem(401, "unauthenticated");
    let replay = submit(&moved);
    assert_eq!(id_of(&replay.json), pending);
    assert_eq!(replay.header("idempotent-replayed"), Some("true"));
    // The queue was paused on SQLite and is paused here; resumed, the pending job runs.
    assert_eq!(
        moved.get(&format!("/v1/jobs/{pending}")).json["status"],
        "pending"
    );
    assert!(admin(&target, &["queue", "resume"]).0);
    moved.wait_status(&pending, "completed", Duration::from_secs(20));
    assert!(moved.terminate().success());
}

#[test]
fn migrate_refuses_what_it_cannot_move() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(crate::common::BIN)
            .arg("migrate")
            .args(args)
            .output()
            .expect("migrate");
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.path().join("none.db");
    let (code, err) = run(&[
        "--from",
        missing.to_str().expect("path"),
        "--to",
        "postgres://u@127.0.0.1:1/x",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("no such database file"), "{err}");
    assert!(!missing.exists(), "nothing was created");
    let file = dir.path().join("x.db");
    std::fs::write(&file, b"").expect("file");
    let (code, err) = run(&[
        "--from",
        file.to_str().expect("path"),
        "--to",
        dir.path().join("y.db").to_str().expect("path"),
    ]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--to must be a postgres:// URL"), "{err}");
}
