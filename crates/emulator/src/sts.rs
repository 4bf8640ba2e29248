//! Security Token Service: `POST /v1/token`, the OAuth 2.0 token exchange
//! that turns a workload identity pool's subject token into a federated
//! access token (docs/PROTOCOL.md, "Workload identity federation"), and `GET /_emulator/subject-token`,
//! a URL that hands out the subject token as a CI system's would.
//!
//! STS accepts one subject token, made at start, for the pool's OIDC
//! provider ([`Emulator::subject_token`](crate::Emulator::subject_token)),
//! and signed AWS requests for its AWS provider (`sts_aws.rs`). Errors
//! have STS's OAuth shape, `{"error","error_description"}`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde_json::json;

use crate::app::{App, Federation};
use crate::aws_account::AwsAccount;
use crate::reply::{invalid_request, json_answer, oauth_error, oauth_fault};
use crate::state::Endpoint;
use crate::{actions_oidc, endpoints, form, sts_aws};

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";

/// The STS and subject-token routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([
        (endpoints::STS, any(exchange)),
        (endpoints::SUBJECT_TOKEN, any(subject_token)),
    ])
}

async fn exchange(
    State(app): State<Arc<App>>,
    peer: Option<Extension<crate::mtls::PeerCert>>,
    method: Method,
    body: Bytes,
) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::Sts).await {
        return oauth_fault(fault);
    }
    if method != Method::POST {
        return invalid_request("the token exchange takes POST");
    }
    let params = match std::str::from_utf8(&body)
        .map_err(|_| "request body is not UTF-8".to_owned())
        .and_then(form::parse_once)
    {
        Ok(p) => p,
        Err(e) => return invalid_request(e),
    };
    // X.509 subject tokens: the mTLS rules (mtls.rs) after the common ones.
    let principal = match check(&app, &params) {
        Some(refusal) => return refusal,
        None if params.get("subject_token_type").map(String::as_str)
            == Some(crate::mtls::SUBJECT_TOKEN_TYPE) =>
        {
            match crate::mtls::check_exchange(&params, peer.as_ref().map(|p| &p.0)) {
                Ok(principal) => principal,
                Err(refusal) => return refusal,
            }
        }
        None => Federation::PRINCIPAL,
    };
    let scope = params.get("scope").map_or(
        "https://www.googleapis.com/auth/cloud-platform",
        String::as_str,
    );
    match app.issue_access_token(principal, scope) {
        Ok(token) => json_answer(
            StatusCode::OK,
            json!({
                "access_token": token,
                "issued_token_type": ACCESS_TOKEN_TYPE,
                "token_type": "Bearer",
                "expires_in": app.lifetime(),
            })
            .to_string(),
        ),
        Err(e) => {
            tracing::error!(error = %e, "issuing a federated token failed");
            oauth_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "internal error",
            )
        }
    }
}

/// What STS checks, in its order; `Some` is its refusal.
fn check(app: &App, p: &HashMap<String, String>) -> Option<Response> {
    let get = |name: &str| p.get(name).map(String::as_str).unwrap_or_default();
    if get("grant_type") != TOKEN_EXCHANGE {
        return Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            format!("Invalid grant_type: {:?}", get("grant_type")),
        ));
    }
    // `scope` is the one optional field of an external credential's exchange.
    for name in [
        "audience",
        "requested_token_type",
        "subject_token",
        "subject_token_type",
    ] {
        if get(name).is_empty() {
            return Some(invalid_request(format!(
                "Missing required parameter: {name}"
            )));
        }
    }
    let requested = get("requested_token_type");
    if requested != ACCESS_TOKEN_TYPE {
        return Some(invalid_request(format!(
            "Invalid requested_token_type: {requested:?}"
        )));
    }
    if get("subject_token_type") == crate::mtls::SUBJECT_TOKEN_TYPE {
        return None;
    }
    // The pool's AWS provider takes signed AWS requests (sts_aws.rs).
    if get("audience") == AwsAccount::AUDIENCE {
        return sts_aws::check(app, get("subject_token_type"), get("subject_token"));
    }
    if get("audience") != Federation::AUDIENCE {
        return Some(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        ));
    }
    if get("subject_token_type") != Federation::SUBJECT_TOKEN_TYPE {
        return Some(invalid_request(format!(
            "Invalid subject_token_type: the provider takes {}",
            Federation::SUBJECT_TOKEN_TYPE
        )));
    }
    let subject = get("subject_token");
    if subject != app.federation.subject_token
        && let Some(why) = actions_oidc::refusal(app, subject)
    {
        return Some(oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why));
    }
    None
}

/// Serves the subject token as text to callers that send the header.
async fn subject_token(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let text = |status: StatusCode, body: String| {
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp
    };
    if let Some(fault) = app.control.arrive(Endpoint::SubjectToken).await {
        return crate::wire::fault_answer(
            fault,
            |body| text(StatusCode::OK, body),
            |status| {
                text(
                    status,
                    format!("injected fault: HTTP {}\n", status.as_u16()),
                )
            },
        );
    }
    let (name, value) = Federation::URL_HEADER;
    if headers
        .get(name)
        .is_none_or(|v| v.as_bytes() != value.as_bytes())
    {
        return text(
            StatusCode::BAD_REQUEST,
            format!("missing header {name}: {value}\n"),
        );
    }
    text(StatusCode::OK, app.federation.subject_token.clone())
}
