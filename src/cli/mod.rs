//! The commands: offline (`veneer number`, `veneer humanize`: input files in, JSON lines out),
//! `veneer serve`, and the administrator's commands on the database (`admin`).

pub mod admin;
pub mod humanize;
pub mod log;
pub mod number;
pub mod progress;
pub mod serve;
