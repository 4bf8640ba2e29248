//! The key-set cache: keys held for the key set's `Cache-Control: max-age`
//! (minus `Age`), lock-free reads, one fetch at a time, refetch on an
//! unknown `kid` at most once per interval, and cached keys kept serving
//! (bounded) while the key endpoint fails.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwapOption;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::VerifyError;
use crate::clock::Clock;
use crate::http::Http;

/// Used when the key set carries no `max-age`.
const DEFAULT_MAX_AGE: Duration = Duration::from_secs(3600);
/// How long past their expiry cached keys serve while the endpoint fails.
const STALE_IF_ERROR: Duration = Duration::from_secs(24 * 3600);

/// A public key from a JWK set.
#[derive(Debug, Clone)]
pub(crate) enum PublicKey {
    Rsa { n: Vec<u8>, e: Vec<u8> },
}

struct KeySet {
    keys: HashMap<String, PublicKey>,
    expires_at: SystemTime,
}

pub(crate) struct KeyCache {
    url: String,
    current: ArcSwapOption<KeySet>,
    fetch_lock: tokio::sync::Mutex<()>,
    /// When an unknown `kid` last caused a refetch (ms since the epoch).
    last_unknown_refetch_ms: AtomicU64,
    unknown_kid_interval: Duration,
    clock: Arc<dyn Clock>,
}

impl KeyCache {
    pub(crate) fn new(url: String, unknown_kid_interval: Duration, clock: Arc<dyn Clock>) -> Self {
        Self {
            url,
            current: ArcSwapOption::empty(),
            fetch_lock: tokio::sync::Mutex::new(()),
            last_unknown_refetch_ms: AtomicU64::new(0),
            unknown_kid_interval,
            clock,
        }
    }

    /// The key for `kid`, fetching the key set when needed.
    pub(crate) async fn key(&self, kid: &str) -> Result<PublicKey, VerifyError> {
        let now = self.clock.now();
        if let Some(set) = &*self.current.load()
            && now < set.expires_at
        {
            if let Some(key) = set.keys.get(kid) {
                return Ok(key.clone());
            }
            if !self.may_refetch_for_unknown_kid(now) {
                return Err(VerifyError::UnknownKey(kid.to_owned()));
            }
        }
        let set = self.refresh().await?;
        set.keys
            .get(kid)
            .cloned()
            .ok_or_else(|| VerifyError::UnknownKey(kid.to_owned()))
    }

    fn may_refetch_for_unknown_kid(&self, now: SystemTime) -> bool {
        let now_ms = millis(now);
        let last = self.last_unknown_refetch_ms.load(Ordering::Acquire);
        let interval = u64::try_from(self.unknown_kid_interval.as_millis()).unwrap_or(u64::MAX);
        now_ms.saturating_sub(last) >= interval
            && self
                .last_unknown_refetch_ms
                .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
    }

    /// Fetches the key set (one fetch at a time); on failure keeps serving
    /// a recently expired set.
    async fn refresh(&self) -> Result<Arc<KeySet>, VerifyError> {
        let before = self.current.load_full();
        let _fetching = self.fetch_lock.lock().await;
        let now = self.clock.now();
        let after = self.current.load_full();
        // Someone else fetched while we waited: use their result.
        if let Some(set) = &after {
            let changed = before.as_ref().is_none_or(|b| !Arc::ptr_eq(b, set));
            if changed && now < set.expires_at {
                return Ok(Arc::clone(set));
            }
        }
        match self.fetch(now).await {
            Ok(set) => {
                let set = Arc::new(set);
                self.current.store(Some(Arc::clone(&set)));
                Ok(set)
            }
            Err(why) => match after {
                Some(set) if now < set.expires_at + STALE_IF_ERROR => {
                    tracing::warn!(url = %self.url, error = %why, "key set refresh failed; serving cached keys");
                    Ok(set)
                }
                _ => Err(VerifyError::KeysUnavailable(why)),
            },
        }
    }

    async fn fetch(&self, now: SystemTime) -> Result<KeySet, String> {
        let url = self.url.as_str();
        let answer = Http::PUBLIC
            .send("key set", url, |c| c.get(url), |_, _| "")
            .await
            .map_err(|e| e.to_string())?;
        let max_age = cache_lifetime(&answer.headers).unwrap_or(DEFAULT_MAX_AGE);
        let jwks: Jwks = answer.json()?;
        let mut keys = HashMap::new();
        for jwk in jwks.keys {
            if let (Some(kid), Some(key)) = (jwk.kid.clone(), jwk.to_key()) {
                keys.insert(kid, key);
            }
        }
        if keys.is_empty() {
            return Err(format!("the key set at {url} holds no usable keys"));
        }
        Ok(KeySet {
            keys,
            expires_at: now + max_age,
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
    n: Option<String>,
    e: Option<String>,
}

impl Jwk {
    fn to_key(&self) -> Option<PublicKey> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        match self.kty.as_str() {
            "RSA" => Some(PublicKey::Rsa {
                n: URL_SAFE_NO_PAD.decode(self.n.as_ref()?).ok()?,
                e: URL_SAFE_NO_PAD.decode(self.e.as_ref()?).ok()?,
            }),
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
