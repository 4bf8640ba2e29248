//! [`IdToken`]: a minted token, its expiry and its claims; and [`Claims`],
//! the typed claim set shared by minted and verified tokens.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use reqwest::header::HeaderValue;
use serde_json::{Map, Value};

use crate::clock::unix_time;
use crate::jws::{self, DecodeError};

/// Why [`IdToken::parse`] refused a token. Messages never quote the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not a compact JWS (three base64url segments of JSON objects).
    #[error("not a JWT: {source}")]
    Malformed {
        /// Why it could not be decoded.
        #[from]
        source: DecodeError,
    },
    /// A well-known claim ([`Claims`]' typed fields) has the wrong JSON type.
    #[error("claims: `{claim}` is not {expected}")]
    ClaimType {
        /// The claim's name, e.g. `exp`.
        claim: &'static str,
        /// What it should be: `a string`, `a number`, `a non-negative
        /// number` or `a boolean`.
        expected: &'static str,
    },
    /// There is no `exp` claim: without it the token cannot be cached.
    #[error("the token has no numeric `exp` claim")]
    MissingExpiry,
    /// The token holds bytes an HTTP header cannot carry (control
    /// characters, non-ASCII), so it could not be sent.
    #[error("the token contains characters not allowed in a header")]
    NotHeaderSafe,
}

/// A well-known claim present with the wrong JSON type, as
/// [`Claims::from_members`] finds it; the token's and the verifier's errors
/// each carry its two fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct WrongType {
    pub claim: &'static str,
    pub expected: &'static str,
}

impl From<WrongType> for TokenError {
    fn from(WrongType { claim, expected }: WrongType) -> Self {
        TokenError::ClaimType { claim, expected }
    }
}

impl fmt::Display for WrongType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` is not {}", self.claim, self.expected)
    }
}

/// A Google-signed OIDC ID token, as minted for this process.
///
/// Cheap to clone (one reference count). `Debug` and `Display` never show
/// the token itself; use [`IdToken::as_str`] or
/// [`IdToken::authorization_header`] where it must go on the wire.
///
/// The claims are read from the token's payload *without* verifying the
/// signature: they describe a token this process just received from Google
/// over TLS, which is what they are for (expiry, audience, email).
#[derive(Clone)]
pub struct IdToken {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    raw: String,
    header: HeaderValue,
    claims: Claims,
    expires_at: SystemTime,
    client_id_audience: bool,
}

impl IdToken {
    /// Parses a token as received from a token endpoint.
    ///
    /// Fails when the text is not a JWT, a well-known claim has the wrong
    /// type, or it has no numeric `exp` ([`TokenError`]). The error message
    /// never contains the token.
    ///
    /// ```
    /// # use base64::Engine as _;
    /// let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    /// let raw = format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#),
    ///     b64(r#"{"aud":"https://svc.example","exp":2000000000,"iat":1999996400}"#), b64("sig"));
    /// let token = idtoken::IdToken::parse(&raw).unwrap();
    /// assert_eq!(token.claims().aud.as_deref(), Some("https://svc.example"));
    /// assert!(!format!("{token:?}").contains(&raw));
    /// ```
    pub fn parse(raw: &str) -> Result<Self, TokenError> {
        let raw = raw.trim();
        let parts = jws::parse_with(raw, &[], &Claims::NAMES)?;
        let claims = Claims::from_members(parts.claims)?;
        let exp = claims.exp.ok_or(TokenError::MissingExpiry)?;
        let mut header = HeaderValue::from_str(&format!("Bearer {raw}"))
            .map_err(|_| TokenError::NotHeaderSafe)?;
        header.set_sensitive(true);
        Ok(Self {
            inner: Arc::new(Inner {
                raw: raw.to_owned(),
                header,
                expires_at: unix_time(exp),
                claims,
                client_id_audience: false,
            }),
        })
    }

    /// True when the token's `aud` is an OAuth client id rather than the
    /// audience that was asked for: the `id_token` of a gcloud user login
    /// (`authorized_user` credentials without impersonation).
    ///
    /// Cloud Run accepts such tokens from users with the invoker role; IAP
    /// and services that check `aud` refuse them. Refuse it yourself, or
    /// impersonate a service account to get the true audience.
    pub fn audience_is_client_id(&self) -> bool {
        self.inner.client_id_audience
    }

    /// This token marked as carrying a client-id audience.
    pub(crate) fn with_client_id_audience(self) -> Self {
        let inner = Arc::unwrap_or_clone(self.inner);
        Self {
            inner: Arc::new(Inner {
                client_id_audience: true,
                ..inner
            }),
        }
    }

    /// The token, for the wire. Treat it as a password.
    pub fn as_str(&self) -> &str {
        &self.inner.raw
    }

    /// `Bearer <token>`, marked sensitive so HTTP stacks do not log it.
    pub fn authorization_header(&self) -> HeaderValue {
        self.inner.header.clone()
    }

    /// When the token stops being valid (its `exp` claim).
    pub fn expires_at(&self) -> SystemTime {
        self.inner.expires_at
    }

    /// When the token was issued (its `iat` claim), if present.
    pub fn issued_at(&self) -> Option<SystemTime> {
        self.inner.claims.iat.map(unix_time)
    }

    /// Its lifetime, `exp - iat`; one hour for Google tokens.
    pub fn lifetime(&self) -> Duration {
        self.issued_at()
            .and_then(|iat| self.expires_at().duration_since(iat).ok())
            .unwrap_or(Duration::from_secs(3600))
    }

    /// The claims, read without verifying the signature.
    pub fn claims(&self) -> &Claims {
        &self.inner.claims
    }
}

impl fmt::Debug for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IdToken")
            .field("token", &"[redacted]")
            .field("aud", &self.inner.claims.aud)
            .field("email", &self.inner.claims.email)
            .field("exp", &self.inner.claims.exp)
            .field("audience_is_client_id", &self.inner.client_id_audience)
            .finish()
    }
}

impl fmt::Display for IdToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted ID token]")
    }
}

/// The claims of a Google ID token.
///
/// Well-known claims are typed; everything else stays in `extra` as JSON.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct Claims {
    /// Issuer, `https://accounts.google.com` for Google tokens.
    pub iss: Option<String>,
    /// Audience. Google ID tokens carry exactly one.
    pub aud: Option<String>,
    /// Subject: the principal's stable numeric id.
    pub sub: Option<String>,
    /// Authorized party.
    pub azp: Option<String>,
    /// Principal's email (metadata `format=full`, service account keys).
    pub email: Option<String>,
    /// Whether Google verified the email.
    pub email_verified: Option<bool>,
    /// Hosted domain (Google Workspace users).
    pub hd: Option<String>,
    /// Issued at, seconds since the Unix epoch.
    pub iat: Option<u64>,
    /// Expiry, seconds since the Unix epoch.
    pub exp: Option<u64>,
    /// Not before, seconds since the Unix epoch.
    pub nbf: Option<u64>,
    /// All other claims.
    pub extra: Map<String, Value>,
}

impl Claims {
    /// The claims with typed fields, in the order [`Claims::from_members`]
    /// reads them; a parser keeps these apart (see [`jws::parse_with`]).
    pub(crate) const NAMES: [&'static str; 10] = [
        "iss",
        "aud",
        "sub",
        "azp",
        "email",
        "hd",
        "iat",
        "exp",
        "nbf",
        "email_verified",
    ];
    /// Where `aud` is in [`Claims::NAMES`].
    pub(crate) const AUD: usize = 1;

    /// Reads claims from a JSON object, checking the types of known claims.
    #[cfg(any(test, feature = "fuzzing"))]
    pub(crate) fn from_map(mut map: Map<String, Value>) -> Result<Self, WrongType> {
        let known = Self::NAMES.map(|name| map.remove(name));
        Self::from_members(jws::Members { known, rest: map })
    }

    /// Reads claims from an object parsed with [`Claims::NAMES`] kept
    /// apart, checking the types of known claims.
    pub(crate) fn from_members(members: jws::Members<10>) -> Result<Self, WrongType> {
        let jws::Members { known, rest } = members;
        let [iss, aud, sub, azp, email, hd, iat, exp, nbf, email_verified] = known;
        let wrong = |claim, expected| WrongType { claim, expected };
        let string = |name: &'static str, v: Option<Value>| -> Result<Option<String>, WrongType> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s)),
                Some(_) => Err(wrong(name, "a string")),
            }
        };
        let number = |name: &'static str, v: Option<Value>| -> Result<Option<u64>, WrongType> {
            match v {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_u64()
                    .or_else(|| n.as_f64().filter(|f| *f >= 0.0).map(|f| f as u64))
                    .map(Some)
                    .ok_or_else(|| wrong(name, "a non-negative number")),
                Some(_) => Err(wrong(name, "a number")),
            }
        };
        // In the order of NAMES, so the first wrong claim is the one named.
        let (iss, aud, sub) = (
            string("iss", iss)?,
            string("aud", aud)?,
            string("sub", sub)?,
        );
        let (azp, email, hd) = (
            string("azp", azp)?,
            string("email", email)?,
            string("hd", hd)?,
        );
        let (iat, exp, nbf) = (
            number("iat", iat)?,
            number("exp", exp)?,
            number("nbf", nbf)?,
        );
        let email_verified = match email_verified {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(b),
            // Some Google tokens have carried "true" as a string.
            Some(Value::String(s)) if s == "true" || s == "false" => Some(s == "true"),
            Some(_) => return Err(wrong("email_verified", "a boolean")),
        };
        Ok(Self {
            iss,
            aud,
            sub,
            azp,
            email,
            email_verified,
            hd,
            iat,
            exp,
            nbf,
            extra: rest,
        })
    }

    /// All claims as one JSON object.
    pub fn to_json(&self) -> Value {
        let mut map = self.extra.clone();
        let mut put = |k: &str, v: Option<Value>| {
            if let Some(v) = v {
                map.insert(k.to_owned(), v);
            }
        };
        put("iss", self.iss.clone().map(Value::from));
        put("aud", self.aud.clone().map(Value::from));
        put("sub", self.sub.clone().map(Value::from));
        put("azp", self.azp.clone().map(Value::from));
        put("email", self.email.clone().map(Value::from));
        put("email_verified", self.email_verified.map(Value::from));
        put("hd", self.hd.clone().map(Value::from));
        put("iat", self.iat.map(Value::from));
        put("exp", self.exp.map(Value::from));
        put("nbf", self.nbf.map(Value::from));
        Value::Object(map)
    }
}
