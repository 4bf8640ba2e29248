//! The verified-token cache: a repeated token costs one signature check,
//! and a cached verdict never outlives what it rested on (the token's
//! times, the verifier's policy, the key in the key set), never admits a
//! different token, and cannot be flushed by forgeries.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idtoken::{Verifier, VerifyError};
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::json;

use crate::common::*;

const AUD: &str = "https://svc.example";

/// A Google-style token for `AUD` signed by the emulator's current key,
/// issued at `iat` (seconds), with `sub` to make it unique.
fn signed(emu: &Emulator, iat: u64, sub: &str) -> String {
    let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": sub,
        "azp": sub, "email": "svc@example.iam.gserviceaccount.com", "email_verified": true,
        "iat": iat, "exp": iat + 3600});
    emu.sign_google(&header.to_string(), &claims.to_string())
        .expect("signed")
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

fn verifier(emu: &Emulator) -> idtoken::VerifierBuilder {
    Verifier::builder().audience(AUD).jwks_url(emu.jwks_url())
}

#[tokio::test]
async fn a_repeated_token_costs_one_signature_check() {
    let emu = emulator().await;
    let v = verifier(&emu).build().expect("verifier");
    let token = signed(&emu, now_secs(), "1");
    for _ in 0..1000 {
        let claims = v.verify(&token).await.expect("valid");
        assert_eq!(claims.sub.as_deref(), Some("1"));
    }
    let stats = v.stats();
    assert_eq!(stats.signature_checks, 1, "{stats:?}");
    assert_eq!(stats.cached_tokens, 1, "{stats:?}");
    assert!(stats.cached_bytes > token.len() as u64, "{stats:?}");
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
}

#[tokio::test]
async fn turned_off_every_verification_checks_the_signature() {
    let emu = emulator().await;
    let v = verifier(&emu)
        .verified_cache_capacity(0)
        .build()
        .expect("verifier");
    let token = signed(&emu, now_secs(), "1");
    for _ in 0..10 {
        v.verify(&token).await.expect("valid");
    }
    let stats = v.stats();
    assert_eq!(stats.signature_checks, 10, "{stats:?}");
    assert_eq!(stats.cached_tokens, 0, "{stats:?}");
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let v = verifier(&emu)
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("verifier");
    let iat = clock_secs(&clock);
    let token = signed(&emu, iat, "1");
    v.verify(&token).await.expect("valid");
    // Past exp (iat + 3600) and the 30 s skew.
    clock.advance(Duration::from_secs(3600 + 31));
    let err = v.verify(&token).await.expect_err("expired");
    assert!(matches!(err, VerifyError::Expired { .. }), "{err:?}");
    let stats = v.stats();
    assert_eq!(
        stats.signature_checks, 1,
        "the refusal came from the cache's re-check"
    );
    assert_eq!(stats.cached_tokens, 0, "an expired entry is dropped");
}

fn clock_secs(clock: &idtoken::ManualClock) -> u64 {
    use idtoken::Clock as _;
    clock
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs()
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_leaves_the_key_set() {
    let emu = emulator().await;
    let v = verifier(&emu)
        .unknown_kid_interval(Duration::ZERO)
        .build()
        .expect("verifier");
    let old = signed(&emu, now_secs(), "old");
    v.verify(&old).await.expect("valid");
    // Two rotations: the key set now lists the two newest keys only.
    emu.rotate_keys();
    emu.rotate_keys();
    // A token with the newest kid makes the verifier fetch the new set.
    let new = signed(&emu, now_secs(), "new");
    v.verify(&new).await.expect("valid with the new key");
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 2);
    let err = v.verify(&old).await.expect_err("its key was withdrawn");
    assert!(matches!(err, VerifyError::UnknownKey { .. }), "{err:?}");
}

#[tokio::test]
async fn a_token_one_byte_away_from_a_cached_one_is_checked_on_its_own() {
    let emu = emulator().await;
    let v = verifier(&emu).build().expect("verifier");
    let token = signed(&emu, now_secs(), "1");
    v.verify(&token).await.expect("valid");
    // Flip one character of the signature.
    let mut tampered = token.clone().into_bytes();
    let last = tampered.len() - 2;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("ascii");
    let err = v.verify(&tampered).await.expect_err("tampered");
    assert!(
        matches!(
            err,
            VerifyError::BadSignature | VerifyError::Malformed { .. }
        ),
        "{err:?}"
    );
    // A token with more claims, same prefix: the whole text is compared.
    let longer = format!("{token}A");
    assert!(v.verify(&longer).await.is_err());
    assert_eq!(v.stats().cached_tokens, 1);
}

#[tokio::test]
async fn forged_tokens_never_enter_and_evict_nothing() {
    let emu = emulator().await;
    let v = verifier(&emu)
        // Room for a handful of entries only.
        .verified_cache_capacity(16 * 1024)
        .build()
        .expect("verifier");
    let good = signed(&emu, now_secs(), "good");
    v.verify(&good).await.expect("valid");
    v.verify(&good).await.expect("valid");
    // 200 forgeries: valid claims, a signature from another token.
    let signature = good.rsplit('.').next().expect("signature");
    for i in 0..200 {
        let other = signed(&emu, now_secs(), &format!("forged-{i}"));
        let (signed_part, _) = other.rsplit_once('.').expect("three parts");
        let forged = format!("{signed_part}.{signature}");
        let err = v.verify(&forged).await.expect_err("forged");
        assert_eq!(err, VerifyError::BadSignature);
    }
    assert_eq!(v.stats().cached_tokens, 1, "forgeries never enter");
    let checks = v.stats().signature_checks;
    v.verify(&good).await.expect("valid");
    assert_eq!(
        v.stats().signature_checks,
        checks,
        "the good token is still cached"
    );
}

#[tokio::test]
async fn a_flood_of_unique_valid_tokens_keeps_the_repeated_ones() {
    let emu = emulator().await;
    let v = verifier(&emu)
        // About 30 entries of ~1.5 KiB.
        .verified_cache_capacity(48 * 1024)
        .build()
        .expect("verifier");
    let hot: Vec<String> = (0..5)
        .map(|i| signed(&emu, now_secs(), &format!("hot-{i}")))
        .collect();
    for _ in 0..3 {
        for t in &hot {
            v.verify(t).await.expect("valid");
        }
    }
    assert_eq!(v.stats().signature_checks, 5);
    // 300 tokens seen once each: ten times what the cache holds.
    for i in 0..300 {
        let once = signed(&emu, now_secs(), &format!("once-{i}"));
        v.verify(&once).await.expect("valid");
    }
    let stats = v.stats();
    assert!(stats.cached_bytes <= 48 * 1024, "{stats:?}");
    let before = stats.signature_checks;
    for t in &hot {
        v.verify(t).await.expect("valid");
    }
    assert_eq!(
        v.stats().signature_checks,
        before,
        "the repeated tokens survived the flood"
    );
}
