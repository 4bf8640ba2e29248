//! [`AddIdTokenLayer`]: the `tower::Layer` that makes [`AddIdToken`] services.

use tower_layer::Layer;

use super::AddIdToken;
use crate::attach::Tokens;

/// Wraps services so that their requests carry ID tokens, as [`Tokens`]
/// says (audience, header, whether to replace an existing header).
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use idtoken::attach::{Audience, Tokens};
/// use idtoken::integrations::tower::AddIdTokenLayer;
/// use hyper_util::{client::legacy::Client, rt::TokioExecutor};
/// use tower_layer::Layer as _;
/// let creds = idtoken::Credentials::discover().await?;
/// let layer = AddIdTokenLayer::new(Tokens::new(creds, Audience::FromUrl));
/// // Any `Service<http::Request<B>>`: a hyper-util client, a tonic `Channel`...
/// let client = layer.layer(Client::builder(TokioExecutor::new()).build_http::<String>());
/// # let _ = client;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AddIdTokenLayer {
    tokens: Tokens,
}

impl AddIdTokenLayer {
    /// A layer adding tokens as `tokens` says.
    pub fn new(tokens: Tokens) -> Self {
        Self { tokens }
    }
}

impl<S> Layer<S> for AddIdTokenLayer {
    type Service = AddIdToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AddIdToken::new(inner, self.tokens.clone())
    }
}
