//! Numbers from outside (a token's `exp` and `iat`, a key set's `max-age`,
//! an access token's `expires_in`) never overflow time arithmetic: each
//! site gets a number past the year 9999 and must neither panic nor stall.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use idtoken::{Credentials, IdToken, Impersonate, TokenOptions, Verifier};
use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::json;

use crate::common::*;

const AUD: &str = "https://svc.example";

fn unsigned(claims: &str) -> String {
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(claims),
        b64("sig")
    )
}

#[test]
fn a_minted_token_with_an_exp_past_the_year_9999_parses_without_panicking() {
    let end_of_9999 = UNIX_EPOCH + Duration::from_secs(253_402_300_799);
    for exp in ["1e19", "10000000000000000000", "18446744073709551615"] {
        let raw = unsigned(&format!(r#"{{"aud":"a","exp":{exp},"iat":{exp}}}"#));
        let token = IdToken::parse(&raw).expect("parses");
        assert_eq!(token.expires_at(), end_of_9999, "exp {exp}");
        assert_eq!(token.issued_at(), Some(end_of_9999), "iat {exp}");
        let _ = token.lifetime();
    }
}

#[tokio::test]
async fn a_key_set_with_a_huge_max_age_verifies_and_is_still_refetched_within_a_day() {
    let clock = manual_clock();
    let c = clock.clone();
    let emu = Emulator::builder()
        .clock(std::sync::Arc::new(move || idtoken::Clock::now(&c)))
        .jwks_max_age(Duration::from_secs(u64::MAX))
        .start()
        .await
        .expect("emulator");
    let verifier = Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .clock(std::sync::Arc::new(clock.clone()))
        .build()
        .expect("verifier");
    let sign = |now: SystemTime| {
        let now = now
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs();
        let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
        let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
            "iat": now, "exp": now + 3600});
        emu.sign_google(&header.to_string(), &claims.to_string())
            .expect("signs")
    };
    let now = idtoken::Clock::now(&clock);
    within("verify", verifier.verify(&sign(now)))
        .await
        .expect("verifies");
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
    // A withdrawn key must not stay trusted for ever: after a day the keys
    // are fetched again, whatever max-age said.
    clock.advance(Duration::from_secs(25 * 3600));
    let now = idtoken::Clock::now(&clock);
    within("verify", verifier.verify(&sign(now)))
        .await
        .expect("verifies");
    wait_for_count(&emu, Endpoint::JwksV3, 2).await;
}

#[tokio::test]
async fn an_access_token_with_a_huge_expires_in_mints_without_panicking() {
    let emu = emulator().await;
    // A real access token of the emulator's metadata server, handed back
    // with an `expires_in` past the year 9999.
    let url = format!(
        "http://{}/computeMetadata/v1/instance/service-accounts/default/token",
        emu.metadata_host()
    );
    let answer: serde_json::Value = reqwest::Client::new()
        .get(url)
        .header("metadata-flavor", "Google")
        .send()
        .await
        .expect("metadata answers")
        .json()
        .await
        .expect("json");
    let access = answer["access_token"].as_str().expect("access token");
    let body = json!({"access_token": access, "expires_in": u64::MAX, "token_type": "Bearer"});
    emu.inject_fault(Endpoint::MetadataToken, Fault::Body(body.to_string()), 1);
    let creds = Credentials::metadata_server(&emu.metadata_host())
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url()));
    let token = within("mint", creds.fetch_id_token(AUD, &TokenOptions::default()))
        .await
        .expect("mints");
    assert_eq!(token.claims().aud.as_deref(), Some(AUD));
}
