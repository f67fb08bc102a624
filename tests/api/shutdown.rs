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
