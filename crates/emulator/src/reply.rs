//! Error answers as Google sends them, shared by the endpoint families so
//! that no family imports another: OAuth2's `{"error","error_description"}`
//! (the token endpoint, STS) and Google APIs' `{"error":{"code","message","status"}}`
//! (IAM Credentials), each with its answer to an injected [`Fault`].
//! The metadata server's plain-text answers and the key sets' cached ones
//! stay in their modules: only they use them.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::state::Fault;

/// `body` as JSON, with `status`.
pub(crate) fn json_answer(status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    resp
}

/// An OAuth2 error answer, `{"error", "error_description"}`.
pub(crate) fn oauth_error(
    status: StatusCode,
    error: &str,
    description: impl Into<String>,
) -> Response {
    let body = json!({"error": error, "error_description": description.into()});
    json_answer(status, body.to_string())
}

/// OAuth2's `400 invalid_request`.
pub(crate) fn invalid_request(description: impl Into<String>) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_request", description)
}

/// The `error` code Google's token endpoint uses for an HTTP status.
fn oauth_error_code(status: StatusCode) -> &'static str {
    match status.as_u16() {
        401 => "invalid_client",
        403 => "access_denied",
        429 => "rate_limit_exceeded",
        500 => "internal_failure",
        502..=504 => "temporarily_unavailable",
        501 | 505..=599 => "server_error",
        _ => "invalid_request",
    }
}

/// A fault as an OAuth2 endpoint (the token endpoint, STS) answers it.
pub(crate) fn oauth_fault(fault: Fault) -> Response {
    crate::wire::fault_answer(
        fault,
        |body| json_answer(StatusCode::OK, body),
        |status| {
            oauth_error(
                status,
                oauth_error_code(status),
                format!("injected fault: HTTP {}", status.as_u16()),
            )
        },
    )
}

/// The google.rpc code name Google's APIs put beside an HTTP status.
pub(crate) fn rpc_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    }
}

/// Google's JSON error, `{"error":{"code","message","status"}}`, as IAM
/// Credentials answers.
pub(crate) fn google_error(status: StatusCode, message: impl Into<String>) -> Response {
    let name = match status {
        // IAM's answer to a wrong method names it so; the key sets, which
        // share `rpc_status`, never did (kept as it was).
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        _ => rpc_status(status),
    };
    let body =
        json!({"error": {"code": status.as_u16(), "message": message.into(), "status": name}});
    json_answer(status, body.to_string())
}

/// A fault as IAM Credentials answers it.
pub(crate) fn google_fault(fault: Fault) -> Response {
    crate::wire::fault_answer(
        fault,
        |body| json_answer(StatusCode::OK, body),
        |status| google_error(status, format!("injected fault: HTTP {}", status.as_u16())),
    )
}
