//! The administrator's commands (SPEC §11): organizations, keys, credits, bulk variant import,
//! queue pause/resume, backups and the move to PostgreSQL. They work on the database directly
//! (the SQLite file or the PostgreSQL URL of `--db`), so they run with or without a server; a
//! running server sees their changes (keys are read per request; the queue setting is polled
//! every 400 ms, and announced at once on PostgreSQL).
//!
//! Stdout carries only results in the forms SPEC.md fixes (an id, a key, alone on their line)
//! or tab-separated rows; messages go to stderr.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use crate::input::read_antibodies;
use crate::service::keys;
use crate::service::submit::validate_chains;
use crate::store::{Bucket, QUEUE_PAUSED, Store, StoreError, VariantRow, new_id, now};

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Organizations.
    #[command(subcommand)]
    Orgs(OrgsCommand),
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Credits.
    #[command(subcommand)]
    Credits(CreditsCommand),
    /// Variants.
    #[command(subcommand)]
    Variants(VariantsCommand),
    /// Pause or resume taking pending jobs.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// A consistent online copy of the database (SQLite backup API).
    Backup {
        /// Where to write the copy.
        dest: String,
    },
    /// Moves a SQLite database into a new, empty PostgreSQL database, checked by the row
    /// count of every table and every organization's ledger sums; prints one
    /// `table<TAB>rows` line per table.
    Migrate {
        /// The SQLite database file (stop its server first).
        #[arg(long)]
        from: String,
        /// The PostgreSQL database, `postgres://user:password@host:port/name`.
        #[arg(long)]
        to: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum OrgsCommand {
    /// Creates an organization and prints its id.
    Create {
        name: String,
        /// Starting credits, in the subscription bucket.
        #[arg(long, default_value_t = 0)]
        credits: i64,
    },
    /// Prints `id, name, credit_balance, subscription, purchased, created_at`, tab-separated.
    List,
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Creates a key and prints it, alone on its line (shown only this once).
    Create {
        #[arg(long)]
        org: String,
        /// Comma-separated scopes (default: all).
        #[arg(long)]
        scopes: Option<String>,
    },
    /// Prints `id, prefix, scopes, created_at, revoked_at|active`, tab-separated.
    List {
        #[arg(long)]
        org: String,
    },
    /// Revokes a key at once; prints its id.
    Revoke { key_id: String },
}

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Grants credits; prints the organization's new balance.
    Grant {
        #[arg(long)]
        org: String,
        #[arg(long)]
        amount: i64,
        #[arg(long, default_value = "subscription", value_parser = parse_bucket)]
        bucket: Bucket,
    },
    /// Prints `id, bucket, delta, reason, job_id, created_at`, tab-separated, newest first.
    Ledger {
        #[arg(long)]
        org: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum VariantsCommand {
    /// Imports a FASTA or CSV file; prints `id, name` per variant created.
    Import {
        #[arg(long)]
        org: String,
        file: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Stops taking pending jobs (running ones finish); prints `paused`.
    Pause,
    /// Takes pending jobs again; prints `resumed`.
    Resume,
}

fn parse_bucket(s: &str) -> Result<Bucket, String> {
    Bucket::parse(s).ok_or_else(|| format!("unknown bucket {s:?}; use subscription or purchased"))
}

/// Runs one admin command; `Err` is a one-line reason for stderr.
pub fn run(db: &str, command: AdminCommand, out: &mut impl Write) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    runtime.block_on(run_async(db, command, out))
}

async fn open(db: &str) -> Result<Store, String> {
    Store::open(db, 2)
        .await
        .map_err(|e| format!("cannot open {}: {e}", super::serve::display_db(db)))
}

async fn run_async(db: &str, command: AdminCommand, out: &mut impl Write) -> Result<(), String> {
    let io = |e: std::io::Error| e.to_string();
    let store = |e: StoreError| e.to_string();
    if let AdminCommand::Migrate { from, to } = &command {
        return migrate(from, to, out).await;
    }
    let db = open(db).await?;
    match command {
        AdminCommand::Orgs(OrgsCommand::Create { name, credits }) => {
            if name.trim().is_empty() {
                return Err("the organization name must not be empty".into());
            }
            if credits < 0 {
                return Err("--credits must not be negative".into());
            }
            let org = db.create_org(name.trim(), credits).await.map_err(store)?;
            writeln!(out, "{}", org.id).map_err(io)?;
        }
        AdminCommand::Orgs(OrgsCommand::List) => {
            for o in db.list_orgs().await.map_err(store)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    o.id,
                    o.name,
                    o.balance(),
                    o.subscription,
                    o.purchased,
                    o.created_at
                )
                .map_err(io)?;
            }
        }
        AdminCommand::Keys(KeysCommand::Create { org, scopes }) => {
            let scopes = match scopes {
                Some(list) => keys::parse_scopes(&list)?,
                None => keys::all_scopes(),
            };
            require_org(&db, &org).await?;
            let (_, secret) = keys::create(&db, &org, &scopes).await.map_err(store)?;
            writeln!(out, "{secret}").map_err(io)?;
        }
        AdminCommand::Keys(KeysCommand::List { org }) => {
            require_org(&db, &org).await?;
            for k in db.list_keys(&org).await.map_err(store)? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}\t{}",
                    k.id,
                    k.prefix,
                    k.scopes,
                    k.created_at,
                    k.revoked_at.as_deref().unwrap_or("active")
                )
                .map_err(io)?;
            }
        }
        AdminCommand::Keys(KeysCommand::Revoke { key_id }) => {
            if !db.revoke_key(&key_id).await.map_err(store)? {
                return Err(format!("no key with id {key_id}"));
            }
            writeln!(out, "{key_id}").map_err(io)?;
        }
        AdminCommand::Credits(CreditsCommand::Grant {
            org,
            amount,
            bucket,
        }) => {
            if amount <= 0 {
                return Err("--amount must be a positive number of credits".into());
            }
            let balance = db
                .grant(&org, bucket, amount)
                .await
                .map_err(store)?
                .ok_or_else(|| format!("no organization with id {org}"))?;
            writeln!(out, "{balance}").map_err(io)?;
        }
        AdminCommand::Credits(CreditsCommand::Ledger { org }) => {
            require_org(&db, &org).await?;
            let mut before: Option<String> = None;
            loop {
                let page = db
                    .ledger_page(&org, before.as_deref(), 500)
                    .await
                    .map_err(store)?;
                for e in &page {
                    writeln!(
                        out,
                        "{}\t{}\t{}\t{}\t{}\t{}",
                        e.id,
                        e.bucket,
                        e.delta,
                        e.reason,
                        e.job_id.as_deref().unwrap_or("-"),
                        e.created_at
                    )
                    .map_err(io)?;
                }
                match page.last() {
                    Some(last) if page.len() == 500 => before = Some(last.id.clone()),
                    _ => break,
                }
            }
        }
        AdminCommand::Variants(VariantsCommand::Import { org, file }) => {
            require_org(&db, &org).await?;
            return import_variants(&db, &org, &file, out).await;
        }
        AdminCommand::Queue(command) => {
            let (value, word) = match command {
                QueueCommand::Pause => ("1", "paused"),
                QueueCommand::Resume => ("0", "resumed"),
            };
            db.set_setting(QUEUE_PAUSED, value).await.map_err(store)?;
            writeln!(out, "{word}").map_err(io)?;
        }
        AdminCommand::Backup { dest } => {
            if Path::new(&dest).exists() {
                return Err(format!("{dest} exists; choose a new file"));
            }
            db.backup_to(&dest).await.map_err(store)?;
            writeln!(out, "{dest}").map_err(io)?;
        }
        AdminCommand::Migrate { .. } => unreachable!("handled above"),
    }
    Ok(())
}

async fn migrate(from: &str, to: &str, out: &mut impl Write) -> Result<(), String> {
    if crate::store::is_postgres_url(from) {
        return Err("--from must be a SQLite database file, not a URL".into());
    }
    if !Path::new(from).is_file() {
        return Err(format!("{from}: no such database file"));
    }
    if !crate::store::is_postgres_url(to) {
        return Err("--to must be a postgres:// URL".into());
    }
    let source = open(from).await?;
    let target = open(to).await?;
    let census = crate::store::migrate::migrate(&source, &target)
        .await
        .map_err(|e| e.to_string())?;
    for (table, rows) in &census.tables {
        writeln!(out, "{table}\t{rows}").map_err(|e| e.to_string())?;
    }
    eprintln!(
        "veneer: moved {} into {}; every table's row count and {} organization(s)' ledger sums match",
        from,
        super::serve::display_db(to),
        census.ledger_sums.len()
    );
    Ok(())
}

async fn require_org(db: &Store, org: &str) -> Result<(), String> {
    let found = db.get_org(org).await.map_err(|e| e.to_string())?;
    found
        .map(|_| ())
        .ok_or_else(|| format!("no organization with id {org}"))
}

/// Imports every valid record in one transaction; invalid ones are reported on stderr and
/// make the command exit non-zero, without blocking the valid ones.
async fn import_variants(
    db: &Store,
    org: &str,
    file: &str,
    out: &mut impl Write,
) -> Result<(), String> {
    let records = read_antibodies(file).map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    let mut failed = 0;
    for record in records {
        let checked = record
            .chains
            .clone()
            .and_then(|(vh, vl)| validate_chains(&vh, vl.as_deref()).map_err(|e| e.to_string()));
        match checked {
            Ok((vh, vl, vl_type)) => rows.push(VariantRow {
                id: new_id(),
                org_id: org.to_string(),
                name: record.name.clone(),
                vh,
                vl,
                vl_chain_type: vl_type.map(str::to_string),
                scfv: None,
                created_at: now(),
            }),
            Err(reason) => {
                failed += 1;
                eprintln!("veneer: {}: {reason}", record.name);
            }
        }
    }
    db.insert_variants(rows.clone(), None)
        .await
        .map_err(|e| e.to_string())?;
    for row in &rows {
        writeln!(out, "{}\t{}", row.id, row.name).map_err(|e| e.to_string())?;
    }
    if failed > 0 {
        return Err(format!(
            "{failed} record(s) of {file} were not imported; {} were",
            rows.len()
        ));
    }
    Ok(())
}
