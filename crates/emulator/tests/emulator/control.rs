//! Test control: counters, faults, holds, key rotation, key sets, key files
//! and shutdown.

use std::time::Duration;

use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::Value;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use crate::common::{BoxError, TestResult, grant, id_assertion, key_file};

/// Waits (up to 5 s) until `endpoint` has received `n` requests.
async fn wait_for_count(emu: &Emulator, endpoint: Endpoint, n: u64) {
    for _ in 0..500 {
        if emu.counters().get(endpoint) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A whole request to another endpoint (the PEM certificates), answered:
/// the ordering that shows a request counted before it still waiting,
/// instead of a sleep of a guessed length.
async fn another_request_comes_and_goes(emu: &Emulator) -> TestResult {
    let before = emu.counters().get(Endpoint::CertsV1);
    reqwest::get(emu.pem_certs_url())
        .await?
        .error_for_status()?;
    assert_eq!(emu.counters().get(Endpoint::CertsV1), before + 1);
    Ok(())
}

#[tokio::test]
async fn counters_count_each_endpoint_and_are_served_as_json() -> TestResult {
    let emu = Emulator::start().await?;
    for _ in 0..3 {
        reqwest::get(emu.jwks_url()).await?.error_for_status()?;
    }
    reqwest::get(emu.pem_certs_url())
        .await?
        .error_for_status()?;
    let c = emu.counters();
    assert_eq!(c.get(Endpoint::JwksV3), 3);
    assert_eq!(c.get(Endpoint::CertsV1), 1);
    assert_eq!(c.get(Endpoint::Token), 0);

    let json: Value = reqwest::get(format!("{}/_emulator/counters", emu.url()))
        .await?
        .json()
        .await?;
    assert_eq!(json["jwks_v3"], 3);
    assert_eq!(json["certs_v1"], 1);
    assert_eq!(json["metadata_identity"], 0);
    assert_eq!(serde_json::to_value(emu.counters())?, json);
    Ok(())
}

#[tokio::test]
async fn injected_status_fault_fails_exactly_one_request() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    emu.inject_fault(Endpoint::Token, Fault::Status(500), 1);
    let assertion = id_assertion(&emu, &kf, "https://a.example")?;
    let (status, body) = grant(&emu, &assertion).await?;
    assert_eq!(status, 500);
    assert_eq!(body["error"], "internal_failure");
    let (status, _) = grant(&emu, &assertion).await?;
    assert_eq!(status, 200);
    assert_eq!(emu.counters().get(Endpoint::Token), 2);
    Ok(())
}

#[tokio::test]
async fn body_fault_answers_200_with_that_body() -> TestResult {
    let emu = Emulator::start().await?;
    emu.inject_fault(Endpoint::JwksV3, Fault::Body("not-json".into()), 2);
    for _ in 0..2 {
        let resp = reqwest::get(emu.jwks_url()).await?;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await?, "not-json");
    }
    let keys: Value = reqwest::get(emu.jwks_url()).await?.json().await?;
    assert!(keys["keys"].is_array());
    Ok(())
}

#[tokio::test]
async fn metadata_status_fault_is_plain_text_with_flavor() -> TestResult {
    let emu = Emulator::start().await?;
    emu.inject_fault(Endpoint::MetadataPing, Fault::Status(503), 1);
    let resp = reqwest::Client::new()
        .get(emu.url())
        .header("Metadata-Flavor", "Google")
        .send()
        .await?;
    assert_eq!(resp.status(), 503);
    assert!(
        resp.headers()
            .get("metadata-flavor")
            .is_some_and(|v| v == "Google")
    );
    Ok(())
}

#[tokio::test]
async fn hang_fault_trips_client_timeout_and_ends_at_shutdown() -> TestResult {
    let emu = Emulator::start().await?;
    emu.inject_fault(Endpoint::JwksV3, Fault::Hang, 1);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()?;
    let err = client
        .get(emu.jwks_url())
        .send()
        .await
        .err()
        .ok_or("answered")?;
    assert!(err.is_timeout(), "{err}");

    emu.inject_fault(Endpoint::JwksV3, Fault::Hang, 1);
    let url = emu.jwks_url();
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    wait_for_count(&emu, Endpoint::JwksV3, 2).await;
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown()).await?;
    let status = tokio::time::timeout(Duration::from_secs(10), pending).await??;
    assert_eq!(status?, 503);
    Ok(())
}

#[tokio::test]
async fn held_requests_are_counted_and_wait_until_release() -> TestResult {
    let emu = Emulator::start().await?;
    let hold = emu.hold(Endpoint::JwksV3);
    let url = emu.jwks_url();
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    wait_for_count(&emu, Endpoint::JwksV3, 1).await;
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        1,
        "counted on arrival"
    );
    another_request_comes_and_goes(&emu).await?;
    assert!(!pending.is_finished(), "answered while held");
    hold.release();
    let status = tokio::time::timeout(Duration::from_secs(10), pending).await??;
    assert_eq!(status?, 200);
    Ok(())
}

#[tokio::test]
async fn delayed_requests_are_counted_and_wait_out_the_delay_set_on_arrival() -> TestResult {
    let emu = Emulator::start().await?;
    emu.set_delay(Endpoint::JwksV3, Duration::from_secs(3600));
    let url = emu.jwks_url();
    let pending = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status().as_u16()) });
    wait_for_count(&emu, Endpoint::JwksV3, 1).await;
    another_request_comes_and_goes(&emu).await?;
    assert!(!pending.is_finished(), "answered during the delay");
    // Ending the delay does not shorten the wait of a request already in.
    emu.set_delay(Endpoint::JwksV3, Duration::ZERO);
    let status = tokio::time::timeout(Duration::from_secs(10), reqwest::get(emu.jwks_url()))
        .await??
        .status();
    assert_eq!(status, 200);
    assert!(
        !pending.is_finished(),
        "the first request skipped its delay"
    );
    // Shutdown ends the wait, as it does for holds.
    tokio::time::timeout(Duration::from_secs(10), emu.shutdown()).await?;
    let status = tokio::time::timeout(Duration::from_secs(10), pending).await??;
    assert_eq!(status?, 200);
    Ok(())
}

#[tokio::test]
async fn rotate_keys_changes_kid_and_key_set_lists_new_and_previous() -> TestResult {
    let emu = Emulator::start().await?;
    let kids = |v: &Value| -> Vec<String> {
        v["keys"]
            .as_array()
            .map(|ks| {
                ks.iter()
                    .filter_map(|k| k["kid"].as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    };
    let before: Value = reqwest::get(emu.jwks_url()).await?.json().await?;
    assert_eq!(kids(&before).len(), 1);
    emu.rotate_keys();
    let after: Value = reqwest::get(emu.jwks_url()).await?.json().await?;
    let after_kids = kids(&after);
    assert_eq!(after_kids.len(), 2);
    assert_ne!(
        after_kids[0],
        kids(&before)[0],
        "new current key listed first"
    );
    assert_eq!(after_kids[1], kids(&before)[0], "previous key still listed");

    // New tokens carry the new kid.
    let kf = key_file(&emu)?;
    let (_, body) = grant(&emu, &id_assertion(&emu, &kf, "a")?).await?;
    let token = body["id_token"].as_str().ok_or("id_token")?;
    assert_eq!(
        jsonwebtoken::decode_header(token)?.kid.as_deref(),
        Some(after_kids[0].as_str())
    );

    emu.rotate_keys();
    let third = kids(&reqwest::get(emu.jwks_url()).await?.json().await?);
    assert_eq!(third.len(), 2);
    assert!(!third.contains(&kids(&before)[0]), "older keys are dropped");
    Ok(())
}

#[tokio::test]
async fn key_sets_carry_google_cache_control() -> TestResult {
    let emu = Emulator::builder()
        .jwks_max_age(Duration::from_secs(120))
        .start()
        .await?;
    for url in [emu.jwks_url(), emu.pem_certs_url()] {
        let resp = reqwest::get(&url).await?;
        let cc = resp
            .headers()
            .get("cache-control")
            .ok_or("no cache-control")?;
        assert_eq!(cc, "public, max-age=120, must-revalidate, no-transform");
    }
    Ok(())
}

#[tokio::test]
async fn v1_certs_are_pem_certificates_keyed_by_the_jwks_kids() -> TestResult {
    let emu = Emulator::start().await?;
    let certs: Value = reqwest::get(emu.pem_certs_url()).await?.json().await?;
    let jwks: Value = reqwest::get(emu.jwks_url()).await?.json().await?;
    let certs = certs.as_object().ok_or("not an object")?;
    assert_eq!(certs.len(), 1);
    let kid = jwks["keys"][0]["kid"].as_str().ok_or("kid")?;
    let pem = certs
        .get(kid)
        .and_then(Value::as_str)
        .ok_or("no cert for kid")?;
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\n"));
    assert!(pem.trim_end().ends_with("-----END CERTIFICATE-----"));
    Ok(())
}

#[tokio::test]
async fn key_file_is_written_private_with_token_uri_pointing_here() -> TestResult {
    let emu = Emulator::start().await?;
    let dir = tempfile::tempdir()?;
    let files = emu.write_credentials(dir.path())?;
    let json: Value = serde_json::from_str(&std::fs::read_to_string(&files.service_account)?)?;
    assert_eq!(json["type"], "service_account");
    assert_eq!(json["token_uri"], emu.token_uri().as_str());
    assert_eq!(json["client_email"], emu.service_account_email().as_str());
    assert!(
        json["private_key"]
            .as_str()
            .is_some_and(|k| k.starts_with("-----BEGIN PRIVATE KEY-----"))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.service_account)?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    Ok(())
}

#[tokio::test]
async fn dropping_the_emulator_stops_the_server() -> TestResult {
    let emu = Emulator::start().await?;
    let url = emu.jwks_url();
    assert_eq!(emu.url(), format!("http://{}", emu.metadata_host()));
    assert!(emu.addr().ip().is_loopback());
    drop(emu);
    let mut refused = false;
    for _ in 0..100 {
        // A fresh client, so no pooled connection hides the closed listener.
        if reqwest::Client::new().get(&url).send().await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(refused);
    Ok(())
}

#[tokio::test]
async fn iap_tokens_are_es256_and_verify_with_both_iap_key_sets_across_rotation() -> TestResult {
    let emu = Emulator::start().await?;
    let aud = "/projects/123456789012/global/backendServices/42";
    let verify = |token: &str, set: &JwkSet| -> Result<Value, BoxError> {
        let kid = jsonwebtoken::decode_header(token)?.kid.ok_or("no kid")?;
        let jwk = set.find(&kid).ok_or("kid not in the IAP key set")?;
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        v.set_issuer(&["https://cloud.google.com/iap"]);
        Ok(jsonwebtoken::decode::<Value>(token, &DecodingKey::from_jwk(jwk)?, &v)?.claims)
    };
    let first = emu.iap_token(aud, "alice@example.com")?;
    let set: JwkSet = reqwest::get(emu.iap_jwks_url()).await?.json().await?;
    assert_eq!(set.keys.len(), 1);
    let claims = verify(&first, &set)?;
    assert_eq!(claims["email"], "alice@example.com");
    assert!(
        claims["sub"]
            .as_str()
            .is_some_and(|s| s.starts_with("accounts.google.com:"))
    );
    assert_eq!(
        claims["exp"].as_i64(),
        claims["iat"].as_i64().map(|i| i + 600)
    );

    emu.rotate_keys();
    let second = reqwest::Client::new()
        .post(format!("{}/_emulator/iap_token", emu.url()))
        .query(&[("audience", aud), ("email", "bob@example.com")])
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    let set: JwkSet = reqwest::get(emu.iap_jwks_url()).await?.json().await?;
    assert_eq!(set.keys.len(), 2, "new and previous key listed");
    verify(&first, &set)?;
    assert_eq!(verify(&second, &set)?["email"], "bob@example.com");
    assert_eq!(emu.counters().get(Endpoint::IapJwk), 2);

    // The PEM map lists the same two keys; each verifies the token it signed.
    let pems: std::collections::BTreeMap<String, String> =
        reqwest::get(emu.iap_pem_keys_url()).await?.json().await?;
    assert_eq!(pems.len(), 2, "new and previous key listed: {pems:?}");
    for token in [&first, &second] {
        let kid = jsonwebtoken::decode_header(token)?.kid.ok_or("no kid")?;
        let pem = pems.get(&kid).ok_or("kid not in the PEM map")?;
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"), "{pem}");
        let mut v = Validation::new(Algorithm::ES256);
        v.set_audience(&[aud]);
        jsonwebtoken::decode::<Value>(token, &DecodingKey::from_ec_pem(pem.as_bytes())?, &v)?;
    }
    assert_eq!(emu.counters().get(Endpoint::IapPem), 1);
    Ok(())
}

#[tokio::test]
async fn sign_google_signs_any_header_and_claims_with_the_current_key() -> TestResult {
    let emu = Emulator::start().await?;
    let header = format!(
        r#"{{"alg":"RS256","kid":"{}","x":1,"x":2}}"#,
        emu.google_kid()
    );
    let token = emu.sign_google(&header, "not json")?;
    let set: JwkSet = reqwest::get(emu.jwks_url()).await?.json().await?;
    let jwk = set.find(&emu.google_kid()).ok_or("current kid listed")?;
    let key = DecodingKey::from_jwk(jwk)?;
    let (input, sig) = token.rsplit_once('.').ok_or("three parts")?;
    assert!(jsonwebtoken::crypto::verify(
        sig,
        input.as_bytes(),
        &key,
        Algorithm::RS256
    )?);
    Ok(())
}
