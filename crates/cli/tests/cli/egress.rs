//! Corporate egress proxies: `HTTPS_PROXY` (with credentials in its URL)
//! carries `idtoken curl`'s request to its target and the library's calls
//! to token endpoints through a CONNECT tunnel; the metadata server is
//! always reached directly; the proxy's password is never printed.

use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use idtoken_emulator::Emulator;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::curl_redirects::{Log, recorder};
use crate::support::{idtoken, run, stderr, stdout};
use crate::tls::{test_ca, tls_acceptor, write_ca};

/// What the egress proxy was asked: each request line, and the
/// `Proxy-Authorization` that came with it.
pub(crate) type Asked = Arc<Mutex<Vec<(String, Option<String>)>>>;

/// A forward proxy on 127.0.0.1 that tunnels CONNECT and refuses the rest
/// (a plain-HTTP request through it answers 502, and is recorded).
/// Also used by the proxy's tests (`proxy/egress.rs`).
pub(crate) async fn egress_proxy(asked: Asked) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let asked = asked.clone();
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") && head.len() < 16 * 1024 {
                    if client.read(&mut byte).await.unwrap_or(0) == 0 {
                        return;
                    }
                    head.push(byte[0]);
                }
                let head = String::from_utf8_lossy(&head).into_owned();
                let line = head.lines().next().unwrap_or("").to_owned();
                let auth = head.lines().find_map(|l| {
                    l.strip_prefix("Proxy-Authorization: ")
                        .or_else(|| l.strip_prefix("proxy-authorization: "))
                        .map(str::to_owned)
                });
                asked.lock().expect("asked").push((line.clone(), auth));
                let target = line
                    .strip_prefix("CONNECT ")
                    .and_then(|r| r.split_whitespace().next());
                let Some(target) = target else {
                    let _ = client
                        .write_all(b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    return;
                };
                let Ok(mut upstream) = tokio::net::TcpStream::connect(target).await else {
                    let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n").await;
                    return;
                };
                if client
                    .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
                    .await
                    .is_ok()
                {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            });
        }
    });
    port
}

/// TLS in front of a plain TCP service on 127.0.0.1 (the emulator), so a
/// token endpoint can be `https://` and reached through a tunnel.
async fn tls_front(acceptor: tokio_rustls::TlsAcceptor, backend: std::net::SocketAddr) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let (Ok(mut tls), Ok(mut plain)) = (
                    acceptor.accept(tcp).await,
                    tokio::net::TcpStream::connect(backend).await,
                ) else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn curl_tunnels_through_https_proxy_and_the_metadata_server_stays_direct() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let ca = test_ca("idtoken egress CA");
    let ca_file = write_ca(home.path(), &ca.pem());
    let log: Log = Arc::default();
    let target = recorder(tls_acceptor(&ca), log.clone()).await;
    let asked: Asked = Arc::default();
    let proxy = egress_proxy(asked.clone()).await;
    let proxy_url = format!("http://alice:s3cret-pw@127.0.0.1:{proxy}");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .env("SSL_CERT_FILE", &ca_file)
        .env("HTTPS_PROXY", &proxy_url)
        .env("HTTP_PROXY", &proxy_url)
        .args([
            "-vv",
            "curl",
            &format!("https://localhost:{target}/via-proxy"),
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "landed");
    let asked = asked.lock().expect("asked").clone();
    assert_eq!(
        asked,
        vec![(
            format!("CONNECT localhost:{target} HTTP/1.1"),
            Some(format!("Basic {}", STANDARD.encode("alice:s3cret-pw")))
        )],
        "one tunnel, to the target, with the proxy's credentials; no metadata request went through the proxy"
    );
    let seen = log.lock().expect("log").clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].token_headers, vec!["authorization"]);
    assert!(!stderr(&out).contains("s3cret-pw"), "{}", stderr(&out));
}

#[tokio::test]
async fn token_endpoints_are_reached_through_https_proxy() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let ca = test_ca("idtoken egress CA");
    let ca_file = write_ca(home.path(), &ca.pem());
    let front = tls_front(tls_acceptor(&ca), emu.addr()).await;
    // A gcloud user's file, its token endpoint behind TLS (a key file's
    // assertion names the endpoint it is for, and the emulator, as Google,
    // refuses one made for another URL).
    let files = emu.write_credentials(home.path()).expect("files");
    let mut key: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.authorized_user).expect("user file"))
            .expect("JSON");
    key["token_uri"] = format!("https://localhost:{front}/token").into();
    let key_file = home.path().join("behind-tls.json");
    std::fs::write(&key_file, key.to_string()).expect("write");
    let asked: Asked = Arc::default();
    let proxy = egress_proxy(asked.clone()).await;
    let out = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", &key_file)
        .env("SSL_CERT_FILE", &ca_file)
        .env(
            "HTTPS_PROXY",
            format!("http://bob:hunter2-pw@127.0.0.1:{proxy}"),
        )
        .args([
            "-vv",
            "token",
            "--no-cache",
            "--audience",
            "https://svc.example",
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with("ey"));
    let asked = asked.lock().expect("asked").clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, format!("CONNECT localhost:{front} HTTP/1.1"));
    assert!(!stderr(&out).contains("hunter2-pw"), "{}", stderr(&out));
}
