//! The key-set cache.
//!
//! - Keys are held for the key set's `Cache-Control: max-age` minus `Age`,
//!   counted from when the answer arrived, within 30 s and a day (so
//!   `max-age=0` cannot make every verification fetch, and a huge one
//!   cannot keep a withdrawn key trusted for ever).
//! - Reads are lock-free (an `ArcSwap` load); a verification never waits
//!   on a fetch while cached keys can serve: a refresh starts in the
//!   background a little before they lapse, and keys past their max-age
//!   keep serving (stale-while-revalidate, up to [`STALE_IF_ERROR`]) while
//!   that one refresh runs, however slow the endpoint is.
//! - One fetch at a time ([`Flight`]), in a task of its own: however many
//!   verifications wait, they share its outcome, failure included, and
//!   none that gives up aborts it.
//! - After a failed fetch, no new attempt for a while, counted from when
//!   the failure is recorded: an interval while cached keys serve; a short
//!   jittered window ([`NEGATIVE_CACHE`]) when none do, in which
//!   verifications fail fast with `KeysUnavailable` and make no request.
//! - An unknown `kid` triggers at most one refetch per interval, so random
//!   `kid`s cannot flood the key endpoint; lookups that arrive while a
//!   fetch runs wait for it instead of failing.
//! - A failing endpoint is logged once per outage.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RsaPublicKeyComponents,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use super::VerifyError;
use crate::clock::{Clock, later, unix_millis};
use crate::error::{EndpointProblem, Error};
use crate::flight::Flight;
use crate::http::{Answer, Http};

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
/// After a failed fetch with no keys to serve, verifications fail fast
/// (`KeysUnavailable`, a 503 from the layer) for this long, plus up to half
/// again at random so that many verifiers do not retry in step.
const NEGATIVE_CACHE: Duration = Duration::from_secs(5);
/// Longest a verification with an unknown `kid` waits for a key-set fetch.
const UNKNOWN_KID_WAIT: Duration = Duration::from_secs(3);
/// Longest head start of a background refresh before the keys lapse.
const MAX_REFRESH_AHEAD: Duration = Duration::from_secs(300);
/// The step named in fetch errors.
const STEP: &str = "key set";

/// A public key from a JWK set, parsed once when the key set arrives
/// (building the key from its JWK parts on every verification cost about
/// a quarter of a warm RS256 verification).
pub(crate) struct PublicKey {
    pub(crate) kind: KeyKind,
    pub(crate) parsed: ParsedPublicKey,
}

/// What a [`PublicKey`] is, and so which verifier kind may use it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    /// RSA, for RS256 (PKCS#1 v1.5, 2048 to 8192 bits).
    Rsa,
    /// P-256, for ES256.
    P256,
}

impl PublicKey {
    /// The same key: the same kind and the same SubjectPublicKeyInfo.
    pub(crate) fn same_as(&self, other: &PublicKey) -> bool {
        self.kind == other.kind && self.parsed.as_ref() == other.parsed.as_ref()
    }

    /// The key's SubjectPublicKeyInfo (DER), for its size.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn der_len(&self) -> usize {
        self.parsed.as_ref().len()
    }
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey")
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
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
    /// The one key-set fetch in flight, in a task of its own: every
    /// verification that needs it waits for that one, and none that gives
    /// up aborts it.
    flight: Flight<Result<Arc<KeySet>, VerifyError>>,
    /// When an unknown `kid` last caused a refetch (ms since the epoch).
    last_unknown_refetch_ms: AtomicU64,
    /// After a failed fetch: no new attempt before this (ms since the
    /// epoch), taken when the failure is recorded.
    retry_after_ms: AtomicU64,
    /// Why the last fetch failed, for verifications that fail fast in the
    /// window after it.
    last_error: Mutex<Option<Arc<Error>>>,
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
            flight: Flight::new(),
            last_unknown_refetch_ms: AtomicU64::new(0),
            retry_after_ms: AtomicU64::new(0),
            last_error: Mutex::new(None),
            warned: AtomicBool::new(false),
            interval,
            clock,
        }
    }

    /// The key for `kid`, fetching the key set when needed; `now` is the
    /// caller's clock reading (one per verification).
    pub(crate) async fn key(
        self: &Arc<Self>,
        kid: &str,
        now: SystemTime,
    ) -> Result<Arc<PublicKey>, VerifyError> {
        let unknown = || VerifyError::UnknownKey {
            kid: kid.to_owned(),
        };
        if let Some(set) = self.current.load_full()
            && now < later(set.expires_at, STALE_IF_ERROR)
        {
            // Valid, or past max-age but within stale-if-error: used at
            // once, while one refresh runs in the background.
            if now >= set.refresh_at {
                self.refresh_in_background(now);
            }
            if let Some(key) = set.keys.get(kid) {
                return Ok(Arc::clone(key));
            }
            return self.unknown_kid(kid, now).await.ok_or_else(unknown);
        }
        // Cold, or too old to serve. Right after a failed fetch, fail fast
        // instead of asking a failing endpoint once per verification.
        if unix_millis(now) < self.retry_after_ms.load(Ordering::Acquire) {
            return Err(VerifyError::KeysUnavailable {
                source: self.last_error(),
            });
        }
        let set = self.fetch_shared().await?;
        set.keys.get(kid).cloned().ok_or_else(unknown)
    }

    /// Whether the keys in hand, without waiting, list `kid` with the
    /// same key as `key`: false when the set is cold, too old to serve,
    /// or lists another key or none. Starts a background refresh when one
    /// is due, as [`Self::key`] does.
    pub(crate) fn still_lists(
        self: &Arc<Self>,
        kid: &str,
        key: &PublicKey,
        now: SystemTime,
    ) -> bool {
        let set = self.current.load();
        let Some(set) = set
            .as_ref()
            .filter(|s| now < later(s.expires_at, STALE_IF_ERROR))
        else {
            return false;
        };
        if now >= set.refresh_at {
            self.refresh_in_background(now);
        }
        set.keys
            .get(kid)
            .is_some_and(|k| std::ptr::eq(&**k, key) || k.same_as(key))
    }

    /// An unknown `kid` with usable keys: wait for the fetch in flight, or
    /// refetch at most once per interval; otherwise the key is unknown.
    /// The wait is short ([`UNKNOWN_KID_WAIT`]): a forged `kid` costs an
    /// attacker nothing, and must not hold a request for a slow endpoint's
    /// whole deadline. The fetch itself goes on.
    async fn unknown_kid(self: &Arc<Self>, kid: &str, now: SystemTime) -> Option<Arc<PublicKey>> {
        let lookup = || self.current.load().as_ref()?.keys.get(kid).cloned();
        // A fetch may have landed since the caller read the set.
        if let Some(key) = lookup() {
            return Some(key);
        }
        let may_start = || {
            unix_millis(now) >= self.retry_after_ms.load(Ordering::Acquire)
                && self.may_refetch_for_unknown_kid(now)
        };
        let wait = self
            .flight
            .join_or_start_if(may_start, || self.fetch_and_keep());
        let _ = tokio::time::timeout(UNKNOWN_KID_WAIT, wait).await;
        lookup()
    }

    /// True for one caller per interval (a compare-and-swap, so racing
    /// callers cannot all pass).
    fn may_refetch_for_unknown_kid(&self, now: SystemTime) -> bool {
        let now_ms = unix_millis(now);
        let last = self.last_unknown_refetch_ms.load(Ordering::Acquire);
        if last != 0 && now_ms.saturating_sub(last) < duration_ms(self.interval) {
            return false;
        }
        self.last_unknown_refetch_ms
            .compare_exchange(last, now_ms, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Starts one background refresh unless one runs or a failure is
    /// being waited out; verifications keep using the cached keys.
    fn refresh_in_background(self: &Arc<Self>, now: SystemTime) {
        if unix_millis(now) < self.retry_after_ms.load(Ordering::Acquire) {
            return;
        }
        self.flight.start(|| self.fetch_and_keep());
    }

    /// The outcome of the fetch in flight, or of one started now.
    async fn fetch_shared(self: &Arc<Self>) -> Result<Arc<KeySet>, VerifyError> {
        // A fetch that ends without an outcome (its runtime shut down) is
        // started again, a bounded number of times.
        let servable = || {
            let now = self.clock.now();
            self.current
                .load_full()
                .filter(|set| now < later(set.expires_at, STALE_IF_ERROR))
        };
        for _ in 0..3 {
            // Checked again under the flight's lock: a fetch that landed
            // since the caller looked leaves nothing to start.
            let needed = || servable().is_none();
            match self
                .flight
                .join_or_start_if(needed, || self.fetch_and_keep())
                .await
            {
                Some(outcome) => return outcome,
                None => {
                    if let Some(set) = servable() {
                        return Ok(set);
                    }
                }
            }
        }
        // The same cause as the token cache gives for its own dropped fetch.
        Err(VerifyError::KeysUnavailable {
            source: Arc::new(Error::InvalidArgument(format!(
                "the key set fetch from {} ended without an answer: its task was dropped (its runtime shut down), or no Tokio runtime is running",
                self.url
            ))),
        })
    }

    /// What the flight runs: one fetch; on success the new set replaces
    /// the old; on failure a recently expired set keeps serving, and no
    /// new attempt is made for a while from the moment the failure is
    /// recorded: an interval when cached keys still serve, a short
    /// jittered window when none do (verifications then fail fast).
    fn fetch_and_keep(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<Arc<KeySet>, VerifyError>> + Send + 'static {
        let this = Arc::clone(self);
        async move {
            let result = this.fetch().await;
            let now = this.clock.now();
            match result {
                Ok(set) => {
                    let set = Arc::new(set);
                    this.current.store(Some(Arc::clone(&set)));
                    this.retry_after_ms.store(0, Ordering::Release);
                    if this.warned.swap(false, Ordering::AcqRel) {
                        tracing::info!(url = %this.url, "key set endpoint answers again");
                    }
                    Ok(set)
                }
                Err(why) => {
                    let why = Arc::new(why);
                    let current = this.current.load_full();
                    let serving = current
                        .as_ref()
                        .is_some_and(|s| now < later(s.expires_at, STALE_IF_ERROR));
                    let wait = if serving {
                        this.interval
                    } else {
                        NEGATIVE_CACHE.mul_f64(1.0 + fastrand::f64() / 2.0)
                    };
                    // The cause first, the window second: whoever sees the
                    // window (Acquire) finds its cause.
                    *this.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                        Some(Arc::clone(&why));
                    this.retry_after_ms
                        .store(unix_millis(later(now, wait)), Ordering::Release);
                    if !this.warned.swap(true, Ordering::AcqRel) {
                        tracing::warn!(url = %this.url, error = %why, serving_cached = serving,
                            "key set fetch failed; logged once until it answers again");
                    }
                    match current {
                        Some(set) if serving => Ok(set),
                        _ => Err(VerifyError::KeysUnavailable { source: why }),
                    }
                }
            }
        }
    }

    fn last_error(&self) -> Arc<Error> {
        let last = self.last_error.lock().unwrap_or_else(|e| e.into_inner());
        last.clone().unwrap_or_else(|| {
            // Not reached: the window is opened only after its cause is kept.
            Arc::new(Error::endpoint(
                STEP,
                &self.url,
                EndpointProblem::InvalidResponse("the last fetch failed".into()),
            ))
        })
    }

    async fn fetch(&self) -> Result<KeySet, Error> {
        let url = self.url.as_str();
        let answer = Http::PUBLIC
            .send(STEP, url, |c| c.get(url), |_, _| "")
            .await?;
        let unusable =
            |why: String| Error::endpoint(STEP, url, EndpointProblem::InvalidResponse(why));
        let keys = usable_keys(&answer).map_err(unusable)?;
        if keys.is_empty() {
            return Err(unusable("the key set holds no usable keys".into()));
        }
        // Lifetimes count from the answer, not from the request: a slow
        // answer is no fresher than it is.
        let (refresh_at, expires_at) = key_set_times(&answer.headers, self.clock.now());
        Ok(KeySet {
            keys,
            refresh_at,
            expires_at,
        })
    }
}

/// The signing keys of a JWK-set answer, by `kid`; keys without a `kid`
/// or of a kind we do not use are skipped.
pub(crate) fn usable_keys(answer: &Answer) -> Result<HashMap<String, Arc<PublicKey>>, String> {
    let jwks: Jwks = answer.json()?;
    let mut keys = HashMap::new();
    for jwk in jwks.keys {
        if let (Some(kid), Some(key)) = (jwk.kid.clone(), jwk.to_key()) {
            keys.insert(kid, Arc::new(key));
        }
    }
    Ok(keys)
}

/// When a key set that arrived at `now` with these headers should be
/// refreshed, and when it expires: its `Cache-Control` lifetime (or an
/// hour) within [`MIN_MAX_AGE`] and [`MAX_MAX_AGE`].
pub(crate) fn key_set_times(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> (SystemTime, SystemTime) {
    let max_age = cache_lifetime(headers)
        .unwrap_or(DEFAULT_MAX_AGE)
        .clamp(MIN_MAX_AGE, MAX_MAX_AGE);
    let ahead = (max_age / 10).min(MAX_REFRESH_AHEAD);
    (later(now, max_age - ahead), later(now, max_age))
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
    /// The key, when it is a signing key of a kind we use and parses as
    /// one; `alg`, when given, must agree with the key type.
    fn to_key(&self) -> Option<PublicKey> {
        if self.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg_is = |want: &str| self.alg.as_deref().is_none_or(|a| a == want);
        match self.kty.as_str() {
            "RSA" if alg_is("RS256") => {
                let n = URL_SAFE_NO_PAD.decode(self.n.as_ref()?).ok()?;
                let e = URL_SAFE_NO_PAD.decode(self.e.as_ref()?).ok()?;
                let parsed = RsaPublicKeyComponents { n: &n, e: &e }
                    .to_parsed_public_key(&RSA_PKCS1_2048_8192_SHA256)
                    .ok()?;
                Some(PublicKey {
                    kind: KeyKind::Rsa,
                    parsed,
                })
            }
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
                let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).ok()?;
                Some(PublicKey {
                    kind: KeyKind::P256,
                    parsed,
                })
            }
            _ => None,
        }
    }
}

/// `Cache-Control: max-age` minus `Age`.
pub(crate) fn cache_lifetime(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
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

fn duration_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
