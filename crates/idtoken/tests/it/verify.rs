//! The verifier accepts the emulator's tokens for the right audience and
//! refuses the rest. (The full attack suite arrives with the verifier issue.)

use std::sync::Arc;
use std::time::Duration;

use idtoken::{Credentials, TokenOptions, Verifier, VerifyError};
use idtoken_emulator::Endpoint;

use crate::common::*;

#[tokio::test]
async fn emulator_tokens_verify_for_their_audience_only() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let token = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("token");
    let good = Verifier::builder()
        .audience("https://svc.example")
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let claims = good.verify(token.as_str()).await.expect("valid");
    assert_eq!(claims.aud.as_deref(), Some("https://svc.example"));

    let other = Verifier::builder()
        .audience("https://other.example")
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let err = other
        .verify(token.as_str())
        .await
        .expect_err("wrong audience");
    assert!(matches!(err, VerifyError::WrongAudience { .. }), "{err:?}");
}

#[tokio::test]
async fn keys_are_fetched_once_and_refetched_after_rotation() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let verifier = Verifier::builder()
        .audience("https://a.example")
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let t1 = creds
        .fetch_id_token("https://a.example", &TokenOptions::default())
        .await
        .expect("token");
    for _ in 0..10 {
        verifier.verify(t1.as_str()).await.expect("valid");
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
    emu.rotate_keys();
    // A new audience so the metadata server mints with the new key.
    let verifier2 = Verifier::builder()
        .audience("https://b.example")
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let t2 = creds
        .fetch_id_token("https://b.example", &TokenOptions::default())
        .await
        .expect("token");
    verifier2
        .verify(t2.as_str())
        .await
        .expect("valid with the new key");
    verifier
        .verify(t1.as_str())
        .await
        .expect("old key still listed");
}

#[tokio::test]
async fn expired_tokens_are_refused() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let token = creds
        .fetch_id_token("https://a.example", &TokenOptions::default())
        .await
        .expect("token");
    clock.set(token.expires_at() + Duration::from_secs(31));
    let verifier = Verifier::builder()
        .audience("https://a.example")
        .jwks_url(emu.jwks_url())
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("verifier");
    let err = verifier.verify(token.as_str()).await.expect_err("expired");
    assert!(matches!(err, VerifyError::Expired { .. }), "{err:?}");
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        0,
        "claims are checked before keys are fetched"
    );
}
