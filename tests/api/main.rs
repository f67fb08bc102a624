//! The HTTP API from the outside, in one test crate with a module per area: each test starts
//! the real `veneer serve` on `127.0.0.1:0` with a temporary database (`common::Server`) and
//! talks HTTP to it. One crate links once; the modules share the one harness.

mod common;
#[path = "../oracle/mod.rs"]
mod oracle;
mod pg;

mod basics;
mod crash;
mod designs;
mod domains;
mod export;
mod hostile;
mod import;
mod jobs;
mod lifecycle;
mod migrate;
mod multinode;
mod openapi;
mod races;
mod shutdown;
mod stress;
mod web_app;
