//! STS over mutual TLS: an X.509 subject token is exchanged only on the
//! mTLS listener, with the subject token's leaf as the TLS client
//! certificate.

use base64::Engine;
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::common::{BoxError, TestResult};

fn client(emu: &Emulator, with_cert: bool) -> Result<reqwest::Client, BoxError> {
    let mut b = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.tls_ca_pem().as_bytes())?]);
    if with_cert {
        let pem = format!(
            "{}{}",
            emu.workload_certificate_pem(),
            emu.workload_key_pem()
        );
        b = b.identity(reqwest::Identity::from_pem(pem.as_bytes())?);
    }
    Ok(b.build()?)
}

fn der_b64(pem: &str) -> Result<String, BoxError> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64::engine::general_purpose::STANDARD.decode(body)?;
    Ok(base64::engine::general_purpose::STANDARD.encode(der))
}

async fn exchange(
    emu: &Emulator,
    client: &reqwest::Client,
    url: &str,
    subject_token: &str,
) -> Result<(u16, Value), BoxError> {
    let file: Value = serde_json::from_str(&emu.external_account_certificate_json(None, None))?;
    let resp = client
        .post(url)
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", file["audience"].as_str().ok_or("audience")?),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                file["subject_token_type"].as_str().ok_or("type")?,
            ),
        ])
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn sts_over_mtls_exchanges_a_certificate_subject_token_whose_leaf_is_the_tls_certificate()
-> TestResult {
    let emu = Emulator::start().await?;
    let token = serde_json::json!([
        der_b64(emu.workload_certificate_pem())?,
        der_b64(emu.workload_trust_anchor_pem())?
    ])
    .to_string();
    let (status, body) = exchange(&emu, &client(&emu, true)?, &emu.sts_mtls_url(), &token).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some(), "{body}");
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    Ok(())
}

#[tokio::test]
async fn sts_refuses_a_certificate_subject_token_without_the_matching_client_certificate()
-> TestResult {
    let emu = Emulator::start().await?;
    let leaf = der_b64(emu.workload_certificate_pem())?;
    let token = serde_json::json!([leaf]).to_string();

    // No client certificate on the mTLS listener, or the plain listener.
    for (client, url) in [
        (client(&emu, false)?, emu.sts_mtls_url()),
        (reqwest::Client::new(), emu.sts_url()),
    ] {
        let (status, body) = exchange(&emu, &client, &url, &token).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant"))
        );
        let why = body["error_description"].as_str().unwrap_or_default();
        assert!(why.contains("No client certificate"), "{why}");
    }

    // The client certificate is not the subject token's leaf.
    let other = serde_json::json!([der_b64(emu.workload_trust_anchor_pem())?]).to_string();
    let (status, body) = exchange(&emu, &client(&emu, true)?, &emu.sts_mtls_url(), &other).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let why = body["error_description"].as_str().unwrap_or_default();
    assert!(why.contains("not the subject token's leaf"), "{why}");

    // Not a JSON array of certificates.
    let (status, body) =
        exchange(&emu, &client(&emu, true)?, &emu.sts_mtls_url(), "not-json").await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_request"))
    );
    Ok(())
}

#[tokio::test]
async fn mtls_listener_refuses_at_the_handshake_a_certificate_the_pool_does_not_trust() -> TestResult
{
    let emu = Emulator::start().await?;
    let key = rcgen::KeyPair::generate()?;
    let cert = rcgen::CertificateParams::new(Vec::<String>::new())?.self_signed(&key)?;
    let pem = format!("{}{}", cert.pem(), key.serialize_pem());
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(emu.tls_ca_pem().as_bytes())?])
        .identity(reqwest::Identity::from_pem(pem.as_bytes())?)
        .build()?;
    let token = serde_json::json!([base64::engine::general_purpose::STANDARD.encode(cert.der())])
        .to_string();
    let refused = exchange(&emu, &client, &emu.sts_mtls_url(), &token).await;
    assert!(refused.is_err(), "an untrusted certificate got an answer");
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
    Ok(())
}
