//! [`VerifyLayer`]: the middleware's configuration, cheap to clone.

use std::sync::Arc;

use crate::verify::Kind;
use crate::{TokenHeader, Verifier};

use super::VerifyService;

/// Verifies each request's token before the inner service sees it.
///
/// By default a Google verifier reads `X-Serverless-Authorization` when
/// present, else `Authorization`; an IAP verifier reads
/// `x-goog-iap-jwt-assertion`. [`VerifyLayer::headers`] changes that.
///
/// A verified request reaches the inner service with its
/// [`Claims`](crate::Claims) in the request extensions (tonic handlers:
/// `request.extensions().get::<Claims>()`). Any other is answered here:
///
/// - HTTP: `401` (`503` when the keys cannot be had) with
///   `WWW-Authenticate: Bearer error="invalid_token", error_description="..."`
///   and an empty body.
/// - gRPC (`content-type: application/grpc`, `application/grpc+proto`...):
///   gRPC's Trailers-Only answer, `200` with `grpc-status: 16`
///   (UNAUTHENTICATED; `14`, UNAVAILABLE, when the keys cannot be had) and
///   the same reason in `grpc-message`, plus the `WWW-Authenticate` header.
///   gRPC clients read the status from there; from a bare 401 they would
///   get the code (tonic: UNAUTHENTICATED, "grpc-status header missing,
///   mapped from HTTP status code 401") but not the reason. gRPC-Web
///   (`application/grpc-web`) gets the HTTP answer.
#[derive(Debug, Clone)]
pub struct VerifyLayer {
    pub(crate) verifier: Verifier,
    pub(crate) headers: Arc<[TokenHeader]>,
}

impl VerifyLayer {
    /// A layer checking tokens with `verifier`, from the kind's usual headers.
    pub fn new(verifier: Verifier) -> Self {
        let headers: Arc<[TokenHeader]> = match verifier.kind() {
            Kind::Iap => Arc::new([TokenHeader::IapAssertion]),
            _ => Arc::new([
                TokenHeader::XServerlessAuthorization,
                TokenHeader::Authorization,
            ]),
        };
        Self { verifier, headers }
    }

    /// Reads the token from the first of these headers that is present
    /// (a present but malformed header is refused, not skipped).
    pub fn headers(mut self, headers: impl IntoIterator<Item = TokenHeader>) -> Self {
        self.headers = headers.into_iter().collect();
        self
    }
}

impl<S> tower_layer::Layer<S> for VerifyLayer {
    type Service = VerifyService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        VerifyService::new(inner, self.clone())
    }
}
