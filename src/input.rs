//! Reading antibodies and chains from the files users hand to the offline commands and to
//! `POST /v1/variants/import`.
//!
//! Two formats, told apart by their first non-blank character: FASTA (`>`) or CSV with a header
//! naming `name,vh,vl` (other columns are ignored). A problem with one record is kept with that
//! record, so the others still run; only a file that cannot be read at all is an error.

use std::fmt;
use std::io::Read;

/// A file that cannot be read or understood as a whole.
#[derive(Debug)]
pub struct InputError(pub String);

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InputError {}

/// One chain to number.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainRecord {
    pub name: String,
    pub sequence: String,
}

/// One antibody to humanize, or the reason its records do not make one.
#[derive(Debug, Clone, PartialEq)]
pub struct AntibodyRecord {
    pub name: String,
    pub chains: Result<(String, Option<String>), String>,
}

/// Reads a whole file (`-` for standard input) as UTF-8 text.
pub fn read_text(path: &str) -> Result<String, InputError> {
    let mut bytes = Vec::new();
    let result = if path == "-" {
        std::io::stdin().read_to_end(&mut bytes).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes).map(|_| ()))
    };
    result.map_err(|e| InputError(format!("cannot read {path}: {e}")))?;
    String::from_utf8(bytes).map_err(|_| InputError(format!("{path} is not UTF-8 text")))
}

fn is_fasta(text: &str) -> bool {
    text.trim_start().starts_with('>')
}

/// FASTA records as (header, sequence); the header is everything after `>`, trimmed.
fn fasta_records(text: &str, path: &str) -> Result<Vec<(String, String)>, InputError> {
    let mut records: Vec<(String, String)> = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(header) = line.strip_prefix('>') {
            records.push((header.trim().to_string(), String::new()));
        } else if line.is_empty() || line.starts_with(';') {
            continue;
        } else if let Some((_, sequence)) = records.last_mut() {
            sequence.push_str(line);
        } else {
            return Err(InputError(format!(
                "{path}: line {} holds sequence before the first '>' header",
                number + 1
            )));
        }
    }
    Ok(records)
}

/// Chains for `veneer number`: any FASTA, one chain per record (named by the header's first word).
pub fn read_chains(path: &str) -> Result<Vec<ChainRecord>, InputError> {
    let text = read_text(path)?;
    if text.trim().is_empty() {
        return Err(InputError(format!("{path} is empty")));
    }
    if !is_fasta(&text) {
        return Err(InputError(format!(
            "{path} is not FASTA: `veneer number` reads records that start with a '>' header line"
        )));
    }
    Ok(fasta_records(&text, path)?
        .into_iter()
        .enumerate()
        .map(|(i, (header, sequence))| ChainRecord {
            name: header
                .split_whitespace()
                .next()
                .map_or_else(|| format!("record{}", i + 1), str::to_string),
            sequence,
        })
        .collect())
}

/// Antibodies for `veneer humanize` and `veneer variants import`.
pub fn read_antibodies(path: &str) -> Result<Vec<AntibodyRecord>, InputError> {
    parse_antibodies(&read_text(path)?, path)
}

/// Antibodies from a file's text (`source` names it in messages): the same formats as
/// `read_antibodies`, for files that arrive another way (`POST /v1/variants/import`).
pub fn parse_antibodies(text: &str, path: &str) -> Result<Vec<AntibodyRecord>, InputError> {
    if text.trim().is_empty() {
        return Err(InputError(format!("{path} is empty")));
    }
    let antibodies = if is_fasta(text) {
        pair_fasta(fasta_records(text, path)?)
    } else {
        read_csv(text, path)?
    };
    if antibodies.is_empty() {
        return Err(InputError(format!("{path} holds no antibodies")));
    }
    Ok(antibodies)
}

/// Which chain a FASTA header names, and the antibody name before it: `<name> VH`, `<name>_VL`,
/// or `<name> VHH` for a single-domain antibody.
fn split_header(header: &str) -> Option<(&str, &str)> {
    let first_word_end = header.find(char::is_whitespace);
    // `Name VH description…`: the chain tag is the second word; `Name_VH …`: the first word's end.
    let words: Vec<&str> = header.split_whitespace().collect();
    for tag in ["VHH", "VH", "VL"] {
        if words.len() >= 2 && words[1].eq_ignore_ascii_case(tag) {
            return Some((words[0], tag));
        }
    }
    let first = &header[..first_word_end.unwrap_or(header.len())];
    for tag in ["VHH", "VH", "VL"] {
        if first.len() > tag.len() + 1 {
            let (name, rest) = first.split_at(first.len() - tag.len() - 1);
            if rest[1..].eq_ignore_ascii_case(tag) && rest.starts_with('_') {
                return Some((name, tag));
            }
        }
    }
    None
}

fn pair_fasta(records: Vec<(String, String)>) -> Vec<AntibodyRecord> {
    #[derive(Default)]
    struct Pending {
        vh: Vec<String>,
        vl: Vec<String>,
        single: Vec<String>,
    }
    let mut order: Vec<String> = Vec::new();
    let mut pending: std::collections::HashMap<String, Pending> = Default::default();
    let mut unnamed: Vec<AntibodyRecord> = Vec::new();
    for (header, sequence) in records {
        let Some((name, tag)) = split_header(&header) else {
            unnamed.push(AntibodyRecord {
                name: header.clone(),
                chains: Err(format!(
                    "record '>{header}' does not name its chain: end the name with ' VH' or ' VL' (or '_VH', '_VL'; ' VHH' for a single-domain antibody)"
                )),
            });
            continue;
        };
        if !pending.contains_key(name) {
            order.push(name.to_string());
        }
        let entry = pending.entry(name.to_string()).or_default();
        match tag {
            "VH" => entry.vh.push(sequence),
            "VL" => entry.vl.push(sequence),
            _ => entry.single.push(sequence),
        }
    }
    let mut antibodies: Vec<AntibodyRecord> = order
        .into_iter()
        .map(|name| {
            let entry = pending.remove(&name).unwrap_or_default();
            let chains = match (entry.vh.as_slice(), entry.vl.as_slice(), entry.single.as_slice()) {
                ([vh], [vl], []) => Ok((vh.clone(), Some(vl.clone()))),
                ([], [], [vhh]) => Ok((vhh.clone(), None)),
                ([_], [], []) => Err(format!(
                    "'{name} VH' has no '{name} VL' record (name a single-domain antibody '{name} VHH')"
                )),
                ([], [_], []) => Err(format!("'{name} VL' has no '{name} VH' record")),
                (vh, vl, single) if vh.len() > 1 || vl.len() > 1 || single.len() > 1 => Err(format!(
                    "'{name}' has {} VH, {} VL and {} VHH records; an antibody has one of each chain",
                    vh.len(),
                    vl.len(),
                    single.len()
                )),
                _ => Err(format!(
                    "'{name}' mixes a VHH record with VH/VL records; give either one VHH or a VH and a VL"
                )),
            };
            AntibodyRecord { name, chains }
        })
        .collect();
    antibodies.extend(unnamed);
    antibodies
}

fn read_csv(text: &str, path: &str) -> Result<Vec<AntibodyRecord>, InputError> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|e| InputError(format!("{path}: cannot read the CSV header: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let (Some(name_at), Some(vh_at)) = (column("name"), column("vh")) else {
        return Err(InputError(format!(
            "{path}: neither FASTA nor a CSV with a header naming name,vh,vl columns (found: {})",
            headers.iter().collect::<Vec<_>>().join(",")
        )));
    };
    let vl_at = column("vl");
    let mut antibodies = Vec::new();
    for (row, record) in reader.records().enumerate() {
        let line = row + 2;
        let record = match record {
            Ok(record) => record,
            Err(e) => {
                antibodies.push(AntibodyRecord {
                    name: format!("line {line}"),
                    chains: Err(format!("{path} line {line}: {e}")),
                });
                continue;
            }
        };
        let field = |at: usize| record.get(at).unwrap_or("").to_string();
        let name = field(name_at);
        let name = if name.is_empty() {
            format!("line {line}")
        } else {
            name
        };
        let vh = field(vh_at);
        let vl = vl_at.map(field).filter(|v| !v.is_empty());
        let chains = if vh.is_empty() {
            Err(format!("line {line}: the vh column is empty"))
        } else {
            Ok((vh, vl))
        };
        antibodies.push(AntibodyRecord { name, chains });
    }
    Ok(antibodies)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fasta(text: &str) -> Vec<AntibodyRecord> {
        pair_fasta(fasta_records(text, "test.fa").unwrap())
    }

    #[test]
    fn fasta_pairs_vh_and_vl_by_name_in_file_order() {
        let records = fasta(">B VL\nDIQ\n>A_VH\nEVQ\nLVE\n>A_VL\nDIV\n>B VH\nQVQ\n");
        assert_eq!(records[0].name, "B");
        assert_eq!(records[0].chains, Ok(("QVQ".into(), Some("DIQ".into()))));
        assert_eq!(records[1].chains, Ok(("EVQLVE".into(), Some("DIV".into()))));
    }

    #[test]
    fn fasta_problems_stay_with_their_record() {
        let records = fasta(">A VH\nEVQ\n>B VL\nDIQ\n>C something\nAAA\n>D VHH\nQVQ\n");
        assert!(
            records[0]
                .chains
                .as_ref()
                .unwrap_err()
                .contains("'A VH' has no 'A VL'")
        );
        assert!(
            records[1]
                .chains
                .as_ref()
                .unwrap_err()
                .contains("'B VL' has no 'B VH'")
        );
        assert_eq!(records[2].name, "D");
        assert_eq!(records[2].chains, Ok(("QVQ".into(), None)));
        assert!(
            records[3]
                .chains
                .as_ref()
                .unwrap_err()
                .contains("does not name its chain")
        );
    }

    #[test]
    fn sequence_before_any_header_is_a_file_error() {
        assert!(fasta_records("EVQ\n>A VH\nEVQ", "x.fa").is_err());
    }

    #[test]
    fn csv_needs_name_and_vh_and_takes_vl_optionally() {
        let records = read_csv(
            "id,name,vh,vl\n1, A ,EVQ,DIQ\n2,B,QVQ,\n3,C,,DIQ\n",
            "x.csv",
        )
        .unwrap();
        assert_eq!(records[0].name, "A");
        assert_eq!(records[0].chains, Ok(("EVQ".into(), Some("DIQ".into()))));
        assert_eq!(records[1].chains, Ok(("QVQ".into(), None)));
        assert!(
            records[2]
                .chains
                .as_ref()
                .unwrap_err()
                .contains("vh column is empty")
        );
        assert!(read_csv("a,b\n1,2\n", "x.csv").is_err());
    }
}
