//! A submit that asks for designs: strategies with options (SPEC §6, SCIENCE.md), each a
//! result entry carrying the options it ran with; refusals name the entry and the option.

use crate::common::{Server, VH, VL};
use serde_json::{Value, json};

fn submit(s: &Server, variant: &str, strategies: Value) -> crate::common::Resp {
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
    let sapiens = |n: u8, vernier: bool| json!({"iterations": n, "humanize_cdrs": false, "backmutate_vernier": vernier, "backmutate_vhh_hallmark": false});
    assert_eq!(
        shape,
        [
            (json!("sapiens"), sapiens(2, false)),
            (
                json!("cdr_grafting"),
                json!({"sapiens_iterations": 0, "backmutate_vhh_hallmark": false})
            ),
            (json!("sapiens"), sapiens(1, false)),
            (json!("sapiens"), sapiens(1, true)),
        ]
    );
    // The job shows what it was asked, every option spelled out.
    assert_eq!(
        r.json["inputs"]["strategies"][2],
        json!({"name": "sapiens", "iterations": 1, "humanize_cdrs": false, "backmutate_vernier": false, "backmutate_vhh_hallmark": false})
    );

    // The same as the offline command with the same designs.
    let out = std::process::Command::new(crate::common::BIN)
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
            "unknown option \"iterations\" for strategy cdr_grafting; known: sapiens_iterations",
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
        json!({"iterations": 2, "backmutate_vernier": true, "backmutate_vhh_hallmark": false})
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

/// Every result says where it ranks among the antibody's designs, by the stated rule, and
/// which of its mutations are at Vernier positions.
#[test]
fn designs_are_ranked_and_their_vernier_mutations_listed() {
    let s = Server::start(&[]);
    let variant = s.create_variant("AntiCD28");
    let r = submit(
        &s,
        &variant,
        json!([{"name": "cdr_grafting"}, {"name": "cdr_grafting_vernier"}, {"name": "sapiens"},
               {"name": "sapiens", "iterations": 3}, {"name": "sapiens", "max_mutations": 2}]),
    );
    let results = r.json["results"].as_array().expect("results");
    let mut ranks: Vec<u64> = results.iter().filter_map(|r| r["rank"].as_u64()).collect();
    let key = |r: &Value| {
        (
            r["oasis_identity"]["antibody"]
                .as_f64()
                .unwrap_or(f64::NEG_INFINITY),
            r["mutations"]["vh"].as_u64().unwrap_or(0) + r["mutations"]["vl"].as_u64().unwrap_or(0),
        )
    };
    let mut by_rank: Vec<&Value> = results.iter().collect();
    by_rank.sort_by_key(|r| r["rank"].as_u64());
    for pair in by_rank.windows(2) {
        let (a, b) = (key(pair[0]), key(pair[1]));
        assert!(
            a.0 > b.0 || (a.0 == b.0 && a.1 <= b.1),
            "{a:?} ranks before {b:?}"
        );
    }
    ranks.sort();
    assert_eq!(ranks, [1, 2, 3, 4, 5]);
    // Heavy-chain Vernier numbers (Foote & Winter 1992, as AbNumber lists them).
    let vernier_h = [
        2, 27, 28, 29, 30, 47, 48, 49, 67, 69, 71, 73, 78, 93, 94, 103,
    ];
    for r in results {
        let all = r["mutation_list"]["vh"].as_array().expect("list");
        for m in r["vernier_mutations"]["vh"].as_array().expect("vernier") {
            assert!(all.contains(m), "{m} is one of the mutations");
            let label = m.as_str().unwrap_or("").split(':').next().unwrap_or("");
            let number: u32 = label[1..]
                .trim_end_matches(char::is_alphabetic)
                .parse()
                .expect("number");
            assert!(vernier_h.contains(&number), "{m}");
        }
        let expected = all
            .iter()
            .filter_map(Value::as_str)
            .filter(|m| {
                let label = m.split(':').next().unwrap_or("");
                label[1..]
                    .trim_end_matches(char::is_alphabetic)
                    .parse::<u32>()
                    .is_ok_and(|n| vernier_h.contains(&n))
            })
            .count();
        assert_eq!(
            r["vernier_mutations"]["vh"].as_array().map(Vec::len),
            Some(expected)
        );
    }
    // The straight graft changes Vernier residues that the Vernier graft keeps.
    assert!(
        !results[0]["vernier_mutations"]["vh"]
            .as_array()
            .expect("list")
            .is_empty()
    );
    // Non-human 9-mers agree with the identity: identity = 1 - non-human / all 9-mers.
    let vh_len = r.json["parental"]["numbering"]["vh"]
        .as_array()
        .map_or(0, Vec::len) as f64;
    let non_human = r.json["parental"]["oasis_non_human_peptides"]["vh"]
        .as_f64()
        .expect("count");
    let identity = r.json["parental"]["oasis_identity"]["vh"]
        .as_f64()
        .expect("identity");
    assert!((identity - (1.0 - non_human / (vh_len - 8.0))).abs() < 1e-12);
}
