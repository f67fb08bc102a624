//! Keeps `/openapi.json` true: every route and status SPEC.md names is documented, every
//! documented route answers with exactly the documented methods, and every field the live
//! server sends is declared in the schema it is documented with (and every required one sent).

use std::collections::BTreeSet;
use std::time::Duration;

use crate::common::Server;
use serde_json::{Value, json};

/// SPEC.md's routes with the statuses each can answer (besides the common 400/401/403/405/429/503).
const SPEC: &[(&str, &str, &[u16])] = &[
    ("get", "/healthz", &[200]),
    ("get", "/readyz", &[200, 503]),
    ("get", "/metrics", &[200]),
    ("get", "/openapi.json", &[200]),
    ("get", "/v1/organization", &[200, 401, 429]),
    ("get", "/v1/credits/ledger", &[200, 400, 401, 403, 429]),
    ("get", "/v1/variants", &[200, 400, 401, 403, 429]),
    (
        "post",
        "/v1/variants",
        &[201, 400, 401, 403, 409, 413, 415, 422, 429, 503],
    ),
    (
        "post",
        "/v1/variants/import",
        &[200, 400, 401, 403, 409, 413, 415, 429, 503],
    ),
    ("get", "/v1/variants/{id}", &[200, 404]),
    ("delete", "/v1/variants/{id}", &[204, 404]),
    ("get", "/v1/humanizations", &[200, 400]),
    (
        "post",
        "/v1/humanizations",
        &[200, 202, 400, 401, 402, 403, 404, 409, 413, 415, 429, 503],
    ),
    ("get", "/v1/humanizations/{id}", &[200, 404]),
    ("post", "/v1/humanizations/{id}/cancel", &[200, 404, 409]),
    (
        "get",
        "/v1/humanizations/{id}/export",
        &[200, 400, 404, 409],
    ),
    ("get", "/v1/jobs", &[200, 400]),
    ("get", "/v1/jobs/{id}", &[200, 400, 404]),
    ("post", "/v1/jobs/{id}/cancel", &[200, 202, 404, 409]),
];

fn resolve<'a>(doc: &'a Value, v: &'a Value) -> &'a Value {
    match v.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            doc.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling {r}"))
        }
        None => v,
    }
}

/// Checks that `value` fits `schema` as far as field names go: no undeclared field, no
/// missing required one, recursively through objects, arrays and `oneOf` with null.
fn check_fields(doc: &Value, schema: &Value, value: &Value, at: &str) {
    let schema = resolve(doc, schema);
    if let Some(options) = schema.get("oneOf").and_then(Value::as_array) {
        if value.is_null() {
            return;
        }
        let non_null = options
            .iter()
            .find(|o| o.get("type") != Some(&json!("null")))
            .expect("an option");
        return check_fields(doc, non_null, value, at);
    }
    match value {
        Value::Object(map) => {
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for key in map.keys() {
                    assert!(
                        props.contains_key(key),
                        "{at}.{key} is sent but not documented"
                    );
                    check_fields(doc, &props[key], &map[key], &format!("{at}.{key}"));
                }
            }
            for required in schema
                .get("required")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let name = required.as_str().expect("name");
                assert!(
                    map.contains_key(name),
                    "{at}.{name} is required but not sent"
                );
            }
        }
        Value::Array(items) => {
            if let Some(item) = schema.get("items") {
                for (i, v) in items.iter().enumerate() {
                    check_fields(doc, item, v, &format!("{at}[{i}]"));
                }
            }
        }
        _ => {}
    }
}

fn response_schema<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> &'a Value {
    let op = &doc["paths"][path][method];
    let response = resolve(doc, &op["responses"][status.to_string()]);
    assert!(
        !response.is_null(),
        "{method} {path} does not document {status}"
    );
    let content = response["content"].as_object().expect("content");
    let (_, media) = content.iter().next().expect("one media type");
    &media["schema"]
}

#[test]
fn the_document_lists_every_spec_route_and_status() {
    let s = Server::start(&[]);
    let doc = s.req().key(None).path("/openapi.json").send().json;
    assert_eq!(doc["openapi"], "3.1.0");
    for (method, path, statuses) in SPEC {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        for status in *statuses {
            assert!(
                op["responses"][status.to_string()].is_object(),
                "{method} {path} does not document {status}"
            );
        }
        if !path.starts_with("/v1") {
            continue;
        }
        for common in [400, 401, 403, 405, 429, 503] {
            assert!(
                op["responses"][common.to_string()].is_object(),
                "{method} {path} {common}"
            );
        }
        let scope = &op["x-scope"];
        assert!(scope.is_string() || scope.is_null());
    }
    let headers = doc["components"]["headers"].as_object().expect("headers");
    for h in [
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Reset",
        "X-Request-Id",
        "Retry-After",
        "Location",
        "Vary",
        "Preference-Applied",
        "Idempotent-Replayed",
        "WWW-Authenticate",
        "Allow",
    ] {
        assert!(headers.contains_key(h), "header {h} is not documented");
    }
    let codes: BTreeSet<&str> =
        doc["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("codes")
            .iter()
            .filter_map(Value::as_str)
            .collect();
    for code in [
        "invalid_request",
        "invalid_idempotency_key",
        "unauthenticated",
        "forbidden",
        "insufficient_credits",
        "not_found",
        "conflict",
        "job_cancel_unavailable",
        "idempotency_mismatch",
        "idempotency_in_progress",
        "payload_too_large",
        "unsupported_media_type",
        "invalid_sequence",
        "rate_limited",
        "quota_exceeded",
        "internal",
        "unavailable",
    ] {
        assert!(
            codes.contains(code),
            "problem code {code} is not documented"
        );
    }
}

#[test]
fn every_documented_path_answers_with_exactly_its_documented_methods() {
    let s = Server::start(&[]);
    let doc = s.req().key(None).path("/openapi.json").send().json;
    let paths = doc["paths"].as_object().expect("paths");
    assert_eq!(
        paths.len(),
        SPEC.iter()
            .map(|(_, p, _)| p)
            .collect::<BTreeSet<_>>()
            .len()
    );
    for (template, ops) in paths {
        let path = template.replace("{id}", "01a20651-60bf-7071-8acf-dd18d042cc9e");
        let documented: BTreeSet<String> = ops
            .as_object()
            .expect("ops")
            .keys()
            .map(|m| m.to_ascii_uppercase())
            .collect();
        // A method the path does not take: 405 whose Allow lists exactly the documented ones.
        let r = s.req().method("PATCH").path(&path).send();
        assert_eq!(r.status, 405, "{template}");
        let allowed: BTreeSet<String> = r
            .header("allow")
            .expect("Allow")
            .split(',')
            .map(|m| m.trim().to_string())
            .collect();
        assert_eq!(allowed, documented, "{template}");
    }
}

#[test]
fn live_responses_match_their_documented_schemas() {
    let s = Server::start(&["--stage-delay-ms", "300"]);
    let doc = s.req().key(None).path("/openapi.json").send().json;
    let check = |method: &str, path: &str, r: &crate::common::Resp| {
        let schema = response_schema(&doc, method, path, r.status);
        check_fields(
            &doc,
            schema,
            &r.json,
            &format!("{method} {path} {}", r.status),
        );
    };
    check("get", "/v1/organization", &s.get("/v1/organization"));
    let v = s.post(
        "/v1/variants",
        &json!({"name": "a", "vh": crate::common::VH, "vl": crate::common::VL}),
    );
    check("post", "/v1/variants", &v);
    let variant = v.json["id"].as_str().expect("id").to_string();
    check(
        "get",
        "/v1/variants/{id}",
        &s.get(&format!("/v1/variants/{variant}")),
    );
    check("get", "/v1/variants", &s.get("/v1/variants"));
    let csv = format!(
        "name,vh,vl\nb,{},{}\nc,EVQ!,DIQ\n",
        crate::common::VH,
        crate::common::VL
    );
    check(
        "post",
        "/v1/variants/import",
        &s.post("/v1/variants/import", &json!({ "content": csv })),
    );
    let job = s.post("/v1/humanizations", &json!({"variant_id": variant}));
    check("post", "/v1/humanizations", &job);
    let id = job.json["id"].as_str().expect("id").to_string();
    let running = s.get(&format!("/v1/humanizations/{id}"));
    check("get", "/v1/humanizations/{id}", &running);
    let done = s
        .req()
        .path(&format!("/v1/humanizations/{id}"))
        .header("prefer", "wait=20")
        .send();
    assert_eq!(done.json["status"], "completed");
    check("get", "/v1/humanizations/{id}", &done);
    check("get", "/v1/jobs/{id}", &s.get(&format!("/v1/jobs/{id}")));
    check("get", "/v1/jobs", &s.get("/v1/jobs"));
    check("get", "/v1/humanizations", &s.get("/v1/humanizations"));
    check("get", "/v1/credits/ledger", &s.get("/v1/credits/ledger"));
    check(
        "post",
        "/v1/jobs/{id}/cancel",
        &s.req()
            .method("POST")
            .path(&format!("/v1/jobs/{id}/cancel"))
            .send(),
    );
    let conflict = s.cancel(&id);
    assert_eq!(conflict.status, 409);
    check("post", "/v1/humanizations/{id}/cancel", &conflict);
    let second = s.post("/v1/humanizations", &json!({"variant_id": variant}));
    let second = second.json["id"].as_str().expect("id").to_string();
    let accepted = s
        .req()
        .method("POST")
        .path(&format!("/v1/jobs/{second}/cancel"))
        .send();
    assert_eq!(accepted.status, 202);
    check("post", "/v1/jobs/{id}/cancel", &accepted);
    s.wait_status(&second, "canceled", Duration::from_secs(5));
    let third = s.post("/v1/humanizations", &json!({"variant_id": variant}));
    let third = third.json["id"].as_str().expect("id").to_string();
    let canceled = s.cancel(&third);
    assert_eq!(canceled.status, 200);
    check("post", "/v1/humanizations/{id}/cancel", &canceled);
    // Problems: 402 with its extension members.
    let (_, broke) = s.new_org("broke", 0, None);
    let v2 = s
        .req()
        .key(Some(&broke))
        .method("POST")
        .path("/v1/variants")
        .json(&json!({"name": "b", "vh": crate::common::VH, "vl": crate::common::VL}))
        .send();
    let p = s
        .req()
        .key(Some(&broke))
        .method("POST")
        .path("/v1/humanizations")
        .json(&json!({"variant_id": v2.json["id"]}))
        .send();
    assert_eq!(p.status, 402);
    check("post", "/v1/humanizations", &p);
    check(
        "get",
        "/v1/variants/{id}",
        &s.get("/v1/variants/01a20651-60bf-7071-8acf-dd18d042cc9e"),
    );
    check(
        "post",
        "/v1/variants",
        &s.post(
            "/v1/variants",
            &json!({"name": "x", "vh": "ZZ", "vl": "ZZ"}),
        ),
    );
    let r = s.req().key(None).path("/healthz").send();
    check("get", "/healthz", &r);
    check("get", "/readyz", &s.req().key(None).path("/readyz").send());
}
