//! [`Cache`]: the token cache, generic over what fills it ([`Fetcher`])
//! and what it holds ([`Expiring`]), monomorphised per token type so the
//! ID-token path pays nothing for it. ID tokens per audience
//! (`credentials/source.rs`, `IdTokenSource`) and the access tokens fetched
//! on the way to one (impersonation's source credentials, STS) use it. It
//! knows nothing of credentials.
//!
//! - Reads are lock-free (`arc-swap`): a warm read is an atomic load, a
//!   clock read and a reference-count increment.
//! - A token enters its refresh window `min(225 s, lifetime / 4)` before
//!   `exp`: inside the metadata server's own ~4-minute renewal window, so a
//!   refresh gets a new token rather than the cached one back. The first
//!   caller in the window starts one background refresh and, like every
//!   caller while the token is valid, gets the cached token at once.
//! - A token is never handed out within `min(10 s, lifetime / 10)` of its
//!   expiry; then callers wait for one shared fetch.
//! - Concurrent callers on a cold cache share one fetch, and share its
//!   error if it fails. The fetch runs in a task of its own ([`Flight`]):
//!   a caller that gives up never aborts it, and a refresh dropped with its
//!   runtime does not keep later refreshes from starting.
//! - A fresh token is checked against the clock read after its answer
//!   arrived, so a slow fetch cannot hand out a token inside its margin.
//! - A failed background refresh keeps the valid token and retries after a
//!   bounded, jittered backoff (1 s doubling to 60 s).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

use crate::clock::{earlier, later, unix_millis, unix_seconds};
use crate::error::{Error, Result};
use crate::flight::Flight;

/// A token with an expiry, as the cache needs it.
pub(crate) trait Expiring: Clone + Send + Sync + 'static {
    /// When it stops being valid.
    fn expires_at(&self) -> SystemTime;
    /// Its whole lifetime, for the refresh-ahead fraction.
    fn lifetime(&self) -> Duration;
}

/// What fills a [`Cache`]: one fetch of one kind of token.
pub(crate) trait Fetcher: Send + Sync + 'static {
    /// The token kind.
    type Token: Expiring;
    /// Now, from the credentials' clock.
    fn now(&self) -> SystemTime;
    /// Now, possibly a few milliseconds behind, for the warm path.
    fn now_coarse(&self) -> SystemTime {
        self.now()
    }
    /// Fetches one new token.
    fn fetch(&self) -> impl std::future::Future<Output = Result<Self::Token>> + Send;
    /// What the tokens are for, in logs.
    fn label(&self) -> &str;
}

/// The longest a refresh starts ahead of expiry. The metadata server hands
/// out its cached token until about 4 minutes before `exp`, so refreshing
/// earlier would just get the same token back.
pub(crate) const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(225);
/// A token is not handed out when it has less than this left.
pub(crate) const MIN_REMAINING: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// The cache core: lock-free reads, one fetch at a time, refresh ahead.
pub(crate) struct Cache<F: Fetcher> {
    shared: Arc<Shared<F>>,
}

impl<F: Fetcher> Clone for Cache<F> {
    fn clone(&self) -> Self {
        Self {
            shared: Arc::clone(&self.shared),
        }
    }
}

struct Shared<F: Fetcher> {
    fetcher: F,
    current: ArcSwapOption<Cached<F::Token>>,
    /// The one fetch in flight, foreground or background, in a task of its
    /// own so that no caller's cancellation aborts it.
    flight: Flight<Result<F::Token>>,
    failures: AtomicU32,
    /// No background refresh before this time (ms since the epoch).
    retry_after_ms: AtomicU64,
    /// Fetches started and fetches failed, ever: for [`Cache::stats`],
    /// counted off the warm path (once per fetch).
    fetches: AtomicU64,
    fetch_failures: AtomicU64,
}

/// What a [`Cache`] holds and has done, read without I/O or locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CacheStats {
    pub(crate) fetches: u64,
    pub(crate) fetch_failures: u64,
    pub(crate) fetch_in_flight: bool,
    /// The cached token's expiry and whether it may still be handed out.
    pub(crate) token: Option<(SystemTime, bool)>,
    /// Now, from the fetcher's clock, read once for the whole snapshot.
    pub(crate) now: SystemTime,
}

#[derive(Debug, PartialEq, Eq)]
enum Phase {
    Fresh,
    RefreshDue,
    Expired,
}

/// A token with its refresh and expiry thresholds worked out once, so the
/// hot path is two comparisons.
struct Cached<T> {
    token: T,
    refresh_at: SystemTime,
    usable_until: SystemTime,
}

/// When a cache refreshes `token`: `min(225 s, lifetime / 4)` before it
/// expires. The one place this rule lives; `IdToken::refresh_at` and the
/// CLI's token cache ask here.
pub(crate) fn refresh_at<T: Expiring>(token: &T) -> SystemTime {
    earlier(
        token.expires_at(),
        MAX_REFRESH_AHEAD.min(token.lifetime() / 4),
    )
}

impl<T: Expiring> Cached<T> {
    fn new(token: T) -> Self {
        let life = token.lifetime();
        let exp = token.expires_at();
        Self {
            refresh_at: refresh_at(&token),
            usable_until: earlier(exp, MIN_REMAINING.min(life / 10)),
            token,
        }
    }

    fn phase(&self, now: SystemTime) -> Phase {
        if now >= self.usable_until {
            Phase::Expired
        } else if now >= self.refresh_at {
            Phase::RefreshDue
        } else {
            Phase::Fresh
        }
    }
}

impl<F: Fetcher> Cache<F> {
    pub(crate) fn new(fetcher: F) -> Self {
        Self {
            shared: Arc::new(Shared {
                fetcher,
                current: ArcSwapOption::empty(),
                flight: Flight::new(),
                failures: AtomicU32::new(0),
                retry_after_ms: AtomicU64::new(0),
                fetches: AtomicU64::new(0),
                fetch_failures: AtomicU64::new(0),
            }),
        }
    }

    /// A valid token: the cached one when it has time left, else a fresh one.
    pub(crate) async fn get(&self) -> Result<F::Token> {
        match self.ready() {
            Some(token) => Ok(token),
            None => Shared::fetch_now(&self.shared).await,
        }
    }

    /// The cached token while it is valid, starting a background refresh
    /// when one is due; `None` when a fetch is needed.
    pub(crate) fn ready(&self) -> Option<F::Token> {
        let now = self.shared.fetcher.now_coarse();
        let guard = self.shared.current.load();
        let cached = guard.as_ref()?;
        match cached.phase(now) {
            Phase::Fresh => Some(cached.token.clone()),
            Phase::RefreshDue => {
                Shared::start_background_refresh(&self.shared, now);
                Some(cached.token.clone())
            }
            Phase::Expired => None,
        }
    }

    /// The cached token if it can still be used, without any I/O.
    pub(crate) fn cached(&self) -> Option<F::Token> {
        let now = self.shared.fetcher.now_coarse();
        let guard = self.shared.current.load();
        let cached = guard.as_ref()?;
        (cached.phase(now) != Phase::Expired).then(|| cached.token.clone())
    }

    /// What fills this cache.
    pub(crate) fn fetcher(&self) -> &F {
        &self.shared.fetcher
    }

    /// Puts `token` in the cache unless it holds one that lasts as long;
    /// no fetch, no refresh started. Whatever phase the token is in, the
    /// usual rules apply from here: a token past its refresh point starts
    /// a background refresh on the next read, an expired one is never
    /// handed out.
    pub(crate) fn seed(&self, token: F::Token) {
        let fresh = Arc::new(Cached::new(token));
        self.shared.current.rcu(|current| match current {
            Some(old) if old.token.expires_at() >= fresh.token.expires_at() => {
                Some(Arc::clone(old))
            }
            _ => Some(Arc::clone(&fresh)),
        });
    }

    /// Whether a token is cached (usable or not).
    pub(crate) fn has_token(&self) -> bool {
        self.shared.current.load().is_some()
    }

    /// A snapshot of the counters and the cached token's expiry: a few
    /// atomic loads, no lock, no I/O, no fetch started.
    pub(crate) fn stats(&self) -> CacheStats {
        let now = self.shared.fetcher.now();
        let guard = self.shared.current.load();
        CacheStats {
            fetches: self.shared.fetches.load(Ordering::Relaxed),
            fetch_failures: self.shared.fetch_failures.load(Ordering::Relaxed),
            fetch_in_flight: self.shared.flight.in_flight(),
            token: guard
                .as_ref()
                .map(|c| (c.token.expires_at(), c.phase(now) != Phase::Expired)),
            now,
        }
    }
}

impl<F: Fetcher> Shared<F> {
    /// A usable token, waiting for the fetch in flight or starting one.
    /// Everyone waiting shares its outcome, error included.
    async fn fetch_now(this: &Arc<Self>) -> Result<F::Token> {
        // A fetch that ends without an outcome (its runtime shut down) is
        // started again, a bounded number of times.
        for _ in 0..3 {
            if let Some(cached) = &*this.current.load()
                && cached.phase(this.fetcher.now()) != Phase::Expired
            {
                return Ok(cached.token.clone());
            }
            // Checked again under the flight's lock: a fetch that landed
            // since the check above leaves nothing to start.
            let needed = || {
                this.current
                    .load()
                    .as_ref()
                    .is_none_or(|c| c.phase(this.fetcher.now()) == Phase::Expired)
            };
            let fetch = || Self::fetch_and_keep(this);
            if let Some(outcome) = this.flight.join_or_start_if(needed, fetch).await {
                return outcome;
            }
        }
        Err(Error::InvalidArgument(format!(
            "the token fetch for {} ended without an answer: its task was dropped (its runtime shut down), or no Tokio runtime is running",
            this.fetcher.label()
        )))
    }

    /// Starts one background refresh unless one is running, backing off
    /// after failures; callers keep the valid token meanwhile.
    fn start_background_refresh(this: &Arc<Self>, now: SystemTime) {
        if unix_millis(now) < this.retry_after_ms.load(Ordering::Acquire) {
            return;
        }
        // Without a runtime (a caller outside Tokio) nothing starts, and
        // the next call tries again.
        this.flight.start(|| Self::fetch_and_keep(this));
    }

    /// The fetch the flight runs: fetch, check against the clock read
    /// after the answer arrived, keep the token if it is newer, and back
    /// off after a failure.
    fn fetch_and_keep(this: &Arc<Self>) -> impl Future<Output = Result<F::Token>> + Send + 'static {
        let this = Arc::clone(this);
        async move {
            this.fetches.fetch_add(1, Ordering::Relaxed);
            let result = this.fetcher.fetch().await;
            // After the fetch, not before: a slow answer can be stale.
            let now = this.fetcher.now();
            let fresh = match result.map(Cached::new) {
                Ok(fresh) if fresh.phase(now) == Phase::Expired => Err(Error::StaleToken {
                    exp: unix_seconds(fresh.token.expires_at()),
                    now: unix_seconds(now),
                }),
                other => other,
            };
            match fresh {
                Ok(fresh) => {
                    if fresh.phase(now) == Phase::Fresh {
                        this.failures.store(0, Ordering::Release);
                        this.retry_after_ms.store(0, Ordering::Release);
                    } else {
                        // The server handed back a token that is itself
                        // due for refresh (a metadata server still
                        // caching): wait before asking again.
                        this.back_off(now, None);
                    }
                    let token = fresh.token.clone();
                    let current = this.current.load();
                    let newer = current
                        .as_ref()
                        .is_none_or(|old| fresh.token.expires_at() >= old.token.expires_at());
                    if newer {
                        this.current.store(Some(Arc::new(fresh)));
                        return Ok(token);
                    }
                    match current.as_ref() {
                        Some(old) if old.phase(now) != Phase::Expired => Ok(old.token.clone()),
                        _ => Ok(token),
                    }
                }
                Err(err) => {
                    this.fetch_failures.fetch_add(1, Ordering::Relaxed);
                    // A warning only while a usable token is kept: without
                    // one the error goes to the caller, who reports it.
                    let kept = this
                        .current
                        .load()
                        .as_ref()
                        .is_some_and(|c| c.phase(now) != Phase::Expired);
                    this.back_off(now, Some((&err, kept)));
                    Err(err)
                }
            }
        }
    }

    /// `err`: the failure, and whether a usable token is kept meanwhile.
    fn back_off(&self, now: SystemTime, err: Option<(&Error, bool)>) {
        let failures = self
            .failures
            .fetch_add(1, Ordering::AcqRel)
            .saturating_add(1);
        let base = Duration::from_secs(1)
            .saturating_mul(1 << failures.saturating_sub(1).min(6))
            .min(MAX_BACKOFF);
        let wait = base + base.mul_f64(fastrand::f64() / 2.0);
        self.retry_after_ms
            .store(unix_millis(later(now, wait)), Ordering::Release);
        if let Some((err, kept)) = err {
            if failures == 1 && kept {
                tracing::warn!(token_for = %self.fetcher.label(), error = %err, "ID token fetch failed; keeping the valid token, retrying in the background after {wait:?}");
            } else if failures == 1 {
                tracing::debug!(token_for = %self.fetcher.label(), error = %err, "ID token fetch failed; no token held, the caller gets the error");
            } else {
                tracing::debug!(token_for = %self.fetcher.label(), failures, error = %err, "ID token fetch failed again");
            }
        }
    }
}
