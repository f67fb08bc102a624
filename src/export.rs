//! A humanization's designs as files a colleague can open: FASTA (records named as
//! `veneer variants import` reads them), CSV (one row per design) and XLSX (an overview sheet,
//! then per chain the Kabat alignment of parental and designs and their per-residue OASis
//! humanness). Used by `GET /v1/humanizations/{id}/export` and `veneer humanize --format`.
//!
//! Works on the JSON a job holds (`results`, `parental`), so the server exports what it stored
//! and the offline command what it would print; nothing here computes science.

use std::collections::{BTreeMap, HashMap};

use rust_xlsxwriter::{Format as CellFormat, Workbook, XlsxError};
use serde_json::Value;

/// A file format for designs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Fasta,
    Csv,
    Xlsx,
}

impl Format {
    /// `fasta`, `csv` or `xlsx` (also the file extension).
    pub fn parse(name: &str) -> Option<Format> {
        match name {
            "fasta" => Some(Format::Fasta),
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Fasta => "fasta",
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Fasta => "text/x-fasta; charset=utf-8",
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }

    /// The file's bytes.
    pub fn write(self, antibodies: &[Antibody]) -> Result<Vec<u8>, String> {
        match self {
            Format::Fasta => Ok(fasta(antibodies).into_bytes()),
            Format::Csv => csv(antibodies).map(String::into_bytes),
            Format::Xlsx => xlsx(antibodies),
        }
    }
}

/// A name as a download's file name stem: letters, digits, `-` and `_`; anything else `_`.
pub fn file_stem(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// One antibody's designs: its name, the job (when there is one), its parental report and
/// its result entries.
pub struct Antibody<'a> {
    pub name: &'a str,
    pub job_id: Option<&'a str>,
    pub parental: &'a Value,
    pub results: &'a [Value],
}

/// A design's name in files: the strategy, or `sapiens_2`, `sapiens_3`… when the antibody has
/// that strategy more than once (with other options). The web app names designs the same way.
pub fn design_keys(results: &[Value]) -> Vec<String> {
    let strategy = |r: &Value| r["strategy"].as_str().unwrap_or("design").to_string();
    let mut total: BTreeMap<String, usize> = BTreeMap::new();
    for r in results {
        *total.entry(strategy(r)).or_default() += 1;
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    results
        .iter()
        .map(|r| {
            let name = strategy(r);
            let n = seen.entry(name.clone()).or_default();
            *n += 1;
            if total[&name] > 1 {
                format!("{name}_{n}")
            } else {
                name
            }
        })
        .collect()
}

/// A name as one FASTA word: letters, digits, `-`, `_` and `.`; anything else becomes `_`.
fn fasta_word(name: &str) -> String {
    let word: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if word.is_empty() {
        "antibody".into()
    } else {
        word
    }
}

const CHAINS: [(&str, &str, &str); 2] =
    [("VH", "vh", "humanized_vh"), ("VL", "vl", "humanized_vl")];

/// `>{name}_{design} VH` / `VL` records, 60 residues a line.
pub fn fasta(antibodies: &[Antibody]) -> String {
    let mut out = String::new();
    for antibody in antibodies {
        let keys = design_keys(antibody.results);
        for (r, key) in antibody.results.iter().zip(&keys) {
            for (chain, _, field) in CHAINS {
                let Some(seq) = r[field].as_str() else {
                    continue;
                };
                out.push_str(&format!(">{}_{key} {chain}\n", fasta_word(antibody.name)));
                for line in seq.as_bytes().chunks(60) {
                    out.push_str(&String::from_utf8_lossy(line));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// The overview's columns, one row per design (CSV and the XLSX overview sheet).
pub const COLUMNS: [&str; 32] = [
    "antibody",
    "job_id",
    "design",
    "rank",
    "strategy",
    "options",
    "humanized_vh",
    "humanized_vl",
    "mutations_vh",
    "mutations_vl",
    "oasis_identity_vh",
    "oasis_identity_vl",
    "oasis_identity",
    "oasis_score_mean",
    "oasis_score_median",
    "oasis_percentile",
    "oasis_non_human_peptides",
    "germline_content_vh",
    "germline_content_vl",
    "germline_content",
    "sapiens_score_vh",
    "sapiens_score_vl",
    "sapiens_score",
    "germline_vh_v",
    "germline_vh_j",
    "germline_vl_v",
    "germline_vl_j",
    "liabilities",
    "mutation_list",
    "vernier_mutations",
    "interface_mutations",
    "liability_hints",
];

/// A cell: text, a number, or nothing.
enum Cell {
    Text(String),
    Number(f64),
    Empty,
}

fn cell(v: &Value) -> Cell {
    match v {
        Value::Null => Cell::Empty,
        Value::Number(n) => n.as_f64().map_or(Cell::Empty, Cell::Number),
        Value::String(s) => Cell::Text(s.clone()),
        Value::Bool(b) => Cell::Text(b.to_string()),
        other => Cell::Text(other.to_string()),
    }
}

fn options_text(options: &Value) -> String {
    options
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(";")
        })
        .unwrap_or_default()
}

fn labels_text(map: &Value, prefix: &str) -> String {
    map.as_object()
        .map(|o| {
            o.iter()
                .flat_map(|(kind, labels)| {
                    labels
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .map(move |l| format!("{prefix}{kind}:{l}"))
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

/// Hints as `deamidation:L50 NT -> L50A 0.2508, L50G 0.1587; oxidation:H34 M -> none`.
fn hints_text(hints: &Value) -> String {
    hints
        .as_array()
        .into_iter()
        .flatten()
        .map(|h| {
            let alternatives: Vec<String> = h["alternatives"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| {
                    format!(
                        "{}{} {}",
                        a["position"].as_str().unwrap_or_default(),
                        a["to"].as_str().unwrap_or_default(),
                        a["probability"]
                    )
                })
                .collect();
            format!(
                "{}:{} {} -> {}",
                h["liability"].as_str().unwrap_or_default(),
                h["at"].as_str().unwrap_or_default(),
                h["motif"].as_str().unwrap_or_default(),
                if alternatives.is_empty() {
                    "none".to_string()
                } else {
                    alternatives.join(", ")
                }
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn overview_rows(antibodies: &[Antibody]) -> Vec<Vec<Cell>> {
    let mut rows = Vec::new();
    for antibody in antibodies {
        let keys = design_keys(antibody.results);
        for (r, key) in antibody.results.iter().zip(keys) {
            let joined = |field: &str| {
                ["vh", "vl"]
                    .iter()
                    .flat_map(|c| r[field][c].as_array().into_iter().flatten())
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            rows.push(vec![
                Cell::Text(antibody.name.to_string()),
                antibody
                    .job_id
                    .map_or(Cell::Empty, |id| Cell::Text(id.to_string())),
                Cell::Text(key),
                cell(&r["rank"]),
                cell(&r["strategy"]),
                Cell::Text(options_text(&r["options"])),
                cell(&r["humanized_vh"]),
                cell(&r["humanized_vl"]),
                cell(&r["mutations"]["vh"]),
                cell(&r["mutations"]["vl"]),
                cell(&r["oasis_identity"]["vh"]),
                cell(&r["oasis_identity"]["vl"]),
                cell(&r["oasis_identity"]["antibody"]),
                cell(&r["oasis_score"]["mean"]),
                cell(&r["oasis_score"]["median"]),
                cell(&r["oasis_percentile"]["antibody"]),
                cell(&r["oasis_non_human_peptides"]["antibody"]),
                cell(&r["germline_content"]["vh"]),
                cell(&r["germline_content"]["vl"]),
                cell(&r["germline_content"]["antibody"]),
                cell(&r["sapiens_score"]["vh"]),
                cell(&r["sapiens_score"]["vl"]),
                cell(&r["sapiens_score"]["antibody"]),
                cell(&r["germlines"]["vh"]["v"]),
                cell(&r["germlines"]["vh"]["j"]),
                cell(&r["germlines"]["vl"]["v"]),
                cell(&r["germlines"]["vl"]["j"]),
                Cell::Text(labels_text(&r["liabilities"], "")),
                Cell::Text(joined("mutation_list")),
                Cell::Text(joined("vernier_mutations")),
                Cell::Text(joined("interface_mutations")),
                Cell::Text(hints_text(&r["liability_hints"])),
            ]);
        }
    }
    rows
}

/// RFC 4180 CSV, one row per design; a text cell a spreadsheet would run as a formula is
/// prefixed with `'`.
pub fn csv(antibodies: &[Antibody]) -> Result<String, String> {
    let mut writer = csv::Writer::from_writer(Vec::new());
    let fail = |e: csv::Error| format!("the CSV could not be written: {e}");
    writer.write_record(COLUMNS).map_err(fail)?;
    for row in overview_rows(antibodies) {
        let fields: Vec<String> = row
            .into_iter()
            .map(|c| match c {
                Cell::Text(t) => defuse(t),
                Cell::Number(n) => n.to_string(),
                Cell::Empty => String::new(),
            })
            .collect();
        writer.write_record(&fields).map_err(fail)?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|e| format!("the CSV could not be written: {e}"))?;
    String::from_utf8(bytes).map_err(|e| e.to_string())
}

/// Text a spreadsheet would evaluate (`=`, `+`, `-`, `@` first) is kept as text.
fn defuse(text: String) -> String {
    if text.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{text}")
    } else {
        text
    }
}

/// Kabat order of labels like `H100A`: by number, then insertion letter.
fn label_key(label: &str) -> (u32, String) {
    let body = label.get(1..).unwrap_or("");
    let digits: String = body.chars().take_while(char::is_ascii_digit).collect();
    (
        digits.parse().unwrap_or(u32::MAX),
        body[digits.len()..].to_string(),
    )
}

/// (label, residue, per-residue OASis score) of one report's chain, in sequence order.
fn chain_positions<'a>(report: &'a Value, chain: &str) -> Vec<(&'a str, &'a str, Option<f64>)> {
    let numbering = report["numbering"][chain].as_array();
    let scores = report["oasis_residue_scores"][chain].as_array();
    numbering
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, pair)| {
            let score = scores.and_then(|s| s.get(i)).and_then(Value::as_f64);
            Some((pair[0].as_str()?, pair[1].as_str()?, score))
        })
        .collect()
}

/// The workbook: `Overview` (one row per design), then `VH alignment`, `VH humanness`,
/// `VL alignment`, `VL humanness` — one row per sequence (parental, then each design), one
/// column per Kabat position.
pub fn xlsx(antibodies: &[Antibody]) -> Result<Vec<u8>, String> {
    build_xlsx(antibodies).map_err(|e| format!("the XLSX could not be written: {e}"))
}

fn build_xlsx(antibodies: &[Antibody]) -> Result<Vec<u8>, XlsxError> {
    let mut book = Workbook::new();
    // Level 1 deflate: residues and scores compress well anyway, and the default level 6
    // roughly doubles the time to save.
    book.set_zip_compression_level(1);
    let bold = CellFormat::new().set_bold();
    let overview = book.add_worksheet().set_name("Overview")?;
    for (c, name) in COLUMNS.iter().enumerate() {
        overview.write_string_with_format(0, c as u16, *name, &bold)?;
    }
    for (r, row) in overview_rows(antibodies).into_iter().enumerate() {
        for (c, value) in row.into_iter().enumerate() {
            let (r, c) = (r as u32 + 1, c as u16);
            match value {
                Cell::Text(t) => {
                    overview.write_string(r, c, t)?;
                }
                Cell::Number(n) => {
                    overview.write_number(r, c, n)?;
                }
                Cell::Empty => {}
            }
        }
    }
    overview.set_freeze_panes(1, 0)?;

    for (chain_name, chain, _) in CHAINS {
        // Every sequence of every antibody: (antibody, design, its positions).
        let mut sequences = Vec::new();
        for antibody in antibodies {
            let keys = design_keys(antibody.results);
            let parental = chain_positions(antibody.parental, chain);
            if parental.is_empty() {
                continue;
            }
            sequences.push((antibody.name, "parental".to_string(), parental));
            for (r, key) in antibody.results.iter().zip(keys) {
                sequences.push((antibody.name, key, chain_positions(r, chain)));
            }
        }
        if sequences.is_empty() {
            continue;
        }
        let mut labels: Vec<&str> = sequences
            .iter()
            .flat_map(|(_, _, p)| p.iter().map(|&(label, _, _)| label))
            .collect();
        labels.sort_by_key(|l| label_key(l));
        labels.dedup();
        let column: HashMap<&str, u16> = labels
            .iter()
            .enumerate()
            .map(|(c, &label)| (label, c as u16 + 2))
            .collect();
        for (sheet_name, scores) in [
            (format!("{chain_name} alignment"), false),
            (format!("{chain_name} humanness"), true),
        ] {
            // Streamed to a temporary file row by row (rows are written in order).
            let sheet = book
                .add_worksheet_with_constant_memory()?
                .set_name(&sheet_name)?;
            sheet.write_string_with_format(0, 0, "antibody", &bold)?;
            sheet.write_string_with_format(0, 1, "design", &bold)?;
            for (c, label) in labels.iter().enumerate() {
                sheet.write_string_with_format(0, c as u16 + 2, *label, &bold)?;
            }
            for (r, (name, design, positions)) in sequences.iter().enumerate() {
                let r = r as u32 + 1;
                sheet.write_string(r, 0, *name)?;
                sheet.write_string(r, 1, design)?;
                let mut cells: Vec<Option<(&str, Option<f64>)>> = vec![None; labels.len()];
                for &(label, residue, score) in positions {
                    if let Some(&c) = column.get(label) {
                        cells[usize::from(c) - 2] = Some((residue, score));
                    }
                }
                for (i, cell) in cells.into_iter().enumerate() {
                    let c = i as u16 + 2;
                    match (cell, scores) {
                        (Some((residue, _)), false) => {
                            sheet.write_string(r, c, residue)?;
                        }
                        (Some((_, Some(score))), true) => {
                            sheet.write_number(r, c, score)?;
                        }
                        (None, false) => {
                            sheet.write_string(r, c, "-")?;
                        }
                        _ => {}
                    }
                }
            }
            sheet.set_freeze_panes(1, 2)?;
        }
    }
    book.save_to_buffer()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn repeated_strategies_get_numbered_design_names() {
        let results = [
            json!({"strategy": "sapiens"}),
            json!({"strategy": "cdr_grafting"}),
            json!({"strategy": "sapiens"}),
        ];
        assert_eq!(
            design_keys(&results),
            ["sapiens_1", "cdr_grafting", "sapiens_2"]
        );
    }

    #[test]
    fn names_and_cells_cannot_break_the_files() {
        assert_eq!(fasta_word("Anti CD28 <x>"), "Anti_CD28__x_");
        assert_eq!(defuse("=HYPERLINK(1)".into()), "'=HYPERLINK(1)");
        assert_eq!(defuse("Campath".into()), "Campath");
        assert_eq!(label_key("H100A"), (100, "A".into()));
        assert!(label_key("H99") < label_key("H100") && label_key("H100") < label_key("H100A"));
    }
}
