//! A local upstream for the client integrations: it records what each
//! request carried and checks any bearer token against the emulator's keys
//! for its own origin. `/redirect?to=URL` answers 307, `/reject` answers 401
//! with a `WWW-Authenticate` reason.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use idtoken::Verifier;
use idtoken_emulator::Emulator;

/// What one request carried.
#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    /// Whether the bearer token (in `Authorization` or
    /// `X-Serverless-Authorization`) verified for this upstream's origin;
    /// `None` without one.
    pub verified: Option<bool>,
}

pub struct Upstream {
    /// `http://IP:PORT`, also the audience its tokens must carry.
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start(emu: &Emulator) -> Self {
        Self::start_on(emu, "127.0.0.1").await
    }

    /// An upstream on another loopback host (Linux routes all of 127/8).
    pub async fn start_on(emu: &Emulator, ip: &str) -> Self {
        let listener = tokio::net::TcpListener::bind((ip, 0))
            .await
            .expect("bind a loopback port");
        let addr: SocketAddr = listener.local_addr().expect("bound address");
        let url = format!("http://{addr}");
        let verifier = Verifier::builder()
            .audience(url.clone())
            .jwks_url(emu.jwks_url())
            .build()
            .expect("verifier");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new()
            .fallback(record)
            .with_state((verifier, seen.clone()));
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().expect("not poisoned").clone()
    }
}

type AppState = (Verifier, Arc<Mutex<Vec<Seen>>>);

async fn record(
    State((verifier, seen)): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let bearer = ["x-serverless-authorization", "authorization"]
        .iter()
        .find_map(|h| headers.get(*h)?.to_str().ok()?.strip_prefix("Bearer "));
    let verified = match bearer {
        Some(token) => Some(verifier.verify(token).await.is_ok()),
        None => None,
    };
    seen.lock().expect("not poisoned").push(Seen {
        path: uri.path().to_owned(),
        headers,
        verified,
    });
    if uri.path() == "/redirect" {
        let to = uri
            .query()
            .and_then(|q| q.strip_prefix("to="))
            .unwrap_or("/");
        return (
            StatusCode::TEMPORARY_REDIRECT,
            [("location", to.to_owned())],
        )
            .into_response();
    }
    if uri.path() == "/reject" {
        return (
            StatusCode::UNAUTHORIZED,
            [(
                "www-authenticate",
                r#"Bearer error="invalid_token", error_description="The access token could not be verified""#,
            )],
        )
            .into_response();
    }
    match verified {
        Some(false) => StatusCode::UNAUTHORIZED.into_response(),
        _ => (StatusCode::OK, "ok").into_response(),
    }
}
