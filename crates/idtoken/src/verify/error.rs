//! [`VerifyError`]: why a token was refused, precise enough to act on and
//! never quoting the token; and [`BuildError`]: why a verifier could not
//! be built.

use std::sync::Arc;

use crate::jws::DecodeError;

/// Why a token failed verification.
///
/// `Clone` (one failed key fetch is reported to every verification that
/// waited for it) and `PartialEq`: [`KeysUnavailable`](Self::KeysUnavailable)
/// compares its cause, a [`crate::Error`], by value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a well-formed JWS/JWT: segments, base64url, JSON, size.
    #[error("malformed token: {source}")]
    Malformed {
        /// What the decoder refused.
        #[source]
        source: DecodeError,
    },
    /// A well-known claim has the wrong JSON type (`exp` a string, say).
    #[error("malformed token: `{claim}` is not {expected}")]
    ClaimType {
        /// The claim's name.
        claim: &'static str,
        /// What it should be: `a string`, `a number`, `a non-negative
        /// number` or `a boolean`.
        expected: &'static str,
    },
    /// An ES256 signature that is not the 64 bytes of `r || s` (a DER
    /// encoding, or a truncated one).
    #[error("malformed token: an ES256 signature is 64 bytes, this one is {len}")]
    SignatureLength {
        /// The signature's length in bytes.
        len: usize,
    },
    /// The header names an algorithm this verifier does not accept.
    #[error("algorithm {found:?} is not accepted; expected {expected}")]
    Algorithm {
        /// The header's `alg`.
        found: String,
        /// The one algorithm this verifier accepts (`RS256` or `ES256`).
        expected: &'static str,
    },
    /// The header carries `crit` extensions, which this verifier does not understand.
    #[error("the header lists critical extensions (`crit`) this verifier does not understand")]
    CriticalExtension,
    /// No key in the key set has the token's `kid`.
    #[error("no key with kid {kid:?} in the key set")]
    UnknownKey {
        /// The header's `kid`.
        kid: String,
    },
    /// The signature does not match.
    #[error("signature does not match the key")]
    BadSignature,
    /// `exp` is past (beyond the allowed skew).
    #[error("token expired at {exp} (now {now}, skew {skew} s)")]
    Expired {
        /// The token's `exp`.
        exp: u64,
        /// The verifier's clock.
        now: u64,
        /// The skew allowed.
        skew: u64,
    },
    /// `iat` or `nbf` is in the future (beyond the allowed skew).
    #[error("token not valid yet: {claim} is {at}, now is {now}")]
    NotYetValid {
        /// `iat` or `nbf`.
        claim: &'static str,
        /// Its value.
        at: u64,
        /// The verifier's clock.
        now: u64,
    },
    /// `exp - iat` is longer than allowed.
    #[error("token lifetime of {lifetime} s is longer than the {max} s allowed")]
    LifetimeTooLong {
        /// `exp - iat`, in seconds.
        lifetime: u64,
        /// The longest lifetime allowed, in seconds.
        max: u64,
    },
    /// `aud` is not one of the expected audiences.
    #[error("wrong audience {seen:?}; expected one of {expected:?}")]
    WrongAudience {
        /// The audience the token carries (audiences are not secret).
        seen: String,
        /// The audiences this verifier accepts.
        expected: Vec<String>,
    },
    /// `aud` is an array: Google ID tokens carry exactly one audience, and a
    /// token naming several was minted for someone else too.
    #[error("`aud` is an array; a Google ID token carries exactly one audience")]
    MultipleAudiences,
    /// The token's `email` is not one this verifier allows.
    #[error("email {email:?} is not allowed")]
    EmailNotAllowed {
        /// The token's `email`.
        email: String,
    },
    /// Emails are checked but the token has none.
    #[error("the token carries no `email` claim; request it (`format=full`, `includeEmail`)")]
    MissingEmail,
    /// Emails are checked but `email_verified` is not `true`.
    #[error("email {email:?} is not verified (`email_verified` is not true)")]
    EmailNotVerified {
        /// The token's `email`.
        email: String,
    },
    /// `hd` (hosted domain) is not the one required.
    #[error("hosted domain {seen:?} is not {expected:?}")]
    WrongHostedDomain {
        /// The token's `hd`, if any.
        seen: Option<String>,
        /// The required domain.
        expected: String,
    },
    /// The key with the token's `kid` is not of the kind this verifier
    /// uses (an RSA key at an ES256 verifier or the reverse).
    #[error("key {kid:?} is not usable for {algorithm}")]
    KeyMismatch {
        /// The header's `kid`.
        kid: String,
        /// The algorithm this verifier uses (`RS256` or `ES256`).
        algorithm: &'static str,
    },
    /// `iss` is not one of the expected issuers.
    #[error("wrong issuer {seen:?}")]
    WrongIssuer {
        /// The token's `iss`.
        seen: String,
    },
    /// A claim (or header member) the verifier needs is absent or of the
    /// wrong type: `alg`, `kid`, `iss`, `aud`, `exp`, `iat`.
    #[error("claim `{claim}` is missing or has the wrong type")]
    MissingClaim {
        /// The claim's name.
        claim: &'static str,
    },
    /// The key set could not be had: the fetch failed (the endpoint's
    /// error, or an answer without usable keys), or failed moments ago and
    /// is not tried again yet.
    #[error("signing keys unavailable: {source}")]
    KeysUnavailable {
        /// Why: the key-set fetch's error (shared by every verification
        /// that waited for that fetch).
        #[source]
        source: Arc<crate::Error>,
    },
}

impl VerifyError {
    /// True when the fault is on the verifier's side (keys unavailable), so
    /// a server should answer 503 rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable { .. })
    }
}

impl From<crate::token::WrongType> for VerifyError {
    fn from(crate::token::WrongType { claim, expected }: crate::token::WrongType) -> Self {
        VerifyError::ClaimType { claim, expected }
    }
}

/// Why [`VerifierBuilder::build`](super::VerifierBuilder::build) refused
/// its configuration: a verifier that would accept tokens meant for
/// others is not built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// No audience was given: a verifier that accepts any audience accepts
    /// tokens minted for other services.
    #[error("a verifier needs at least one non-empty audience (your service's URL)")]
    NoAudience,
    /// An audience is the empty string, which no token should carry.
    #[error(
        "a verifier needs at least one non-empty audience (your service's URL); an audience given is empty"
    )]
    EmptyAudience,
    /// [`issuers`](super::VerifierBuilder::issuers) was given an empty list.
    #[error("a verifier needs at least one issuer")]
    NoIssuer,
}
