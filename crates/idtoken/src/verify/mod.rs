//! Verifying Google ID tokens on the receiving side.
//!
//! A [`Verifier`] checks the RS256 signature against Google's JWK set (or
//! any key set of the same shape, such as the emulator's), then `iss`,
//! `aud`, `exp`, `iat`, `nbf` with a small clock skew, and the lifetime.
//! The algorithm is fixed by the verifier, never chosen by the token.

mod error;
mod jwks;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use error::VerifyError;
use jwks::{KeyCache, PublicKey};

use crate::clock::{Clock, SystemClock, unix_seconds};
use crate::token::Claims;

/// Google's OIDC key set.
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// Issuers Google puts in ID tokens.
pub const GOOGLE_ISSUERS: [&str; 2] = ["https://accounts.google.com", "accounts.google.com"];

/// Checks Google ID tokens. Cheap to clone; clones share the key cache.
///
/// ```no_run
/// # async fn run(token: &str) -> Result<(), Box<dyn std::error::Error>> {
/// let verifier = idtoken::Verifier::builder()
///     .audience("https://my-service-abc123-uc.a.run.app")
///     .build()?;
/// let claims = verifier.verify(token).await?;
/// println!("caller: {:?}", claims.email);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    audiences: Vec<String>,
    issuers: Vec<String>,
    skew: Duration,
    max_lifetime: Duration,
    keys: KeyCache,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("audiences", &self.audiences)
            .field("issuers", &self.issuers)
            .field("skew", &self.skew)
            .finish_non_exhaustive()
    }
}

/// Configures a [`Verifier`].
#[derive(Debug, Clone)]
pub struct VerifierBuilder {
    audiences: Vec<String>,
    issuers: Vec<String>,
    jwks_url: String,
    skew: Duration,
    max_lifetime: Duration,
    unknown_kid_interval: Duration,
    clock: Arc<dyn Clock>,
}

impl Verifier {
    /// Starts configuring a verifier for Google ID tokens.
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder {
            audiences: Vec::new(),
            issuers: GOOGLE_ISSUERS.iter().map(|s| (*s).to_owned()).collect(),
            jwks_url: GOOGLE_JWKS_URL.to_owned(),
            skew: Duration::from_secs(30),
            max_lifetime: Duration::from_secs(24 * 3600),
            unknown_kid_interval: Duration::from_secs(30),
            clock: Arc::new(SystemClock),
        }
    }

    /// Verifies `token` and returns its claims.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        let parts = crate::jws::parse(token).map_err(|e| VerifyError::Malformed(e.to_string()))?;
        let header = &parts.header;
        match header.get("alg").and_then(Value::as_str) {
            Some("RS256") => {}
            Some(other) => return Err(VerifyError::Algorithm(other.to_owned(), "RS256")),
            None => return Err(VerifyError::MissingClaim("alg")),
        }
        if header.contains_key("crit") {
            return Err(VerifyError::CriticalExtension);
        }
        let kid = header
            .get("kid")
            .and_then(Value::as_str)
            .ok_or(VerifyError::MissingClaim("kid"))?;
        // Check cheap claims before any network traffic for keys.
        let claims = Claims::from_map(parts.claims.clone()).map_err(VerifyError::Malformed)?;
        inner.check_claims(&claims)?;
        let PublicKey::Rsa { n, e } = inner.keys.key(kid).await?;
        let public = aws_lc_rs::signature::RsaPublicKeyComponents { n: &n, e: &e };
        public
            .verify(
                &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
                parts.signing_input.as_bytes(),
                &parts.signature,
            )
            .map_err(|_| VerifyError::BadSignature)?;
        Ok(claims)
    }
}

impl Inner {
    fn check_claims(&self, claims: &Claims) -> Result<(), VerifyError> {
        let iss = claims
            .iss
            .as_deref()
            .ok_or(VerifyError::MissingClaim("iss"))?;
        if !self.issuers.iter().any(|i| i == iss) {
            return Err(VerifyError::WrongIssuer(iss.to_owned()));
        }
        let aud = claims
            .aud
            .as_deref()
            .ok_or(VerifyError::MissingClaim("aud"))?;
        if !self.audiences.iter().any(|a| a == aud) {
            return Err(VerifyError::WrongAudience {
                seen: aud.to_owned(),
                expected: self.audiences.clone(),
            });
        }
        let now = unix_seconds(self.clock.now());
        let skew = self.skew.as_secs();
        let exp = claims.exp.ok_or(VerifyError::MissingClaim("exp"))?;
        let iat = claims.iat.ok_or(VerifyError::MissingClaim("iat"))?;
        if now >= exp.saturating_add(skew) {
            return Err(VerifyError::Expired { exp, now, skew });
        }
        if iat > now.saturating_add(skew) {
            return Err(VerifyError::NotYetValid {
                claim: "iat",
                at: iat,
                now,
            });
        }
        if let Some(nbf) = claims.nbf
            && nbf > now.saturating_add(skew)
        {
            return Err(VerifyError::NotYetValid {
                claim: "nbf",
                at: nbf,
                now,
            });
        }
        let lifetime = exp.saturating_sub(iat);
        if lifetime > self.max_lifetime.as_secs() {
            return Err(VerifyError::LifetimeTooLong(
                lifetime,
                self.max_lifetime.as_secs(),
            ));
        }
        Ok(())
    }
}

impl VerifierBuilder {
    /// Accepts tokens for this audience (call again to accept several).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audiences.push(audience.into());
        self
    }

    /// Accepts only these issuers (replaces the Google defaults).
    pub fn issuers<I: IntoIterator<Item = S>, S: Into<String>>(mut self, issuers: I) -> Self {
        self.issuers = issuers.into_iter().map(Into::into).collect();
        self
    }

    /// Where to fetch the JWK set (default: Google's).
    pub fn jwks_url(mut self, url: impl Into<String>) -> Self {
        self.jwks_url = url.into();
        self
    }

    /// Allowed clock skew for `exp`, `iat` and `nbf` (default 30 s).
    pub fn skew(mut self, skew: Duration) -> Self {
        self.skew = skew;
        self
    }

    /// Longest accepted `exp - iat` (default one day).
    pub fn max_lifetime(mut self, max: Duration) -> Self {
        self.max_lifetime = max;
        self
    }

    /// The clock to check times against (for tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Builds the verifier. Fails when no audience was given: a verifier
    /// that accepts any audience accepts tokens minted for other services.
    pub fn build(self) -> Result<Verifier, crate::Error> {
        if self.audiences.is_empty() || self.audiences.iter().any(|a| a.is_empty()) {
            return Err(crate::Error::InvalidArgument(
                "a verifier needs at least one non-empty audience (your service's URL)".into(),
            ));
        }
        if self.issuers.is_empty() {
            return Err(crate::Error::InvalidArgument(
                "a verifier needs at least one issuer".into(),
            ));
        }
        Ok(Verifier {
            inner: Arc::new(Inner {
                keys: KeyCache::new(self.jwks_url, self.unknown_kid_interval, self.clock.clone()),
                audiences: self.audiences,
                issuers: self.issuers,
                skew: self.skew,
                max_lifetime: self.max_lifetime,
                clock: self.clock,
            }),
        })
    }
}
