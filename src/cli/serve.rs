//! `veneer serve`: opens the database, recovers, bootstraps a first organization, runs the
//! HTTP server and the job runner until SIGINT/SIGTERM, then stops gracefully.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use tokio_util::sync::CancellationToken;

use crate::engine::humanize::Strategy;
use crate::engine::humanness::{HumanPeptides, OasisSet};
use crate::engine::oasis_rules::OasisThreshold;
use crate::http::limits::{Rate, RateLimiter};
use crate::http::{self, App, Config};
use crate::runner::{Runner, RunnerConfig};
use crate::service::keys;
use crate::store::oasis_db::OasisDb;
use crate::store::{QUEUE_PAUSED, Store, StoreError};

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (`127.0.0.1:0` picks a free port; the line `listening on ...` says which).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Jobs run at once (default: the number of cores). 0 serves the API only and runs no
    /// jobs, for a node in front of others that share its PostgreSQL database.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Threads serving the HTTP API (default: the number of cores). Each connection stays on
    /// one of them from its first request to its last; jobs run on threads of their own
    /// (`--workers`).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub http_threads: Option<u16>,
    /// Comma-separated strategies every job runs (default: all the engine knows).
    #[arg(long, value_parser = parse_strategies)]
    pub strategies: Option<StrategyList>,
    /// BioPhi's full OASis database instead of the embedded 10 % set.
    #[arg(long)]
    pub oasis_db: Option<String>,
    /// Prevalence threshold with --oasis-db: loose, relaxed, medium, strict.
    #[arg(long, default_value = "relaxed", requires = "oasis_db")]
    pub oasis_threshold: OasisThreshold,
    /// Read requests per second per key.
    #[arg(long, default_value_t = 50.0)]
    pub read_rate: f64,
    /// Read burst per key.
    #[arg(long, default_value_t = 100.0)]
    pub read_burst: f64,
    /// Write requests per second per key.
    #[arg(long, default_value_t = 10.0)]
    pub write_rate: f64,
    /// Write burst per key.
    #[arg(long, default_value_t = 20.0)]
    pub write_burst: f64,
    /// Write requests per organization per UTC day.
    #[arg(long, default_value_t = 10_000)]
    pub daily_write_quota: i64,
    /// Hours an Idempotency-Key is remembered.
    #[arg(long, default_value_t = 24)]
    pub idempotency_ttl_hours: u64,
    /// Start with the queue paused (submits are accepted and stay pending).
    #[arg(long)]
    pub paused: bool,
    /// Credits the first-run default organization starts with.
    #[arg(long, default_value_t = 100)]
    pub starter_credits: i64,
    /// Seconds a running job stays this node's without a heartbeat (renewed every third of
    /// it); after that any node of a shared database puts it back in the queue.
    #[arg(long, default_value_t = 10.0)]
    pub job_lease_seconds: f64,
    /// Testing aid: sleep this long (cancellably) before each pipeline stage, so tests can
    /// catch a job mid-pipeline. Never needed in production.
    #[arg(long, default_value_t = 0, hide = true)]
    pub stage_delay_ms: u64,
}

#[derive(Debug, Clone)]
pub struct StrategyList(pub Vec<Strategy>);

fn parse_strategies(s: &str) -> Result<StrategyList, String> {
    Strategy::parse_list(s).map(StrategyList)
}

/// The humanness reference lives as long as the process: the runner's tasks borrow it.
fn peptides(args: &ServeArgs) -> Result<&'static dyn HumanPeptides, String> {
    match &args.oasis_db {
        Some(path) => {
            let db = OasisDb::open(path, args.oasis_threshold).map_err(|e| e.to_string())?;
            Ok(Box::leak(Box::new(db)))
        }
        None => Ok(OasisSet::embedded()),
    }
}

/// On a database without organizations: a default one with starter credits and one key with
/// every scope, whose secret is returned to be printed once.
async fn bootstrap(store: &Store, credits: i64) -> Result<Option<String>, StoreError> {
    let key = keys::generate();
    let created = store
        .bootstrap("default", credits, key.stored(&keys::all_scopes()))
        .await?;
    Ok(created.map(|_| key.secret))
}

pub fn run(db: &str, args: ServeArgs) -> Result<(), String> {
    for (flag, value, least) in [
        ("--read-rate", args.read_rate, f64::MIN_POSITIVE),
        ("--write-rate", args.write_rate, f64::MIN_POSITIVE),
        ("--read-burst", args.read_burst, 1.0),
        ("--write-burst", args.write_burst, 1.0),
        ("--job-lease-seconds", args.job_lease_seconds, 0.3),
    ] {
        if !(value >= least && value.is_finite()) {
            return Err(format!(
                "{flag} must be a positive number{}",
                if least >= 1.0 { " of at least 1" } else { "" }
            ));
        }
    }
    tracing_subscriber::fmt()
        .with_writer(super::log::Stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init()
        .map_err(|e| e.to_string())?;
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let workers = args.workers.unwrap_or(cores);
    let http_threads = args.http_threads.map_or(cores, usize::from);
    // The runner, the accept loop and the database's background tasks; requests run on the
    // API threads' runtimes (`lanes`).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let lanes = Lanes::start(http_threads)?;
    let served = runtime.block_on(serve(db, args, workers, lanes.handles()));
    // Only now: a lane also drives the database connections its requests opened (PostgreSQL),
    // which the runner's last writes may still have used.
    lanes.stop();
    served
}

/// The API threads: one single-threaded runtime each, running until [`Lanes::stop`].
struct Lanes {
    handles: Vec<tokio::runtime::Handle>,
    threads: Vec<std::thread::JoinHandle<()>>,
    stop: CancellationToken,
}

impl Lanes {
    fn start(count: usize) -> Result<Lanes, String> {
        let stop = CancellationToken::new();
        let mut lanes = Lanes {
            handles: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            stop: stop.clone(),
        };
        for i in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .on_thread_park(|| {
                    super::log::write_held();
                    crate::store::sqlite::db::end_snapshot_on_this_thread();
                })
                .build()
                .map_err(|e| format!("cannot start an API thread's runtime: {e}"))?;
            lanes.handles.push(runtime.handle().clone());
            let stop = stop.clone();
            let thread = std::thread::Builder::new()
                .name(format!("veneer-http-{i}"))
                .spawn(move || {
                    // Lines still held when the thread ends are written out as it ends.
                    super::log::hold_on_this_thread();
                    crate::store::sqlite::db::share_snapshots_on_this_thread();
                    let answers = crate::store::sqlite::db::deliver_answers_on_this_thread();
                    runtime.block_on(async move {
                        tokio::select! {
                            () = stop.cancelled() => {}
                            () = answers => {}
                        }
                    });
                })
                .map_err(|e| format!("cannot start an API thread: {e}"))?;
            lanes.threads.push(thread);
        }
        Ok(lanes)
    }

    fn handles(&self) -> Vec<tokio::runtime::Handle> {
        self.handles.clone()
    }

    fn stop(self) {
        self.stop.cancel();
        for thread in self.threads {
            let _ = thread.join();
        }
    }
}

/// A database named for a message: a file's path as given, a URL without its password.
pub fn display_db(db: &str) -> String {
    crate::store::postgres::redact(db)
}

async fn serve(
    db: &str,
    args: ServeArgs,
    workers: usize,
    lanes: Vec<tokio::runtime::Handle>,
) -> Result<(), String> {
    // Each API thread may hold one reader for the snapshot its requests share.
    let store = Store::open(db, (workers as u32 * 2).max(8) + lanes.len() as u32)
        .await
        .map_err(|e| format!("cannot open {}: {e}", display_db(db)))?;
    let recovered = Runner::recover(&store).await.map_err(|e| e.to_string())?;
    if recovered.requeued + recovered.canceled > 0 {
        tracing::info!(
            requeued = recovered.requeued,
            canceled = recovered.canceled,
            "recovered jobs left running by a stopped process"
        );
    }
    if args.paused {
        store
            .set_setting(QUEUE_PAUSED, "1")
            .await
            .map_err(|e| e.to_string())?;
    }
    let paused = store
        .get_setting(QUEUE_PAUSED)
        .await
        .map_err(|e| e.to_string())?
        .as_deref()
        == Some("1");
    let bootstrap_key = bootstrap(&store, args.starter_credits)
        .await
        .map_err(|e| e.to_string())?;
    let strategies = args
        .strategies
        .clone()
        .map_or_else(|| Strategy::DEFAULT.to_vec(), |s| s.0);
    let runner = Runner::new(
        store.clone(),
        RunnerConfig {
            workers,
            strategies,
            stage_delay: Duration::from_millis(args.stage_delay_ms),
            peptides: peptides(&args)?,
            lease: Duration::from_secs_f64(args.job_lease_seconds),
            node_id: crate::runner::node_id(),
        },
        paused,
    );
    tracing::info!(
        backend = store.backend(),
        node = runner.node_id(),
        workers,
        "store opened"
    );
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", args.listen))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    // Before the line a supervisor waits for: a SIGTERM sent the moment it reads the line must
    // start a graceful shutdown, not meet the default action and kill the process.
    let signals = shutdown_signal();
    {
        let mut out = std::io::stdout().lock();
        if let Some(secret) = &bootstrap_key {
            let _ = writeln!(out, "api key: {secret}");
        }
        let _ = writeln!(out, "listening on http://{local}");
        let _ = out.flush();
    }
    if bootstrap_key.is_some() {
        tracing::info!(
            "created the default organization with {} credits; the API key above is shown only \
             once. Try: curl -H \"Authorization: Bearer $KEY\" http://{local}/v1/organization",
            args.starter_credits
        );
    }
    let shutdown = CancellationToken::new();
    let app = Arc::new(App {
        store: store.clone(),
        runner: Arc::clone(&runner),
        config: Config {
            rate_limiter: RateLimiter::new(
                Rate {
                    per_second: args.read_rate,
                    burst: args.read_burst,
                },
                Rate {
                    per_second: args.write_rate,
                    burst: args.write_burst,
                },
            ),
            daily_write_quota: args.daily_write_quota,
            idempotency_ttl: Duration::from_secs(args.idempotency_ttl_hours * 3600),
        },
        requests: Default::default(),
        shutdown: shutdown.clone(),
        keys: Default::default(),
    });
    let runner_task = tokio::spawn(Arc::clone(&runner).run());
    let server = tokio::spawn(http::serve(
        Arc::clone(&app),
        listener,
        lanes,
        shutdown.clone(),
    ));
    signals.await;
    tracing::info!("shutting down: no new connections; finishing in-flight requests");
    shutdown.cancel();
    if let Err(e) = server.await {
        tracing::warn!(error = %e, "the server task ended abnormally");
    }
    runner.stop(Duration::from_secs(10)).await;
    let _ = runner_task.await;
    store
        .checkpoint()
        .await
        .map_err(|e| format!("checkpointing the WAL: {e}"))?;
    tracing::info!("stopped");
    Ok(())
}

/// Registers the SIGINT and SIGTERM handlers now and returns a future that resolves on the
/// first of them.
fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let interrupt = signal(SignalKind::interrupt());
        async move {
            match (term, interrupt) {
                (Ok(mut term), Ok(mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}
