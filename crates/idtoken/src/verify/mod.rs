//! Verifying Google-signed tokens on the receiving side.
//!
//! A [`Verifier`] is of one [`Kind`]:
//!
//! | kind | algorithm | key set | issuers |
//! |---|---|---|---|
//! | [`Kind::Google`] | RS256 | [`GOOGLE_JWKS_URL`] | [`GOOGLE_ISSUERS`] |
//! | [`Kind::Iap`] | ES256 (P-256) | [`IAP_JWKS_URL`] | [`IAP_ISSUER`] |
//!
//! The algorithm is fixed by the kind and by the key the `kid` names, never
//! chosen by the token's header: `none`, HMAC and any other `alg` are
//! refused. Then `iss`, `aud` (exactly one), `exp`/`iat`/`nbf` with a small
//! skew, the lifetime, and optionally the email and hosted domain are
//! checked, all before any key is fetched; malformed input never causes
//! network traffic. Keys are cached per `Cache-Control` (see the key cache
//! in `jwks.rs`).

mod claims;
mod error;
pub(crate) mod jwks;
mod verified;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

pub use error::{BuildError, VerifyError};
use jwks::KeyCache;

use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::token::Claims;
use claims::Policy;
use verified::Verified;

/// Google's OIDC key set.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Issuers Google puts in ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];
/// IAP's key set (ES256).
pub const IAP_JWKS_URL: &str = "https://www.gstatic.com/iap/verify/public_key-jwk";
/// The issuer of IAP's signed headers.
pub const IAP_ISSUER: &str = "https://cloud.google.com/iap";
/// The header IAP puts its signed assertion in.
pub const IAP_HEADER: &str = "x-goog-iap-jwt-assertion";

/// Which tokens a verifier checks; fixes the algorithm, key set and issuers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Google OIDC ID tokens: RS256 with Google's JWK set.
    Google,
    /// IAP's signed headers (`x-goog-iap-jwt-assertion`): ES256 with IAP's key set.
    Iap,
}

impl Kind {
    /// The one JWS algorithm this kind accepts.
    pub fn algorithm(self) -> &'static str {
        match self {
            Kind::Google => "RS256",
            Kind::Iap => "ES256",
        }
    }

    fn default_issuers(self) -> Vec<String> {
        match self {
            Kind::Google => GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            Kind::Iap => vec![IAP_ISSUER.to_owned()],
        }
    }

    fn default_jwks_url(self) -> &'static str {
        match self {
            Kind::Google => GOOGLE_JWKS_URL,
            Kind::Iap => IAP_JWKS_URL,
        }
    }
}

/// Checks Google ID tokens or IAP assertions. Cheap to clone; clones share
/// the key cache.
///
/// ```no_run
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = idtoken::Verifier::builder()
///     .audience("https://my-service-abc123-uc.a.run.app")
///     .build()?;
/// let claims = verifier.verify(token).await?;
/// println!("caller: {:?}", claims.email);
///
/// let iap = idtoken::Verifier::iap()
///     .audience("/projects/123456789012/global/backendServices/987")
///     .build()?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Policy,
    keys: Arc<KeyCache>,
    clock: Arc<dyn Clock>,
    /// Tokens whose signature verified; `None` when turned off.
    verified: Option<Verified>,
    /// Signature checks made (cache misses that got that far).
    signature_checks: AtomicU64,
}

/// What a [`Verifier`] has done so far, from [`Verifier::stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifierStats {
    /// Public-key signature checks made: verifications that the
    /// verified-token cache could not answer and that got past every
    /// check that needs no key.
    pub signature_checks: u64,
    /// Tokens in the verified-token cache.
    pub cached_tokens: u64,
    /// The verified-token cache's weight (about its bytes), at most the
    /// bound set by [`VerifierBuilder::verified_cache_capacity`].
    pub cached_bytes: u64,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("kind", &self.policy.kind)
            .field("audiences", &self.policy.audiences)
            .field("issuers", &self.policy.issuers)
            .field("skew", &self.policy.skew)
            .finish_non_exhaustive()
    }
}

/// A token that passed [`Verifier::check_offline`]: all that is left is
/// its signature.
pub(crate) struct Offline<'t> {
    /// `header.payload`, what the signature covers.
    pub signing_input: &'t str,
    pub signature: Vec<u8>,
    /// The header's `kid`.
    pub kid: String,
    pub claims: Claims,
}

/// Configures a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    policy: Policy,
    jwks_url: String,
    unknown_kid_interval: Duration,
    clock: Arc<dyn Clock>,
    verified_cache_bytes: u64,
}

impl Verifier {
    /// Starts configuring a verifier for Google ID tokens (RS256).
    pub fn builder() -> VerifierBuilder {
        Self::builder_for(Kind::Google)
    }

    /// Starts configuring a verifier for IAP's signed headers (ES256).
    pub fn iap() -> VerifierBuilder {
        Self::builder_for(Kind::Iap)
    }

    /// Starts configuring a verifier of the given kind.
    pub fn builder_for(kind: Kind) -> VerifierBuilder {
        VerifierBuilder {
            policy: Policy {
                kind,
                audiences: Vec::new(),
                issuers: kind.default_issuers(),
                skew: Duration::from_secs(30),
                max_lifetime: Duration::from_secs(24 * 3600),
                emails: Vec::new(),
                domains: Vec::new(),
                hosted_domain: None,
            },
            jwks_url: kind.default_jwks_url().to_owned(),
            unknown_kid_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
            verified_cache_bytes: verified::DEFAULT_CAPACITY_BYTES,
        }
    }

    /// The kind of tokens this verifier checks.
    pub fn kind(&self) -> Kind {
        self.inner.policy.kind
    }

    /// Verifies `token` and returns its claims.
    ///
    /// Everything that can be checked without keys is checked first, so a
    /// malformed or expired token costs no network traffic. A token whose
    /// signature verified before is answered from the verified-token cache
    /// (see [`VerifierBuilder::verified_cache_capacity`]) after its claims
    /// are checked again at the current time and its key is found still
    /// in the key set.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        if let Some(verified) = &inner.verified
            && let Some(hit) = verified.get(token)
        {
            let now = inner.clock.now();
            if let Err(e) = inner.policy.check(&hit.claims, unix_seconds(now)) {
                verified.remove(token);
                return Err(e);
            }
            if inner.keys.still_lists(&hit.kid, &hit.key, now) {
                return Ok(hit.claims.clone());
            }
            // The key left the key set (or the set is too old to serve):
            // verify afresh, which fetches or refuses.
            verified.remove(token);
        }
        let kind = inner.policy.kind;
        let now = inner.clock.now();
        let Offline {
            signing_input,
            signature,
            kid,
            claims,
        } = self.check_offline(token, unix_seconds(now))?;
        let key = inner.keys.key(&kid, now).await?;
        let expected = match kind {
            Kind::Google => jwks::KeyKind::Rsa,
            Kind::Iap => jwks::KeyKind::P256,
        };
        if key.kind != expected {
            return Err(VerifyError::KeyMismatch {
                kid,
                algorithm: kind.algorithm(),
            });
        }
        inner.signature_checks.fetch_add(1, Ordering::Relaxed);
        // The algorithm is the key's, fixed when the key set was parsed:
        // RS256 for RSA keys, ES256 for P-256 ones.
        if key
            .parsed
            .verify_sig(signing_input.as_bytes(), &signature)
            .is_err()
        {
            return Err(VerifyError::BadSignature);
        }
        if let Some(verified) = &inner.verified {
            verified.insert(
                token,
                verified::Entry {
                    claims: claims.clone(),
                    kid: kid.into(),
                    key,
                },
            );
        }
        Ok(claims)
    }

    /// Counters of what this verifier (and its clones) did so far.
    pub fn stats(&self) -> VerifierStats {
        let inner = &self.inner;
        let (tokens, bytes) = inner
            .verified
            .as_ref()
            .map_or((0, 0), |v| (v.len(), v.weight()));
        VerifierStats {
            signature_checks: inner.signature_checks.load(Ordering::Relaxed),
            cached_tokens: u64::try_from(tokens).unwrap_or(u64::MAX),
            cached_bytes: bytes,
        }
    }

    /// Every check that needs no key, at `now` (seconds since the epoch):
    /// the parsed token (its header holds a string `kid`) and its claims.
    /// Pure: no clock, no network.
    pub(crate) fn check_offline<'t>(
        &self,
        token: &'t str,
        now: u64,
    ) -> Result<Offline<'t>, VerifyError> {
        let kind = self.inner.policy.kind;
        let parts = crate::jws::parse_with(token, &HEADER_NAMES, &Claims::NAMES)
            .map_err(|source| VerifyError::Malformed { source })?;
        // `typ` is read into a slot only to spare it a map: nothing
        // depends on it (RFC 7519 5.1 makes it optional).
        let [alg, kid, crit, _typ] = parts.header.known;
        match alg {
            Some(Value::String(alg)) if alg == kind.algorithm() => {}
            Some(Value::String(found)) => {
                return Err(VerifyError::Algorithm {
                    found,
                    expected: kind.algorithm(),
                });
            }
            _ => return Err(VerifyError::MissingClaim { claim: "alg" }),
        }
        if crit.is_some() {
            return Err(VerifyError::CriticalExtension);
        }
        let Some(Value::String(kid)) = kid else {
            return Err(VerifyError::MissingClaim { claim: "kid" });
        };
        if kind == Kind::Iap && parts.signature.len() != 64 {
            return Err(VerifyError::SignatureLength {
                len: parts.signature.len(),
            });
        }
        if matches!(parts.claims.known[Claims::AUD], Some(Value::Array(_))) {
            return Err(VerifyError::MultipleAudiences);
        }
        let claims = Claims::from_members(parts.claims)?;
        self.inner.policy.check(&claims, now)?;
        Ok(Offline {
            signing_input: parts.signing_input,
            signature: parts.signature,
            kid,
            claims,
        })
    }
}

/// The header members the verifier reads, in the order `check_offline`
/// takes them apart.
pub(crate) const HEADER_NAMES: [&str; 4] = ["alg", "kid", "crit", "typ"];

impl VerifierBuilder {
    /// Accepts tokens for this audience (call again to accept several).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.policy.audiences.push(audience.into());
        self
    }

    /// Accepts only these issuers (replaces the kind's defaults).
    pub fn issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, issuers: I) -> Self {
        self.policy.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Where to fetch the JWK set (default: the kind's Google URL).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = url.into();
        self
    }

    /// Allowed clock skew for `exp`, `iat` and `nbf` (default 30 s).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.policy.skew = skew;
        self
    }

    /// Longest accepted `exp - iat` (default one day).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.policy.max_lifetime = max;
        self
    }

    /// Accepts only this email (call again for several; case-insensitive).
    /// Google ID tokens must then also carry `email_verified: true`.
    pub fn allow_email(mut self, email: impl Into<String>) -> Self {
        self.policy.emails.push(email.into().to_ascii_lowercase());
        self
    }

    /// Accepts emails in this domain (`example.com`, no `@`; call again for
    /// several). Combines with [`allow_email`](Self::allow_email) as "either".
    pub fn allow_email_domain(mut self, domain: impl Into<String>) -> Self {
        let domain = domain.into().trim_start_matches('@').to_ascii_lowercase();
        self.policy.domains.push(domain);
        self
    }

    /// Requires this hosted domain (`hd`, Google Workspace).
    pub fn hosted_domain(mut self, domain: impl Into<String>) -> Self {
        self.policy.hosted_domain = Some(domain.into());
        self
    }

    /// At most one key-set refetch per this interval for unknown `kid`s
    /// (default 30 s), so random `kid`s cannot flood the key endpoint.
    pub fn unknown_kid_interval(mut self, interval: Duration) -> Self {
        self.unknown_kid_interval = interval;
        self
    }

    /// Bound on the verified-token cache, in bytes of tokens and claims
    /// (default 16 MiB, about 8,000 typical tokens); 0 turns it off.
    ///
    /// The cache keeps, for each token whose signature verified, what that
    /// check proved, so a repeated token costs a hash lookup instead of a
    /// public-key operation. Hits are re-checked at the current time
    /// (`exp`, `iat`, `nbf`), against this verifier's policy, and against
    /// the current key set (a key that left it no longer vouches for its
    /// tokens). Only verified tokens enter, so forged ones cannot evict
    /// anything.
    pub fn verified_cache_capacity(mut self, bytes: u64) -> Self {
        self.verified_cache_bytes = bytes;
        self
    }

    /// The clock to check times against (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the verifier. Fails when no audience was given (or an empty
    /// one), or no issuer: a verifier that accepts any audience accepts
    /// tokens minted for other services.
    ///
    /// Never spawns: the key cache starts its background refreshes from
    /// within [`Verifier::verify`], so building outside a runtime is fine.
    pub fn build(self) -> Result<Verifier, BuildError> {
        let p = &self.policy;
        if p.audiences.is_empty() {
            return Err(BuildError::NoAudience);
        }
        if p.audiences.iter().any(|a| a.is_empty()) {
            return Err(BuildError::EmptyAudience);
        }
        if p.issuers.is_empty() {
            return Err(BuildError::NoIssuer);
        }
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: Arc::new(KeyCache::new(
                    self.jwks_url,
                    self.unknown_kid_interval,
                    self.clock.clone(),
                )),
                policy: self.policy,
                clock: self.clock,
                verified: Verified::new(self.verified_cache_bytes),
                signature_checks: AtomicU64::new(0),
            }),
        })
    }
}
