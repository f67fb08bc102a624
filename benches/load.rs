//! Bounded load test of the service, run with `cargo bench --bench load`.
//!
//! In one run, on this machine, printed as Markdown tables: (1) the ceilings — one-row
//! SQLite `INSERT` transactions with the server's pragmas (and the store's whole submit
//! transaction without HTTP, with what its pieces and a request's auth, blocking-pool hops
//! and quota transaction cost), and a trivial hyper 1 route (a child process answering 200 "ok");
//! (2) submit, GET and cancel (pending jobs, queue paused) against the real binary at 1, 32 and
//! 256 keep-alive connections, each as a ratio to its ceiling, with the server's rate limits
//! raised out of the way; (3) cancel-to-stopped latency of running jobs; (4) jobs drained per
//! second by the real engine at `--workers 1` and `2`, in rounds interleaved with the engine
//! alone on one and two threads; (5) the server's resident memory with 100,000 jobs in its
//! database while it serves GETs. Everything talks to 127.0.0.1 only, and every loop is
//! bounded in count and time. `VENEER_BENCH_ONLY=drain` runs (4) alone (~1 min),
//! `VENEER_BENCH_ONLY=cancel` the cancel rounds of (2) alone (~30 s),
//! `VENEER_BENCH_ONLY=routes` (1) and (2) alone (GET and cancel at 32 connections also in
//! rounds, each between its ceilings), `VENEER_BENCH_ONLY=memory` (5) alone (~15 s);
//! `VENEER_BENCH_NO_POSTGRES=1` skips the PostgreSQL part; `VENEER_BENCH_BIN=path` serves
//! from another build of the binary (A/B runs).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use veneer::service::humanization::NewHumanization;
use veneer::service::keys;
use veneer::service::submit;
use veneer::store::sqlite::{Db, accounts, jobs, requests, variants};
use veneer::store::{JobRow, Status, Store, StoreError, StoredResponse, VariantRow, new_id, now};

const BIN: &str = env!("CARGO_BIN_EXE_veneer");

/// The API suite's throwaway PostgreSQL cluster, started here with durable settings.
#[path = "../tests/api/pg.rs"]
#[allow(dead_code)]
mod pg;
const VH: &str = "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS";
const VL: &str = "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK";
const CLIENTS: usize = 32;
const LEVELS: [usize; 3] = [1, 32, 256];
const PHASE_LIMIT: Duration = Duration::from_secs(20);
/// Set in the environment of the re-executed bench binary that serves the trivial route.
const TRIVIAL_ENV: &str = "VENEER_LOAD_TRIVIAL_SERVER";

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    if std::env::var_os(TRIVIAL_ENV).is_some() {
        trivial_server();
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let load = || std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "veneer load bench ({} cores); load average at start: {}",
        cores(),
        load().trim()
    );
    let began = Instant::now();
    if std::env::var("VENEER_BENCH_ONLY").as_deref() == Ok("drain") {
        // The drain and its ceilings alone (~1 min), for looking at the drain by itself.
        drain_part(dir.path());
        return;
    }
    if std::env::var("VENEER_BENCH_ONLY").as_deref() == Ok("memory") {
        // The memory part alone (~15 s).
        memory(dir.path());
        return;
    }
    if std::env::var("VENEER_BENCH_ONLY").as_deref() == Ok("cancel") {
        // The cancel rounds alone (~30 s), for A/B runs of one lever (with VENEER_BENCH_BIN).
        drop(raw_db(&dir.path().join("raw.db")));
        let server = serve(dir.path(), "cancel.db", &["--paused"]);
        let variant_id = create_variant(&mut Client::connect(&server.addr), &server.key);
        println!("| route | connections | requests | req/s | p50 | p99 | vs ceiling |");
        println!("|---|---|---|---|---|---|---|");
        cancel_rounds(dir.path(), &server, &variant_id);
        return;
    }
    if std::env::var("VENEER_BENCH_ONLY").as_deref() == Ok("routes") {
        // The route phases and their ceilings alone (~40 s).
        let raw = raw_sqlite(dir.path());
        println!();
        http_routes(dir.path(), raw);
        return;
    }
    println!();
    let raw = raw_sqlite(dir.path());
    println!();
    let trivial = http_routes(dir.path(), raw);
    println!();
    cancel_latency(dir.path());
    println!();
    drain_part(dir.path());
    println!();
    memory(dir.path());
    println!();
    if std::env::var_os("VENEER_BENCH_NO_POSTGRES").is_none() && pg::bin_dir().is_some()
        || std::env::var_os("VENEER_TEST_PG").is_some()
    {
        postgres(trivial);
        println!();
    } else {
        println!("(PostgreSQL column skipped: no Debian postgresql and no VENEER_TEST_PG)");
    }
    println!(
        "whole run {:.0} s; load average at end: {}",
        began.elapsed().as_secs_f64(),
        load().trim()
    );
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// The raw SQLite ceilings the write routes are measured against, transactions per second.
#[derive(Clone, Copy)]
struct Raw {
    /// One one-row `INSERT` per transaction.
    insert: f64,
    /// One one-row debit and one one-row `INSERT` per transaction (issue 12's baseline).
    debit_insert: f64,
}

/// `n` raw transactions on the raw ceiling's tables, each of a one-row debit (or not) and a
/// one-row insert: transactions per second.
fn raw_transactions(conn: &rusqlite::Connection, n: usize, debit: bool) -> f64 {
    let started = Instant::now();
    for _ in 0..n {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        if debit {
            conn.execute("UPDATE o SET credits = credits - 1 WHERE id = 'org'", [])
                .expect("debit");
        }
        conn.execute(
            "INSERT INTO t VALUES (?1, 'org', 'pending', '{\"variant_id\":\"x\"}', ?2)",
            [new_id(), now()],
        )
        .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    n as f64 / started.elapsed().as_secs_f64()
}

/// Issue 12's raw transaction again, on the raw ceiling's database (its tables made by
/// [`raw_db`]), for a write phase to be measured beside: transactions per second.
fn raw_debit_insert_now(dir: &std::path::Path) -> f64 {
    let conn = rusqlite::Connection::open(dir.join("raw.db")).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("pragma");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    raw_transactions(&conn, 10_000, true)
}

/// The raw transactions' database: WAL, `synchronous=NORMAL`, the table they insert into and
/// the one row they debit.
fn raw_db(path: &std::path::Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(path).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("pragma");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    conn.execute_batch(
        "CREATE TABLE t (id TEXT PRIMARY KEY, org_id TEXT NOT NULL, status TEXT NOT NULL, \
         inputs TEXT NOT NULL, created_at TEXT NOT NULL); \
         CREATE TABLE o (id TEXT PRIMARY KEY, credits INTEGER NOT NULL); \
         INSERT INTO o VALUES ('org', 1000000000)",
    )
    .expect("tables");
    conn
}

fn raw_sqlite(dir: &std::path::Path) -> Raw {
    const N: usize = 20_000;
    let path = dir.join("raw.db");
    let conn = raw_db(&path);
    let insert = raw_transactions(&conn, N, false);
    // Issue 12's baseline: each transaction debits one row and inserts one.
    let debit_insert = raw_transactions(&conn, N, true);
    let raw = Raw {
        insert,
        debit_insert,
    };
    println!("| ceiling | figure |");
    println!("|---|---|");
    println!(
        "| raw SQLite, one-row `INSERT` per transaction (WAL, `synchronous=NORMAL`), {N} rows | {insert:.0} /s |"
    );
    println!(
        "| raw SQLite, one-row debit (`UPDATE`) and one-row `INSERT` per transaction, {N} rows (issue 12's baseline) | {debit_insert:.0} /s |"
    );

    // The store's whole submit transaction (variant and balance read, job insert, ledger
    // debit with its trigger), through the one writer, without HTTP.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let path = dir.join("store.db");
    let store = runtime
        .block_on(Store::open(&path.to_string_lossy(), 4))
        .expect("db");
    let Store::Sqlite(sqlite) = &store else {
        unreachable!("a file path opens SQLite")
    };
    let db = Arc::clone(sqlite.db());
    let (org_id, variant_id) = db
        .write(|tx| {
            let org = accounts::create_org(tx, "bench", 1_000_000)?;
            let v = VariantRow {
                id: new_id(),
                org_id: org.id.clone(),
                name: "v".into(),
                vh: VH.into(),
                vl: Some(VL.into()),
                vl_chain_type: Some("kappa".into()),
                scfv: None,
                created_at: now(),
            };
            variants::insert(tx, &v)?;
            Ok::<_, StoreError>((org.id, v.id))
        })
        .expect("setup");
    let n = 5_000;
    let started = Instant::now();
    let job_id = runtime.block_on(async {
        let mut last = String::new();
        for _ in 0..n {
            last = submit::submit_humanization(
                &store,
                &org_id,
                NewHumanization {
                    variant_id: variant_id.clone(),
                    strategies: None,
                },
                None,
                |job| StoredResponse {
                    status: 202,
                    body: job.id.clone(),
                    location: None,
                },
            )
            .await
            .expect("submit")
            .1
            .expect("a job id");
        }
        last
    });
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "| the store's whole submit transaction, no HTTP, sequential (not a ceiling: the submit path minus HTTP) | {rate:.0} /s ({:.1} % of raw) |",
        100.0 * rate / raw.insert
    );
    breakdown(&runtime, &store, &db, &org_id, &variant_id, &job_id);
    raw
}

/// What one request's pieces cost, sequentially, in this process and without HTTP: each is
/// something the server does on every request (auth, blocking-pool hops) or every write.
fn breakdown(
    runtime: &tokio::runtime::Runtime,
    store: &Store,
    db: &Arc<Db>,
    org_id: &str,
    variant_id: &str,
    job_id: &str,
) {
    const N: u32 = 5_000;
    let time = |what: &str, f: &mut dyn FnMut()| {
        let started = Instant::now();
        for _ in 0..N {
            f();
        }
        let each = started.elapsed() / N;
        println!(
            "| breakdown: {what} | {:.1} µs each ({:.0} /s) |",
            each.as_secs_f64() * 1e6,
            1.0 / each.as_secs_f64()
        );
    };
    let (key, secret) = runtime
        .block_on(keys::create(store, org_id, &["read".to_string()]))
        .expect("key");
    time(
        "`keys::authenticate` (SHA-256 + key lookup on a pooled reader; what a write request with its key in memory skips)",
        &mut || {
            assert!(
                runtime
                    .block_on(keys::authenticate(store, &secret))
                    .expect("auth")
                    .is_some()
            );
        },
    );
    time("`jobs::get` on a pooled reader", &mut || {
        db.read(|c| jobs::get(c, org_id, job_id, None).map_err(StoreError::from))
            .expect("get")
            .expect("job");
    });
    time(
        "`jobs::get` through `read_async` (tokio blocking-pool hop)",
        &mut || {
            runtime
                .block_on(db.read_async({
                    let (o, j) = (org_id.to_string(), job_id.to_string());
                    move |c| jobs::get(c, &o, &j, None).map_err(StoreError::from)
                }))
                .expect("get")
                .expect("job");
        },
    );
    time(
        "empty writer transaction (`BEGIN IMMEDIATE; COMMIT`)",
        &mut || {
            db.write(|_| Ok::<_, StoreError>(())).expect("write");
        },
    );
    // The submit transaction built up one step at a time (sequential, synchronous writer).
    for step in 1..=3 {
        let what = match step {
            1 => "submit transaction, reads only (variant, organization)",
            2 => "+ the job row insert (with its snapshot)",
            _ => "+ the ledger debit and its balance trigger (the whole submit transaction)",
        };
        time(what, &mut || {
            let (org_id, variant_id) = (org_id.to_string(), variant_id.to_string());
            db.write(move |tx| {
                let variant = variants::get(tx, &org_id, &variant_id)?.expect("variant");
                let org = accounts::get_org(tx, &org_id)?.expect("org");
                if step >= 2 {
                    let job = JobRow {
                        id: new_id(),
                        org_id: org_id.to_string(),
                        kind: "humanization".into(),
                        status: Status::Pending,
                        stage: None,
                        inputs: serde_json::json!({ "variant_id": variant.id }).to_string(),
                        snapshot: serde_json::json!({
                            "variant_id": variant.id, "name": variant.name,
                            "vh": variant.vh, "vl": variant.vl,
                        })
                        .to_string(),
                        credit_cost: 1,
                        created_at: now(),
                        started_at: None,
                        finished_at: None,
                        results: None,
                        parental: None,
                        error: None,
                    };
                    jobs::insert(tx, &job)?;
                    if step >= 3 {
                        accounts::debit(tx, &org, &job.id, 1)?;
                    }
                }
                Ok::<_, StoreError>(())
            })
            .expect("write");
        });
    }
    let charge = veneer::service::jobs::write_charge(&key, i64::MAX);
    time(
        "daily-quota count and key confirmation (`requests::count_write`, its own writer transaction)",
        &mut || {
            let charge = charge.clone();
            db.write(move |tx| requests::count_write(tx, &charge).map_err(StoreError::from))
                .expect("count");
        },
    );
}

/// A keep-alive HTTP/1.1 connection that understands `Content-Length` responses.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    host: String,
}

impl Client {
    fn connect(addr: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Client {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
            host: addr.to_string(),
        }
    }

    fn send(&mut self, method: &str, path: &str, key: &str, body: &str) -> (u16, String) {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {key}\r\n\
             content-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            self.host,
            body.len()
        );
        self.writer.write_all(request.as_bytes()).expect("write");
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status: u16 = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            if let Some((k, v)) = trimmed.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

struct Served {
    child: std::process::Child,
    addr: String,
    key: String,
    db: std::path::PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &std::path::Path, name: &str, extra: &[&str]) -> Served {
    let mut served = serve_on(&dir.join(name).to_string_lossy(), extra);
    served.db = dir.join(name);
    served
}

/// The real binary on any database (`--db` a file or a `postgres://` URL).
fn serve_on(db: &str, extra: &[&str]) -> Served {
    // Another build of the binary, for A/B runs of one lever.
    let bin = std::env::var("VENEER_BENCH_BIN").unwrap_or_else(|_| BIN.to_string());
    let mut child = Command::new(bin)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .args([
            "--write-rate",
            "1000000",
            "--write-burst",
            "1000000",
            "--read-rate",
            "1000000",
            "--read-burst",
            "1000000",
            "--daily-write-quota",
            "100000000",
            "--starter-credits",
            "1000000",
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let mut key = String::new();
    let addr = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if let Some(k) = line.strip_prefix("api key: ") {
            key = k.to_string();
        }
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.to_string();
        }
    };
    Served {
        child,
        addr,
        key,
        db: db.into(),
    }
}

fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let needle = format!("\"{name}\":\"");
    json.find(&needle)
        .map(|i| &json[i + needle.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

/// One request of a load phase: method, path, body, the status it must get.
struct Req {
    method: &'static str,
    path: String,
    body: String,
    expect: u16,
}

/// What a load phase measured.
struct Phase {
    n: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
    /// The `id` field of every answer, in no particular order.
    ids: Vec<String>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.n as f64 / self.elapsed.as_secs_f64()
    }
}

/// `conns` keep-alive connections (one thread each, connected before the clock starts) share
/// `total` requests; each stops at the phase deadline too.
fn drive(
    addr: &str,
    key: &str,
    conns: usize,
    total: usize,
    request: Arc<dyn Fn(usize) -> Req + Send + Sync>,
) -> Phase {
    let next = Arc::new(AtomicUsize::new(0));
    let barrier = Arc::new(Barrier::new(conns + 1));
    let threads: Vec<_> = (0..conns)
        .map(|_| {
            let (addr, key) = (addr.to_string(), key.to_string());
            let (next, barrier, request) = (next.clone(), barrier.clone(), request.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(&addr);
                let mut latencies = Vec::new();
                let mut ids = Vec::new();
                barrier.wait();
                let phase = Instant::now();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= total || phase.elapsed() > PHASE_LIMIT {
                        break;
                    }
                    let r = request(i);
                    let t = Instant::now();
                    let (status, text) = c.send(r.method, &r.path, &key, &r.body);
                    latencies.push(t.elapsed());
                    assert_eq!(status, r.expect, "{} {}: {text}", r.method, r.path);
                    let id = field(&text, "id");
                    if !id.is_empty() {
                        ids.push(id.to_string());
                    }
                }
                (latencies, ids)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut ids = Vec::new();
    for t in threads {
        let (l, i) = t.join().expect("client");
        latencies.extend(l);
        ids.extend(i);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    Phase {
        n: latencies.len(),
        elapsed,
        latencies,
        ids,
    }
}

/// Write requests per phase at each concurrency (capped by `PHASE_LIMIT` too).
fn total_for(conns: usize) -> usize {
    if conns == 1 { 1_000 } else { 4_000 }
}

/// Read requests per phase: reads are 5–30× faster, so more of them keep a phase near a
/// second rather than tens of milliseconds.
fn reads_for(conns: usize) -> usize {
    if conns == 1 { 5_000 } else { 30_000 }
}

/// A minimal hyper 1 server answering 200 "ok" to everything, run as a child process (this
/// bench binary re-executed) so that it shares the machine like the real server does.
fn trivial_server() {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper_util::rt::TokioIo;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!(
            "listening on http://{}",
            listener.local_addr().expect("addr")
        );
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"ok"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

fn spawn_trivial() -> (std::process::Child, String) {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .env(TRIVIAL_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn trivial server");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("a line").expect("utf-8");
        if let Some(a) = line.strip_prefix("listening on http://") {
            break a.to_string();
        }
    };
    (child, addr)
}

/// One route's row, its rate as a share of each ceiling in `against` (none: it is a ceiling).
fn row(what: &str, conns: usize, p: &Phase, against: &[(&str, f64)]) {
    let shares: Vec<String> = against
        .iter()
        .map(|(name, c)| format!("{:.1} % of {name}", 100.0 * p.rate() / c))
        .collect();
    let ratio = match shares.split_first() {
        None => "ceiling".to_string(),
        Some((first, [])) => first.clone(),
        Some((first, rest)) => format!("{first} ({})", rest.join(", ")),
    };
    println!(
        "| {what} | {conns} | {} | {:.0} | {} | {} | {} |",
        p.n,
        p.rate(),
        ms(percentile(&p.latencies, 0.50)),
        ms(percentile(&p.latencies, 0.99)),
        ratio
    );
}

fn create_variant(c: &mut Client, key: &str) -> String {
    let body = format!("{{\"name\":\"v\",\"vh\":\"{VH}\",\"vl\":\"{VL}\"}}");
    let (status, variant) = c.send("POST", "/v1/variants", key, &body);
    assert_eq!(status, 201, "{variant}");
    field(&variant, "id").to_string()
}

/// Submits one humanization and returns the job's id.
fn submit_one(c: &mut Client, key: &str, variant_id: &str) -> String {
    let body = format!("{{\"variant_id\":\"{variant_id}\"}}");
    let (status, job) = c.send("POST", "/v1/humanizations", key, &body);
    assert_eq!(status, 202, "{job}");
    field(&job, "id").to_string()
}

/// `GET path`, every time.
fn get_request(path: &str) -> Arc<dyn Fn(usize) -> Req + Send + Sync> {
    let path = path.to_string();
    Arc::new(move |_| Req {
        method: "GET",
        path: path.clone(),
        body: String::new(),
        expect: 200,
    })
}

/// The cancel of the `base + i`th of `ids`.
fn cancel_request(ids: Arc<Vec<String>>, base: usize) -> Arc<dyn Fn(usize) -> Req + Send + Sync> {
    Arc::new(move |i| Req {
        method: "POST",
        path: format!("/v1/humanizations/{}/cancel", ids[base + i]),
        body: String::new(),
        expect: 200,
    })
}

fn submit_request(variant_id: &str) -> Arc<dyn Fn(usize) -> Req + Send + Sync> {
    let body = format!("{{\"variant_id\":\"{variant_id}\"}}");
    Arc::new(move |_| Req {
        method: "POST",
        path: "/v1/humanizations".into(),
        body: body.clone(),
        expect: 202,
    })
}

/// Submit, GET and cancel at 1, 32 and 256 connections against the real binary (queue
/// paused), beside the trivial hyper route driven by the same client.
fn http_routes(dir: &std::path::Path, raw: Raw) -> f64 {
    let (mut trivial, trivial_addr) = spawn_trivial();
    let server = serve(dir, "http.db", &["--paused"]);
    let mut c = Client::connect(&server.addr);
    let variant_id = create_variant(&mut c, &server.key);
    println!("| route | connections | requests | req/s | p50 | p99 | vs ceiling |");
    println!("|---|---|---|---|---|---|---|");
    let trivial_phase = |conns: usize| {
        drive(
            &trivial_addr,
            &server.key,
            conns,
            reads_for(conns),
            Arc::new(|_| Req {
                method: "GET",
                path: "/".into(),
                body: String::new(),
                expect: 200,
            }),
        )
    };
    let mut trivial_rates = Vec::new();
    for conns in LEVELS {
        let p = trivial_phase(conns);
        row("trivial hyper route `GET /`", conns, &p, &[]);
        trivial_rates.push(p.rate());
    }
    // Each write phase is measured between two runs of issue 12's raw transaction, and
    // compared with their mean too (the first ceiling table's figures drift with the machine).
    let beside = |label: &str, conns: usize, run: &dyn Fn() -> Phase| {
        let before = raw_debit_insert_now(dir);
        let p = run();
        let after = raw_debit_insert_now(dir);
        row(
            &format!("{label} (raw transaction just before / after: {before:.0} / {after:.0} /s)"),
            conns,
            &p,
            &[
                ("debit + insert beside it", (before + after) / 2.0),
                ("the first debit + insert", raw.debit_insert),
            ],
        );
        p
    };
    let mut pending = Vec::new();
    for conns in LEVELS {
        let p = beside("`POST /v1/humanizations`", conns, &|| {
            drive(
                &server.addr,
                &server.key,
                conns,
                total_for(conns),
                submit_request(&variant_id),
            )
        });
        pending.extend(p.ids);
    }
    // Each GET phase is measured between two phases of the trivial route at the same
    // concurrency and compared with their mean: this machine's speed drifts by tens of per
    // cent within a minute, and the ratio should not depend on when each side ran.
    let target = format!("/v1/humanizations/{}", pending[0]);
    for conns in LEVELS {
        let before = trivial_phase(conns).rate();
        let p = drive(
            &server.addr,
            &server.key,
            conns,
            reads_for(conns),
            get_request(&target),
        );
        let after = trivial_phase(conns).rate();
        row(
            &format!(
                "`GET /v1/humanizations/{{id}}` (trivial route just before / after: {before:.0} / {after:.0} /s)"
            ),
            conns,
            &p,
            &[("trivial route beside it", (before + after) / 2.0)],
        );
    }
    let measured = rounds(&|| trivial_phase(CLIENTS).rate(), &|_| {
        drive(
            &server.addr,
            &server.key,
            CLIENTS,
            reads_for(CLIENTS),
            get_request(&target),
        )
    });
    rounds_row(
        "`GET /v1/humanizations/{id}`",
        "trivial-route phases",
        "trivial route",
        reads_for(CLIENTS),
        &measured,
        false,
    );
    let _ = trivial.kill();
    let _ = trivial.wait();
    let pending = Arc::new(pending);
    let mut offset = 0;
    for conns in LEVELS {
        let total = total_for(conns).min(pending.len() - offset);
        beside(
            "`POST /v1/humanizations/{id}/cancel` (pending)",
            conns,
            &|| {
                drive(
                    &server.addr,
                    &server.key,
                    conns,
                    total,
                    cancel_request(pending.clone(), offset),
                )
            },
        );
        offset += total;
    }
    cancel_rounds(dir, &server, &variant_id);
    trivial_rates[1]
}

/// Cancel at [`CLIENTS`] connections in [`ROUNDS`] rounds, each between two runs of the raw
/// transaction, on jobs submitted for them here (not measured): one cancel phase is about a
/// quarter of a second, and the ratio of a single phase moved by fifteen points from run to
/// run.
fn cancel_rounds(dir: &std::path::Path, server: &Served, variant_id: &str) {
    let fresh = drive(
        &server.addr,
        &server.key,
        CLIENTS,
        ROUNDS * total_for(CLIENTS),
        submit_request(variant_id),
    );
    let fresh = Arc::new(fresh.ids);
    let measured = rounds(&|| raw_debit_insert_now(dir), &|round| {
        let total = total_for(CLIENTS).min(fresh.len().saturating_sub(round * total_for(CLIENTS)));
        drive(
            &server.addr,
            &server.key,
            CLIENTS,
            total,
            cancel_request(fresh.clone(), round * total_for(CLIENTS)),
        )
    });
    rounds_row(
        "`POST /v1/humanizations/{id}/cancel` (pending)",
        "runs of the raw transaction",
        "debit + insert",
        total_for(CLIENTS),
        &measured,
        true,
    );
}

/// Rounds in which GET and cancel at [`CLIENTS`] connections are measured again.
const ROUNDS: usize = 7;

/// [`ROUNDS`] phases (`phase(round)`), each read against `ceiling()` just before and after it:
/// one phase is under a second, and this machine's speed drifts by tens of per cent within
/// seconds, so the median over rounds is the figure (as the drain's rounds do). Each round's
/// ratio to its ceiling and its p99.
fn rounds(ceiling: &dyn Fn() -> f64, phase: &dyn Fn(usize) -> Phase) -> Vec<(f64, Duration)> {
    (0..ROUNDS)
        .map(|round| {
            let before = ceiling();
            let p = phase(round);
            let after = ceiling();
            (
                p.rate() / ((before + after) / 2.0),
                percentile(&p.latencies, 0.99),
            )
        })
        .collect()
}

/// The table row of `route` measured in [`rounds`] of `requests` each, between two of
/// `between`: every round's ratio, the median, and the worst round's p99 when `show_p99`.
fn rounds_row(
    route: &str,
    between: &str,
    ceiling: &str,
    requests: usize,
    measured: &[(f64, Duration)],
    show_p99: bool,
) {
    let shown: Vec<String> = measured
        .iter()
        .map(|(r, _)| format!("{:.1}", 100.0 * r))
        .collect();
    let mut ratios: Vec<f64> = measured.iter().map(|&(r, _)| r).collect();
    ratios.sort_by(f64::total_cmp);
    let p99 = match measured.iter().map(|&(_, p99)| p99).max() {
        Some(worst) if show_p99 => {
            format!("{:.1} ms (the worst round's)", worst.as_secs_f64() * 1000.0)
        }
        _ => "—".to_string(),
    };
    println!(
        "| {route} in {ROUNDS} rounds, each between two {between} (rounds: {} %) | {CLIENTS} | {ROUNDS} × {requests} | — | — | {p99} | median {:.1} % of {ceiling} beside it |",
        shown.join(", "),
        100.0 * ratios[ratios.len() / 2]
    );
}

fn proc_status(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_start_matches(':').trim().to_string())
        .unwrap_or_default()
}

/// The engine alone on the drain's job, in this process, on `threads` threads at once (`N`
/// jobs each): what the pipeline runs per job (the variant, the parental report, each
/// strategy, the ranking), optionally plus encoding the results and parental report as the
/// job stores them. Jobs per second, all threads together.
fn engine_rate(threads: usize, encode: bool) -> f64 {
    engine_rate_of(threads, encode, 100)
}

/// [`engine_rate`] with `n` jobs per thread.
fn engine_rate_of(threads: usize, encode: bool, n: u32) -> f64 {
    use veneer::engine::humanize::{Humanizer, Strategy, StrategySpec, Variant, rank_designs};
    use veneer::engine::humanness::OasisSet;
    let humanizer = Humanizer::new(OasisSet::embedded());
    let job = || {
        let variant = Variant::new(VH, Some(VL)).expect("variant");
        let parental = humanizer.parental(&variant).expect("parental");
        let mut results: Vec<_> = Strategy::DEFAULT
            .iter()
            .map(|&s| {
                humanizer
                    .run(&variant, StrategySpec::from(s))
                    .expect("runs")
            })
            .collect();
        rank_designs(&mut results);
        if encode {
            let encoded = serde_json::to_string(&results).expect("json").len()
                + serde_json::to_string(&parental).expect("json").len();
            std::hint::black_box(encoded);
        } else {
            std::hint::black_box((parental, results));
        }
    };
    job();
    let started = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..n {
                    job();
                }
            });
        }
    });
    (threads as u32 * n) as f64 / started.elapsed().as_secs_f64()
}

/// The engine alone, one thread and two: the ceilings of `--workers 1` and `2`.
fn engine_alone() {
    println!("| the engine alone | jobs | rate |");
    println!("|---|---|---|");
    let one = engine_rate(1, false);
    let encoded = engine_rate(1, true);
    println!(
        "| the engine alone on the same job, one thread, no database (100 jobs) | — | {one:.1} jobs/s ({:.1} ms each); {encoded:.1} jobs/s with the results encoded as stored |",
        1000.0 / one
    );
    // Two threads at once: what this machine's two cores give two workers (shared caches and
    // memory bandwidth included).
    let two = engine_rate(2, false);
    println!(
        "| the engine alone, two threads at once (200 jobs) | — | {two:.1} jobs/s ({:.2}× one thread) |",
        two / one
    );
}

/// Part (4): the engine alone, then the drain in rounds beside it.
fn drain_part(dir: &std::path::Path) {
    engine_alone();
    println!();
    drains(dir);
}

/// The drain against the engine alone, interleaved. This machine's speed drifts by tens of
/// per cent within a minute, so a drain compared with a ceiling taken a minute away measures
/// the machine as much as veneer: each of `ROUNDS` rounds takes the engine alone on one
/// thread, a one-worker server's drain of `JOBS` jobs, the engine alone on two threads and a
/// two-worker server's drain of twice as many, all within ~10 s; each ratio is read within
/// its round, and the medians over rounds are the results.
fn drains(dir: &std::path::Path) {
    const ROUNDS: usize = 7;
    const JOBS: usize = 60;
    const ENGINE_JOBS: u32 = 30;
    let one = DrainServer::start(dir, 1);
    let two = DrainServer::start(dir, 2);
    println!(
        "| round | engine alone, 1 thread | `--workers 1` drain | engine alone, 2 threads | `--workers 2` drain | 2 workers / 1 | engine 2 threads / 1 |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut rounds = Vec::new();
    for round in 1..=ROUNDS {
        let e1 = engine_rate_of(1, true, ENGINE_JOBS);
        let d1 = one.drain(JOBS);
        let e2 = engine_rate_of(2, true, ENGINE_JOBS);
        let d2 = two.drain(2 * JOBS);
        println!(
            "| {round} | {e1:.1} jobs/s | {d1:.1} jobs/s ({:.1} %) | {e2:.1} jobs/s | {d2:.1} jobs/s ({:.1} %) | {:.2}× | {:.2}× |",
            100.0 * d1 / e1,
            100.0 * d2 / e2,
            d2 / d1,
            e2 / e1
        );
        rounds.push([d1 / e1, d2 / e2, d2 / d1, e2 / e1]);
    }
    let median = |i: usize| {
        let mut v: Vec<f64> = rounds.iter().map(|r| r[i]).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "| median of {ROUNDS} | — | {:.1} % of the engine alone | — | {:.1} % of the engine alone on 2 threads | {:.2}× | {:.2}× |",
        100.0 * median(0),
        100.0 * median(1),
        median(2),
        median(3)
    );
}

/// A server with `workers` workers and a variant to submit, running (not paused) for
/// [`DrainServer::drain`].
struct DrainServer {
    served: Served,
    variant_id: String,
}

impl DrainServer {
    fn start(dir: &std::path::Path, workers: usize) -> DrainServer {
        let w = workers.to_string();
        let served = serve(dir, &format!("drain{workers}.db"), &["--workers", &w]);
        let mut c = Client::connect(&served.addr);
        let variant_id = create_variant(&mut c, &served.key);
        DrainServer { served, variant_id }
    }

    /// Jobs per second for `jobs` jobs (all strategies, the real engine): submitted at once
    /// over 32 connections (the runner starts on the first), timed from the first submit to
    /// the poll (every 2 ms) that sees none open. Submitting takes a few milliseconds of the
    /// seconds measured and counts against the drain.
    fn drain(&self, jobs: usize) -> f64 {
        let conn = rusqlite::Connection::open(&self.served.db).expect("open");
        conn.busy_timeout(Duration::from_secs(10)).expect("pragma");
        // Each count from its partial index (`jobs_pending`, `jobs_running`): a `status IN
        // (…)` would scan the whole table, every 2 ms, on the cores the drain is measured on.
        let open = || -> i64 {
            conn.query_row(
                "SELECT (SELECT count(*) FROM jobs WHERE status = 'pending') \
                 + (SELECT count(*) FROM jobs WHERE status = 'running')",
                [],
                |r| r.get(0),
            )
            .expect("count")
        };
        assert_eq!(open(), 0, "the previous drain finished");
        let started = Instant::now();
        let p = drive(
            &self.served.addr,
            &self.served.key,
            CLIENTS,
            jobs,
            submit_request(&self.variant_id),
        );
        assert_eq!(p.n, jobs);
        while open() > 0 {
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "still draining after 120 s"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let wall = started.elapsed().as_secs_f64();
        let failed: i64 = conn
            .query_row(
                "SELECT count(*) FROM jobs WHERE status <> 'completed'",
                [],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(failed, 0, "every drained job completed");
        jobs as f64 / wall
    }
}

/// Resident memory of the server with 100,000 jobs in its database while it serves GETs.
fn memory(dir: &std::path::Path) {
    const JOBS: usize = 100_000;
    println!("| memory | VmRSS |");
    println!("|---|---|");
    let server = serve(dir, "mem.db", &["--paused"]);
    let pid = server.child.id();
    let mut c = Client::connect(&server.addr);
    let variant_id = create_variant(&mut c, &server.key);
    let template = submit_one(&mut c, &server.key, &variant_id);
    let idle = proc_status(pid, "VmRSS");
    // Copies of the real pending job, straight into the table (the ledger is not needed to
    // hold rows in memory or on disk).
    let mut conn = rusqlite::Connection::open(&server.db).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("pragma");
    let started = Instant::now();
    let tx = conn.transaction().expect("tx");
    let mut ids = Vec::with_capacity(JOBS);
    {
        let mut insert = tx
            .prepare(
                "INSERT INTO jobs (id, org_id, kind, status, stage, inputs, snapshot, credit_cost, created_at) \
                 SELECT ?1, org_id, kind, status, stage, inputs, snapshot, credit_cost, created_at \
                 FROM jobs WHERE id = ?2",
            )
            .expect("prepare");
        for _ in 1..JOBS {
            let id = new_id();
            insert.execute([&id, &template]).expect("insert");
            ids.push(id);
        }
    }
    tx.commit().expect("commit");
    ids.push(template);
    let inserted = started.elapsed();
    let count: i64 = conn
        .query_row("SELECT count(*) FROM jobs", [], |r| r.get(0))
        .expect("count");
    let before = proc_status(pid, "VmRSS");
    let ids = Arc::new(ids);
    let p = drive(
        &server.addr,
        &server.key,
        CLIENTS,
        20_000,
        Arc::new(move |i| Req {
            method: "GET",
            path: if i % 100 == 0 {
                "/v1/jobs?status=pending&limit=100".to_string()
            } else {
                format!("/v1/humanizations/{}", ids[(i * 7_919) % ids.len()])
            },
            body: String::new(),
            expect: 200,
        }),
    );
    let during = proc_status(pid, "VmRSS");
    let peak = proc_status(pid, "VmHWM");
    let size = std::fs::metadata(&server.db).map_or(0, |m| m.len())
        + std::fs::metadata(server.db.with_extension("db-wal")).map_or(0, |m| m.len());
    println!(
        "| server RSS, fresh (1 job) | {idle} |\n\
         | {count} jobs in the database ({:.1} MB incl. WAL; inserted by SQL in {:.2} s) | {before} |\n\
         | after {} GETs at {CLIENTS} connections ({:.0} /s; p99 {}) on random ids + 1 % list pages | {during} (peak VmHWM {peak}) |",
        size as f64 / 1e6,
        inserted.as_secs_f64(),
        p.n,
        p.rate(),
        ms(percentile(&p.latencies, 0.99)),
    );
}

fn cancel_latency(dir: &std::path::Path) {
    // A stage delay keeps each job running long enough to be caught mid-pipeline; the engine
    // itself takes milliseconds per strategy.
    let server = serve(dir, "cancel.db", &["--stage-delay-ms", "300"]);
    let mut c = Client::connect(&server.addr);
    let variant_id = create_variant(&mut c, &server.key);
    let mut sync = Vec::new();
    let mut polled = Vec::new();
    for i in 0..60 {
        let id = submit_one(&mut c, &server.key, &variant_id);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (_, j) = c.send("GET", &format!("/v1/jobs/{id}"), &server.key, "");
            if field(&j, "status") == "running" {
                break;
            }
            assert!(Instant::now() < deadline, "job never ran");
            std::thread::sleep(Duration::from_millis(2));
        }
        // Land the cancel at different points of the stage.
        std::thread::sleep(Duration::from_millis((i * 37 % 250) as u64));
        let t = Instant::now();
        if i % 2 == 0 {
            // The humanization route answers once the task has stopped.
            let (status, j) = c.send(
                "POST",
                &format!("/v1/humanizations/{id}/cancel"),
                &server.key,
                "",
            );
            if status == 200 && field(&j, "status") == "canceled" {
                sync.push(t.elapsed());
            }
        } else {
            // The generic route answers 202 at once; poll until canceled.
            let (status, _) = c.send("POST", &format!("/v1/jobs/{id}/cancel"), &server.key, "");
            if status == 202 {
                loop {
                    let (_, j) = c.send("GET", &format!("/v1/jobs/{id}"), &server.key, "");
                    if field(&j, "status") == "canceled" {
                        polled.push(t.elapsed());
                        break;
                    }
                    assert!(t.elapsed() < Duration::from_secs(10));
                }
            }
        }
    }
    sync.sort();
    polled.sort();
    println!("| cancel of a running job | n | p50 | p99 | max |");
    println!("|---|---|---|---|---|");
    for (what, l) in [
        (
            "`POST /v1/humanizations/{id}/cancel` until it answers `canceled`",
            &sync,
        ),
        (
            "`POST /v1/jobs/{id}/cancel` (202) until `GET` shows `canceled`",
            &polled,
        ),
    ] {
        println!(
            "| {what} | {} | {} | {} | {} |",
            l.len(),
            ms(percentile(l, 0.5)),
            ms(percentile(l, 0.99)),
            ms(percentile(l, 1.0))
        );
    }
}

/// The PostgreSQL column: the database's own ceiling (one-row `INSERT` transactions from
/// `CLIENTS` connections, no HTTP), then submit, GET and cancel through the real binary at
/// `CLIENTS` connections, and the drain per node — one node with one worker, one with two,
/// and two nodes with one worker each on one database.
fn postgres(trivial: f64) {
    // Commits are not waited on (synchronous_commit=off, like SQLite's synchronous=NORMAL in
    // WAL mode: a crash of the machine may lose the last commits, never consistency), but
    // pages are fsynced as on a real server.
    // SAFETY: set before any thread of this process reads the environment for it.
    unsafe { std::env::set_var("VENEER_PG_DURABLE", "1") };
    let cluster = pg::cluster();
    let raw = raw_postgres(&cluster.create_database());
    let db = cluster.create_database();
    let server = serve_on(&db, &["--paused"]);
    let mut c = Client::connect(&server.addr);
    let variant_id = create_variant(&mut c, &server.key);
    println!("| PostgreSQL route | connections | requests | req/s | p50 | p99 | vs ceiling |");
    println!("|---|---|---|---|---|---|---|");
    let p = drive(
        &server.addr,
        &server.key,
        CLIENTS,
        total_for(CLIENTS),
        submit_request(&variant_id),
    );
    row(
        "`POST /v1/humanizations`",
        CLIENTS,
        &p,
        &[("raw PG insert", raw)],
    );
    let pending = Arc::new(p.ids);
    let target = format!("/v1/humanizations/{}", pending[0]);
    let p = drive(
        &server.addr,
        &server.key,
        CLIENTS,
        reads_for(CLIENTS),
        get_request(&target),
    );
    row(
        "`GET /v1/humanizations/{id}`",
        CLIENTS,
        &p,
        &[("trivial route", trivial)],
    );
    let p = drive(
        &server.addr,
        &server.key,
        CLIENTS,
        pending.len(),
        cancel_request(Arc::clone(&pending), 0),
    );
    row(
        "`POST /v1/humanizations/{id}/cancel` (pending)",
        CLIENTS,
        &p,
        &[("raw PG insert", raw)],
    );
    drop(server);
    println!();
    println!("| PostgreSQL drain | jobs | rate |");
    println!("|---|---|---|");
    for (nodes, workers) in [(1, 1), (1, 2), (2, 1)] {
        drain_postgres(&cluster.create_database(), nodes, workers);
    }
}

/// One-row `INSERT` transactions (autocommit) from `CLIENTS` connections: what the database
/// itself sustains here, the ceiling of a submit's writes.
fn raw_postgres(url: &str) -> f64 {
    const N: usize = 20_000;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rate = runtime.block_on(async {
        let connect = || async {
            let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
                .await
                .expect("connect");
            tokio::spawn(connection);
            client
        };
        connect()
            .await
            .batch_execute(
                "CREATE TABLE t (id uuid PRIMARY KEY, org_id uuid NOT NULL, status text NOT NULL, \
                 inputs text NOT NULL, created_at timestamptz NOT NULL)",
            )
            .await
            .expect("table");
        let next = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for _ in 0..CLIENTS {
            clients.push(connect().await);
        }
        let started = Instant::now();
        let tasks: Vec<_> = clients
            .into_iter()
            .map(|client| {
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    let stmt = client
                        .prepare(
                            "INSERT INTO t VALUES ($1, $2, 'pending', '{\"variant_id\":\"x\"}', now())",
                        )
                        .await
                        .expect("prepare");
                    let org = uuid::Uuid::now_v7();
                    while next.fetch_add(1, Ordering::Relaxed) < N {
                        client
                            .execute(&stmt, &[&uuid::Uuid::now_v7(), &org])
                            .await
                            .expect("insert");
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("task");
        }
        N as f64 / started.elapsed().as_secs_f64()
    });
    println!("| PostgreSQL ceiling | figure |");
    println!("|---|---|");
    println!(
        "| raw PostgreSQL, one-row `INSERT` per transaction, {CLIENTS} connections (fsync on, `synchronous_commit=off`), {N} rows | {rate:.0} /s |"
    );
    println!();
    rate
}

/// Jobs drained per second on PostgreSQL by `nodes` nodes of `workers` workers each.
fn drain_postgres(url: &str, nodes: usize, workers: usize) {
    const JOBS: usize = 400;
    let w = workers.to_string();
    let first = serve_on(url, &["--paused", "--workers", &w]);
    let mut all = vec![first];
    for _ in 1..nodes {
        all.push(serve_on(url, &["--workers", &w]));
    }
    let key = all[0].key.clone();
    let mut c = Client::connect(&all[0].addr);
    let variant_id = create_variant(&mut c, &key);
    let p = drive(
        &all[0].addr,
        &key,
        CLIENTS,
        JOBS,
        submit_request(&variant_id),
    );
    assert_eq!(p.n, JOBS);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(connection);
        let count = |sql: &'static str| {
            let client = &client;
            async move { client.query_one(sql, &[]).await.expect("count").get::<_, i64>(0) }
        };
        let out = Command::new(BIN)
            .args(["--db", url, "queue", "resume"])
            .output()
            .expect("resume");
        assert!(out.status.success());
        let started = Instant::now();
        let mut first_claim = None;
        loop {
            let pending = count("SELECT count(*) FROM jobs WHERE status = 'pending'").await;
            if first_claim.is_none() && pending < JOBS as i64 {
                first_claim = Some(Instant::now());
            }
            let open =
                count("SELECT count(*) FROM jobs WHERE status IN ('pending', 'running')").await;
            if open == 0 {
                break;
            }
            if started.elapsed() > Duration::from_secs(120) {
                println!("| {nodes} node(s) × --workers {workers} | still draining after 120 s |");
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let busy = first_claim.map_or(started.elapsed(), |t| t.elapsed());
        let done = count("SELECT count(*) FROM jobs WHERE status = 'completed'").await;
        println!(
            "| {nodes} node(s) × --workers {workers} | {done} of {JOBS} completed | {:.1} jobs/s (first claim → none open {:.2} s) |",
            done as f64 / busy.as_secs_f64(),
            busy.as_secs_f64()
        );
    });
}
