//! The access log: one line per request on stderr, written when the
//! response body ends (method, path, status, duration, bytes; never a
//! header, so never the token).

use std::io::Write as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use hyper::body::{Body, Frame, SizeHint};

use http_body_util::combinators::BoxBody;

/// A response body as the proxy makes it, before the access log wraps it.
pub(super) type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// What the access-log line says besides the bytes.
pub(super) struct LogLine {
    pub(super) method: http::Method,
    pub(super) path: http::uri::PathAndQuery,
    pub(super) status: StatusCode,
    pub(super) started: Instant,
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

    fn finish(&mut self, outcome: &str) {
        if let Some(l) = self.log.take() {
            // One write per line: `eprintln!` writes each formatted piece
            // on its own to the unbuffered stderr, a dozen write calls per
            // request.
            let line = format!(
                "{} {} {} {:.1}ms {}B{outcome}\n",
                l.method,
                l.path,
                l.status.as_u16(),
                l.started.elapsed().as_secs_f64() * 1000.0,
                self.bytes
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
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
            Poll::Ready(Some(Err(_))) => self.finish(" (target body failed)"),
            Poll::Ready(None) => self.finish(""),
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
            ""
        } else {
            " (client went away)"
        };
        self.finish(outcome);
    }
}
