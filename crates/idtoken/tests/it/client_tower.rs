//! The tower layer around a hyper-util client, over loopback.

use std::future::poll_fn;

use http_body_util::Empty;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use idtoken::Credentials;
use idtoken::TokenHeader;
use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::tower::{AddIdTokenLayer, BoxError};
use idtoken_emulator::Endpoint;
use tower_layer::Layer as _;
use tower_service::Service;

use crate::common::*;
use crate::upstream::Upstream;

type Body = Empty<axum::body::Bytes>;

async fn send<S>(svc: &mut S, req: http::Request<Body>) -> Result<S::Response, BoxError>
where
    S: Service<http::Request<Body>, Error = BoxError>,
{
    poll_fn(|cx| svc.poll_ready(cx)).await?;
    svc.call(req).await
}

fn get(uri: &str) -> http::Request<Body> {
    http::Request::get(uri).body(Empty::new()).expect("request")
}

fn hyper_client() -> Client<hyper_util::client::legacy::connect::HttpConnector, Body> {
    Client::builder(TokioExecutor::new()).build_http()
}

#[tokio::test]
async fn layer_adds_a_verified_token_to_hyper_client_requests_and_fetches_once() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let tokens = Tokens::new(
        Credentials::metadata_server(&emu.metadata_host()),
        Audience::FromUrl,
    );
    let mut svc = AddIdTokenLayer::new(tokens).layer(hyper_client());
    for _ in 0..3 {
        let resp = send(&mut svc, get(&format!("{}/x", up.url)))
            .await
            .expect("sent");
        assert_eq!(resp.status(), 200);
    }
    assert!(up.seen().iter().all(|s| s.verified == Some(true)));
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn layer_leaves_an_existing_header_alone_and_can_use_x_serverless() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let mut keep =
        AddIdTokenLayer::new(Tokens::new(creds.clone(), Audience::FromUrl)).layer(hyper_client());
    let mut req = get(&up.url);
    req.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("Basic dXNlcjpwdw=="),
    );
    send(&mut keep, req).await.expect("sent");
    assert_eq!(up.seen()[0].headers["authorization"], "Basic dXNlcjpwdw==");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 0);

    let tokens = Tokens::new(creds, Audience::Fixed(up.url.clone()))
        .header(TokenHeader::XServerlessAuthorization);
    let mut beside = AddIdTokenLayer::new(tokens).layer(hyper_client());
    let mut req = get(&up.url);
    req.headers_mut().insert(
        "authorization",
        http::HeaderValue::from_static("Basic dXNlcjpwdw=="),
    );
    send(&mut beside, req).await.expect("sent");
    let seen = &up.seen()[1];
    assert_eq!(seen.headers["authorization"], "Basic dXNlcjpwdw==");
    assert_eq!(seen.verified, Some(true));
}

#[tokio::test]
async fn a_path_only_uri_with_derived_audience_is_an_idtoken_error() {
    let emu = emulator().await;
    let tokens = Tokens::new(
        Credentials::metadata_server(&emu.metadata_host()),
        Audience::FromUrl,
    );
    let mut svc = AddIdTokenLayer::new(tokens).layer(hyper_client());
    let err = send(&mut svc, get("/pkg.Service/Method"))
        .await
        .expect_err("no origin");
    let err = err
        .downcast_ref::<idtoken::Error>()
        .expect("an idtoken::Error");
    assert!(matches!(err, idtoken::Error::InvalidArgument(_)), "{err:?}");
    assert!(err.to_string().contains("Audience::Fixed"), "{err}");
}

#[tokio::test]
async fn a_mint_failure_is_a_boxed_idtoken_error_and_nothing_is_sent() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    emu.inject_fault(
        Endpoint::MetadataIdentity,
        idtoken_emulator::Fault::Status(403),
        10,
    );
    let tokens = Tokens::new(
        Credentials::metadata_server(&emu.metadata_host()),
        Audience::FromUrl,
    );
    let mut svc = AddIdTokenLayer::new(tokens).layer(hyper_client());
    let err = send(&mut svc, get(&up.url)).await.expect_err("no token");
    assert!(err.downcast_ref::<idtoken::Error>().is_some(), "{err:?}");
    assert!(up.seen().is_empty());
}
