//! Compact JWS (RFC 7515) encoding and strict parsing.
//!
//! Written by hand on top of aws-lc-rs rather than with a JWT crate because
//! the verifier must fix the algorithm from the key set (never from the
//! token's header), reject what RFC 7515 says to reject (`crit`, oversized
//! input, trailing data), and never panic on untrusted bytes; the parsing is
//! small and the signature maths stays in aws-lc-rs.
//!
//! JSON is read strictly: a header or claim set naming the same member twice
//! is rejected (serde_json alone would silently keep the last one, letting a
//! forger show one value to a lax parser and another to us), and so is
//! anything that is not UTF-8 or not an object.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Largest token accepted. Google ID tokens are about 1 KiB; 16 KiB leaves
/// room for large claim sets while bounding the work an attacker can cause.
pub(crate) const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Why a token could not be decoded (before any signature or claim is
/// looked at): [`decode_unverified`], and the first step of
/// [`Verifier::verify`](crate::Verifier::verify).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// Longer than the limit (16 KiB; Google's tokens are about 1 KiB).
    #[error("token is {0} bytes, more than the {MAX_TOKEN_LEN}-byte limit")]
    TooLong(usize),
    /// Not three dot-separated segments (how many there were).
    #[error("expected three dot-separated segments, found {0}")]
    Segments(usize),
    /// A segment (`header`, `payload`, `signature`) is not base64url.
    #[error("the {0} segment is not valid base64url")]
    Base64(&'static str),
    /// A segment is not UTF-8.
    #[error("the {0} segment is not UTF-8")]
    Utf8(&'static str),
    /// A segment is not one JSON object, or names a member twice (at any
    /// depth): the segment, and why.
    #[error("the {0} segment is not a JSON object: {1}")]
    Json(&'static str, String),
}

/// A token's header and claims, decoded WITHOUT checking anything: not
/// the signature, not the issuer, the audience or the times. For showing a
/// token to a person (`idtoken decode`); to trust one, use
/// [`Verifier`](crate::Verifier).
///
/// Decoding is as strict as the verifier's own first step (it is the same
/// parser): three segments of base64url, JSON objects without duplicate
/// members, at most 16 KiB.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct UnverifiedToken {
    /// The JOSE header (`alg`, `kid`, `typ`).
    pub header: Map<String, Value>,
    /// The claims, as sent.
    pub claims: Map<String, Value>,
}

/// Decodes a token's header and claims without verifying anything; see
/// [`UnverifiedToken`].
///
/// ```
/// # use base64::Engine as _;
/// let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
/// let token = format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64(r#"{"aud":"a"}"#), b64("sig"));
/// let t = idtoken::decode_unverified(&token).unwrap();
/// assert_eq!(t.claims["aud"], "a");
/// let twice = format!("{}.{}.{}", b64(r#"{"alg":"RS256"}"#), b64(r#"{"aud":"a","aud":"b"}"#), b64("sig"));
/// assert!(idtoken::decode_unverified(&twice).is_err());
/// ```
pub fn decode_unverified(token: &str) -> Result<UnverifiedToken, DecodeError> {
    let parts = parse(token)?;
    Ok(UnverifiedToken {
        header: parts.header.rest,
        claims: parts.claims.rest,
    })
}

/// The three parts of a compact JWS, decoded but not verified.
///
/// The header's and the claim set's members named when parsing (see
/// [`parse_with`]) are in `known`, in the order named; all others are in
/// `rest`.
#[derive(Debug)]
pub(crate) struct Parts<'a, const H: usize, const C: usize> {
    /// `header.payload`, the bytes the signature covers.
    pub signing_input: &'a str,
    pub header: Members<H>,
    pub claims: Members<C>,
    pub signature: Vec<u8>,
}

/// A JSON object's members, read strictly: those named when reading in
/// fixed slots (in the order named; `None` when absent), the rest in a
/// map. A verifier reads its handful of claims from the slots without a
/// map lookup or a copy of their names.
#[derive(Debug)]
pub(crate) struct Members<const N: usize> {
    pub known: [Option<Value>; N],
    pub rest: Map<String, Value>,
}

/// Splits and decodes a compact JWS without checking its signature; every
/// member of the header and the claim set in `rest`.
pub(crate) fn parse(token: &str) -> Result<Parts<'_, 0, 0>, DecodeError> {
    parse_with(token, &[], &[])
}

/// Like [`parse`], with the header members named in `header` and the
/// claims named in `claims` kept in slots. Exactly as strict: the same
/// input is refused for the same reason whatever the names.
pub(crate) fn parse_with<'a, const H: usize, const C: usize>(
    token: &'a str,
    header: &[&str; H],
    claims: &[&str; C],
) -> Result<Parts<'a, H, C>, DecodeError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(DecodeError::TooLong(token.len()));
    }
    let mut it = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (it.next(), it.next(), it.next(), it.next()) else {
        return Err(DecodeError::Segments(token.split('.').count()));
    };
    // One buffer for both JSON segments: decoded, read, then reused.
    let mut buf = Vec::with_capacity(h.len().max(p.len()) / 4 * 3 + 3);
    let header = read_object(h, "header", header, &mut buf)?;
    let claims = read_object(p, "payload", claims, &mut buf)?;
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| DecodeError::Base64("signature"))?;
    Ok(Parts {
        signing_input: &token[..h.len() + 1 + p.len()],
        header,
        claims,
        signature,
    })
}

fn read_object<const N: usize>(
    segment: &str,
    name: &'static str,
    names: &[&str; N],
    buf: &mut Vec<u8>,
) -> Result<Members<N>, DecodeError> {
    buf.clear();
    URL_SAFE_NO_PAD
        .decode_vec(segment, buf)
        .map_err(|_| DecodeError::Base64(name))?;
    let text = std::str::from_utf8(buf).map_err(|_| DecodeError::Utf8(name))?;
    // Said before serde_json would, whose "invalid type: string ..."
    // would repeat the segment's text in the error.
    if !text.trim_start().starts_with('{') {
        return Err(DecodeError::Json(name, "not an object".into()));
    }
    let json = |e: serde_json::Error| DecodeError::Json(name, e.to_string());
    let mut de = serde_json::Deserializer::from_str(text);
    let members = MembersSeed { names }.deserialize(&mut de).map_err(json)?;
    de.end().map_err(json)?;
    Ok(members)
}

/// Reads one JSON object into [`Members`], refusing a member named twice.
struct MembersSeed<'n, const N: usize> {
    names: &'n [&'n str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for MembersSeed<'_, N> {
    type Value = Members<N>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Members<N>, D::Error> {
        d.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for MembersSeed<'_, N> {
    type Value = Members<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members<N>, A::Error> {
        let mut out = Members {
            known: std::array::from_fn(|_| None),
            rest: Map::new(),
        };
        while let Some(Key(key)) = map.next_key()? {
            let Strict(value) = map.next_value()?;
            let duplicate = match self.names.iter().position(|n| *n == key) {
                Some(i) => out.known[i].replace(value).is_some(),
                None if out.rest.contains_key(key.as_ref()) => true,
                None => {
                    out.rest.insert(key.into_owned(), value);
                    continue;
                }
            };
            if duplicate {
                return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
            }
        }
        Ok(out)
    }
}

/// An object member's name, borrowed from the text when it holds no
/// escapes (the usual case), so naming a known member costs no copy.
struct Key<'de>(Cow<'de, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl<'de> Visitor<'de> for KeyVisitor {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(KeyVisitor)
    }
}

/// A JSON value read with duplicate object members rejected at any depth.
pub(crate) struct Strict(pub Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if out.contains_key(&key) {
                return Err(de::Error::custom(format_args!("duplicate member `{key}`")));
            }
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
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
            DecodeError::TooLong(MAX_TOKEN_LEN + 1)
        );
    }

    #[test]
    fn rejects_duplicate_members_at_any_depth() {
        let p = URL_SAFE_NO_PAD.encode("{}");
        for dup in [r#"{"alg":"RS256","alg":"none"}"#, r#"{"a":{"b":1,"b":2}}"#] {
            let h = URL_SAFE_NO_PAD.encode(dup);
            assert!(
                matches!(
                    parse(&format!("{h}.{p}.")),
                    Err(DecodeError::Json("header", _))
                ),
                "{dup}"
            );
        }
        let ok = URL_SAFE_NO_PAD.encode(r#"{"a":[{"b":1},{"b":2}],"c":1.5,"d":null}"#);
        assert!(parse(&format!("{ok}.{p}.")).is_ok());
    }

    #[test]
    fn named_members_are_as_strict_as_the_rest() {
        let p = URL_SAFE_NO_PAD.encode("{}");
        // A named member twice, also when one spelling is escaped.
        for dup in [
            r#"{"alg":"RS256","alg":"none"}"#,
            r#"{"alg":"RS256","al\u0067":"none"}"#,
            r#"{"typ":"JWT","typ":"x"}"#,
        ] {
            let h = URL_SAFE_NO_PAD.encode(dup);
            let token = format!("{h}.{p}.");
            assert!(
                matches!(
                    parse_with(&token, &["alg", "kid"], &[]),
                    Err(DecodeError::Json("header", _))
                ),
                "{dup}"
            );
            assert!(parse(&token).is_err(), "{dup}");
        }
        let h = URL_SAFE_NO_PAD.encode(r#"{"al\u0067":"RS256","typ":"JWT"}"#);
        let token = format!("{h}.{p}.");
        let parts = parse_with(&token, &["alg", "kid"], &[]).expect("parses");
        assert_eq!(parts.header.known, [Some(Value::from("RS256")), None]);
        assert_eq!(parts.header.rest.len(), 1);
    }

    #[test]
    fn rejects_non_utf8_segments() {
        let h = URL_SAFE_NO_PAD.encode(b"{\"a\":\"\xff\"}");
        let p = URL_SAFE_NO_PAD.encode("{}");
        assert_eq!(
            parse(&format!("{h}.{p}.")).expect_err("not UTF-8"),
            DecodeError::Utf8("header")
        );
    }

    #[test]
    fn rejects_non_object_segments_without_repeating_them() {
        let p = URL_SAFE_NO_PAD.encode("{}");
        for not_object in ["[1]", r#""a secret-looking string""#, " 12", "null"] {
            let h = URL_SAFE_NO_PAD.encode(not_object);
            assert_eq!(
                parse(&format!("{h}.{p}.")).expect_err(not_object),
                DecodeError::Json("header", "not an object".into())
            );
        }
    }
}
