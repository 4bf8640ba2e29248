//! `authorized_user` files (what `gcloud auth application-default login`
//! writes): the refresh grant (docs/PROTOCOL.md, "gcloud user").
//!
//! The grant's `id_token` has the OAuth client id as `aud`, not the
//! audience asked for; it is returned marked
//! ([`IdToken::audience_is_client_id`]) so callers can refuse it. With
//! impersonation, the grant's access token calls IAM instead and the token
//! has the true audience.

use std::time::SystemTime;

use serde::Deserialize;

use super::answer::id_token_in;
use super::file::required;
use crate::error::{CredentialsProblem, Result};
use crate::http::{Answer, Http};
use crate::token::IdToken;

use super::access::{AccessToken, Secret};

/// A parsed `"type": "authorized_user"` file.
#[derive(Clone, Debug)]
pub(crate) struct AuthorizedUser {
    client_id: String,
    client_secret: Secret,
    refresh_token: Secret,
    token_uri: String,
}

#[derive(Deserialize)]
struct UserFile {
    client_id: Option<String>,
    client_secret: Option<String>,
    refresh_token: Option<String>,
    token_uri: Option<String>,
}

impl AuthorizedUser {
    /// Where its secrets go.
    pub(crate) fn token_uri(&self) -> &str {
        &self.token_uri
    }

    pub(crate) fn from_json(json: &[u8]) -> Result<Self, CredentialsProblem> {
        let file: UserFile = serde_json::from_slice(json).map_err(|e| super::json_problem(&e))?;
        let token_uri = super::file::token_uri(file.token_uri)?;
        Ok(Self {
            client_id: required(file.client_id, "client_id")?,
            client_secret: Secret::new(required(file.client_secret, "client_secret")?),
            refresh_token: Secret::new(required(file.refresh_token, "refresh_token")?),
            token_uri,
        })
    }

    /// The refresh grant's `id_token`, marked: its `aud` is the client id.
    pub(crate) async fn fetch_id_token(&self) -> Result<IdToken> {
        let step = "authorized user refresh grant";
        let url = self.token_uri.as_str();
        let answer = self.refresh(step).await?;
        let token = id_token_in(
            &answer,
            "id_token",
            step,
            url,
            "the login lacks the `openid` scope: run `gcloud auth application-default login` again",
        )?;
        Ok(token.with_client_id_audience())
    }

    /// The refresh grant's access token.
    pub(crate) async fn fetch_access_token(&self, now: SystemTime) -> Result<AccessToken> {
        let step = "source credentials: authorized user refresh grant";
        let answer = self.refresh(step).await?;
        AccessToken::from_answer(&answer, step, &self.token_uri, now)
    }

    async fn refresh(&self, step: &'static str) -> Result<Answer> {
        let url = self.token_uri.as_str();
        Http::PUBLIC
            .send(
                step,
                url,
                |c| {
                    c.post(url).form(&[
                        ("grant_type", "refresh_token"),
                        ("client_id", self.client_id.as_str()),
                        ("client_secret", self.client_secret.expose()),
                        ("refresh_token", self.refresh_token.expose()),
                    ])
                },
                hint,
            )
            .await
    }
}

fn hint(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (400, Some("invalid_grant")) => {
            "the gcloud login has expired or was revoked; run `gcloud auth application-default login` again"
        }
        (400 | 401, Some("invalid_client" | "unauthorized_client")) => {
            "the OAuth client in the credentials file is unknown or disabled; run `gcloud auth application-default login` again"
        }
        (400, _) => "the token endpoint rejected the refresh; check `token_uri` in the file",
        (500..=599, _) => "the token endpoint failed; try again later",
        _ => "",
    }
}
