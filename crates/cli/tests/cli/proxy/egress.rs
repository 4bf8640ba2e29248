//! `idtoken proxy`'s connections to its target through a corporate
//! forward proxy (`HTTPS_PROXY`, `HTTP_PROXY`, `NO_PROXY`): CONNECT
//! tunnels through the test proxy of `crate::egress`, credentials from
//! the proxy URL sent as `Proxy-Authorization` and never printed; the
//! metadata server (the emulator, the proxy's credentials) stays direct.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::client::{client, get_json, shout_through};
use super::fixture::ProxyFixture;
use crate::egress::{Asked, egress_proxy};
use crate::tls::test_ca;

const PASSWORD: &str = "s3cret-pw";

fn proxy_url(port: u16) -> String {
    format!("http://alice:{PASSWORD}@127.0.0.1:{port}")
}

fn basic() -> Option<String> {
    Some(format!(
        "Basic {}",
        STANDARD.encode(format!("alice:{PASSWORD}"))
    ))
}

/// No trace of the proxy's password, plain or encoded, in `text`.
fn assert_no_password(text: &str) {
    let encoded = STANDARD.encode(format!("alice:{PASSWORD}"));
    assert!(
        !text.contains(PASSWORD) && !text.contains(&encoded),
        "{text}"
    );
}

#[tokio::test]
async fn https_target_is_reached_through_a_connect_tunnel_with_the_proxy_credentials() {
    let asked: Asked = Arc::default();
    let egress = egress_proxy(asked.clone()).await;
    let ca = test_ca("idtoken egress CA");
    let fx = ProxyFixture::builder()
        .tls(&ca, &ca, "localhost")
        .env("HTTPS_PROXY", proxy_url(egress))
        .start()
        .await;
    let seen = get_json(&format!("{}/through", fx.url())).await;
    assert_eq!(seen["path"], "/through");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
    let host_port = fx.origin.trim_start_matches("https://");
    assert_eq!(
        asked.lock().expect("asked").clone(),
        vec![(format!("CONNECT {host_port} HTTP/1.1"), basic())],
        "one tunnel, to the target, with the proxy's credentials; the metadata server was not asked through it"
    );
    assert_eq!(fx.upstream().hits(), 1);
    let log = fx.log();
    assert!(
        log.contains(&format!(
            "through the forward proxy http://127.0.0.1:{egress}/"
        )),
        "{log}"
    );
    assert_no_password(&log);
}

#[tokio::test]
async fn http_target_is_tunnelled_through_http_proxy_upgrades_included() {
    let asked: Asked = Arc::default();
    let egress = egress_proxy(asked.clone()).await;
    let fx = ProxyFixture::builder()
        .env("HTTP_PROXY", proxy_url(egress))
        .start()
        .await;
    let seen = get_json(fx.url()).await;
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
    // An upgrade needs the target's connection to itself: a tunnel.
    shout_through(fx.url()).await;
    let host_port = fx.origin.trim_start_matches("http://");
    let asked = asked.lock().expect("asked").clone();
    assert!(!asked.is_empty());
    for (line, auth) in &asked {
        assert_eq!(line, &format!("CONNECT {host_port} HTTP/1.1"));
        assert_eq!(auth, &basic());
    }
    assert_no_password(&fx.log());
}

#[tokio::test]
async fn no_proxy_sends_a_named_target_directly() {
    let asked: Asked = Arc::default();
    let egress = egress_proxy(asked.clone()).await;
    let ca = test_ca("idtoken egress CA");
    let fx = ProxyFixture::builder()
        .tls(&ca, &ca, "localhost")
        .env("https_proxy", proxy_url(egress))
        .env("no_proxy", "example.com,localhost")
        .start()
        .await;
    let seen = get_json(fx.url()).await;
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
    assert_eq!(asked.lock().expect("asked").clone(), vec![]);
    assert!(!fx.log().contains("forward proxy"), "{}", fx.log());
}

#[tokio::test]
async fn a_tunnel_the_proxy_refuses_is_a_502_naming_the_proxy_not_its_password() {
    let asked: Asked = Arc::default();
    let egress = egress_proxy(asked.clone()).await;
    // A port nothing listens on: the test proxy answers the CONNECT 502.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let fx = ProxyFixture::builder()
        .target(format!("https://localhost:{closed}"))
        .env("HTTPS_PROXY", proxy_url(egress))
        .start()
        .await;
    let resp = client().get(fx.url()).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains(&format!(
            "through the forward proxy http://127.0.0.1:{egress}/"
        )),
        "{body}"
    );
    assert_no_password(&body);
    assert_no_password(&fx.log());
    assert_eq!(asked.lock().expect("asked").len(), 1);
}

#[tokio::test]
async fn h2c_to_an_http_target_goes_through_the_tunnel() {
    let asked: Asked = Arc::default();
    let egress = egress_proxy(asked.clone()).await;
    let fx = ProxyFixture::builder()
        .h2c()
        .arg("--http2")
        .env("HTTP_PROXY", proxy_url(egress))
        .start()
        .await;
    // HTTP/2 with prior knowledge has no absolute form to send to a
    // forward proxy: only a tunnel carries it.
    let seen = get_json(&format!("{}/pkg.Service/Method", fx.url())).await;
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(seen["aud"], Value::from(fx.origin.clone()), "{seen}");
    let host_port = fx.origin.trim_start_matches("http://");
    assert_eq!(
        asked.lock().expect("asked").clone(),
        vec![(format!("CONNECT {host_port} HTTP/1.1"), basic())]
    );
}
