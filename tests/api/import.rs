//! `POST /v1/variants/import`: a lab's FASTA or CSV file through the API, in the formats of
//! `veneer variants import`. Good records are registered, each bad one is reported with its
//! reason and blocks none of the others; a file in neither format is refused whole.

use crate::common::{Server, VH, VL};
use serde_json::json;

#[test]
fn an_import_registers_the_good_records_and_reports_each_bad_one() {
    let s = Server::start(&[]);
    let fasta = format!(
        ">Good VH\n{VH}\n>Good VL\n{VL}\n>Lonely VH\n{VH}\n>Bad_VH\n{VH}\n>Bad_VL\nDIQMTQ!!\n>Good2 VH\n{}\n>Good2 VL\n{VL}\n",
        VH.to_lowercase()
    );
    let r = s.post("/v1/variants/import", &json!({ "content": fasta }));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["object"], "variant_import");
    assert_eq!(r.json["created"], 2);
    assert_eq!(r.json["failed"], 2);
    let records = r.json["records"].as_array().expect("records");
    let names: Vec<&str> = records.iter().filter_map(|r| r["name"].as_str()).collect();
    assert_eq!(names, ["Good", "Lonely", "Bad", "Good2"]);
    assert_eq!(records[0]["status"], "created");
    assert_eq!(records[0]["variant"]["vh"], VH);
    assert_eq!(records[1]["status"], "failed");
    assert!(
        records[1]["error"]["detail"]
            .as_str()
            .unwrap_or("")
            .contains("has no 'Lonely VL'")
    );
    assert_eq!(records[2]["error"]["code"], "invalid_sequence");
    assert!(
        records[2]["error"]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("VL:")
    );
    assert_eq!(
        records[3]["variant"]["vh"], VH,
        "lower case is cleaned as the API cleans it"
    );

    // What was created is really there, and only that.
    let listed = s.get("/v1/variants").json;
    let mut listed: Vec<&str> = listed["data"]
        .as_array()
        .expect("data")
        .iter()
        .filter_map(|v| v["name"].as_str())
        .collect();
    listed.sort();
    assert_eq!(listed, ["Good", "Good2"]);
}

#[test]
fn a_csv_import_replays_under_its_idempotency_key() {
    let s = Server::start(&[]);
    let csv = format!("name,vh,vl\nA,{VH},{VL}\n,{VH},{VL}\nC,{VH},\nD,{VH},DIQMTQ!!\n");
    let send = || {
        s.req()
            .method("POST")
            .path("/v1/variants/import")
            .header("Idempotency-Key", "lab-upload-1")
            .json(&json!({ "content": csv }))
            .send()
    };
    let first = send();
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["created"], 3, "{}", first.text);
    // An empty vl is a single-domain antibody (SPEC §5).
    let single = &first.json["records"][2];
    assert_eq!(single["name"], "C");
    assert_eq!(single["variant"]["vl"], serde_json::Value::Null);
    let bad = &first.json["records"][3];
    assert!(
        bad["error"]["detail"]
            .as_str()
            .unwrap_or("")
            .starts_with("VL:"),
        "{bad}"
    );
    let again = send();
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json);
    assert_eq!(
        s.get("/v1/variants").json["data"].as_array().map(Vec::len),
        Some(3)
    );
}

#[test]
fn a_file_in_neither_format_is_refused_whole() {
    let s = Server::start(&[]);
    for (content, says) in [
        ("", "empty"),
        ("just some words\n", "neither FASTA nor a CSV"),
        ("name;vh;vl\nA;EVQ;DIQ\n", "neither FASTA nor a CSV"),
    ] {
        let r = s.post("/v1/variants/import", &json!({ "content": content }));
        let detail = r.problem(400, "invalid_request")["detail"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(detail.contains(says), "{content:?}: {detail}");
    }
    let r = s.post("/v1/variants/import", &json!({ "file": "x" }));
    r.problem(400, "invalid_request");
    assert_eq!(
        s.get("/v1/variants").json["data"].as_array().map(Vec::len),
        Some(0)
    );
}

#[test]
fn a_variant_name_is_one_to_two_hundred_characters() {
    let s = Server::start(&[]);
    let long = "α".repeat(201);
    let r = s.post("/v1/variants", &json!({ "name": long, "vh": VH, "vl": VL }));
    let detail = r.problem(400, "invalid_request")["detail"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(detail.contains("at most 200 characters"), "{detail}");
    let r = s.post(
        "/v1/variants",
        &json!({ "name": "α".repeat(200), "vh": VH, "vl": VL }),
    );
    assert_eq!(r.status, 201, "{}", r.text);
}
