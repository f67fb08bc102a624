//! veneer: a self-hosted antibody humanization service in one binary.
//! See ARCHITECTURE.md for the codemap.

pub mod cli;
pub mod engine;
pub mod export;
pub mod http;
pub mod input;
pub mod runner;
pub mod service;
pub mod store;

/// Every allocation of every program built on this library — the binary, its tests and
/// benches, and (with mimalloc's `override` feature) SQLite's own C allocations — goes to
/// mimalloc instead of glibc's malloc, whose arena locks, consolidation and cross-thread frees
/// cost the single writer and the API threads tens of per cent of their time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
