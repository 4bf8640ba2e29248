//! Targets for the proxy: an echo service that verifies every token with
//! the emulator's keys (over plain HTTP or TLS), and an h2c-only service
//! as gRPC services are.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::service::Service as _;
use idtoken_emulator::Emulator;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Semaphore, watch};
use tokio_rustls::TlsAcceptor;

/// The echo service: verifies the token in `Authorization` or
/// `X-Serverless-Authorization` for its own origin and answers with what
/// it saw, as JSON. Cheap to clone; clones share the counters.
#[derive(Clone)]
pub struct Upstream {
    verifier: Arc<idtoken::Verifier>,
    /// `scheme://host:port`, the audience it accepts.
    pub origin: String,
    /// Requests that reached the handler (a failed TLS handshake is none).
    hits: Arc<AtomicUsize>,
    /// `/held` requests that arrived: one permit each.
    held_arrived: Arc<Semaphore>,
    /// `/held` requests answer once this is `true`.
    release: Arc<watch::Sender<bool>>,
}

impl Upstream {
    fn new(emu: &Emulator, origin: String) -> Self {
        let verifier = idtoken::Verifier::builder()
            .audience(origin.clone())
            .jwks_url(emu.jwks_url())
            .build()
            .expect("verifier");
        Self {
            verifier: Arc::new(verifier),
            origin,
            hits: Arc::default(),
            held_arrived: Arc::new(Semaphore::new(0)),
            release: Arc::new(watch::Sender::new(false)),
        }
    }

    /// How many requests reached it so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }

    /// Waits until a `/held` request has arrived (each call takes one).
    pub async fn held_request_arrived(&self) {
        tokio::time::timeout(Duration::from_secs(20), self.held_arrived.acquire())
            .await
            .expect("a /held request reached the upstream in time")
            .expect("semaphore open")
            .forget();
    }

    /// Lets `/held` requests (waiting and later ones) answer.
    pub fn release_held(&self) {
        self.release.send_replace(true);
    }

    async fn claims(&self, headers: &HeaderMap, name: &str) -> Value {
        let Some(token) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Value::Null;
        };
        match self.verifier.verify(token).await {
            Ok(claims) => claims.to_json(),
            Err(e) => json!({ "invalid": e.to_string() }),
        }
    }
}

async fn handler(State(up): State<Upstream>, mut req: Request) -> Response {
    up.hits.fetch_add(1, Ordering::SeqCst);
    let path = req.uri().path().to_owned();
    match path.as_str() {
        // Switches to a protocol that answers each read in upper case,
        // for a valid token only.
        "/upgrade" => {
            let claims = up.claims(req.headers(), "authorization").await;
            if claims["aud"].as_str() != Some(up.origin.as_str()) {
                return (StatusCode::UNAUTHORIZED, claims.to_string()).into_response();
            }
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on.await else { return };
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let upper = buf[..n].to_ascii_uppercase();
                    if io.write_all(&upper).await.is_err() {
                        break;
                    }
                }
            });
            return (
                StatusCode::SWITCHING_PROTOCOLS,
                [("connection", "upgrade"), ("upgrade", "shout")],
            )
                .into_response();
        }
        // Streams the request body back as it arrives.
        "/stream-back" => {
            let body = Body::from_stream(req.into_body().into_data_stream());
            return (StatusCode::OK, body).into_response();
        }
        "/redirect" => {
            return (
                StatusCode::FOUND,
                [("location", format!("{}/landed?x=1", up.origin))],
            )
                .into_response();
        }
        "/elsewhere" => {
            return (
                StatusCode::FOUND,
                [("location", "https://other.example/landed")],
            )
                .into_response();
        }
        // Says it arrived, then answers only when the test releases it:
        // a request that is in flight for as long as a test needs.
        "/held" => {
            up.held_arrived.add_permits(1);
            let mut released = up.release.subscribe();
            let _ = released.wait_for(|r| *r).await;
        }
        _ => {}
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let seen = json!({
        "version": format!("{:?}", req.version()),
        "path": req.uri().path_and_query().map(|p| p.as_str()),
        "authorization": up.claims(req.headers(), "authorization").await,
        "x_serverless_authorization": up.claims(req.headers(), "x-serverless-authorization").await,
        "headers": headers,
    });
    axum::Json(seen).into_response()
}

/// The echo service over plain HTTP on 127.0.0.1.
pub async fn echo(emu: &Emulator) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let up = Upstream::new(emu, origin);
    let app = Router::new().fallback(handler).with_state(up.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    up
}

/// The echo service over TLS on 127.0.0.1 with `acceptor`'s certificate
/// (see [`crate::tls::tls_acceptor`]); its origin is `https://{host}:PORT`.
pub async fn echo_tls(emu: &Emulator, acceptor: TlsAcceptor, host: &str) -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!(
        "https://{host}:{}",
        listener.local_addr().expect("addr").port()
    );
    let up = Upstream::new(emu, origin);
    let app = Router::new().fallback(handler).with_state(up.clone());
    let service = hyper_util::service::TowerToHyperService::new(app);
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, service) = (acceptor.clone(), service.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| service.call(req));
                // Detects h2 by its preface, whichever protocol ALPN chose.
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    up
}

/// An h2c-only upstream, as a gRPC service is: answers with the version,
/// `te` and token audience it saw, then a `grpc-status` trailer; `/held`
/// never answers; `/endless` answers with a body that never ends, as fast
/// as flow control lets it, and `/512k` with 512 KiB. Returns its origin.
pub async fn h2c(emu: &Emulator) -> String {
    use http_body_util::{BodyExt as _, StreamBody};
    use hyper::body::Frame;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let verifier = Arc::new(
        idtoken::Verifier::builder()
            .audience(origin.clone())
            .jwks_url(emu.jwks_url())
            .build()
            .expect("verifier"),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let verifier = verifier.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let verifier = verifier.clone();
                    async move {
                        // In flight until the test ends.
                        if req.uri().path() == "/held" {
                            std::future::pending::<()>().await;
                        }
                        let chunks = match req.uri().path() {
                            "/endless" => Some(usize::MAX),
                            "/512k" => Some(32),
                            _ => None,
                        };
                        if let Some(chunks) = chunks {
                            let chunk = Bytes::from(vec![b'x'; 16 * 1024]);
                            let frames = futures_util::StreamExt::take(
                                futures_util::stream::repeat_with(move || {
                                    Ok::<_, Infallible>(Frame::data(chunk.clone()))
                                }),
                                chunks,
                            );
                            return Ok(hyper::Response::new(StreamBody::new(frames).boxed()));
                        }
                        let token = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .unwrap_or("")
                            .to_owned();
                        let aud = verifier
                            .verify(&token)
                            .await
                            .ok()
                            .and_then(|c| c.aud.clone());
                        let seen = json!({
                            "version": format!("{:?}", req.version()),
                            "te": req.headers().get("te").and_then(|v| v.to_str().ok()),
                            "aud": aud,
                        });
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().expect("value"));
                        let frames = futures_util::stream::iter([
                            Ok::<_, Infallible>(Frame::data(Bytes::from(seen.to_string()))),
                            Ok(Frame::trailers(trailers)),
                        ]);
                        Ok::<_, Infallible>(hyper::Response::new(StreamBody::new(frames).boxed()))
                    }
                });
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    origin
}
