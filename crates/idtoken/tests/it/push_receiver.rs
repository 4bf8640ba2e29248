//! `examples/push_receiver.rs` (the Pub/Sub push and Cloud Scheduler
//! recipe), served on loopback and called with tokens shaped like the ones
//! Pub/Sub and Cloud Scheduler send: minted by the emulator's IAM for the
//! right service account, and for the wrong one.

use std::net::SocketAddr;

use base64::Engine as _;
use idtoken::{Credentials, TokenOptions};
use idtoken_emulator::Emulator;
use serde_json::json;

use crate::common::*;

#[path = "../../examples/push_receiver.rs"]
#[allow(dead_code)] // its `main`
mod example;

const AUD: &str = "https://receiver.example";

/// The example's router on a free loopback port: pushes from the target
/// account, scheduled jobs from the default one.
async fn receiver(emu: &Emulator) -> SocketAddr {
    let router = example::router(&example::Config {
        audience: AUD.into(),
        push_service_account: emu.target_service_account_email(),
        scheduler_service_account: emu.service_account_email(),
        jwks_url: Some(emu.jwks_url()),
    })
    .expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// What Pub/Sub sends with `--push-auth-service-account`: an IAM-minted
/// token with `email` and `email_verified` (the key file impersonates the
/// target account, as Pub/Sub's service agent does the push account).
async fn push_token(emu: &Emulator, dir: &std::path::Path, aud: &str) -> String {
    let files = emu.write_credentials(dir).expect("files");
    Credentials::from_file(&files.impersonated_from_service_account)
        .expect("credentials")
        .fetch_id_token(aud, &TokenOptions::default().include_email(true))
        .await
        .expect("token")
        .as_str()
        .to_owned()
}

/// A token of the default service account (the scheduler's here).
async fn default_account_token(emu: &Emulator, dir: &std::path::Path) -> String {
    let files = emu.write_credentials(dir).expect("files");
    Credentials::from_file(&files.service_account)
        .expect("credentials")
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect("token")
        .as_str()
        .to_owned()
}

async fn post(addr: SocketAddr, path: &str, token: Option<&str>, body: String) -> (u16, String) {
    let mut req = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .header("content-type", "application/json")
        .body(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("answered");
    (resp.status().as_u16(), resp.text().await.expect("body"))
}

fn push_body() -> String {
    json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode("hello"),
            "messageId": "136969346945",
            "publishTime": "2026-01-01T00:00:00Z",
            "attributes": {},
        },
        "subscription": "projects/p/subscriptions/s",
    })
    .to_string()
}

#[tokio::test]
async fn pushes_are_taken_only_from_the_push_account_for_this_audience() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let addr = receiver(&emu).await;
    let good = push_token(&emu, dir.path(), AUD).await;
    let claims = idtoken::IdToken::parse(&good)
        .expect("token")
        .claims()
        .to_json();
    assert_eq!(claims["email_verified"], true, "shaped like Pub/Sub's");
    assert_eq!(claims["email"], emu.target_service_account_email().as_str());

    let (status, body) = post(addr, "/pubsub", Some(&good), push_body()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "acknowledged 136969346945\n")
    );

    let other_audience = push_token(&emu, dir.path(), "https://another.example").await;
    let scheduler_account = default_account_token(&emu, dir.path()).await;
    for (what, token) in [
        ("no token", None),
        ("another audience", Some(other_audience.as_str())),
        ("another service account", Some(scheduler_account.as_str())),
    ] {
        let (status, _) = post(addr, "/pubsub", token, push_body()).await;
        assert_eq!(status, 401, "{what}");
    }
}

#[tokio::test]
async fn scheduled_jobs_are_taken_only_from_the_scheduler_account() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let addr = receiver(&emu).await;
    let scheduler_account = default_account_token(&emu, dir.path()).await;
    let (status, body) = post(addr, "/scheduler", Some(&scheduler_account), "{}".into()).await;
    assert_eq!((status, body.as_str()), (200, "ran\n"));
    let push_account = push_token(&emu, dir.path(), AUD).await;
    let (status, _) = post(addr, "/scheduler", Some(&push_account), "{}".into()).await;
    assert_eq!(status, 401, "the push account may not run jobs");
}
