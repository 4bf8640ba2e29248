//! JWS compact tokens: signing the emulator's tokens and taking apart the
//! assertions clients send, with checked parsing only.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value, json};

use crate::Error;
use crate::keys::{EcKey, RsaKey};

/// Signs `claims` with `key` as an RS256 JWT, header `{alg, kid, typ}`.
pub(crate) fn sign(key: &RsaKey, claims: &Value) -> Result<String, Error> {
    let header = json!({"alg": "RS256", "kid": key.kid(), "typ": "JWT"});
    sign_raw(&header.to_string(), &claims.to_string(), |m| key.sign(m))
}

/// Signs `claims` with `key` as an ES256 JWT, as IAP does.
pub(crate) fn sign_es256(key: &EcKey, claims: &Value) -> Result<String, Error> {
    let header = json!({"alg": "ES256", "kid": key.kid(), "typ": "JWT"});
    sign_raw(&header.to_string(), &claims.to_string(), |m| key.sign(m))
}

/// Encodes `header` and `claims` exactly as given (any bytes: tests forge
/// tokens with these) and signs them with `sign`.
pub(crate) fn sign_raw(
    header: &str,
    claims: &str,
    sign: impl FnOnce(&[u8]) -> Result<Vec<u8>, Error>,
) -> Result<String, Error> {
    let mut token = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let sig = sign(token.as_bytes())?;
    token.push('.');
    token.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(token)
}

/// A JWT split into its parts; nothing about it is trusted yet.
#[derive(Debug)]
pub(crate) struct Unverified<'a> {
    /// The JOSE header.
    pub header: Map<String, Value>,
    /// The claims set.
    pub claims: Map<String, Value>,
    /// `header.claims` as sent: the bytes the signature covers.
    pub signing_input: &'a str,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

impl<'a> Unverified<'a> {
    /// Splits and decodes `token`; the error says which part is wrong.
    pub(crate) fn parse(token: &'a str) -> Result<Self, String> {
        let mut parts = token.split('.');
        let (Some(h), Some(c), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err("not a JWS compact token (want three dot-separated parts)".into());
        };
        let header = json_part(h, "header")?;
        let claims = json_part(c, "claims")?;
        let signature = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| "signature is not base64url".to_string())?;
        // Both segments are sub-slices of `token`, so this cannot go out of bounds.
        let signing_input = token.get(..h.len() + 1 + c.len()).unwrap_or_default();
        Ok(Self {
            header,
            claims,
            signing_input,
            signature,
        })
    }

    /// A string header field, if present and a string.
    pub(crate) fn header_str(&self, name: &str) -> Option<&str> {
        self.header.get(name).and_then(Value::as_str)
    }

    /// A string claim, if present and a string.
    pub(crate) fn claim_str(&self, name: &str) -> Option<&str> {
        self.claims.get(name).and_then(Value::as_str)
    }

    /// A numeric-date claim as whole seconds; fractions are truncated.
    pub(crate) fn claim_time(&self, name: &str) -> Option<i64> {
        let v = self.claims.get(name)?;
        v.as_i64().or_else(|| v.as_f64().map(|f| f as i64))
    }
}

fn json_part(b64: &str, what: &str) -> Result<Map<String, Value>, String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| format!("{what} is not base64url"))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(format!("{what} is not a JSON object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_token_parses_and_verifies() -> Result<(), Error> {
        let key = RsaKey::generate("test")?;
        let token = sign(&key, &json!({"aud": "x", "iat": 1}))?;
        let parsed = Unverified::parse(&token).map_err(Error::Key)?;
        assert_eq!(parsed.header_str("kid"), Some(key.kid()));
        assert_eq!(parsed.claim_str("aud"), Some("x"));
        assert_eq!(parsed.claim_time("iat"), Some(1));
        assert!(key.verify(parsed.signing_input.as_bytes(), &parsed.signature));
        Ok(())
    }

    #[test]
    fn malformed_tokens_are_errors_not_panics() {
        for bad in [
            "",
            ".",
            "..",
            "a.b.c",
            "a.b.c.d",
            "e30.e30",
            "e30.W10.",
            "e30.e30.!!",
        ] {
            assert!(Unverified::parse(bad).is_err(), "{bad}");
        }
        assert!(Unverified::parse("e30.e30.").is_ok());
    }
}
