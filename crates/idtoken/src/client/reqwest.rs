//! The `reqwest-middleware` integration: [`IdTokenMiddleware`] adds a
//! token to each request; [`new_client`] is Go's `idtoken.NewClient`.
//!
//! Redirects: reqwest follows them inside the client, below the
//! middleware, and drops `Authorization` on a hop to another origin but
//! not `X-Serverless-Authorization`. [`redirect_policy`] keeps the token at
//! home in both modes; [`client_with`] and [`new_client`] use it.

use std::time::Duration;

use ::reqwest::redirect::{Attempt, Policy};
use ::reqwest::{Request, Response, StatusCode};
use reqwest_middleware::{ClientWithMiddleware, Middleware, Next};

use super::{Audience, OriginKey, Rejection, TokenHeader, Tokens};
use crate::credentials::Credentials;
use crate::error::{Error, Result};

/// A [`reqwest_middleware::Middleware`] that sets an ID token header.
///
/// Mint failures come back as [`reqwest_middleware::Error::Middleware`]
/// holding an [`idtoken::Error`](crate::Error) (`downcast_ref` it). A 401 or
/// 403 from the target is returned as the response, never retried; read
/// the reason with [`Rejection::from_response`].
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use idtoken::client::{Audience, IdTokenMiddleware, Tokens};
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
    ) -> reqwest_middleware::Result<Response> {
        if !self.tokens.wants_token(req.headers()) {
            return next.run(req, extensions).await;
        }
        let source = self
            .tokens
            .source(|| OriginKey::from_url(req.url()))
            .map_err(reqwest_middleware::Error::middleware)?;
        let token = match source.ready() {
            Some(token) => token,
            None => source
                .token()
                .await
                .map_err(reqwest_middleware::Error::middleware)?,
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

/// A redirect policy that never carries the token to another origin:
/// with [`TokenHeader::Authorization`] it follows up to 10 redirects
/// (reqwest drops `Authorization` when the scheme, host or port changes);
/// with [`TokenHeader::XServerlessAuthorization`], which reqwest does not
/// drop, it follows only same-origin redirects and hands a redirect to
/// another origin back to the caller as the 3xx response.
pub fn redirect_policy(header: TokenHeader) -> Policy {
    match header {
        TokenHeader::Authorization => Policy::limited(10),
        TokenHeader::XServerlessAuthorization | TokenHeader::IapAssertion => {
            Policy::custom(same_origin_only)
        }
    }
}

fn same_origin_only(attempt: Attempt<'_>) -> ::reqwest::redirect::Action {
    let next = attempt.url().origin();
    let same = attempt
        .previous()
        .last()
        .is_some_and(|p| p.origin() == next);
    if attempt.previous().len() > 10 {
        attempt.error("too many redirects")
    } else if same {
        attempt.follow()
    } else {
        attempt.stop()
    }
}

/// A client that adds tokens as `tokens` says, with [`redirect_policy`]
/// and timeouts (10 s to connect, 60 s between reads).
pub fn client_with(tokens: Tokens) -> Result<ClientWithMiddleware> {
    let header = tokens.token_header();
    let client = ::reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        .redirect(redirect_policy(header))
        .build()
        .map_err(|e| Error::InvalidArgument(format!("cannot build the HTTP client: {e}")))?;
    Ok(reqwest_middleware::ClientBuilder::new(client)
        .with(IdTokenMiddleware::new(tokens))
        .build())
}

/// A client whose requests carry ID tokens for `audience`, minted with
/// Application Default Credentials: Go's `idtoken.NewClient(ctx, audience)`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = idtoken::client::new_client("https://hello-abc123-uc.a.run.app").await?;
/// let body = client.get("https://hello-abc123-uc.a.run.app/items").send().await?.text().await?;
/// # let _ = body;
/// # Ok(()) }
/// ```
pub async fn new_client(audience: impl Into<String>) -> Result<ClientWithMiddleware> {
    let creds = Credentials::discover().await?;
    client_with(Tokens::new(creds, Audience::Fixed(audience.into())))
}
