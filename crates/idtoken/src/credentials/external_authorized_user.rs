//! `external_account_authorized_user` files (workforce identity federation:
//! what `gcloud auth application-default login --login-config` writes for
//! a user signed in through a workforce pool): the refresh grant at the
//! file's `token_url` (STS, `https://sts.googleapis.com/v1/oauthtoken`),
//! the OAuth client authenticated with HTTP Basic as Google's libraries do
//! (docs/PROTOCOL.md, "Workforce identity federation").
//!
//! The grant returns an access token only: a workforce user cannot hold ID
//! tokens, so tokens come through impersonation (`Credentials::impersonate`,
//! `--impersonate-service-account`, or as the source of an
//! `impersonated_service_account` file).

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use serde::Deserialize;

use super::file::required;
use crate::error::{CredentialsProblem, EndpointProblem, Error, Result};
use crate::http::Http;

use super::access::{AccessToken, Secret};

/// A parsed `"type": "external_account_authorized_user"` file. Its
/// secrets are `Secret`s, so its `Debug` shows none.
#[derive(Clone, Debug)]
pub(crate) struct ExternalAuthorizedUser {
    audience: String,
    client_id: String,
    client_secret: Secret,
    /// STS may answer a new refresh token; later refreshes send it, as
    /// Google's libraries do. Shared by clones, which are one login.
    refresh_token: Arc<Mutex<Secret>>,
    token_url: String,
}

#[derive(Deserialize)]
struct UserFile {
    audience: Option<String>,
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_url: Option<String>,
}

impl ExternalAuthorizedUser {
    pub(crate) fn from_json(json: &[u8]) -> Result<Self, CredentialsProblem> {
        let f: UserFile = serde_json::from_slice(json).map_err(|e| super::json_problem(&e))?;
        // No default: the file names its pool's endpoint, as gcloud writes it.
        let token_url = required(f.token_url, "token_url")?;
        super::endpoint::check("token_url", &token_url)?;
        Ok(Self {
            audience: f.audience.unwrap_or_default(),
            client_id: required(f.client_id, "client_id")?,
            client_secret: Secret::new(required(f.client_secret, "client_secret")?),
            refresh_token: Arc::new(Mutex::new(Secret::new(required(
                f.refresh_token,
                "refresh_token",
            )?))),
            token_url,
        })
    }

    /// Where its secrets go.
    pub(crate) fn token_url(&self) -> &str {
        &self.token_url
    }

    /// The workforce pool provider (`audience`), for people; may be empty.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// The refresh grant at `token_url`: an access token of the user.
    pub(crate) async fn fetch_access_token(&self, now: SystemTime) -> Result<AccessToken> {
        let step = "workforce user: STS refresh grant";
        let url = self.token_url.as_str();
        let refresh = self.current_refresh_token();
        let answer = Http::PUBLIC
            .send(
                step,
                url,
                |c| {
                    c.post(url)
                        // reqwest marks the header sensitive (kept out of Debug).
                        .basic_auth(&self.client_id, Some(self.client_secret.expose()))
                        .form(&[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", refresh.expose()),
                        ])
                },
                hint,
            )
            .await?;
        let token = AccessToken::from_answer(&answer, step, url, now)?;
        #[derive(Deserialize)]
        struct Rotated {
            refresh_token: Option<String>,
        }
        let rotated: Rotated = answer
            .json()
            .map_err(|why| Error::endpoint(step, url, EndpointProblem::InvalidResponse(why)))?;
        if let Some(next) = rotated.refresh_token.filter(|t| !t.is_empty()) {
            *self.refresh_token.lock().unwrap_or_else(|e| e.into_inner()) = Secret::new(next);
        }
        Ok(token)
    }

    fn current_refresh_token(&self) -> Secret {
        self.refresh_token
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

fn hint(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (400, Some("invalid_grant")) => {
            "the workforce login has expired or was revoked; run `gcloud auth application-default login --login-config=FILE` again"
        }
        (400 | 401, Some("invalid_client" | "unauthorized_client")) => {
            "STS did not accept the OAuth client (`client_id`, `client_secret`) of the file; run `gcloud auth application-default login --login-config=FILE` again"
        }
        (400, _) => "STS rejected the refresh; check `token_url` in the file",
        (500..=599, _) => "STS failed; try again later",
        _ => "",
    }
}
