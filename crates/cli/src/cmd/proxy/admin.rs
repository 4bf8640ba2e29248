//! The admin server (`--admin-listen`): `/healthz` (the process is up),
//! `/readyz` (every listener holds a valid token or can get one now) and
//! `/metrics` (the [`Registry`] in Prometheus' text format), for
//! GET and HEAD. It shares nothing with the forwarding side but the
//! registry: it never forwards a request and never shows a token, and the
//! same [`Guard`] as the proxy's refuses web pages (DNS rebinding) before
//! anything is answered.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use idtoken::IdTokenSource;
use tokio::net::TcpListener;

use super::config::AdminConfig;
use super::guard::Guard;
use super::listen::bind;
use super::metrics::Registry;
use crate::Failure;

/// The longest `/readyz` waits for a token fetch: past it, it answers 503
/// (the fetch goes on, and the next probe joins it).
const READY_WAIT: Duration = Duration::from_secs(10);
/// A client that has not sent its request head by then is dropped.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// What the admin server answers from.
struct Admin {
    registry: Registry,
    /// The names requests may give in `Host` (`--allow-host`, a particular
    /// non-loopback admin address).
    guard: Guard,
}

/// Binds the admin address, says where it listens on stderr, and serves
/// `registry` there in a task of its own for as long as the process runs.
pub(super) async fn start(config: AdminConfig, registry: Registry) -> Result<(), Failure> {
    let (listener, local) = bind(
        config.listen,
        "anyone who can reach it reads the proxy's metrics and readiness",
    )
    .await?;
    let admin = Arc::new(Admin {
        registry,
        guard: Guard::new(&config.allowed_hosts),
    });
    tokio::spawn(serve(listener, admin));
    eprintln!("idtoken: proxy: admin http://{local} (/healthz, /readyz, /metrics)");
    Ok(())
}

/// Accepts admin connections for as long as the process runs.
async fn serve(listener: TcpListener, admin: Arc<Admin>) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                super::log::say(format_args!("idtoken: proxy: admin: accept failed: {e}"));
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let admin = admin.clone();
        let service = hyper::service::service_fn(move |req| {
            let admin = admin.clone();
            async move { Ok::<_, Infallible>(admin.answer(req).await) }
        });
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

impl Admin {
    async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        if let Err(why) = self.guard.check(
            req.method(),
            req.headers(),
            req.uri().authority().map(|a| a.as_str()),
        ) {
            return text(StatusCode::FORBIDDEN, why + "\n");
        }
        if req.method() != Method::GET && req.method() != Method::HEAD {
            let mut resp = text(
                StatusCode::METHOD_NOT_ALLOWED,
                "the admin port answers GET and HEAD\n".to_owned(),
            );
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        match req.uri().path() {
            "/healthz" => text(StatusCode::OK, "ok\n".to_owned()),
            "/readyz" => {
                let (status, body) = self.ready().await;
                text(status, body)
            }
            "/metrics" => {
                let mut resp = text(StatusCode::OK, self.registry.render());
                resp.headers_mut().insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                );
                resp
            }
            _ => text(
                StatusCode::NOT_FOUND,
                "not found: the admin port serves /healthz, /readyz and /metrics, and forwards nothing\n"
                    .to_owned(),
            ),
        }
    }

    /// 200 when every listener has a valid token or gets one now, else
    /// 503; a line per listener says which and why. A cached token answers
    /// at once; otherwise the check joins the source's fetch in flight (or
    /// starts the one fetch every caller then joins), so probes never
    /// start a fetch each.
    async fn ready(&self) -> (StatusCode, String) {
        let mut checks = tokio::task::JoinSet::new();
        for (i, (name, tokens)) in self.registry.sources().enumerate() {
            let (name, tokens) = (name.to_owned(), tokens.clone());
            checks.spawn(async move { (i, name, ready(tokens).await) });
        }
        let mut results = Vec::new();
        while let Some(done) = checks.join_next().await {
            // A check that panicked would be a bug; it reads as not ready.
            results.push(done.unwrap_or_else(|e| {
                (
                    usize::MAX,
                    "?".to_owned(),
                    Err(format!("check failed: {e}")),
                )
            }));
        }
        results.sort_by_key(|(i, _, _)| *i);
        let all = results.iter().all(|(_, _, r)| r.is_ok());
        let mut body = String::from(if all { "ready\n" } else { "not ready\n" });
        for (_, name, result) in results {
            let (word, what) = match result {
                Ok(what) => ("ready", what),
                Err(why) => ("not ready", why),
            };
            body.push_str(&format!("{name}: {word}: {what}\n"));
        }
        let status = if all {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        };
        (status, body)
    }
}

/// One listener's readiness: what it holds, or why it has nothing.
async fn ready(tokens: Result<IdTokenSource, String>) -> Result<String, String> {
    let source = tokens.map_err(|why| format!("no credentials: {why}"))?;
    match tokio::time::timeout(READY_WAIT, source.token()).await {
        Ok(Ok(_)) => {
            let left = source.stats().expires_in.unwrap_or_default();
            Ok(format!("an ID token valid for {}s", left.as_secs()))
        }
        Ok(Err(e)) => Err(format!("cannot get an ID token: {e}")),
        Err(_) => Err(format!(
            "no ID token within {READY_WAIT:?}: the fetch goes on"
        )),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
