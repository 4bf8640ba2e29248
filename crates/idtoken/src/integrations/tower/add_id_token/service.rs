//! [`AddIdToken`]: the service that sets the token header and calls the
//! inner service.

use std::task::{Context, Poll};

use http::Request;
use tower_service::Service;

use super::{AddIdTokenFuture, BoxError};
use crate::attach::{OriginKey, Tokens};
use crate::error::{Error, Result};
use crate::token::IdToken;

/// A service whose requests carry ID tokens; made by
/// [`AddIdTokenLayer`](super::AddIdTokenLayer).
#[derive(Debug, Clone)]
pub struct AddIdToken<S> {
    inner: S,
    tokens: Tokens,
}

impl<S> AddIdToken<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, tokens: Tokens) -> Self {
        Self { inner, tokens }
    }

    /// The wrapped service.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// The wrapped service, consuming the wrapper.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// The audience of a request URI, when it is absolute.
fn origin_of(uri: &http::Uri) -> Result<OriginKey> {
    match (uri.scheme_str(), uri.host()) {
        (Some(scheme), Some(host)) => {
            OriginKey::from_parts(scheme, host, uri.port_u16(), uri.path())
        }
        _ => Err(Error::InvalidArgument(format!(
            "cannot derive a token audience from the request URI {:?}: it has no scheme and host (tonic channels send paths only); use Audience::Fixed",
            uri.path()
        ))),
    }
}

impl<S, B> Service<Request<B>> for AddIdToken<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = AddIdTokenFuture<S::Future, S::Response>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if !self.tokens.wants_token(req.headers()) {
            return AddIdTokenFuture::calling(self.inner.call(req));
        }
        let source = match self.tokens.source(|| origin_of(req.uri())) {
            Ok(source) => source,
            Err(err) => return AddIdTokenFuture::failed(err.into()),
        };
        let header = self.tokens.header_name().clone();
        let kind = self.tokens.token_header();
        if let Some(token) = source.ready() {
            set_token(&mut req, header, kind, &token);
            return AddIdTokenFuture::calling(self.inner.call(req));
        }
        // Cold: the call waits for a fetch. Take the service that was
        // polled ready and leave a clone in its place (tower's pattern).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        AddIdTokenFuture::boxed(async move {
            let token = source.token().await.map_err(|e| Box::new(e) as BoxError)?;
            set_token(&mut req, header, kind, &token);
            inner.call(req).await.map_err(Into::into)
        })
    }
}

fn set_token<B>(
    req: &mut Request<B>,
    header: http::HeaderName,
    kind: crate::TokenHeader,
    token: &IdToken,
) {
    req.headers_mut().insert(header, kind.value(token));
}
