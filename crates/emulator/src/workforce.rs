//! STS's OAuth refresh grant for workforce identity federation users,
//! `POST /v1/oauthtoken`: what an `external_account_authorized_user` file
//! (gcloud's `--login-config` login) refreshes at. The OAuth client
//! authenticates with HTTP Basic (`client_id:client_secret`), as Google's
//! libraries send it; the body carries `grant_type=refresh_token` and the
//! refresh token. The answer is an access token of the workforce
//! principal, never an ID token. Errors have STS's OAuth shape.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use base64::Engine;
use serde_json::json;

use crate::app::{App, Workforce};
use crate::reply::{invalid_request, json_answer, oauth_error, oauth_fault};
use crate::state::Endpoint;
use crate::{endpoints, form};

/// The workforce refresh route.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([(endpoints::STS_OAUTHTOKEN, any(refresh))])
}

/// The scope of the access tokens gcloud's workforce login holds.
const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";

async fn refresh(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::StsOauthToken).await {
        return oauth_fault(fault);
    }
    if method != Method::POST {
        return invalid_request("the token endpoint takes POST");
    }
    let params = match std::str::from_utf8(&body)
        .map_err(|_| "request body is not UTF-8".to_owned())
        .and_then(form::parse_once)
    {
        Ok(p) => p,
        Err(e) => return invalid_request(e),
    };
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    if get("grant_type") != "refresh_token" {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Invalid grant_type: {:?}", get("grant_type")),
        );
    }
    let wf = &app.workforce;
    match basic_client(&headers) {
        Some((id, secret)) if id == Workforce::CLIENT_ID && secret == wf.client_secret => {}
        Some(_) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "The OAuth client was not found.",
            );
        }
        None => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "Client authentication failed: send the OAuth client as HTTP Basic credentials.",
            );
        }
    }
    if get("refresh_token").is_empty() {
        return invalid_request("Missing required parameter: refresh_token");
    }
    if wf.revoked.load(Ordering::Acquire) || get("refresh_token") != wf.refresh_token {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            "The refresh token is invalid, expired or revoked.",
        );
    }
    match app.issue_access_token(Workforce::PRINCIPAL, SCOPE) {
        Ok(token) => json_answer(
            StatusCode::OK,
            json!({
                "access_token": token,
                "token_type": "Bearer",
                "expires_in": app.lifetime(),
            })
            .to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing a workforce token failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

/// The `(client_id, client_secret)` of an `Authorization: Basic` header.
fn basic_client(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (id, secret) = text.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}
