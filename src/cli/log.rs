//! Where `serve`'s log lines go: stderr, and on an API thread by way of a buffer of that
//! thread's own. A line logged there waits until the thread's runtime is about to go idle (its
//! park hook, [`write_held`]) or the buffer passes [`HELD_BYTES`], so an idle API thread writes
//! each line at once, as before, and a busy one writes the lines of many requests in one
//! `write(2)` instead of one each (a sixth of a GET's server CPU was that system call).
//! Other threads (the runner, the writer, start-up) write each line straight to stderr.

use std::cell::RefCell;
use std::io::{self, Write};

/// Past this many bytes held, the thread writes them out without waiting to go idle.
const HELD_BYTES: usize = 64 * 1024;

thread_local! {
    /// The lines this thread holds back, when it holds any ([`hold_on_this_thread`]).
    static HELD: RefCell<Option<Held>> = const { RefCell::new(None) };
}

/// Lines held back; whatever is left is written out when the thread ends, however it ends.
struct Held(Vec<u8>);

impl Held {
    /// Adds a line; true once the lines held have reached [`HELD_BYTES`].
    fn add(&mut self, line: &[u8]) -> bool {
        self.0.extend_from_slice(line);
        self.0.len() >= HELD_BYTES
    }

    fn write_out(&mut self) {
        if !self.0.is_empty() {
            // Nowhere to report a failed log write to: the lines are dropped, as a failed
            // write to stderr drops them anyway.
            let _ = io::stderr().write_all(&self.0);
            self.0.clear();
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        self.write_out();
    }
}

/// The writer `tracing_subscriber::fmt` is given: one [`Line`] per event.
pub struct Stderr;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Stderr {
    type Writer = Line;

    fn make_writer(&'a self) -> Line {
        Line
    }
}

/// One formatted event, held on an API thread and written straight out elsewhere.
pub struct Line;

impl Write for Line {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let held = HELD.with(|held| {
            let mut held = held.borrow_mut();
            let held = held.as_mut()?;
            if held.add(buf) {
                held.write_out();
            }
            Some(())
        });
        if held.is_none() {
            io::stderr().write_all(buf)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// From now on this thread holds its log lines until [`write_held`] (or its end).
pub fn hold_on_this_thread() {
    HELD.with(|held| *held.borrow_mut() = Some(Held(Vec::with_capacity(HELD_BYTES))));
}

/// Writes out the lines this thread holds, in the order they were logged.
pub fn write_held() {
    HELD.with(|held| {
        if let Some(held) = held.borrow_mut().as_mut() {
            held.write_out();
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn held() -> Vec<u8> {
        HELD.with(|held| {
            held.borrow()
                .as_ref()
                .map(|h| h.0.clone())
                .unwrap_or_default()
        })
    }

    #[test]
    fn a_holding_thread_keeps_its_lines_in_order_until_written_out() {
        std::thread::spawn(|| {
            hold_on_this_thread();
            Line.write_all(b"one\n").expect("held");
            Line.write_all(b"two\n").expect("held");
            assert_eq!(held(), b"one\ntwo\n");
            // (Written out below to this test's stderr: two short lines.)
            write_held();
            assert!(held().is_empty());
        })
        .join()
        .expect("the thread's checks");
        // Another thread holds nothing.
        assert!(HELD.with(|held| held.borrow().is_none()));
    }

    #[test]
    fn held_lines_are_due_once_they_reach_the_bound() {
        let mut held = Held(Vec::new());
        assert!(!held.add(&vec![b'x'; HELD_BYTES - 1]));
        assert!(held.add(b"\n"));
        // Emptied here rather than written to the test's stderr when dropped.
        held.0.clear();
    }
}
