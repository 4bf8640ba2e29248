//! Compact JWS (RFC 7515) encoding and strict parsing.
//!
//! Written by hand on top of aws-lc-rs rather than with a JWT crate because
//! the verifier must fix the algorithm from the key set (never from the
//! token's header), reject what RFC 7515 says to reject (`crit`, oversized
//! input, trailing data), and never panic on untrusted bytes; the parsing is
//! small and the signature maths stays in aws-lc-rs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

/// Largest token accepted. Google ID tokens are about 1 KiB; 16 KiB leaves
/// room for large claim sets while bounding the work an attacker can cause.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a compact JWS could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum JwsError {
    #[error("token is {0} bytes, more than the {MAX_TOKEN_LEN}-byte limit")]
    TooLong(usize),
    #[error("expected three dot-separated segments, found {0}")]
    Segments(usize),
    #[error("the {0} segment is not valid base64url")]
    Base64(&'static str),
    #[error("the {0} segment is not a JSON object: {1}")]
    Json(&'static str, String),
}

/// The three parts of a compact JWS, decoded but not verified.
#[derive(Debug)]
pub(crate) struct Parts<'a> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    pub signature: Vec<u8>,
}

/// Splits and decodes a compact JWS without checking its signature.
pub(crate) fn parse(token: &str) -> Result<Parts<'_>, JwsError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(JwsError::TooLong(token.len()));
    }
    let segments = token.split('.').count();
    let mut it = token.splitn(3, '.');
    let (Some(h), Some(p), Some(s)) = (it.next(), it.next(), it.next()) else {
        return Err(JwsError::Segments(segments));
    };
    if segments != 3 {
        return Err(JwsError::Segments(segments));
    }
    let header = decode_object(h, "header")?;
    let claims = decode_object(p, "payload")?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwsError::Base64("signature"))?;
    Ok(Parts {
        signing_input: &token[..h.len() + 1 + p.len()],
        header,
        claims,
        signature,
    })
}

fn decode_object(segment: &str, name: &'static str) -> Result<Map<String, Value>, JwsError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(segment)
        .map_err(|_| JwsError::Base64(name))?;
    decode_json(&bytes).map_err(|e| JwsError::Json(name, e))
}

fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Encodes `header.claims` and signs it with RS256.
pub(crate) fn sign_rs256(
    key: &aws_lc_rs::signature::RsaKeyPair,
    header: &Value,
    claims: &Value,
) -> Result<String, String> {
    let mut out = String::with_capacity(1024);
    out.push_str(&URL_SAFE_NO_PAD.encode(header.to_string()));
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(claims.to_string()));
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let mut sig = vec![0; key.public_modulus_len()];
    key.sign(
        &aws_lc_rs::signature::RSA_PKCS1_SHA256,
        &rng,
        out.as_bytes(),
        &mut sig,
    )
    .map_err(|_| "RSA signing failed".to_owned())?;
    out.push('.');
    out.push_str(&URL_SAFE_NO_PAD.encode(sig));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_wrong_segment_counts_without_panic() {
        for bad in ["", "a", "a.b", "a.b.c.d", "...."] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn rejects_oversized_tokens_before_decoding() {
        let big = "a".repeat(MAX_TOKEN_LEN + 1);
        assert_eq!(
            parse(&big).expect_err("too long"),
            JwsError::TooLong(MAX_TOKEN_LEN + 1)
        );
    }

    #[test]
    fn rejects_non_object_segments() {
        let h = URL_SAFE_NO_PAD.encode("[1]");
        let p = URL_SAFE_NO_PAD.encode("{}");
        assert!(matches!(
            parse(&format!("{h}.{p}.")),
            Err(JwsError::Json("header", _))
        ));
    }
}
