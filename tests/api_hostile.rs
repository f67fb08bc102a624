//! Hostile clients at the HTTP layer: oversized headers, requests that stall half-way, and
//! hundreds of idle connections. None of them may crash the server or stop it answering
//! the others.

mod api_common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use api_common::Server;

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
