//! Helpers shared by the test modules: assertions signed from the key file,
//! ID-token verification against the emulator's JWK set.

use std::time::{SystemTime, UNIX_EPOCH};

use idtoken_emulator::Emulator;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde_json::{Value, json};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type BoxError = Box<dyn std::error::Error>;

pub const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// The key file's fields, read as a client library would.
pub struct KeyFile {
    pub email: String,
    pub kid: String,
    pub key: EncodingKey,
}

pub fn key_file(emu: &Emulator) -> Result<KeyFile, BoxError> {
    let json: Value = serde_json::from_str(&emu.service_account_json())?;
    let field = |name: &str| {
        json[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| format!("key file lacks {name}"))
    };
    Ok(KeyFile {
        email: field("client_email")?,
        kid: field("private_key_id")?,
        key: EncodingKey::from_rsa_pem(field("private_key")?.as_bytes())?,
    })
}

/// Signs `claims` as the key file's account, with its kid.
pub fn sign(kf: &KeyFile, claims: &Value) -> Result<String, BoxError> {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kf.kid.clone());
    Ok(jsonwebtoken::encode(&header, claims, &kf.key)?)
}

/// A well-formed ID-token assertion, as Java would send it (aud = token_uri).
pub fn id_assertion(emu: &Emulator, kf: &KeyFile, audience: &str) -> Result<String, BoxError> {
    let iat = now();
    sign(
        kf,
        &json!({
            "iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 3600,
            "target_audience": audience,
        }),
    )
}

/// Posts a JWT-bearer grant; returns status and JSON body.
pub async fn grant(emu: &Emulator, assertion: &str) -> Result<(u16, Value), BoxError> {
    let resp = reqwest::Client::new()
        .post(emu.token_uri())
        .form(&[("grant_type", JWT_BEARER), ("assertion", assertion)])
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

/// Fetches the JWK set and verifies `token` for `audience`; returns its claims.
pub async fn verify(emu: &Emulator, token: &str, audience: &str) -> Result<Value, BoxError> {
    let set: JwkSet = reqwest::get(emu.jwks_url()).await?.json().await?;
    let kid = jsonwebtoken::decode_header(token)?
        .kid
        .ok_or("token header lacks kid")?;
    let jwk = set.find(&kid).ok_or("kid not in the key set")?;
    let mut validation = Validation::new(Algorithm::RS256);
    validation.set_audience(&[audience]);
    validation.set_issuer(&[emu.issuer()]);
    let data = jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &validation)?;
    Ok(data.claims)
}

/// Claims of a JWT without checking anything.
pub fn claims(token: &str) -> Result<Value, BoxError> {
    use base64::Engine as _;
    let payload = token.split('.').nth(1).ok_or("not a JWT")?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload)?;
    Ok(serde_json::from_slice(&bytes)?)
}
