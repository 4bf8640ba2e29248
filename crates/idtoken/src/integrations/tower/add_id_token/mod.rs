//! [`AddIdTokenLayer`], [`AddIdToken`] and [`AddIdTokenFuture`]: the
//! outgoing half of the tower integration (see the parent module).

mod future;
mod layer;
mod service;

pub use future::AddIdTokenFuture;
pub use layer::AddIdTokenLayer;
pub use service::AddIdToken;

/// The error of [`AddIdToken`]: the inner service's error or an
/// [`idtoken::Error`](crate::Error), boxed.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
