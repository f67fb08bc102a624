//! `veneer number`: number chains offline, one JSON object per chain.

use std::io::Write;

use serde::Serialize;

use crate::engine::chain::ChainType;
use crate::engine::germlines::{Germlines, closest_species};
use crate::engine::numbering::{NumberedChain, Position, Scheme, cdr, number_domains};
use crate::engine::sequence::clean;

use crate::input::ChainRecord;

#[derive(Serialize)]
struct Cdrs {
    cdr1: String,
    cdr2: String,
    cdr3: String,
}

#[derive(Serialize)]
struct Germline {
    v: &'static str,
    j: &'static str,
}

#[derive(Serialize)]
struct Trimmed {
    start: usize,
    end: usize,
}

/// Where a domain lies in its input, 0-based with `end` inclusive (ANARCI's `start`/`end`).
#[derive(Serialize)]
struct Span {
    start: usize,
    end: usize,
}

#[derive(Serialize)]
struct Numbered<'a> {
    name: &'a str,
    /// 1-based index of the domain in its sequence, and how many the sequence holds (2 for an
    /// scFv; 1 for a plain chain).
    domain: usize,
    domains: usize,
    span: Span,
    chain_type: char,
    species: Option<&'static str>,
    scheme: &'static str,
    numbering: Vec<(Label, char)>,
    cdrs: Cdrs,
    germlines: Germline,
    /// Residues cut off before and after the variable domain (signal peptide, constant region).
    trimmed: Trimmed,
}

/// A position label (`H100A`) written straight into the output, without a `String` per residue.
struct Label(Position, ChainType);

impl Serialize for Label {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&format_args!("{}{}", self.1.label_prefix(), self.0))
    }
}

#[derive(Serialize)]
struct Failed<'a> {
    name: &'a str,
    error: String,
}

fn describe<'a>(
    name: &'a str,
    (index, count): (usize, usize),
    chain: &NumberedChain,
    scheme: Scheme,
) -> Numbered<'a> {
    let chain_type = chain.chain_type;
    let mut cdrs = [String::new(), String::new(), String::new()];
    let mut numbering = Vec::with_capacity(chain.residues.len());
    for (position, residue) in chain.numbered(scheme) {
        numbering.push((Label(position, chain_type), residue as char));
        if let Some(n) = cdr(scheme, chain_type, position) {
            cdrs[usize::from(n) - 1].push(residue as char);
        }
    }
    let [cdr1, cdr2, cdr3] = cdrs;
    let imgt: Vec<_> = chain.numbered(Scheme::Imgt).collect();
    let acceptor = Germlines::human().acceptor(chain_type, &imgt);
    let (start, end) = chain.trimmed();
    Numbered {
        name,
        domain: index + 1,
        domains: count,
        span: Span {
            start,
            end: start + chain.residues.len() - 1,
        },
        chain_type: chain_type.letter(),
        species: closest_species(chain_type, &imgt),
        scheme: scheme.name(),
        numbering,
        cdrs: Cdrs { cdr1, cdr2, cdr3 },
        germlines: Germline {
            v: acceptor.v_gene,
            j: acceptor.j_gene,
        },
        trimmed: Trimmed { start, end },
    }
}

/// The output lines for one record: one per variable domain, or one error line. The flag says
/// whether it was numbered.
fn lines(record: &ChainRecord, scheme: Scheme) -> (Vec<String>, bool) {
    let encode = |json: serde_json::Result<String>| {
        json.unwrap_or_else(|e| format!("{{\"name\":null,\"error\":\"cannot encode: {e}\"}}"))
    };
    match clean(&record.sequence).and_then(|residues| number_domains(&residues)) {
        Ok(domains) => {
            let count = domains.len();
            let lines = domains
                .iter()
                .enumerate()
                .map(|(i, chain)| {
                    encode(serde_json::to_string(&describe(
                        &record.name,
                        (i, count),
                        chain,
                        scheme,
                    )))
                })
                .collect();
            (lines, true)
        }
        Err(error) => {
            let failed = Failed {
                name: &record.name,
                error: error.to_string(),
            };
            (vec![encode(serde_json::to_string(&failed))], false)
        }
    }
}

/// Numbers every record, in parallel on all cores, writing lines in input order.
/// Returns how many records failed.
pub fn run(records: &[ChainRecord], scheme: Scheme, out: &mut dyn Write) -> std::io::Result<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failed = 0;
    let progress = super::progress::bar(records.len(), "chains");
    let progress = &progress;
    // Chunks bound the memory held by pending output on large files.
    for batch in records.chunks(4096) {
        let per_thread = batch.len().div_ceil(threads).max(1);
        let lines: Vec<Vec<(Vec<String>, bool)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|r| {
                                let numbered = lines(r, scheme);
                                progress.inc(1);
                                numbered
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (record_lines, ok) in lines.into_iter().flatten() {
            failed += usize::from(!ok);
            for json in record_lines {
                writeln!(out, "{json}")?;
            }
        }
    }
    progress.finish_and_clear();
    Ok(failed)
}
