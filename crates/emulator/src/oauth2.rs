//! The OAuth2 token endpoint, `POST /token`: the JWT-bearer grant that turns
//! a service account's signed assertion into an ID token (`target_audience`)
//! or an access token (`scope`), and the `refresh_token` grant of the
//! emulated gcloud user (access token plus an ID token whose `aud` is the
//! OAuth client id).
//!
//! The assertion's `aud` must name a token endpoint, as Google's does: one
//! of Google's token URLs (Python and Node always send
//! `https://oauth2.googleapis.com/token`, older libraries and key files the
//! other two spellings) or this server's own (Go and Java send the key
//! file's `token_uri`). Anything else is `invalid_grant`, "Invalid JWT:
//! Failed audience check.".

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::app::{App, ServiceAccount, USER_CLIENT_ID, USER_EMAIL};
use crate::jwt::Unverified;
use crate::reply::{invalid_request, json_answer, oauth_error, oauth_fault};
use crate::state::Endpoint;
use crate::{endpoints, form};

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
/// Google's longest assertion lifetime, plus slack for clients that round.
const MAX_ASSERTION_LIFETIME: i64 = 3600 + 10;
/// How far in the future an assertion's `iat` may be (clock skew).
const MAX_IAT_SKEW: i64 = 60;
/// The token URLs Google's token endpoint answers to, as assertion `aud`s.
const GOOGLE_TOKEN_URLS: [&str; 3] = [
    "https://oauth2.googleapis.com/token",
    "https://accounts.google.com/o/oauth2/token",
    "https://www.googleapis.com/oauth2/v4/token",
];
const FAILED_AUDIENCE: &str = "Invalid JWT: Failed audience check.";
const TIMEFRAME: &str = "Invalid JWT: Token must be a short-lived token (60 minutes) and in a \
     reasonable timeframe. Check your iat and exp values in the JWT claim.";

/// The token route.
pub(crate) fn routes() -> Router<Arc<App>> {
    // `any`, so requests with the wrong method are counted and answered in JSON.
    endpoints::routes([(endpoints::TOKEN, any(token))])
}

fn invalid_grant(description: impl Into<String>) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

async fn token(
    State(app): State<Arc<App>>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::Token).await {
        return oauth_fault(fault);
    }
    if method != Method::POST {
        return oauth_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request",
            "the token endpoint takes POST",
        );
    }
    let form_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form_type {
        return invalid_request("Content-Type must be application/x-www-form-urlencoded");
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        return invalid_request("request body is not UTF-8");
    };
    let params = match form::parse_once(body) {
        Ok(p) => p,
        Err(e) => return invalid_request(e),
    };
    match params.get("grant_type").map(String::as_str) {
        Some(JWT_BEARER) => match params.get("assertion") {
            Some(assertion) => jwt_bearer(&app, &headers, assertion),
            None => invalid_request("Missing required parameter: assertion"),
        },
        Some("refresh_token") => refresh(&app, &params),
        other => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Invalid grant_type: {}", other.unwrap_or_default()),
        ),
    }
}

fn jwt_bearer(app: &App, headers: &HeaderMap, assertion: &str) -> Response {
    let (sa, claims) = match check_assertion(app, headers, assertion) {
        Ok(ok) => ok,
        Err(reason) => return invalid_grant(reason),
    };
    let result = if let Some(aud) = claims.get("target_audience") {
        match aud.as_str().filter(|a| !a.is_empty()) {
            Some(aud) => id_token(app, sa, aud),
            None => return invalid_request("target_audience must be a non-empty string"),
        }
    } else if let Some(scope) = claims.get("scope") {
        match scope.as_str().filter(|s| !s.trim().is_empty()) {
            Some(scope) => access_token(app, sa, scope),
            None => return invalid_request("scope must be a non-empty string"),
        }
    } else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            "Invalid oauth scope or ID token audience provided.",
        );
    };
    match result {
        Ok(body) => json_answer(StatusCode::OK, body.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "issuing a token failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_failure",
                "internal error",
            )
        }
    }
}

fn id_token(app: &App, sa: &ServiceAccount, audience: &str) -> Result<Value, crate::Error> {
    let mut c = Map::new();
    c.insert("aud".into(), json!(audience));
    c.insert("azp".into(), json!(sa.email));
    c.insert("email".into(), json!(sa.email));
    c.insert("email_verified".into(), json!(true));
    c.insert("sub".into(), json!(sa.unique_id));
    let (token, _) = app.mint(c)?;
    Ok(json!({"id_token": token}))
}

fn access_token(app: &App, sa: &ServiceAccount, scope: &str) -> Result<Value, crate::Error> {
    let token = app.issue_access_token(&sa.email, scope)?;
    Ok(json!({"access_token": token, "expires_in": app.lifetime(), "token_type": "Bearer"}))
}

/// The user's scopes, as gcloud's application-default login grants them.
const USER_SCOPES: &str = "openid https://www.googleapis.com/auth/userinfo.email \
     https://www.googleapis.com/auth/cloud-platform";

/// The `refresh_token` grant for the emulated gcloud user.
fn refresh(app: &App, params: &std::collections::HashMap<String, String>) -> Response {
    let param = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    for name in ["client_id", "client_secret", "refresh_token"] {
        if param(name).is_empty() {
            return invalid_request(format!("Missing required parameter: {name}"));
        }
    }
    let user = &app.user;
    if param("client_id") != USER_CLIENT_ID || param("client_secret") != user.client_secret {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "The OAuth client was not found.",
        );
    }
    let revoked = user.revoked.load(std::sync::atomic::Ordering::Acquire);
    if revoked || param("refresh_token") != user.refresh_token {
        return invalid_grant("Token has been expired or revoked.");
    }
    let mut c = Map::new();
    c.insert("aud".into(), json!(USER_CLIENT_ID));
    c.insert("azp".into(), json!(USER_CLIENT_ID));
    c.insert("sub".into(), json!(user.unique_id()));
    c.insert("email".into(), json!(USER_EMAIL));
    c.insert("email_verified".into(), json!(true));
    c.insert("at_hash".into(), json!("emulator"));
    let issued = app
        .mint(c)
        .and_then(|(id_token, _)| Ok((id_token, app.issue_access_token(USER_EMAIL, USER_SCOPES)?)));
    match issued {
        Ok((id_token, access_token)) => json_answer(
            StatusCode::OK,
            json!({
                "access_token": access_token,
                "expires_in": app.lifetime(),
                "id_token": id_token,
                "scope": USER_SCOPES,
                "token_type": "Bearer",
            })
            .to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing a token failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_failure",
                "internal error",
            )
        }
    }
}

/// Checks an assertion as Google does; the error is the `error_description`.
fn check_assertion<'a>(
    app: &'a App,
    headers: &HeaderMap,
    assertion: &str,
) -> Result<(&'a ServiceAccount, Map<String, Value>), String> {
    let jwt = Unverified::parse(assertion).map_err(|e| format!("Invalid JWT: {e}"))?;
    match jwt.header_str("alg") {
        Some("RS256") => {}
        Some(alg) => return Err(format!("Invalid JWT: alg must be RS256, not {alg:?}")),
        None => return Err("Invalid JWT: header has no alg".into()),
    }
    let iss = jwt
        .claim_str("iss")
        .ok_or("Invalid JWT: no iss claim (want the client_email)")?;
    let sa = app
        .account_by_email(iss)
        .ok_or_else(|| format!("Invalid JWT: unknown client_email {iss:?} in iss"))?;
    if let Some(kid) = jwt.header.get("kid")
        && kid.as_str() != Some(sa.key.kid())
    {
        return Err(format!(
            "Invalid JWT: kid {kid} is not a private_key_id of {}",
            sa.email
        ));
    }
    if !sa.key.verify(jwt.signing_input.as_bytes(), &jwt.signature) {
        return Err("Invalid JWT Signature.".into());
    }
    let now = app.now();
    let exp = jwt.claim_time("exp").ok_or("Invalid JWT: no exp claim")?;
    let iat = jwt.claim_time("iat").ok_or("Invalid JWT: no iat claim")?;
    if exp <= now {
        return Err(format!("{TIMEFRAME} (expired: exp {exp} <= now {now})"));
    }
    if iat > now.saturating_add(MAX_IAT_SKEW) {
        return Err(format!(
            "{TIMEFRAME} (iat {iat} is more than {MAX_IAT_SKEW} s after now {now})"
        ));
    }
    if exp.saturating_sub(iat) > MAX_ASSERTION_LIFETIME {
        return Err(format!(
            "{TIMEFRAME} (exp - iat = {} s, more than 3600 s)",
            exp.saturating_sub(iat)
        ));
    }
    let aud = jwt.claim_str("aud").unwrap_or_default();
    if !is_token_url(headers, aud) {
        return Err(FAILED_AUDIENCE.into());
    }
    Ok((sa, jwt.claims))
}

/// Whether `aud` names a token endpoint: one of Google's, or this server's
/// own as the client reached it (`Host`: `127.0.0.1:PORT`, `localhost:PORT`,
/// a name in a container network).
fn is_token_url(headers: &HeaderMap, aud: &str) -> bool {
    if GOOGLE_TOKEN_URLS.contains(&aud) {
        return true;
    }
    let Some(authority) = aud
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/token"))
    else {
        return false;
    };
    headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|host| !host.is_empty() && host.eq_ignore_ascii_case(authority))
}
