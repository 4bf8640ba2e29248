//! `idtoken proxy` to an HTTPS target: the echo service with a certificate
//! from a test CA, trusted by the proxy through `SSL_CERT_FILE` (see
//! `crate::tls`).

use serde_json::Value;

use super::client::{client, get_json, shout_through};
use super::fixture::ProxyFixture;
use crate::support::{idtoken, run, stdout};
use crate::tls::test_ca;

#[tokio::test]
async fn https_target_gets_the_token_and_its_host_over_tls() {
    let ca = test_ca("idtoken test CA");
    let fx = ProxyFixture::builder()
        .tls(&ca, &ca, "localhost")
        .start()
        .await;
    let up = fx.origin.clone();
    let seen = get_json(&format!("{}/items?x=1", fx.url())).await;
    assert_eq!(seen["version"], "HTTP/1.1", "{seen}");
    assert_eq!(seen["path"], "/items?x=1");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(up.clone()),
        "{seen}"
    );
    assert_eq!(seen["headers"]["host"], up.trim_start_matches("https://"));
    assert_eq!(fx.upstream().hits(), 1);
}

#[tokio::test]
async fn http2_to_an_https_target_is_agreed_by_alpn() {
    let ca = test_ca("idtoken test CA");
    let fx = ProxyFixture::builder()
        .tls(&ca, &ca, "127.0.0.1")
        .arg("--http2")
        .start()
        .await;
    // The local client speaks HTTP/1.1; the proxy's side to the target is
    // what ALPN decides.
    let seen = get_json(fx.url()).await;
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
}

#[tokio::test]
async fn upgrades_reach_an_https_target_over_http1_when_http2_is_on() {
    let ca = test_ca("idtoken test CA");
    let fx = ProxyFixture::builder()
        .tls(&ca, &ca, "127.0.0.1")
        .arg("--http2")
        .start()
        .await;
    shout_through(fx.url()).await;
}

#[tokio::test]
async fn untrusted_certificate_is_a_502_naming_it_and_no_token_is_sent() {
    let trusted = test_ca("idtoken test CA");
    let other = test_ca("some other CA");
    let fx = ProxyFixture::builder()
        .tls(&trusted, &other, "127.0.0.1")
        .start()
        .await;
    let resp = client().get(fx.url()).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(body.contains(&fx.origin), "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert!(body.contains("UnknownIssuer"), "{body}");
    // The handshake failed before any request: the target saw no token.
    assert_eq!(fx.upstream().hits(), 0);
    let log = fx.log();
    assert!(!log.contains("eyJ"), "the token is never logged: {log}");
}

#[tokio::test]
async fn proxy_help_says_how_to_trust_a_private_ca() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).args(["proxy", "--help"])).await;
    assert!(out.status.success());
    let help = stdout(&out);
    assert!(help.contains("SSL_CERT_FILE"), "{help}");
}
