//! IAM Credentials: `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken`
//! and `:generateAccessToken` (PROTOCOL.md, flow B).
//!
//! The caller shows an access token this emulator issued
//! (`Authorization: Bearer ...`); the grant table
//! ([`Emulator::restrict_impersonation`](crate::Emulator::restrict_impersonation))
//! says whom it may impersonate, along the `delegates` chain. Errors have
//! Google's JSON shape, `{"error":{"code","message","status"}}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde::Deserialize;
use serde_json::{Map, json};

use crate::app::App;
use crate::oauth2::json_answer;
use crate::state::{Endpoint, Fault};

const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
     access token, login cookie or other valid authentication credential.";

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// The IAM Credentials routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/projects/{project}/serviceAccounts/{name}", any(call))
}

/// Google's JSON error, `{"error":{"code","message","status"}}`.
pub(crate) fn google_error(status: StatusCode, message: impl Into<String>) -> Response {
    let name = match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        405 => "METHOD_NOT_ALLOWED",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let body =
        json!({"error": {"code": status.as_u16(), "message": message.into(), "status": name}});
    json_answer(status, body.to_string())
}

/// A fault as IAM would answer it.
pub(crate) fn fault_answer(fault: Fault) -> Response {
    match fault {
        Fault::Body(body) => json_answer(StatusCode::OK, body),
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            google_error(status, format!("injected fault: HTTP {}", status.as_u16()))
        }
        // `arrive` serves hangs itself.
        Fault::Hang => google_error(StatusCode::SERVICE_UNAVAILABLE, "shutting down"),
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Request {
    audience: Option<String>,
    include_email: bool,
    // Python's google-auth sends `"delegates": null`; Google accepts it.
    delegates: Option<Vec<String>>,
    scope: Option<Vec<String>>,
}

async fn call(
    State(app): State<Arc<App>>,
    Path((_project, name)): Path<(String, String)>,
    method: Method,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (email, endpoint) = match name.split_once(':') {
        Some((email, "generateIdToken")) => (email, Endpoint::IamGenerateIdToken),
        Some((email, "generateAccessToken")) => (email, Endpoint::IamGenerateAccessToken),
        _ => return google_error(StatusCode::NOT_FOUND, format!("no method {name:?}")),
    };
    if let Some(fault) = app.control.arrive(endpoint).await {
        return fault_answer(fault);
    }
    if method != Method::POST {
        return google_error(StatusCode::METHOD_NOT_ALLOWED, "use POST");
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(caller) = bearer.and_then(|t| app.access_token_owner(t.trim())) else {
        return google_error(StatusCode::UNAUTHORIZED, UNAUTHENTICATED);
    };
    let scoped = caller
        .scope
        .split(' ')
        .any(|s| s == CLOUD_PLATFORM || s == IAM_SCOPE);
    if !scoped {
        return google_error(
            StatusCode::FORBIDDEN,
            "Request had insufficient authentication scopes.",
        );
    }
    let req: Request = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return google_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid JSON payload: {e}"),
            );
        }
    };
    let permission = match endpoint {
        Endpoint::IamGenerateIdToken => "iam.serviceAccounts.getOpenIdToken",
        _ => "iam.serviceAccounts.getAccessToken",
    };
    let denied = || {
        google_error(
            StatusCode::FORBIDDEN,
            format!("Permission '{permission}' denied on resource (or it may not exist)."),
        )
    };
    // The chain: caller -> delegates... -> target; each hop needs a grant.
    let delegates = req.delegates.unwrap_or_default();
    let mut hops = Vec::with_capacity(delegates.len() + 1);
    for d in &delegates {
        let Some(d) = d.strip_prefix("projects/-/serviceAccounts/") else {
            return google_error(
                StatusCode::BAD_REQUEST,
                format!("Invalid delegate {d:?}: want projects/-/serviceAccounts/EMAIL"),
            );
        };
        hops.push(d);
    }
    hops.push(email);
    let mut from = caller.email.as_str();
    for hop in hops {
        if app.account_by_email(hop).is_none() || !app.may_impersonate(from, hop) {
            return denied();
        }
        from = hop;
    }
    let Some(target) = app.account_by_email(email) else {
        return denied();
    };
    let answer = if endpoint == Endpoint::IamGenerateIdToken {
        let Some(audience) = req.audience.filter(|a| !a.is_empty()) else {
            return google_error(StatusCode::BAD_REQUEST, "audience is required");
        };
        let mut c = Map::new();
        c.insert("aud".into(), json!(audience));
        c.insert("azp".into(), json!(target.unique_id));
        c.insert("sub".into(), json!(target.unique_id));
        if req.include_email {
            c.insert("email".into(), json!(target.email));
            c.insert("email_verified".into(), json!(true));
        }
        app.mint(c).map(|(token, _)| json!({"token": token}))
    } else {
        let scope = req.scope.unwrap_or_default();
        if scope.is_empty() {
            return google_error(StatusCode::BAD_REQUEST, "scope is required");
        }
        let expire = rfc3339(app.now().saturating_add(app.lifetime()));
        app.issue_access_token(&target.email, &scope.join(" "))
            .map(|token| json!({"accessToken": token, "expireTime": expire}))
    };
    match answer {
        Ok(v) => json_answer(StatusCode::OK, v.to_string()),
        Err(e) => {
            tracing::error!(error = %e, "IAM token minting failed");
            google_error(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
        }
    }
}

/// Seconds since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (UTC).
fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::rfc3339;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
    }
}
