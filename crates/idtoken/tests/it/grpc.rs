//! gRPC both ways over loopback with tonic: a server behind `VerifyLayer`,
//! a channel behind `AddIdTokenLayer`. The service is `tonic-health`'s
//! pre-generated one, so no protoc; its `check` reports who called.

use std::sync::Arc;
use std::time::Duration;

use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::tower::{AddIdToken, AddIdTokenLayer, VerifyLayer};
use idtoken::{Claims, Credentials, Verifier};
use idtoken_emulator::{Emulator, Endpoint};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Code, Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_layer::Layer as _;

use crate::common::*;

/// The response metadata key carrying the caller's verified email.
const CALLER: &str = "x-verified-email";

/// A health service whose `check` answers with the email from the claims
/// `VerifyLayer` put in the request extensions.
struct WhoCalled;

#[tonic::async_trait]
impl Health for WhoCalled {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        let claims = req
            .extensions()
            .get::<Claims>()
            .ok_or_else(|| Status::internal("the handler was reached without verified claims"))?;
        let email = claims.email.as_deref().unwrap_or("<no email claim>");
        let mut resp = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        });
        let value = email
            .parse()
            .map_err(|_| Status::internal("email is not a header value"))?;
        resp.metadata_mut().insert(CALLER, value);
        Ok(resp)
    }

    type WatchStream = tonic::codegen::BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("only check is served"))
    }
}

/// Starts a tonic server guarded by `VerifyLayer` on 127.0.0.1; its URL is
/// also the audience it accepts, as on Cloud Run.
async fn grpc_server(emu: &Emulator) -> String {
    grpc_server_with_keys(&emu.jwks_url()).await
}

async fn grpc_server_with_keys(jwks_url: &str) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let url = format!("http://{}", listener.local_addr().expect("bound address"));
    let verifier = Verifier::builder()
        .audience(url.clone())
        .jwks_url(jwks_url)
        .build()
        .expect("verifier");
    let server = Server::builder()
        .timeout(Duration::from_secs(10))
        .layer(VerifyLayer::new(verifier))
        .serve_with_incoming(HealthServer::new(WhoCalled), TcpIncoming::from(listener));
    tokio::spawn(server);
    url
}

async fn channel(url: &str) -> Channel {
    let endpoint = Channel::from_shared(url.to_owned())
        .expect("endpoint URL")
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    within("connecting", endpoint.connect())
        .await
        .expect("connected")
}

/// A health client whose requests carry tokens for `audience`.
async fn client_with_tokens(
    url: &str,
    creds: Credentials,
    audience: &str,
) -> HealthClient<AddIdToken<Channel>> {
    let tokens = Tokens::new(creds, Audience::Fixed(audience.to_owned()));
    HealthClient::new(AddIdTokenLayer::new(tokens).layer(channel(url).await))
}

fn check() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn layered_channel_reaches_the_handler_with_verified_claims() {
    let emu = emulator().await;
    let url = grpc_server(&emu).await;
    let (_dir, creds) = service_account(&emu);
    let mut client = client_with_tokens(&url, creds, &url).await;
    let resp = within("a gRPC call", client.check(check()))
        .await
        .expect("the call succeeds");
    assert_eq!(
        resp.metadata().get(CALLER).and_then(|v| v.to_str().ok()),
        Some(emu.service_account_email().as_str())
    );
    assert_eq!(resp.get_ref().status(), ServingStatus::Serving);
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated_and_says_why() {
    let emu = emulator().await;
    let url = grpc_server(&emu).await;
    let mut client = HealthClient::new(channel(&url).await);
    let status = within("a gRPC call", client.check(check()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // VerifyLayer answers gRPC in gRPC's terms, so the reason arrives as
    // the status message rather than only in a `WWW-Authenticate` header.
    assert_eq!(status.message(), "missing bearer token");
    assert_eq!(emu.counters().total(), 0, "refused before any key fetch");
}

#[tokio::test]
async fn a_token_for_another_audience_is_unauthenticated() {
    let emu = emulator().await;
    let url = grpc_server(&emu).await;
    let (_dir, creds) = service_account(&emu);
    let mut client = client_with_tokens(&url, creds, "https://other.example").await;
    let status = within("a gRPC call", client.check(check()))
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    assert!(
        status
            .message()
            .contains("wrong audience 'https://other.example'"),
        "{status:?}"
    );
    assert!(
        !status.message().contains("eyJ"),
        "no token in the message: {status:?}"
    );
}

#[tokio::test]
async fn unreachable_keys_are_unavailable_not_unauthenticated() {
    let emu = emulator().await;
    // A port that was free a moment ago: connections to it are refused.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let url = grpc_server_with_keys(&format!("http://{closed}/certs")).await;
    let (_dir, creds) = service_account(&emu);
    let mut client = client_with_tokens(&url, creds, &url).await;
    let status = within("a gRPC call", client.check(check()))
        .await
        .expect_err("refused");
    // UNAVAILABLE tells gRPC clients that a retry may succeed.
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
}

#[tokio::test]
async fn concurrent_calls_on_a_cold_channel_share_one_token_fetch() {
    const CALLS: usize = 50;
    let emu = emulator().await;
    let url = grpc_server(&emu).await;
    let (_dir, creds) = service_account(&emu);
    let client = client_with_tokens(&url, creds, &url).await;
    // Hold the first fetch at the emulator so that the calls pile up
    // behind it instead of finding a warm cache.
    let hold = emu.hold(Endpoint::Token);
    let barrier = Arc::new(tokio::sync::Barrier::new(CALLS + 1));
    let mut calls = Vec::new();
    for _ in 0..CALLS {
        let (mut client, barrier) = (client.clone(), barrier.clone());
        calls.push(tokio::spawn(async move {
            barrier.wait().await;
            client.check(check()).await
        }));
    }
    barrier.wait().await;
    wait_for_count(&emu, Endpoint::Token, 1).await;
    hold.release();
    for call in calls {
        within("a gRPC call", call)
            .await
            .expect("task")
            .expect("the call succeeds");
    }
    assert_eq!(emu.counters().get(Endpoint::Token), 1);
}

#[test]
fn the_verifying_layer_and_the_client_share_one_token_header_type() {
    let sent: idtoken::TokenHeader = idtoken::TokenHeader::XServerlessAuthorization;
    let read: idtoken::TokenHeader = sent;
    assert_eq!(read.name(), "x-serverless-authorization");
}

#[path = "../../examples/grpc.rs"]
#[allow(dead_code)] // its `main`
mod example;

#[tokio::test]
async fn the_grpc_example_prints_what_its_recipe_page_shows() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    let lines = within("the example", example::demo(creds, Some(emu.jwks_url())))
        .await
        .expect("the example runs");
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/recipes/tonic.md"
    ))
    .expect("docs/recipes/tonic.md");
    // The page's one `text` block is the example's output.
    let shown = page
        .split("\n```text\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("a text block on the page");
    assert_eq!(lines.join("\n"), shown);
}
