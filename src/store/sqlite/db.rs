//! The service database: one writer connection behind a mutex plus an r2d2 pool of read-only
//! connections, all on one SQLite file in WAL mode.
//!
//! Why one writer: SQLite allows one writer at a time anyway, and several pooled writers
//! contend on the lock (`SQLITE_BUSY` after the timeout) and starve WAL checkpoints. Every
//! write goes through [`Db::write`], which opens `BEGIN IMMEDIATE` so a read-then-write
//! transaction takes the write lock before it reads and can never be upgraded into a deadlock.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use r2d2_sqlite::SqliteConnectionManager;
use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

use crate::store::StoreError;

/// The schema every table lives in; bump [`SCHEMA_VERSION`] with any change to it.
pub const SCHEMA: &str = include_str!("../../../schema.sql");
pub const SCHEMA_VERSION: i64 = 3;

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

pub struct Db {
    writer: Mutex<Connection>,
    readers: r2d2::Pool<SqliteConnectionManager>,
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
            .connection_timeout(Duration::from_secs(10))
            .build(manager)?;
        Ok(Arc::new(Db {
            writer: Mutex::new(writer),
            readers,
        }))
    }

    /// Runs `f` in a `BEGIN IMMEDIATE` transaction on the writer, committing when it returns
    /// `Ok`. Blocking: call from a blocking thread (see [`Db::write_async`]).
    pub fn write<T, E>(&self, f: impl FnOnce(&Transaction) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        // A panic inside a transaction rolls it back on unwind, so the connection behind a
        // poisoned lock is still consistent.
        let mut conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(StoreError::from)?;
        let value = f(&tx)?;
        tx.commit().map_err(StoreError::from)?;
        Ok(value)
    }

    /// Runs `f` on a pooled read-only connection. Blocking.
    pub fn read<T, E>(&self, f: impl FnOnce(&Connection) -> Result<T, E>) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let conn = self.readers.get().map_err(StoreError::from)?;
        f(&conn)
    }

    /// [`Db::write`] on tokio's blocking pool, so the async threads never wait on SQLite.
    pub async fn write_async<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&Transaction) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.write(f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// [`Db::read`] on tokio's blocking pool.
    pub async fn read_async<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        let db = Arc::clone(self);
        tokio::task::spawn_blocking(move || db.read(f))
            .await
            .map_err(|e| E::from(StoreError::Task(e.to_string())))?
    }

    /// A point read — one row by its key, a few microseconds, and under WAL a reader never
    /// waits for the writer — run right here on the calling (async) thread when a pooled
    /// reader is free at once, saving the blocking-pool hand-off; otherwise on the blocking
    /// pool as [`Db::read_async`]. Only for reads that are short by construction.
    pub async fn read_point<T, E, F>(self: &Arc<Self>, f: F) -> Result<T, E>
    where
        F: FnOnce(&Connection) -> Result<T, E> + Send + 'static,
        T: Send + 'static,
        E: From<StoreError> + Send + 'static,
    {
        match self.readers.try_get() {
            Some(conn) => f(&conn),
            None => self.read_async(f).await,
        }
    }

    /// Folds the WAL back into the database file and truncates it, so a stopped server leaves
    /// one self-contained file behind.
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }

    /// A consistent copy of the live database through SQLite's online backup API.
    pub fn backup_to(&self, dest: impl AsRef<Path>) -> Result<(), StoreError> {
        let conn = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
        conn.backup(rusqlite::MAIN_DB, dest, None)?;
        Ok(())
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

    /// Every table's columns (name, type, not-null, default, primary key) and every index name.
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

    #[test]
    fn a_version_1_database_is_upgraded_keeping_its_variants() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v1.db");
        {
            // The schema veneer shipped as version 1 (git show e44013c~1:schema.sql).
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(include_str!("../../../tests/fixtures/schema_v1.sql"))
                .expect("v1 schema");
            conn.pragma_update(None, "user_version", 1)
                .expect("version");
            conn.execute_batch(
                "INSERT INTO organizations (id, name, created_at)
                     VALUES ('o1', 'Lab', '2026-01-01T00:00:00+00:00');
                 INSERT INTO variants (id, org_id, name, vh, vl, vl_chain_type, created_at)
                     VALUES ('v1', 'o1', 'AntiCD28', 'EVKL', 'DIET', 'kappa',
                             '2026-01-02T00:00:00+00:00');",
            )
            .expect("v1 rows");
        }
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

        // The upgraded database has exactly the shape of a fresh one.
        let fresh_path = dir.path().join("fresh.db");
        let fresh = Db::open(&fresh_path, 1).expect("fresh");
        let upgraded = db.read(|c| Ok::<_, StoreError>(shape(c))).expect("shape");
        let new = fresh
            .read(|c| Ok::<_, StoreError>(shape(c)))
            .expect("shape");
        assert_eq!(upgraded, new);
    }
}
