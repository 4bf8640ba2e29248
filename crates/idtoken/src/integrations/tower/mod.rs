//! A tower middleware that verifies the bearer token of each request
//! (feature `tower`); works with axum, hyper and tonic.
//!
//! - [`VerifyLayer`] holds the [`Verifier`](crate::Verifier) and which
//!   header the token comes from ([`TokenHeader`]).
//! - [`VerifyService`] wraps the inner service: a verified request goes on
//!   with its [`Claims`](crate::Claims) in the request extensions; any other
//!   is answered `401` with `WWW-Authenticate: Bearer error="invalid_token",
//!   error_description="..."` (or `503` when the keys cannot be had) and an
//!   empty body, without reaching the inner service. gRPC requests get the
//!   same verdict as `grpc-status` UNAUTHENTICATED (or UNAVAILABLE) with the
//!   reason in `grpc-message`, which gRPC clients understand.
//! - [`ResponseFuture`] is the service's future.
//!
//! ```no_run
//! # fn run() -> Result<(), idtoken::Error> {
//! use idtoken::integrations::tower::VerifyLayer;
//! let verifier = idtoken::Verifier::builder()
//!     .audience("https://my-service-abc123-uc.a.run.app")
//!     .build()?;
//! let layer = VerifyLayer::new(verifier); // Authorization or X-Serverless-Authorization
//! // axum: Router::new().route(...).layer(layer)
//! // tonic: Server::builder().layer(layer).add_service(...)
//! # Ok(()) }
//! ```

mod future;
mod layer;
mod service;

pub use crate::TokenHeader;
pub use future::ResponseFuture;
pub use layer::VerifyLayer;
pub use service::VerifyService;
