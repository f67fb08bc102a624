//! The job runner: takes pending jobs from the database fairly across organizations and runs
//! each as a tokio task holding its own `CancellationToken`.
//!
//! The database is the queue (`status = 'pending'`); this module keeps in memory only what a
//! running process needs: which jobs it is running, their current stage and cancel signal.
//! The map of running jobs is locked around every claim and every cancel decision, so a
//! cancel never sees a job that the database says is running but this process does not know.
//! Lock order is always map → writer connection → one job's control; never the reverse.

pub mod durations;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::engine::humanize::{Humanizer, Strategy, StrategySpec, Variant};
use crate::engine::humanness::HumanPeptides;
use crate::service::ServiceError;
use crate::service::submit::{HumanizationSnapshot, parse_designs};
use crate::store::accounts;
use crate::store::db::{Db, StoreError};
use crate::store::jobs::{self, JobRow, Status};
use crate::store::requests;

use durations::Durations;

/// The first stage of every job, and the one that refuses cancellation.
pub const FIRST_STAGE: &str = "numbering";
pub const FINALIZING: &str = "finalizing";

/// How often a paused (or idle) runner looks at the database again.
const POLL: Duration = Duration::from_millis(400);

pub struct RunnerConfig {
    pub workers: usize,
    pub strategies: Vec<Strategy>,
    /// A pause between stages, for tests that need to catch a job mid-pipeline (cancellable
    /// like every other wait between stages). Zero in production.
    pub stage_delay: Duration,
    pub peptides: &'static dyn HumanPeptides,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    /// A client canceled: the job ends `canceled` and is refunded.
    User,
    /// The server is stopping: the job goes back to `pending`, not refunded, and runs again.
    Shutdown,
}

struct Control {
    stage: String,
    reason: Option<CancelReason>,
}

struct RunningJob {
    token: CancellationToken,
    control: Arc<Mutex<Control>>,
    done: watch::Receiver<bool>,
    org_id: String,
}

#[derive(Default)]
struct Queue {
    running: HashMap<String, RunningJob>,
    /// When each organization last had a job taken, for round-robin fairness.
    last_served: HashMap<String, u64>,
    served: u64,
}

/// What a cancel request did.
pub enum CancelOutcome {
    /// The job was pending and is now canceled (and refunded).
    Canceled,
    /// The running job's token was cancelled; `done` turns true once its task has stopped.
    Signaled(watch::Receiver<bool>),
}

pub struct Runner {
    db: Arc<Db>,
    config: RunnerConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    paused: AtomicBool,
    shutdown: CancellationToken,
    /// Bumped whenever a job reaches a terminal status, for long-polling requests.
    events: watch::Sender<u64>,
    tasks: TaskTracker,
    pub durations: Durations,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

enum Stop {
    Canceled,
    Failed { code: &'static str, detail: String },
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        Stop::Store(e)
    }
}

impl Runner {
    pub fn new(db: Arc<Db>, config: RunnerConfig, paused: bool) -> Arc<Runner> {
        Arc::new(Runner {
            db,
            config,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            paused: AtomicBool::new(paused),
            shutdown: CancellationToken::new(),
            events: watch::channel(0).0,
            tasks: TaskTracker::new(),
            durations: Durations::default(),
        })
    }

    /// Start-up recovery: jobs a previous process left `running` go back to `pending`, and
    /// idempotency reservations it left in flight are dropped.
    pub fn recover(db: &Db) -> Result<usize, StoreError> {
        db.write(|tx| {
            let now = crate::store::db::now();
            requests::sweep_keys(tx, &now, &now)?;
            jobs::requeue_all_running(tx).map_err(StoreError::from)
        })
    }

    /// Wakes the claim loop (a job was submitted).
    pub fn notify(&self) {
        self.wake.notify_one();
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    fn bump(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs the claim loop until shutdown. Spawn it once.
    pub async fn run(self: Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.config.workers.max(1)));
        let mut last_poll: Option<Instant> = None;
        let mut last_sweep = Instant::now();
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            if last_poll.is_none_or(|t| t.elapsed() >= POLL) {
                last_poll = Some(Instant::now());
                self.refresh_paused().await;
                if last_sweep.elapsed() >= Duration::from_secs(60) {
                    last_sweep = Instant::now();
                    self.sweep().await;
                }
            }
            if self.is_paused() {
                self.idle().await;
                continue;
            }
            let permit = tokio::select! {
                permit = Arc::clone(&permits).acquire_owned() => match permit {
                    Ok(permit) => permit,
                    Err(_) => break,
                },
                _ = self.shutdown.cancelled() => break,
            };
            let runner = Arc::clone(&self);
            let claimed = tokio::task::spawn_blocking(move || runner.claim_next()).await;
            match claimed {
                Ok(Ok(Some(claim))) => {
                    let runner = Arc::clone(&self);
                    self.tasks.spawn(async move {
                        runner.execute(claim).await;
                        drop(permit);
                    });
                }
                Ok(Ok(None)) => {
                    drop(permit);
                    self.idle().await;
                }
                Ok(Err(e)) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a job failed");
                    self.idle().await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "the claim task failed");
                    self.idle().await;
                }
            }
        }
    }

    async fn idle(&self) {
        tokio::select! {
            _ = self.wake.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
            _ = self.shutdown.cancelled() => {}
        }
    }

    async fn refresh_paused(&self) {
        let paused = self
            .db
            .read_async(|conn| {
                requests::get_setting(conn, requests::QUEUE_PAUSED).map_err(StoreError::from)
            })
            .await;
        match paused {
            Ok(value) => {
                let paused = value.as_deref() == Some("1");
                if paused != self.is_paused() {
                    tracing::info!(paused, "queue pause setting changed");
                }
                self.paused.store(paused, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(error = %e, "reading the queue setting failed"),
        }
    }

    async fn sweep(&self) {
        let swept = self
            .db
            .write_async(|tx| {
                let now = crate::store::db::now();
                let hour_ago = crate::store::db::format_timestamp(
                    jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1),
                );
                requests::sweep_keys(tx, &now, &hour_ago).map_err(StoreError::from)
            })
            .await;
        if let Err(e) = swept {
            tracing::warn!(error = %e, "sweeping idempotency keys failed");
        }
    }

    /// Takes the next job: among organizations with pending work, the one with the fewest
    /// jobs running here and then the longest since it was served; FIFO within it.
    fn claim_next(&self) -> Result<Option<Claim>, StoreError> {
        let mut queue = lock(&self.queue);
        let job = self.db.write(|tx| {
            let orgs = jobs::orgs_with_pending(tx)?;
            let running_of = |org: &str| {
                queue
                    .running
                    .values()
                    .filter(|job| job.org_id == org)
                    .count()
            };
            let Some(org) = orgs.iter().min_by_key(|org| {
                (
                    running_of(org),
                    queue.last_served.get(*org).copied().unwrap_or(0),
                )
            }) else {
                return Ok(None);
            };
            jobs::claim_oldest(tx, org, FIRST_STAGE).map_err(StoreError::from)
        })?;
        let Some(job) = job else { return Ok(None) };
        queue.served += 1;
        let served = queue.served;
        queue.last_served.insert(job.org_id.clone(), served);
        let token = CancellationToken::new();
        let control = Arc::new(Mutex::new(Control {
            stage: FIRST_STAGE.into(),
            reason: None,
        }));
        let (done_tx, done) = watch::channel(false);
        queue.running.insert(
            job.id.clone(),
            RunningJob {
                token: token.clone(),
                control: Arc::clone(&control),
                done,
                org_id: job.org_id.clone(),
            },
        );
        Ok(Some(Claim {
            job,
            token,
            control,
            done: done_tx,
        }))
    }

    async fn execute(self: Arc<Self>, claim: Claim) {
        let Claim {
            job,
            token,
            control,
            done,
        } = claim;
        let started = Instant::now();
        let outcome = self.pipeline(&job, &token, &control, started).await;
        let id = job.id.clone();
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(Stop::Canceled) => {
                let reason = lock(&control).reason;
                let (id, org, cost) = (job.id.clone(), job.org_id.clone(), job.credit_cost);
                self.db
                    .write_async(move |tx| {
                        if reason == Some(CancelReason::Shutdown) {
                            jobs::requeue(tx, &id)?;
                        } else if jobs::finish_unsuccessfully(tx, &id, Status::Canceled, None)? {
                            accounts::refund(tx, &org, &id, cost)?;
                        }
                        Ok::<_, StoreError>(())
                    })
                    .await
            }
            Err(Stop::Failed { code, detail }) => self.fail(&job, code, detail).await,
            Err(Stop::Store(e)) => Err(e),
        };
        if let Err(e) = result {
            // The job stays `running` in the database; start-up recovery re-runs it.
            tracing::error!(job_id = %id, error = %e, "recording a job's end failed");
        }
        lock(&self.queue).running.remove(&id);
        let _ = done.send(true);
        self.bump();
        self.wake.notify_one();
    }

    async fn fail(
        &self,
        job: &JobRow,
        code: &'static str,
        detail: String,
    ) -> Result<(), StoreError> {
        tracing::warn!(job_id = %job.id, code, detail, "job failed");
        let error = crate::http::problem::job_error(code, &detail, &job.id).to_string();
        let (id, org, cost) = (job.id.clone(), job.org_id.clone(), job.credit_cost);
        self.db
            .write_async(move |tx| {
                if jobs::finish_unsuccessfully(tx, &id, Status::Failed, Some(&error))? {
                    accounts::refund(tx, &org, &id, cost)?;
                }
                Ok(())
            })
            .await
    }

    /// Waits the configured stage delay (cancellably), then moves to `stage` unless a cancel
    /// arrived; the stage is persisted so `GET` shows progress.
    async fn advance(
        &self,
        job_id: &str,
        token: &CancellationToken,
        control: &Mutex<Control>,
        stage: &str,
    ) -> Result<(), Stop> {
        if !self.config.stage_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.config.stage_delay) => {}
                _ = token.cancelled() => return Err(Stop::Canceled),
            }
        }
        {
            let mut control = lock(control);
            if control.reason.is_some() || token.is_cancelled() {
                return Err(Stop::Canceled);
            }
            control.stage = stage.to_string();
        }
        let (id, stage) = (job_id.to_string(), stage.to_string());
        self.db
            .write_async(move |tx| jobs::set_stage(tx, &id, &stage).map_err(StoreError::from))
            .await?;
        Ok(())
    }

    /// Runs CPU-bound engine work on the blocking pool, abandoning it if the job is canceled.
    async fn blocking<T: Send + 'static>(
        token: &CancellationToken,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, Stop> {
        let handle = tokio::task::spawn_blocking(work);
        tokio::select! {
            joined = handle => joined.map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the pipeline task stopped: {e}"),
            }),
            _ = token.cancelled() => Err(Stop::Canceled),
        }
    }

    async fn pipeline(
        &self,
        job: &JobRow,
        token: &CancellationToken,
        control: &Mutex<Control>,
        started: Instant,
    ) -> Result<(), Stop> {
        let snapshot: HumanizationSnapshot =
            serde_json::from_str(&job.snapshot).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the job's input could not be read: {e}"),
            })?;
        let peptides = self.config.peptides;
        // Stage `numbering` was set when the job was claimed.
        let (variant, parental) = Self::blocking(token, move || {
            let variant =
                Variant::new(&snapshot.vh, snapshot.vl.as_deref()).map_err(|e| Stop::Failed {
                    code: "invalid_sequence",
                    detail: e.to_string(),
                })?;
            let parental =
                Humanizer::new(peptides)
                    .parental(&variant)
                    .map_err(|e| Stop::Failed {
                        code: "internal",
                        detail: format!("the parental report could not be made: {e}"),
                    })?;
            Ok::<_, Stop>((variant, parental))
        })
        .await??;
        let variant = Arc::new(variant);
        let designs: Vec<StrategySpec> = match &snapshot.strategies {
            Some(asked) => parse_designs(asked).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the job's strategies could not be read: {e}"),
            })?,
            None => self.config.strategies.iter().map(|&s| s.into()).collect(),
        };
        let mut results = Vec::with_capacity(designs.len());
        for spec in designs {
            let strategy = spec.strategy;
            self.advance(&job.id, token, control, strategy.name())
                .await?;
            let variant = Arc::clone(&variant);
            let result =
                Self::blocking(token, move || Humanizer::new(peptides).run(&variant, spec))
                    .await?
                    .map_err(|e| Stop::Failed {
                        code: "internal",
                        detail: format!("strategy {strategy} could not run: {e}"),
                    })?;
            results.push(result);
        }
        crate::engine::humanize::rank_designs(&mut results);
        // From here on the job refuses cancellation: its results are being written.
        self.advance(&job.id, token, control, FINALIZING).await?;
        if !self.config.stage_delay.is_zero() {
            tokio::time::sleep(self.config.stage_delay).await;
        }
        let results = serde_json::to_string(&results).map_err(|e| Stop::Failed {
            code: "internal",
            detail: format!("the results could not be encoded: {e}"),
        })?;
        let parental = serde_json::to_string(&parental).map_err(|e| Stop::Failed {
            code: "internal",
            detail: format!("the parental report could not be encoded: {e}"),
        })?;
        let elapsed = started.elapsed();
        let id = job.id.clone();
        let completed = self
            .db
            .write_async(move |tx| {
                jobs::complete(tx, &id, &results, &parental, elapsed.as_millis() as i64)
                    .map_err(StoreError::from)
            })
            .await?;
        if completed {
            self.durations.observe(elapsed);
        }
        Ok(())
    }

    /// Cancels the caller's job: at once when pending, by signal when running in a cancelable
    /// stage. `kind` restricts it to one job kind (the kind-specific routes).
    pub async fn cancel(
        self: &Arc<Self>,
        org_id: &str,
        job_id: &str,
        kind: Option<&'static str>,
    ) -> Result<CancelOutcome, ServiceError> {
        let runner = Arc::clone(self);
        let (org_id, job_id) = (org_id.to_string(), job_id.to_string());
        let outcome =
            tokio::task::spawn_blocking(move || runner.cancel_blocking(&org_id, &job_id, kind))
                .await
                .map_err(|e| StoreError::Task(e.to_string()))??;
        if matches!(outcome, CancelOutcome::Canceled) {
            self.bump();
        }
        Ok(outcome)
    }

    fn cancel_blocking(
        &self,
        org_id: &str,
        job_id: &str,
        kind: Option<&str>,
    ) -> Result<CancelOutcome, ServiceError> {
        let queue = lock(&self.queue);
        self.db.write(|tx| {
            let job = jobs::get(tx, org_id, job_id, kind)?.ok_or(ServiceError::NotFound)?;
            match job.status {
                Status::Pending => {
                    if jobs::cancel_if_pending(tx, &job.id)? {
                        accounts::refund(tx, &job.org_id, &job.id, job.credit_cost)?;
                    }
                    Ok(CancelOutcome::Canceled)
                }
                Status::Running => match queue.running.get(&job.id) {
                    Some(running) => {
                        let mut control = lock(&running.control);
                        if control.stage == FINALIZING {
                            return Err(ServiceError::CancelUnavailable(control.stage.clone()));
                        }
                        if control.reason.is_none() {
                            control.reason = Some(CancelReason::User);
                        }
                        running.token.cancel();
                        Ok(CancelOutcome::Signaled(running.done.clone()))
                    }
                    // Claims and cancels both hold the map, and start-up recovery requeues
                    // every running row, so only another live process on the same file can
                    // own this job. Its end will be refused by the status guard, so cancel it.
                    None => {
                        if jobs::finish_unsuccessfully(tx, &job.id, Status::Canceled, None)? {
                            accounts::refund(tx, &job.org_id, &job.id, job.credit_cost)?;
                        }
                        Ok(CancelOutcome::Canceled)
                    }
                },
                status => Err(ServiceError::AlreadyTerminal(status)),
            }
        })
    }

    /// Graceful stop: no more claims; running jobs are cancelled with the shutdown reason
    /// (back to `pending`, no refund) and awaited up to `grace`.
    pub async fn stop(&self, grace: Duration) {
        self.shutdown.cancel();
        {
            let queue = lock(&self.queue);
            for running in queue.running.values() {
                let mut control = lock(&running.control);
                if control.reason.is_none() && control.stage != FINALIZING {
                    control.reason = Some(CancelReason::Shutdown);
                    running.token.cancel();
                }
            }
        }
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("some jobs did not stop in time; start-up recovery will re-run them");
        }
    }
}

struct Claim {
    job: JobRow,
    token: CancellationToken,
    control: Arc<Mutex<Control>>,
    done: watch::Sender<bool>,
}
