//! Conventions, errors, auth, organizations, credits and variants, against the real binary.

use crate::common::{Server, VH, VL};
use serde_json::json;

#[test]
fn operator_endpoints_answer_without_a_key() {
    let s = Server::start(&[]);
    let r = s.req().key(None).path("/healthz").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["status"], "ok");
    let r = s.req().key(None).path("/readyz").send();
    assert_eq!(r.status, 200);
    let r = s.req().key(None).path("/openapi.json").send();
    assert_eq!(r.status, 200);
    assert_eq!(r.json["openapi"], "3.1.0");
    // Some traffic, then the metrics show it.
    s.get("/v1/organization");
    let r = s.req().key(None).path("/metrics").send();
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("text/plain")
    );
    assert!(r.text.contains(
        "veneer_http_requests_total{method=\"GET\",route=\"/v1/organization\",status=\"200\"} 1"
    ));
    assert!(r.text.contains("veneer_queue_depth 0"));
    assert!(
        r.text
            .contains("veneer_job_duration_seconds_bucket{le=\"+Inf\"}")
    );
}

#[test]
fn request_ids_are_echoed_or_made_and_unknown_paths_and_methods_are_problems() {
    let s = Server::start(&[]);
    let r = s
        .req()
        .path("/v1/organization")
        .header("x-request-id", "trace-42")
        .send();
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let r = s.get("/v1/organization");
    let made = r.header("x-request-id").expect("a request id");
    assert!(made.starts_with("req_"));
    // An insane id (too long) is replaced.
    let long = "x".repeat(300);
    let r = s
        .req()
        .path("/healthz")
        .header("x-request-id", &long)
        .send();
    assert_ne!(r.header("x-request-id"), Some(long.as_str()));

    s.get("/v1/nothing-here").problem(404, "not_found");
    s.get("/v1/jobs/").problem(404, "not_found");
    let r = s.req().method("PUT").path("/v1/variants").send();
    r.problem(405, "method_not_allowed");
    assert_eq!(r.header("allow"), Some("GET, POST"));
    let r = s.req().method("POST").path("/v1/jobs/x").send();
    assert_eq!(r.header("allow"), Some("GET"));
    r.problem(405, "method_not_allowed");
    let r = s
        .req()
        .method("DELETE")
        .path("/v1/humanizations/x/cancel")
        .send();
    assert_eq!(r.header("allow"), Some("POST"));
}

#[test]
fn authentication_by_bearer_or_header_and_revocation() {
    let s = Server::start(&[]);
    let r = s.req().key(None).path("/v1/organization").send();
    r.problem(401, "unauthenticated");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    s.req()
        .key(Some("vnr_not-a-real-key-at-all-0000000000000"))
        .path("/v1/organization")
        .send()
        .problem(401, "unauthenticated");
    s.req()
        .key(None)
        .path("/v1/organization")
        .header("authorization", "Basic abc")
        .send()
        .problem(401, "unauthenticated");
    let r = s
        .req()
        .key(None)
        .path("/v1/organization")
        .header("x-api-key", &s.key)
        .send();
    assert_eq!(r.status, 200);
    // Organization shape.
    assert_eq!(r.json["name"], "default");
    assert_eq!(r.json["credit_balance"], 100);
    assert_eq!(
        r.json["buckets"],
        json!({"subscription": 100, "purchased": 0})
    );
    assert!(
        r.json["created_at"]
            .as_str()
            .unwrap_or("")
            .ends_with("+00:00")
    );

    // Only a hash and a prefix are stored: the key text is nowhere in the database.
    let bytes = s.raw_contents();
    let needle = s.key.as_bytes();
    assert!(!bytes.windows(needle.len()).any(|w| w == needle));

    let org = r.json["id"].as_str().expect("id").to_string();
    let (ok, listed) = s.admin(&["keys", "list", "--org", &org]);
    assert!(ok);
    let key_id = listed.split('\t').next().expect("key id").to_string();
    assert!(
        listed.contains(&s.key[..12]),
        "the display prefix is listed"
    );
    let (ok, out) = s.admin(&["keys", "revoke", &key_id]);
    assert!(ok);
    assert_eq!(out.trim(), key_id);
    s.get("/v1/organization").problem(401, "unauthenticated");
}

/// The key's id, as `veneer keys list` prints it, for the key starting with `secret`'s prefix.
fn key_id(s: &Server, org: &str, secret: &str) -> String {
    let (ok, listed) = s.admin(&["keys", "list", "--org", org]);
    assert!(ok);
    let line = listed
        .lines()
        .find(|l| l.contains(&secret[..12]))
        .expect("the key is listed");
    line.split('\t').next().expect("key id").to_string()
}

/// A 401 for a key that is gone: a problem, and no rate-limit headers (it is no longer a key).
fn refused_as_revoked(r: &crate::common::Resp) {
    r.problem(401, "unauthenticated");
    assert_eq!(r.header("x-ratelimit-limit"), None, "{}", r.text);
}

#[test]
fn a_revoked_key_is_refused_at_its_next_write_whatever_it_would_have_answered() {
    // Write requests may take their key from memory; each is confirmed live in the request's
    // own count, so a revocation by another process holds at the key's very next request.
    let s = Server::start(&["--paused"]);
    let (org, key) = s.new_org("revoked", 100, None);
    let (_, reader) = s.new_org("readers", 5, Some("variants:read"));
    let (ok, watcher) = s.admin(&["keys", "create", "--org", &org]);
    assert!(ok);
    let watcher = watcher.trim().to_string();

    // Every kind of write answer while the key is live, each from the key in memory after the
    // first: 201 created, 202 accepted, 200 canceled, 400 refused, 404 unknown.
    let variant = s.create_variant_as(&key);
    let submit = json!({ "variant_id": variant });
    let r = s.as_key(&key, "POST", "/v1/humanizations", Some(submit.clone()));
    assert_eq!(r.status, 202, "{}", r.text);
    let pending = r.json["id"].as_str().expect("id").to_string();
    let r = s.as_key(&key, "POST", "/v1/humanizations", Some(submit.clone()));
    assert_eq!(r.status, 202, "{}", r.text);
    let canceled = r.json["id"].as_str().expect("id").to_string();
    let r = s.as_key(
        &key,
        "POST",
        &format!("/v1/humanizations/{canceled}/cancel"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    s.as_key(&key, "POST", "/v1/variants", Some(json!({ "name": "x" })))
        .problem(400, "invalid_request");
    let unknown = "01a20651-60bf-7071-8acf-dd18d042cc9e";
    s.as_key(&key, "POST", &format!("/v1/jobs/{unknown}/cancel"), None)
        .problem(404, "not_found");
    s.as_key(
        &reader,
        "POST",
        "/v1/variants",
        Some(json!({ "name": "a", "vh": VH, "vl": VL })),
    )
    .problem(403, "forbidden");
    let org_before = s.as_key(&watcher, "GET", "/v1/organization", None);
    let variants_before = s.all_pages(&watcher, "/v1/variants").len();
    let jobs_before = s.all_pages(&watcher, "/v1/humanizations").len();

    let (ok, _) = s.admin(&["keys", "revoke", &key_id(&s, &org, &key)]);
    assert!(ok);
    let reader_org = s.as_key(&reader, "GET", "/v1/organization", None).json["id"]
        .as_str()
        .expect("org id")
        .to_string();
    let (ok, _) = s.admin(&["keys", "revoke", &key_id(&s, &reader_org, &reader)]);
    assert!(ok);

    // A read first, its key held from the requests above: 401 too (a held key's reads ask
    // whether it is still live, in their read transaction).
    refused_as_revoked(&s.as_key(&key, "GET", &format!("/v1/humanizations/{pending}"), None));
    // Each write answer now 401, whatever it would have been, and none of them wrote.
    let variant_body = json!({ "name": "after", "vh": VH, "vl": VL });
    refused_as_revoked(&s.as_key(&key, "POST", "/v1/variants", Some(variant_body.clone())));
    refused_as_revoked(&s.as_key(&key, "POST", "/v1/humanizations", Some(submit)));
    refused_as_revoked(&s.as_key(
        &key,
        "POST",
        &format!("/v1/humanizations/{pending}/cancel"),
        None,
    ));
    refused_as_revoked(&s.as_key(&key, "POST", "/v1/variants", Some(json!({ "name": "x" }))));
    refused_as_revoked(&s.as_key(&key, "POST", &format!("/v1/jobs/{unknown}/cancel"), None));
    refused_as_revoked(&s.as_key(&reader, "POST", "/v1/variants", Some(variant_body)));
    refused_as_revoked(&s.as_key(&key, "GET", "/v1/organization", None));

    let org_after = s.as_key(&watcher, "GET", "/v1/organization", None);
    assert_eq!(
        org_after.json["credit_balance"],
        org_before.json["credit_balance"]
    );
    assert_eq!(s.all_pages(&watcher, "/v1/variants").len(), variants_before);
    assert_eq!(
        s.all_pages(&watcher, "/v1/humanizations").len(),
        jobs_before
    );
    let job = s.as_key(
        &watcher,
        "GET",
        &format!("/v1/humanizations/{pending}"),
        None,
    );
    assert_eq!(job.json["status"], "pending", "{}", job.text);
    // The organization's other key writes on.
    assert_eq!(s.create_variant_as(&watcher).len(), 36);
}

#[test]
fn a_revoked_key_past_its_rate_limit_or_quota_hears_401() {
    // One write per key per ~3 hours, two per organization per day: a key's second write is
    // past its rate limit, an organization's third past its quota.
    let s = Server::start(&[
        "--write-rate",
        "0.0001",
        "--write-burst",
        "1",
        "--daily-write-quota",
        "2",
    ]);
    let post_variant = |key: &str, name: &str| {
        let body = json!({ "name": name, "vh": VH, "vl": VL });
        s.as_key(key, "POST", "/v1/variants", Some(body))
    };
    let revoke = |org: &str, key: &str| {
        let (ok, _) = s.admin(&["keys", "revoke", &key_id(&s, org, key)]);
        assert!(ok);
    };
    let another_key = |org: &str| {
        let (ok, key) = s.admin(&["keys", "create", "--org", org]);
        assert!(ok);
        key.trim().to_string()
    };

    let (org, limited) = s.new_org("limited", 5, None);
    s.create_variant_as(&limited);
    post_variant(&limited, "a").problem(429, "rate_limited");
    revoke(&org, &limited);
    refused_as_revoked(&post_variant(&limited, "b"));

    let (org, first) = s.new_org("quota", 5, None);
    let second = another_key(&org);
    s.create_variant_as(&first);
    s.create_variant_as(&second);
    // Used up: a live key hears 429; once revoked, a key that wrote hears 401.
    post_variant(&another_key(&org), "c").problem(429, "quota_exceeded");
    revoke(&org, &first);
    refused_as_revoked(&post_variant(&first, "d"));
}

#[test]
fn scopes_limit_routes() {
    let s = Server::start(&[]);
    let (_, reader) = s.new_org("readers", 5, Some("variants:read"));
    let r = s.req().key(Some(&reader)).path("/v1/variants").send();
    assert_eq!(r.status, 200);
    let r = s
        .req()
        .key(Some(&reader))
        .method("POST")
        .path("/v1/variants")
        .json(&json!({"name": "a", "vh": VH, "vl": VL}))
        .send();
    r.problem(403, "forbidden");
    s.req()
        .key(Some(&reader))
        .path("/v1/credits/ledger")
        .send()
        .problem(403, "forbidden");
    s.req()
        .key(Some(&reader))
        .method("POST")
        .path("/v1/jobs/01a20651-60bf-7071-8acf-dd18d042cc9e/cancel")
        .send()
        .problem(403, "forbidden");
    // Every key can see its own organization.
    assert_eq!(
        s.req()
            .key(Some(&reader))
            .path("/v1/organization")
            .send()
            .status,
        200
    );
}

#[test]
fn bodies_are_checked_for_size_type_shape_and_unknown_fields() {
    let s = Server::start(&[]);
    let big = vec![b' '; 1024 * 1024 + 10];
    s.req()
        .method("POST")
        .path("/v1/variants")
        .header("content-type", "application/json")
        .raw_body(big)
        .send()
        .problem(413, "payload_too_large");
    s.req()
        .method("POST")
        .path("/v1/variants")
        .header("content-type", "text/plain")
        .raw_body(b"{}".to_vec())
        .send()
        .problem(415, "unsupported_media_type");
    s.req()
        .method("POST")
        .path("/v1/variants")
        .raw_body(b"{}".to_vec())
        .send()
        .problem(415, "unsupported_media_type");
    let p = s
        .req()
        .method("POST")
        .path("/v1/variants")
        .header("content-type", "application/json")
        .raw_body(b"{\"name\": ".to_vec())
        .send();
    p.problem(400, "invalid_request");
    let r = s.post(
        "/v1/variants",
        &json!({"name": "a", "vh": VH, "vl": VL, "nmae": 1}),
    );
    let p = r.problem(400, "invalid_request");
    assert!(p["detail"].as_str().unwrap_or("").contains("nmae"), "{p}");
    let r = s.post("/v1/variants", &json!({"name": 5, "vh": VH, "vl": VL}));
    let p = r.problem(400, "invalid_request");
    assert!(
        p["detail"].as_str().unwrap_or("").starts_with("name"),
        "{p}"
    );
    // Without `vl` a variant is a single domain (SPEC §5); without `vh` it is nothing.
    let r = s.post("/v1/variants", &json!({"name": "a", "vl": VL}));
    let p = r.problem(400, "invalid_request");
    assert!(p["detail"].as_str().unwrap_or("").starts_with("vh"), "{p}");
    s.post("/v1/variants", &json!([1, 2]))
        .problem(400, "invalid_request");
    let r = s.post("/v1/humanizations", &json!({"variant_id": "not-a-uuid"}));
    let p = r.problem(400, "invalid_request");
    assert!(p["detail"].as_str().unwrap_or("").contains("variant_id"));
    // Query parameters: unknown, out of range, not a UUID.
    s.get("/v1/variants?limit=0")
        .problem(400, "invalid_request");
    s.get("/v1/variants?limit=101")
        .problem(400, "invalid_request");
    s.get("/v1/variants?starting_after=zzz")
        .problem(400, "invalid_request");
    s.get("/v1/variants?colour=red")
        .problem(400, "invalid_request");
    s.get("/v1/jobs?status=done")
        .problem(400, "invalid_request");
    s.get("/v1/jobs?object=painting")
        .problem(400, "invalid_request");
    // Nothing was created by any of that.
    assert_eq!(s.get("/v1/variants").json["data"], json!([]));
}

#[test]
fn variants_are_created_read_listed_paged_and_deleted() {
    let s = Server::start(&[]);
    let r = s.post(
        "/v1/variants",
        &json!({"name": "lower", "vh": VH.to_lowercase(), "vl": format!("{}\n {}", &VL[..50], &VL[50..])}),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    let id = r.json["id"].as_str().expect("id").to_string();
    assert_eq!(
        r.header("location"),
        Some(format!("/v1/variants/{id}").as_str())
    );
    assert_eq!(r.json["object"], "variant");
    assert_eq!(r.json["vh"], VH, "upper-cased");
    assert_eq!(r.json["vl"], VL, "whitespace stripped");
    assert_eq!(r.json["vl_chain_type"], "kappa");
    assert_eq!(uuid_version(&id), 7);

    let got = s.get(&format!("/v1/variants/{id}"));
    assert_eq!(got.status, 200);
    assert_eq!(got.json, r.json);
    s.get("/v1/variants/not-a-uuid").problem(404, "not_found");
    s.get("/v1/variants/01a20651-60bf-7071-8acf-dd18d042cc9e")
        .problem(404, "not_found");

    let ids: Vec<String> = (0..4).map(|i| s.create_variant(&format!("v{i}"))).collect();
    let page1 = s.get("/v1/variants?limit=2");
    assert_eq!(page1.json["object"], "list");
    assert_eq!(page1.json["has_more"], true);
    let data = page1.json["data"].as_array().expect("data");
    assert_eq!(data[0]["id"], ids[3].as_str(), "newest first");
    assert_eq!(data[1]["id"], ids[2].as_str());
    let page2 = s.get(&format!("/v1/variants?limit=2&starting_after={}", ids[2]));
    let data2 = page2.json["data"].as_array().expect("data");
    assert_eq!(data2[0]["id"], ids[1].as_str());
    assert_eq!(data2[1]["id"], ids[0].as_str());
    assert_eq!(page2.json["has_more"], true);
    let page3 = s.get(&format!("/v1/variants?limit=2&starting_after={}", ids[0]));
    assert_eq!(page3.json["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page3.json["has_more"], false);

    let del = s
        .req()
        .method("DELETE")
        .path(&format!("/v1/variants/{id}"))
        .send();
    assert_eq!(del.status, 204);
    assert!(del.text.is_empty());
    s.get(&format!("/v1/variants/{id}"))
        .problem(404, "not_found");
    s.req()
        .method("DELETE")
        .path(&format!("/v1/variants/{id}"))
        .send()
        .problem(404, "not_found");
}

#[test]
fn invalid_sequences_are_422_naming_the_chain() {
    let s = Server::start(&[]);
    let r = s.post(
        "/v1/variants",
        &json!({"name": "x", "vh": "EVQLZZ", "vl": VL}),
    );
    let p = r.problem(422, "invalid_sequence");
    assert!(
        p["detail"].as_str().unwrap_or("").starts_with("VH: "),
        "{p}"
    );
    let r = s.post(
        "/v1/variants",
        &json!({"name": "x", "vh": VH, "vl": "ACDEFGHIKLMNPQRSTVWY"}),
    );
    let p = r.problem(422, "invalid_sequence");
    assert!(
        p["detail"].as_str().unwrap_or("").starts_with("VL: "),
        "{p}"
    );
    // Heavy where the light chain belongs.
    let r = s.post("/v1/variants", &json!({"name": "x", "vh": VH, "vl": VH}));
    let p = r.problem(422, "invalid_sequence");
    assert!(
        p["detail"].as_str().unwrap_or("").starts_with("VL: "),
        "{p}"
    );
    s.post("/v1/variants", &json!({"name": " ", "vh": VH, "vl": VL}))
        .problem(400, "invalid_request");
}

#[test]
fn another_organizations_resources_are_404() {
    let s = Server::start(&[]);
    let variant = s.create_variant("mine");
    let job = s.post("/v1/humanizations", &json!({"variant_id": variant}));
    assert_eq!(job.status, 202);
    let job_id = job.json["id"].as_str().expect("id").to_string();
    let (_, other) = s.new_org("other lab", 3, None);
    let as_other =
        |method: &str, path: &str| s.req().key(Some(&other)).method(method).path(path).send();
    as_other("GET", &format!("/v1/variants/{variant}")).problem(404, "not_found");
    as_other("DELETE", &format!("/v1/variants/{variant}")).problem(404, "not_found");
    as_other("GET", &format!("/v1/humanizations/{job_id}")).problem(404, "not_found");
    as_other("GET", &format!("/v1/jobs/{job_id}")).problem(404, "not_found");
    as_other("POST", &format!("/v1/jobs/{job_id}/cancel")).problem(404, "not_found");
    as_other("POST", &format!("/v1/humanizations/{job_id}/cancel")).problem(404, "not_found");
    let r = s
        .req()
        .key(Some(&other))
        .method("POST")
        .path("/v1/humanizations")
        .json(&json!({"variant_id": variant}))
        .send();
    r.problem(404, "not_found");
    assert_eq!(as_other("GET", "/v1/variants").json["data"], json!([]));
    assert_eq!(as_other("GET", "/v1/jobs").json["data"], json!([]));
    // The other organization was charged nothing.
    assert_eq!(
        as_other("GET", "/v1/organization").json["credit_balance"],
        3
    );
}

fn uuid_version(id: &str) -> u32 {
    id.chars().nth(14).and_then(|c| c.to_digit(16)).unwrap_or(0)
}
