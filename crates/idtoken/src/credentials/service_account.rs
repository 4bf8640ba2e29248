//! Service account key files: the JWT-bearer grant with `target_audience`
//! (docs/PROTOCOL.md, "Service account key") for ID tokens, and with `scope` for the access
//! token impersonation starts from ("Impersonation").

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use aws_lc_rs::signature::RsaKeyPair;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;
use serde_json::json;

use super::answer::id_token_in;
use super::file::required;
use crate::clock::unix_seconds;
use crate::error::{CredentialsProblem, EndpointProblem, Error, Result};
use crate::http::{Answer, Http};

use super::access::{AccessToken, CLOUD_PLATFORM};
use crate::token::IdToken;

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// A parsed `"type": "service_account"` key file.
#[derive(Clone, Debug)]
pub(crate) struct ServiceAccount {
    client_email: String,
    private_key_id: Option<String>,
    private_key: PrivateKey,
    token_uri: String,
}

/// An RSA private key that never prints itself.
#[derive(Clone)]
pub(crate) struct PrivateKey(Arc<RsaKeyPair>);

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrivateKey([redacted])")
    }
}

#[derive(Deserialize)]
struct KeyFile {
    client_email: Option<String>,
    private_key: Option<String>,
    private_key_id: Option<String>,
    token_uri: Option<String>,
}

impl ServiceAccount {
    /// Where its secrets go.
    pub(crate) fn token_uri(&self) -> &str {
        &self.token_uri
    }

    pub(crate) fn from_json(json: &[u8]) -> Result<Self, CredentialsProblem> {
        let file: KeyFile = serde_json::from_slice(json).map_err(|e| super::json_problem(&e))?;
        let client_email = required(file.client_email, "client_email")?;
        let pem = required(file.private_key, "private_key")?;
        let private_key = parse_private_key(&pem)?;
        let token_uri = super::file::token_uri(file.token_uri)?;
        Ok(Self {
            client_email,
            private_key_id: file.private_key_id.filter(|s| !s.is_empty()),
            private_key,
            token_uri,
        })
    }

    pub(crate) fn client_email(&self) -> &str {
        &self.client_email
    }

    /// Signs an assertion and exchanges it for an ID token.
    pub(crate) async fn fetch_id_token(&self, audience: &str, now: SystemTime) -> Result<IdToken> {
        let step = "service account JWT-bearer grant";
        let url = self.token_uri.as_str();
        let answer = self.grant(step, ("target_audience", audience), now).await?;
        id_token_in(
            &answer,
            "id_token",
            step,
            url,
            "the endpoint may not be a Google token endpoint; check `token_uri`",
        )
    }

    /// Signs an assertion with `scope` and exchanges it for an access token.
    pub(crate) async fn fetch_access_token(&self, now: SystemTime) -> Result<AccessToken> {
        let step = "source credentials: service account access token (JWT-bearer grant)";
        let answer = self.grant(step, ("scope", CLOUD_PLATFORM), now).await?;
        AccessToken::from_answer(&answer, step, &self.token_uri, now)
    }

    /// One JWT-bearer grant whose assertion carries `claim`.
    async fn grant(
        &self,
        step: &'static str,
        claim: (&str, &str),
        now: SystemTime,
    ) -> Result<Answer> {
        let url = self.token_uri.as_str();
        let iat = unix_seconds(now);
        let mut header = json!({"alg": "RS256", "typ": "JWT"});
        if let Some(kid) = &self.private_key_id {
            header["kid"] = json!(kid);
        }
        let mut claims = json!({
            "iss": self.client_email,
            "aud": url,
            "iat": iat,
            "exp": iat + 3600,
        });
        claims[claim.0] = json!(claim.1);
        let assertion = crate::jws::sign_rs256(&self.private_key.0, &header, &claims)
            .map_err(|e| Error::endpoint(step, url, EndpointProblem::InvalidResponse(e)))?;
        Http::PUBLIC
            .send(
                step,
                url,
                |c| {
                    c.post(url)
                        .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
                },
                hint,
            )
            .await
    }
}

fn hint(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (400, Some("invalid_grant")) => {
            "the key may be deleted or disabled, or this machine's clock is wrong; create a new key with `gcloud iam service-accounts keys create`"
        }
        (400, _) => "the token endpoint rejected the request; check `token_uri` in the key file",
        (401 | 403, _) => "the service account may be disabled or deleted",
        (500..=599, _) => "the token endpoint failed; try again later",
        _ => "",
    }
}

fn parse_private_key(pem: &str) -> Result<PrivateKey, CredentialsProblem> {
    let invalid = |reason: &str| CredentialsProblem::InvalidField {
        field: "private_key",
        reason: reason.to_owned(),
    };
    let der = PrivateKeyDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| invalid("not a PEM-encoded private key"))?;
    let pair = match &der {
        PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
        _ => return Err(invalid("not an RSA key (expected PKCS#8 or PKCS#1 RSA)")),
    }
    .map_err(|e| invalid(&format!("RSA key rejected: {e}")))?;
    Ok(PrivateKey(Arc::new(pair)))
}
