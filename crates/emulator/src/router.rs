//! The router: every endpoint family's routes, the control endpoints, and
//! the 404 for everything else. Only `emulator.rs` uses it, to serve.

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::app::App;
use crate::{aws_imds, certs, control, github, iam, metadata, oauth2, sts, workforce};

/// Joins the endpoint families into one router.
pub(crate) fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(metadata::routes())
        .merge(oauth2::routes())
        .merge(certs::routes())
        .merge(iam::routes())
        .merge(sts::routes())
        .merge(github::routes())
        .merge(workforce::routes())
        .merge(aws_imds::routes())
        .merge(control::routes())
        .fallback(not_found)
        .with_state(app)
}

/// Unknown paths: 404, with the metadata flavor since most clients that wander
/// off are metadata clients, and Node rejects answers without it.
async fn not_found() -> Response {
    let mut resp = (StatusCode::NOT_FOUND, "Not Found\n").into_response();
    resp.headers_mut()
        .insert("metadata-flavor", HeaderValue::from_static("Google"));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
