//! Where `serve`'s log lines go: stderr, and on an API thread by way of a buffer of that
//! thread's own. A line logged there waits until the thread's runtime is about to go idle (its
//! park hook, [`write_held`]) or the buffer passes [`HELD_BYTES`], so an idle API thread writes
//! each line at once, as before, and a busy one writes the lines of many requests in one
//! `write(2)` instead of one each (a sixth of a GET's server CPU was that system call).
//! Other threads (the runner, the writer, start-up) write each line straight to stderr.
//!
//! Each line is `tracing-subscriber`'s own `Full` format; only two of its parts are written
//! here, to the byte what the library writes (see the tests), at a fraction of its cost: the
//! fields without colours ([`Fields`]: the library's formatting goes through `core::fmt` and
//! an ANSI styler three times per field) and the timestamp ([`Utc`]: the date and time of day
//! are worked out once a second, per thread). A tenth of a GET's server CPU was its log line.

use std::cell::{Cell, RefCell};
use std::fmt;
use std::io::{self, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::fmt::format::{DefaultFields, DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;

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

/// An event's (or span's) fields as `tracing-subscriber`'s `DefaultFields` writes them —
/// `name=value` separated by spaces, text values quoted and escaped as Rust's `{:?}` does, the
/// message bare — with the common values (text, integers, booleans, floats) written straight
/// out. With colours on, and for a message or an error, the library's own visitor writes them.
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        if writer.has_ansi_escapes() {
            return DefaultFields::new().format_fields(writer, fields);
        }
        let mut visitor = Plain {
            writer,
            is_empty: true,
            result: Ok(()),
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// [`Fields`]' visitor, for a writer without colours.
struct Plain<'w> {
    writer: Writer<'w>,
    is_empty: bool,
    result: fmt::Result,
}

impl Plain<'_> {
    /// Starts a field other than the message: its separating space, name and `=`. False when
    /// the field is not written at all (a `log.` field carries a `log` record's metadata,
    /// which the library leaves out) or writing has already failed.
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return false;
        }
        let name = name.strip_prefix("r#").unwrap_or(name);
        let pad = if std::mem::take(&mut self.is_empty) {
            ""
        } else {
            " "
        };
        self.result = self
            .writer
            .write_str(pad)
            .and_then(|_| self.writer.write_str(name))
            .and_then(|_| self.writer.write_str("="));
        self.result.is_ok()
    }

    /// The field written by the library's visitor (the message, an error): it pads and names
    /// it, skips a `log.` field and sanitizes what it must, as for any other line.
    fn by_library(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() || field.name().starts_with("log.") {
            return;
        }
        let mut visitor = DefaultVisitor::new(self.writer.by_ref(), self.is_empty);
        record(&mut visitor);
        self.result = visitor.finish();
        self.is_empty = false;
    }

    /// A value whose `{:?}` is what the line shows.
    fn debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            return self.by_library(field, |v| v.record_debug(field, value));
        }
        if self.start(field) {
            self.result = write!(self.writer, "{value:?}");
        }
    }
}

impl Visit for Plain<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            return self.by_library(field, |v| v.record_str(field, value));
        }
        if !self.start(field) {
            return;
        }
        // Printable ASCII other than `"` and a backslash is its own `{:?}`; anything else is escaped
        // by `str`'s `Debug`, as the library does.
        let plain = value
            .bytes()
            .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\');
        self.result = if plain {
            self.writer
                .write_char('"')
                .and_then(|_| self.writer.write_str(value))
                .and_then(|_| self.writer.write_char('"'))
        } else {
            write!(self.writer, "{value:?}")
        };
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if field.name() == "message" {
            return self.debug(field, &value);
        }
        if self.start(field) {
            let mut digits = [0u8; 20];
            self.result = self.writer.write_str(decimal(value, &mut digits));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if field.name() == "message" {
            return self.debug(field, &value);
        }
        if self.start(field) {
            let mut digits = [0u8; 20];
            let magnitude = decimal(value.unsigned_abs(), &mut digits);
            let sign = if value < 0 { "-" } else { "" };
            self.result = self
                .writer
                .write_str(sign)
                .and_then(|_| self.writer.write_str(magnitude));
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if field.name() == "message" {
            return self.debug(field, &value);
        }
        if self.start(field) {
            self.result = self.writer.write_str(if value { "true" } else { "false" });
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.by_library(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.debug(field, value);
    }
}

/// `value` in decimal, written into the end of `digits`.
fn decimal(mut value: u64, digits: &mut [u8; 20]) -> &str {
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    // Only ASCII digits were written.
    std::str::from_utf8(&digits[at..]).unwrap_or_default()
}

/// The library's `SystemTime` timestamp (`2026-12-07T18:20:35.123456Z`, UTC, microseconds)
/// with its date and time of day worked out once a second on each thread.
pub struct Utc;

thread_local! {
    /// The second last written on this thread, and its `YYYY-MM-DDTHH:MM:SS`.
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

impl FormatTime for Utc {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let Ok(now) = SystemTime::now().duration_since(UNIX_EPOCH) else {
            // A clock before 1970: the library's own formatting.
            return tracing_subscriber::fmt::time::SystemTime.format_time(w);
        };
        let second = now.as_secs();
        let (cached, mut text) = SECOND.get();
        if cached != second {
            match date_and_time(second) {
                Some(t) => text = t,
                None => return tracing_subscriber::fmt::time::SystemTime.format_time(w),
            }
            SECOND.set((second, text));
        }
        let mut micros = [0u8; 20];
        let micros = decimal(u64::from(now.subsec_micros()), &mut micros);
        // `text` is ASCII by construction.
        w.write_str(std::str::from_utf8(&text).unwrap_or_default())?;
        w.write_char('.')?;
        for _ in micros.len()..6 {
            w.write_char('0')?;
        }
        w.write_str(micros)?;
        w.write_char('Z')
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a second since 1970, for the years the library writes with
/// four digits (to 9999).
fn date_and_time(second: u64) -> Option<[u8; 19]> {
    let at = jiff::Timestamp::from_second(i64::try_from(second).ok()?).ok()?;
    let civil = at.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    if civil.year() > 9999 {
        return None;
    }
    let text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        civil.year(),
        civil.month(),
        civil.day(),
        civil.hour(),
        civil.minute(),
        civil.second()
    );
    text.as_bytes().try_into().ok()
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

    /// What a subscriber wrote, for comparing two formatters' lines.
    #[derive(Clone, Default)]
    struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

    impl Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().expect("capture").extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
        type Writer = Captured;

        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// The lines `serve`'s format (without its timestamp) writes for `emit`'s events, its
    /// fields formatted by `fields`.
    fn lines<N>(fields: N, ansi: bool, emit: fn()) -> String
    where
        N: for<'w> FormatFields<'w> + Send + Sync + 'static,
    {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_target(false)
            .with_ansi(ansi)
            .without_time()
            .fmt_fields(fields)
            .with_max_level(tracing::Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        let bytes = out.0.lock().expect("capture").clone();
        String::from_utf8(bytes).expect("utf-8 lines")
    }

    #[derive(Debug)]
    struct Cause;

    impl fmt::Display for Cause {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("disk \"full\"\x1b[0m")
        }
    }

    impl std::error::Error for Cause {}

    #[derive(Debug)]
    struct Failed(Cause);

    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("write failed")
        }
    }

    impl std::error::Error for Failed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    /// Events of every shape a field can take; the number of lines their 16 events write (a
    /// `%` value is written as it displays, so its newline starts a 17th).
    const EVENTS: usize = 17;

    fn events() {
        let peer: std::net::SocketAddr = ([127, 0, 0, 1], 50312).into();
        let path = String::from("/v1/humanizations/01a251c4-80cb-74dd-af31-1bee4672a2ac");
        tracing::info!(
            request_id = "req_01a251cbe5427224929279b864c770a5",
            method = "GET",
            route = "/v1/humanizations/{id}",
            path,
            status = 200u16,
            latency_ms = 0.1234f64,
            peer = %peer,
            "request"
        );
        tracing::warn!(
            text = "quote \" backslash \\ newline \n tab \t esc \x1b bell \x07 del \x7f",
            "odd text"
        );
        tracing::info!(
            unicode = "café 😀 e\u{301} zero-width\u{200b} next-line\u{85}",
            empty = "",
            "unicode"
        );
        tracing::info!(
            r#type = "kind",
            backslash = "C:\\lab\\runs",
            quoted = "say \"hi\"",
            "a raw name; printable text with a character to escape"
        );
        tracing::info!(
            n = -42i64,
            min = i64::MIN,
            zero = 0u64,
            big = u64::MAX,
            yes = true,
            no = false,
            wide = 1u128 << 100,
            negative_wide = -5i128,
            "numbers"
        );
        tracing::info!(
            tenth = 0.1f64,
            huge = 1e21f64,
            nan = f64::NAN,
            negative_zero = -0.0f64,
            infinite = f64::INFINITY,
            whole = 3.0f64,
            "floats"
        );
        tracing::info!(
            display = %"has \"quotes\"\nand a newline",
            debug = ?vec!["a", "b\"c"],
            "display and debug"
        );
        let failed = Failed(Cause);
        tracing::error!(
            error = &failed as &(dyn std::error::Error + 'static),
            "an error with its cause"
        );
        let cause = Cause;
        tracing::error!(error = &cause as &(dyn std::error::Error + 'static));
        tracing::info!("a message with an escape \x1b[31m and a quote \"");
        tracing::info!("only a message");
        tracing::info!(alone = 1u64, later = "x");
        tracing::info!(message = "an explicit message", after = 2u64);
        tracing::info!(message = 5u64, after = true);
        tracing::info!(log.target = "from_log", kept = 1u64, "a log field");
        let span = tracing::info_span!("outer", id = "a\"b", n = 3u64);
        let _entered = span.enter();
        tracing::debug!(inside = true, "formatted {} in a span", "arg");
    }

    #[test]
    fn fields_are_written_as_the_library_writes_them() {
        for ansi in [false, true] {
            let ours = lines(Fields, ansi, events);
            let library = lines(DefaultFields::new(), ansi, events);
            assert_eq!(ours.lines().count(), EVENTS, "{ours}");
            assert_eq!(ours, library, "ansi: {ansi}");
        }
        // Read once by eye, as the library writes it.
        let plain = lines(Fields, false, events);
        let first = plain.lines().next().expect("a line");
        assert_eq!(
            first,
            " INFO request request_id=\"req_01a251cbe5427224929279b864c770a5\" method=\"GET\" \
             route=\"/v1/humanizations/{id}\" \
             path=\"/v1/humanizations/01a251c4-80cb-74dd-af31-1bee4672a2ac\" status=200 \
             latency_ms=0.1234 peer=127.0.0.1:50312"
        );
    }

    #[test]
    fn the_second_is_written_as_python_datetime_writes_it() {
        // datetime.fromtimestamp(s, timezone.utc).strftime('%Y-%m-%dT%H:%M:%S')
        for (second, text) in [
            (0, "1970-01-01T00:00:00"),
            (951_782_400, "2000-02-29T00:00:00"),
            (1_000_000_000, "2001-09-09T01:46:40"),
            (1_796_601_599, "2026-12-06T23:59:59"),
            (253_402_207_200, "9999-12-30T22:00:00"),
        ] {
            let written = date_and_time(second).expect("within four-digit years");
            assert_eq!(std::str::from_utf8(&written), Ok(text));
        }
        // Past the last second `jiff` holds (year 10000 among them) the library writes it.
        assert_eq!(date_and_time(253_402_300_799), None);
        assert_eq!(date_and_time(253_402_300_800), None);
    }

    #[test]
    fn a_timestamp_lies_between_the_librarys_before_and_after_it() {
        let stamp = |timer: &dyn FormatTime| {
            let mut text = String::new();
            timer
                .format_time(&mut Writer::new(&mut text))
                .expect("time");
            text
        };
        for _ in 0..1000 {
            let before = stamp(&tracing_subscriber::fmt::time::SystemTime);
            let ours = stamp(&Utc);
            let after = stamp(&tracing_subscriber::fmt::time::SystemTime);
            // One fixed width, so text order is time order.
            assert_eq!(ours.len(), before.len(), "{ours} / {before}");
            assert!(before <= ours && ours <= after, "{before} {ours} {after}");
        }
    }
}
