//! IAM Credentials: `POST /v1/projects/-/serviceAccounts/{email}:generateIdToken`
//! and `:generateAccessToken` (docs/PROTOCOL.md, "Impersonation").
//!
//! The caller shows an access token this emulator issued
//! (`Authorization: Bearer ...`); the grant table
//! ([`Emulator::restrict_impersonation`](crate::Emulator::restrict_impersonation))
//! says whom it may impersonate, along the `delegates` chain. Bodies are
//! read as Google reads them: a field the method does not have is a 400
//! "Unknown name". Errors have Google's JSON shape,
//! `{"error":{"code","message","status"}}`.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::Response;
use axum::routing::any;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::reply::{google_error, google_fault, json_answer};
use crate::state::Endpoint;

const UNAUTHENTICATED: &str = "Request had invalid authentication credentials. Expected OAuth 2 \
     access token, login cookie or other valid authentication credential.";

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";
const IAM_SCOPE: &str = "https://www.googleapis.com/auth/iam";

/// The IAM Credentials routes: one for both methods of the endpoint table
/// (`{email}:generateIdToken`, `{email}:generateAccessToken`), since a
/// route captures whole path segments; `call` splits them.
pub(crate) fn routes() -> Router<Arc<App>> {
    Router::new().route("/v1/projects/{project}/serviceAccounts/{name}", any(call))
}

/// The body fields of each method, as `(JSON name, proto field name)`:
/// Google takes either spelling and refuses any other name.
const ID_TOKEN_FIELDS: &[(&str, &str)] = &[
    ("audience", "audience"),
    ("delegates", "delegates"),
    ("includeEmail", "include_email"),
    // Not in the public proto, but Node's google-auth-library and Python's
    // non-googleapis.com flow send it, so Google knows it: `azp` = email.
    ("useEmailAzp", "use_email_azp"),
];
const ACCESS_TOKEN_FIELDS: &[(&str, &str)] = &[
    ("delegates", "delegates"),
    ("scope", "scope"),
    ("lifetime", "lifetime"),
];

/// A request body, read as Google's JSON mapping of the proto does.
#[derive(Default)]
struct Request {
    audience: Option<String>,
    include_email: bool,
    use_email_azp: bool,
    delegates: Vec<String>,
    scope: Vec<String>,
}

impl Request {
    /// Parses `body` against the method's `fields`; the error is the
    /// message of Google's 400 INVALID_ARGUMENT.
    fn parse(body: &[u8], fields: &[(&str, &str)]) -> Result<Self, String> {
        const INVALID: &str = "Invalid JSON payload received.";
        let value: Value = serde_json::from_slice(body).map_err(|e| format!("{INVALID} {e}"))?;
        let Value::Object(map) = value else {
            return Err(format!("{INVALID} Expected an object, got {value}."));
        };
        let unknown: Vec<String> = map
            .keys()
            .filter(|k| !fields.iter().any(|(json, proto)| k == json || k == proto))
            .map(|k| format!("{INVALID} Unknown name {k:?}: Cannot find field."))
            .collect();
        if !unknown.is_empty() {
            return Err(unknown.join("\n"));
        }
        // JSON null is the field's default, as Python's `"delegates": null`.
        let field = |json: &str, proto: &str| {
            map.get(json)
                .or_else(|| map.get(proto))
                .filter(|v| !v.is_null())
                .map(|v| (proto.to_owned(), v))
        };
        let mut req = Self::default();
        if let Some((name, v)) = field("audience", "audience") {
            req.audience = Some(string(&name, v)?);
        }
        if let Some((name, v)) = field("includeEmail", "include_email") {
            req.include_email = boolean(&name, v)?;
        }
        if let Some((name, v)) = field("useEmailAzp", "use_email_azp") {
            req.use_email_azp = boolean(&name, v)?;
        }
        if let Some((name, v)) = field("delegates", "delegates") {
            req.delegates = strings(&name, v)?;
        }
        if let Some((name, v)) = field("scope", "scope") {
            req.scope = strings(&name, v)?;
        }
        if let Some((name, v)) = field("lifetime", "lifetime") {
            duration(&name, v)?;
        }
        Ok(req)
    }
}

fn invalid_value(name: &str, ty: &str, v: &Value) -> String {
    format!("Invalid value at '{name}' ({ty}), {v}")
}

fn string(name: &str, v: &Value) -> Result<String, String> {
    v.as_str()
        .map(str::to_owned)
        .ok_or_else(|| invalid_value(name, "TYPE_STRING", v))
}

/// A bool, also as the strings `"true"` and `"false"` (Python sends those).
fn boolean(name: &str, v: &Value) -> Result<bool, String> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s == "true" => Ok(true),
        Value::String(s) if s == "false" => Ok(false),
        _ => Err(invalid_value(name, "TYPE_BOOL", v)),
    }
}

fn strings(name: &str, v: &Value) -> Result<Vec<String>, String> {
    let Value::Array(items) = v else {
        return Err(invalid_value(name, "TYPE_STRING", v));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| string(&format!("{name}[{i}]"), item))
        .collect()
}

/// A `google.protobuf.Duration` in JSON: seconds with an `s`, as `"3600s"`.
fn duration(name: &str, v: &Value) -> Result<(), String> {
    let ok = v
        .as_str()
        .and_then(|s| s.strip_suffix('s'))
        .is_some_and(|n| !n.is_empty() && n.parse::<f64>().is_ok_and(f64::is_finite));
    if ok {
        Ok(())
    } else {
        Err(invalid_value(
            name,
            "type.googleapis.com/google.protobuf.Duration",
            v,
        ))
    }
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
        return google_fault(fault);
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
    let fields = match endpoint {
        Endpoint::IamGenerateIdToken => ID_TOKEN_FIELDS,
        _ => ACCESS_TOKEN_FIELDS,
    };
    let req = match Request::parse(&body, fields) {
        Ok(r) => r,
        Err(message) => return google_error(StatusCode::BAD_REQUEST, message),
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
    let delegates = req.delegates;
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
        let azp = if req.use_email_azp {
            &target.email
        } else {
            &target.unique_id
        };
        c.insert("azp".into(), json!(azp));
        c.insert("sub".into(), json!(target.unique_id));
        if req.include_email {
            c.insert("email".into(), json!(target.email));
            c.insert("email_verified".into(), json!(true));
        }
        app.mint(c).map(|(token, _)| json!({"token": token}))
    } else {
        let scope = req.scope;
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
