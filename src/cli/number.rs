//! `veneer number`: number chains offline, one JSON object per chain.

use std::io::Write;

use serde::Serialize;

use crate::engine::chain::ChainType;
use crate::engine::germlines::{Germlines, closest_species};
use crate::engine::numbering::{NumberedChain, Position, Scheme, cdr, number};
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

#[derive(Serialize)]
struct Numbered<'a> {
    name: &'a str,
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

fn describe<'a>(name: &'a str, chain: &NumberedChain, scheme: Scheme) -> Numbered<'a> {
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

/// One output line for one chain.
fn line(record: &ChainRecord, scheme: Scheme) -> (String, bool) {
    let numbered = clean(&record.sequence).and_then(|residues| number(&residues));
    let json = match &numbered {
        Ok(chain) => serde_json::to_string(&describe(&record.name, chain, scheme)),
        Err(error) => serde_json::to_string(&Failed {
            name: &record.name,
            error: error.to_string(),
        }),
    };
    let json =
        json.unwrap_or_else(|e| format!("{{\"name\":null,\"error\":\"cannot encode: {e}\"}}"));
    (json, numbered.is_ok())
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
        let lines: Vec<Vec<(String, bool)>> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|r| {
                                let numbered = line(r, scheme);
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
        for (json, ok) in lines.into_iter().flatten() {
            failed += usize::from(!ok);
            writeln!(out, "{json}")?;
        }
    }
    progress.finish_and_clear();
    Ok(failed)
}
