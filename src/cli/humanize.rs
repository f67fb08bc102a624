//! `veneer humanize`: humanize antibodies offline, as JSON lines or a table for people.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write;

use serde::Serialize;

use crate::engine::humanize::{AntibodyReport, Humanizer, StrategyResult, StrategySpec, Variant};
use crate::engine::numbering::{NumberedChain, Position, Scheme, is_kabat_cdr, number_as};
use crate::engine::sequence::clean;

use crate::export;
use crate::input::AntibodyRecord;

/// Output format of `veneer humanize`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON object per antibody.
    Jsonl,
    /// A readable alignment of parental and humanized chains.
    Table,
    /// One row per design (as `GET /v1/humanizations/{id}/export?format=csv`).
    Csv,
    /// The designs' chains, records named `<antibody>_<design> VH` / `VL`.
    Fasta,
    /// A workbook: overview, then per chain the alignment and per-residue humanness.
    Xlsx,
}

#[derive(Serialize)]
struct Humanized<'a> {
    name: &'a str,
    parental: AntibodyReport,
    results: Vec<StrategyResult>,
}

#[derive(Serialize)]
struct Failed<'a> {
    name: &'a str,
    error: String,
}

/// What one antibody came to: its variant and results, or why it could not be humanized.
type Outcome = Result<(Variant, AntibodyReport, Vec<StrategyResult>), String>;

fn humanize_one(
    record: &AntibodyRecord,
    humanizer: &Humanizer,
    strategies: &[StrategySpec],
) -> Outcome {
    let (vh, vl) = record.chains.clone()?;
    let variant = Variant::new(&vh, vl.as_deref()).map_err(|e| e.to_string())?;
    let parental = humanizer
        .parental(&variant)
        .map_err(|e| format!("internal error: {e}"))?;
    let results = humanizer
        .humanize(&variant, strategies)
        .map_err(|e| format!("internal error: {e}"))?;
    Ok((variant, parental, results))
}

/// Humanizes every record in order (in parallel on all cores) and writes it in `format`.
/// Returns how many records failed.
pub fn run(
    records: &[AntibodyRecord],
    humanizer: &Humanizer,
    strategies: &[StrategySpec],
    format: Format,
    out: &mut dyn Write,
) -> std::io::Result<usize> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut failed = 0;
    // Files (CSV, FASTA, XLSX) are written once every antibody is done.
    let mut files: Vec<(String, serde_json::Value, Vec<serde_json::Value>)> = Vec::new();
    let progress = super::progress::bar(records.len(), "antibodies");
    let progress = &progress;
    for batch in records.chunks(1024) {
        let per_thread = batch.len().div_ceil(threads).max(1);
        let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
            let workers: Vec<_> = batch
                .chunks(per_thread)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .map(|r| {
                                let outcome = humanize_one(r, humanizer, strategies);
                                progress.inc(1);
                                outcome
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| {
                    w.join()
                        .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
                })
                .collect()
        });
        for (record, outcome) in batch.iter().zip(outcomes) {
            failed += usize::from(outcome.is_err());
            match format {
                Format::Jsonl => writeln!(out, "{}", json_line(&record.name, outcome))?,
                Format::Table => write!(out, "{}", table(&record.name, &outcome))?,
                Format::Csv | Format::Fasta | Format::Xlsx => match outcome {
                    Ok((_, parental, results)) => files.push((
                        record.name.clone(),
                        serde_json::to_value(&parental).unwrap_or_default(),
                        results
                            .iter()
                            .map(|r| serde_json::to_value(r).unwrap_or_default())
                            .collect(),
                    )),
                    Err(error) => eprintln!("veneer: {}: {error}", record.name),
                },
            }
        }
    }
    progress.finish_and_clear();
    if matches!(format, Format::Csv | Format::Fasta | Format::Xlsx) {
        let antibodies: Vec<export::Antibody> = files
            .iter()
            .map(|(name, parental, results)| export::Antibody {
                name,
                job_id: None,
                parental,
                results,
            })
            .collect();
        let file = match format {
            Format::Csv => export::Format::Csv,
            Format::Fasta => export::Format::Fasta,
            _ => export::Format::Xlsx,
        };
        let bytes = file.write(&antibodies).map_err(std::io::Error::other)?;
        out.write_all(&bytes)?;
    }
    Ok(failed)
}

fn json_line(name: &str, outcome: Outcome) -> String {
    let encoded = match outcome {
        Ok((_, parental, results)) => serde_json::to_string(&Humanized {
            name,
            parental,
            results,
        }),
        Err(error) => serde_json::to_string(&Failed { name, error }),
    };
    encoded.unwrap_or_else(|e| format!("{{\"name\":null,\"error\":\"cannot encode: {e}\"}}"))
}

const WIDTH: usize = 60;

fn table(name: &str, outcome: &Outcome) -> String {
    let mut text = String::new();
    let (variant, parental, results) = match outcome {
        Ok(done) => done,
        Err(error) => {
            let _ = writeln!(text, "{name}: error: {error}\n");
            return text;
        }
    };
    let _ = writeln!(text, "{name}");
    let summary =
        |label: &str, report: &AntibodyReport, mutations: Option<(usize, Option<usize>)>| {
            let identity = &report.oasis_identity;
            let shown = |value: Option<f64>| value.map_or("-".to_string(), |v| format!("{v:.3}"));
            let mut line = format!("  {label:<22} OASis identity VH {}", shown(identity.vh));
            if identity.vl.is_some() {
                let _ = write!(line, "  VL {}", shown(identity.vl));
            }
            let _ = write!(line, "  antibody {}", shown(identity.antibody));
            if let Some((vh, vl)) = mutations {
                let _ = write!(line, "   mutations VH {vh}");
                if let Some(vl) = vl {
                    let _ = write!(line, " VL {vl}");
                }
            }
            line
        };
    let _ = writeln!(text, "{}", summary("parental", parental, None));
    for result in results {
        let _ = writeln!(
            text,
            "{}",
            summary(
                result.strategy.name(),
                &result.report,
                Some((result.mutations.vh, result.mutations.vl))
            )
        );
    }
    for result in results {
        let germlines = &result.report.germlines;
        let chains = [
            Some((&variant.vh, &result.humanized_vh, &germlines.vh)),
            variant
                .vl
                .as_ref()
                .zip(result.humanized_vl.as_ref())
                .zip(germlines.vl.as_ref())
                .map(|((p, h), g)| (p, h, g)),
        ];
        for (parental, humanized, germline) in chains.into_iter().flatten() {
            let chain = if parental.chain_type.is_heavy() {
                "VH"
            } else {
                "VL"
            };
            let _ = writeln!(
                text,
                "\n  {chain} {} (acceptor {} + {})",
                result.strategy, germline.v, germline.j
            );
            text.push_str(&alignment(parental, humanized));
        }
    }
    text.push('\n');
    text
}

/// One alignment column: a Kabat position with its parental and humanized residues.
type Column = (Position, (u8, u8));

/// Parental and humanized chains aligned by Kabat position, with CDRs (`=`) and mutations (`*`)
/// marked under them, wrapped at [`WIDTH`] columns, each block headed by its first label.
fn alignment(parental: &NumberedChain, humanized: &str) -> String {
    let chain_type = parental.chain_type;
    let humanized_kabat: Vec<(Position, u8)> = clean(humanized)
        .ok()
        .and_then(|r| number_as(&r, chain_type).ok())
        .map(|c| c.numbered(Scheme::Kabat).collect())
        .unwrap_or_default();
    let mut columns: BTreeMap<Position, (u8, u8)> = BTreeMap::new();
    for (p, r) in parental.numbered(Scheme::Kabat) {
        columns.entry(p).or_insert((b'-', b'-')).0 = r;
    }
    for (p, r) in humanized_kabat {
        columns.entry(p).or_insert((b'-', b'-')).1 = r;
    }
    let columns: Vec<Column> = columns.into_iter().collect();
    let mut text = String::new();
    for block in columns.chunks(WIDTH) {
        let row = |pick: &dyn Fn(&Column) -> char| block.iter().map(pick).collect::<String>();
        let first = block[0].0.label(chain_type);
        let _ = writeln!(text, "    {first:<10}");
        let _ = writeln!(text, "    parental  {}", row(&|(_, (p, _))| *p as char));
        let _ = writeln!(text, "    humanized {}", row(&|(_, (_, h))| *h as char));
        let _ = writeln!(
            text,
            "    CDR       {}",
            row(&|(pos, _)| if is_kabat_cdr(chain_type, *pos) {
                '='
            } else {
                ' '
            })
        );
        let _ = writeln!(
            text,
            "    mutated   {}",
            row(&|(_, (p, h))| if p != h { '*' } else { ' ' }).trim_end()
        );
    }
    text
}
