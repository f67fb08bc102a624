//! 503 `unavailable` from outside: a request that is still arriving when the server starts
//! shutting down is answered with the problem, not dropped (SPEC.md §2, §10).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::Server;

#[test]
fn a_request_arriving_during_shutdown_gets_503_unavailable() {
    let mut s = Server::start(&[]);
    // Half a request: the request line and one header, no blank line yet.
    let mut stream = TcpStream::connect(&s.addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /v1/organization HTTP/1.1\r\nHost: {}\r\n",
        s.addr
    )
    .expect("write");
    stream.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));

    let signal = Command::new("kill")
        .args(["-TERM", &s.pid().to_string()])
        .status()
        .expect("kill");
    assert!(signal.success());
    // Let the server see the signal and stop accepting; this connection is mid-request.
    std::thread::sleep(Duration::from_millis(500));
    write!(
        stream,
        "Authorization: Bearer {}\r\nConnection: close\r\n\r\n",
        s.key
    )
    .expect("write rest");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("read answer");
    let status_line = answer.lines().next().unwrap_or("");
    assert!(status_line.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
    assert!(answer.contains("\"code\":\"unavailable\""), "{answer}");

    // And the server still exits 0.
    let mut child = s.child.take().expect("running");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 30 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

/// One keep-alive connection of raw HTTP/1.1, for tests that must know which requests share a
/// connection (and so an API thread).
struct Connection {
    reader: std::io::BufReader<TcpStream>,
    writer: TcpStream,
}

impl Connection {
    fn open(addr: &str) -> Connection {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        Connection {
            reader: std::io::BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn send(&mut self, method: &str, path: &str, key: &str, extra: &str) {
        write!(
            self.writer,
            "{method} {path} HTTP/1.1\r\nHost: veneer\r\nAuthorization: Bearer {key}\r\n\
             Content-Length: 0\r\n{extra}\r\n"
        )
        .expect("write");
    }

    /// The status and body of the next answer on this connection.
    fn answer(&mut self) -> (u16, String) {
        use std::io::BufRead;
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("status line");
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {line:?}"));
        let mut length = 0;
        loop {
            line.clear();
            self.reader.read_line(&mut line).expect("header");
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().expect("length");
            }
        }
        let mut body = vec![0; length];
        self.reader.read_exact(&mut body).expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Connections are dealt out over the API threads (`--http-threads`), each staying on its
/// thread: a long poll held on one is answered by a cancel arriving on another, every other
/// open connection keeps serving meanwhile, and the server still exits 0 on SIGTERM with a
/// connection open on each thread.
#[test]
fn connections_on_different_api_threads_serve_wake_each_other_and_shut_down() {
    let mut s = Server::start(&["--http-threads", "3", "--paused"]);
    let variant = s.create_variant("lanes");
    let job = s.submit(&variant);
    assert_eq!(job.status, 202, "{}", job.text);
    let id = job.json["id"].as_str().expect("id").to_string();

    // Six connections over three threads: two on each, whichever the dealing.
    let mut connections: Vec<Connection> = (0..6).map(|_| Connection::open(&s.addr)).collect();
    let started = Instant::now();
    connections[0].send(
        "GET",
        &format!("/v1/humanizations/{id}"),
        &s.key,
        "Prefer: wait=20\r\n",
    );
    for round in 0..3 {
        for (i, c) in connections.iter_mut().enumerate().skip(1) {
            c.send("GET", "/v1/organization", &s.key, "");
            let (status, body) = c.answer();
            assert_eq!(status, 200, "connection {i}, round {round}: {body}");
            assert!(body.contains("\"object\":\"organization\""), "{body}");
        }
    }
    let canceled = s.cancel(&id);
    assert_eq!(canceled.status, 200, "{}", canceled.text);
    let (status, body) = connections[0].answer();
    assert_eq!(status, 200, "{body}");
    let waited: serde_json::Value = serde_json::from_str(&body).expect("json");
    assert_eq!(waited["status"], "canceled", "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the long poll was answered by its 20 s timeout, not by the cancel"
    );

    let status = s.terminate();
    assert!(status.success(), "{status:?}");
}
