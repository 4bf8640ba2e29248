//! Google's public signing keys: the JWK set (`/oauth2/v3/certs`) and the
//! same keys as self-signed X.509 PEM certificates (`/oauth2/v1/certs`),
//! both with the `Cache-Control` Google sends so verifiers can honour max-age;
//! and IAP's ES256 keys, as a JWK set (`/iap/verify/public_key-jwk`) and as
//! a map of `kid` to PEM public key (`/iap/verify/public_key`).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Map, Value, json};

use crate::app::App;
use crate::endpoints;
use crate::reply::rpc_status;
use crate::state::{Endpoint, Fault};

/// The key set routes.
pub(crate) fn routes() -> Router<Arc<App>> {
    endpoints::routes([
        (endpoints::JWKS_V3, get(jwks)),
        (endpoints::CERTS_V1, get(pem_certs)),
        (endpoints::IAP_JWK, get(iap_jwks)),
        (endpoints::IAP_PEM, get(iap_pem_keys)),
    ])
}

fn answer(app: &App, status: StatusCode, body: String) -> Response {
    let mut resp = (status, body).into_response();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=UTF-8"),
    );
    if status.is_success() {
        let cc = format!(
            "public, max-age={}, must-revalidate, no-transform",
            app.config.jwks_max_age.as_secs()
        );
        if let Ok(v) = HeaderValue::from_str(&cc) {
            h.insert(header::CACHE_CONTROL, v);
        }
    }
    resp
}

/// A fault as Google's APIs shape errors: `{"error": {code, message, status}}`.
fn fault_answer(app: &App, fault: Fault) -> Response {
    crate::wire::fault_answer(
        fault,
        |body| answer(app, StatusCode::OK, body),
        |status| {
            let body = json!({"error": {
                "code": status.as_u16(),
                "message": format!("injected fault: HTTP {}", status.as_u16()),
                "status": rpc_status(status),
            }});
            answer(app, status, body.to_string())
        },
    )
}

async fn jwks(State(app): State<Arc<App>>) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::JwksV3).await {
        return fault_answer(&app, fault);
    }
    let keys: Vec<Value> = app.google_keys().iter().map(|k| k.jwk()).collect();
    answer(&app, StatusCode::OK, json!({"keys": keys}).to_string())
}

async fn pem_certs(State(app): State<Arc<App>>) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::CertsV1).await {
        return fault_answer(&app, fault);
    }
    let certs: Map<String, Value> = app
        .google_keys()
        .iter()
        .map(|k| (k.kid().to_string(), json!(k.cert_pem())))
        .collect();
    answer(&app, StatusCode::OK, Value::Object(certs).to_string())
}

async fn iap_jwks(State(app): State<Arc<App>>) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::IapJwk).await {
        return fault_answer(&app, fault);
    }
    let keys: Vec<Value> = app.iap_keys().iter().map(|k| k.jwk()).collect();
    answer(&app, StatusCode::OK, json!({"keys": keys}).to_string())
}

async fn iap_pem_keys(State(app): State<Arc<App>>) -> Response {
    if let Some(fault) = app.control.arrive(Endpoint::IapPem).await {
        return fault_answer(&app, fault);
    }
    let mut keys = Map::new();
    for key in app.iap_keys() {
        match key.public_key_pem() {
            Ok(pem) => {
                keys.insert(key.kid().to_string(), json!(pem));
            }
            Err(e) => {
                return answer(&app, StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
        }
    }
    answer(&app, StatusCode::OK, Value::Object(keys).to_string())
}
