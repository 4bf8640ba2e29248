//! The test-control endpoints under `/_emulator/`: the request counters as
//! JSON, and IAP assertions on demand (what Rust tests get from
//! [`Emulator::counters`] and [`Emulator::iap_token`], for clients in other
//! languages). Not counted, never faulted: they are not Google's.
//!
//! [`Emulator::counters`]: crate::Emulator::counters
//! [`Emulator::iap_token`]: crate::Emulator::iap_token

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::app::App;
use crate::endpoints;

/// The control routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([
        (endpoints::COUNTERS, get(counters)),
        (endpoints::IAP_TOKEN, post(iap_token)),
    ])
}

/// `GET /_emulator/counters`: requests per endpoint, as JSON.
async fn counters(State(app): State<Arc<App>>) -> Response {
    axum::Json(app.control.counters()).into_response()
}

/// Parameters of `POST /_emulator/iap_token`.
#[derive(serde::Deserialize)]
struct IapTokenQuery {
    audience: String,
    email: String,
}

/// `POST /_emulator/iap_token?audience=A&email=E`: an IAP assertion, as text.
async fn iap_token(State(app): State<Arc<App>>, Query(q): Query<IapTokenQuery>) -> Response {
    match app.mint_iap(&q.audience, &q.email) {
        Ok(token) => token.into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    }
}
