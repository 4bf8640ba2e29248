//! Per-request overhead of the client integrations with a warm token.
//!
//! - Over loopback: GET to a local axum upstream with plain reqwest, with
//!   reqwest plus a hand-set header from `IdTokenSource::token()`, and
//!   through `IdTokenMiddleware` (fixed and per-URL audience).
//! - Without I/O: the tower layer around a service that answers at once,
//!   so the layer's own cost is not lost in the HTTP round trip.
//!
//! Tokens come from the in-process emulator's metadata server and are
//! minted before measuring.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::hint::black_box;
use std::task::{Context, Poll};

use criterion::{Criterion, criterion_group, criterion_main};
use idtoken::Credentials;
use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::reqwest_middleware::IdTokenMiddleware;
use idtoken::integrations::tower::AddIdTokenLayer;
use idtoken_emulator::Emulator;
use tower_layer::Layer as _;
use tower_service::Service;

/// A service that answers at once with the number of request headers.
#[derive(Clone)]
struct Instant;

impl Service<http::Request<()>> for Instant {
    type Response = usize;
    type Error = Infallible;
    type Future = Ready<Result<usize, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        ready(Ok(req.headers().len()))
    }
}

fn client_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (_emu, url, creds) = rt.block_on(async {
        let emu = Emulator::start().await.expect("emulator");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let creds = Credentials::metadata_server(&emu.metadata_host());
        (emu, url, creds)
    });
    let target = format!("{url}/items");
    let plain = reqwest::Client::new();
    let source = creds.token_source(url.clone());
    let with = |audience| {
        reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
            .with(IdTokenMiddleware::new(Tokens::new(creds.clone(), audience)))
            .build()
    };
    let fixed = with(Audience::Fixed(url.clone()));
    let from_url = with(Audience::FromUrl);
    rt.block_on(async {
        source.token().await.expect("warm");
        fixed.get(&target).send().await.expect("warm");
        from_url.get(&target).send().await.expect("warm");
    });

    let mut group = c.benchmark_group("GET to a local upstream");
    group.bench_function("plain reqwest, no token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(plain.get(&target).send().await.expect("sent").status()) })
    });
    group.bench_function("reqwest + header from IdTokenSource::token()", |b| {
        b.to_async(&rt).iter(|| async {
            let token = source.token().await.expect("token");
            let req = plain
                .get(&target)
                .header("authorization", token.authorization_header());
            black_box(req.send().await.expect("sent").status())
        })
    });
    group.bench_function("IdTokenMiddleware, fixed audience", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(fixed.get(&target).send().await.expect("sent").status()) })
    });
    group.bench_function("IdTokenMiddleware, audience from URL", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(from_url.get(&target).send().await.expect("sent").status())
        })
    });
    group.finish();

    let mut group = c.benchmark_group("tower layer, no I/O");
    let bare = Instant;
    let layered =
        |audience| AddIdTokenLayer::new(Tokens::new(creds.clone(), audience)).layer(Instant);
    let (mut fixed, mut from_url) = (
        layered(Audience::Fixed(url.clone())),
        layered(Audience::FromUrl),
    );
    rt.block_on(async {
        for svc in [&mut fixed, &mut from_url] {
            svc.call(http::Request::get(&target).body(()).expect("req"))
                .await
                .expect("warm");
        }
    });
    group.bench_function("bare service", |b| {
        b.to_async(&rt).iter(|| {
            let mut svc = bare.clone();
            let req = http::Request::get(&target).body(()).expect("req");
            async move { black_box(svc.call(req).await) }
        })
    });
    for (name, svc) in [
        ("AddIdToken, fixed audience", &fixed),
        ("AddIdToken, audience from URL", &from_url),
    ] {
        group.bench_function(name, |b| {
            b.to_async(&rt).iter(|| {
                let mut svc = svc.clone();
                let req = http::Request::get(&target).body(()).expect("req");
                async move { black_box(svc.call(req).await.expect("ok")) }
            })
        });
    }
    group.finish();
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);
