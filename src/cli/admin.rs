//! The administrator's commands (SPEC §11): organizations, keys, credits, bulk variant import,
//! queue pause/resume and backups. They work on the database file directly, so they run with
//! or without a server; a running server sees their changes (WAL readers, and the queue
//! setting is polled every 400 ms).
//!
//! Stdout carries only results in the forms SPEC.md fixes (an id, a key, alone on their line)
//! or tab-separated rows; messages go to stderr.

use std::io::Write;
use std::path::Path;

use clap::Subcommand;

use crate::input::read_antibodies;
use crate::service::keys;
use crate::service::submit::validate_chains;
use crate::store::accounts::{self, Bucket};
use crate::store::db::{Db, StoreError, new_id, now};
use crate::store::requests;
use crate::store::variants::{self, VariantRow};

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
pub fn run(db_path: &Path, command: AdminCommand, out: &mut impl Write) -> Result<(), String> {
    let db = Db::open(db_path, 2).map_err(|e| format!("cannot open {}: {e}", db_path.display()))?;
    let io = |e: std::io::Error| e.to_string();
    let store = |e: StoreError| e.to_string();
    match command {
        AdminCommand::Orgs(OrgsCommand::Create { name, credits }) => {
            if name.trim().is_empty() {
                return Err("the organization name must not be empty".into());
            }
            if credits < 0 {
                return Err("--credits must not be negative".into());
            }
            let org = db
                .write(|tx| {
                    let org = accounts::create_org(tx, name.trim())?;
                    if credits > 0 {
                        accounts::grant(tx, &org.id, Bucket::Subscription, credits)?;
                    }
                    Ok::<_, StoreError>(org)
                })
                .map_err(store)?;
            writeln!(out, "{}", org.id).map_err(io)?;
        }
        AdminCommand::Orgs(OrgsCommand::List) => {
            let orgs = db
                .read(|c| accounts::list_orgs(c).map_err(StoreError::from))
                .map_err(store)?;
            for o in orgs {
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
                None => keys::SCOPES.iter().map(|s| s.to_string()).collect(),
            };
            require_org(&db, &org)?;
            let (_, secret) = keys::create(&db, &org, &scopes).map_err(store)?;
            writeln!(out, "{secret}").map_err(io)?;
        }
        AdminCommand::Keys(KeysCommand::List { org }) => {
            require_org(&db, &org)?;
            let rows = db
                .read(|c| accounts::list_keys(c, &org).map_err(StoreError::from))
                .map_err(store)?;
            for k in rows {
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
            let found = db
                .write(|tx| accounts::revoke_key(tx, &key_id).map_err(StoreError::from))
                .map_err(store)?;
            if !found {
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
                .write(|tx| {
                    if accounts::get_org(tx, &org)?.is_none() {
                        return Ok(None);
                    }
                    accounts::grant(tx, &org, bucket, amount)?;
                    Ok::<_, StoreError>(accounts::get_org(tx, &org)?.map(|o| o.balance()))
                })
                .map_err(store)?
                .ok_or_else(|| format!("no organization with id {org}"))?;
            writeln!(out, "{balance}").map_err(io)?;
        }
        AdminCommand::Credits(CreditsCommand::Ledger { org }) => {
            require_org(&db, &org)?;
            let mut before: Option<String> = None;
            loop {
                let page = db
                    .read(|c| {
                        accounts::ledger_page(c, &org, before.as_deref(), 500)
                            .map_err(StoreError::from)
                    })
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
            require_org(&db, &org)?;
            return import_variants(&db, &org, &file, out);
        }
        AdminCommand::Queue(command) => {
            let (value, word) = match command {
                QueueCommand::Pause => ("1", "paused"),
                QueueCommand::Resume => ("0", "resumed"),
            };
            db.write(|tx| {
                requests::set_setting(tx, requests::QUEUE_PAUSED, value).map_err(StoreError::from)
            })
            .map_err(store)?;
            writeln!(out, "{word}").map_err(io)?;
        }
        AdminCommand::Backup { dest } => {
            if Path::new(&dest).exists() {
                return Err(format!("{dest} exists; choose a new file"));
            }
            db.backup_to(&dest).map_err(store)?;
            writeln!(out, "{dest}").map_err(io)?;
        }
    }
    Ok(())
}

fn require_org(db: &Db, org: &str) -> Result<(), String> {
    let found = db
        .read(|c| accounts::get_org(c, org).map_err(StoreError::from))
        .map_err(|e| e.to_string())?;
    found
        .map(|_| ())
        .ok_or_else(|| format!("no organization with id {org}"))
}

/// Imports every valid record in one transaction; invalid ones are reported on stderr and
/// make the command exit non-zero, without blocking the valid ones.
fn import_variants(db: &Db, org: &str, file: &str, out: &mut impl Write) -> Result<(), String> {
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
    db.write(|tx| {
        for row in &rows {
            variants::insert(tx, row)?;
        }
        Ok::<_, StoreError>(())
    })
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
