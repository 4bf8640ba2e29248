//! The `tower-client` integration: [`AddIdTokenLayer`] wraps any service
//! of `http::Request<B>` (a hyper client, a tonic channel) so that each
//! request carries an ID token.
//!
//! Laid out like tower's own middleware: the [`layer`] holds the policy,
//! the [`service`] holds the inner service and the policy, the [`future`]
//! adds nothing on the hot path (cached token: the inner service's future,
//! unboxed) and boxes only a request that must wait for a first fetch.
//!
//! Errors: the service's error is [`BoxError`]. The inner service's errors
//! pass through unchanged (boxed); a token that cannot be minted is a boxed
//! [`idtoken::Error`](crate::Error):
//! `err.downcast_ref::<idtoken::Error>()`. tonic accepts such a service as
//! a `GrpcService` (its error only needs `Into<Box<dyn Error + Send + Sync>>`).
//!
//! tonic channels send path-only URIs (the channel adds the origin
//! below the layer), so use [`Audience::Fixed`](super::Audience::Fixed)
//! with them; [`Audience::FromUrl`](super::Audience::FromUrl) needs
//! absolute URIs, as hyper-util's client takes.

pub mod future;
pub mod layer;
pub mod service;

pub use layer::AddIdTokenLayer;
pub use service::AddIdToken;

/// The error of [`AddIdToken`]: the inner service's error or an
/// [`idtoken::Error`](crate::Error), boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
