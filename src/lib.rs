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
