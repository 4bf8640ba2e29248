//! The key-set cache.
//!
//! - Keys are held for the key set's `Cache-Control: max-age` minus `Age`
//!   (at least 30 s, so `max-age=0` cannot make every verification fetch).
//! - Reads are lock-free (an `ArcSwap` load); a verification never waits
//!   on a fetch while the cached keys are valid: a refresh starts in the
//!   background a little before they lapse.
//! - One fetch at a time, however many verifications wait (a mutex held
//!   across the fetch; whoever waited uses the fresh result).
//! - An unknown `kid` triggers at most one refetch per interval, so random
//!   `kid`s cannot flood the key endpoint; lookups that arrive while that
//!   refetch runs wait for it instead of failing.
//! - When the endpoint fails, cached keys keep serving for up to
//!   [`STALE_IF_ERROR`] past their expiry, a retry is made at most once per
//!   interval, and the failure is logged once per outage.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::VerifyError;
use crate::clock::{Clock, later};
use crate::http::Http;

/// Used when the key set carries no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long past their expiry cached keys serve while the endpoint fails.
pub(crate) const STALE_IF_ERROR: Duration = Duration::from_secs(24 * 3600);
/// Shortest time a key set is held, whatever `max-age` says: a key set
/// served with `max-age=0` (or an `Age` past it) must not turn every
/// verification into a fetch.
const MIN_MAX_AGE: Duration = Duration::from_secs(30);
/// Longest time a key set is held, whatever `max-age` says: Google's say
/// about six hours, and a key Google has withdrawn must not stay trusted
/// for longer than a day because of a huge `max-age`.
const MAX_MAX_AGE: Duration = Duration::from_secs(24 * 3600);
/// Longest head start of a background refresh before the keys lapse.
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);

/// A public key from a JWK set.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    /// RSA modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// A P-256 point, uncompressed (`04 || x || y`).
    P256 { point: Vec<u8> },
}

struct KeySet {
    keys: HashMap<String, Arc<PublicKey>>,
    /// When a background refresh should start.
    refresh_at: SystemTime,
    expires_at: SystemTime,
}

pub(crate) struct KeyCache {
    url: String,
    current: ArcSwapOption<KeySet>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// When an unknown `kid` last caused a refetch (ms since the epoch).
    last_unknown_refetch_ms: AtomicU64,
    /// After a failed fetch: no new attempt before this (ms since the epoch).
    retry_after_ms: AtomicU64,
    /// A background refresh is running.
    refreshing: AtomicBool,
    /// The current outage has been logged.
    warned: AtomicBool,
    interval: Duration,
    clock: Arc<dyn Clock>,
}

impl KeyCache {
    pub(crate) fn new(url: String, interval: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            url,
            current: ArcSwapOption::empty(),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_unknown_refetch_ms: AtomicU64::new(0),
            retry_after_ms: AtomicU64::new(0),
            refreshing: AtomicBool::new(false),
            warned: AtomicBool::new(false),
            interval,
            clock,
        }
    }

    /// The key for `kid`, fetching the key set when needed.
    pub(crate) async fn key(self: &Arc<Self>, kid: &str) -> Result<Arc<PublicKey>, VerifyError> {
        let now = self.clock.now();
        let unknown = || VerifyError::UnknownKey(kid.to_owned());
        if let Some(set) = self.current.load_full() {
            let valid = now < set.expires_at;
            let stale_ok = now < later(set.expires_at, STALE_IF_ERROR)
                && millis(now) < self.retry_after_ms.load(Ordering::Acquire);
            if valid || stale_ok {
                if valid && now >= set.refresh_at {
                    self.refresh_in_background();
                }
                if let Some(key) = set.keys.get(kid) {
                    return Ok(Arc::clone(key));
                }
                return self.unknown_kid(kid, &set).await.ok_or_else(unknown);
            }
        }
        // Cold, expired, or stale with a retry due: fetch and wait for it.
        let set = self.refresh(None).await?;
        set.keys.get(kid).cloned().ok_or_else(unknown)
    }

    /// An unknown `kid` with usable keys: refetch at most once per interval;
    /// lookups during that refetch wait for it.
    async fn unknown_kid(&self, kid: &str, seen: &Arc<KeySet>) -> Option<Arc<PublicKey>> {
        let guard = self.fetch_lock.lock().await;
        if let Some(set) = self.current.load_full()
            && !Arc::ptr_eq(&set, seen)
        {
            return set.keys.get(kid).cloned();
        }
        let now = self.clock.now();
        if !self.may_refetch_for_unknown_kid(now) {
            return None;
        }
        let set = self.refresh(Some(guard)).await.ok()?;
        set.keys.get(kid).cloned()
    }

    fn may_refetch_for_unknown_kid(&self, now: SystemTime) -> bool {
        let now_ms = millis(now);
        let last = self.last_unknown_refetch_ms.load(Ordering::Acquire);
        if last != 0 && now_ms.saturating_sub(last) < duration_ms(self.interval) {
            return false;
        }
        self.last_unknown_refetch_ms
            .store(now_ms, Ordering::Release);
        true
    }

    /// Starts one background refresh (if none is running and a runtime is
    /// at hand); verifications keep using the cached keys meanwhile.
    fn refresh_in_background(self: &Arc<Self>) {
        if millis(self.clock.now()) < self.retry_after_ms.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.refreshing.swap(true, Ordering::AcqRel) {
            return;
        }
        let this = Arc::clone(self);
        handle.spawn(async move {
            let before = this.current.load_full();
            let guard = this.fetch_lock.lock().await;
            let after = this.current.load_full();
            let someone_else = match (&before, &after) {
                (Some(b), Some(a)) => !Arc::ptr_eq(b, a),
                _ => false,
            };
            if !someone_else {
                let _ = this.refresh(Some(guard)).await;
            }
            this.refreshing.store(false, Ordering::Release);
        });
    }

    /// Fetches the key set, one fetch at a time. Callers that waited for
    /// another's fetch use its result. On failure a recently expired set
    /// keeps serving and the next attempt waits an interval.
    async fn refresh(
        &self,
        held: Option<tokio::sync::MutexGuard<'_, ()>>,
    ) -> Result<Arc<KeySet>, VerifyError> {
        let _fetching = match held {
            Some(guard) => guard,
            None => {
                let before = self.current.load_full();
                let guard = self.fetch_lock.lock().await;
                let now = self.clock.now();
                if let Some(set) = self.current.load_full() {
                    let changed = before.as_ref().is_none_or(|b| !Arc::ptr_eq(b, &set));
                    let stale_ok = now < later(set.expires_at, STALE_IF_ERROR)
                        && millis(now) < self.retry_after_ms.load(Ordering::Acquire);
                    if (changed && now < set.expires_at) || stale_ok {
                        return Ok(set);
                    }
                }
                guard
            }
        };
        let now = self.clock.now();
        match self.fetch(now).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.current.store(Some(Arc::clone(&set)));
                self.retry_after_ms.store(0, Ordering::Release);
                if self.warned.swap(false, Ordering::AcqRel) {
                    tracing::info!(url = %self.url, "key set endpoint answers again");
                }
                Ok(set)
            }
            Err(why) => {
                let retry = millis(now).saturating_add(duration_ms(self.interval));
                self.retry_after_ms.store(retry, Ordering::Release);
                let current = self.current.load_full();
                let serving = current
                    .as_ref()
                    .is_some_and(|s| now < later(s.expires_at, STALE_IF_ERROR));
                if !self.warned.swap(true, Ordering::AcqRel) {
                    tracing::warn!(url = %self.url, error = %why, serving_cached = serving,
                        "key set fetch failed; logged once until it answers again");
                }
                match current {
                    Some(set) if serving => Ok(set),
                    _ => Err(VerifyError::KeysUnavailable(why)),
                }
            }
        }
    }

    async fn fetch(&self, now: SystemTime) -> Result<KeySet, String> {
        let url = self.url.as_str();
        let answer = Http::PUBLIC
            .send("key set", url, |c| c.get(url), |_, _| "")
            .await
            .map_err(|e| e.to_string())?;
        let max_age = cache_lifetime(&answer.headers)
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
        let jwks: Jwks = answer.json()?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            if let (Some(kid), Some(key)) = (jwk.kid.clone(), jwk.to_key()) {
                keys.insert(kid, Arc::new(key));
            }
        }
        if keys.is_empty() {
            return Err(format!("the key set at {url} holds no usable keys"));
        }
        let ahead = (max_age / 10).min(MAX_REFRESH_AHEAD);
        Ok(KeySet {
            keys,
            refresh_at: later(now, max_age - ahead),
            expires_at: later(now, max_age),
        })
    }
}

#[derive(Deserialize)]
struct Jwks {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    alg: Option<String>,
    n: Option<String>,
    e: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

impl Jwk {
    /// The key, when it is a signing key of a kind we use; `alg`, when
    /// given, must agree with the key type.
    fn to_key(&self) -> Option<PublicKey> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg_is = |want: &str| self.alg.as_deref().is_none_or(|a| a == want);
        match self.kty.as_str() {
            "RSA" if alg_is("RS256") => Some(PublicKey::Rsa {
                n: URL_SAFE_NO_PAD.decode(self.n.as_ref()?).ok()?,
                e: URL_SAFE_NO_PAD.decode(self.e.as_ref()?).ok()?,
            }),
            "EC" if alg_is("ES256") && self.crv.as_deref() == Some("P-256") => {
                let x = URL_SAFE_NO_PAD.decode(self.x.as_ref()?).ok()?;
                let y = URL_SAFE_NO_PAD.decode(self.y.as_ref()?).ok()?;
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                Some(PublicKey::P256 { point })
            }
            _ => None,
        }
    }
}

/// `Cache-Control: max-age` minus `Age`.
fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let cc = headers.get(reqwest::header::CACHE_CONTROL)?.to_str().ok()?;
    let max_age: u64 = cc
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|v| v.trim().parse().ok())?;
    let age: u64 = headers
        .get(reqwest::header::AGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0);
    Some(Duration::from_secs(max_age.saturating_sub(age)))
}

fn millis(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
