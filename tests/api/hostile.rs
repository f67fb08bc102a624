//! Hostile clients at the HTTP layer: oversized headers, requests that stall half-way, and
//! hundreds of idle connections. None of them may crash the server or stop it answering
//! the others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::Server;

/// Writes `raw` on a new connection and reads whatever comes back until the server closes
/// (or `within` passes). Returns the bytes read; a reset counts as a close.
fn raw_exchange(addr: &str, raw: &[u8], within: Duration) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(within)).expect("timeout");
    // The server may answer and close before it has read everything; that is allowed.
    let _ = stream.write_all(raw);
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    out
}

fn status_of(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|b| *b == b'\n').next()?;
    std::str::from_utf8(line)
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

fn healthz_promptly(s: &Server, within: Duration) {
    let started = Instant::now();
    let r = s.req().key(None).path("/healthz").send();
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() < within,
        "/healthz took {:?}",
        started.elapsed()
    );
}

#[test]
fn oversized_headers_are_refused_and_the_server_keeps_serving() {
    let s = Server::start(&[]);
    for size in [64 * 1024, 1024 * 1024] {
        let big = "a".repeat(size);
        let raw = format!(
            "GET /v1/organization HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\nx-big: {big}\r\n\r\n",
            s.key
        );
        let out = raw_exchange(&s.addr, raw.as_bytes(), Duration::from_secs(10));
        match status_of(&out) {
            // Refused (431) or the connection closed without an answer: both are fine.
            None => {}
            Some(status) => assert!((400..500).contains(&status), "{size}: {status}"),
        }
        healthz_promptly(&s, Duration::from_secs(2));
    }
    // Many small headers: over hyper's count limit, also refused.
    let many: String = (0..500).map(|i| format!("x-h{i}: v\r\n")).collect();
    let raw = format!("GET /healthz HTTP/1.1\r\nhost: x\r\n{many}\r\n");
    let out = raw_exchange(&s.addr, raw.as_bytes(), Duration::from_secs(10));
    if let Some(status) = status_of(&out) {
        assert!((400..500).contains(&status), "many headers: {status}");
    }
    healthz_promptly(&s, Duration::from_secs(2));
    // A header just under the limit still works.
    let ok = "b".repeat(8 * 1024);
    let r = s.req().path("/v1/organization").header("x-ok", &ok).send();
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn stalled_clients_do_not_block_others() {
    let s = Server::start(&[]);
    // Half a request head, half a body, and a connection that never says anything.
    let mut head = TcpStream::connect(&s.addr).expect("connect");
    head.write_all(b"POST /v1/variants HTTP/1.1\r\nhost: x\r\ncontent-ty")
        .expect("write");
    let mut body = TcpStream::connect(&s.addr).expect("connect");
    body.write_all(
        format!(
            "POST /v1/variants HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\
             content-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"name\":",
            s.key
        )
        .as_bytes(),
    )
    .expect("write");
    let silent = TcpStream::connect(&s.addr).expect("connect");
    for _ in 0..5 {
        healthz_promptly(&s, Duration::from_secs(2));
        let r = s.get("/v1/organization");
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let variant = s.create_variant("while stalled");
    assert!(!variant.is_empty());
    drop((head, body, silent));
}

#[test]
fn hundreds_of_idle_connections_do_not_stop_the_server_answering() {
    let s = Server::start(&[]);
    let mut idle: Vec<TcpStream> = (0..300)
        .map(|_| TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    // Some of them with a finished keep-alive request, then idle; the rest never speak.
    for c in idle.iter_mut().take(50) {
        c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .expect("write");
    }
    for _ in 0..10 {
        healthz_promptly(&s, Duration::from_secs(1));
    }
    let r = s.get("/v1/organization");
    assert_eq!(r.status, 200, "{}", r.text);
    drop(idle);
    healthz_promptly(&s, Duration::from_secs(1));
}

/// The server's resident memory in KiB (Linux `/proc`), or `None` elsewhere.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// How many files this process may open (`/proc/self/limits`), if known.
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

#[test]
fn thousands_of_idle_connections_cost_bounded_memory() {
    let s = Server::start(&[]);
    // Both ends of each connection live on this machine: stay well inside the fd limit.
    let n = open_files_limit().map_or(2000, |l| (l.saturating_sub(200) / 2).min(2000)) as usize;
    healthz_promptly(&s, Duration::from_secs(1));
    let before = rss_kib(s.pid());
    let mut idle: Vec<TcpStream> = Vec::with_capacity(n);
    for _ in 0..n {
        idle.push(TcpStream::connect(&s.addr).expect("connect"));
    }
    // A partial head on every tenth, so some connections hold a read buffer too.
    for c in idle.iter_mut().step_by(10) {
        let _ = c.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-pad: ");
    }
    for _ in 0..5 {
        healthz_promptly(&s, Duration::from_secs(1));
    }
    if let (Some(before), Some(after)) = (before, rss_kib(s.pid())) {
        let grown = after.saturating_sub(before);
        eprintln!(
            "{n} idle connections: RSS {before} KiB -> {after} KiB (+{} B per connection)",
            grown * 1024 / n as u64
        );
        // Each idle connection is a task and a small read buffer, far below 64 KiB.
        assert!(
            grown < 64 * n as u64,
            "{grown} KiB for {n} idle connections"
        );
    }
    drop(idle);
    healthz_promptly(&s, Duration::from_secs(1));
}
