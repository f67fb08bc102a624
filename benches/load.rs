//! Bounded load test of the service, run with `cargo bench --bench load`.
//!
//! In one run, on this machine: (1) the raw SQLite ceiling — one-row `INSERT` transactions
//! with the server's pragmas, and the store's whole submit transaction without HTTP;
//! (2) `POST /v1/humanizations` from 32 concurrent keep-alive clients against the real binary,
//! with the queue paused (the submit path alone) and running (submits competing with the
//! runner for the one writer); (3) cancel-to-stopped latency of running jobs. Everything
//! talks to 127.0.0.1 only, and every loop is bounded in count and time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use veneer::service::submit::{self, NewHumanization};
use veneer::store::accounts::{self, Bucket};
use veneer::store::db::{Db, StoreError, new_id, now};
use veneer::store::requests::StoredResponse;
use veneer::store::variants::{self, VariantRow};

const BIN: &str = env!("CARGO_BIN_EXE_veneer");
const VH: &str = "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS";
const VL: &str = "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK";
const CLIENTS: usize = 32;
const PER_CLIENT: usize = 150;
const PHASE_LIMIT: Duration = Duration::from_secs(60);

fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let dir = tempfile::tempdir().expect("tempdir");
    println!("veneer load bench ({} cores)", cores());
    println!();
    raw_sqlite(dir.path());
    println!();
    http_submits(dir.path());
    println!();
    cancel_latency(dir.path());
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

fn raw_sqlite(dir: &std::path::Path) {
    const N: usize = 20_000;
    let path = dir.join("raw.db");
    let conn = rusqlite::Connection::open(&path).expect("open");
    conn.busy_timeout(Duration::from_secs(10)).expect("pragma");
    conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
        .expect("wal");
    conn.pragma_update(None, "synchronous", "NORMAL")
        .expect("pragma");
    conn.execute_batch(
        "CREATE TABLE t (id TEXT PRIMARY KEY, org_id TEXT NOT NULL, status TEXT NOT NULL, \
         inputs TEXT NOT NULL, created_at TEXT NOT NULL)",
    )
    .expect("table");
    let started = Instant::now();
    for _ in 0..N {
        conn.execute_batch("BEGIN IMMEDIATE").expect("begin");
        conn.execute(
            "INSERT INTO t VALUES (?1, 'org', 'pending', '{\"variant_id\":\"x\"}', ?2)",
            [new_id(), now()],
        )
        .expect("insert");
        conn.execute_batch("COMMIT").expect("commit");
    }
    let raw = N as f64 / started.elapsed().as_secs_f64();
    println!("raw SQLite, one-row INSERT per transaction (WAL, synchronous=NORMAL): {raw:.0} /s");

    // The store's whole submit transaction (variant and balance read, job insert, ledger
    // debit with its trigger), through the one writer, without HTTP.
    let db = Db::open(dir.join("store.db"), 4).expect("db");
    let (org_id, variant_id) = db
        .write(|tx| {
            let org = accounts::create_org(tx, "bench")?;
            accounts::grant(tx, &org.id, Bucket::Subscription, 1_000_000)?;
            let v = VariantRow {
                id: new_id(),
                org_id: org.id.clone(),
                name: "v".into(),
                vh: VH.into(),
                vl: VL.into(),
                vl_chain_type: "kappa".into(),
                created_at: now(),
            };
            variants::insert(tx, &v)?;
            Ok::<_, StoreError>((org.id, v.id))
        })
        .expect("setup");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let db = Arc::new(db);
    let n = 5_000;
    let started = Instant::now();
    runtime.block_on(async {
        for _ in 0..n {
            submit::submit_humanization(
                &db,
                &org_id,
                NewHumanization {
                    variant_id: variant_id.clone(),
                },
                None,
                |job| StoredResponse {
                    status: 202,
                    body: job.id.clone(),
                    location: None,
                },
            )
            .await
            .expect("submit");
        }
    });
    let store = n as f64 / started.elapsed().as_secs_f64();
    println!("store submit transaction, no HTTP, sequential: {store:.0} /s");
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
    let db = dir.join(name);
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
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
        db,
    }
}

fn field<'a>(json: &'a str, name: &str) -> &'a str {
    let needle = format!("\"{name}\":\"");
    json.find(&needle)
        .map(|i| &json[i + needle.len()..])
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

fn http_submits(dir: &std::path::Path) {
    let server = serve(dir, "http.db", &["--paused"]);
    let mut c = Client::connect(&server.addr);
    let body = format!("{{\"name\":\"v\",\"vh\":\"{VH}\",\"vl\":\"{VL}\"}}");
    let (status, variant) = c.send("POST", "/v1/variants", &server.key, &body);
    assert_eq!(status, 201);
    let variant_id = field(&variant, "id").to_string();
    for (label, resume) in [
        ("queue paused (submit path only)", false),
        ("queue running (submits + runner share the writer)", true),
    ] {
        if resume {
            let out = Command::new(BIN)
                .arg("--db")
                .arg(&server.db)
                .args(["queue", "resume"])
                .output()
                .expect("resume");
            assert!(out.status.success());
            std::thread::sleep(Duration::from_millis(800));
        }
        let started = Instant::now();
        let threads: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (addr, key) = (server.addr.clone(), server.key.clone());
                let body = format!("{{\"variant_id\":\"{variant_id}\"}}");
                std::thread::spawn(move || {
                    let mut c = Client::connect(&addr);
                    let mut latencies = Vec::with_capacity(PER_CLIENT);
                    let phase = Instant::now();
                    for _ in 0..PER_CLIENT {
                        if phase.elapsed() > PHASE_LIMIT {
                            break;
                        }
                        let t = Instant::now();
                        let (status, text) = c.send("POST", "/v1/humanizations", &key, &body);
                        assert_eq!(status, 202, "{text}");
                        latencies.push(t.elapsed());
                    }
                    latencies
                })
            })
            .collect();
        let mut all: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().expect("client"))
            .collect();
        let elapsed = started.elapsed();
        all.sort();
        println!(
            "HTTP submit, {CLIENTS} clients, {label}: {} requests in {:.2} s = {:.0} /s; p50 {}, p99 {}, max {}",
            all.len(),
            elapsed.as_secs_f64(),
            all.len() as f64 / elapsed.as_secs_f64(),
            ms(percentile(&all, 0.50)),
            ms(percentile(&all, 0.99)),
            ms(percentile(&all, 1.0)),
        );
    }
    // How fast the runner drains what was submitted (bounded wait).
    let started = Instant::now();
    let total = 2 * CLIENTS * PER_CLIENT;
    loop {
        let (_, text) = c.send("GET", "/v1/jobs?status=pending&limit=1", &server.key, "");
        let (_, running) = c.send("GET", "/v1/jobs?status=running&limit=1", &server.key, "");
        if text.contains("\"data\":[]") && running.contains("\"data\":[]") {
            break;
        }
        if started.elapsed() > Duration::from_secs(120) {
            println!("runner: still draining after 120 s");
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    println!(
        "runner drained the backlog (up to {total} jobs, all strategies) {:.2} s after the last submit",
        started.elapsed().as_secs_f64()
    );
}

fn cancel_latency(dir: &std::path::Path) {
    // A stage delay keeps each job running long enough to be caught mid-pipeline; the engine
    // itself takes milliseconds per strategy.
    let server = serve(dir, "cancel.db", &["--stage-delay-ms", "300"]);
    let mut c = Client::connect(&server.addr);
    let body = format!("{{\"name\":\"v\",\"vh\":\"{VH}\",\"vl\":\"{VL}\"}}");
    let (_, variant) = c.send("POST", "/v1/variants", &server.key, &body);
    let variant_id = field(&variant, "id").to_string();
    let mut sync = Vec::new();
    let mut polled = Vec::new();
    for i in 0..20 {
        let (status, job) = c.send(
            "POST",
            "/v1/humanizations",
            &server.key,
            &format!("{{\"variant_id\":\"{variant_id}\"}}"),
        );
        assert_eq!(status, 202);
        let id = field(&job, "id").to_string();
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
    println!(
        "cancel of a running job, POST /v1/humanizations/{{id}}/cancel until it answers canceled: n={} p50 {}, max {}",
        sync.len(),
        ms(percentile(&sync, 0.5)),
        ms(percentile(&sync, 1.0))
    );
    println!(
        "cancel of a running job, POST /v1/jobs/{{id}}/cancel (202) until GET shows canceled: n={} p50 {}, max {}",
        polled.len(),
        ms(percentile(&polled, 0.5)),
        ms(percentile(&polled, 1.0))
    );
}
