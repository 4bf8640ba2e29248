//! The Compute Engine metadata server: ping, the default service account's
//! email and description, project ids, access tokens, and identity (ID
//! token) minting with the real server's token cache.
//!
//! Every answer carries `Metadata-Flavor: Google`; requests without that
//! header are refused with 403, as the real server does.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::app::{App, PROJECT_ID, PROJECT_NUMBER, ServiceAccount};
use crate::state::Endpoint;
use crate::{endpoints, form};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// The metadata routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([
        (endpoints::METADATA_PING, get(ping)),
        (endpoints::METADATA_IDENTITY, get(identity)),
        (endpoints::METADATA_EMAIL, get(email)),
        (endpoints::METADATA_TOKEN, get(access_token)),
        (endpoints::METADATA_SERVICE_ACCOUNT, get(service_account)),
        (endpoints::PROJECT_ID, get(project_id)),
        (endpoints::NUMERIC_PROJECT_ID, get(numeric_project_id)),
    ])
}

/// A metadata answer: the flavor and server headers on every one.
fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert("metadata-flavor", HeaderValue::from_static("Google"));
    h.insert(
        header::SERVER,
        HeaderValue::from_static("Metadata Server for VM"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn text(status: StatusCode, body: impl Into<String>) -> Response {
    answer(status, "text/plain; charset=utf-8", body.into())
}

/// Counts, waits out holds, answers a fault, then checks the flavor header.
async fn admit(app: &App, endpoint: Endpoint, headers: &HeaderMap) -> Result<(), Response> {
    if let Some(fault) = app.control.arrive(endpoint).await {
        return Err(crate::wire::fault_answer(
            fault,
            |body| text(StatusCode::OK, body),
            |status| {
                let reason = status.canonical_reason().unwrap_or("Error");
                text(status, format!("{reason}\n"))
            },
        ));
    }
    let flavored = headers
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes() == b"Google");
    if !flavored {
        return Err(text(
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        ));
    }
    // Google's server refuses anything that looks proxied, so a reverse
    // proxy cannot expose it by accident; clients must call it directly.
    if headers.contains_key("x-forwarded-for") {
        return Err(text(
            StatusCode::FORBIDDEN,
            "Requests with an X-Forwarded-For header are refused: call the metadata server directly, not through a proxy\n",
        ));
    }
    Ok(())
}

fn query(raw: Option<String>) -> Result<std::collections::HashMap<String, String>, String> {
    form::parse(raw.as_deref().unwrap_or(""))
}

fn no_such_account(account: &str) -> Response {
    text(
        StatusCode::NOT_FOUND,
        format!("service account {account:?} not found on this instance\n"),
    )
}

async fn ping(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    if let Err(resp) = admit(&app, Endpoint::MetadataPing, &headers).await {
        return resp;
    }
    text(StatusCode::OK, "computeMetadata/\n")
}

async fn email(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = admit(&app, Endpoint::MetadataEmail, &headers).await {
        return resp;
    }
    match app.account(&account) {
        Some(sa) => text(StatusCode::OK, sa.email.clone()),
        None => no_such_account(&account),
    }
}

async fn service_account(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = admit(&app, Endpoint::MetadataServiceAccount, &headers).await {
        return resp;
    }
    let Some(sa) = app.account(&account) else {
        return no_such_account(&account);
    };
    let q = match query(raw) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let recursive = q
        .get("recursive")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !recursive {
        // Without recursion the real server lists the directory.
        return text(StatusCode::OK, "aliases\nemail\nidentity\nscopes\ntoken\n");
    }
    let body = json!({"aliases": ["default"], "email": sa.email, "scopes": [CLOUD_PLATFORM]});
    answer(StatusCode::OK, "application/json", body.to_string())
}

async fn project_id(headers: HeaderMap) -> Response {
    project_answer(&headers, PROJECT_ID.to_string())
}

async fn numeric_project_id(headers: HeaderMap) -> Response {
    project_answer(&headers, PROJECT_NUMBER.to_string())
}

/// Project values are not counted endpoints, but keep the flavor rule.
fn project_answer(headers: &HeaderMap, value: String) -> Response {
    if headers
        .get("metadata-flavor")
        .is_some_and(|v| v.as_bytes() == b"Google")
    {
        text(StatusCode::OK, value)
    } else {
        text(
            StatusCode::FORBIDDEN,
            "Missing required header \"Metadata-Flavor\": \"Google\"\n",
        )
    }
}

async fn access_token(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = admit(&app, Endpoint::MetadataToken, &headers).await {
        return resp;
    }
    let Some(sa) = app.account(&account) else {
        return no_such_account(&account);
    };
    match app.issue_access_token(&sa.email, CLOUD_PLATFORM) {
        Ok(token) => answer(
            StatusCode::OK,
            "application/json",
            json!({"access_token": token, "expires_in": app.lifetime(), "token_type": "Bearer"})
                .to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing an access token failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

async fn identity(
    State(app): State<Arc<App>>,
    Path(account): Path<String>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Response {
    if let Err(resp) = admit(&app, Endpoint::MetadataIdentity, &headers).await {
        return resp;
    }
    let Some(sa) = app.account(&account) else {
        return no_such_account(&account);
    };
    let q = match query(raw) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, e),
    };
    let Some(audience) = q.get("audience").filter(|a| !a.is_empty()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "non-empty audience parameter required\n",
        );
    };
    let full = match q.get("format").map(String::as_str) {
        None | Some("standard") => false,
        Some("full") => true,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid format {other:?}: want \"standard\" or \"full\"\n"),
            );
        }
    };
    let licenses = match q.get("licenses").map(|v| v.to_ascii_lowercase()) {
        None => false,
        Some(v) if v == "true" => true,
        Some(v) if v == "false" => false,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("invalid licenses {other:?}: want \"TRUE\" or \"FALSE\"\n"),
            );
        }
    };
    match cached_identity(&app, sa, audience, full, licenses) {
        Ok(token) => text(StatusCode::OK, token),
        Err(e) => {
            tracing::error!(error = %e, "minting an identity token failed");
            text(StatusCode::INTERNAL_SERVER_ERROR, "internal error\n")
        }
    }
}

/// Hands out the cached token while it has at least min(240 s, lifetime/2)
/// left, as the real server does; clients refreshing earlier get it back.
fn cached_identity(
    app: &App,
    sa: &ServiceAccount,
    audience: &str,
    full: bool,
    licenses: bool,
) -> Result<String, crate::Error> {
    // In milliseconds: with whole seconds a 3 s token (margin 1 s) could be
    // handed out with almost nothing left.
    let margin_ms = (app.lifetime().saturating_mul(1000) / 2).min(240_000);
    let key = (sa.email.clone(), audience.to_string(), full, licenses);
    let mut cache = app.identity_cache.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((token, exp)) = cache.get(&key)
        && exp.saturating_mul(1000).saturating_sub(app.now_millis()) >= margin_ms
    {
        return Ok(token.clone());
    }
    let (token, exp) = app.mint(identity_claims(sa, audience, full, licenses))?;
    cache.insert(key, (token.clone(), exp));
    Ok(token)
}

/// Claims of a Compute Engine identity token (iss/iat/exp added by `mint`).
fn identity_claims(
    sa: &ServiceAccount,
    audience: &str,
    full: bool,
    licenses: bool,
) -> Map<String, Value> {
    let mut c = Map::new();
    c.insert("aud".into(), json!(audience));
    c.insert("azp".into(), json!(sa.unique_id));
    c.insert("sub".into(), json!(sa.unique_id));
    if full {
        c.insert("email".into(), json!(sa.email));
        c.insert("email_verified".into(), json!(true));
        let mut gce = json!({
            "instance_creation_timestamp": 1_700_000_000,
            "instance_id": "4713305467221004321",
            "instance_name": "idtoken-emulator-vm",
            "project_id": PROJECT_ID,
            "project_number": PROJECT_NUMBER,
            "zone": "us-central1-a",
        });
        if let (true, Some(gce)) = (licenses, gce.as_object_mut()) {
            gce.insert("license_id".into(), json!(["1000010"]));
        }
        c.insert("google".into(), json!({"compute_engine": gce}));
    }
    c
}
