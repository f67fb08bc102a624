//! The job runner: takes pending jobs from the store fairly across organizations and runs
//! each as a tokio task holding its own `CancellationToken`.
//!
//! The database is the queue (`status = 'pending'`) and the record of every decision: a claim
//! leases the job to this node under a new attempt number, a heartbeat renews the leases while
//! the jobs run, and every write this node makes to a job is fenced by that attempt, so a node
//! that was only slow (and whose job another node rescued) changes nothing. A cancel is stored
//! on the row first; this node's token for the job fires from the HTTP handler on this node,
//! from a notification on a shared database, or at the latest from the next heartbeat, which
//! re-reads the stored requests. In memory there is only what a running process needs: which
//! jobs it holds, their current stage and cancel signal.

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
use crate::service::humanization::{FINALIZING, FIRST_STAGE, HumanizationSnapshot, parse_designs};
use crate::store::{JobRow, Lease, Notice, Rescued, StageWrite, Status, Store, StoreError};

use durations::Durations;

/// How often a paused (or idle) runner looks at the database again.
const POLL: Duration = Duration::from_millis(400);

pub struct RunnerConfig {
    pub workers: usize,
    pub strategies: Vec<Strategy>,
    /// A pause between stages, for tests that need to catch a job mid-pipeline (cancellable
    /// like every other wait between stages). Zero in production.
    pub stage_delay: Duration,
    pub peptides: &'static dyn HumanPeptides,
    /// How long a claimed job stays this node's without a heartbeat; another node rescues
    /// it after that. Heartbeats come every third of it.
    pub lease: Duration,
    /// This process's name in the jobs it holds (`lease_owner`).
    pub node_id: String,
}

/// A name for this process that no other node shares: host, pid and a random suffix.
pub fn node_id() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let suffix = uuid::Uuid::now_v7().simple().to_string();
    format!(
        "{host}-{}-{}",
        std::process::id(),
        &suffix[suffix.len() - 6..]
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CancelReason {
    /// A client canceled: the job ends `canceled` and is refunded.
    User,
    /// The server is stopping: the job goes back to `pending`, not refunded, and runs again.
    Shutdown,
    /// The job is no longer this node's (its lease ran out and another node rescued it):
    /// stop and write nothing.
    Lost,
}

struct Control {
    stage: String,
    reason: Option<CancelReason>,
}

struct RunningJob {
    token: CancellationToken,
    control: Arc<Mutex<Control>>,
    done: watch::Receiver<bool>,
}

#[derive(Default)]
struct Queue {
    running: HashMap<String, RunningJob>,
    /// When each organization last had a job taken here, for round-robin fairness.
    last_served: HashMap<String, u64>,
    served: u64,
}

pub struct Runner {
    store: Store,
    config: RunnerConfig,
    queue: Mutex<Queue>,
    wake: Notify,
    /// Asks the heartbeat to run now (the listener reconnected).
    beat: Notify,
    paused: AtomicBool,
    shutdown: CancellationToken,
    /// Bumped whenever a job reaches a terminal status (here, or on another node of a shared
    /// database), for long-polling requests.
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

/// A job this node holds while its task runs.
struct Holding {
    job: JobRow,
    attempt: i64,
    token: CancellationToken,
    control: Arc<Mutex<Control>>,
    done: watch::Sender<bool>,
}

/// A stage's record in flight: its write, spawned on the runtime.
type Recording = tokio::task::JoinHandle<Result<StageWrite, StoreError>>;

/// What a held job's stage writes check and fence, for the thread that runs its stages.
#[derive(Clone)]
struct Fence {
    job_id: String,
    attempt: i64,
    token: CancellationToken,
    control: Arc<Mutex<Control>>,
}

impl Holding {
    fn fence(&self) -> Fence {
        Fence {
            job_id: self.job.id.clone(),
            attempt: self.attempt,
            token: self.token.clone(),
            control: Arc::clone(&self.control),
        }
    }
}

impl Runner {
    pub fn new(store: Store, config: RunnerConfig, paused: bool) -> Arc<Runner> {
        Arc::new(Runner {
            store,
            config,
            queue: Mutex::new(Queue::default()),
            wake: Notify::new(),
            beat: Notify::new(),
            paused: AtomicBool::new(paused),
            shutdown: CancellationToken::new(),
            events: watch::channel(0).0,
            tasks: TaskTracker::new(),
            durations: Durations::default(),
        })
    }

    /// Start-up recovery. Alone on a SQLite file: every job a previous process left `running`
    /// goes back to `pending` (or ends canceled and refunded if a cancel was stored), and
    /// idempotency reservations it left in flight are dropped. On a shared database the other
    /// nodes are alive: only expired leases are rescued, and only reservations older than an
    /// hour are dropped.
    pub async fn recover(store: &Store) -> Result<Rescued, StoreError> {
        let now = crate::store::now();
        if store.is_shared() {
            store.sweep_keys(&now, &hour_ago()).await?;
            store.rescue(false).await
        } else {
            store.sweep_keys(&now, &now).await?;
            store.rescue(true).await
        }
    }

    pub fn node_id(&self) -> &str {
        &self.config.node_id
    }

    /// Wakes the claim loop (a job was submitted), unless the queue is paused: a paused loop
    /// would only go back to sleep, and it reads the pause setting again at its next poll
    /// anyway, which is also when it would learn of a resume. (Each wake is a cross-thread
    /// hand-off, several per cent of a submit's CPU.)
    pub fn notify(&self) {
        if !self.is_paused() {
            self.wake.notify_one();
        }
    }

    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.events.subscribe()
    }

    /// Wakes long polls: a job ended outside a task of this runner (a pending job canceled).
    pub fn notify_ended(&self) {
        self.bump();
    }

    fn bump(&self) {
        self.events.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Runs the claim loop until shutdown, with the heartbeat and (on a shared database) the
    /// listener beside it. Spawn it once.
    pub async fn run(self: Arc<Self>) {
        let heartbeat = tokio::spawn(Arc::clone(&self).heartbeat_loop());
        let listener = self
            .store
            .listen()
            .map(|notices| tokio::spawn(Arc::clone(&self).listen_loop(notices)));
        if self.config.workers > 0 {
            self.claim_loop().await;
        } else {
            // An API-only node: other nodes run the jobs; this one still hears about them.
            self.shutdown.cancelled().await;
        }
        heartbeat.abort();
        if let Some(listener) = listener {
            listener.abort();
        }
    }

    async fn claim_loop(self: &Arc<Self>) {
        let permits = Arc::new(Semaphore::new(self.config.workers));
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
            match self.claim_next().await {
                Ok(Some(held)) => {
                    let runner = Arc::clone(self);
                    self.tasks.spawn(async move {
                        runner.execute(held).await;
                        drop(permit);
                    });
                }
                Ok(None) => {
                    drop(permit);
                    self.idle().await;
                }
                Err(e) => {
                    drop(permit);
                    tracing::error!(error = %e, "claiming a job failed");
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
        match self.store.get_setting(crate::store::QUEUE_PAUSED).await {
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
        if let Err(e) = self
            .store
            .sweep_keys(&crate::store::now(), &hour_ago())
            .await
        {
            tracing::warn!(error = %e, "sweeping idempotency keys failed");
        }
    }

    /// Every third of the lease: renews this node's leases, stops the jobs whose cancel was
    /// stored (a notification may have been lost) or that are no longer this node's, and on
    /// a shared database rescues other nodes' expired leases.
    async fn heartbeat_loop(self: Arc<Self>) {
        let every = (self.config.lease / 3).max(Duration::from_millis(100));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.beat.notified() => {}
                _ = self.shutdown.cancelled() => return,
            }
            self.beat_once().await;
        }
    }

    async fn beat_once(&self) {
        // Taken before the renewal, so a job claimed meanwhile is not mistaken for a lost one.
        let before: Vec<String> = lock(&self.queue).running.keys().cloned().collect();
        match self
            .store
            .heartbeat(&self.config.node_id, self.config.lease)
            .await
        {
            Ok(held) => {
                for id in &before {
                    match held.iter().find(|h| &h.job_id == id) {
                        Some(h) if h.cancel_requested => {
                            self.signal_reason(id, CancelReason::User);
                        }
                        Some(_) => {}
                        None => {
                            tracing::warn!(job_id = %id, "the job is no longer this node's; stopping it");
                            self.signal_reason(id, CancelReason::Lost);
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing job leases failed"),
        }
        if self.store.is_shared() {
            match self.store.rescue(false).await {
                Ok(r) if r.requeued + r.canceled > 0 => {
                    tracing::info!(
                        requeued = r.requeued,
                        canceled = r.canceled,
                        "rescued jobs whose node stopped renewing their lease"
                    );
                    if r.canceled > 0 {
                        self.bump();
                    }
                    self.wake.notify_one();
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "rescuing expired leases failed"),
            }
        }
    }

    /// Acts on other nodes' news: a stored cancel of a job held here fires its token; a job
    /// ended elsewhere wakes long polls; a changed setting is re-read; after a reconnect
    /// everything is re-read, since notifications may have been lost.
    async fn listen_loop(
        self: Arc<Self>,
        mut notices: tokio::sync::mpsc::UnboundedReceiver<Notice>,
    ) {
        while let Some(notice) = notices.recv().await {
            match notice {
                Notice::CancelRequested(id) => {
                    self.signal_reason(&id, CancelReason::User);
                }
                Notice::JobEnded(_) => self.bump(),
                Notice::Changed => self.refresh_paused().await,
                Notice::Reconnected => {
                    self.beat.notify_one();
                    self.refresh_paused().await;
                    self.bump();
                    self.wake.notify_one();
                }
            }
        }
    }

    /// Takes the next job: among organizations with pending work, the one with the fewest
    /// jobs running (on every node) and then the longest since this node served it; FIFO
    /// within it.
    async fn claim_next(&self) -> Result<Option<Holding>, StoreError> {
        let last_served = lock(&self.queue).last_served.clone();
        let lease = self
            .store
            .claim_next(
                FIRST_STAGE,
                &self.config.node_id,
                self.config.lease,
                move |mut orgs| {
                    orgs.sort_by_key(|(org, running)| {
                        (*running, last_served.get(org).copied().unwrap_or(0))
                    });
                    orgs.into_iter().map(|(org, _)| org).collect()
                },
            )
            .await?;
        let Some(Lease { job, attempt }) = lease else {
            return Ok(None);
        };
        let mut queue = lock(&self.queue);
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
            },
        );
        Ok(Some(Holding {
            job,
            attempt,
            token,
            control,
            done: done_tx,
        }))
    }

    async fn execute(self: Arc<Self>, held: Holding) {
        let started = Instant::now();
        let outcome = self.pipeline(&held, started).await;
        let (id, attempt) = (held.job.id.as_str(), held.attempt);
        let reason = lock(&held.control).reason;
        let result = match outcome {
            Ok(()) => Ok(()),
            Err(Stop::Canceled) => match reason {
                Some(CancelReason::Shutdown) => self.store.release(id, attempt).await,
                // Another node runs it now; every write of ours would be refused anyway.
                Some(CancelReason::Lost) => Ok(()),
                Some(CancelReason::User) | None => self
                    .store
                    .end_refunded(id, attempt, Status::Canceled, None)
                    .await
                    .map(|_| ()),
            },
            Err(Stop::Failed { code, detail }) => {
                tracing::warn!(job_id = %id, code, detail, "job failed");
                let error = crate::http::problem::job_error(code, &detail, id).to_string();
                self.store
                    .end_refunded(id, attempt, Status::Failed, Some(error))
                    .await
                    .map(|_| ())
            }
            Err(Stop::Store(e)) => Err(e),
        };
        if let Err(e) = result {
            // The job stays `running` until it is rescued (its lease runs out, or the next
            // start of the one process on a SQLite file).
            tracing::error!(job_id = %id, error = %e, "recording a job's end failed");
        }
        lock(&self.queue).running.remove(id);
        let _ = held.done.send(true);
        self.bump();
        self.wake.notify_one();
    }

    /// Waits the configured stage delay (cancellably), then moves to `stage` unless a cancel
    /// arrived; the stage is persisted (fenced by the attempt, refused once a cancel is
    /// stored) so `GET` shows progress.
    async fn advance(&self, held: &Fence, stage: &str) -> Result<(), Stop> {
        self.begin(held, stage).await?;
        let written = self
            .store
            .set_stage(&held.job_id, held.attempt, stage)
            .await?;
        Self::answered(held, written)
    }

    /// [`advance`](Self::advance) with its write sent on its way: a stage's engine work need
    /// not wait for its record to commit, only the next stage for its answer
    /// ([`recorded`](Self::recorded)). A cancel reaches the engine work by the token at once
    /// whatever its stage's record is doing.
    async fn enter(&self, held: &Fence, stage: &str) -> Result<Recording, Stop> {
        self.begin(held, stage).await?;
        let (store, job_id, attempt, stage) = (
            self.store.clone(),
            held.job_id.clone(),
            held.attempt,
            stage.to_string(),
        );
        Ok(tokio::spawn(async move {
            store.set_stage(&job_id, attempt, &stage).await
        }))
    }

    /// A stage's record sent by [`enter`](Self::enter), answered.
    async fn recorded(held: &Fence, recording: Recording) -> Result<(), Stop> {
        let written = recording.await.map_err(|e| Stop::Failed {
            code: "internal",
            detail: format!("a stage's record stopped: {e}"),
        })??;
        Self::answered(held, written)
    }

    /// A stage's start, before its record: the stage delay, then `stage` unless a cancel
    /// arrived.
    async fn begin(&self, held: &Fence, stage: &str) -> Result<(), Stop> {
        // Checked first, before any timer is made: a stage abandoned by a cancel or by the
        // shutdown reaches here on its engine thread while the runtime may be shutting down.
        if held.token.is_cancelled() {
            return Err(Stop::Canceled);
        }
        if !self.config.stage_delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.config.stage_delay) => {}
                _ = held.token.cancelled() => return Err(Stop::Canceled),
            }
        }
        let mut control = lock(&held.control);
        if control.reason.is_some() || held.token.is_cancelled() {
            return Err(Stop::Canceled);
        }
        control.stage = stage.to_string();
        Ok(())
    }

    /// What a stage's record answered: a cancel stored meanwhile, or the job lost to another
    /// node, stops the job.
    fn answered(held: &Fence, written: StageWrite) -> Result<(), Stop> {
        match written {
            StageWrite::Recorded => Ok(()),
            StageWrite::CancelRequested => {
                let mut control = lock(&held.control);
                control.reason.get_or_insert(CancelReason::User);
                Err(Stop::Canceled)
            }
            StageWrite::Lost => {
                lock(&held.control).reason = Some(CancelReason::Lost);
                Err(Stop::Canceled)
            }
        }
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

    async fn pipeline(self: &Arc<Self>, held: &Holding, started: Instant) -> Result<(), Stop> {
        let (job, token) = (&held.job, &held.token);
        let snapshot: HumanizationSnapshot =
            serde_json::from_str(&job.snapshot).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the job's input could not be read: {e}"),
            })?;
        let designs: Vec<StrategySpec> = match &snapshot.strategies {
            Some(asked) => parse_designs(asked).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the job's strategies could not be read: {e}"),
            })?,
            None => self.config.strategies.iter().map(|&s| s.into()).collect(),
        };
        let peptides = self.config.peptides;
        // The whole computation runs on one blocking thread, each stage recorded from there
        // (the runtime's `block_on`) before it runs: a hop per stage cost a thread wake-up each,
        // and the scheduler often placed the woken thread on the core the other worker was
        // computing on while the second core idled. Stage `numbering` was set at the claim.
        let (runner, runtime, fence) = (
            Arc::clone(self),
            tokio::runtime::Handle::current(),
            held.fence(),
        );
        let (results, parental) = Self::blocking(token, move || {
            let variant =
                Variant::new(&snapshot.vh, snapshot.vl.as_deref()).map_err(|e| Stop::Failed {
                    code: "invalid_sequence",
                    detail: e.to_string(),
                })?;
            let humanizer = Humanizer::new(peptides);
            let parental = humanizer.parental(&variant).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the parental report could not be made: {e}"),
            })?;
            let mut results = Vec::with_capacity(designs.len());
            // Each stage computes while its record commits; the next stage (or the end of the
            // last) waits for that record's answer first, so at most one is in flight and they
            // commit in order.
            let mut recording = None;
            for spec in designs {
                let strategy = spec.strategy;
                if let Some(previous) = recording.take() {
                    runtime.block_on(Self::recorded(&fence, previous))?;
                }
                recording = Some(runtime.block_on(runner.enter(&fence, strategy.name()))?);
                results.push(humanizer.run(&variant, spec).map_err(|e| Stop::Failed {
                    code: "internal",
                    detail: format!("strategy {strategy} could not run: {e}"),
                })?);
            }
            if let Some(last) = recording {
                runtime.block_on(Self::recorded(&fence, last))?;
            }
            crate::engine::humanize::rank_designs(&mut results);
            let results = serde_json::to_string(&results).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the results could not be encoded: {e}"),
            })?;
            let parental = serde_json::to_string(&parental).map_err(|e| Stop::Failed {
                code: "internal",
                detail: format!("the parental report could not be encoded: {e}"),
            })?;
            Ok::<_, Stop>((results, parental))
        })
        .await??;
        // From here on the job refuses cancellation: its results are being written. With a
        // stage delay `finalizing` is a record of its own, shown for the delay; without one it
        // is this node's alone and the results' one transaction refuses a cancel stored first
        // (the job then ends canceled and refunded), a round trip fewer per job.
        let fence = held.fence();
        if self.config.stage_delay.is_zero() {
            self.begin(&fence, FINALIZING).await?;
        } else {
            self.advance(&fence, FINALIZING).await?;
            tokio::time::sleep(self.config.stage_delay).await;
        }
        let elapsed = started.elapsed();
        let written = self
            .store
            .complete(
                &job.id,
                held.attempt,
                results,
                parental,
                elapsed.as_millis() as i64,
            )
            .await?;
        match written {
            StageWrite::Recorded => {
                self.durations.observe(elapsed);
                tracing::info!(
                    job_id = %job.id,
                    node = %self.config.node_id,
                    attempt = held.attempt,
                    duration_ms = elapsed.as_millis() as u64,
                    "job completed"
                );
            }
            StageWrite::CancelRequested => return Self::answered(&fence, written),
            StageWrite::Lost => {
                tracing::warn!(job_id = %job.id, "the job was no longer this node's to complete");
            }
        }
        Ok(())
    }

    /// Fires the token of a job this node holds after a client's cancel was stored; returns a
    /// receiver that turns true once its task has stopped, or None when the job is not held
    /// here (another node holds it, or it just ended).
    pub fn signal(&self, job_id: &str) -> Option<watch::Receiver<bool>> {
        self.signal_reason(job_id, CancelReason::User)
    }

    fn signal_reason(&self, job_id: &str, reason: CancelReason) -> Option<watch::Receiver<bool>> {
        let queue = lock(&self.queue);
        let running = queue.running.get(job_id)?;
        {
            let mut control = lock(&running.control);
            // The database refused the cancel once `finalizing` was stored; a job that far
            // along is left to finish (a lost one is stopped regardless).
            if control.stage == FINALIZING && reason != CancelReason::Lost {
                return Some(running.done.clone());
            }
            control.reason.get_or_insert(reason);
        }
        running.token.cancel();
        Some(running.done.clone())
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
            tracing::warn!(
                "some jobs did not stop in time; they are rescued when their lease runs out"
            );
        }
    }
}

/// An hour ago: idempotency reservations older than this belong to no live request.
fn hour_ago() -> String {
    crate::store::format_timestamp(jiff::Timestamp::now() - jiff::SignedDuration::from_hours(1))
}
