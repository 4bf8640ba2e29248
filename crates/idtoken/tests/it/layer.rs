//! The tower layer and axum extractor (feature `axum`), as a real axum
//! service on loopback in front of the emulator's key sets.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::routing::get;
use idtoken::TokenHeader;
use idtoken::Verifier;
use idtoken::integrations::axum::VerifiedClaims;
use idtoken::integrations::tower::VerifyLayer;
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::json;

const AUD: &str = "https://svc.example";
const IAP_AUD: &str = "/projects/1/apps/demo";

async fn who(VerifiedClaims(claims): VerifiedClaims) -> String {
    claims.email.unwrap_or_default()
}

/// Serves `who` behind `layer` on a free loopback port.
async fn serve(layer: VerifyLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().route("/", get(who)).layer(layer);
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn token(emu: &Emulator, aud: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": aud, "sub": "1",
        "email": "alice@example.com", "email_verified": true, "iat": now, "exp": now + 3600});
    emu.sign_google(&header.to_string(), &claims.to_string())
        .expect("signed")
}

fn google(emu: &Emulator) -> Verifier {
    Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier")
}

/// GETs `/` with `headers`; the status, the challenge and the body.
async fn get_with(addr: SocketAddr, headers: &[(&str, String)]) -> (u16, String, String) {
    let mut req = reqwest::Client::new().get(format!("http://{addr}/"));
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    let resp = req.send().await.expect("answered");
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        resp.status().as_u16(),
        challenge,
        resp.text().await.expect("body"),
    )
}

#[tokio::test]
async fn a_request_without_a_token_gets_401_with_a_bearer_challenge() {
    let emu = Emulator::start().await.expect("emulator");
    let addr = serve(VerifyLayer::new(google(&emu))).await;
    let (status, challenge, body) = get_with(addr, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(
        challenge,
        "Bearer error=\"invalid_token\", error_description=\"missing bearer token\""
    );
    assert_eq!(body, "");
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 0);
}

#[tokio::test]
async fn a_valid_token_reaches_the_handler_with_its_claims() {
    let emu = Emulator::start().await.expect("emulator");
    let addr = serve(VerifyLayer::new(google(&emu))).await;
    let bearer = format!("Bearer {}", token(&emu, AUD));
    let (status, _, body) = get_with(addr, &[("authorization", bearer)]).await;
    assert_eq!((status, body.as_str()), (200, "alice@example.com"));
}

#[tokio::test]
async fn x_serverless_authorization_is_preferred_over_authorization() {
    let emu = Emulator::start().await.expect("emulator");
    let addr = serve(VerifyLayer::new(google(&emu))).await;
    let headers = [
        ("authorization", "Basic dXNlcjpwYXNz".to_owned()),
        (
            "x-serverless-authorization",
            format!("Bearer {}", token(&emu, AUD)),
        ),
    ];
    let (status, _, _) = get_with(addr, &headers).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn a_token_for_another_audience_gets_401_naming_the_audience_seen() {
    let emu = Emulator::start().await.expect("emulator");
    let addr = serve(VerifyLayer::new(google(&emu))).await;
    let bearer = format!("Bearer {}", token(&emu, "https://other.example"));
    let (status, challenge, _) = get_with(addr, &[("authorization", bearer)]).await;
    assert_eq!(status, 401);
    assert!(
        challenge.contains("wrong audience 'https://other.example'"),
        "{challenge}"
    );
}

#[tokio::test]
async fn a_grpc_request_is_refused_with_grpc_status_unauthenticated_and_grpc_web_with_401() {
    let emu = Emulator::start().await.expect("emulator");
    let addr = serve(VerifyLayer::new(google(&emu))).await;
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(10))
        .build()
        .expect("client");
    // The reason names the token's audience, here with a `%` to encode.
    let bearer = format!("Bearer {}", token(&emu, "https://other.example/100%"));
    let send = |content_type: &'static str| {
        client
            .post(format!("http://{addr}/"))
            .header("content-type", content_type)
            .header("authorization", &bearer)
            .send()
    };
    let header = |resp: &reqwest::Response, name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    for grpc in ["application/grpc", "application/grpc+proto"] {
        let resp = send(grpc).await.expect("answered");
        // gRPC's Trailers-Only answer: the status rides in the headers.
        assert_eq!(resp.status(), 200, "{grpc}");
        assert_eq!(
            header(&resp, "content-type").as_deref(),
            Some("application/grpc")
        );
        assert_eq!(header(&resp, "grpc-status").as_deref(), Some("16"));
        let message = header(&resp, "grpc-message").expect("a grpc-message");
        assert!(
            message.starts_with("wrong audience 'https://other.example/100%25'"),
            "percent-encoded as gRPC requires: {message}"
        );
        assert!(header(&resp, "www-authenticate").is_some());
    }
    let resp = send("application/grpc-web").await.expect("answered");
    assert_eq!(resp.status(), 401);
    assert_eq!(header(&resp, "grpc-status"), None);
}

#[tokio::test]
async fn unreachable_keys_answer_503_not_401() {
    let emu = Emulator::start().await.expect("emulator");
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let verifier = Verifier::builder()
        .audience(AUD)
        .jwks_url(format!("http://{closed}/certs"))
        .build()
        .expect("verifier");
    let addr = serve(VerifyLayer::new(verifier)).await;
    let bearer = format!("Bearer {}", token(&emu, AUD));
    let (status, challenge, _) = get_with(addr, &[("authorization", bearer)]).await;
    assert_eq!(status, 503, "{challenge}");
}

#[tokio::test]
async fn an_iap_layer_reads_the_iap_assertion_header_only() {
    let emu = Emulator::start().await.expect("emulator");
    let verifier = Verifier::iap()
        .audience(IAP_AUD)
        .jwks_url(emu.iap_jwks_url())
        .build()
        .expect("verifier");
    let addr = serve(VerifyLayer::new(verifier.clone())).await;
    let iap = emu
        .iap_token(IAP_AUD, "bob@example.com")
        .expect("IAP token");
    let (status, _, body) = get_with(addr, &[("x-goog-iap-jwt-assertion", iap.clone())]).await;
    assert_eq!((status, body.as_str()), (200, "bob@example.com"));
    let (status, _, _) = get_with(addr, &[("authorization", format!("Bearer {iap}"))]).await;
    assert_eq!(status, 401);

    let both = serve(VerifyLayer::new(verifier).headers([TokenHeader::Authorization])).await;
    let (status, _, _) = get_with(both, &[("authorization", format!("Bearer {iap}"))]).await;
    assert_eq!(status, 200, "headers are configurable");
}
