//! Each credential flow mints a correct token over the wire.

use idtoken::{Credentials, CredentialsKind, Format, TokenOptions};
use idtoken_emulator::Endpoint;

use crate::common::*;

#[tokio::test]
async fn service_account_key_mints_token_for_the_audience() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    assert_eq!(creds.kind(), CredentialsKind::ServiceAccount);
    let token = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("token");
    let claims = token.claims();
    assert_eq!(claims.aud.as_deref(), Some("https://svc.example"));
    assert_eq!(claims.iss.as_deref(), Some("https://accounts.google.com"));
    assert_eq!(
        claims.email.as_deref(),
        Some(emu.service_account_email().as_str())
    );
    assert_eq!(emu.counters().get(Endpoint::Token), 1);
}

#[tokio::test]
async fn metadata_server_mints_standard_and_full_tokens() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let standard = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("standard token");
    assert_eq!(
        standard.claims().aud.as_deref(),
        Some("https://svc.example")
    );
    assert_eq!(
        standard.claims().email,
        None,
        "format=standard has no email"
    );

    let full = creds
        .fetch_id_token(
            "https://svc.example",
            &TokenOptions::default().format(Format::Full),
        )
        .await
        .expect("full token");
    assert_eq!(
        full.claims().email.as_deref(),
        Some(emu.service_account_email().as_str())
    );
    assert_eq!(full.claims().email_verified, Some(true));
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 2);
}

#[tokio::test]
async fn metadata_licenses_claims_arrive_with_format_full() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let opts = TokenOptions::default().format(Format::Full).licenses(true);
    let token = creds
        .fetch_id_token("https://svc.example", &opts)
        .await
        .expect("token");
    let ce = &token.claims().extra["google"]["compute_engine"];
    assert!(ce["license_id"].is_array(), "claims: {:?}", token.claims());
}

#[tokio::test]
async fn metadata_email_is_asked_of_the_server() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    assert_eq!(creds.principal(), None);
    assert_eq!(
        creds.email().await.expect("email"),
        emu.service_account_email()
    );
}

#[tokio::test]
async fn debug_output_never_shows_token_or_key() {
    let emu = emulator().await;
    let (_dir, path) = key_file(&emu);
    let creds = Credentials::from_file(&path).expect("loads");
    let token = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("token");
    let key_json = std::fs::read_to_string(&path).expect("read");
    let key: serde_json::Value = serde_json::from_str(&key_json).expect("json");
    let pem = key["private_key"].as_str().expect("pem");
    let pem_body = pem.lines().nth(1).expect("a base64 line");

    let shown = format!(
        "{creds:?} {token:?} {token} {:?} {:?}",
        creds.token_source("https://svc.example"),
        token.claims()
    );
    assert!(!shown.contains(token.as_str()), "token leaked: {shown}");
    let signature = token.as_str().rsplit('.').next().expect("sig");
    assert!(!shown.contains(signature), "signature leaked: {shown}");
    assert!(!shown.contains(pem_body), "private key leaked: {shown}");
    assert!(token.authorization_header().is_sensitive());
}
