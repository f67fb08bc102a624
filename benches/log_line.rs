//! The cost of one request's log line, as `serve` writes it (`cli::log`'s fields and
//! timestamp inside `tracing-subscriber`'s `Full` format) against the library's own field and
//! time formatting, both into a sink, on one core.
//!
//!   cargo bench --bench log_line

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn request_line() {
    let peer: std::net::SocketAddr = ([127, 0, 0, 1], 50312).into();
    let path = String::from("/v1/humanizations/01a251c4-80cb-74dd-af31-1bee4672a2ac");
    tracing::info!(
        request_id = black_box("req_01a251cbe5427224929279b864c770a5"),
        method = "GET",
        route = "/v1/humanizations/{id}",
        path,
        status = black_box(200u16),
        latency_ms = black_box(0.1234f64),
        peer = %peer,
        "request"
    );
}

fn log_line(c: &mut Criterion) {
    let builder = || {
        tracing_subscriber::fmt()
            .with_writer(std::io::sink)
            .with_target(false)
            .with_ansi(false)
    };
    {
        let _library = tracing::subscriber::set_default(builder().finish());
        c.bench_function("request log line, library fields and time", |b| {
            b.iter(request_line)
        });
    }
    let _ours = tracing::subscriber::set_default(
        builder()
            .fmt_fields(veneer::cli::log::Fields)
            .with_timer(veneer::cli::log::Utc)
            .finish(),
    );
    c.bench_function("request log line, serve's fields and time", |b| {
        b.iter(request_line)
    });
}

criterion_group!(benches, log_line);
criterion_main!(benches);
