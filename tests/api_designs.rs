//! A submit that asks for designs: strategies with options (SPEC §6, SCIENCE.md), each a
//! result entry carrying the options it ran with; refusals name the entry and the option.

mod api_common;

use api_common::{Server, VH, VL};
use serde_json::{Value, json};

fn submit(s: &Server, variant: &str, strategies: Value) -> api_common::Resp {
    s.req()
        .method("POST")
        .path("/v1/humanizations")
        .header("Prefer", "wait=60")
        .json(&json!({ "variant_id": variant, "strategies": strategies }))
        .send()
}

#[test]
fn designs_run_in_order_with_their_options() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let r = submit(
        &s,
        &variant,
        json!([
            {"name": "sapiens", "iterations": 2},
            {"name": "cdr_grafting"},
            {"name": "sapiens"},
            {"name": "sapiens", "iterations": 1, "backmutate_vernier": true},
        ]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["credit_cost"], 1, "one credit per submit");
    let results = r.json["results"].as_array().expect("results");
    let shape: Vec<(Value, Value)> = results
        .iter()
        .map(|r| (r["strategy"].clone(), r["options"].clone()))
        .collect();
    let sapiens = |n: u8, vernier: bool| json!({"iterations": n, "humanize_cdrs": false, "backmutate_vernier": vernier});
    assert_eq!(
        shape,
        [
            (json!("sapiens"), sapiens(2, false)),
            (json!("cdr_grafting"), Value::Null),
            (json!("sapiens"), sapiens(1, false)),
            (json!("sapiens"), sapiens(1, true)),
        ]
    );
    // The job shows what it was asked, every option spelled out.
    assert_eq!(
        r.json["inputs"]["strategies"][2],
        json!({"name": "sapiens", "iterations": 1, "humanize_cdrs": false, "backmutate_vernier": false})
    );

    // The same as the offline command with the same designs.
    let out = std::process::Command::new(api_common::BIN)
        .args([
            "humanize",
            "--vh",
            VH,
            "--vl",
            VL,
            "--strategy",
            "sapiens:iterations=2",
            "--strategy",
            "cdr_grafting",
            "--strategy",
            "sapiens",
            "--strategy",
            "sapiens:backmutate_vernier=true",
        ])
        .output()
        .expect("veneer humanize");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let offline: Value = serde_json::from_slice(&out.stdout).expect("json");
    for (api, cli) in results
        .iter()
        .zip(offline["results"].as_array().expect("results"))
    {
        assert_eq!(api["humanized_vh"], cli["humanized_vh"]);
        assert_eq!(api["humanized_vl"], cli["humanized_vl"]);
        assert_eq!(api["options"], cli["options"]);
    }
}

#[test]
fn a_bad_design_is_refused_naming_it_and_costs_nothing() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let balance = s.get("/v1/organization").json["credit_balance"].clone();
    for (strategies, says) in [
        (
            json!([{"name": "sapiens", "iterations": 6}]),
            "strategies[0]: option iterations",
        ),
        (
            json!([{"name": "sapiens", "iteration": 2}]),
            "unknown option \"iteration\"",
        ),
        (
            json!([{"name": "cdr_grafting", "iterations": 2}]),
            "takes no options",
        ),
        (json!([{"name": "graft"}]), "unknown strategy \"graft\""),
        (
            json!([{"name": "sapiens"}, {"name": "sapiens", "iterations": 1}]),
            "strategies[1]: the same design",
        ),
        (
            json!([{"name": "sapiens", "humanize_cdrs": true, "backmutate_vernier": true}]),
            "cannot both be true",
        ),
        (
            json!([{"name": "sapiens", "humanize_cdrs": "yes"}]),
            "must be true or false",
        ),
        (json!([{"iterations": 2}]), "`name` (a string) is required"),
        (json!([]), "at least one"),
        (json!(["sapiens"]), "must be an object"),
    ] {
        let r = submit(&s, &variant, strategies.clone());
        let detail = r.problem(400, "invalid_request")["detail"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(detail.contains(says), "{strategies}: {detail}");
    }
    assert_eq!(s.get("/v1/organization").json["credit_balance"], balance);
    assert_eq!(
        s.get("/v1/humanizations").json["data"]
            .as_array()
            .map(Vec::len),
        Some(0)
    );
}

#[test]
fn an_idempotency_key_compares_designs_in_canonical_form() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let send = |strategies: Value| {
        s.req()
            .method("POST")
            .path("/v1/humanizations")
            .header("Idempotency-Key", "designs-1")
            .json(&json!({ "variant_id": variant, "strategies": strategies }))
            .send()
    };
    let first = send(json!([{"name": "sapiens"}]));
    assert_eq!(first.status, 202, "{}", first.text);
    // The same design written out in full is the same request: a replay.
    let again = send(json!([{"name": "sapiens", "iterations": 1, "humanize_cdrs": false}]));
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json["id"], first.json["id"]);
    // Another design under the same key is a mismatch.
    send(json!([{"name": "sapiens", "iterations": 3}])).problem(409, "idempotency_mismatch");
}

#[test]
fn a_mutation_budget_is_an_option_of_sapiens() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let r = submit(
        &s,
        &variant,
        json!([{"name": "sapiens", "iterations": 2, "max_mutations": 4}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let result = &r.json["results"][0];
    assert_eq!(result["options"]["max_mutations"], 4);
    assert!(result["mutations"]["vh"].as_u64().unwrap_or(99) <= 4);
    assert!(result["mutations"]["vl"].as_u64().unwrap_or(99) <= 4);
    for bad in [json!(-1), json!(161), json!("4"), json!(2.5)] {
        let r = submit(
            &s,
            &variant,
            json!([{"name": "sapiens", "max_mutations": bad}]),
        );
        let detail = r.problem(400, "invalid_request")["detail"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(detail.contains("max_mutations"), "{bad}: {detail}");
    }
}

#[test]
fn graft_then_sapiens_is_a_design_of_its_own() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let r = submit(
        &s,
        &variant,
        json!([{"name": "cdr_grafting_vernier"}, {"name": "cdr_grafting_sapiens", "iterations": 2}]),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let design = &r.json["results"][1];
    assert_eq!(r.json["status"], "completed", "{}", r.text);
    assert_eq!(design["strategy"], "cdr_grafting_sapiens");
    assert_eq!(
        design["options"],
        json!({"iterations": 2, "humanize_cdrs": false, "backmutate_vernier": true})
    );
    // Without `strategies`, a job runs today's three strategies.
    let plain = s
        .req()
        .method("POST")
        .path("/v1/humanizations")
        .header("Prefer", "wait=60")
        .json(&json!({"variant_id": variant}))
        .send();
    let names: Vec<&str> = plain.json["results"]
        .as_array()
        .expect("results")
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    assert_eq!(names, ["cdr_grafting", "cdr_grafting_vernier", "sapiens"]);
}
