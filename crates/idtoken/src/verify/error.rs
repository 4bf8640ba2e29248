//! [`VerifyError`]: why a token was refused, precise enough to act on and
//! never quoting the token.

/// Why a token failed verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a well-formed JWS/JWT.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// The header names an algorithm this verifier does not accept.
    #[error("algorithm {0:?} is not accepted; expected {1}")]
    Algorithm(String, &'static str),
    /// The header carries `crit` extensions, which this verifier does not understand.
    #[error("the header lists critical extensions (`crit`) this verifier does not understand")]
    CriticalExtension,
    /// No key in the key set has the token's `kid`.
    #[error("no key with kid {0:?} in the key set")]
    UnknownKey(String),
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
    #[error("token lifetime of {0} s is longer than the {1} s allowed")]
    LifetimeTooLong(u64, u64),
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
    #[error("email {0:?} is not allowed")]
    EmailNotAllowed(String),
    /// Emails are checked but the token has none.
    #[error("the token carries no `email` claim; request it (`format=full`, `includeEmail`)")]
    MissingEmail,
    /// Emails are checked but `email_verified` is not `true`.
    #[error("email {0:?} is not verified (`email_verified` is not true)")]
    EmailNotVerified(String),
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
    #[error("key {0:?} is not usable for {1}")]
    KeyMismatch(String, &'static str),
    /// `iss` is not one of the expected issuers.
    #[error("wrong issuer {0:?}")]
    WrongIssuer(String),
    /// A claim the verifier needs is absent or of the wrong type.
    #[error("claim `{0}` is missing or has the wrong type")]
    MissingClaim(&'static str),
    /// The key set could not be had.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl VerifyError {
    /// True when the fault is on the verifier's side (keys unavailable), so
    /// a server should answer 503 rather than 401.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::KeysUnavailable(_))
    }
}
