//! The upstream of `scripts/soak-proxy`: verifies the ID token of every
//! request and counts what a soak must show never happens.
//!
//! ```sh
//! cargo run --release -p idtoken-cli --example soak_upstream -- \
//!   127.0.0.1:18281 http://127.0.0.1:18284/oauth2/v3/certs
//! ```
//!
//! Listens on ADDR (loopback only) and accepts tokens for `http://ADDR`,
//! checked against the key set at JWKS_URL with no clock skew allowed.
//! `GET /_soak/counters` answers, as JSON: `requests` (with or without a
//! token), `rejected` (no token, or verification failed), `expired`
//! (`exp` at or before the moment the request arrived), `min_remaining_ms`
//! (the least time any token had left on arrival) and `tokens` (distinct
//! tokens seen, by `iat`). Every other path answers `ok` or 401.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    rejected: AtomicU64,
    expired: AtomicU64,
    min_remaining_ms: AtomicU64,
    issued: Mutex<BTreeSet<u64>>,
}

struct Soak {
    verifier: idtoken::Verifier,
    counts: Counts,
}

async fn check(State(soak): State<Arc<Soak>>, req: Request) -> StatusCode {
    // Read the clock first: the question is whether the token was still
    // valid when it reached the service.
    let arrived = SystemTime::now();
    let c = &soak.counts;
    c.requests.fetch_add(1, Ordering::Relaxed);
    let Some(raw) = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
    else {
        c.rejected.fetch_add(1, Ordering::Relaxed);
        return StatusCode::UNAUTHORIZED;
    };
    if let Ok(token) = idtoken::IdToken::parse(raw) {
        match token.expires_at().duration_since(arrived) {
            Ok(left) if !left.is_zero() => {
                let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
                c.min_remaining_ms.fetch_min(ms, Ordering::Relaxed);
            }
            _ => {
                c.expired.fetch_add(1, Ordering::Relaxed);
                c.min_remaining_ms.store(0, Ordering::Relaxed);
            }
        }
        if let Some(iat) = token.claims().iat {
            c.issued
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(iat);
        }
    }
    match soak.verifier.verify(raw).await {
        Ok(_) => StatusCode::OK,
        Err(_) => {
            c.rejected.fetch_add(1, Ordering::Relaxed);
            StatusCode::UNAUTHORIZED
        }
    }
}

async fn counters(State(soak): State<Arc<Soak>>) -> axum::Json<serde_json::Value> {
    let c = &soak.counts;
    let tokens = c.issued.lock().unwrap_or_else(|e| e.into_inner()).len();
    axum::Json(json!({
        "requests": c.requests.load(Ordering::Relaxed),
        "rejected": c.rejected.load(Ordering::Relaxed),
        "expired": c.expired.load(Ordering::Relaxed),
        "min_remaining_ms": c.min_remaining_ms.load(Ordering::Relaxed),
        "tokens": tokens,
    }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(addr), Some(jwks_url)) = (args.next(), args.next()) else {
        return Err("usage: soak_upstream ADDR JWKS_URL".into());
    };
    let addr: SocketAddr = addr.parse()?;
    if !addr.ip().is_loopback() {
        return Err(format!("{addr} is not loopback").into());
    }
    let verifier = idtoken::Verifier::builder()
        .audience(format!("http://{addr}"))
        .jwks_url(jwks_url)
        .skew(Duration::ZERO)
        .build()?;
    let counts = Counts {
        min_remaining_ms: AtomicU64::new(u64::MAX),
        ..Counts::default()
    };
    let soak = Arc::new(Soak { verifier, counts });
    let app = Router::new()
        .route("/_soak/counters", get(counters))
        .fallback(check)
        .with_state(soak);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("soak_upstream: http://{addr}");
    axum::serve(listener, app).await?;
    Ok(())
}
