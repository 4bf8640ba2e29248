//! The tower integration (feature `tower`): middleware for any service of
//! `http::Request<B>`, both ways. Works with hyper, axum and tonic.
//!
//! **Attach** (outgoing): [`AddIdTokenLayer`] wraps a client service (a
//! hyper-util client, a tonic channel) so that each request carries an ID
//! token, as an [`attach::Tokens`](crate::attach::Tokens) policy says.
//!
//! - [`AddIdTokenLayer`] holds the policy, [`AddIdToken`] the inner
//!   service and the policy; [`AddIdTokenFuture`] adds nothing on the hot
//!   path (cached token: the inner service's future, unboxed) and boxes
//!   only a request that must wait for a first fetch.
//! - The service's error is [`BoxError`]. The inner service's errors pass
//!   through unchanged (boxed); a token that cannot be minted is a boxed
//!   [`idtoken::Error`](crate::Error): `err.downcast_ref::<idtoken::Error>()`.
//!   tonic accepts such a service as a `GrpcService` (its error only needs
//!   `Into<Box<dyn Error + Send + Sync>>`).
//! - tonic channels send path-only URIs (the channel adds the origin below
//!   the layer), so use [`Audience::Fixed`](crate::attach::Audience::Fixed)
//!   with them; [`Audience::FromUrl`](crate::attach::Audience::FromUrl)
//!   needs absolute URIs, as hyper-util's client takes.
//!
//! **Verify** (incoming): [`VerifyLayer`] checks the bearer token of each
//! request with a [`Verifier`](crate::Verifier).
//!
//! - [`VerifyLayer`] holds the verifier and which headers the token comes
//!   from ([`TokenHeader`](crate::TokenHeader)).
//! - [`VerifyService`] wraps the inner service: a verified request goes on
//!   with its [`Claims`](crate::Claims) in the request extensions; any other
//!   is answered `401` with `WWW-Authenticate: Bearer error="invalid_token",
//!   error_description="..."` (or `503` when the keys cannot be had) and an
//!   empty body, without reaching the inner service. gRPC requests get the
//!   same verdict as `grpc-status` UNAUTHENTICATED (or UNAVAILABLE) with the
//!   reason in `grpc-message`, which gRPC clients understand.
//! - [`VerifyFuture`] is the service's future.
//!
//! Each is laid out like tower's own middleware: a layer holding the
//! configuration, a service holding the inner service, a future apart.
//!
//! ```no_run
//! # fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use idtoken::integrations::tower::VerifyLayer;
//! let verifier = idtoken::Verifier::builder()
//!     .audience("https://my-service-abc123-uc.a.run.app")
//!     .build()?;
//! let layer = VerifyLayer::new(verifier); // Authorization or X-Serverless-Authorization
//! // axum: Router::new().route(...).layer(layer)
//! // tonic: Server::builder().layer(layer).add_service(...)
//! # Ok(()) }
//! ```

mod add_id_token;
mod verify;

pub use add_id_token::{AddIdToken, AddIdTokenFuture, AddIdTokenLayer, BoxError};
pub use verify::{VerifyFuture, VerifyLayer, VerifyService};
