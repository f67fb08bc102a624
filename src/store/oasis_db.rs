//! BioPhi's full OASis database (`OASis_9mers_v1.db`, SQLite, 22 GB), opened
//! read-only, for labs that hold it and want a threshold other than the embedded
//! 10 % set's.
//!
//! The counting rules (which subjects and hits count, the threshold comparison) are BioPhi's
//! and live in `engine::oasis_rules`; this module runs the queries they describe.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, OpenFlags};

use crate::engine::chain::ChainType;
use crate::engine::humanness::{HumanPeptides, PeptideError};
use crate::engine::oasis_rules::{EXCLUDED_STUDY, MIN_COMPLETE_CHAINS, OasisThreshold, is_human};

#[derive(Debug, thiserror::Error)]
pub enum OasisDbError {
    #[error("the OASis database {0} is compressed: unzip it first (gunzip)")]
    Compressed(PathBuf),
    #[error("cannot open the OASis database {path}: {source}")]
    Open {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "{path} is not an OASis database (expected tables peptides(peptide, subject, \
         count) and subjects(id, CompleteHeavySeqs, CompleteLightSeqs, StudyPath)): {source}"
    )]
    Schema {
        path: PathBuf,
        source: rusqlite::Error,
    },
    #[error(
        "the OASis database {path} has no subject with at least 10,000 complete {chains} chains"
    )]
    NoSubjects { path: PathBuf, chains: &'static str },
    #[error("querying the OASis database {path}: {source}")]
    Query {
        path: PathBuf,
        source: rusqlite::Error,
    },
}

/// BioPhi's `get_oas_hits` for one peptide, counted, for `Heavy` or `Light` chains. The LEFT
/// JOIN with conditions on `subjects` drops peptide rows without a subject, as BioPhi's
/// query does.
fn hits_sql(chains: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM peptides \
         LEFT JOIN subjects ON peptides.subject = subjects.id \
         WHERE peptides.peptide = ?1 AND subjects.StudyPath <> '{EXCLUDED_STUDY}' \
         AND subjects.Complete{chains}Seqs >= {MIN_COMPLETE_CHAINS}"
    )
}

/// The denominator: subjects with enough complete `Heavy` or `Light` chains.
fn subjects_sql(chains: &str) -> String {
    format!("SELECT COUNT(*) FROM subjects WHERE Complete{chains}Seqs >= {MIN_COMPLETE_CHAINS}")
}

/// The full OASis database at one threshold.
pub struct OasisDb {
    path: PathBuf,
    threshold: OasisThreshold,
    /// Denominators: subjects with >= 10,000 complete heavy / light chains.
    heavy_subjects: u64,
    light_subjects: u64,
    connection: Mutex<Connection>,
    /// The hit queries, `[light, heavy]`.
    hits_sql: [String; 2],
    /// Answers so far, `[light, heavy]`: the engine asks about the same chain's 9-mers
    /// once per strategy, and a query on the 22 GB file costs far more than a lookup.
    cache: Mutex<[HashMap<Vec<u8>, bool>; 2]>,
}

/// Answers kept per chain group before the cache starts over (~40 MB at most): far more
/// than the distinct 9-mers of a day's jobs, and a bound on a server that runs for months.
const CACHE_LIMIT: usize = 1 << 19;

impl OasisDb {
    /// Opens the database read-only and counts the subjects that qualify.
    pub fn open(
        path: impl AsRef<Path>,
        threshold: OasisThreshold,
    ) -> Result<OasisDb, OasisDbError> {
        let path = path.as_ref().to_path_buf();
        // BioPhi refuses the .gz it is distributed as, with the same advice.
        if path.extension().is_some_and(|ext| ext == "gz") {
            return Err(OasisDbError::Compressed(path));
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection =
            Connection::open_with_flags(&path, flags).map_err(|source| OasisDbError::Open {
                path: path.clone(),
                source,
            })?;
        let schema_error = |source| OasisDbError::Schema {
            path: path.clone(),
            source,
        };
        let count = |sql: &str| -> Result<u64, OasisDbError> {
            connection
                .query_row(sql, [], |row| row.get::<_, i64>(0))
                .map(|n| n.max(0) as u64)
                .map_err(schema_error)
        };
        let heavy_subjects = count(&subjects_sql("Heavy"))?;
        let light_subjects = count(&subjects_sql("Light"))?;
        for (subjects, chains) in [(heavy_subjects, "heavy"), (light_subjects, "light")] {
            if subjects == 0 {
                // BioPhi's fraction would be None and every peptide NaN.
                return Err(OasisDbError::NoSubjects { path, chains });
            }
        }
        let hits_sql = [hits_sql("Light"), hits_sql("Heavy")];
        for sql in &hits_sql {
            connection.prepare_cached(sql).map_err(schema_error)?;
        }
        Ok(OasisDb {
            path,
            threshold,
            heavy_subjects,
            light_subjects,
            connection: Mutex::new(connection),
            hits_sql,
            cache: Mutex::new([HashMap::new(), HashMap::new()]),
        })
    }

    pub fn threshold(&self) -> OasisThreshold {
        self.threshold
    }

    /// Subjects with at least 10,000 complete chains of `chain`'s type.
    pub fn num_subjects(&self, chain: ChainType) -> u64 {
        if chain.is_heavy() {
            self.heavy_subjects
        } else {
            self.light_subjects
        }
    }

    /// The number of qualifying subjects `peptide` occurs in, as BioPhi counts them.
    pub fn count_subjects(&self, peptide: &[u8], chain: ChainType) -> Result<u64, OasisDbError> {
        let query_error = |source| OasisDbError::Query {
            path: self.path.clone(),
            source,
        };
        // A peptide that is not text cannot be in the database.
        let Ok(peptide) = std::str::from_utf8(peptide) else {
            return Ok(0);
        };
        let sql = &self.hits_sql[usize::from(chain.is_heavy())];
        let connection = lock(&self.connection);
        let mut statement = connection.prepare_cached(sql).map_err(query_error)?;
        let hits = statement
            .query_row([peptide], |row| row.get::<_, i64>(0))
            .map_err(query_error)?;
        Ok(hits.max(0) as u64)
    }

    /// Whether `peptide` is human at this database's threshold.
    fn query_is_human(&self, peptide: &[u8], chain: ChainType) -> Result<bool, OasisDbError> {
        let hits = self.count_subjects(peptide, chain)?;
        Ok(is_human(hits, self.num_subjects(chain), self.threshold))
    }
}

impl HumanPeptides for OasisDb {
    fn threshold_percent(&self) -> u32 {
        self.threshold.percent()
    }

    fn is_human(&self, peptide: &[u8], chain: ChainType) -> Result<bool, PeptideError> {
        let group = usize::from(chain.is_heavy());
        if let Some(&human) = lock(&self.cache)[group].get(peptide) {
            return Ok(human);
        }
        // The cache is not held during the query, so other threads' cached lookups do not
        // wait for it. A failed query goes back to its own caller and is not cached: it is
        // not an answer.
        let human = self
            .query_is_human(peptide, chain)
            .map_err(|e| PeptideError(e.to_string()))?;
        let mut cache = lock(&self.cache);
        // Bounded: a long-running server forgets and re-asks rather than growing forever.
        if cache[group].len() >= CACHE_LIMIT {
            cache[group].clear();
        }
        cache[group].insert(peptide.to_vec(), human);
        Ok(human)
    }

    fn describe(&self) -> String {
        format!(
            "OASis database {}, {} threshold (>= {} % of {} heavy / {} light subjects)",
            self.path.display(),
            self.threshold,
            self.threshold.percent(),
            self.heavy_subjects,
            self.light_subjects
        )
    }
}

impl fmt::Debug for OasisDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OasisDb")
            .field("path", &self.path)
            .field("threshold", &self.threshold)
            .finish_non_exhaustive()
    }
}

/// A panic while a lock was held leaves a connection or a map that is still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use OasisThreshold::{Loose, Medium, Relaxed, Strict};

    /// A database of BioPhi's schema (with an extra column, as the real one has more):
    ///
    /// - subjects 1..=99: Study_A, 10,000 complete heavy chains (exactly enough), no
    ///   light chains;
    /// - subject 100: Corcoran_2016, 50,000 heavy chains;
    /// - subjects 101..=110: Study_B, 9,999 heavy chains (one short), 10,000 light.
    ///
    /// So heavy chains are judged against 100 subjects (Corcoran's included, as
    /// BioPhi's denominator query does not filter on the study) and light chains
    /// against 10.
    fn build_database(path: &Path) -> Connection {
        let mut db = Connection::open(path).expect("create test database");
        // One transaction: SQLite would otherwise sync the file after every row.
        let tx = db.transaction().expect("begin");
        tx.execute_batch(
            "CREATE TABLE subjects (id INTEGER PRIMARY KEY, Species TEXT, StudyPath TEXT,
                                    CompleteHeavySeqs INTEGER, CompleteLightSeqs INTEGER);
             CREATE TABLE peptides (peptide TEXT, subject INTEGER, count INTEGER);
             CREATE INDEX peptides_peptide ON peptides (peptide);",
        )
        .expect("create tables");
        for id in 1..=110 {
            let (study, heavy, light) = match id {
                1..=99 => ("Study_A", 10_000, 0),
                100 => ("Corcoran_2016", 50_000, 0),
                _ => ("Study_B", 9_999, 10_000),
            };
            tx.execute(
                "INSERT INTO subjects VALUES (?1, 'human', ?2, ?3, ?4)",
                (id, study, heavy, light),
            )
            .expect("insert subject");
        }
        for (peptide, subjects) in peptides() {
            for id in subjects {
                tx.execute(
                    "INSERT INTO peptides VALUES (?1, ?2, ?3)",
                    (peptide, id, 3 + id % 5),
                )
                .expect("insert peptide");
            }
        }
        tx.commit().expect("commit");
        db
    }

    /// Which subjects each test peptide occurs in.
    fn peptides() -> Vec<(&'static str, Vec<i64>)> {
        let range = |from: i64, to: i64| (from..=to).collect::<Vec<_>>();
        vec![
            ("AAAAAAAAA", vec![1]),
            ("CCCCCCCCC", range(1, 10)),
            ("DDDDDDDDD", [range(1, 9), vec![100]].concat()),
            ("EEEEEEEEE", [range(1, 9), vec![101]].concat()),
            ("FFFFFFFFF", range(1, 50)),
            ("GGGGGGGGG", range(1, 90)),
            ("HHHHHHHHH", [range(1, 89), vec![100]].concat()),
            ("KKKKKKKKK", range(101, 109)),
        ]
    }

    /// The strictest threshold at which each peptide is human, worked out by hand:
    /// (peptide, heavy, light).
    const EXPECTED: &[(&str, Option<OasisThreshold>, Option<OasisThreshold>)] = &[
        // 1/100 = 0.01 heavy subjects: loose (>= 1 %) only.
        ("AAAAAAAAA", Some(Loose), None),
        // 10/100 = 0.1: relaxed (>= 10 %) exactly at the boundary.
        ("CCCCCCCCC", Some(Relaxed), None),
        // 9 + Corcoran: Corcoran's hit is dropped, 9/100, so not relaxed.
        ("DDDDDDDDD", Some(Loose), None),
        // 9 + subject 101, which has 9,999 heavy chains: 9/100 heavy; as a light
        // subject 101 qualifies, 1/10 = 0.1 light: relaxed.
        ("EEEEEEEEE", Some(Loose), Some(Relaxed)),
        // 50/100: medium.
        ("FFFFFFFFF", Some(Medium), None),
        // 90/100: strict.
        ("GGGGGGGGG", Some(Strict), None),
        // 89 + Corcoran: 89/100, medium but not strict.
        ("HHHHHHHHH", Some(Medium), None),
        // Subjects 101..=109: no qualifying heavy subject; 9/10 light: strict.
        ("KKKKKKKKK", None, Some(Strict)),
        // Absent.
        ("IIIIIIIII", None, None),
    ];

    #[test]
    fn thresholds_follow_biophi_counting() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        drop(build_database(&path));
        for threshold in OasisThreshold::ALL {
            let oasis = OasisDb::open(&path, threshold).expect("open test database");
            assert_eq!(oasis.num_subjects(ChainType::H), 100);
            assert_eq!(oasis.num_subjects(ChainType::K), 10);
            for &(peptide, heavy, light) in EXPECTED {
                for chain in [ChainType::H, ChainType::K, ChainType::L] {
                    let strictest = if chain.is_heavy() { heavy } else { light };
                    let expected = strictest.is_some_and(|s| threshold <= s);
                    assert_eq!(
                        oasis.is_human(peptide.as_bytes(), chain),
                        Ok(expected),
                        "{peptide} {chain:?} at {threshold}"
                    );
                }
            }
        }
    }

    #[test]
    fn subject_counts_exclude_corcoran_and_small_subjects() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        drop(build_database(&path));
        let oasis = OasisDb::open(&path, Relaxed).expect("open test database");
        let count = |p: &str, c| oasis.count_subjects(p.as_bytes(), c).expect("query");
        assert_eq!(count("DDDDDDDDD", ChainType::H), 9);
        assert_eq!(count("EEEEEEEEE", ChainType::H), 9);
        assert_eq!(count("EEEEEEEEE", ChainType::L), 1);
        assert_eq!(count("KKKKKKKKK", ChainType::H), 0);
        assert_eq!(count("KKKKKKKKK", ChainType::K), 9);
    }

    #[test]
    fn answers_are_cached_per_peptide_and_chain_group() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        let writer = build_database(&path);
        let oasis = OasisDb::open(&path, Relaxed).expect("open test database");
        assert_eq!(oasis.is_human(b"IIIIIIIII", ChainType::H), Ok(false));
        // New hits after the first answer are not seen for the same chain group...
        for id in [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 101, 102] {
            writer
                .execute("INSERT INTO peptides VALUES ('IIIIIIIII', ?1, 1)", [id])
                .expect("insert");
        }
        assert_eq!(oasis.is_human(b"IIIIIIIII", ChainType::H), Ok(false));
        // ...but the light group is asked afresh: 2 of 10 light subjects.
        assert_eq!(oasis.is_human(b"IIIIIIIII", ChainType::L), Ok(true));
        assert_eq!(oasis.is_human(b"IIIIIIIII", ChainType::K), Ok(true));
        assert_eq!(
            oasis
                .count_subjects(b"IIIIIIIII", ChainType::H)
                .expect("query"),
            10
        );
    }

    #[test]
    fn failed_queries_are_reported_not_cached() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        let writer = build_database(&path);
        let oasis = OasisDb::open(&path, Loose).expect("open test database");
        writer
            .execute_batch("ALTER TABLE peptides RENAME TO moved")
            .expect("rename");
        let error = oasis
            .is_human(b"AAAAAAAAA", ChainType::H)
            .expect_err("the table is gone");
        assert!(
            error.0.contains("moved") || error.0.contains("peptides"),
            "{error}"
        );
        writer
            .execute_batch("ALTER TABLE moved RENAME TO peptides")
            .expect("rename back");
        assert_eq!(oasis.is_human(b"AAAAAAAAA", ChainType::H), Ok(true));
    }

    #[test]
    fn unusable_files_are_errors() {
        let dir = tempfile::tempdir().expect("temp dir");
        let missing = dir.path().join("missing.db");
        assert!(matches!(
            OasisDb::open(&missing, Relaxed),
            Err(OasisDbError::Open { .. })
        ));
        let gz = dir.path().join("OASis_9mers_v1.db.gz");
        assert!(matches!(
            OasisDb::open(&gz, Relaxed),
            Err(OasisDbError::Compressed(_))
        ));

        let other = dir.path().join("other.db");
        Connection::open(&other)
            .and_then(|db| db.execute_batch("CREATE TABLE t (x)"))
            .expect("create other database");
        assert!(matches!(
            OasisDb::open(&other, Relaxed),
            Err(OasisDbError::Schema { .. })
        ));

        let empty = dir.path().join("empty.db");
        Connection::open(&empty)
            .and_then(|db| {
                db.execute_batch(
                    "CREATE TABLE subjects (id INTEGER, StudyPath TEXT,
                                            CompleteHeavySeqs INTEGER, CompleteLightSeqs INTEGER);
                     CREATE TABLE peptides (peptide TEXT, subject INTEGER, count INTEGER);",
                )
            })
            .expect("create empty database");
        assert!(matches!(
            OasisDb::open(&empty, Relaxed),
            Err(OasisDbError::NoSubjects { .. })
        ));
    }

    #[test]
    fn a_failing_database_fails_the_humanization_instead_of_under_counting() {
        use crate::engine::humanize::{Humanizer, Strategy, Variant};

        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        let db = build_database(&path);
        let oasis = OasisDb::open(&path, Relaxed).expect("open test database");
        // The table disappears under the open reader: every query now fails.
        db.execute_batch("DROP TABLE peptides").expect("drop");
        // Campath-1H parental VH (Hu-mAb set).
        let variant = Variant::new(
            "EVKLLESGGGLVQPGGSMRLSCAGSGFTFTDFYMNWIRQPAGKAPEWLGFIRDKAKGYTTEYNPSVKGRFTISRDNTQNMLYLQMNTLRAEDTATYYCAREGHTAAPFDYWGQGVMVTVSS",
            None,
        )
        .expect("numbers");
        let error = Humanizer::new(&oasis)
            .run(&variant, Strategy::CdrGrafting)
            .expect_err("a failed database must not give a result");
        assert!(error.0.contains("OASis peptide source failed"), "{error}");
    }

    #[test]
    fn describe_names_the_file_and_threshold() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("oasis.db");
        drop(build_database(&path));
        let oasis = OasisDb::open(&path, Strict).expect("open test database");
        let text = oasis.describe();
        assert!(
            text.contains("oasis.db") && text.contains("strict"),
            "{text}"
        );
        assert!(text.contains("100 heavy / 10 light"), "{text}");
    }
}
