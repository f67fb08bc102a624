//! `GET /v1/humanizations/{id}/export?format=fasta|csv|xlsx` (SPEC §6): a completed job's
//! designs as a file, equal to what the job's envelope holds; the XLSX is read back with
//! calamine. `veneer humanize --format csv|fasta|xlsx` writes the same files offline.

use std::io::Cursor;

use crate::common::{BIN, Server, VH, VL};
use calamine::{Data, DataType, Reader, Xlsx};
use serde_json::{Value, json};

fn completed_job(s: &Server) -> Value {
    let variant = s.create_variant("Anti CD28");
    let r = s
        .req()
        .method("POST")
        .path("/v1/humanizations")
        .header("Prefer", "wait=60")
        .json(&json!({"variant_id": variant, "strategies": [
            {"name": "cdr_grafting"}, {"name": "sapiens"}, {"name": "sapiens", "iterations": 2}
        ]}))
        .send();
    assert_eq!(r.json["status"], "completed", "{}", r.text);
    r.json
}

fn export(s: &Server, id: &str, format: &str) -> crate::common::Resp {
    s.get(&format!("/v1/humanizations/{id}/export?format={format}"))
}

#[test]
fn fasta_and_csv_hold_exactly_the_jobs_designs() {
    let s = Server::start(&[]);
    let job = completed_job(&s);
    let id = job["id"].as_str().expect("id");
    let results = job["results"].as_array().expect("results");

    let fasta = export(&s, id, "fasta");
    assert_eq!(fasta.status, 200);
    assert!(
        fasta
            .header("content-type")
            .unwrap_or("")
            .starts_with("text/x-fasta")
    );
    let disposition = fasta
        .header("content-disposition")
        .unwrap_or("")
        .to_string();
    assert!(
        disposition.starts_with("attachment; filename=\"Anti_CD28-")
            && disposition.ends_with(".fasta\""),
        "{disposition}"
    );
    let mut records: Vec<(String, String)> = Vec::new();
    for line in fasta.text.lines() {
        match line.strip_prefix('>') {
            Some(header) => records.push((header.to_string(), String::new())),
            None => records.last_mut().expect("a record").1.push_str(line),
        }
    }
    let expected: Vec<(String, String)> = ["cdr_grafting", "sapiens_1", "sapiens_2"]
        .iter()
        .zip(results)
        .flat_map(|(design, r)| {
            [("VH", "humanized_vh"), ("VL", "humanized_vl")].map(|(chain, field)| {
                (
                    format!("Anti_CD28_{design} {chain}"),
                    r[field].as_str().unwrap_or("").to_string(),
                )
            })
        })
        .collect();
    assert_eq!(records, expected);

    let csv = export(&s, id, "csv");
    assert!(
        csv.header("content-type")
            .unwrap_or("")
            .starts_with("text/csv")
    );
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let header = reader.headers().expect("header").clone();
    let at = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .unwrap_or_else(|| panic!("{name}"))
    };
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 3, "one row per design");
    for (row, r) in rows.iter().zip(results) {
        assert_eq!(&row[at("antibody")], "Anti CD28");
        assert_eq!(&row[at("job_id")], id);
        assert_eq!(&row[at("strategy")], r["strategy"].as_str().unwrap_or(""));
        assert_eq!(
            &row[at("humanized_vh")],
            r["humanized_vh"].as_str().unwrap_or("")
        );
        assert_eq!(
            row[at("mutations_vl")].parse::<u64>().ok(),
            r["mutations"]["vl"].as_u64()
        );
        let identity: f64 = row[at("oasis_identity")].parse().expect("a number");
        assert!(
            (identity - r["oasis_identity"]["antibody"].as_f64().unwrap_or(-1.0)).abs() < 1e-12
        );
    }
    assert_eq!(
        &rows[2][at("options")],
        "iterations=2;humanize_cdrs=false;backmutate_vernier=false;backmutate_vhh_hallmark=false"
    );
}

#[test]
fn the_xlsx_has_an_overview_and_per_chain_alignment_and_humanness() {
    let s = Server::start(&[]);
    let job = completed_job(&s);
    let id = job["id"].as_str().expect("id");
    let r = export(&s, id, "xlsx");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    );
    let mut book: Xlsx<_> =
        Xlsx::new(Cursor::new(r.bytes.clone())).expect("an XLSX calamine opens");
    assert_eq!(
        book.sheet_names(),
        [
            "Overview",
            "VH alignment",
            "VH humanness",
            "VL alignment",
            "VL humanness"
        ]
    );
    let overview = book.worksheet_range("Overview").expect("overview");
    assert_eq!(overview.height(), 4, "header + one row per design");
    let text = |d: &Data| d.to_string();
    let vh_column = (0..overview.width())
        .find(|&c| text(&overview[(0, c)]) == "humanized_vh")
        .expect("a humanized_vh column");
    assert_eq!(
        text(&overview[(1, vh_column)]),
        job["results"][0]["humanized_vh"].as_str().unwrap_or("")
    );

    // The VH alignment: parental, then each design, one column per Kabat position; each row
    // spells its chain (gaps as `-`).
    let alignment = book.worksheet_range("VH alignment").expect("alignment");
    assert_eq!(alignment.height(), 5);
    let row_text = |r: usize| -> String {
        (2..alignment.width())
            .map(|c| text(&alignment[(r, c)]))
            .collect::<String>()
            .replace('-', "")
    };
    assert_eq!(text(&alignment[(1, 1)]), "parental");
    assert_eq!(row_text(1), VH, "the parental row is the parental VH");
    for (i, r) in job["results"]
        .as_array()
        .expect("results")
        .iter()
        .enumerate()
    {
        assert_eq!(row_text(i + 2), r["humanized_vh"].as_str().unwrap_or(""));
    }
    // Humanness: the per-residue OASis scores of the parental VH, position for position.
    let humanness = book.worksheet_range("VH humanness").expect("humanness");
    let scores: Vec<f64> = (2..humanness.width())
        .filter_map(|c| humanness[(1, c)].as_f64())
        .collect();
    let expected: Vec<f64> = job["parental"]["oasis_residue_scores"]["vh"]
        .as_array()
        .expect("scores")
        .iter()
        .filter_map(Value::as_f64)
        .collect();
    assert_eq!(scores, expected);
}

#[test]
fn only_a_completed_job_exports_and_the_format_is_checked() {
    let s = Server::start(&["--paused"]);
    let variant = s.create_variant("AntiCD28");
    let pending = s.submit(&variant).json["id"]
        .as_str()
        .expect("id")
        .to_string();
    let r = export(&s, &pending, "fasta");
    assert_eq!(r.problem(409, "conflict")["job_status"], "pending");
    let detail = export(&s, &pending, "pdf").problem(400, "invalid_request")["detail"].clone();
    assert!(
        detail.as_str().unwrap_or("").contains("fasta, csv, xlsx"),
        "{detail}"
    );
    s.get(&format!("/v1/humanizations/{pending}/export"))
        .problem(400, "invalid_request");
    export(&s, "01a20651-60bf-7071-8acf-dd18d042cc9e", "csv").problem(404, "not_found");
}

#[test]
fn veneer_humanize_writes_the_same_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run = |format: &str, file: &str| {
        let path = dir.path().join(file);
        let out = std::process::Command::new(BIN)
            .args([
                "humanize", "--vh", VH, "--vl", VL, "--format", format, "--output",
            ])
            .arg(&path)
            .output()
            .expect("veneer humanize");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::fs::read(path).expect("the file")
    };
    let jsonl = std::process::Command::new(BIN)
        .args(["humanize", "--vh", VH, "--vl", VL])
        .output()
        .expect("veneer humanize");
    let line: Value = serde_json::from_slice(&jsonl.stdout).expect("json");
    let fasta = String::from_utf8(run("fasta", "a.fasta")).expect("text");
    for r in line["results"].as_array().expect("results") {
        assert!(fasta.contains(&format!(
            ">antibody_{} VH\n",
            r["strategy"].as_str().unwrap_or("")
        )));
    }
    let csv = String::from_utf8(run("csv", "a.csv")).expect("text");
    assert_eq!(csv.lines().count(), 4, "header + three designs");
    let xlsx = run("xlsx", "a.xlsx");
    let book: Xlsx<_> = Xlsx::new(Cursor::new(xlsx)).expect("opens");
    assert_eq!(book.sheet_names().len(), 5);
}
