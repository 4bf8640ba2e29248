//! The axum integration (feature `axum`, which implies `tower`):
//! [`VerifiedClaims`], an extractor for the claims that
//! [`VerifyLayer`](crate::integrations::tower::VerifyLayer) verified, and
//! [`MissingClaims`], its rejection when the layer is missing.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use idtoken::integrations::axum::VerifiedClaims;
//! use idtoken::integrations::tower::VerifyLayer;
//!
//! async fn hello(VerifiedClaims(claims): VerifiedClaims) -> String {
//!     format!("hello {}", claims.email.unwrap_or_default())
//! }
//!
//! # fn app(verifier: idtoken::Verifier) -> Router {
//! Router::new().route("/", get(hello)).layer(VerifyLayer::new(verifier))
//! # }
//! ```

mod extract;

pub use extract::{MissingClaims, VerifiedClaims};
