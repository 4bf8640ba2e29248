//! [`AddIdTokenFuture`]: the inner service's future as it is when the token
//! was cached; a boxed future only when the request waits for a fetch.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use pin_project_lite::pin_project;

use super::BoxError;

type Boxed<R> = Pin<Box<dyn Future<Output = Result<R, BoxError>> + Send>>;

pin_project! {
    /// The response future of [`AddIdToken`](super::AddIdToken).
    pub struct AddIdTokenFuture<F, R> {
        #[pin]
        state: State<F, R>,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<F, R> {
        Calling { #[pin] fut: F },
        Waiting { fut: Boxed<R> },
        Failed { error: Option<BoxError> },
    }
}

impl<F, R> AddIdTokenFuture<F, R> {
    pub(super) fn calling(fut: F) -> Self {
        Self {
            state: State::Calling { fut },
        }
    }

    pub(super) fn boxed(fut: impl Future<Output = Result<R, BoxError>> + Send + 'static) -> Self {
        Self {
            state: State::Waiting { fut: Box::pin(fut) },
        }
    }

    pub(super) fn failed(error: BoxError) -> Self {
        Self {
            state: State::Failed { error: Some(error) },
        }
    }
}

impl<F, R, E> Future for AddIdTokenFuture<F, R>
where
    F: Future<Output = Result<R, E>>,
    E: Into<BoxError>,
{
    type Output = Result<R, BoxError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().state.project() {
            StateProj::Calling { fut } => fut.poll(cx).map_err(Into::into),
            StateProj::Waiting { fut } => fut.as_mut().poll(cx),
            StateProj::Failed { error } => Poll::Ready(Err(error
                .take()
                .unwrap_or_else(|| "polled after completion".into()))),
        }
    }
}

impl<F, R> std::fmt::Debug for AddIdTokenFuture<F, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AddIdTokenFuture")
    }
}
