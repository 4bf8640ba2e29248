//! `idtoken proxy` to an HTTPS target: a local server whose certificate
//! comes from a test CA, trusted by the proxy through `SSL_CERT_FILE` (on
//! Linux, rustls-platform-verifier loads its roots with rustls-native-certs,
//! which reads that variable instead of the system store).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use hyper::service::Service as _;
use idtoken_emulator::Emulator;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use serde_json::Value;
use tokio_rustls::rustls;

use super::idtoken;
use super::proxy::{
    Proxy, Upstream, client, get_json, metadata, shout_through, start_proxy, upstream_handler,
};

pub(super) type Ca = CertifiedIssuer<'static, KeyPair>;

pub(super) fn test_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// Writes the CA's certificate (PEM) where `SSL_CERT_FILE` can name it.
pub(super) fn write_ca(dir: &Path, ca: &Ca) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, ca.pem()).expect("write the CA");
    path
}

/// A TLS acceptor with a certificate from `ca` for `localhost` and
/// `127.0.0.1`, offering h2 and http/1.1 by ALPN.
pub(super) fn tls_acceptor(ca: &Ca) -> tokio_rustls::TlsAcceptor {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, ca)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

/// An HTTPS upstream on 127.0.0.1 with a certificate from `ca` for
/// `localhost` and `127.0.0.1`, offering h2 and http/1.1 by ALPN, serving
/// [`upstream_handler`] for the origin `https://{host}:PORT`. Returns that
/// origin and a count of the requests it received (a failed handshake is
/// none).
async fn tls_upstream(emu: &Emulator, ca: &Ca, host: &str) -> (String, Arc<AtomicUsize>) {
    let acceptor = tls_acceptor(ca);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!(
        "https://{host}:{}",
        listener.local_addr().expect("addr").port()
    );
    let verifier = idtoken::Verifier::builder()
        .audience(origin.clone())
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let app = Router::new()
        .fallback(upstream_handler)
        .with_state(Upstream {
            verifier: Arc::new(verifier),
            origin: origin.clone(),
        });
    let service = hyper_util::service::TowerToHyperService::new(app);
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, service, hits) = (acceptor.clone(), service.clone(), counted.clone());
            tokio::spawn(async move {
                let Ok(Ok(tls)) =
                    tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await
                else {
                    return;
                };
                let service = hyper::service::service_fn(move |req| {
                    hits.fetch_add(1, Ordering::SeqCst);
                    service.call(req)
                });
                // Detects h2 by its preface, whichever protocol ALPN chose.
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(tls), service)
                .await;
            });
        }
    });
    (origin, hits)
}

/// A proxy to an https upstream whose certificate for `host` is signed by
/// `signer`, with only `trusted` in `SSL_CERT_FILE`. Returns the proxy, the
/// upstream's origin and its request count; the temp dir holds HOME.
async fn proxy_to_tls(
    emu: &Emulator,
    trusted: &Ca,
    signer: &Ca,
    host: &str,
    args: &[&str],
) -> (Proxy, String, Arc<AtomicUsize>, tempfile::TempDir) {
    let home = tempfile::tempdir().expect("home");
    let ca_file = write_ca(home.path(), trusted);
    let (up, hits) = tls_upstream(emu, signer, host).await;
    let mut env = metadata(emu);
    env.push(("SSL_CERT_FILE", ca_file.display().to_string()));
    let mut all = vec!["--target", up.as_str()];
    all.extend_from_slice(args);
    let proxy = start_proxy(home.path(), &env, &all).await;
    (proxy, up, hits, home)
}

#[tokio::test]
async fn https_target_gets_the_token_and_its_host_over_tls() {
    let emu = Emulator::start().await.expect("emulator");
    let ca = test_ca("idtoken test CA");
    let (proxy, up, hits, _home) = proxy_to_tls(&emu, &ca, &ca, "localhost", &[]).await;
    let seen = get_json(&format!("{}/items?x=1", proxy.url)).await;
    assert_eq!(seen["version"], "HTTP/1.1", "{seen}");
    assert_eq!(seen["path"], "/items?x=1");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(up.clone()),
        "{seen}"
    );
    assert_eq!(seen["headers"]["host"], up.trim_start_matches("https://"));
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http2_to_an_https_target_is_agreed_by_alpn() {
    let emu = Emulator::start().await.expect("emulator");
    let ca = test_ca("idtoken test CA");
    let (proxy, up, _, _home) = proxy_to_tls(&emu, &ca, &ca, "127.0.0.1", &["--http2"]).await;
    // The local client speaks HTTP/1.1; the proxy's side to the target is
    // what ALPN decides.
    let seen = get_json(&proxy.url).await;
    assert_eq!(seen["version"], "HTTP/2.0", "{seen}");
    assert_eq!(seen["authorization"]["aud"], Value::from(up), "{seen}");
}

#[tokio::test]
async fn upgrades_reach_an_https_target_over_http1_when_http2_is_on() {
    let emu = Emulator::start().await.expect("emulator");
    let ca = test_ca("idtoken test CA");
    let (proxy, _up, _, _home) = proxy_to_tls(&emu, &ca, &ca, "127.0.0.1", &["--http2"]).await;
    shout_through(&proxy.url).await;
}

#[tokio::test]
async fn untrusted_certificate_is_a_502_naming_it_and_no_token_is_sent() {
    let emu = Emulator::start().await.expect("emulator");
    let trusted = test_ca("idtoken test CA");
    let other = test_ca("some other CA");
    let (proxy, up, hits, _home) = proxy_to_tls(&emu, &trusted, &other, "127.0.0.1", &[]).await;
    let resp = client().get(&proxy.url).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(body.contains(&up), "{body}");
    assert!(body.contains("certificate"), "{body}");
    assert!(body.contains("UnknownIssuer"), "{body}");
    // The handshake failed before any request: the target saw no token.
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    let log = proxy.log();
    assert!(!log.contains("eyJ"), "the token is never logged: {log}");
}

#[tokio::test]
async fn proxy_help_says_how_to_trust_a_private_ca() {
    let home = tempfile::tempdir().expect("home");
    let out = super::run(idtoken(home.path()).args(["proxy", "--help"])).await;
    assert!(out.status.success());
    let help = super::stdout(&out);
    assert!(help.contains("SSL_CERT_FILE"), "{help}");
}
