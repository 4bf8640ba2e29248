//! The access log: one line per request on stderr, written when the
//! response body ends (method, path, status, duration, bytes; never a
//! header, so never the token), as text or as one JSON object per line
//! (`--log-format`). The same moment counts the request in the listener's
//! metrics.

use std::cell::RefCell;
use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, Incoming, SizeHint};

use super::idle::InProgress;
use super::metrics::ListenerMetrics;

/// A response body as the proxy makes it, before the access log wraps
/// it: the target's, streamed, or the proxy's own message. An enum, not a
/// boxed body: the box was an allocation for every request.
pub(super) enum ProxyBody {
    Target(Incoming),
    /// The message's bytes until they are sent; `None` once sent (or if
    /// there were none).
    Message(Option<Bytes>),
}

impl ProxyBody {
    /// The proxy's own message as a body.
    pub(super) fn message(text: String) -> Self {
        ProxyBody::Message(Some(Bytes::from(text)).filter(|b| !b.is_empty()))
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.get_mut() {
            ProxyBody::Target(body) => Pin::new(body).poll_frame(cx),
            ProxyBody::Message(text) => Poll::Ready(text.take().map(|b| Ok(Frame::data(b)))),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Target(body) => body.is_end_stream(),
            ProxyBody::Message(text) => text.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Target(body) => body.size_hint(),
            ProxyBody::Message(text) => {
                SizeHint::with_exact(text.as_ref().map_or(0, |b| b.len() as u64))
            }
        }
    }
}

/// How access-log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    /// `GET /path 200 1.2ms 345B`, and ` (client went away)` or
    /// ` (target body failed)` after a body that did not end.
    #[default]
    Text,
    /// One JSON object per line with the same fields (`method`, `path`,
    /// `status`, `duration_ms`, `bytes`, `outcome`) and `listener`, the
    /// address that took the request (several with `--config`).
    Json,
}

/// How a listener writes its access-log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct LogStyle {
    pub(super) format: LogFormat,
    /// Text lines end with ` listener=ADDR` (with `--config` and several
    /// listeners, whose lines share stderr).
    pub(super) name_listener: bool,
}

/// What the access-log line says besides the bytes, and where it counts.
pub(super) struct LogLine {
    /// The listener's address (JSON lines name it; text lines too when
    /// there are several listeners).
    pub(super) listener: std::net::SocketAddr,
    pub(super) method: http::Method,
    pub(super) path: http::uri::PathAndQuery,
    pub(super) status: StatusCode,
    pub(super) started: Instant,
    pub(super) style: LogStyle,
    pub(super) metrics: &'static ListenerMetrics,
    /// Held for its drop: the request stops counting as in progress on
    /// its connection when its line is written.
    pub(super) _in_progress: Option<InProgress>,
}

/// How a response body ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Complete,
    TargetBodyFailed,
    ClientWentAway,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Complete => "complete",
            Outcome::TargetBodyFailed => "target body failed",
            Outcome::ClientWentAway => "client went away",
        }
    }
}

thread_local! {
    /// Access-log lines not yet written to stderr. Each line was a
    /// `write` of its own, one syscall in seven of a proxied request (and
    /// still so when written as the runtime went idle, which one client
    /// at a time makes it do after every request); now the lines of the
    /// [`LINGER`] after a first one go out together ([`flusher`]), as
    /// Envoy buffers its file access logs (and writes them every 10 s by
    /// default; docs/BENCHMARKS.md). The proxy runs on one thread, so one
    /// buffer holds them all.
    static PENDING: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// The most [`PENDING`] holds before it is written at once.
const PENDING_MAX: usize = 32 * 1024;

/// How long a line may wait for others to share its write.
const LINGER: std::time::Duration = std::time::Duration::from_millis(10);

/// Told when a line comes into an empty [`PENDING`].
static LINE_WAITING: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// Writes the access-log lines this thread holds: [`flusher`] does,
/// [`say`] and the log's writer (`main.rs`) before any other message, so
/// that stderr keeps their order, and the proxy before it exits.
pub(crate) fn flush() {
    PENDING.with_borrow_mut(write_out);
}

/// Prints one of the proxy's own messages on stderr, after the access-log
/// lines of requests that ended before it.
pub(crate) fn say(message: std::fmt::Arguments<'_>) {
    flush();
    eprintln!("{message}");
}

/// Writes each batch of access-log lines [`LINGER`] after its first line;
/// runs for the proxy's life, on its thread.
pub(super) async fn flusher() {
    loop {
        LINE_WAITING.notified().await;
        tokio::time::sleep(LINGER).await;
        flush();
    }
}

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = std::io::stderr().write_all(pending);
        pending.clear();
    }
}

/// A response body that counts its bytes and writes the access-log line
/// when it ends (or is dropped: the client went away).
pub(crate) struct Logged {
    inner: ProxyBody,
    bytes: u64,
    log: Option<LogLine>,
}

impl Logged {
    pub(super) fn new(inner: ProxyBody, log: LogLine) -> Self {
        Self {
            inner,
            bytes: 0,
            log: Some(log),
        }
    }

    fn finish(&mut self, outcome: Outcome) {
        if let Some(l) = self.log.take() {
            l.metrics.request_done(&l.method, l.status, self.bytes);
            let bytes = self.bytes;
            PENDING.with_borrow_mut(|pending| {
                if pending.is_empty() {
                    LINE_WAITING.notify_one();
                }
                l.render(pending, bytes, outcome);
                if pending.len() >= PENDING_MAX {
                    write_out(pending);
                }
            });
        }
    }
}

impl Body for Logged {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    self.bytes += data.len() as u64;
                }
            }
            Poll::Ready(Some(Err(_))) => self.finish(Outcome::TargetBodyFailed),
            Poll::Ready(None) => self.finish(Outcome::Complete),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Logged {
    fn drop(&mut self) {
        // An empty body may never be polled; then it ended as it began.
        let outcome = if self.inner.is_end_stream() {
            Outcome::Complete
        } else {
            Outcome::ClientWentAway
        };
        self.finish(outcome);
    }
}

impl LogLine {
    /// Appends the line for a body of `bytes` that ended with `outcome`,
    /// newline included, to `line`.
    fn render(&self, line: &mut Vec<u8>, bytes: u64, outcome: Outcome) {
        // Milliseconds to one decimal from integers, and every number
        // through `itoa`: `write!` and float formatting were most of the
        // line's cost, paid on every request (docs/BENCHMARKS.md).
        let tenths = (self.started.elapsed().as_micros() + 50) / 100;
        let tenths = u64::try_from(tenths).unwrap_or(u64::MAX);
        let mut numbers = itoa::Buffer::new();
        match self.style.format {
            LogFormat::Text => {
                let note = match outcome {
                    Outcome::Complete => "",
                    Outcome::TargetBodyFailed => " (target body failed)",
                    Outcome::ClientWentAway => " (client went away)",
                };
                for part in [
                    self.method.as_str(),
                    " ",
                    self.path.as_str(),
                    " ",
                    self.status.as_str(),
                    " ",
                ] {
                    line.extend_from_slice(part.as_bytes());
                }
                push_tenths(line, &mut numbers, tenths);
                line.extend_from_slice(b"ms ");
                line.extend_from_slice(numbers.format(bytes).as_bytes());
                line.push(b'B');
                line.extend_from_slice(note.as_bytes());
                if self.style.name_listener {
                    let _ = write!(line, " listener={}", self.listener);
                }
                line.push(b'\n');
            }
            LogFormat::Json => {
                // serde_json writes the two strings from the request
                // escaped (a path may hold `"` or `\\`); the rest are
                // numbers and fixed words.
                let _ = write!(line, "{{\"listener\":\"{}\",\"method\":", self.listener);
                let _ = serde_json::to_writer(&mut *line, self.method.as_str());
                line.extend_from_slice(b",\"path\":");
                let _ = serde_json::to_writer(&mut *line, self.path.as_str());
                line.extend_from_slice(b",\"status\":");
                line.extend_from_slice(self.status.as_str().as_bytes());
                line.extend_from_slice(b",\"duration_ms\":");
                push_tenths(line, &mut numbers, tenths);
                line.extend_from_slice(b",\"bytes\":");
                line.extend_from_slice(numbers.format(bytes).as_bytes());
                line.extend_from_slice(b",\"outcome\":\"");
                line.extend_from_slice(outcome.as_str().as_bytes());
                line.extend_from_slice(b"\"}\n");
            }
        }
    }
}

/// Appends a count of tenths as `12.3`.
fn push_tenths(line: &mut Vec<u8>, numbers: &mut itoa::Buffer, tenths: u64) {
    line.extend_from_slice(numbers.format(tenths / 10).as_bytes());
    line.push(b'.');
    line.push(b'0' + (tenths % 10) as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(format: LogFormat, path: &'static str, outcome: Outcome) -> String {
        let l = LogLine {
            listener: std::net::SocketAddr::from(([127, 0, 0, 1], 8080)),
            method: http::Method::POST,
            path: http::uri::PathAndQuery::from_static(path),
            status: StatusCode::CREATED,
            started: Instant::now(),
            style: LogStyle {
                format,
                name_listener: false,
            },
            metrics: ListenerMetrics::new_static(),
            _in_progress: None,
        };
        let mut out = Vec::new();
        l.render(&mut out, 42, outcome);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn a_json_line_is_one_object_with_the_text_lines_fields() {
        let text = line(LogFormat::Text, "/a?b=1", Outcome::ClientWentAway);
        assert!(text.starts_with("POST /a?b=1 201 "), "{text}");
        assert!(text.ends_with("ms 42B (client went away)\n"), "{text}");

        let json = line(LogFormat::Json, "/a?b=1", Outcome::ClientWentAway);
        assert_eq!(json.matches('\n').count(), 1);
        assert!(json.ends_with('\n'));
        let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(v["listener"], "127.0.0.1:8080");
        assert_eq!(v["method"], "POST");
        assert_eq!(v["path"], "/a?b=1");
        assert_eq!(v["status"], 201);
        assert_eq!(v["bytes"], 42);
        assert_eq!(v["outcome"], "client went away");
        assert!(v["duration_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{v}");
        assert_eq!(v.as_object().map(|o| o.len()), Some(7), "{v}");
    }

    #[test]
    fn a_text_line_ends_with_its_listener_when_there_are_several() {
        let l = LogLine {
            listener: std::net::SocketAddr::from(([127, 0, 0, 1], 8081)),
            method: http::Method::GET,
            path: http::uri::PathAndQuery::from_static("/b"),
            status: StatusCode::OK,
            started: Instant::now(),
            style: LogStyle {
                format: LogFormat::Text,
                name_listener: true,
            },
            metrics: ListenerMetrics::new_static(),
            _in_progress: None,
        };
        let mut out = Vec::new();
        l.render(&mut out, 7, Outcome::ClientWentAway);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.starts_with("GET /b 200 "), "{text}");
        assert!(
            text.ends_with("ms 7B (client went away) listener=127.0.0.1:8081\n"),
            "{text}"
        );
    }

    #[test]
    fn durations_show_as_milliseconds_with_one_decimal() {
        let shown = |tenths| {
            let mut line = Vec::new();
            push_tenths(&mut line, &mut itoa::Buffer::new(), tenths);
            String::from_utf8(line).expect("UTF-8")
        };
        assert_eq!(shown(0), "0.0");
        assert_eq!(shown(7), "0.7");
        assert_eq!(shown(123), "12.3");
        assert_eq!(shown(u64::MAX), "1844674407370955161.5");
    }

    #[test]
    fn a_text_line_names_method_path_status_and_bytes() {
        let text = line(LogFormat::Text, "/x?y=1", Outcome::Complete);
        let fields: Vec<&str> = text.trim_end().split(' ').collect();
        assert_eq!(fields[..3], ["POST", "/x?y=1", "201"], "{text}");
        assert!(
            fields[3].ends_with("ms") && fields[3].contains('.'),
            "{text}"
        );
        assert_eq!(fields[4], "42B", "{text}");
        assert_eq!(fields.len(), 5, "{text}");
    }

    #[test]
    fn a_path_with_quotes_and_backslashes_stays_one_json_string() {
        let json = line(LogFormat::Json, "/x\"y\\z", Outcome::Complete);
        let v: serde_json::Value = serde_json::from_str(&json).expect("one JSON object");
        assert_eq!(v["path"], "/x\"y\\z");
        assert_eq!(v["outcome"], "complete");
    }
}
