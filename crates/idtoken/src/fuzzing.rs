//! UNSTABLE, for `fuzz/` only (feature `fuzzing`): the crate-private
//! parsers, opened to the fuzz targets through thin wrappers that call the
//! real code. Not part of the API; may change or vanish in any release.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Map, Value};

use crate::http::Answer;
use crate::verify::jwks;
use crate::{Claims, IdToken, Verifier, VerifyError};

/// A compact JWS split and decoded without checking its signature.
#[derive(Debug)]
pub struct Jws {
    /// `header.payload`, what the signature covers.
    pub signing_input_len: usize,
    /// The decoded header.
    pub header: Map<String, Value>,
    /// The decoded claim set.
    pub claims: Map<String, Value>,
    /// The decoded signature.
    pub signature: Vec<u8>,
}

/// The JWS parser the verifier and [`IdToken::parse`] use.
pub fn parse_jws(token: &str) -> Result<Jws, String> {
    let parts = crate::jws::parse(token).map_err(|e| e.to_string())?;
    Ok(Jws {
        signing_input_len: parts.signing_input.len(),
        header: parts.header.rest,
        claims: parts.claims.rest,
        signature: parts.signature,
    })
}

/// The verifier's header members: each name with its value, if present.
pub type HeaderSlots = Vec<(&'static str, Option<Value>)>;

/// A token as the verifier reads it: its header members in the
/// verifier's slots (each name with its value, if present) and its claims
/// read from their slots, never from a map. For checking against
/// [`parse_jws`] and [`claims_from_map`].
pub fn parse_as_verifier(token: &str) -> Result<(HeaderSlots, Claims), String> {
    let names = crate::verify::HEADER_NAMES;
    let parts = crate::jws::parse_with(token, &names, &Claims::NAMES).map_err(|e| e.to_string())?;
    let header = names.into_iter().zip(parts.header.known).collect();
    let claims = Claims::from_members(parts.claims).map_err(|e| e.to_string())?;
    Ok((header, claims))
}

/// A claim set read into [`Claims`].
pub fn claims_from_map(map: Map<String, Value>) -> Result<Claims, String> {
    Claims::from_map(map).map_err(|e| e.to_string())
}

/// Every check [`Verifier::verify`] makes before it needs a key, at `now`
/// (seconds since the epoch); no network, no clock.
pub fn verify_offline(verifier: &Verifier, token: &str, now: u64) -> Result<Claims, VerifyError> {
    verifier.check_offline(token, now).map(|o| o.claims)
}

/// The `kid`s of the usable signing keys in a JWK-set answer body, with
/// their kind ("RSA" or "P-256") and the key's size in bytes.
pub fn parse_key_set(body: &[u8]) -> Result<BTreeMap<String, (&'static str, usize)>, String> {
    let answer = Answer {
        headers: Default::default(),
        body: body.to_vec(),
    };
    let keys = jwks::usable_keys(&answer)?;
    Ok(keys
        .into_iter()
        .map(|(kid, key)| {
            let kind = match key.kind {
                jwks::KeyKind::Rsa => "RSA",
                jwks::KeyKind::P256 => "P-256",
            };
            let what = (kind, key.der_len());
            (kid, what)
        })
        .collect())
}

/// A key-set answer's `Cache-Control` lifetime (`max-age` minus `Age`),
/// and the refresh and expiry times the key cache derives from the
/// headers for an answer that arrived at `now`.
pub fn key_set_lifetime(
    headers: &reqwest::header::HeaderMap,
    now: SystemTime,
) -> (Option<Duration>, SystemTime, SystemTime) {
    let (refresh_at, expires_at) = jwks::key_set_times(headers, now);
    (jwks::cache_lifetime(headers), refresh_at, expires_at)
}

/// An OAuth2/STS access-token answer body read at `now`: its expiry and
/// lifetime (the token itself stays inside).
pub fn access_token_answer(body: &[u8], now: SystemTime) -> Result<(SystemTime, Duration), String> {
    use crate::cache::Expiring as _;
    let answer = Answer {
        headers: Default::default(),
        body: body.to_vec(),
    };
    let token = crate::credentials::access::AccessToken::from_answer(
        &answer,
        "fuzz",
        "https://fuzz.invalid/token",
        now,
    )
    .map_err(|e| e.to_string())?;
    Ok((token.expires_at(), token.lifetime()))
}

/// An ID token in the string field `field` of a JSON answer body (IAM
/// `generateIdToken`, OAuth2 `id_token`).
pub fn id_token_answer(body: &[u8], field: &str) -> Result<IdToken, String> {
    let answer = Answer {
        headers: Default::default(),
        body: body.to_vec(),
    };
    crate::credentials::answer::id_token_in(
        &answer,
        field,
        "fuzz",
        "https://fuzz.invalid/token",
        "",
    )
    .map_err(|e| e.to_string())
}
