//! Cross-checks with Google's verifiers: Python `google-auth`
//! (`id_token.verify_token` against the emulator's PEM certificates, and
//! for IAP against IAP's PEM key map, as Google's Python IAP sample does)
//! and Node `google-auth-library` (`OAuth2Client.verifyIdToken`, and for
//! IAP `getIapPublicKeys` + `verifySignedJwtWithCertsAsync`, as Google's
//! Node IAP sample does): what they accept we accept, what they refuse we
//! refuse. Where we are stricter (clock skew) the test says so. Ignored by
//! plain `cargo test`; run with `IDTOKEN_INTEROP_PYTHON=$PWD/.venv-interop/bin/python
//! IDTOKEN_INTEROP_NODE_DIR=$PWD/interop/node cargo test -- --include-ignored`
//! after `scripts/setup-interop` (scripts/test does).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idtoken::{Credentials, Format, TokenOptions, Verifier, VerifyError};
use idtoken_emulator::Emulator;
use serde_json::Value;

use crate::common::*;

// Spawning Google's clients, shared with the emulator's interop tests.
#[path = "../../../../interop/harness.rs"]
mod harness;

/// Python's verdict on `token`: `Ok(claims)` or `Err(exception text)`.
async fn python_verify(emu: &Emulator, token: &str, audience: &str) -> Result<Value, String> {
    python_verify_with(token, audience, &emu.pem_certs_url()).await
}

/// Python's verdict on `token` with the keys at `certs_url`.
async fn python_verify_with(token: &str, audience: &str, certs_url: &str) -> Result<Value, String> {
    harness::verdict(harness::python(
        "verify_token.py",
        &[token, audience, certs_url],
    ))
    .await
}

/// Node's verdict on `token`: `kind` is `google` (verifyIdToken with the
/// PEM certificates at `url`) or `iap` (IAP's PEM key map at `url`).
async fn node_verify(kind: &str, token: &str, audience: &str, url: &str) -> Result<Value, String> {
    harness::verdict(harness::node(
        "verify_token.mjs",
        &[kind, token, audience, url],
    ))
    .await
}

fn ours(emu: &Emulator, audience: &str) -> Verifier {
    Verifier::builder()
        .audience(audience)
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier")
}

#[tokio::test]
#[ignore = "needs Python google-auth: run scripts/test"]
async fn emulator_tokens_verify_with_ours_and_with_python_google_auth() {
    let emu = emulator().await;
    let (_dir, key_file) = service_account(&emu);
    let metadata = Credentials::metadata_server(&emu.metadata_host());
    let full = TokenOptions::default().format(Format::Full);
    for (what, creds, options) in [
        ("metadata, standard", &metadata, TokenOptions::default()),
        ("metadata, full", &metadata, full),
        ("key file", &key_file, TokenOptions::default()),
    ] {
        let aud = "https://svc.example";
        let token = creds.fetch_id_token(aud, &options).await.expect("token");
        let mine = ours(&emu, aud).verify(token.as_str()).await.expect(what);
        let theirs = python_verify(&emu, token.as_str(), aud).await.expect(what);
        assert_eq!(mine.to_json(), theirs, "{what}: same claims");
    }
}

#[tokio::test]
#[ignore = "needs Python google-auth: run scripts/test"]
async fn a_token_python_refuses_as_expired_we_refuse_as_expired() {
    let issued = SystemTime::now() - Duration::from_secs(3600 + 120);
    let emu = Emulator::builder()
        .clock(Arc::new(move || issued))
        .start()
        .await
        .expect("emulator");
    let aud = "https://svc.example";
    let token = Credentials::metadata_server(&emu.metadata_host())
        .fetch_id_token(aud, &TokenOptions::default())
        .await
        .expect("token");
    let theirs = python_verify(&emu, token.as_str(), aud)
        .await
        .expect_err("python refuses");
    assert!(theirs.to_lowercase().contains("expired"), "{theirs}");
    let mine = ours(&emu, aud)
        .verify(token.as_str())
        .await
        .expect_err("we refuse");
    assert!(matches!(mine, VerifyError::Expired { .. }), "{mine:?}");
}

#[tokio::test]
#[ignore = "needs Python google-auth and Node google-auth-library: run scripts/test"]
async fn a_token_for_another_audience_is_refused_by_python_node_and_us() {
    let emu = emulator().await;
    let token = Credentials::metadata_server(&emu.metadata_host())
        .fetch_id_token("https://other.example", &TokenOptions::default())
        .await
        .expect("token");
    let theirs = python_verify(&emu, token.as_str(), "https://svc.example").await;
    assert!(theirs.is_err(), "{theirs:?}");
    let theirs = node_verify(
        "google",
        token.as_str(),
        "https://svc.example",
        &emu.pem_certs_url(),
    )
    .await;
    assert!(
        theirs.as_ref().is_err_and(|e| e.contains("audience")),
        "{theirs:?}"
    );
    let mine = ours(&emu, "https://svc.example")
        .verify(token.as_str())
        .await;
    assert!(
        matches!(mine, Err(VerifyError::WrongAudience { .. })),
        "{mine:?}"
    );
}

const IAP_AUD: &str = "/projects/123456789012/global/backendServices/42";

fn ours_iap(emu: &Emulator) -> Verifier {
    Verifier::iap()
        .audience(IAP_AUD)
        .jwks_url(emu.iap_jwks_url())
        .build()
        .expect("IAP verifier")
}

#[tokio::test]
#[ignore = "needs Python google-auth: run scripts/test"]
async fn iap_assertions_verify_with_ours_and_with_python_across_a_key_rotation() {
    let emu = emulator().await;
    let first = emu
        .iap_token(IAP_AUD, "alice@example.com")
        .expect("IAP token");
    emu.rotate_keys();
    let second = emu
        .iap_token(IAP_AUD, "bob@example.com")
        .expect("IAP token");
    for (what, token) in [("before rotation", &first), ("after rotation", &second)] {
        let mine = ours_iap(&emu).verify(token).await.expect(what);
        let theirs = python_verify_with(token, IAP_AUD, &emu.iap_pem_keys_url())
            .await
            .expect(what);
        assert_eq!(mine.to_json(), theirs, "{what}: same claims");
        assert_eq!(theirs["iss"], "https://cloud.google.com/iap");
    }
}

#[tokio::test]
#[ignore = "needs Python google-auth: run scripts/test"]
async fn iap_assertions_with_a_wrong_audience_or_signature_are_refused_by_both() {
    let emu = emulator().await;
    let other = emu
        .iap_token(
            "/projects/123456789012/global/backendServices/7",
            "a@example.com",
        )
        .expect("IAP token");
    let theirs = python_verify_with(&other, IAP_AUD, &emu.iap_pem_keys_url()).await;
    assert!(
        theirs.as_ref().is_err_and(|e| e.contains("audience")),
        "{theirs:?}"
    );
    let mine = ours_iap(&emu).verify(&other).await;
    assert!(
        matches!(mine, Err(VerifyError::WrongAudience { .. })),
        "{mine:?}"
    );

    // The same header and claims with a signature of the right length
    // (64 bytes) that the key did not make.
    let good = emu.iap_token(IAP_AUD, "a@example.com").expect("IAP token");
    let mut parts = good.split('.');
    let (header, claims) = (parts.next().expect("header"), parts.next().expect("claims"));
    let tampered = format!("{header}.{claims}.{}", "A".repeat(86));
    let theirs = python_verify_with(&tampered, IAP_AUD, &emu.iap_pem_keys_url()).await;
    assert!(theirs.is_err(), "{theirs:?}");
    let mine = ours_iap(&emu).verify(&tampered).await;
    assert!(matches!(mine, Err(VerifyError::BadSignature)), "{mine:?}");
}

#[tokio::test]
#[ignore = "needs Node google-auth-library: run scripts/test"]
async fn emulator_tokens_and_iap_assertions_verify_with_ours_and_with_node() {
    let emu = emulator().await;
    let (_dir, key_file) = service_account(&emu);
    let aud = "https://svc.example";
    let token = key_file
        .fetch_id_token(aud, &TokenOptions::default())
        .await
        .expect("token");
    let mine = ours(&emu, aud).verify(token.as_str()).await.expect("ours");
    let theirs = node_verify("google", token.as_str(), aud, &emu.pem_certs_url())
        .await
        .expect("node");
    assert_eq!(mine.to_json(), theirs, "Google token: same claims");

    let iap = emu
        .iap_token(IAP_AUD, "alice@example.com")
        .expect("IAP token");
    let mine = ours_iap(&emu).verify(&iap).await.expect("ours, IAP");
    let theirs = node_verify("iap", &iap, IAP_AUD, &emu.iap_pem_keys_url())
        .await
        .expect("node, IAP");
    assert_eq!(mine.to_json(), theirs, "IAP assertion: same claims");
}

#[tokio::test]
#[ignore = "needs Node google-auth-library: run scripts/test"]
async fn iap_assertions_for_another_audience_are_refused_by_node_and_by_us() {
    let emu = emulator().await;
    let iap = emu
        .iap_token(
            "/projects/123456789012/global/backendServices/7",
            "a@example.com",
        )
        .expect("IAP token");
    let theirs = node_verify("iap", &iap, IAP_AUD, &emu.iap_pem_keys_url()).await;
    assert!(
        theirs.as_ref().is_err_and(|e| e.contains("audience")),
        "{theirs:?}"
    );
    let mine = ours_iap(&emu).verify(&iap).await;
    assert!(
        matches!(mine, Err(VerifyError::WrongAudience { .. })),
        "{mine:?}"
    );
}

/// A token whose `exp` passed `expired_for` ago, from an emulator whose
/// clock is set back so that it issues it.
async fn expired_token(expired_for: Duration) -> (Emulator, String) {
    let issued = SystemTime::now() - Duration::from_secs(3600) - expired_for;
    let emu = Emulator::builder()
        .clock(Arc::new(move || issued))
        .start()
        .await
        .expect("emulator");
    let token = Credentials::metadata_server(&emu.metadata_host())
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("token");
    (emu, token.as_str().to_owned())
}

#[tokio::test]
#[ignore = "needs Node google-auth-library: run scripts/test"]
async fn expired_tokens_node_still_accepts_within_its_fixed_300_s_skew_we_refuse() {
    let aud = "https://svc.example";
    // Two minutes past `exp`: inside Node's fixed 300 s allowance, outside
    // our default 30 s skew.
    let (emu, token) = expired_token(Duration::from_secs(120)).await;
    let theirs = node_verify("google", &token, aud, &emu.pem_certs_url()).await;
    assert!(
        theirs.is_ok(),
        "node accepts within its 300 s skew: {theirs:?}"
    );
    let mine = ours(&emu, aud).verify(&token).await;
    assert!(matches!(mine, Err(VerifyError::Expired { .. })), "{mine:?}");

    // Ten minutes past: both refuse, for expiry.
    let (emu, token) = expired_token(Duration::from_secs(600)).await;
    let theirs = node_verify("google", &token, aud, &emu.pem_certs_url())
        .await
        .expect_err("node refuses");
    assert!(theirs.contains("Token used too late"), "{theirs}");
    let mine = ours(&emu, aud).verify(&token).await;
    assert!(matches!(mine, Err(VerifyError::Expired { .. })), "{mine:?}");
}

/// A serialized AWS request with its time and signature masked: what two
/// signers of the same request at different seconds must agree on.
fn masked(subject_token: &str) -> String {
    let json = percent_decode(subject_token);
    let doc: Value = serde_json::from_str(&json).expect("the subject token is JSON");
    let header = |name: &str| {
        doc["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .find(|h| {
                h["key"]
                    .as_str()
                    .is_some_and(|k| k.eq_ignore_ascii_case(name))
            })
            .and_then(|h| h["value"].as_str())
            .unwrap_or_else(|| panic!("no {name} header in {json}"))
            .to_owned()
    };
    let date = header("x-amz-date");
    let auth = header("authorization");
    let signature = auth
        .rsplit_once("Signature=")
        .map(|(_, s)| s.to_owned())
        .expect("a signature");
    subject_token
        .replace(&signature, "SIGNATURE")
        .replace(&date, "AMZDATE")
        .replace(date.get(..8).expect("a date"), "DATE")
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

/// Posts `subject_token` for the AWS provider to the emulator's STS.
async fn emulator_sts_accepts(
    emu: &Emulator,
    audience: &str,
    subject_token: &str,
) -> Result<(), String> {
    let resp = reqwest::Client::new()
        .post(emu.sts_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                "urn:ietf:params:aws:token-type:aws4_request",
            ),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp.text().await.map_err(|e| e.to_string())?;
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{status}: {body}"))
    }
}

#[tokio::test]
#[ignore = "needs Python google-auth: run scripts/test"]
async fn idtoken_and_python_sign_the_same_aws_request_and_both_verify_at_sts() {
    let emu = emulator().await;
    let (capture_url, seen) = capturing_sts().await;
    let mut doc: Value = serde_json::from_str(&emu.aws_external_account_json(true)).expect("JSON");
    let audience = doc["audience"].as_str().expect("audience").to_owned();
    doc["token_url"] = Value::from(capture_url);
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("aws.json");
    std::fs::write(&path, doc.to_string()).expect("write");

    let creds = Credentials::from_file(&path).expect("loads");
    creds
        .token_source("https://aws-crosscheck.example")
        .token()
        .await
        .expect_err("the stand-in STS refuses");
    let ours = seen
        .lock()
        .expect("lock")
        .first()
        .cloned()
        .expect("a subject token");
    let answer = harness::run(
        harness::python(
            "aws_credentials.py",
            &["subject", path.to_str().expect("UTF-8")],
        ),
        &[],
    )
    .await;
    let python = answer["subject_token"]
        .as_str()
        .expect("subject_token")
        .to_owned();

    emulator_sts_accepts(&emu, &audience, &ours)
        .await
        .expect("ours verifies");
    emulator_sts_accepts(&emu, &audience, &python)
        .await
        .expect("Python's verifies");
    // The same bytes but for the time and the signature: same URL, headers
    // in the same order, same JSON and URL encoding.
    assert_eq!(masked(&ours), masked(&python));
}
