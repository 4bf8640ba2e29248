//! AWS's EC2 instance metadata service, the part an AWS-sourced external
//! account reads (docs/PROTOCOL.md, "AWS"): the IMDSv2 session token
//! (`PUT /latest/api/token`), the availability zone, the instance
//! profile's role name and that role's temporary keys. The paths are AWS's
//! own, under `/latest/`, next to Google's.
//!
//! IMDSv1 and IMDSv2 both work, as on an instance with `HttpTokens=optional`:
//! a `GET` without a session token is answered, one with a token the
//! service did not hand out, or whose TTL is over, gets 401. [`Emulator::require_imdsv2`] makes
//! the token required, as `HttpTokens=required` does.
//!
//! [`Emulator::require_imdsv2`]: crate::Emulator::require_imdsv2

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use serde_json::json;

use crate::app::App;
use crate::aws_account::AwsAccount;
use crate::endpoints;
use crate::keys::random_hex;
use crate::state::Endpoint;

const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
const TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";

/// The instance metadata routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([
        (endpoints::AWS_IMDS_TOKEN, put(session_token)),
        (endpoints::AWS_ZONE, get(zone)),
        (endpoints::AWS_ROLE, get(role)),
        (endpoints::AWS_ROLE_CREDENTIALS, get(role_credentials)),
    ])
}

/// A metadata answer, as text, with the service's `Server` header.
fn text(status: StatusCode, body: impl Into<String>) -> Response {
    let mut resp = (status, body.into()).into_response();
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("EC2ws"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// Counts, waits out holds, answers a fault; then refuses what the real
/// service refuses: proxied requests, and (for `GET`s) a session token it
/// did not hand out, or none when IMDSv2 is required.
async fn admit(app: &App, endpoint: Endpoint, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(fault) = app.control.arrive(endpoint).await {
        return Err(crate::wire::fault_answer(
            fault,
            |body| text(StatusCode::OK, body),
            |status| text(status, ""),
        ));
    }
    if headers.contains_key("x-forwarded-for") {
        return Err(text(StatusCode::FORBIDDEN, "Forbidden\n"));
    }
    if endpoint == Endpoint::AwsImdsToken {
        return Ok(());
    }
    match headers.get(TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        Some(token) => {
            let now = app.now();
            let valid = app
                .aws
                .sessions
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(token)
                .is_some_and(|&ends| now < ends);
            if valid {
                Ok(())
            } else {
                Err(text(StatusCode::UNAUTHORIZED, ""))
            }
        }
        None if app.aws.imdsv2_required.load(Ordering::Acquire) => {
            Err(text(StatusCode::UNAUTHORIZED, ""))
        }
        None => Ok(()),
    }
}

async fn session_token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&app, Endpoint::AwsImdsToken, &headers).await {
        return resp;
    }
    let ttl = headers
        .get(TTL_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u32>().ok());
    let Some(ttl) = ttl.filter(|t| (1..=21_600).contains(t)) else {
        return text(
            StatusCode::BAD_REQUEST,
            "Missing or invalid X-aws-ec2-metadata-token-ttl-seconds (1 to 21600)\n",
        );
    };
    let token = match random_hex(28) {
        Ok(t) => format!("AQAEA{t}=="),
        Err(_) => return text(StatusCode::INTERNAL_SERVER_ERROR, ""),
    };
    let now = app.now();
    let mut sessions = app.aws.sessions.lock().unwrap_or_else(|e| e.into_inner());
    sessions.retain(|_, &mut ends| now < ends);
    sessions.insert(token.clone(), now.saturating_add(i64::from(ttl)));
    drop(sessions);
    let mut resp = text(StatusCode::OK, token);
    // AWS says the TTL back.
    resp.headers_mut()
        .insert(TTL_HEADER, HeaderValue::from(ttl));
    resp
}

async fn zone(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&app, Endpoint::AwsZone, &headers).await {
        return resp;
    }
    text(StatusCode::OK, AwsAccount::ZONE)
}

async fn role(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&app, Endpoint::AwsRole, &headers).await {
        return resp;
    }
    text(StatusCode::OK, AwsAccount::ROLE)
}

async fn role_credentials(
    State(app): State<Arc<App>>,
    Path(role): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = admit(&app, Endpoint::AwsRoleCredentials, &headers).await {
        return resp;
    }
    if role != AwsAccount::ROLE {
        return text(StatusCode::NOT_FOUND, "Not Found\n");
    }
    let now = app.now();
    let expires = now.saturating_add(AwsAccount::ROLE_LIFETIME_SECS);
    let keys = &app.aws.role;
    let body = json!({
        "Code": "Success",
        "LastUpdated": rfc3339(now),
        "Type": "AWS-HMAC",
        "AccessKeyId": keys.access_key_id,
        "SecretAccessKey": keys.secret_access_key,
        "Token": keys.session_token,
        "Expiration": rfc3339(expires),
    });
    let mut resp = text(StatusCode::OK, body.to_string());
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Seconds since the epoch as `2026-11-30T19:05:00Z`.
fn rfc3339(secs: i64) -> String {
    let secs = u64::try_from(secs).unwrap_or(0).min(253_402_300_799);
    let at = UNIX_EPOCH
        .checked_add(Duration::from_secs(secs))
        .unwrap_or(UNIX_EPOCH);
    humantime::format_rfc3339_seconds(at).to_string()
}
