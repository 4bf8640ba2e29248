//! GitHub Actions' OIDC token endpoint, as a job reaches it through
//! `ACTIONS_ID_TOKEN_REQUEST_URL` (which already has a query, so clients
//! append `&audience=...`) with `Authorization: Bearer
//! $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, answering `{"value": "<jwt>"}`.
//! Counted and faulted like Google's endpoints (as the AWS ones are), so a
//! test can tell how often a client asks GitHub and what it does when
//! GitHub fails; STS takes its tokens as the pool's subject tokens
//! (`actions_oidc.rs`).

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

use crate::app::App;
use crate::state::Endpoint;
use crate::{Emulator, actions_oidc, endpoints};

/// The GitHub token route.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([(endpoints::GITHUB_ID_TOKEN, get(id_token))])
}

/// `GET ...idtoken?api-version=2.0[&audience=A]` with the job's bearer.
async fn id_token(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::GithubIdToken).await {
        return crate::wire::fault_answer(
            fault,
            |body| (StatusCode::OK, body).into_response(),
            |status| {
                let message = format!("injected fault: HTTP {}", status.as_u16());
                (status, axum::Json(json!({ "message": message }))).into_response()
            },
        );
    }
    let expected = format!("Bearer {}", app.federation.github_request_token);
    if headers
        .get(header::AUTHORIZATION)
        .is_none_or(|v| v.as_bytes() != expected.as_bytes())
    {
        // GitHub refuses a missing or foreign request token before anything else.
        return (
            StatusCode::UNAUTHORIZED,
            axum::Json(json!({"message": "Bad credentials"})),
        )
            .into_response();
    }
    let audience = query
        .get("audience")
        .cloned()
        .unwrap_or_else(actions_oidc::github_default_audience);
    match actions_oidc::mint(&app, &audience) {
        Ok(token) => axum::Json(json!({"value": token})).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "minting a GitHub token failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "internal error\n").into_response()
        }
    }
}

impl Emulator {
    /// What a GitHub Actions job finds in `ACTIONS_ID_TOKEN_REQUEST_URL`:
    /// the emulated token endpoint, with a query already, as GitHub's has.
    pub fn github_id_token_request_url(&self) -> String {
        format!(
            "{}{}?api-version=2.0",
            self.url(),
            endpoints::GITHUB_ID_TOKEN.path
        )
    }

    /// What a GitHub Actions job finds in `ACTIONS_ID_TOKEN_REQUEST_TOKEN`:
    /// the bearer the token endpoint wants (a secret).
    pub fn github_id_token_request_token(&self) -> String {
        self.app.federation.github_request_token.clone()
    }

    /// The two variables a job with `permissions: id-token: write` gets,
    /// as `NAME=value` lines for `set -a; . FILE`.
    pub fn github_actions_env(&self) -> String {
        format!(
            "ACTIONS_ID_TOKEN_REQUEST_URL={}\nACTIONS_ID_TOKEN_REQUEST_TOKEN={}\n",
            self.github_id_token_request_url(),
            self.github_id_token_request_token()
        )
    }

    /// The `external_account` file `google-github-actions/auth` writes
    /// for a job (with `service_account` set to the target account), with
    /// this emulator's URLs: GitHub's token URL with `&audience=` the
    /// provider's, its request token as the bearer, the `value` field of
    /// the JSON answer as the subject token.
    pub fn github_actions_credentials_json(&self) -> String {
        let audience = crate::actions_oidc::provider_audience();
        let mut url = format!("{}&audience=", self.github_id_token_request_url());
        // What the action's URLSearchParams does to the audience.
        url.extend(form_urlencoded::byte_serialize(audience.as_bytes()));
        let target = self.target_service_account_email();
        json!({
            "type": "external_account",
            "audience": crate::app::Federation::AUDIENCE,
            "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
            "token_url": self.sts_url(),
            "credential_source": {
                "url": url,
                "headers": {"Authorization": format!("Bearer {}", self.github_id_token_request_token())},
                "format": {"type": "json", "subject_token_field_name": "value"},
            },
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
        })
        .to_string()
    }

    /// The workload identity provider's resource name (without the
    /// `//iam.googleapis.com/` of an `external_account`'s `audience`), what
    /// `google-github-actions/auth` takes as `workload_identity_provider`.
    pub fn workload_identity_provider(&self) -> String {
        crate::app::Federation::AUDIENCE
            .trim_start_matches("//iam.googleapis.com/")
            .to_owned()
    }
}
