//! A progress bar on stderr for the offline commands' long runs: only when stderr is a terminal
//! (a pipe or a log file gets nothing) and only for more than a few hundred records.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressStyle};

/// Fewer records than this finish before a bar would help.
const MIN_RECORDS: usize = 300;

/// A bar for `total` records of `what` ("chains", "antibodies"), hidden when not wanted.
pub fn bar(total: usize, what: &str) -> ProgressBar {
    if total <= MIN_RECORDS || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(&format!(
        "{{bar:40}} {{pos}}/{{len}} {what}, {{elapsed}} elapsed, {{eta}} left"
    ))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(total as u64).with_style(style)
}
