//! [`VerifiedClaims`], the extractor, and [`MissingClaims`], its rejection.

use axum_core::extract::FromRequestParts;
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use crate::Claims;

/// The claims [`VerifyLayer`](crate::integrations::tower::VerifyLayer) put
/// into the request. Extracting them where the layer is missing answers
/// 500: that is a wiring mistake, not the caller's.
#[derive(Debug, Clone)]
pub struct VerifiedClaims(pub Claims);

/// Why [`VerifiedClaims`] could not be extracted.
#[derive(Debug, Clone, Copy)]
pub struct MissingClaims;

impl IntoResponse for MissingClaims {
    fn into_response(self) -> Response {
        tracing::error!("VerifiedClaims extracted on a route without VerifyLayer");
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "no verified claims: the route lacks idtoken's VerifyLayer",
        )
            .into_response()
    }
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedClaims {
    type Rejection = MissingClaims;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Claims>()
            .cloned()
            .map(VerifiedClaims)
            .ok_or(MissingClaims)
    }
}
