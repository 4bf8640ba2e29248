//! Faults below an answer's content, the same on every endpoint: a body
//! that trickles, a connection reset mid-body, a body larger than clients
//! take, a status with `Retry-After`. The endpoint families shape the
//! other faults (error statuses, 200 with a given body) as their Google
//! counterparts do, and hand these to [`answer`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body::Frame;

use crate::state::Fault;

/// How often a trickling body sends its next byte.
const TRICKLE_EVERY: Duration = Duration::from_millis(250);
/// What a reset answer promises (`Content-Length`) and what it sends
/// before the connection drops.
const RESET_PROMISED: u64 = 4096;
const RESET_SENT: usize = 64;

/// What an injected fault makes an endpoint answer. The wire-level faults
/// (trickle, reset, oversized, redirect, `Retry-After`) answer the same
/// everywhere; a body (`ok`, with 200) and an error status (`error`) each
/// family shapes as its Google counterpart does. (`arrive` turns a hang
/// into a wait and then a 503, so a hang reaching here is a 503 too.)
pub(crate) fn fault_answer(
    fault: Fault,
    ok: impl FnOnce(String) -> Response,
    error: impl FnOnce(StatusCode) -> Response,
) -> Response {
    match fault {
        Fault::Body(body) => ok(body),
        Fault::Status(code) => {
            error(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        }
        Fault::Hang => error(StatusCode::SERVICE_UNAVAILABLE),
        wire => answer(wire),
    }
}

/// The answer for a wire fault; other faults answer 500 (`fault_answer`
/// hands those to the family).
fn answer(fault: Fault) -> Response {
    match fault {
        Fault::Trickle => with_type(Body::new(Trickle { sleep: None }), None),
        Fault::ResetMidBody => with_type(Body::new(Reset { sent: false }), Some(RESET_PROMISED)),
        Fault::Oversized(bytes) => with_type(Body::from(vec![b' '; bytes]), None),
        Fault::Redirect(location) => {
            let mut resp = StatusCode::TEMPORARY_REDIRECT.into_response();
            if let Ok(v) = HeaderValue::from_str(&location) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            resp
        }
        Fault::RetryAfter { status, secs } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::TOO_MANY_REQUESTS);
            let body = format!(
                r#"{{"error":{{"code":{},"message":"injected fault: retry after {secs} s","status":"RESOURCE_EXHAUSTED"}}}}"#,
                status.as_u16()
            );
            let mut resp = (status, body).into_response();
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
            resp
        }
        Fault::Status(_) | Fault::Body(_) | Fault::Hang => {
            (StatusCode::INTERNAL_SERVER_ERROR, "not a wire fault\n").into_response()
        }
    }
}

fn with_type(body: Body, length: Option<u64>) -> Response {
    let mut resp = (StatusCode::OK, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    h.insert("metadata-flavor", HeaderValue::from_static("Google"));
    if let Some(n) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    resp
}

/// One space every [`TRICKLE_EVERY`], for ever (until the client leaves).
struct Trickle {
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for Trickle {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let sleep = self
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(TRICKLE_EVERY)));
        match sleep.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(()) => {
                self.sleep = None;
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b" ")))))
            }
        }
    }
}

/// A few bytes of the promised length, then an error, on which the server
/// drops the connection.
struct Reset {
    sent: bool,
}

impl http_body::Body for Reset {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if self.sent {
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "injected fault: reset mid-body",
            ))));
        }
        self.sent = true;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'{'; RESET_SENT])))))
    }

    fn size_hint(&self) -> http_body::SizeHint {
        http_body::SizeHint::with_exact(RESET_PROMISED)
    }
}
