//! Guest stdout and stderr: split into lines and handed to the node's sink with a label naming
//! the task that wrote them, as Ray prefixes worker output with `(f pid=...)`.
//!
//! Everything here is bounded, because a guest chooses what it writes: a line longer than
//! [`MAX_LINE`] is handed on in pieces of that size (cut on a character boundary), each write
//! scans only the bytes it brought, a job's lines beyond its [`OutputRate`] are dropped and
//! counted ([`RateLimited`]), and the process's stdout is written by a thread of its own behind
//! a bounded queue ([`StdioSink`]), so a terminal nobody reads blocks no guest and no other
//! job. What reaches a terminal is escaped (`wasmray_core::terminal_safe`).
//!
//! What a sink does with a line (print it, capture it for a test, ship it to a driver
//! elsewhere) is not decided here.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use wasmray_core::terminal_safe;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// The longest line handed to a sink; longer ones are handed on in pieces of this size.
pub const MAX_LINE: usize = 64 * 1024;

/// Lines waiting for [`StdioSink`]'s writer thread; past this, lines are dropped and counted.
const STDIO_QUEUE: usize = 16 * 1024;

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where guest output lines go.
pub trait OutputSink: Send + Sync + 'static {
    /// One complete line (without its newline, at most [`MAX_LINE`] bytes from a guest);
    /// `label` is `None` for the driver.
    fn line(&self, label: Option<&str>, stream: Stream, line: &str);

    /// Returns once every line handed over so far has been written out.
    fn flush(&self) {}
}

/// Prints lines to the process's stdout and stderr, task lines prefixed with `(label) `, label
/// and line escaped. A thread of its own writes them, behind a queue of bounded length: a
/// stdout nobody reads makes lines drop (with a count printed once it moves again), never a
/// guest or the node wait.
pub struct StdioSink {
    queue: SyncSender<Printed>,
    dropped: Arc<AtomicU64>,
}

enum Printed {
    Line(Stream, String),
    Flushed(SyncSender<()>),
}

impl StdioSink {
    pub fn new() -> Self {
        let (queue, lines) = std::sync::mpsc::sync_channel(STDIO_QUEUE);
        let dropped = Arc::new(AtomicU64::new(0));
        let counted = Arc::clone(&dropped);
        // Without a writer thread lines are dropped and counted, never printed in place: a
        // guest never waits for a terminal.
        let _ = std::thread::Builder::new()
            .name("wasmray-stdio".into())
            .spawn(move || write_lines(lines, &counted));
        Self { queue, dropped }
    }
}

impl Default for StdioSink {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for StdioSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdioSink")
            .field("dropped", &self.dropped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

fn write_lines(lines: Receiver<Printed>, dropped: &AtomicU64) {
    use std::io::Write;
    for printed in lines {
        let lost = dropped.swap(0, Ordering::Relaxed);
        if lost > 0 {
            let _ = writeln!(
                std::io::stderr().lock(),
                "(wasmray) [{lost} lines of output dropped: the terminal was not read fast enough]"
            );
        }
        // A closed terminal must not take the node down; the line is dropped.
        let _ = match printed {
            Printed::Line(Stream::Stdout, text) => {
                std::io::stdout().lock().write_all(text.as_bytes())
            }
            Printed::Line(Stream::Stderr, text) => {
                std::io::stderr().lock().write_all(text.as_bytes())
            }
            Printed::Flushed(done) => {
                let _ = std::io::stdout().lock().flush();
                let _ = done.send(());
                Ok(())
            }
        };
    }
}

impl OutputSink for StdioSink {
    fn line(&self, label: Option<&str>, stream: Stream, line: &str) {
        let text = match label {
            Some(label) => format!("({}) {}\n", terminal_safe(label), terminal_safe(line)),
            None => format!("{}\n", terminal_safe(line)),
        };
        if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
            self.queue.try_send(Printed::Line(stream, text))
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn flush(&self) {
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        if self.queue.send(Printed::Flushed(done)).is_ok() {
            let _ = wait.recv();
        }
    }
}

/// How much output one job may write: `bytes_per_sec` on average, `burst` bytes at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputRate {
    pub bytes_per_sec: u64,
    pub burst: u64,
}

impl Default for OutputRate {
    /// 1 MiB/s with bursts of 8 MiB: far more than anyone reads, far less than a flood.
    fn default() -> Self {
        Self {
            bytes_per_sec: 1 << 20,
            burst: 8 << 20,
        }
    }
}

/// A job's output: lines beyond its [`OutputRate`] are dropped, and a marker saying how many
/// goes out before the next line that fits, at most once a second (and at
/// [`RateLimited::finish`]). Each line costs its length plus one. The driver's lines and its
/// tasks' lines have a bucket each, so a flooding task never silences its driver.
pub struct RateLimited {
    inner: Arc<dyn OutputSink>,
    rate: OutputRate,
    start: Instant,
    /// The driver's bucket, then the tasks'.
    state: Mutex<[Bucket; 2]>,
}

struct Bucket {
    tokens: u64,
    at: Duration,
    dropped_lines: u64,
    dropped_bytes: u64,
    last_marker: Option<Duration>,
}

impl Bucket {
    fn full(rate: OutputRate) -> Self {
        Self {
            tokens: rate.burst,
            at: Duration::ZERO,
            dropped_lines: 0,
            dropped_bytes: 0,
            last_marker: None,
        }
    }
}

/// The least time between two markers.
const MARKER_EVERY: Duration = Duration::from_secs(1);

impl RateLimited {
    pub fn new(inner: Arc<dyn OutputSink>, rate: OutputRate) -> Self {
        Self {
            inner,
            rate,
            start: Instant::now(),
            state: Mutex::new([Bucket::full(rate), Bucket::full(rate)]),
        }
    }

    /// [`OutputSink::line`] at `now` (time since this sink was made).
    pub fn line_at(&self, now: Duration, label: Option<&str>, stream: Stream, line: &str) {
        let mut buckets = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let bucket = &mut buckets[usize::from(label.is_some())];
        let refill = now.saturating_sub(bucket.at).as_micros() as u64;
        let refill = refill.saturating_mul(self.rate.bytes_per_sec) / 1_000_000;
        if refill > 0 {
            bucket.tokens = bucket.tokens.saturating_add(refill).min(self.rate.burst);
            bucket.at = now;
        }
        let cost = line.len() as u64 + 1;
        if bucket.tokens < cost {
            bucket.dropped_lines += 1;
            bucket.dropped_bytes += cost;
            return;
        }
        if bucket.dropped_lines > 0
            && bucket
                .last_marker
                .is_some_and(|last| now.saturating_sub(last) < MARKER_EVERY)
        {
            // Still dropping: this line goes into the next marker's count instead.
            bucket.dropped_lines += 1;
            bucket.dropped_bytes += cost;
            return;
        }
        bucket.tokens -= cost;
        if bucket.dropped_lines > 0 {
            bucket.last_marker = Some(now);
        }
        self.report_dropped(bucket);
        self.inner.line(label, stream, line);
    }

    /// Says how much was dropped since the last line that went out, if anything was.
    pub fn finish(&self) {
        let mut buckets = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        for bucket in buckets.iter_mut() {
            self.report_dropped(bucket);
        }
    }

    fn report_dropped(&self, bucket: &mut Bucket) {
        if bucket.dropped_lines == 0 {
            return;
        }
        let marker = format!(
            "[{} lines ({} bytes) of output dropped: over the job's output rate of {} bytes/s]",
            bucket.dropped_lines, bucket.dropped_bytes, self.rate.bytes_per_sec
        );
        bucket.dropped_lines = 0;
        bucket.dropped_bytes = 0;
        self.inner.line(Some("wasmray"), Stream::Stderr, &marker);
    }
}

impl OutputSink for RateLimited {
    fn line(&self, label: Option<&str>, stream: Stream, line: &str) {
        self.line_at(self.start.elapsed(), label, stream, line);
    }

    fn flush(&self) {
        self.finish();
        self.inner.flush();
    }
}

/// One instance's output: its current label and a line buffer per stream.
#[derive(Clone)]
pub(crate) struct GuestOutput {
    inner: Arc<Shared>,
}

struct Shared {
    sink: Arc<dyn OutputSink>,
    label: Mutex<Option<String>>,
    stdout: Mutex<Vec<u8>>,
    stderr: Mutex<Vec<u8>>,
}

impl GuestOutput {
    pub(crate) fn new(sink: Arc<dyn OutputSink>, label: Option<String>) -> Self {
        Self {
            inner: Arc::new(Shared {
                sink,
                label: Mutex::new(label),
                stdout: Mutex::default(),
                stderr: Mutex::default(),
            }),
        }
    }

    pub(crate) fn label(&self) -> Option<String> {
        self.inner
            .label
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn set_label(&self, label: Option<String>) {
        *self
            .inner
            .label
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = label;
    }

    pub(crate) fn writer(&self, stream: Stream) -> LineWriter {
        LineWriter {
            output: self.clone(),
            stream,
        }
    }

    fn buffer(&self, stream: Stream) -> &Mutex<Vec<u8>> {
        match stream {
            Stream::Stdout => &self.inner.stdout,
            Stream::Stderr => &self.inner.stderr,
        }
    }

    /// Appends `bytes`, handing on every line they complete and every [`MAX_LINE`] piece of
    /// a longer one. Only `bytes` is scanned; the buffer never exceeds `MAX_LINE`.
    fn write(&self, stream: Stream, mut bytes: &[u8]) {
        let mut buffer = self
            .buffer(stream)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while !bytes.is_empty() {
            let room = MAX_LINE - buffer.len();
            // A newline right after a full buffer still ends that line.
            let window = &bytes[..bytes.len().min(room + 1)];
            if let Some(newline) = window.iter().position(|&b| b == b'\n') {
                buffer.extend_from_slice(&bytes[..newline]);
                self.emit(stream, &buffer);
                buffer.clear();
                bytes = &bytes[newline + 1..];
                continue;
            }
            if bytes.len() < room {
                buffer.extend_from_slice(bytes);
                return;
            }
            buffer.extend_from_slice(&bytes[..room]);
            bytes = &bytes[room..];
            let cut = utf8_cut(&buffer);
            self.emit(stream, &buffer[..cut]);
            buffer.drain(..cut);
        }
    }

    fn emit(&self, stream: Stream, text: &[u8]) {
        let label = self
            .inner
            .label
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let line = String::from_utf8_lossy(text);
        self.inner.sink.line(label.as_deref(), stream, &line);
    }

    /// Emits what is left of unfinished lines (at the end of a call).
    pub(crate) fn flush(&self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let mut buffer = self
                .buffer(stream)
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !buffer.is_empty() {
                self.emit(stream, &buffer);
                buffer.clear();
            }
        }
    }
}

/// How much of a full buffer to hand on so that no character is split: all of it unless it
/// ends inside a multi-byte UTF-8 sequence, then up to that sequence's first byte.
fn utf8_cut(buffer: &[u8]) -> usize {
    let len = buffer.len();
    for back in 1..=len.min(3) {
        let byte = buffer[len - back];
        if byte & 0xC0 == 0x80 {
            continue;
        }
        let needs = match byte {
            0xF0.. => 4,
            0xE0.. => 3,
            0xC0.. => 2,
            _ => 1,
        };
        return if needs > back { len - back } else { len };
    }
    len
}

/// A guest's stdout or stderr as WASI sees it.
pub(crate) struct LineWriter {
    output: GuestOutput,
    stream: Stream,
}

impl IsTerminal for LineWriter {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LineWriter {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(LineWriter {
            output: self.output.clone(),
            stream: self.stream,
        })
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            output: self.output.clone(),
            stream: self.stream,
        })
    }
}

impl OutputStream for LineWriter {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.output.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(1 << 20)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for LineWriter {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for LineWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        self.output.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Capture(Mutex<Vec<String>>);

    impl OutputSink for Capture {
        fn line(&self, label: Option<&str>, _stream: Stream, line: &str) {
            self.0.lock().unwrap().push(format!("{label:?}|{line}"));
        }
    }

    #[test]
    fn lines_are_split_labelled_and_flushed() {
        let capture = Arc::new(Capture::default());
        let output = GuestOutput::new(capture.clone(), Some("f task=1".into()));
        output.write(Stream::Stdout, b"one\ntw");
        output.write(Stream::Stdout, b"o\nthree");
        output.set_label(None);
        output.flush();
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            [
                "Some(\"f task=1\")|one",
                "Some(\"f task=1\")|two",
                "None|three"
            ]
        );
    }

    #[test]
    fn a_line_without_newline_goes_out_in_bounded_pieces_on_char_boundaries() {
        let capture = Arc::new(Capture::default());
        let output = GuestOutput::new(capture.clone(), None);
        // 'é' is two bytes: MAX_LINE - 1 ASCII bytes then 'é' straddles the cut.
        let mut text = vec![b'a'; MAX_LINE - 1];
        text.extend_from_slice("é".as_bytes());
        text.extend_from_slice(b"tail");
        for piece in text.chunks(1000) {
            output.write(Stream::Stdout, piece);
        }
        assert_eq!(output.buffer(Stream::Stdout).lock().unwrap().len(), 2 + 4);
        output.flush();
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0].len(), "None|".len() + MAX_LINE - 1);
        assert_eq!(lines[1], "None|étail");
    }

    #[test]
    fn a_newline_right_after_a_full_line_ends_it() {
        let capture = Arc::new(Capture::default());
        let output = GuestOutput::new(capture.clone(), None);
        let mut text = vec![b'x'; MAX_LINE];
        text.extend_from_slice(b"\nnext\n");
        output.write(Stream::Stderr, &text);
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1], "None|next");
    }

    #[test]
    fn utf8_cut_never_splits_a_character() {
        assert_eq!(utf8_cut(b"abc"), 3);
        assert_eq!(utf8_cut("aé".as_bytes()), 3);
        assert_eq!(utf8_cut(&"aé".as_bytes()[..2]), 1);
        assert_eq!(utf8_cut(&"a€".as_bytes()[..3]), 1);
        assert_eq!(utf8_cut(&"a😀".as_bytes()[..4]), 1);
        assert_eq!(utf8_cut("a😀".as_bytes()), 5);
    }

    #[test]
    fn output_over_the_rate_is_dropped_and_counted() {
        let capture = Arc::new(Capture::default());
        let rate = OutputRate {
            bytes_per_sec: 100,
            burst: 20,
        };
        let limited = RateLimited::new(capture.clone(), rate);
        let at = Duration::from_millis;
        limited.line_at(at(0), None, Stream::Stdout, "123456789"); // 10 of 20
        limited.line_at(at(0), None, Stream::Stdout, "123456789"); // 20 of 20
        limited.line_at(at(0), None, Stream::Stdout, "dropped"); // 8: over
        limited.line_at(at(10), None, Stream::Stdout, "no"); // +1 token: still over
        limited.line_at(at(100), None, Stream::Stdout, "ok"); // +10 tokens
        limited.line_at(at(100), None, Stream::Stdout, "way too long for the bucket");
        limited.finish();
        limited.finish();
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(
            lines,
            [
                "None|123456789",
                "None|123456789",
                "Some(\"wasmray\")|[2 lines (11 bytes) of output dropped: over the job's output rate of 100 bytes/s]",
                "None|ok",
                "Some(\"wasmray\")|[1 lines (28 bytes) of output dropped: over the job's output rate of 100 bytes/s]",
            ]
        );
    }

    #[test]
    fn a_flooding_task_does_not_silence_its_driver() {
        let capture = Arc::new(Capture::default());
        let rate = OutputRate {
            bytes_per_sec: 100,
            burst: 10,
        };
        let limited = RateLimited::new(capture.clone(), rate);
        for _ in 0..5 {
            limited.line_at(Duration::ZERO, Some("f task=1"), Stream::Stdout, "flood");
        }
        limited.line_at(Duration::ZERO, None, Stream::Stdout, "result");
        let lines = capture.0.lock().unwrap().clone();
        assert_eq!(lines.last().map(String::as_str), Some("None|result"));
    }

    #[test]
    fn stdio_sink_flush_waits_for_the_writer() {
        let sink = StdioSink::new();
        sink.line(
            Some("t\x1b[31m"),
            Stream::Stdout,
            "from the stdio sink test",
        );
        sink.flush();
        assert_eq!(sink.dropped.load(Ordering::Relaxed), 0);
    }
}
