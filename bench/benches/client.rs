//! Per-request client overhead with a warm token, side by side in one run:
//! idtoken (middleware, and `token()` plus a hand-set header) against the
//! official google-cloud-auth (`IDTokenCredentials::id_token()` plus
//! `bearer_auth`, as its documentation shows) and plain reqwest.
//!
//! ```sh
//! cd bench && cargo bench --bench client
//! ```
//!
//! Both libraries get their tokens from one in-process emulator's metadata
//! server; every token is minted before measuring, so the figures are the
//! warm path only. The upstream is a local axum server answering `ok`.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use google_cloud_auth::credentials::idtoken::mds::Builder as GcaMdsBuilder;
use idtoken::Credentials;
use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::reqwest_middleware::IdTokenMiddleware;
use idtoken_emulator::Emulator;

fn client_overhead(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (_emu, url, creds, gca) = rt.block_on(async {
        let emu = Emulator::start().await.expect("emulator");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let app = axum::Router::new().fallback(|| async { "ok" });
        tokio::spawn(async move { axum::serve(listener, app).await });
        let creds = Credentials::metadata_server(&emu.metadata_host());
        let gca = GcaMdsBuilder::new(url.clone())
            .with_endpoint(emu.url())
            .build()
            .expect("google-cloud-auth credentials");
        (emu, url, creds, gca)
    });
    let target = format!("{url}/items");
    let plain = reqwest::Client::new();
    let source = creds.token_source(url.clone());
    let middleware = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdTokenMiddleware::new(Tokens::new(
            creds.clone(),
            Audience::Fixed(url.clone()),
        )))
        .build();
    rt.block_on(async {
        source.token().await.expect("warm idtoken");
        gca.id_token().await.expect("warm google-cloud-auth");
        middleware
            .get(&target)
            .send()
            .await
            .expect("warm middleware");
    });

    let mut group = c.benchmark_group("warm token, no I/O");
    group.bench_function("idtoken IdTokenSource::token()", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(source.token().await.expect("token")) })
    });
    group.bench_function("google-cloud-auth IDTokenCredentials::id_token()", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(gca.id_token().await.expect("token")) })
    });
    group.finish();

    let mut group = c.benchmark_group("GET to a local upstream");
    group.bench_function("plain reqwest, no token", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(plain.get(&target).send().await.expect("sent").status()) })
    });
    group.bench_function("idtoken IdTokenMiddleware", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(middleware.get(&target).send().await.expect("sent").status())
        })
    });
    group.bench_function("idtoken token() + header", |b| {
        b.to_async(&rt).iter(|| async {
            let token = source.token().await.expect("token");
            let req = plain
                .get(&target)
                .header("authorization", token.authorization_header());
            black_box(req.send().await.expect("sent").status())
        })
    });
    group.bench_function("google-cloud-auth id_token() + bearer_auth", |b| {
        b.to_async(&rt).iter(|| async {
            let token = gca.id_token().await.expect("token");
            let req = plain.get(&target).bearer_auth(token);
            black_box(req.send().await.expect("sent").status())
        })
    });
    group.finish();
}

criterion_group!(benches, client_overhead);
criterion_main!(benches);
