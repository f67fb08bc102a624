//! Shared by the API test modules: start the real `veneer` binary on a free port with a fresh
//! database, and talk HTTP/1.1 to it with a small blocking client (one connection per
//! request, `Connection: close`), so the tests exercise exactly what a user's curl does.
//!
//! The backend comes from `VENEER_TEST_BACKEND`: `sqlite` (the default; a file in the test's
//! temporary directory) or `postgres` (a new database per server on one throwaway cluster,
//! see `pg`), so the same suite runs on both.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BIN: &str = env!("CARGO_BIN_EXE_veneer");

pub const VH: &str = "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS";
pub const VL: &str = "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK";

/// Which database the suite runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub fn backend() -> Backend {
    match std::env::var("VENEER_TEST_BACKEND").as_deref() {
        Ok("postgres") => Backend::Postgres,
        Ok("sqlite") | Err(_) => Backend::Sqlite,
        Ok(other) => panic!("VENEER_TEST_BACKEND={other:?}: use sqlite or postgres"),
    }
}

/// A fresh database on the suite's backend: a file path, or a new PostgreSQL database's URL.
pub fn fresh_db(dir: &Path) -> String {
    match backend() {
        Backend::Sqlite => dir.join("x.db").to_string_lossy().into_owned(),
        Backend::Postgres => crate::pg::cluster().create_database(),
    }
}

pub struct Server {
    pub dir: tempfile::TempDir,
    /// The `--db` value: a SQLite file or a PostgreSQL URL.
    db: String,
    pub child: Option<Child>,
    pub addr: String,
    /// The bootstrap key (printed on the first start only).
    pub key: String,
    args: Vec<String>,
    listen: String,
}

impl Server {
    pub fn db(&self) -> String {
        self.db.clone()
    }

    /// The SQLite file, for tests about the file itself; None on PostgreSQL.
    pub fn db_file(&self) -> Option<PathBuf> {
        (backend() == Backend::Sqlite).then(|| PathBuf::from(&self.db))
    }

    /// Runs one statement straight on the database (`sqlite` or `postgres` dialect), as a
    /// corrupted row or another process would write it; returns the rows it changed.
    pub fn execute_sql(&self, sqlite: &str, postgres: &str) -> usize {
        match backend() {
            Backend::Sqlite => {
                let conn = rusqlite::Connection::open(&self.db).expect("open");
                conn.busy_timeout(Duration::from_secs(10)).expect("timeout");
                conn.execute(sqlite, []).expect("statement")
            }
            Backend::Postgres => crate::pg::execute(&self.db, postgres),
        }
    }

    /// Everything the database holds, as bytes: the SQLite file, or a data dump.
    pub fn raw_contents(&self) -> Vec<u8> {
        match backend() {
            Backend::Sqlite => std::fs::read(&self.db).expect("db"),
            Backend::Postgres => crate::pg::dump(&self.db),
        }
    }

    /// Everything the server logged to stderr so far (all starts appended).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
    }

    /// Starts a server on a new database with extra `serve` flags.
    pub fn start(args: &[&str]) -> Server {
        Server::start_listening("127.0.0.1:0", args)
    }

    /// The same on a fixed address, so a restart (`spawn` again) comes back where clients
    /// left it.
    pub fn start_listening(listen: &str, args: &[&str]) -> Server {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Server::start_on(dir, None, listen, args);
        assert!(
            !server.key.is_empty(),
            "the first start on a new database prints an api key"
        );
        server
    }

    /// A server on an existing database (`db`, or a fresh one): several nodes of one
    /// PostgreSQL database, or a restart elsewhere.
    pub fn start_on(
        dir: tempfile::TempDir,
        db: Option<String>,
        listen: &str,
        args: &[&str],
    ) -> Server {
        let db = db.unwrap_or_else(|| fresh_db(dir.path()));
        let mut server = Server {
            dir,
            db,
            child: None,
            addr: String::new(),
            key: String::new(),
            args: args.iter().map(|s| s.to_string()).collect(),
            listen: listen.to_string(),
        };
        let key = server.spawn();
        server.key = key.unwrap_or_default();
        server
    }

    /// Starts the process on the existing database; returns the bootstrap key if printed.
    pub fn spawn(&mut self) -> Option<String> {
        let mut child = Command::new(BIN)
            .arg("serve")
            .args(["--listen", &self.listen, "--db"])
            .arg(self.db())
            .args(&self.args)
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("serve.log"))
                    .expect("log file"),
            )
            .spawn()
            .expect("spawn veneer serve");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut key = None;
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx
                .recv_timeout(left)
                .expect("server printed its address in time");
            if let Some(k) = line.strip_prefix("api key: ") {
                key = Some(k.to_string());
            } else if let Some(url) = line.strip_prefix("listening on http://") {
                self.addr = url.to_string();
                break;
            }
        }
        self.child = Some(child);
        key
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let mut child = self.child.take().expect("running");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("the server did not exit within 30 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn req(&self) -> Req<'_> {
        Req {
            server: self,
            method: "GET".into(),
            path: "/".into(),
            headers: Vec::new(),
            body: None,
            key: Some(self.key.clone()),
        }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.req().method("GET").path(path).send()
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.req().method("POST").path(path).json(body).send()
    }

    /// Runs an admin command on this server's database; returns (success, stdout).
    pub fn admin(&self, args: &[&str]) -> (bool, String) {
        admin(&self.db(), args)
    }

    /// The organization's credit balance.
    pub fn balance(&self) -> i64 {
        self.get("/v1/organization").json["credit_balance"]
            .as_i64()
            .expect("balance")
    }

    pub fn create_variant(&self, name: &str) -> String {
        let r = self.post(
            "/v1/variants",
            &serde_json::json!({ "name": name, "vh": VH, "vl": VL }),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        r.json["id"].as_str().expect("id").to_string()
    }

    /// A new organization with `credits` and a key with all scopes (or `scopes`).
    pub fn new_org(&self, name: &str, credits: i64, scopes: Option<&str>) -> (String, String) {
        let credits = credits.to_string();
        let (ok, org) = self.admin(&["orgs", "create", name, "--credits", &credits]);
        assert!(ok);
        let org = org.trim().to_string();
        let mut args = vec!["keys", "create", "--org", &org];
        if let Some(s) = scopes {
            args.extend(["--scopes", s]);
        }
        let (ok, key) = self.admin(&args);
        assert!(ok);
        (org, key.trim().to_string())
    }

    /// Submits a humanization of the variant.
    pub fn submit(&self, variant: &str) -> Resp {
        self.post(
            "/v1/humanizations",
            &serde_json::json!({ "variant_id": variant }),
        )
    }

    /// `POST /v1/humanizations/{id}/cancel`.
    pub fn cancel(&self, id: &str) -> Resp {
        self.req()
            .method("POST")
            .path(&format!("/v1/humanizations/{id}/cancel"))
            .send()
    }

    /// A request with another organization's key, with a JSON body or none.
    pub fn as_key(&self, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
        let r = self.req().key(Some(key)).method(method).path(path);
        match body {
            Some(b) => r.json(&b).send(),
            None => r.send(),
        }
    }

    /// Polls until the job is `running` (bounded).
    pub fn wait_running(&self, id: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.get(&format!("/v1/jobs/{id}")).json["status"] != "running" {
            assert!(Instant::now() < deadline, "job {id} never ran");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Polls until the job has `status` (bounded).
    pub fn wait_status(&self, id: &str, status: &str, within: Duration) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let r = self.get(&format!("/v1/jobs/{id}"));
            if r.json["status"] == status {
                return r.json;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} not {status} in time: {}",
                r.text
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every item of a cursor-paginated list, as `key` sees it, following `starting_after`.
    #[allow(dead_code)] // not every test file pages through lists
    pub fn all_pages(&self, key: &str, base: &str) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let path = match &after {
                Some(a) => format!("{base}?limit=100&starting_after={a}"),
                None => format!("{base}?limit=100"),
            };
            let page = self.as_key(key, "GET", &path, None);
            assert_eq!(page.status, 200, "{}", page.text);
            let data = page.json["data"].as_array().cloned().unwrap_or_default();
            after = data.last().map(id_of);
            all.extend(data);
            if page.json["has_more"] != true {
                return all;
            }
        }
    }

    /// A variant created with `key` (another organization's), for tests that hold several keys.
    #[allow(dead_code)] // not every test file works with several organizations
    pub fn create_variant_as(&self, key: &str) -> String {
        let r = self.as_key(
            key,
            "POST",
            "/v1/variants",
            Some(serde_json::json!({"name": "v", "vh": VH, "vl": VL})),
        );
        assert_eq!(r.status, 201, "{}", r.text);
        id_of(&r.json)
    }

    /// Every ledger entry of the bootstrap organization, following the cursor.
    pub fn ledger_all(&self) -> Vec<Value> {
        self.all_pages(&self.key, "/v1/credits/ledger")
    }

    pub fn ledger(&self) -> Vec<Value> {
        let r = self.get("/v1/credits/ledger?limit=100");
        assert_eq!(r.status, 200);
        r.json["data"].as_array().cloned().unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Rate limits generous enough that a test measures credits and races, not the token bucket.
#[allow(dead_code)] // used by the race and stress tests only
pub const FAST: [&str; 8] = [
    "--write-rate",
    "1000",
    "--write-burst",
    "1000",
    "--read-rate",
    "1000",
    "--read-burst",
    "1000",
];

/// `serve` flags with the rate limits out of the way (`FAST`), then `extra`.
pub fn fast<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    FAST.iter().copied().chain(extra.iter().copied()).collect()
}

/// The answers to concurrent submits against an organization's last `credits` credits:
/// exactly `credits` accepted, the rest `402` with the cost and a zero balance, and (read
/// through `reader`) a zero balance, a ledger summing to it with one debit per accepted job,
/// and exactly those jobs listed. Returns the accepted jobs' ids.
pub fn assert_spent_exactly(
    answers: &[Resp],
    reader: &Server,
    key: &str,
    credits: i64,
) -> Vec<String> {
    let mut accepted = Vec::new();
    for r in answers {
        match r.status {
            202 => accepted.push(id_of(&r.json)),
            402 => {
                let p = r.problem(402, "insufficient_credits");
                assert_eq!(p["credit_cost"], 1, "{}", r.text);
                assert_eq!(p["credit_balance"], 0, "{}", r.text);
            }
            other => panic!("submit answered {other}: {}", r.text),
        }
    }
    assert_eq!(
        accepted.len() as i64,
        credits,
        "exactly the balance is accepted"
    );
    let org = reader.as_key(key, "GET", "/v1/organization", None).json;
    assert_eq!(org["credit_balance"], 0, "{org}");
    let ledger = reader.all_pages(key, "/v1/credits/ledger");
    let sum: i64 = ledger.iter().filter_map(|e| e["delta"].as_i64()).sum();
    assert_eq!(sum, 0, "the ledger sums to the balance: {ledger:?}");
    let debits: Vec<&Value> = ledger.iter().filter(|e| e["reason"] == "debit").collect();
    assert_eq!(debits.len() as i64, credits);
    for id in &accepted {
        assert_eq!(
            debits.iter().filter(|e| e["job_id"] == id.as_str()).count(),
            1,
            "one debit for {id}"
        );
    }
    // The listing agrees: exactly the accepted jobs exist.
    let list = reader
        .as_key(key, "GET", "/v1/humanizations?limit=100", None)
        .json;
    assert_eq!(list["data"].as_array().map(Vec::len), Some(accepted.len()));
    accepted
}

pub fn id_of(v: &Value) -> String {
    v["id"].as_str().expect("id").to_string()
}

pub fn admin(db: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(BIN)
        .arg("--db")
        .arg(db)
        .args(args)
        .output()
        .expect("run veneer");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

pub struct Req<'a> {
    server: &'a Server,
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Option<Vec<u8>>,
    key: Option<String>,
}

impl Req<'_> {
    pub fn method(mut self, m: &str) -> Self {
        self.method = m.into();
        self
    }
    pub fn path(mut self, p: &str) -> Self {
        self.path = p.into();
        self
    }
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.into(), v.into()));
        self
    }
    pub fn key(mut self, key: Option<&str>) -> Self {
        self.key = key.map(str::to_string);
        self
    }
    pub fn json(self, v: &Value) -> Self {
        self.header("content-type", "application/json")
            .raw_body(v.to_string().into_bytes())
    }
    pub fn raw_body(mut self, b: Vec<u8>) -> Self {
        self.body = Some(b);
        self
    }

    pub fn send(self) -> Resp {
        let mut stream = TcpStream::connect(&self.server.addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(150)))
            .expect("timeout");
        let mut head = format!(
            "{} {} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\n",
            self.method, self.path, self.server.addr
        );
        if let Some(key) = &self.key {
            head.push_str(&format!("authorization: Bearer {key}\r\n"));
        }
        for (k, v) in &self.headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        let body = self.body.unwrap_or_default();
        if !body.is_empty() || self.method == "POST" {
            head.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write head");
        // The server may answer (413) before reading a large body and close; ignore that.
        let _ = stream.write_all(&body);
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        Resp::parse(&raw)
    }
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
    pub json: Value,
    /// The body as sent (for binary files).
    pub bytes: Vec<u8>,
}

impl Resp {
    fn parse(raw: &[u8]) -> Resp {
        let split = raw
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a complete response head");
        let head = String::from_utf8_lossy(&raw[..split]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .expect("status line");
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let text = String::from_utf8_lossy(&raw[split + 4..]).into_owned();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp {
            status,
            headers,
            text,
            json,
            bytes: raw[split + 4..].to_vec(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Asserts a problem+json response with this status and code.
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.text
        );
        assert_eq!(self.json["code"], code, "{}", self.text);
        assert_eq!(self.json["status"], status, "{}", self.text);
        assert_eq!(
            self.json["request_id"].as_str(),
            self.header("x-request-id"),
            "problem repeats the request id"
        );
        assert_eq!(self.json["type"], format!("/problems/{code}"));
        assert!(self.json["title"].is_string() && self.json["detail"].is_string());
        &self.json
    }
}
