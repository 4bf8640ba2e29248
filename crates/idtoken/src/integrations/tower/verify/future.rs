//! [`VerifyFuture`]: verification, then the inner service's answer.

use std::future::Future;
use std::pin::Pin;

/// The future of [`VerifyService`](super::VerifyService): verifies the
/// token (awaiting keys only on a cold cache), then calls the inner service
/// or answers the rejection.
pub type VerifyFuture<Res, E> = Pin<Box<dyn Future<Output = Result<Res, E>> + Send + 'static>>;
