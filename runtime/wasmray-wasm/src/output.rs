//! Guest stdout and stderr: split into lines and handed to the node's sink with a label naming
//! the task that wrote them, as Ray prefixes worker output with `(f pid=...)`.
//!
//! Partial lines wait for their newline, or for the end of the call. What the sink does with a
//! line (print it, capture it for a test, ship it to a driver elsewhere) is not decided here.

use bytes::Bytes;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Where guest output lines go.
pub trait OutputSink: Send + Sync + 'static {
    /// One complete line (without its newline); `label` is `None` for the driver.
    fn line(&self, label: Option<&str>, stream: Stream, line: &str);
}

/// Prints lines to the process's stdout and stderr, task lines prefixed with `(label) `.
#[derive(Debug, Default, Clone, Copy)]
pub struct StdioSink;

impl OutputSink for StdioSink {
    fn line(&self, label: Option<&str>, stream: Stream, line: &str) {
        use std::io::Write;
        let text = match label {
            Some(label) => format!("({label}) {line}\n"),
            None => format!("{line}\n"),
        };
        // A closed terminal must not take the node down; the line is dropped.
        let _ = match stream {
            Stream::Stdout => std::io::stdout().lock().write_all(text.as_bytes()),
            Stream::Stderr => std::io::stderr().lock().write_all(text.as_bytes()),
        };
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

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut buffer = self
            .buffer(stream)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        buffer.extend_from_slice(bytes);
        let Some(last_newline) = buffer.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let rest = buffer.split_off(last_newline + 1);
        let complete = std::mem::replace(&mut *buffer, rest);
        drop(buffer);
        self.emit(stream, &complete[..complete.len() - 1]);
    }

    fn emit(&self, stream: Stream, text: &[u8]) {
        let label = self
            .inner
            .label
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        for line in String::from_utf8_lossy(text).split('\n') {
            self.inner.sink.line(label.as_deref(), stream, line);
        }
    }

    /// Emits what is left of unfinished lines (at the end of a call).
    pub(crate) fn flush(&self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let rest = std::mem::take(
                &mut *self
                    .buffer(stream)
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            );
            if !rest.is_empty() {
                self.emit(stream, &rest);
            }
        }
    }
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
}
