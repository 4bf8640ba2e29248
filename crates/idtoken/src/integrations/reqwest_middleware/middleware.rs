//! [`IdTokenMiddleware`]: the middleware that sets the token header.

use ::reqwest::{Request, Response, StatusCode};
use ::reqwest_middleware::{Middleware, Next};

use crate::attach::{OriginKey, Rejection, Tokens};

/// A [`reqwest_middleware::Middleware`] that sets an ID token header.
///
/// Mint failures come back as [`reqwest_middleware::Error::Middleware`]
/// holding an [`idtoken::Error`](crate::Error) (`downcast_ref` it). A 401 or
/// 403 from the target is returned as the response, never retried; read
/// the reason with [`Rejection::from_response`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use idtoken::attach::{Audience, Tokens};
/// use idtoken::integrations::reqwest_middleware::IdTokenMiddleware;
/// let creds = idtoken::Credentials::discover().await?;
/// let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
///     .with(IdTokenMiddleware::new(Tokens::new(creds, Audience::FromUrl)))
///     .build();
/// let resp = client.get("https://hello-abc123-uc.a.run.app/items").send().await?;
/// # let _ = resp;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct IdTokenMiddleware {
    tokens: Tokens,
}

impl IdTokenMiddleware {
    /// Adds tokens as `tokens` says.
    pub fn new(tokens: Tokens) -> Self {
        Self { tokens }
    }

    /// The policy in use.
    pub fn tokens(&self) -> &Tokens {
        &self.tokens
    }
}

impl From<Tokens> for IdTokenMiddleware {
    fn from(tokens: Tokens) -> Self {
        Self::new(tokens)
    }
}

#[async_trait::async_trait]
impl Middleware for IdTokenMiddleware {
    async fn handle(
        &self,
        mut req: Request,
        extensions: &mut http::Extensions,
        next: Next<'_>,
    ) -> ::reqwest_middleware::Result<Response> {
        if !self.tokens.wants_token(req.headers()) {
            return next.run(req, extensions).await;
        }
        let source = self
            .tokens
            .source(|| OriginKey::from_url(req.url()))
            .map_err(::reqwest_middleware::Error::middleware)?;
        let token = match source.ready() {
            Some(token) => token,
            None => source
                .token()
                .await
                .map_err(::reqwest_middleware::Error::middleware)?,
        };
        req.headers_mut().insert(
            self.tokens.header_name().clone(),
            self.tokens.token_header().value(&token),
        );
        let resp = next.run(req, extensions).await?;
        if resp.status() == StatusCode::UNAUTHORIZED
            && let Some(rejection) = Rejection::from_response(&resp)
        {
            tracing::debug!(audience = source.audience(), %rejection, "the target refused the ID token");
        }
        Ok(resp)
    }
}
