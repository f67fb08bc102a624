//! The `veneer` binary: parses the command line and hands off to the library.

use std::io::{BufWriter, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use veneer::cli::humanize::Format;
use veneer::engine::humanize::{Humanizer, Strategy, StrategySpec};
use veneer::engine::humanness::{HumanPeptides, OasisSet};
use veneer::engine::numbering::Scheme;
use veneer::engine::oasis_rules::OasisThreshold;
use veneer::input::{AntibodyRecord, ChainRecord, read_antibodies, read_chains};
use veneer::store::oasis_db::OasisDb;

#[derive(Parser)]
#[command(
    name = "veneer",
    version,
    about = "Antibody humanization: numbering, CDR grafting, humanness and liabilities"
)]
struct Cli {
    /// The service database: a SQLite file (created on first use) or a PostgreSQL URL
    /// (`postgres://user:password@host:port/name`, shared by many `serve` nodes).
    #[arg(long, global = true, env = "VENEER_DB", default_value = "./veneer.db")]
    db: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP API and the job runner on the database.
    Serve(veneer::cli::serve::ServeArgs),
    #[command(flatten)]
    Admin(veneer::cli::admin::AdminCommand),
    /// Number antibody chains (IMGT, Kabat or Chothia), one JSON object per chain.
    Number {
        /// Numbering scheme of the labels and CDRs printed.
        #[arg(long, default_value = "kabat", value_parser = parse_scheme)]
        scheme: Scheme,
        /// A FASTA file of chains, one per record (`-` reads standard input).
        #[arg(long, conflicts_with = "sequences")]
        input: Option<String>,
        /// Chain sequences given directly.
        #[arg(required_unless_present = "input")]
        sequences: Vec<String>,
    },
    /// Humanize antibodies: one JSON object per antibody, or a table for people.
    Humanize {
        /// Comma-separated strategies to run, in order, with their default options.
        #[arg(long, default_value = "cdr_grafting,cdr_grafting_vernier,sapiens", value_parser = parse_strategies)]
        strategies: Strategies,
        /// One design, with options: `sapiens:iterations=2,backmutate_vernier=true`. Repeat for
        /// several designs (instead of --strategies); they run in the order given.
        #[arg(long = "strategy", value_name = "NAME[:OPT=VALUE,...]", value_parser = StrategySpec::parse, conflicts_with = "strategies")]
        designs: Vec<StrategySpec>,
        /// Output format.
        #[arg(long, value_enum, default_value = "jsonl")]
        format: Format,
        /// A CSV (header with name,vh,vl) or FASTA (`<name> VH` / `<name> VL` records) file.
        #[arg(long, conflicts_with_all = ["vh", "vl"])]
        input: Option<String>,
        /// Heavy-chain sequence.
        #[arg(long, required_unless_present = "input")]
        vh: Option<String>,
        /// Light-chain sequence (omit for a single-domain antibody).
        #[arg(long, requires = "vh")]
        vl: Option<String>,
        /// BioPhi's full OASis database (OASis_9mers_v1.db) instead of the embedded 10 % set.
        #[arg(long)]
        oasis_db: Option<String>,
        /// Prevalence threshold with --oasis-db: loose (1 %), relaxed (10 %), medium (50 %), strict (90 %).
        #[arg(long, default_value = "relaxed", requires = "oasis_db")]
        oasis_threshold: OasisThreshold,
        /// Write to this file instead of standard output (needed for xlsx on a terminal).
        #[arg(long)]
        output: Option<std::path::PathBuf>,
    },
}

fn parse_scheme(s: &str) -> Result<Scheme, String> {
    s.parse()
}

/// The strategy list as one value (clap would otherwise take a `Vec` as repeated flags).
#[derive(Clone)]
struct Strategies(Vec<Strategy>);

fn parse_strategies(s: &str) -> Result<Strategies, String> {
    Strategy::parse_list(s).map(Strategies)
}

fn main() -> ExitCode {
    // SAFETY: first thing in the process, before any other thread or SQLite call.
    unsafe { veneer::store::sqlite::db::without_memory_statistics() };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => veneer::cli::serve::run(&cli.db, args).map(|()| ExitCode::SUCCESS),
        Command::Admin(command) => {
            veneer::cli::admin::run(&cli.db, command, &mut std::io::stdout().lock())
                .map(|()| ExitCode::SUCCESS)
        }
        command => run(command),
    };
    match result {
        Ok(code) => code,
        Err(message) => {
            eprintln!("veneer: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(command: Command) -> Result<ExitCode, String> {
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let (failed, total) = match command {
        Command::Number {
            scheme,
            input,
            sequences,
        } => {
            let records = match input {
                Some(path) => read_chains(&path).map_err(|e| e.to_string())?,
                None => sequences
                    .into_iter()
                    .enumerate()
                    .map(|(i, sequence)| ChainRecord {
                        name: format!("seq{}", i + 1),
                        sequence,
                    })
                    .collect(),
            };
            let failed =
                veneer::cli::number::run(&records, scheme, &mut out).map_err(|e| e.to_string())?;
            (failed, records.len())
        }
        Command::Serve(_) | Command::Admin(_) => unreachable!("dispatched in main"),
        Command::Humanize {
            strategies,
            designs,
            format,
            output,
            input,
            vh,
            vl,
            oasis_db,
            oasis_threshold,
        } => {
            let records = match (input, vh) {
                (Some(path), _) => read_antibodies(&path).map_err(|e| e.to_string())?,
                (None, Some(vh)) => vec![AntibodyRecord {
                    name: "antibody".into(),
                    chains: Ok((vh, vl)),
                }],
                (None, None) => return Err("give --input FILE or --vh SEQ".into()),
            };
            let database;
            let peptides: &dyn HumanPeptides = match oasis_db {
                Some(path) => {
                    database = OasisDb::open(&path, oasis_threshold).map_err(|e| e.to_string())?;
                    &database
                }
                None => OasisSet::embedded(),
            };
            let humanizer = Humanizer::new(peptides);
            let designs = if designs.is_empty() {
                strategies.0.into_iter().map(StrategySpec::from).collect()
            } else {
                for (i, design) in designs.iter().enumerate() {
                    if designs[..i].contains(design) {
                        return Err(format!(
                            "--strategy {} is given twice with the same options",
                            design.strategy
                        ));
                    }
                }
                designs
            };
            let failed = match output {
                Some(path) => {
                    let file = std::fs::File::create(&path)
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    let mut file = BufWriter::new(file);
                    let failed = veneer::cli::humanize::run(
                        &records, &humanizer, &designs, format, &mut file,
                    )
                    .map_err(|e| e.to_string())?;
                    file.flush()
                        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                    failed
                }
                None => {
                    if format == veneer::cli::humanize::Format::Xlsx
                        && std::io::IsTerminal::is_terminal(&std::io::stdout())
                    {
                        return Err("--format xlsx writes a binary file: give --output FILE".into());
                    }
                    veneer::cli::humanize::run(&records, &humanizer, &designs, format, &mut out)
                        .map_err(|e| e.to_string())?
                }
            };
            (failed, records.len())
        }
    };
    out.flush().map_err(|e| e.to_string())?;
    if failed > 0 {
        eprintln!(
            "veneer: {failed} of {total} records could not be processed; see their \"error\" fields"
        );
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}
