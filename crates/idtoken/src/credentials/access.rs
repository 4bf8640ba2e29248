//! Access tokens: what source credentials fetch on the way to an ID token
//! (impersonation's caller, STS's federated token). [`AccessToken`] never
//! prints itself; [`SourceAccess`] fetches them for the shared cache.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use crate::cache::{Expiring, Fetcher};
use crate::clock::{Clock, later};
use crate::error::{EndpointProblem, Error, Result};
use crate::http::Answer;

use super::Flow;

/// The scope every access token here asks for.
pub(crate) const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// An OAuth2 access token. `Debug` never shows the token.
#[derive(Clone)]
pub(crate) struct AccessToken {
    secret: Arc<str>,
    expires_at: SystemTime,
    lifetime: Duration,
}

impl AccessToken {
    pub(crate) fn new(secret: &str, now: SystemTime, expires_in: Duration) -> Self {
        Self {
            secret: Arc::from(secret),
            expires_at: later(now, expires_in),
            lifetime: expires_in,
        }
    }

    /// The token, for an `Authorization: Bearer` header only.
    pub(crate) fn secret(&self) -> &str {
        &self.secret
    }

    /// Reads `{"access_token","expires_in"}` (OAuth2 and STS answers).
    pub(crate) fn from_answer(
        answer: &Answer,
        step: &'static str,
        url: &str,
        now: SystemTime,
    ) -> Result<Self> {
        #[derive(Deserialize)]
        struct OAuth {
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let bad = |why: String| Error::endpoint(step, url, EndpointProblem::InvalidResponse(why));
        let a: OAuth = answer.json().map_err(bad)?;
        let token = a
            .access_token
            .filter(|t| !t.is_empty())
            .ok_or_else(|| bad("the answer has no `access_token` field".into()))?;
        // Google's tokens live an hour; assume so when the field is absent.
        let expires_in = Duration::from_secs(a.expires_in.unwrap_or(3600));
        Ok(Self::new(&token, now, expires_in))
    }
}

impl Expiring for AccessToken {
    fn expires_at(&self) -> SystemTime {
        self.expires_at
    }
    fn lifetime(&self) -> Duration {
        self.lifetime
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A secret string from a credentials file (client secret, refresh token)
/// that never prints itself.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(s: String) -> Self {
        Self(Arc::from(s))
    }
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[censored]")
    }
}

/// Access tokens of a base flow, for the cache.
pub(crate) struct SourceAccess {
    pub(crate) flow: Flow,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Fetcher for SourceAccess {
    type Token = AccessToken;
    fn now(&self) -> SystemTime {
        self.clock.now()
    }
    async fn fetch(&self) -> Result<AccessToken> {
        self.flow.fetch_access_token(self.clock.now()).await
    }
    fn label(&self) -> &str {
        "source access token"
    }
}
