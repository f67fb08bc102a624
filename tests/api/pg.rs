//! A throwaway PostgreSQL cluster for the suite's `postgres` run: started once per test
//! process on a free loopback port with its own data directory, as the unprivileged
//! `postgres` user when the tests run as root (PostgreSQL refuses root), and stopped by a
//! watchdog when this process ends, however it ends. `VENEER_TEST_PG` (a server URL such as
//! `postgres://veneer@127.0.0.1:5432`) uses a running server instead. Each test server gets a
//! database of its own.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub struct Cluster {
    /// `postgres://veneer@127.0.0.1:PORT`, without a database name.
    base: String,
    _dir: Option<tempfile::TempDir>,
    /// The watchdog shell running the server (it outlives this process only until it notices).
    _watchdog: Option<std::sync::Mutex<std::process::Child>>,
}

/// The directory of Debian's PostgreSQL programs (the newest installed major version).
pub fn bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("postgres").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// A PostgreSQL client program: Debian's, else whatever `PATH` finds.
fn tool(name: &str) -> PathBuf {
    bin_dir().map_or_else(|| PathBuf::from(name), |b| b.join(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// The command, run as `postgres` when this process is root.
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(|| {
        if let Ok(base) = std::env::var("VENEER_TEST_PG") {
            return Cluster {
                base: base.trim_end_matches('/').to_string(),
                _dir: None,
                _watchdog: None,
            };
        }
        let bin = bin_dir().expect(
            "VENEER_TEST_BACKEND=postgres needs PostgreSQL (Debian: apt-get install postgresql) \
             or VENEER_TEST_PG=postgres://user@host:port",
        );
        let dir = tempfile::Builder::new()
            .prefix("veneer-pg-")
            .tempdir()
            .expect("tempdir");
        let data = dir.path().join("data");
        if is_root() {
            let ok = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "chown of the cluster directory to postgres");
        }
        let out = as_server_user(&bin.join("initdb"))
            .args([
                "-A",
                "trust",
                "-U",
                "veneer",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .expect("initdb");
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        // Tests need no durability; the load bench asks for it (VENEER_PG_DURABLE) so its
        // figures are a real server's: pages fsynced, commits not waited on.
        let durability = if std::env::var_os("VENEER_PG_DURABLE").is_some() {
            "-c synchronous_commit=off"
        } else {
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        };
        // The watchdog: runs the server and stops it once this test process is gone.
        let script = format!(
            "'{postgres}' -D '{data}' -p {port} -k '{sock}' -c listen_addresses=127.0.0.1 \
             {durability} -c max_connections=400 >'{log}' 2>&1 & pg=$!; \
             while [ -d /proc/{me} ] && kill -0 $pg 2>/dev/null; do sleep 0.5; done; \
             kill -INT $pg 2>/dev/null; wait $pg",
            postgres = bin.join("postgres").display(),
            data = data.display(),
            sock = dir.path().display(),
            log = dir.path().join("server.log").display(),
            me = std::process::id(),
        );
        let watchdog = as_server_user(Path::new("/bin/sh"))
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start postgres");
        let base = format!("postgres://veneer@127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !psql(&format!("{base}/postgres"), "SELECT 1").0 {
            assert!(
                Instant::now() < deadline,
                "PostgreSQL did not start: {}",
                std::fs::read_to_string(dir.path().join("server.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster {
            base,
            _dir: Some(dir),
            _watchdog: Some(std::sync::Mutex::new(watchdog)),
        }
    })
}

/// Runs one statement with psql; (success, stdout).
fn psql(url: &str, sql: &str) -> (bool, String) {
    let out = Command::new(tool("psql"))
        .args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            url,
            "-c",
            sql,
        ])
        .output()
        .expect("psql");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

impl Cluster {
    /// A new, empty database; its URL.
    pub fn create_database(&self) -> String {
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let (ok, _) = psql(
            &format!("{}/postgres", self.base),
            &format!("CREATE DATABASE {name}"),
        );
        assert!(ok, "CREATE DATABASE {name}");
        format!("{}/{name}", self.base)
    }
}

/// Runs one statement on the database; the rows it changed (psql's command tag).
pub fn execute(url: &str, sql: &str) -> usize {
    let out = Command::new(tool("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql])
        .output()
        .expect("psql");
    assert!(
        out.status.success(),
        "{sql}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // `UPDATE 1`, `INSERT 0 1`, `DELETE 3`: the last number.
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// One value of a query's first row.
pub fn query_value(url: &str, sql: &str) -> String {
    let (ok, out) = psql(url, sql);
    assert!(ok, "{sql}");
    out.trim().to_string()
}

/// Every row of the database, as pg_dump writes them.
pub fn dump(url: &str) -> Vec<u8> {
    let out = Command::new(tool("pg_dump"))
        .args(["--data-only", "-d", url])
        .output()
        .expect("pg_dump");
    assert!(out.status.success(), "pg_dump");
    out.stdout
}
