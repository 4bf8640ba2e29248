//! `idtoken curl -L` never carries the ID token to another origin: for
//! every redirect status, to another host, another port and another scheme
//! (both ways), with the token in `Authorization` and in
//! `X-Serverless-Authorization`. A same-origin redirect keeps it, so the
//! test can see a token where one is sent.

use axum::http::{HeaderMap, Request, Response, StatusCode};
use futures_util::future::join_all;
use hyper::body::Incoming;
use idtoken_emulator::Emulator;
use std::sync::{Arc, Mutex};

use crate::support::{idtoken, run, stderr};
use crate::tls::{test_ca, tls_acceptor, write_ca};

/// One request as the recorder saw it.
#[derive(Debug, Clone)]
pub(crate) struct Seen {
    /// `scheme://host:port` as the request reached it.
    pub(crate) origin: String,
    pub(crate) path: String,
    /// The ID token headers it carried (a `Bearer ey...` value).
    pub(crate) token_headers: Vec<&'static str>,
}

pub(crate) type Log = Arc<Mutex<Vec<Seen>>>;

/// A server on 127.0.0.1 that speaks plain HTTP and HTTPS on the same
/// port (by the first byte: 0x16 starts a TLS handshake), so that a
/// redirect can change the scheme alone. `/hop/CODE/CASE?to=URL` answers
/// CODE with `Location: URL`; anything else answers 200.
pub(crate) async fn recorder(acceptor: tokio_rustls::TlsAcceptor, log: Log) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let (acceptor, log) = (acceptor.clone(), log.clone());
            tokio::spawn(async move {
                let mut first = [0u8; 1];
                if tcp.peek(&mut first).await.unwrap_or(0) == 0 {
                    return;
                }
                if first[0] == 0x16 {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    serve(tls, "https", port, log).await;
                } else {
                    serve(tcp, "http", port, log).await;
                }
            });
        }
    });
    port
}

async fn serve<S>(io: S, scheme: &'static str, port: u16, log: Log)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let log = log.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(req, scheme, port, &log)) }
    });
    let _ = hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
        .serve_connection(hyper_util::rt::TokioIo::new(io), service)
        .await;
}

fn answer(req: Request<Incoming>, scheme: &str, port: u16, log: &Log) -> Response<String> {
    let host = req
        .headers()
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or(req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
        .to_owned();
    let host = if host.contains(':') {
        host
    } else {
        format!("{host}:{port}")
    };
    log.lock().expect("log").push(Seen {
        origin: format!("{scheme}://{host}"),
        path: req.uri().path().to_owned(),
        token_headers: token_headers(req.headers()),
    });
    let mut parts = req.uri().path().trim_start_matches('/').split('/');
    if parts.next() == Some("hop")
        && let Some(code) = parts.next().and_then(|c| c.parse::<u16>().ok())
        && let Some(to) = req.uri().query().and_then(|q| q.strip_prefix("to="))
    {
        return Response::builder()
            .status(StatusCode::from_u16(code).expect("status"))
            .header("location", to)
            .body(String::new())
            .expect("response");
    }
    Response::new("landed".to_owned())
}

fn token_headers(headers: &HeaderMap) -> Vec<&'static str> {
    let bearer = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("Bearer ey"))
    };
    ["authorization", "x-serverless-authorization"]
        .into_iter()
        .filter(|name| bearer(name))
        .collect()
}

#[tokio::test]
async fn curl_location_never_sends_the_token_to_another_origin() {
    let emu = Emulator::start().await.expect("emulator");
    let ca = test_ca("idtoken test CA");
    let home = tempfile::tempdir().expect("home");
    let ca_file = write_ca(home.path(), &ca.pem());
    let log: Log = Arc::default();
    let p = recorder(tls_acceptor(&ca), log.clone()).await;
    let q = recorder(tls_acceptor(&ca), log.clone()).await;

    // (first origin, where it redirects to, what changes)
    let hops = [
        (
            format!("http://127.0.0.1:{p}"),
            format!("http://localhost:{p}"),
            "host",
        ),
        (
            format!("http://127.0.0.1:{p}"),
            format!("http://127.0.0.1:{q}"),
            "port",
        ),
        (
            format!("http://127.0.0.1:{p}"),
            format!("https://127.0.0.1:{p}"),
            "scheme",
        ),
        (
            format!("https://127.0.0.1:{p}"),
            format!("http://127.0.0.1:{p}"),
            "scheme, down",
        ),
        (
            format!("https://localhost:{p}"),
            format!("https://127.0.0.1:{p}"),
            "host, TLS",
        ),
        (
            format!("http://127.0.0.1:{p}"),
            format!("http://127.0.0.1:{p}"),
            "nothing",
        ),
    ];
    let modes: [(&str, &[&str]); 2] = [
        ("authorization", &[]),
        (
            "x-serverless-authorization",
            &["-H", "Authorization: Basic dXNlcjpwdw=="],
        ),
    ];
    let mut cases = Vec::new();
    for (from, to, what) in &hops {
        for code in [301u16, 302, 303, 307, 308] {
            for (header, extra) in &modes {
                let case = cases.len();
                let url = format!("{from}/hop/{code}/{case}?to={to}/land/{case}");
                cases.push((
                    case,
                    from.clone(),
                    to.clone(),
                    *what,
                    code,
                    *header,
                    url,
                    *extra,
                ));
            }
        }
    }
    for batch in cases.chunks(8) {
        let runs = batch.iter().map(|(_, _, _, _, _, _, url, extra)| {
            let mut cmd = idtoken(home.path());
            cmd.env("GCE_METADATA_HOST", emu.metadata_host())
                .env("SSL_CERT_FILE", &ca_file)
                .args(["curl", "-L", "--max-time", "20", url])
                .args(*extra);
            async move {
                let out = run(&mut cmd).await;
                assert!(out.status.success(), "{url}: {}", stderr(&out));
            }
        });
        join_all(runs).await;
    }

    let seen = log.lock().expect("log").clone();
    for (case, from, to, what, code, header, url, _) in &cases {
        let first = seen
            .iter()
            .find(|s| s.path == format!("/hop/{code}/{case}"))
            .unwrap_or_else(|| panic!("{url} reached the first origin"));
        assert_eq!(&first.origin, from, "{url}");
        assert_eq!(
            first.token_headers,
            [*header],
            "{url}: the first origin gets the token"
        );
        for s in seen.iter().filter(|s| s.path == format!("/land/{case}")) {
            if &s.origin == from {
                assert_eq!(
                    s.token_headers,
                    [*header],
                    "{url}: a same-origin hop keeps it"
                );
            } else {
                assert!(
                    s.token_headers.is_empty(),
                    "{code} to another {what} ({to}) in {header} mode carried {:?}",
                    s.token_headers
                );
            }
        }
    }
    // The control: a same-origin redirect was followed with the token.
    let followed_home = seen
        .iter()
        .filter(|s| s.path.starts_with("/land/") && s.token_headers.len() == 1)
        .count();
    assert_eq!(followed_home, 2 * 5, "every same-origin hop, in both modes");
}
