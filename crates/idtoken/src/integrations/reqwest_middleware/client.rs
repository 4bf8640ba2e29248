//! [`client_with`] and [`new_client`]: reqwest clients that carry tokens,
//! with a redirect policy that keeps them at home.

use std::time::Duration;

use ::reqwest_middleware::ClientWithMiddleware;

use super::IdTokenMiddleware;
use crate::attach::{Audience, Tokens, redirect_policy};
use crate::credentials::Credentials;
use crate::error::{Error, Result};

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
    Ok(::reqwest_middleware::ClientBuilder::new(client)
        .with(IdTokenMiddleware::new(tokens))
        .build())
}

/// A client whose requests carry ID tokens for `audience`, minted with
/// Application Default Credentials: Go's `idtoken.NewClient(ctx, audience)`.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let client = idtoken::integrations::reqwest_middleware::new_client("https://hello-abc123-uc.a.run.app").await?;
/// let body = client.get("https://hello-abc123-uc.a.run.app/items").send().await?.text().await?;
/// # let _ = body;
/// # Ok(()) }
/// ```
pub async fn new_client(audience: impl Into<String>) -> Result<ClientWithMiddleware> {
    let creds = Credentials::discover().await?;
    client_with(Tokens::new(creds, Audience::Fixed(audience.into())))
}
