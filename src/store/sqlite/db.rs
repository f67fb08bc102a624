//! The service database: one writer thread owning the one writer connection, plus an r2d2 pool
//! of read-only connections, all on one SQLite file in WAL mode.
//!
//! Why one writer: SQLite allows one writer at a time anyway, and several pooled writers
//! contend on the lock (`SQLITE_BUSY` after the timeout) and starve WAL checkpoints. Every
//! write is queued to the writer thread ([`Db::write`], [`Db::write_async`]), which commits
//! in groups: it takes every write waiting in its queue (up to [`MAX_BATCH`]), runs them in one
//! `BEGIN IMMEDIATE` transaction, commits once, and only then answers each caller — no answer
//! before its commit. A write that fails is undone alone: the group first runs without
//! savepoints (each costs a copy of every page its write touches); if one write fails, that
//! transaction is rolled back and the group runs again without it, each write in its own
//! savepoint (see [`run_group`]). So a write may run twice, and must touch nothing but the
//! connection.
//! `BEGIN IMMEDIATE` takes the write lock before any read, so a read-then-write can never be
//! upgraded into a deadlock.

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use r2d2::PooledConnection;
use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, TransactionBehavior};

use crate::store::StoreError;

/// The schema every table lives in; bump [`SCHEMA_VERSION`] with any change to it.
pub const SCHEMA: &str = include_str!("../../../schema.sql");
pub const SCHEMA_VERSION: i64 = 5;

/// The steps from each earlier schema version to the next: `(from, SQL)`. SQLite cannot relax
/// a `NOT NULL`, so a changed table is rebuilt and its rows copied.
const UPGRADES: &[(i64, &str)] = &[
    (
        1,
        // Version 2: single-domain variants (`vl` NULL) and the scFv split.
        "CREATE TABLE variants_v2 (
         id            TEXT PRIMARY KEY,
         org_id        TEXT NOT NULL REFERENCES organizations(id),
         name          TEXT NOT NULL,
         vh            TEXT NOT NULL,
         vl            TEXT,
         vl_chain_type TEXT CHECK (vl_chain_type IN ('kappa', 'lambda')),
         scfv          TEXT,
         created_at    TEXT NOT NULL,
         CHECK ((vl IS NULL) = (vl_chain_type IS NULL))
     );
     INSERT INTO variants_v2 (id, org_id, name, vh, vl, vl_chain_type, created_at)
         SELECT id, org_id, name, vh, vl, vl_chain_type, created_at FROM variants;
     DROP TABLE variants;
     ALTER TABLE variants_v2 RENAME TO variants;
     CREATE INDEX variants_org ON variants(org_id, id);",
    ),
    (
        2,
        // Version 3: attempts, leases and stored cancel requests on jobs.
        "ALTER TABLE jobs ADD COLUMN attempt INTEGER NOT NULL DEFAULT 0;
         ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
         ALTER TABLE jobs ADD COLUMN lease_expires_at INTEGER;
         ALTER TABLE jobs ADD COLUMN cancel_requested_at TEXT;",
    ),
    (
        3,
        // Version 4: fewer B-trees per write (issue 12). The ledger and the daily counts are
        // stored in their keys (WITHOUT ROWID), the ledger keyed (org_id, id); `jobs_org_kind`,
        // which no query used, is gone. The rows are copied before the ledger's triggers
        // exist, so the balances are not applied twice.
        "CREATE TABLE credit_ledger_v4 (
         id         TEXT NOT NULL,
         org_id     TEXT NOT NULL REFERENCES organizations(id),
         bucket     TEXT NOT NULL CHECK (bucket IN ('subscription', 'purchased')),
         delta      INTEGER NOT NULL CHECK (delta <> 0),
         reason     TEXT NOT NULL CHECK (reason IN ('grant', 'debit', 'refund')),
         job_id     TEXT REFERENCES jobs(id),
         created_at TEXT NOT NULL,
         CHECK ((reason = 'grant') = (job_id IS NULL)),
         CHECK ((reason = 'debit') = (delta < 0)),
         PRIMARY KEY (org_id, id)
     ) WITHOUT ROWID;
     INSERT INTO credit_ledger_v4 (id, org_id, bucket, delta, reason, job_id, created_at)
         SELECT id, org_id, bucket, delta, reason, job_id, created_at FROM credit_ledger;
     DROP TABLE credit_ledger;
     ALTER TABLE credit_ledger_v4 RENAME TO credit_ledger;
     CREATE UNIQUE INDEX credit_ledger_one_debit ON credit_ledger(job_id, bucket)
         WHERE reason = 'debit';
     CREATE UNIQUE INDEX credit_ledger_one_refund ON credit_ledger(job_id) WHERE reason = 'refund';
     CREATE TRIGGER credit_ledger_append_only_update BEFORE UPDATE ON credit_ledger
     BEGIN
         SELECT RAISE(ABORT, 'the credit ledger is append-only');
     END;
     CREATE TRIGGER credit_ledger_append_only_delete BEFORE DELETE ON credit_ledger
     BEGIN
         SELECT RAISE(ABORT, 'the credit ledger is append-only');
     END;
     CREATE TRIGGER credit_ledger_apply AFTER INSERT ON credit_ledger
     BEGIN
         UPDATE organizations
            SET subscription_credits = subscription_credits
                    + CASE WHEN NEW.bucket = 'subscription' THEN NEW.delta ELSE 0 END,
                purchased_credits = purchased_credits
                    + CASE WHEN NEW.bucket = 'purchased' THEN NEW.delta ELSE 0 END
          WHERE id = NEW.org_id;
     END;
     CREATE TABLE daily_writes_v4 (
         org_id TEXT NOT NULL REFERENCES organizations(id),
         day    TEXT NOT NULL,
         count  INTEGER NOT NULL,
         PRIMARY KEY (org_id, day)
     ) WITHOUT ROWID;
     INSERT INTO daily_writes_v4 (org_id, day, count)
         SELECT org_id, day, count FROM daily_writes;
     DROP TABLE daily_writes;
     ALTER TABLE daily_writes_v4 RENAME TO daily_writes;
     DROP INDEX jobs_org_kind;",
    ),
    (
        4,
        // Version 5: the queue in two partial indexes, pending and running (issue 12): a job
        // that ends no longer moves into an index range of ended jobs.
        "DROP INDEX jobs_queue;
     CREATE INDEX jobs_pending ON jobs(org_id, id) WHERE status = 'pending';
     CREATE INDEX jobs_running ON jobs(org_id, id) WHERE status = 'running';",
    ),
];

/// How long a connection waits on a lock before giving up. Set before WAL is switched on: the
/// switch itself takes a lock that another process (the admin CLI) may hold.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The per-connection settings every connection needs (SQLite forgets them on close).
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // NORMAL is durable across process crashes in WAL mode (only an OS crash can lose the last
    // commits), and it keeps commits off fsync.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // A group commit runs each write in a savepoint, whose sub-journal (the pages it changed,
    // as they were) would otherwise spill to a temporary file past 64 KiB: keep it in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    // The writer runs every statement of the service; keep them all prepared.
    conn.set_prepared_statement_cache_capacity(64);
    Ok(())
}

/// Executes one statement through the connection's prepared-statement cache: the hot paths
/// (submit, stage updates) run the same few statements thousands of times.
pub fn exec(
    conn: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> rusqlite::Result<usize> {
    conn.prepare_cached(sql)?.execute(params)
}

/// The most writes one group commit takes: bounds how long the first of them waits.
pub const MAX_BATCH: usize = 128;

/// A queued write: run in its group's transaction (more than once if the group is run
/// again), then answered once.
trait QueuedWrite: Send {
    /// Runs the write, keeping its result; whether it succeeded.
    fn run(&mut self, conn: &Connection, undo: Undo) -> bool;
    /// Settles the write's answer: its last result, given how its transaction ended (or the
    /// error that kept it from opening, the write then never run).
    fn settle(&mut self, ended: Result<(), &StoreError>);
    /// The API thread to deliver the answer on, if the write came from one ([`Lane`]).
    fn take_lane(&mut self) -> Option<Lane>;
    /// Gives the caller its settled answer.
    fn deliver(self: Box<Self>);
}

/// A write and its caller's answer.
struct Pending<F, T, E, A> {
    write: F,
    /// The write's last result; once [`QueuedWrite::settle`]d, its caller's answer.
    result: Option<Result<T, E>>,
    lane: Option<Lane>,
    answer: A,
}

impl<F, T, E, A> QueuedWrite for Pending<F, T, E, A>
where
    F: Fn(&Connection) -> Result<T, E> + Send,
    T: Send,
    E: From<StoreError> + Send,
    A: FnOnce(Result<T, E>) + Send,
{
    fn run(&mut self, conn: &Connection, undo: Undo) -> bool {
        let result = run_one(conn, undo, &self.write);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn settle(&mut self, ended: Result<(), &StoreError>) {
        self.result = Some(match (ended, self.result.take()) {
            (_, Some(Err(e))) => Err(e),
            (Ok(()), Some(Ok(value))) => Ok(value),
            (Err(e), None) => Err(E::from(StoreError::Task(e.to_string()))),
            (Err(e), Some(Ok(_))) => Err(E::from(StoreError::Task(format!(
                "the group commit failed: {e}"
            )))),
            (Ok(()), None) => Err(E::from(StoreError::Task("the write was not run".into()))),
        });
    }

    fn take_lane(&mut self) -> Option<Lane> {
        self.lane.take()
    }

    fn deliver(self: Box<Self>) {
        let Pending { result, answer, .. } = *self;
        answer(
            result
                .unwrap_or_else(|| Err(E::from(StoreError::Task("the write was not run".into())))),
        )
    }
}

enum Work {
    /// One write, run in the group's transaction.
    Write(Box<dyn QueuedWrite>),
    /// Work outside any transaction (checkpoint, backup), between groups.
    Raw(Box<dyn FnOnce(&Connection) + Send>),
}

/// How a write that fails is undone.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Undo {
    /// Rolled back to a savepoint of its own; the group's other writes stay.
    Savepoint,
    /// The whole transaction is rolled back (the write runs without a savepoint).
    Transaction,
}

/// Counters of the writer thread, for tests and the bench.
#[derive(Debug, Default)]
pub struct WriterStats {
    /// Groups committed (or failed), each counted once however many times it ran.
    pub groups: AtomicU64,
    pub writes: AtomicU64,
    /// Groups run a second time, with savepoints, after a write failed in the first run.
    pub reruns: AtomicU64,
    /// Batches of answers sent to an API thread to deliver ([`answer_all`]).
    pub lane_batches: AtomicU64,
    /// Transactions the writer has ended and raw work it has done, each counted after it ends
    /// and before any of its callers is answered: while this still reads what it read just
    /// before a snapshot began, no write has been answered that the snapshot lacks
    /// ([`ThreadSnapshot`]).
    pub ended: AtomicU64,
}

/// How long an API thread goes on reading from one snapshot across requests while the writer
/// ends no transaction ([`ThreadSnapshot`]).
pub const SNAPSHOT_FRESH: Duration = Duration::from_micros(500);

/// Tells the databases open in this process apart, for a thread's snapshot.
static NEXT_DB: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// Whether this thread's requests share read snapshots ([`share_snapshots_on_this_thread`]).
    static SHARES_SNAPSHOTS: Cell<bool> = const { Cell::new(false) };
    /// The read transaction this thread's requests are sharing, if one is open.
    static THREAD_SNAPSHOT: RefCell<Option<ThreadSnapshot>> = const { RefCell::new(None) };
    /// Numbers this thread's snapshots, so a request's second read knows its first one's.
    static NEXT_SNAPSHOT: Cell<u64> = const { Cell::new(0) };
    /// Where the writer sends this thread's answers ([`deliver_answers_on_this_thread`]).
    static LANE: RefCell<Option<Lane>> = const { RefCell::new(None) };
}

/// A read transaction an API thread keeps open for the first point reads of the requests it
/// serves one after another (their key's check and the row they ask for), so that a busy
/// thread takes and drops the WAL's read lock once per burst of requests rather than once per
/// request (taking and dropping it, with the `fcntl` calls and the shared-memory mutex the
/// threads contend for around them, cost more than the reads themselves; a GET's server CPU
/// fell by about a quarter without them).
///
/// A request reads from it only while the writer has ended no transaction since it began
/// ([`WriterStats::ended`] unchanged) and it is younger than [`SNAPSHOT_FRESH`]; otherwise the
/// request's first read ends it and begins the next. So every write answered before a
/// request's first read is in what it reads, as with a transaction of its own; what only
/// another process committed (the admin CLI: a key revoked, credits granted) is seen at most
/// [`SNAPSHOT_FRESH`] late, and at once whenever the thread has gone idle in between, since
/// its runtime's park hook ends the snapshot ([`end_snapshot_on_this_thread`]).
struct ThreadSnapshot {
    db: u64,
    /// [`WriterStats::ended`] when it began (read before `BEGIN`).
    ended: u64,
    began: Instant,
    number: u64,
    held: Held,
}

/// From now on the requests this thread serves share read snapshots ([`ThreadSnapshot`]);
/// for the API threads, whose runtime's park hook calls [`end_snapshot_on_this_thread`].
pub fn share_snapshots_on_this_thread() {
    SHARES_SNAPSHOTS.with(|s| s.set(true));
}

/// Ends this thread's shared read snapshot, if one is open (the thread is going idle).
pub fn end_snapshot_on_this_thread() {
    if SHARES_SNAPSHOTS.with(Cell::get) {
        let ended = THREAD_SNAPSHOT.with(|s| s.borrow_mut().take());
        drop(ended);
    }
}

tokio::task_local! {
    /// The read transaction a request's first two point reads share ([`Db::reads_together`]).
    static SHARED: RefCell<Shared>;
}

/// Where a request's shared read transaction stands (one per request, in its task-local).
#[allow(clippy::large_enum_variant)]
enum Shared {
    /// No point read yet: the first opens the transaction and keeps it for the second.
    Unopened,
    /// The first point read's connection, its read transaction still open.
    Open(Held),
    /// The first point read was on the thread's snapshot with this number.
    OnThread(u64),
    /// Over: every later read takes its own.
    Closed,
}

/// A pooled reader inside an open read transaction, ended when it is dropped (before the
/// connection goes back to the pool).
struct Held(PooledConnection<SqliteConnectionManager>);

impl Drop for Held {
    fn drop(&mut self) {
        let _ = exec(&self.0, "COMMIT", []);
    }
}

/// Ends this request's shared read transaction, if it has one open: before any read that is
/// not a point read (so a request never holds two pooled readers) and before any write (so
/// nothing it reads afterwards comes from a snapshot older than its own write).
fn close_shared() {
    let _ = SHARED.try_with(|s| s.replace(Shared::Closed));
}

pub struct Db {
    id: u64,
    /// [`SNAPSHOT_FRESH`] in microseconds (tests lengthen it to make the sharing certain).
    fresh_micros: AtomicU64,
    queue: mpsc::Sender<Work>,
    readers: r2d2::Pool<SqliteConnectionManager>,
    stats: Arc<WriterStats>,
}

/// Runs `f` (in a savepoint of its own if `undo` says so), catching a panic, and returns its
/// result; a failed or panicked write in a savepoint is rolled back to it.
fn run_one<T, E>(
    conn: &Connection,
    undo: Undo,
    f: impl Fn(&Connection) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<StoreError>,
{
    let own = undo == Undo::Savepoint;
    if own {
        exec(conn, "SAVEPOINT write", []).map_err(|e| E::from(e.into()))?;
    }
    let result = std::panic::catch_unwind(AssertUnwindSafe(|| f(conn)))
        .unwrap_or_else(|_| Err(E::from(StoreError::Task("a write panicked".into()))));
    if own {
        let ended = if result.is_ok() {
            exec(conn, "RELEASE write", [])
        } else {
            exec(conn, "ROLLBACK TO write", []).and_then(|_| exec(conn, "RELEASE write", []))
        };
        ended.map_err(|e| E::from(e.into()))?;
    }
    result
}

/// The writer thread: one group per turn, each group one transaction.
fn writer_loop(conn: Connection, queue: mpsc::Receiver<Work>, stats: Arc<WriterStats>) {
    // Whether the next group of several writes runs without savepoints first: after one in
    // which a write failed, the next runs with them straight away, so a stream of failing
    // writes costs one run per group rather than two.
    let mut optimistic = true;
    while let Ok(first) = queue.recv() {
        let mut group = Vec::new();
        let mut after = None;
        match first {
            Work::Raw(f) => {
                run_raw(&conn, f, &stats);
                continue;
            }
            Work::Write(w) => group.push(w),
        }
        while group.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(Work::Write(w)) => group.push(w),
                Ok(Work::Raw(f)) => {
                    after = Some(f);
                    break;
                }
                Err(_) => break,
            }
        }
        stats.groups.fetch_add(1, Ordering::Relaxed);
        stats
            .writes
            .fetch_add(group.len() as u64, Ordering::Relaxed);
        // A write alone runs the same either way, so only groups move the choice.
        let several = group.len() > 1;
        let all_ok = run_group(&conn, group, optimistic, &stats);
        if several {
            optimistic = all_ok;
        }
        if let Some(f) = after {
            run_raw(&conn, f, &stats);
        }
    }
}

/// Runs raw work between groups, counted in [`WriterStats::ended`] as a transaction is.
fn run_raw(conn: &Connection, f: Box<dyn FnOnce(&Connection) + Send>, stats: &WriterStats) {
    f(conn);
    stats.ended.fetch_add(1, Ordering::Release);
}

/// Runs one group in one transaction and answers its writes; false when a write failed or
/// the transaction could not commit (a group whose transaction could not open ran no write,
/// and leaves the choice as it was: true).
///
/// Optimistic (or alone), the writes run without savepoints. If one fails, the transaction is
/// rolled back; a write alone is answered with its error, and a group runs again without the
/// failed write (which keeps the error of its one run), each remaining write in its own
/// savepoint, so another failure then undoes only itself. No write is answered before the
/// transaction it ran in has ended.
fn run_group(
    conn: &Connection,
    mut group: Vec<Box<dyn QueuedWrite>>,
    optimistic: bool,
    stats: &WriterStats,
) -> bool {
    let mut failed = Vec::new();
    if optimistic || group.len() == 1 {
        if let Err(e) = begin(conn) {
            answer_all(group, Err(&e), stats);
            return true;
        }
        match group
            .iter_mut()
            .position(|w| !w.run(conn, Undo::Transaction))
        {
            None => {
                let ended = end(conn, "COMMIT", stats);
                let committed = ended.is_ok();
                answer_all(group, ended.as_ref().map(|_| ()), stats);
                return committed;
            }
            Some(at) => {
                let ended = end(conn, "ROLLBACK", stats);
                failed.push(group.remove(at));
                if group.is_empty() || ended.is_err() {
                    let ended = ended.as_ref().map(|_| ());
                    answer_all(failed, Ok(()), stats);
                    answer_all(group, ended, stats);
                    return false;
                }
                stats.reruns.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    let ran = begin(conn).map(|()| {
        let mut all_ok = true;
        for w in &mut group {
            all_ok &= w.run(conn, Undo::Savepoint);
        }
        all_ok
    });
    let ended = ran.and_then(|all_ok| end(conn, "COMMIT", stats).map(|()| all_ok));
    let none_failed_before = failed.is_empty();
    answer_all(failed, Ok(()), stats);
    match ended {
        Ok(all_ok) => {
            answer_all(group, Ok(()), stats);
            all_ok && none_failed_before
        }
        Err(e) => {
            answer_all(group, Err(&e), stats);
            false
        }
    }
}

fn begin(conn: &Connection) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(StoreError::from)
}

/// Ends the transaction with `how` (`COMMIT` or `ROLLBACK`); a failed commit is rolled back.
/// Counted in [`WriterStats::ended`] before the caller answers anyone.
fn end(conn: &Connection, how: &str, stats: &WriterStats) -> Result<(), StoreError> {
    let ended = conn.execute_batch(how).map_err(StoreError::from);
    if ended.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    stats.ended.fetch_add(1, Ordering::Release);
    ended
}

/// Answers `writes`, given how their transaction ended. A write that came from an API thread
/// is answered on that thread: each thread is sent its writes' answers together, one wake-up
/// of the thread for the lot, where answering each from here woke it once per answer (a
/// system call each, on the writer's time). The rest are answered from here.
fn answer_all(
    writes: impl IntoIterator<Item = Box<dyn QueuedWrite>>,
    ended: Result<(), &StoreError>,
    stats: &WriterStats,
) {
    let mut lanes: Vec<(Lane, Vec<Box<dyn QueuedWrite>>)> = Vec::new();
    for mut w in writes {
        w.settle(ended);
        let Some(lane) = w.take_lane() else {
            w.deliver();
            continue;
        };
        match lanes.iter_mut().find(|(l, _)| l.same_channel(&lane)) {
            Some((_, answers)) => answers.push(w),
            None => lanes.push((lane, vec![w])),
        }
    }
    for (lane, answers) in lanes {
        match lane.send(answers) {
            Ok(()) => {
                stats.lane_batches.fetch_add(1, Ordering::Relaxed);
            }
            // The thread has stopped delivering (it is ending): answered from here instead.
            Err(tokio::sync::mpsc::error::SendError(answers)) => {
                answers.into_iter().for_each(|w| w.deliver());
            }
        }
    }
}

/// Where the writer sends the answers of one API thread's writes ([`answer_all`]).
type Lane = tokio::sync::mpsc::UnboundedSender<Vec<Box<dyn QueuedWrite>>>;

/// From now on the writes this thread queues through [`Db::write_async`] are answered on it,
/// by the returned future, which the thread's runtime must run for as long as the thread
/// serves requests (the API threads: `cli::serve`). Writes queued after it ended are answered
/// by the writer itself.
pub fn deliver_answers_on_this_thread() -> impl Future<Output = ()> {
    let (lane, mut answers) = tokio::sync::mpsc::unbounded_channel();
    LANE.with(|l| *l.borrow_mut() = Some(lane));
    async move {
        while let Some(batch) = answers.recv().await {
            batch.into_iter().for_each(|w| w.deliver());
        }
    }
}

/// Turns off SQLite's memory statistics for the process: with them on, every allocation
/// SQLite makes (a savepoint's sub-journal takes several per page it keeps) takes and releases
/// one process-wide mutex, which the writer and the readers then contend for. Nothing in
/// veneer reads those statistics. Once SQLite has initialized this changes nothing.
///
/// # Safety
///
/// `sqlite3_config` must not run while another thread calls into SQLite: call this first
/// thing in `main`, before any other thread exists.
pub unsafe fn without_memory_statistics() {
    // SAFETY: SQLITE_CONFIG_MEMSTATUS takes one int; the caller guarantees no other thread
    // is in SQLite. After initialization it returns SQLITE_MISUSE and changes nothing.
    let rc = unsafe {
        rusqlite::ffi::sqlite3_config(rusqlite::ffi::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int)
    };
    debug_assert!(rc == rusqlite::ffi::SQLITE_OK || rc == rusqlite::ffi::SQLITE_MISUSE);
}

impl Db {
    /// Opens (creating if needed) the database, switches it to WAL, applies the schema.
    pub fn open(path: impl AsRef<Path>, readers: u32) -> Result<Arc<Db>, StoreError> {
        let path = path.as_ref().to_path_buf();
        let mut writer = Connection::open(&path)?;
        configure(&writer)?;
        let mode: String = writer.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(mode, "the database did not switch to WAL");
        }
        migrate(&mut writer, &path)?;
        let manager = SqliteConnectionManager::file(&path)
            .with_flags(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)
            .with_init(|c| {
                c.busy_timeout(BUSY_TIMEOUT)?;
                c.set_prepared_statement_cache_capacity(64);
                c.pragma_update(None, "foreign_keys", "ON")
            });
        let readers = r2d2::Pool::builder()
            .max_size(readers.max(1))
            // A local file connection does not go stale between uses; checking each one out
            // would cost a statement per read.
            .test_on_check_out(false)
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        let (queue, work) = mpsc::channel();
        let stats = Arc::new(WriterStats::default());
        let counters = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("veneer-sqlite-writer".into())
            .spawn(move || writer_loop(writer, work, counters))
            .map_err(|e| StoreError::Task(format!("cannot start the writer thread: {e}")))?;
        Ok(Arc::new(Db {
            id: NEXT_DB.fetch_add(1, Ordering::Relaxed),
            fresh_micros: AtomicU64::new(SNAPSHOT_FRESH.as_micros() as u64),
            queue,
            readers,
            stats,
        }))
    }

    /// The writer thread's counters: groups committed and writes in them.
    pub fn writer_stats(&self) -> &WriterStats {
        &self.stats
    }

    /// How long a thread's shared snapshot serves ([`SNAPSHOT_FRESH`] unless a test says).
    #[cfg(test)]
    fn set_snapshot_fresh(&self, fresh: Duration) {
        self.fresh_micros
            .store(fresh.as_micros() as u64, Ordering::Relaxed);
    }

    /// Queues `f` to the writer; `answer` receives its result once its group has committed.
    fn enqueue<T, E, F>(
        &self,
        f: F,
        lane: Option<Lane>,
        answer: impl FnOnce(Result<T, E>) + Send + 'static,
    ) -> Result<(), StoreError>
    where
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let work = Work::Write(Box::new(Pending {
            write: f,
            result: None,
            lane,
            answer,
        }));
        self.queue
            .send(work)
            .map_err(|_| StoreError::Task("the writer thread has stopped".into()))
    }

    /// Runs `f` in the writer's transaction (a group commit's: see [`run_group`]), returning
    /// once that transaction has committed. `f` may run twice (the first run rolled back), so
    /// it must change nothing but the database. Blocking: call from a blocking thread or
    /// outside the runtime (see [`Db::write_async`]).
    pub fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel();
        // Answered from the writer: this thread blocks until then, so could not deliver it.
        self.enqueue(f, None, move |r| {
            let _ = tx.send(r);
        })?;
        rx.recv()
            .map_err(|_| E::from(StoreError::Task("the writer thread stopped".into())))?
    }

    /// Runs `fut` (one request) with its first two point reads ([`Db::read_point`]) in one
    /// read transaction: typically its key's lookup and the one row it asks for, which then
    /// take the WAL's read lock once instead of twice and see one snapshot. The transaction
    /// ends at the second point read, before any other read or write, or when `fut` ends,
    /// whichever comes first — so it never spans a wait: a long poll reads its job first.
    pub async fn reads_together<T>(&self, fut: impl Future<Output = T>) -> T {
        SHARED.scope(RefCell::new(Shared::Unopened), fut).await
    }

    /// Runs `f` on a pooled read-only connection. Blocking.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.readers.get().map_err(StoreError::from)?;
        f(&conn)
    }

    /// [`Db::write`] for async callers: queued to the writer thread and awaited, so no async
    /// thread ever waits on SQLite and no blocking-pool thread is taken.
    pub async fn write_async<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: Fn(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        close_shared();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let lane = LANE.with(|l| l.borrow().clone());
        self.enqueue(f, lane, move |r| {
            let _ = tx.send(r);
        })?;
        rx.await
            .map_err(|_| E::from(StoreError::Task("the writer thread stopped".into())))?
    }

    /// Runs `f` on the writer connection outside any transaction, between groups.
    fn raw<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = mpsc::channel();
        self.queue
            .send(Work::Raw(Box::new(move |conn| {
                let _ = tx.send(f(conn));
            })))
            .map_err(|_| StoreError::Task("the writer thread has stopped".into()))?;
        rx.recv()
            .map_err(|_| StoreError::Task("the writer thread stopped".into()))?
    }

    /// [`Db::read`] on tokio's blocking pool.
    pub async fn read_async<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        close_shared();
        // Never let a read wait for the reader this thread's snapshot holds.
        if self.readers.state().idle_connections == 0 {
            end_snapshot_on_this_thread();
        }
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// A point read — one row by its key, a few microseconds, and under WAL a reader never
    /// waits for the writer — run right here on the calling (async) thread when a pooled
    /// reader is free at once, saving the blocking-pool hand-off; otherwise on the blocking
    /// pool as [`Db::read_async`]. Only for reads that are short by construction. Within
    /// [`Db::reads_together`], the first two share one read transaction.
    pub async fn read_point<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let f = match SHARED.try_with(|s| s.replace(Shared::Closed)) {
            Ok(Shared::Open(held)) => return f(&held.0),
            Ok(Shared::OnThread(number)) => match self.on_thread_snapshot(Some(number), f) {
                Ok((out, _)) => return out,
                Err(f) => f,
            },
            Ok(Shared::Unopened) => match self.on_thread_snapshot(None, f) {
                Ok((out, number)) => {
                    if out.is_ok() {
                        let _ = SHARED.try_with(|s| s.replace(Shared::OnThread(number)));
                    }
                    return out;
                }
                Err(f) => {
                    if let Some(conn) = self.readers.try_get()
                        && exec(&conn, "BEGIN", []).is_ok()
                    {
                        let held = Held(conn);
                        let out = f(&held.0);
                        if out.is_ok() {
                            let _ = SHARED.try_with(|s| s.replace(Shared::Open(held)));
                        }
                        return out;
                    }
                    f
                }
            },
            Ok(Shared::Closed) | Err(_) => f,
        };
        match self.readers.try_get() {
            Some(conn) => f(&conn),
            None => self.read_async(f).await,
        }
    }

    /// Runs `f` on this thread's shared snapshot ([`ThreadSnapshot`]) and returns its result
    /// with the snapshot's number, or gives `f` back when the thread does not share snapshots
    /// or no reader is free. `pinned`: the number of the snapshot the request's first read
    /// used, which its second read must use (whatever has been committed since) or none.
    fn on_thread_snapshot<T, E, F>(
        &self,
        pinned: Option<u64>,
        f: F,
    ) -> Result<(Result<T, E>, u64), F>
    where
        F: FnOnce(&Connection) -> Result<T, E>,
    {
        if !SHARES_SNAPSHOTS.with(Cell::get) {
            return Err(f);
        }
        THREAD_SNAPSHOT.with(|slot| {
            let mut slot = slot.borrow_mut();
            let keep = slot.as_ref().is_some_and(|s| {
                s.db == self.id
                    && match pinned {
                        Some(number) => s.number == number,
                        None => {
                            s.ended == self.stats.ended.load(Ordering::Acquire)
                                && s.began.elapsed()
                                    < Duration::from_micros(
                                        self.fresh_micros.load(Ordering::Relaxed),
                                    )
                        }
                    }
            });
            if !keep {
                if pinned.is_some() {
                    return Err(f);
                }
                // Ended first, so its connection is back in the pool for the next.
                *slot = None;
                let ended = self.stats.ended.load(Ordering::Acquire);
                let Some(conn) = self.readers.try_get() else {
                    return Err(f);
                };
                if exec(&conn, "BEGIN", []).is_err() {
                    return Err(f);
                }
                let number = NEXT_SNAPSHOT.with(|n| {
                    n.set(n.get() + 1);
                    n.get()
                });
                *slot = Some(ThreadSnapshot {
                    db: self.id,
                    ended,
                    began: Instant::now(),
                    number,
                    held: Held(conn),
                });
            }
            match slot.as_ref() {
                Some(s) => {
                    let number = s.number;
                    let out = f(&s.held.0);
                    if out.is_err() {
                        *slot = None;
                    }
                    Ok((out, number))
                }
                None => Err(f),
            }
        })
    }

    /// Folds the WAL back into the database file and truncates it, so a stopped server leaves
    /// one self-contained file behind.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.raw(|conn| {
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
            Ok(())
        })
    }

    /// A consistent copy of the live database through SQLite's online backup API.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<(), StoreError> {
        let dest = dest.as_ref().to_path_buf();
        self.raw(move |conn| {
            conn.backup(rusqlite::MAIN_DB, &dest, None)?;
            Ok(())
        })
    }
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version > SCHEMA_VERSION {
        return Err(StoreError::NewerSchema {
            database: path.display().to_string(),
            found: version,
            supported: SCHEMA_VERSION,
        });
    }
    if version == SCHEMA_VERSION {
        return Ok(());
    }
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    // Another process may have migrated while this one waited for the lock.
    let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        tx.execute_batch(SCHEMA)?;
    } else {
        for &(_, step) in UPGRADES.iter().filter(|(from, _)| *from >= version) {
            tx.execute_batch(step)?;
        }
    }
    if version < SCHEMA_VERSION {
        tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
    }
    tx.commit()?;
    Ok(())
}

pub use crate::store::{format_timestamp, new_id, now};

#[cfg(test)]
mod tests {
    use super::*;

    /// Every table's columns (name, type, not-null, default, primary key) and whether it has
    /// rowids, and every index's and trigger's name.
    fn shape(conn: &Connection) -> Vec<String> {
        let names: Vec<(String, String)> = conn
            .prepare(
                "SELECT type, name FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name",
            )
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<Result<_, _>>()
            })
            .expect("sqlite_master");
        let mut out = Vec::new();
        for (kind, name) in names {
            out.push(format!("{kind} {name}"));
            if kind == "table" {
                let without_rowid: i64 = conn
                    .query_row(
                        "SELECT wr FROM pragma_table_list WHERE name = ?1",
                        [&name],
                        |r| r.get(0),
                    )
                    .expect("table_list");
                out.push(format!("  without_rowid={without_rowid}"));
                let mut s = conn
                    .prepare(&format!("PRAGMA table_info({name})"))
                    .expect("table_info");
                let columns = s
                    .query_map([], |r| {
                        Ok(format!(
                            "  {} {} notnull={} default={:?} pk={}",
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, Option<String>>(4)?,
                            r.get::<_, i64>(5)?
                        ))
                    })
                    .expect("columns")
                    .collect::<Result<Vec<_>, _>>()
                    .expect("columns");
                out.extend(columns);
            }
        }
        out
    }

    /// A fresh database with one table `t (n INTEGER PRIMARY KEY)`.
    fn table_db() -> (tempfile::TempDir, Arc<Db>) {
        table_db_with(1)
    }

    /// [`table_db`] with a pool of `readers` read connections.
    fn table_db_with(readers: u32) -> (tempfile::TempDir, Arc<Db>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Db::open(dir.path().join("t.db"), readers).expect("open");
        db.write(|c| {
            c.execute_batch("CREATE TABLE t (n INTEGER PRIMARY KEY)")
                .map_err(StoreError::from)
        })
        .expect("table");
        (dir, db)
    }

    /// Runs `writes` as one group commit, in this order (they queue behind a write that holds
    /// the writer until all are queued), and returns their answers.
    fn as_one_group<W>(db: &Arc<Db>, writes: Vec<W>) -> Vec<Result<i64, StoreError>>
    where
        W: Fn(&Connection) -> Result<i64, StoreError> + Send + 'static,
    {
        let (release, holder) = hold_writer(db);
        let groups_before = db.writer_stats().groups.load(Ordering::Relaxed);
        // Queued from this thread, so the group's order is theirs.
        let answers: Vec<_> = writes
            .into_iter()
            .map(|w| {
                let (tx, rx) = mpsc::channel();
                db.enqueue(w, None, move |r| {
                    let _ = tx.send(r);
                })
                .expect("queued");
                rx
            })
            .collect();
        release.send(()).expect("release");
        assert!(holder.join().expect("holder").is_ok());
        let answers = answers
            .into_iter()
            .map(|rx| rx.recv().expect("answered"))
            .collect();
        assert_eq!(
            db.writer_stats().groups.load(Ordering::Relaxed) - groups_before,
            1,
            "the queued writes committed as one group"
        );
        answers
    }

    /// Holds the writer in a write of its own until the returned sender is sent to: writes
    /// queued meanwhile form the next group, in the order they were queued.
    fn hold_writer(
        db: &Arc<Db>,
    ) -> (
        mpsc::Sender<()>,
        std::thread::JoinHandle<Result<(), StoreError>>,
    ) {
        let (started_tx, started) = mpsc::channel();
        let (release, released) = mpsc::channel::<()>();
        let holder = {
            let db = Arc::clone(db);
            std::thread::spawn(move || {
                db.write(move |_| {
                    let _ = started_tx.send(());
                    let _ = released.recv();
                    Ok::<_, StoreError>(())
                })
            })
        };
        started.recv().expect("the holder runs");
        (release, holder)
    }

    /// Nine writes inserting 1..=9 into `t` (each counting its runs in `runs[n]`); those in
    /// `failing` insert their row and then fail, those in `panicking` panic after it.
    fn nine_writes(
        runs: &Arc<Vec<AtomicU64>>,
        failing: &[i64],
        panicking: &[i64],
    ) -> Vec<impl Fn(&Connection) -> Result<i64, StoreError> + Send + 'static> {
        (1..=9_i64)
            .map(|n| {
                let runs = Arc::clone(runs);
                let (fails, panics) = (failing.contains(&n), panicking.contains(&n));
                move |c: &Connection| {
                    runs[n as usize].fetch_add(1, Ordering::Relaxed);
                    c.execute("INSERT INTO t VALUES (?1)", [n])?;
                    if fails {
                        // A second insert of the same key: the first must be undone too.
                        c.execute("INSERT INTO t VALUES (?1)", [n])?;
                    }
                    if panics {
                        panic!("a write that panics");
                    }
                    Ok(n)
                }
            })
            .collect()
    }

    fn counters() -> Arc<Vec<AtomicU64>> {
        Arc::new((0..10).map(|_| AtomicU64::new(0)).collect())
    }

    fn runs_of(runs: &[AtomicU64]) -> Vec<u64> {
        runs[1..]
            .iter()
            .map(|r| r.load(Ordering::Relaxed))
            .collect()
    }

    fn all_rows(db: &Db) -> Vec<i64> {
        db.read(|c| {
            let mut s = c.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok::<_, StoreError>(rows)
        })
        .expect("rows")
    }

    #[test]
    fn one_failing_write_in_a_group_commit_leaves_the_others_committed() {
        let (_dir, db) = table_db();
        let runs = counters();
        let answers = as_one_group(&db, nine_writes(&runs, &[5], &[7]));
        for (n, r) in (1..=9).zip(&answers) {
            match r {
                Ok(value) => assert!(n != 5 && n != 7 && *value == n, "write {n}: {r:?}"),
                Err(_) => assert!(n == 5 || n == 7, "write {n}: {r:?}"),
            }
        }
        assert_eq!(all_rows(&db), vec![1, 2, 3, 4, 6, 8, 9]);
        // The group ran without savepoints until write 5 failed, then again without it, each
        // write in a savepoint (write 7's panic undid only itself).
        assert_eq!(runs_of(&runs), vec![2, 2, 2, 2, 1, 1, 1, 1, 1]);
        assert_eq!(db.writer_stats().reruns.load(Ordering::Relaxed), 1);
        // The writer survived the panic.
        db.write(|c| {
            c.execute("INSERT INTO t VALUES (10)", [])
                .map_err(StoreError::from)
        })
        .expect("a later write");
    }

    #[test]
    fn a_group_runs_each_write_once_unless_one_fails_and_after_a_failure_uses_savepoints_at_once() {
        let (_dir, db) = table_db();
        let reruns = || db.writer_stats().reruns.load(Ordering::Relaxed);
        let clear = || {
            db.write(|c| exec(c, "DELETE FROM t", []).map_err(StoreError::from))
                .expect("clear");
        };
        // No failure: one run each, no savepoints needed.
        let runs = counters();
        let answers = as_one_group(&db, nine_writes(&runs, &[], &[]));
        assert!(answers.iter().all(Result::is_ok), "{answers:?}");
        assert_eq!(runs_of(&runs), vec![1; 9]);
        assert_eq!(reruns(), 0);
        assert_eq!(all_rows(&db), (1..=9).collect::<Vec<_>>());
        clear();
        // A failure: the group runs again without the failed write.
        let runs = counters();
        as_one_group(&db, nine_writes(&runs, &[2], &[]));
        assert_eq!(runs_of(&runs), vec![2, 1, 1, 1, 1, 1, 1, 1, 1]);
        assert_eq!(reruns(), 1);
        assert_eq!(all_rows(&db), vec![1, 3, 4, 5, 6, 7, 8, 9]);
        clear();
        // The next group (writes alone in between do not count) runs with savepoints from the
        // start: one run each, the failing write undone alone.
        let runs = counters();
        as_one_group(&db, nine_writes(&runs, &[3], &[]));
        assert_eq!(runs_of(&runs), vec![1; 9]);
        assert_eq!(reruns(), 1);
        assert_eq!(all_rows(&db), vec![1, 2, 4, 5, 6, 7, 8, 9]);
        clear();
        // A group with no failure (still with savepoints)...
        as_one_group(&db, nine_writes(&counters(), &[], &[]));
        assert_eq!(reruns(), 1);
        clear();
        // ...and the next runs without them again: its failure makes it run a second time.
        let runs = counters();
        as_one_group(&db, nine_writes(&runs, &[9], &[]));
        assert_eq!(runs_of(&runs), vec![2, 2, 2, 2, 2, 2, 2, 2, 1]);
        assert_eq!(reruns(), 2);
        assert_eq!(all_rows(&db), (1..=8).collect::<Vec<_>>());
    }

    /// The rows of `t`, by a point read.
    async fn rows(db: &Arc<Db>) -> Vec<i64> {
        db.read_point(|c| {
            let mut s = c.prepare("SELECT n FROM t ORDER BY n")?;
            let rows = s.query_map([], |r| r.get(0))?.collect::<Result<_, _>>()?;
            Ok::<_, StoreError>(rows)
        })
        .await
        .expect("rows")
    }

    async fn insert(db: &Arc<Db>, n: i64) {
        db.write_async(move |c| {
            c.execute("INSERT INTO t VALUES (?1)", [n])
                .map_err(StoreError::from)
        })
        .await
        .expect("insert");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_requests_first_two_point_reads_share_one_snapshot_and_no_more() {
        let (_dir, db) = table_db();
        insert(&db, 1).await;
        let other = Arc::clone(&db);
        db.reads_together(async {
            assert_eq!(rows(&db).await, vec![1]);
            // Committed by someone else between the two reads: the second read still sees
            // the first one's snapshot...
            let committed = tokio::spawn(async move { insert(&other, 2).await });
            committed.await.expect("insert task");
            assert_eq!(
                rows(&db).await,
                vec![1],
                "the second read shares the first's snapshot"
            );
            // ...and the transaction ended with it: the third read is a new one.
            assert_eq!(rows(&db).await, vec![1, 2]);
        })
        .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_write_or_a_pooled_read_ends_the_shared_read_first() {
        let (_dir, db) = table_db();
        db.reads_together(async {
            assert_eq!(rows(&db).await, Vec::<i64>::new());
            // This request's own write: what it reads next must include it.
            insert(&db, 1).await;
            assert_eq!(rows(&db).await, vec![1]);
        })
        .await;
        // With one pooled reader, a read on the blocking pool after the first point read
        // must not wait for the reader the shared transaction holds.
        let (_dir, db) = table_db_with(1);
        let read = db.reads_together(async {
            let _ = rows(&db).await;
            tokio::time::timeout(
                Duration::from_secs(5),
                db.read_async(|c| {
                    c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                        .map_err(StoreError::from)
                }),
            )
            .await
        });
        assert_eq!(read.await.expect("not starved").expect("count"), 0);
    }

    /// One request of a read-class route: its reads within [`Db::reads_together`].
    async fn request_rows(db: &Arc<Db>) -> Vec<i64> {
        db.reads_together(rows(db)).await
    }

    /// Commits a row from another connection, as the admin CLI would from its process.
    fn insert_elsewhere(dir: &Path, n: i64) {
        let c = Connection::open(dir.join("t.db")).expect("other connection");
        c.busy_timeout(BUSY_TIMEOUT).expect("busy timeout");
        c.execute("INSERT INTO t VALUES (?1)", [n])
            .expect("insert elsewhere");
    }

    /// [`table_db_with`] `readers`, read from this thread as an API thread does, its snapshot
    /// kept fresh long enough that only a commit or the thread going idle ends it.
    fn sharing_db(readers: u32) -> (tempfile::TempDir, Arc<Db>) {
        share_snapshots_on_this_thread();
        let (dir, db) = table_db_with(readers);
        db.set_snapshot_fresh(Duration::from_secs(600));
        (dir, db)
    }

    #[tokio::test]
    async fn requests_on_an_api_thread_share_a_snapshot_until_a_write_or_idle_or_its_age_ends_it() {
        let (dir, db) = sharing_db(2);
        assert_eq!(request_rows(&db).await, Vec::<i64>::new());
        // Another process's commit is not in the snapshot this thread's requests share...
        insert_elsewhere(dir.path(), 1);
        assert_eq!(request_rows(&db).await, Vec::<i64>::new());
        // ...but every write this process's writer has answered is: it ends the snapshot.
        insert(&db, 2).await;
        assert_eq!(request_rows(&db).await, vec![1, 2]);
        // The thread going idle ends it too.
        insert_elsewhere(dir.path(), 3);
        assert_eq!(request_rows(&db).await, vec![1, 2]);
        end_snapshot_on_this_thread();
        assert_eq!(request_rows(&db).await, vec![1, 2, 3]);
        // And so does its age.
        insert_elsewhere(dir.path(), 4);
        db.set_snapshot_fresh(Duration::ZERO);
        assert_eq!(request_rows(&db).await, vec![1, 2, 3, 4]);
        // A thread that does not share snapshots reads each request afresh.
        let (other, path) = (Arc::clone(&db), dir.path().to_path_buf());
        let elsewhere = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                let first = request_rows(&other).await;
                insert_elsewhere(&path, 5);
                (first, request_rows(&other).await)
            })
        });
        let (first, second) = elsewhere.join().expect("the other thread");
        assert_eq!(first, vec![1, 2, 3, 4]);
        assert_eq!(second, vec![1, 2, 3, 4, 5]);
    }

    #[tokio::test]
    async fn on_an_api_thread_a_requests_two_reads_still_share_its_first_reads_snapshot() {
        let (_dir, db) = sharing_db(2);
        insert(&db, 1).await;
        let other = Arc::clone(&db);
        db.reads_together(async {
            assert_eq!(rows(&db).await, vec![1]);
            // Committed between the two reads (by another task): the second read still sees
            // the first one's snapshot, though the writer has ended a transaction since...
            tokio::spawn(async move { insert(&other, 2).await })
                .await
                .expect("insert task");
            assert_eq!(rows(&db).await, vec![1], "the request's two reads share");
            // ...and a read past those two is a new one.
            assert_eq!(rows(&db).await, vec![1, 2]);
        })
        .await;
        // The next request begins a new snapshot, with the write in it.
        assert_eq!(request_rows(&db).await, vec![1, 2]);
    }

    #[tokio::test]
    async fn a_blocking_read_never_waits_for_the_reader_a_threads_snapshot_holds() {
        let (_dir, db) = sharing_db(1);
        // The one reader is now this thread's snapshot's.
        assert_eq!(request_rows(&db).await, Vec::<i64>::new());
        let read = tokio::time::timeout(
            Duration::from_secs(5),
            db.read_async(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
                    .map_err(StoreError::from)
            }),
        );
        assert_eq!(read.await.expect("not starved").expect("count"), 0);
    }

    #[test]
    fn an_api_threads_writes_are_answered_on_it_a_group_at_once_and_by_the_writer_once_it_stops() {
        let (_dir, db) = table_db();
        let batches = || db.writer_stats().lane_batches.load(Ordering::Relaxed);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let deliveries = deliver_answers_on_this_thread();
        let (release, holder) = hold_writer(&db);
        let groups_before = db.writer_stats().groups.load(Ordering::Relaxed);
        let answers = runtime.block_on(async {
            let (queued_tx, mut queued) = tokio::sync::mpsc::unbounded_channel();
            let tasks: Vec<_> = nine_writes(&counters(), &[], &[])
                .into_iter()
                .map(|w| {
                    let (db, queued_tx) = (Arc::clone(&db), queued_tx.clone());
                    tokio::spawn(async move {
                        // Told in the same poll as the write is queued, before it waits.
                        let _ = queued_tx.send(());
                        db.write_async(w).await
                    })
                })
                .collect();
            for _ in 0..9 {
                queued.recv().await.expect("queued");
            }
            release.send(()).expect("release");
            let all = async {
                let mut answers = Vec::new();
                for t in tasks {
                    answers.push(t.await.expect("task"));
                }
                answers
            };
            tokio::select! {
                answers = all => answers,
                () = deliveries => unreachable!("the delivery ends only with the thread"),
            }
        });
        assert!(holder.join().expect("holder").is_ok());
        let values: Vec<i64> = answers.into_iter().map(|r| r.expect("ok")).collect();
        assert_eq!(values, (1..=9).collect::<Vec<_>>());
        assert_eq!(
            db.writer_stats().groups.load(Ordering::Relaxed) - groups_before,
            1
        );
        // The group's nine answers went to this thread in one batch (the holder's, from a
        // thread that does not deliver, was answered by the writer).
        assert_eq!(batches(), 1);
        // Its delivery gone (dropped with the block_on above), a write from this thread is
        // still answered, by the writer.
        let answer = runtime.block_on(db.write_async(|c| {
            c.execute("INSERT INTO t VALUES (10)", [])
                .map_err(StoreError::from)
        }));
        assert_eq!(answer.expect("answered"), 1);
        assert_eq!(batches(), 1);
        assert_eq!(all_rows(&db), (1..=10).collect::<Vec<_>>());
    }

    #[test]
    fn a_failing_write_alone_is_rolled_back_whole() {
        let (_dir, db) = table_db();
        let failed = db.write(|c| {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            c.execute("INSERT INTO t VALUES (1)", [])
                .map_err(StoreError::from)
        });
        assert!(failed.is_err());
        let n: i64 = db
            .read(|c| {
                c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
                    .map_err(StoreError::from)
            })
            .expect("count");
        assert_eq!(n, 0);
    }

    #[test]
    fn a_version_3_database_is_upgraded_keeping_its_ledger_balances_and_counts() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The schema veneer shipped as version 3 (git show 9582571:schema.sql); the rows go
        // in through version 3's own trigger: balances 90 subscription, 50 purchased.
        let path = shipped_database(
            dir.path(),
            include_str!("../../../tests/fixtures/schema_v3.sql"),
            3,
            "INSERT INTO organizations (id, name, created_at)
                     VALUES ('o1', 'Lab', '2026-01-01T00:00:00+00:00');
                 INSERT INTO jobs (id, org_id, kind, status, inputs, snapshot, credit_cost,
                                   created_at)
                     VALUES ('j1', 'o1', 'humanization', 'pending', '{}', '{}', 10, 't'),
                            ('j2', 'o1', 'humanization', 'canceled', '{}', '{}', 10, 't');
                 INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at)
                     VALUES ('l1', 'o1', 'subscription', 100, 'grant', NULL, 't'),
                            ('l2', 'o1', 'purchased', 50, 'grant', NULL, 't'),
                            ('l3', 'o1', 'subscription', -10, 'debit', 'j1', 't'),
                            ('l4', 'o1', 'subscription', -10, 'debit', 'j2', 't'),
                            ('l5', 'o1', 'subscription', 10, 'refund', 'j2', 't');
                 INSERT INTO daily_writes (org_id, day, count) VALUES ('o1', '2026-01-01', 7);",
        );
        let db = Db::open(&path, 1).expect("upgrade");
        let read = |sql: &'static str| {
            db.read(move |c| {
                let mut s = c.prepare(sql)?;
                let rows = s
                    .query_map([], |r| r.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok::<_, StoreError>(rows)
            })
            .expect(sql)
        };
        assert_eq!(
            read("SELECT subscription_credits || ' ' || purchased_credits FROM organizations"),
            vec!["90 50"],
            "the copied rows did not move the balances again"
        );
        assert_eq!(
            read("SELECT id || ' ' || delta FROM credit_ledger ORDER BY id"),
            vec!["l1 100", "l2 50", "l3 -10", "l4 -10", "l5 10"]
        );
        assert_eq!(
            read("SELECT org_id || ' ' || day || ' ' || count FROM daily_writes"),
            vec!["o1 2026-01-01 7"]
        );
        // The ledger's rules hold on the new table: the trigger applies a new row, a second
        // refund of a job is refused, and rows are never changed.
        db.write(|tx| {
            exec(
                tx,
                "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at)
                     VALUES ('l6', 'o1', 'subscription', 10, 'refund', 'j1', 't')",
                [],
            )
            .map_err(StoreError::from)
        })
        .expect("a refund");
        assert_eq!(
            read("SELECT subscription_credits || ' ' || purchased_credits FROM organizations"),
            vec!["100 50"]
        );
        let twice = db.write(|tx| {
            exec(
                tx,
                "INSERT INTO credit_ledger (id, org_id, bucket, delta, reason, job_id, created_at)
                     VALUES ('l7', 'o1', 'subscription', 10, 'refund', 'j1', 't')",
                [],
            )
            .map_err(StoreError::from)
        });
        assert!(twice.is_err(), "a second refund of j1: {twice:?}");
        let changed = db.write(|tx| {
            exec(tx, "UPDATE credit_ledger SET delta = 1 WHERE id = 'l1'", [])
                .map_err(StoreError::from)
        });
        assert!(changed.is_err(), "the ledger is append-only: {changed:?}");

        assert_shaped_as_fresh(&db, dir.path());
    }

    #[test]
    fn a_version_1_database_is_upgraded_keeping_its_variants() {
        let dir = tempfile::tempdir().expect("temp dir");
        // The schema veneer shipped as version 1 (git show e44013c~1:schema.sql).
        let path = shipped_database(
            dir.path(),
            include_str!("../../../tests/fixtures/schema_v1.sql"),
            1,
            "INSERT INTO organizations (id, name, created_at)
                     VALUES ('o1', 'Lab', '2026-01-01T00:00:00+00:00');
                 INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, created_at)
                     VALUES ('v1', 'o1', 'AntiCD28', 'EVKL', 'DIET', 'kappa',
                             '2026-01-02T00:00:00+00:00');",
        );
        let db = Db::open(&path, 1).expect("upgrade");
        let (version, row, nanobody) = db
            .write(|tx| {
                tx.execute(
                    "INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, created_at)
                         VALUES ('v2', 'o1', 'VHH', 'QVQL', NULL, NULL, '2026-01-03T00:00:00+00:00')",
                    [],
                )?;
                let version: i64 = tx.query_row("PRAGMA user_version", [], |r| r.get(0))?;
                let row: (String, String, String, Option<String>) = tx.query_row(
                    "SELECT name, vl, vl_chain_type, scfv FROM variants WHERE id = 'v1'",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )?;
                let nanobody: Option<String> =
                    tx.query_row("SELECT vl FROM variants WHERE id = 'v2'", [], |r| r.get(0))?;
                Ok::<_, StoreError>((version, row, nanobody))
            })
            .expect("read back");
        assert_eq!(version, SCHEMA_VERSION);
        assert_eq!(
            row,
            ("AntiCD28".into(), "DIET".into(), "kappa".into(), None),
            "the v1 row survives"
        );
        assert_eq!(nanobody, None, "a single-domain variant fits");
        // A VL without its chain type (or the reverse) is still refused.
        let half = db.write(|tx| {
            tx.execute(
                "INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, created_at)
                     VALUES ('v3', 'o1', 'x', 'QVQL', 'DIET', NULL, '2026-01-03T00:00:00+00:00')",
                [],
            )
            .map_err(StoreError::from)
        });
        assert!(half.is_err());

        assert_shaped_as_fresh(&db, dir.path());
    }

    /// A database file in `dir` made by a shipped `schema` at `version`, with `rows` inserted.
    fn shipped_database(dir: &Path, schema: &str, version: i64, rows: &str) -> std::path::PathBuf {
        let path = dir.join(format!("v{version}.db"));
        let conn = Connection::open(&path).expect("open");
        conn.execute_batch(schema).expect("the shipped schema");
        conn.pragma_update(None, "user_version", version)
            .expect("version");
        conn.execute_batch(rows).expect("rows");
        path
    }

    /// An upgraded database has exactly the shape of a fresh one.
    fn assert_shaped_as_fresh(upgraded: &Db, dir: &Path) {
        let fresh = Db::open(dir.join("fresh.db"), 1).expect("fresh");
        assert_eq!(
            upgraded
                .read(|c| Ok::<_, StoreError>(shape(c)))
                .expect("shape"),
            fresh
                .read(|c| Ok::<_, StoreError>(shape(c)))
                .expect("shape")
        );
    }
}
