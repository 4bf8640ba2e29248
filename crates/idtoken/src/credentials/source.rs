//! [`IdTokenSource`]: ID tokens for one audience from one set of
//! credentials, held in the generic [`Cache`] (see `cache.rs` for the
//! rules: refresh ahead, one fetch at a time, never an expired token).

use std::fmt;
use std::time::{Duration, SystemTime};

use crate::cache::{Cache, Expiring, Fetcher};
use crate::error::Result;
use crate::token::IdToken;

use super::{Credentials, TokenOptions};

impl Expiring for IdToken {
    fn expires_at(&self) -> SystemTime {
        IdToken::expires_at(self)
    }
    fn lifetime(&self) -> Duration {
        IdToken::lifetime(self)
    }
}

/// ID tokens for one audience from one set of credentials.
pub(crate) struct IdFetch {
    creds: Credentials,
    audience: String,
    options: TokenOptions,
}

impl Fetcher for IdFetch {
    type Token = IdToken;
    fn now(&self) -> SystemTime {
        self.creds.clock().now()
    }
    fn now_coarse(&self) -> SystemTime {
        self.creds.clock().now_coarse()
    }
    async fn fetch(&self) -> Result<IdToken> {
        self.creds
            .fetch_id_token(&self.audience, &self.options)
            .await
    }
    fn label(&self) -> &str {
        &self.audience
    }
}

/// A cached, self-refreshing source of ID tokens for one audience.
///
/// Made by [`Credentials::token_source`]. Cheap to clone; clones share the
/// cache.
///
/// ```no_run
/// # async fn run() -> Result<(), idtoken::Error> {
/// let creds = idtoken::Credentials::discover().await?;
/// let source = creds.token_source("https://hello-abc123-uc.a.run.app");
/// let token = source.token().await?; // fetched
/// let again = source.token().await?; // cached: no request
/// assert_eq!(token.as_str(), again.as_str());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct IdTokenSource {
    cache: Cache<IdFetch>,
}

impl IdTokenSource {
    pub(crate) fn new(creds: Credentials, audience: String, options: TokenOptions) -> Self {
        Self {
            cache: Cache::new(IdFetch {
                creds,
                audience,
                options,
            }),
        }
    }

    /// The audience tokens are minted for.
    pub fn audience(&self) -> &str {
        &self.cache.fetcher().audience
    }

    /// The credentials tokens are minted with.
    pub fn credentials(&self) -> &Credentials {
        &self.cache.fetcher().creds
    }

    /// A valid token: the cached one when it has time left, else a fresh
    /// one. Never an expired token, and never a wait while the cached token
    /// is valid.
    pub async fn token(&self) -> Result<IdToken> {
        self.cache.get().await
    }

    /// The warm path of [`IdTokenSource::token`] without awaiting: the
    /// cached token while it is valid (starting a background refresh when
    /// one is due), `None` when a fetch is needed; then await
    /// [`IdTokenSource::token`]. For code that keeps its own futures small
    /// (a proxy, a client middleware): the future of `token()` carries the
    /// fetch's state, which the warm path never needs.
    ///
    /// ```no_run
    /// # async fn run(source: idtoken::IdTokenSource) -> Result<(), idtoken::Error> {
    /// let token = match source.ready() {
    ///     Some(token) => token,
    ///     None => Box::pin(source.token()).await?,
    /// };
    /// # let _ = token; Ok(()) }
    /// ```
    pub fn ready(&self) -> Option<IdToken> {
        self.cache.ready()
    }

    /// The cached token if it can still be used, without any I/O.
    pub fn cached(&self) -> Option<IdToken> {
        self.cache.cached()
    }

    /// What this source (and its clones) holds and has done: fetch counts,
    /// whether one runs now, the cached token's expiry. A few atomic loads
    /// and a clock read: no lock, no I/O, and no fetch started, so health
    /// checks and metrics may call it as often as they like.
    ///
    /// ```no_run
    /// # async fn run() -> Result<(), idtoken::Error> {
    /// let creds = idtoken::Credentials::discover().await?;
    /// let source = creds.token_source("https://hello-abc123-uc.a.run.app");
    /// source.token().await?;
    /// let stats = source.stats();
    /// assert_eq!(stats.fetches, 1);
    /// assert!(stats.usable);
    /// println!("token valid for {:?}", stats.expires_in);
    /// # Ok(()) }
    /// ```
    pub fn stats(&self) -> TokenSourceStats {
        let s = self.cache.stats();
        let expires_at = s.token.map(|(exp, _)| exp);
        TokenSourceStats {
            fetches: s.fetches,
            fetch_failures: s.fetch_failures,
            fetch_in_flight: s.fetch_in_flight,
            expires_at,
            // Past expiry, no time is left: zero, not an error.
            expires_in: expires_at.map(|exp| exp.duration_since(s.now).unwrap_or_default()),
            usable: s.token.is_some_and(|(_, usable)| usable),
        }
    }

    /// Starts the cache with `token`, one this source would have minted
    /// (the same credentials and audience) and kept elsewhere, such as the
    /// CLI's token cache across processes. Kept unless the cache holds a
    /// token that lasts as long; from then on the usual rules apply: it is
    /// refreshed ahead of [`IdToken::refresh_at`] in the background, and
    /// never handed out expired.
    pub fn seed(&self, token: IdToken) {
        self.cache.seed(token);
    }
}

/// What an [`IdTokenSource`] holds and has done so far, from
/// [`IdTokenSource::stats`]: for health checks and metrics. Never the
/// token itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSourceStats {
    /// Fetches started (first fetches and background refreshes alike),
    /// each counted once however many callers waited for it.
    pub fetches: u64,
    /// Fetches that failed (an error from the endpoint, or a token that
    /// arrived already too close to its expiry).
    pub fetch_failures: u64,
    /// Whether a fetch is running now. One source runs one at a time.
    pub fetch_in_flight: bool,
    /// When the cached token expires; `None` before the first token.
    pub expires_at: Option<SystemTime>,
    /// The cached token's time left by the credentials' clock; zero once
    /// it has expired, `None` before the first token.
    pub expires_in: Option<Duration>,
    /// Whether [`IdTokenSource::token`] would hand out the cached token
    /// now without waiting: a token is held, and it is not within its
    /// last margin (`min(10 s, lifetime / 10)`) before expiry.
    pub usable: bool,
}

impl IdToken {
    /// When the library's caches start refreshing this token in the
    /// background: `min(225 s, lifetime / 4)` before it expires. A token
    /// kept elsewhere is best reused only before this point.
    pub fn refresh_at(&self) -> SystemTime {
        crate::cache::refresh_at(self)
    }
}

impl fmt::Debug for IdTokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdTokenSource")
            .field("audience", &self.audience())
            .field("credentials", self.credentials())
            .field("cached", &self.cache.has_token())
            .finish()
    }
}
