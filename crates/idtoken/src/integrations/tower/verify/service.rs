//! [`VerifyService`]: takes the token from the configured header, verifies
//! it, and either calls the inner service with the claims in the request
//! extensions or answers the rejection itself (in gRPC's terms for gRPC
//! requests).

use std::task::{Context, Poll};

use http::header::{CONTENT_TYPE, HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};

use super::{VerifyFuture, VerifyLayer};
use crate::{TokenHeader, VerifyError};

/// The middleware made by [`VerifyLayer`].
#[derive(Debug, Clone)]
pub struct VerifyService<S> {
    inner: S,
    config: VerifyLayer,
}

impl<S> VerifyService<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, config: VerifyLayer) -> Self {
        Self { inner, config }
    }
}

impl<S, B, ResBody> tower_service::Service<Request<B>> for VerifyService<S>
where
    S: tower_service::Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = VerifyFuture<Response<ResBody>, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one to call.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config.clone();
        let grpc = is_grpc(&req);
        Box::pin(async move {
            let token = match token(&req, &config.headers) {
                Ok(t) => t,
                Err(why) => return Ok(reject(StatusCode::UNAUTHORIZED, why, grpc)),
            };
            match config.verifier.verify(&token).await {
                Ok(claims) => {
                    req.extensions_mut().insert(claims);
                    inner.call(req).await
                }
                Err(e) => {
                    tracing::debug!(error = %e, "request refused: token not valid");
                    let status = if e.is_unavailable() {
                        StatusCode::SERVICE_UNAVAILABLE
                    } else {
                        StatusCode::UNAUTHORIZED
                    };
                    Ok(reject(status, &description(&e), grpc))
                }
            }
        })
    }
}

/// The token from the first configured header present.
fn token<B>(req: &Request<B>, headers: &[TokenHeader]) -> Result<String, &'static str> {
    for h in headers {
        let Some(value) = req.headers().get(h.name()) else {
            continue;
        };
        let value = value.to_str().map_err(|_| "the token header is not text")?;
        if !h.is_bearer() {
            return Ok(value.trim().to_owned());
        }
        let (scheme, token) = value
            .trim()
            .split_once(' ')
            .ok_or("expected `Bearer <token>`")?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err("expected `Bearer <token>`");
        }
        return Ok(token.trim().to_owned());
    }
    Err("missing bearer token")
}

/// A short, header-safe public reason.
fn description(e: &VerifyError) -> String {
    e.to_string()
        .chars()
        .map(|c| match c {
            '"' | '\\' => '\'',
            c if c.is_ascii_graphic() || c == ' ' => c,
            _ => '?',
        })
        .take(200)
        .collect()
}

/// Whether `req` is gRPC: `application/grpc`, `application/grpc+proto`
/// and the like, but not gRPC-Web (`application/grpc-web`), whose clients
/// map a plain 401 themselves.
fn is_grpc<B>(req: &Request<B>) -> bool {
    req.headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.as_bytes().strip_prefix(b"application/grpc"))
        .is_some_and(|rest| matches!(rest.first(), None | Some(b'+' | b';')))
}

/// The rejection. gRPC requests get a Trailers-Only answer (HTTP 200,
/// `grpc-status` UNAUTHENTICATED (16) or UNAVAILABLE (14), the reason in
/// `grpc-message`), which gRPC clients turn into a status with that code
/// and message; from a bare 401 they would know the code but not why.
fn reject<ResBody: Default>(status: StatusCode, why: &str, grpc: bool) -> Response<ResBody> {
    let challenge = format!("Bearer error=\"invalid_token\", error_description=\"{why}\"");
    let mut resp = Response::new(ResBody::default());
    let value = HeaderValue::from_str(&challenge)
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\""));
    resp.headers_mut().insert(WWW_AUTHENTICATE, value);
    if grpc {
        let code = if status == StatusCode::SERVICE_UNAVAILABLE {
            "14"
        } else {
            "16"
        };
        let headers = resp.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
        headers.insert("grpc-status", HeaderValue::from_static(code));
        // `why` is printable ASCII already; gRPC percent-encodes only `%` of those.
        if let Ok(message) = HeaderValue::from_str(&why.replace('%', "%25")) {
            headers.insert("grpc-message", message);
        }
    } else {
        *resp.status_mut() = status;
    }
    resp
}
