//! The offline commands from the outside: the real `veneer` binary, its stdout lines, stderr
//! and exit codes, as SPEC.md §11 states them.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

mod oracle;

const BIN: &str = env!("CARGO_BIN_EXE_veneer");

// Campath-1H parental (rat) chains, from the Hu-mAb set (tests/fixtures/humab25/parental.fa).
const CAMPATH_VH: &str = "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS";
const CAMPATH_VL: &str = "DIKMTQSPSFLSASVGDRVTLNCKASQNIDKYLNWYQQKLGESPKLLIYNTNNLQTGIPSRFSGSGSGTDFTLTISSLQPEDVATYFCLQHISRPRTFGTGTKLELK";

fn veneer(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("veneer runs");
    let mut input = child.stdin.take().expect("stdin");
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    drop(input);
    child.wait_with_output().expect("veneer finishes")
}

fn lines(output: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn write_temp(name: &str, text: &str) -> tempfile::TempPath {
    let mut file = tempfile::Builder::new()
        .suffix(name)
        .tempfile()
        .expect("temp file");
    file.write_all(text.as_bytes()).expect("write temp file");
    file.into_temp_path()
}

/// ANARCI's Kabat numbering of Campath VH, from the oracle fixture.
fn anarci_kabat(name: &str) -> Vec<(String, String)> {
    let entry = oracle::jsonl("anarci_numbering.jsonl")
        .into_iter()
        .find(|e| e["name"] == name)
        .expect("fixture entry");
    entry["kabat"]
        .as_array()
        .expect("kabat")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_string(),
                p[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
fn number_prints_one_json_object_per_chain_with_kabat_labels() {
    let output = veneer(&["number", CAMPATH_VH, CAMPATH_VL], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let chains = lines(&output);
    assert_eq!(chains.len(), 2);
    let vh = &chains[0];
    assert_eq!(vh["name"], "seq1");
    assert_eq!(vh["chain_type"], "H");
    assert_eq!(vh["scheme"], "kabat");
    let numbering: Vec<(String, String)> = vh["numbering"]
        .as_array()
        .expect("numbering")
        .iter()
        .map(|p| {
            (
                p[0].as_str().unwrap_or("").to_string(),
                p[1].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let expected: Vec<(String, String)> = anarci_kabat("humab25_parental_Campath_VH")
        .into_iter()
        .map(|(label, residue)| (format!("H{label}"), residue))
        .collect();
    assert_eq!(numbering, expected);
    // Kabat CDRs of Campath VH: H31–35 DFYMN, H50–65 FIRDKAKGYTTEYNPSVKG, H95–102 EGHTAAPFDY.
    assert_eq!(vh["cdrs"]["cdr1"], "DFYMN");
    assert_eq!(vh["cdrs"]["cdr2"], "FIRDKAKGYTTEYNPSVKG");
    assert_eq!(vh["cdrs"]["cdr3"], "EGHTAAPFDY");
    assert_eq!(chains[1]["chain_type"], "K");
    assert!(
        chains[1]["numbering"][0][0]
            .as_str()
            .unwrap_or("")
            .starts_with('L')
    );
    for chain in &chains {
        assert!(
            chain["germlines"]["v"]
                .as_str()
                .is_some_and(|v| v.starts_with("IG"))
        );
        assert!(
            chain["germlines"]["j"]
                .as_str()
                .is_some_and(|j| j.starts_with("IG"))
        );
    }
}

#[test]
fn number_in_imgt_uses_imgt_cdrs() {
    let output = veneer(&["number", "--scheme", "imgt", CAMPATH_VH], None);
    assert!(output.status.success());
    let chain = &lines(&output)[0];
    assert_eq!(chain["scheme"], "imgt");
    // IMGT CDR-H1 (27–38) of Campath VH is GFTFTDFY, CDR-H3 (105–117) AREGHTAAPFDY.
    assert_eq!(chain["cdrs"]["cdr1"], "GFTFTDFY");
    assert_eq!(chain["cdrs"]["cdr3"], "AREGHTAAPFDY");
}

#[test]
fn number_reports_trimmed_flanks() {
    let signal = "MGWSCIILFLVATATGVHS";
    let with_signal = format!("{signal}{CAMPATH_VH}ASTKGPSVFPLAPSSKSTSG");
    let output = veneer(&["number", &with_signal], None);
    assert!(output.status.success());
    let chain = &lines(&output)[0];
    assert_eq!(chain["trimmed"]["start"], signal.len());
    assert_eq!(chain["trimmed"]["end"], 20);
}

#[test]
fn a_bad_record_gets_its_own_error_line_and_a_non_zero_exit() {
    let fasta = format!(
        ">good\n{CAMPATH_VH}\n>letters\nEVQLXXBJ\n>lysozyme\nKVFGRCELAAAMKRHGLDNYRGYSLGNWVCAAKFESNFNTQATNRNTDGSTDYGILQINSRWWCNDGRTPGSRNLCNIPCSALLSSDITASVNCAKKIVSDGNGMNAWVAWRNRCKGTDVQAWIRGCRL\n>last\n{CAMPATH_VL}\n"
    );
    let path = write_temp(".fa", &fasta);
    let output = veneer(&["number", "--input", path.to_str().expect("path")], None);
    assert_eq!(output.status.code(), Some(1));
    let chains = lines(&output);
    assert_eq!(chains.len(), 4);
    assert_eq!(chains[0]["chain_type"], "H");
    assert!(
        chains[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("'X' at position 5"))
    );
    assert!(
        chains[2]["error"]
            .as_str()
            .is_some_and(|e| e.contains("not recognised as an antibody"))
    );
    assert_eq!(chains[3]["chain_type"], "K");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("2 of 4"));
}

#[test]
fn an_unreadable_file_is_one_line_and_exit_2() {
    let output = veneer(&["number", "--input", "/nonexistent/chains.fa"], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1);
    assert!(stderr.contains("cannot read /nonexistent/chains.fa"));
    let not_fasta = write_temp(".txt", "name,vh\nA,EVQ\n");
    let output = veneer(
        &["number", "--input", not_fasta.to_str().expect("path")],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is not FASTA"));
    let empty = write_temp(".fa", "");
    let output = veneer(&["number", "--input", empty.to_str().expect("path")], None);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("is empty"));
    let header_only = write_temp(".csv", "name,vh,vl\n");
    let output = veneer(
        &["humanize", "--input", header_only.to_str().expect("path")],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("holds no antibodies"));
}

fn result<'a>(antibody: &'a Value, strategy: &str) -> &'a Value {
    antibody["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["strategy"] == strategy)
        .expect("strategy present")
}

#[test]
fn humanize_prints_every_strategy_with_every_field() {
    let output = veneer(&["humanize", "--vh", CAMPATH_VH, "--vl", CAMPATH_VL], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let antibody = &lines(&output)[0];
    let results = antibody["results"].as_array().expect("results");
    let strategies: Vec<&str> = results
        .iter()
        .filter_map(|r| r["strategy"].as_str())
        .collect();
    assert_eq!(
        strategies,
        ["cdr_grafting", "cdr_grafting_vernier", "sapiens"]
    );
    for r in results {
        for key in [
            "glycosylation",
            "deamidation",
            "isomerization",
            "oxidation",
            "fragmentation",
            "hydrolysis",
            "unpaired_cysteine",
        ] {
            assert!(r["liabilities"][key].is_array(), "{key}");
        }
        for field in [
            "humanized_vh",
            "humanized_vl",
            "mutations",
            "mutation_list",
            "oasis_score",
            "oasis_identity",
            "germlines",
            "germline_content",
        ] {
            assert!(!r[field].is_null(), "{field}");
        }
        assert_eq!(
            r["mutations"]["vh"].as_u64(),
            r["mutation_list"]["vh"].as_array().map(|l| l.len() as u64)
        );
    }
    // The Kabat CDRs survive grafting unchanged.
    let graft = result(antibody, "cdr_grafting");
    let vh = graft["humanized_vh"].as_str().expect("vh");
    for cdr in ["DFYMN", "FIRDKAKGYTTEYNPSVKG", "EGHTAAPFDY"] {
        assert!(vh.contains(cdr), "{cdr} in {vh}");
    }
    // Vernier back-mutations keep parental framework residues (H2 V, H48 L, H49 G in Campath).
    let vernier = result(antibody, "cdr_grafting_vernier");
    assert!(vernier["mutations"]["vh"].as_u64() < graft["mutations"]["vh"].as_u64());
    // The parental report is there so a user sees what changed.
    assert!(
        antibody["parental"]["liabilities"]["oxidation"]
            .as_array()
            .is_some_and(|l| l.contains(&Value::from("H34")))
    );
    let parental_identity = antibody["parental"]["oasis_identity"]["vh"]
        .as_f64()
        .expect("identity");
    let grafted_identity = graft["oasis_identity"]["vh"].as_f64().expect("identity");
    assert!(grafted_identity > parental_identity);
}

#[test]
fn humanize_refuses_a_light_chain_given_as_vh_naming_the_chain() {
    let output = veneer(&["humanize", "--vh", CAMPATH_VL, "--vl", CAMPATH_VL], None);
    assert_eq!(output.status.code(), Some(1));
    let antibody = &lines(&output)[0];
    let error = antibody["error"].as_str().expect("error");
    assert!(error.starts_with("VH: "), "{error}");
    assert!(error.contains("kappa"), "{error}");
}

#[test]
fn humanize_takes_a_single_domain_antibody() {
    let output = veneer(&["humanize", "--vh", CAMPATH_VH], None);
    assert!(output.status.success());
    let graft = result(&lines(&output)[0], "cdr_grafting").clone();
    assert!(graft["humanized_vl"].is_null());
    assert!(graft["mutations"]["vl"].is_null());
    assert!(graft["oasis_identity"]["vh"].as_f64().is_some());
}

#[test]
fn humanize_reads_csv_and_fasta_and_keeps_going_after_a_bad_record() {
    let csv = format!(
        "name,vh,vl\nCampath,{CAMPATH_VH},{CAMPATH_VL}\nBroken,EVQL123,{CAMPATH_VL}\nNanobody,{CAMPATH_VH},\n"
    );
    let path = write_temp(".csv", &csv);
    let output = veneer(&["humanize", "--input", path.to_str().expect("path")], None);
    assert_eq!(output.status.code(), Some(1));
    let antibodies = lines(&output);
    assert_eq!(antibodies.len(), 3);
    assert_eq!(antibodies[0]["name"], "Campath");
    assert!(
        antibodies[1]["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("VH: "))
    );
    assert!(antibodies[2]["results"].is_array());

    let fasta =
        format!(">Campath VH\n{CAMPATH_VH}\n>Campath VL\n{CAMPATH_VL}\n>Lonely VH\n{CAMPATH_VH}\n");
    let output = veneer(
        &["humanize", "--input", "-", "--strategies", "cdr_grafting"],
        Some(&fasta),
    );
    let antibodies = lines(&output);
    assert_eq!(antibodies[0]["results"].as_array().map(Vec::len), Some(1));
    assert!(
        antibodies[1]["error"]
            .as_str()
            .is_some_and(|e| e.contains("'Lonely VH' has no 'Lonely VL'"))
    );
}

#[test]
fn humanize_table_is_for_people() {
    let output = veneer(
        &[
            "humanize", "--format", "table", "--vh", CAMPATH_VH, "--vl", CAMPATH_VL,
        ],
        None,
    );
    assert!(output.status.success());
    let text = String::from_utf8_lossy(&output.stdout);
    for expected in [
        "parental",
        "humanized",
        "CDR",
        "mutated",
        "cdr_grafting_vernier",
        "acceptor IGHV",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
}

#[test]
fn unknown_strategies_are_refused_before_any_work() {
    let output = veneer(
        &[
            "humanize",
            "--strategies",
            "cdr_grafting,magic",
            "--vh",
            CAMPATH_VH,
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("unknown strategy \"magic\""));
}

/// `serve --http-threads` takes 1 to 1024 threads; anything else is refused before the
/// database is opened (no file is created), naming the flag.
#[test]
fn serve_refuses_an_api_thread_count_out_of_range() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("never.db");
    for count in ["0", "1025", "many"] {
        let output = veneer(
            &[
                "serve",
                "--db",
                &db.to_string_lossy(),
                "--listen",
                "127.0.0.1:0",
                "--http-threads",
                count,
            ],
            None,
        );
        assert_eq!(output.status.code(), Some(2), "--http-threads {count}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("--http-threads"), "{stderr}");
        assert!(!db.exists(), "--http-threads {count} opened the database");
    }
}

/// `number` on hundreds of chains draws a progress bar when stderr is a terminal (here a
/// pseudo-terminal from util-linux `script`) and writes nothing to a stderr that is a pipe.
#[test]
fn a_long_run_shows_progress_on_a_terminal_only() {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/chains.fasta");
    let piped = veneer(&["number", "--input", fixtures], None);
    assert!(piped.status.success());
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipping the terminal half: util-linux `script` is not installed");
        return;
    }
    let on_terminal = Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} number --input {fixtures} > /dev/null"),
            "/dev/null",
        ])
        .output()
        .expect("run under script");
    assert!(on_terminal.status.success());
    let drawn = String::from_utf8_lossy(&on_terminal.stdout);
    assert!(drawn.contains("/518 chains"), "{drawn}");
}

/// `--strategy NAME[:OPT=VALUE,...]` runs designs with options; a bad one is one line, exit 2.
#[test]
fn humanize_takes_designs_with_options() {
    let out = veneer(
        &[
            "humanize",
            "--vh",
            CAMPATH_VH,
            "--vl",
            CAMPATH_VL,
            "--strategy",
            "sapiens:iterations=3",
            "--strategy",
            "cdr_grafting",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = &lines(&out)[0];
    let results = line["results"].as_array().expect("results");
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["strategy"], "sapiens");
    assert_eq!(results[0]["options"]["iterations"], 3);
    assert_eq!(results[1]["strategy"], "cdr_grafting");
    assert_eq!(
        results[1]["options"],
        serde_json::json!({"sapiens_iterations": 0, "backmutate_vhh_hallmark": false})
    );
    for (bad, says) in [
        ("sapiens:iterations=0", "from 1 to 5"),
        ("sapiens:depth=2", "unknown option \"depth\""),
        ("sapiens:iterations", "needs a value"),
        (
            "cdr_grafting:iterations=2",
            "unknown option \"iterations\" for strategy cdr_grafting",
        ),
    ] {
        let out = veneer(&["humanize", "--vh", CAMPATH_VH, "--strategy", bad], None);
        assert_eq!(out.status.code(), Some(2), "{bad}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{bad}: {stderr}");
    }
}

#[test]
fn number_prints_every_domain_of_a_multi_domain_sequence_as_anarci_finds_them() {
    let fasta = format!(
        "{}/tests/fixtures/multidomain.fasta",
        env!("CARGO_MANIFEST_DIR")
    );
    let output = veneer(&["number", "--input", &fasta], None);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let printed = lines(&output);
    let expected: Vec<(String, usize, Value)> = oracle::jsonl("anarci_domains.jsonl")
        .into_iter()
        .flat_map(|r| {
            let domains = r["domains"].as_array().cloned().unwrap_or_default();
            let name = r["name"].as_str().unwrap_or("").to_string();
            let n = domains.len();
            domains.into_iter().map(move |d| (name.clone(), n, d))
        })
        .collect();
    assert_eq!(printed.len(), expected.len(), "one line per domain");
    let (mut index, mut previous, mut ends_differ) = (0, "", 0);
    for (line, (name, count, oracle)) in printed.iter().zip(&expected) {
        index = if name == previous { index + 1 } else { 1 };
        previous = name;
        assert_eq!(line["name"], name.as_str());
        assert_eq!(line["domain"], index, "{name}");
        assert_eq!(line["domains"], *count, "{name}");
        assert_eq!(line["chain_type"], oracle["chain_type"], "{name} {index}");
        assert_eq!(line["span"]["start"], oracle["seq_start"], "{name} {index}");
        if line["span"]["end"] != oracle["seq_end"] {
            ends_differ += 1;
        }
        let first_residue = oracle["kabat"]
            .as_array()
            .and_then(|k| k.iter().find(|p| p[1] != "-"))
            .map(|p| p[1].clone());
        assert_eq!(
            Some(line["numbering"][0][1].clone()),
            first_residue,
            "{name} {index}: the domain starts with ANARCI's first residue"
        );
    }
    // README, Differences: the last residue of three domains is placed differently.
    assert!(ends_differ <= 3, "{ends_differ} domain ends differ");
}
