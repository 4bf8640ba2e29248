//! `idtoken proxy`, run as a user would: the binary between a reqwest
//! client and a local upstream that checks every token with the
//! emulator's keys and echoes what it saw.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use super::idtoken;

/// The upstream: verifies the token in `Authorization` or
/// `X-Serverless-Authorization` for its own origin.
#[derive(Clone)]
pub(super) struct Upstream {
    pub(super) verifier: Arc<idtoken::Verifier>,
    pub(super) origin: String,
}

impl Upstream {
    async fn claims(&self, headers: &HeaderMap, name: &str) -> Value {
        let Some(token) = headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        else {
            return Value::Null;
        };
        match self.verifier.verify(token).await {
            Ok(claims) => claims.to_json(),
            Err(e) => json!({ "invalid": e.to_string() }),
        }
    }
}

pub(super) async fn upstream_handler(State(up): State<Upstream>, mut req: Request) -> Response {
    let path = req.uri().path().to_owned();
    match path.as_str() {
        // Switches to a protocol that answers each read in upper case,
        // for a valid token only.
        "/upgrade" => {
            let claims = up.claims(req.headers(), "authorization").await;
            if claims["aud"].as_str() != Some(up.origin.as_str()) {
                return (StatusCode::UNAUTHORIZED, claims.to_string()).into_response();
            }
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                let Ok(upgraded) = on.await else { return };
                let mut io = hyper_util::rt::TokioIo::new(upgraded);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    let upper = buf[..n].to_ascii_uppercase();
                    if io.write_all(&upper).await.is_err() {
                        break;
                    }
                }
            });
            return (
                StatusCode::SWITCHING_PROTOCOLS,
                [("connection", "upgrade"), ("upgrade", "shout")],
            )
                .into_response();
        }
        // Streams the request body back as it arrives.
        "/stream-back" => {
            let body = Body::from_stream(req.into_body().into_data_stream());
            return (StatusCode::OK, body).into_response();
        }
        "/redirect" => {
            return (
                StatusCode::FOUND,
                [("location", format!("{}/landed?x=1", up.origin))],
            )
                .into_response();
        }
        "/elsewhere" => {
            return (
                StatusCode::FOUND,
                [("location", "https://other.example/landed")],
            )
                .into_response();
        }
        "/slow" => tokio::time::sleep(Duration::from_millis(1500)).await,
        _ => {}
    }
    let headers: BTreeMap<String, String> = req
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), String::from_utf8_lossy(v.as_bytes()).into()))
        .collect();
    let seen = json!({
        "version": format!("{:?}", req.version()),
        "path": req.uri().path_and_query().map(|p| p.as_str()),
        "authorization": up.claims(req.headers(), "authorization").await,
        "x_serverless_authorization": up.claims(req.headers(), "x-serverless-authorization").await,
        "headers": headers,
    });
    axum::Json(seen).into_response()
}

async fn upstream(emu: &Emulator) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let verifier = idtoken::Verifier::builder()
        .audience(origin.clone())
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    let state = Upstream {
        verifier: Arc::new(verifier),
        origin: origin.clone(),
    };
    let app = Router::new().fallback(upstream_handler).with_state(state);
    tokio::spawn(async move { axum::serve(listener, app).await });
    origin
}

pub(super) use crate::support::{Proxy, start_proxy};

pub(super) fn metadata(emu: &Emulator) -> Vec<(&'static str, String)> {
    vec![("GCE_METADATA_HOST", emu.metadata_host())]
}

pub(super) fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

pub(super) async fn get_json(url: &str) -> Value {
    let resp = client().get(url).send().await.expect("request");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

#[tokio::test]
async fn forwards_with_a_valid_token_for_the_target_and_its_host() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let seen = get_json(&format!("{}/items?x=1", proxy.url)).await;
    assert_eq!(seen["path"], "/items?x=1");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(up.clone()),
        "{seen}"
    );
    let up_host = up.trim_start_matches("http://");
    assert_eq!(seen["headers"]["host"], up_host);
    let log = proxy.log();
    assert!(log.contains("GET /items?x=1 200 "), "{log}");
    assert!(!log.contains("eyJ"), "the token is never logged: {log}");
}

#[tokio::test]
async fn pages_from_other_sites_and_rebound_names_are_refused_before_any_token() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(
        home.path(),
        &metadata(&emu),
        &["--target", &up, "--allow-host", "dev.internal"],
    )
    .await;
    let port = proxy.url.rsplit(':').next().expect("port").to_owned();
    let send = |method: reqwest::Method, headers: &[(&str, String)]| {
        let mut req = client().request(method, format!("{}/items", proxy.url));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        async move {
            let resp = req.send().await.expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("body"))
        }
    };
    // DNS rebinding: the page's own name now points at 127.0.0.1.
    let (status, body) = send(
        reqwest::Method::GET,
        &[("host", format!("evil.example:{port}"))],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("DNS rebinding") && body.contains("--allow-host evil.example"),
        "{body}"
    );
    // A form posted from another site, with and without Fetch Metadata.
    let (status, body) = send(
        reqwest::Method::POST,
        &[
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Another site framing the service (clickjacking): a navigation, but
    // not a top-level one.
    let (status, body) = send(
        reqwest::Method::GET,
        &[
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
            ("sec-fetch-dest", "iframe".into()),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        reqwest::Method::POST,
        &[("origin", "https://evil.example".into())],
    )
    .await;
    assert_eq!(status, 403);
    let log = proxy.log();
    assert!(log.contains("POST /items 403 "), "{log}");

    // What the user does: localhost names, allowed names, their own pages,
    // and following a link from elsewhere.
    for headers in [
        vec![("host", format!("localhost:{port}"))],
        vec![("host", format!("dev.internal:{port}"))],
        vec![
            ("origin", "http://localhost:3000".into()),
            ("sec-fetch-site", "same-site".into()),
        ],
        vec![
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
            ("sec-fetch-dest", "document".into()),
        ],
    ] {
        let (status, body) = send(reqwest::Method::GET, &headers).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
        let seen: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(seen["authorization"]["aud"], Value::from(up.clone()));
    }
    assert!(!proxy.log().contains("eyJ"));
}

#[tokio::test]
async fn own_authorization_passes_untouched_with_x_serverless_authorization() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(
        home.path(),
        &metadata(&emu),
        &["--target", &up, "--header", "x-serverless-authorization"],
    )
    .await;
    let seen: Value = client()
        .get(&proxy.url)
        .header("authorization", "Basic YXBwOnNlY3JldA==")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(seen["headers"]["authorization"], "Basic YXBwOnNlY3JldA==");
    assert_eq!(seen["x_serverless_authorization"]["aud"], Value::from(up));
}

#[tokio::test]
async fn strips_hop_by_hop_headers_and_adds_x_forwarded() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let seen: Value = client()
        .get(&proxy.url)
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "gzip")
        .header("x-keep-me", "1")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let headers = &seen["headers"];
    for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
        assert!(headers.get(gone).is_none(), "{gone} forwarded: {headers}");
    }
    assert_eq!(headers["x-keep-me"], "1");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["x-forwarded-host"],
        proxy.url.trim_start_matches("http://")
    );
}

#[tokio::test]
async fn location_pointing_at_the_target_is_rewritten_to_the_proxy() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let resp = client()
        .get(format!("{}/redirect", proxy.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("{}/landed?x=1", proxy.url).as_str()
    );
    let resp = client()
        .get(format!("{}/elsewhere", proxy.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["location"], "https://other.example/landed");
}

#[tokio::test]
async fn large_streamed_body_round_trips_intact() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = client()
        .post(format!("{}/stream-back", proxy.url))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let back = resp.bytes().await.expect("body");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the body came back changed");
    let log = proxy.log();
    assert!(log.contains("POST /stream-back 200 "), "{log}");
    assert!(log.contains(&format!(" {}B", data.len())), "{log}");
}

#[tokio::test]
async fn target_down_is_a_502_with_the_reason() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let target = format!("http://{closed}");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &target]).await;
    let resp = client().get(&proxy.url).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(body.contains(&target), "{body}");
    assert!(body.to_lowercase().contains("connection refused"), "{body}");
}

#[tokio::test]
async fn slow_target_is_a_504() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(
        home.path(),
        &metadata(&emu),
        &["--target", &up, "--upstream-timeout", "0.3"],
    )
    .await;
    let resp = client()
        .get(format!("{}/slow", proxy.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    let body = resp.text().await.expect("body");
    assert!(body.contains("--upstream-timeout"), "{body}");
}

#[tokio::test]
async fn no_credentials_is_a_500_naming_what_to_run() {
    let home = tempfile::tempdir().expect("home");
    let env = [("METADATA_SERVER_DETECTION", "none".to_owned())];
    let proxy = start_proxy(home.path(), &env, &["--target", "http://127.0.0.1:9"]).await;
    let resp = client().get(&proxy.url).send().await.expect("request");
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("gcloud auth application-default login"),
        "{body}"
    );
    assert!(body.contains("idtoken doctor"), "{body}");
}

#[tokio::test]
async fn non_loopback_listen_without_the_flag_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let out = super::run(idtoken(home.path()).args([
        "proxy",
        "--target",
        "http://127.0.0.1:9",
        "--listen",
        "0.0.0.0:0", // refused: it needs --allow-non-loopback
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        super::stderr(&out).contains("--allow-non-loopback"),
        "{}",
        super::stderr(&out)
    );
}

#[tokio::test]
async fn many_requests_share_one_token_fetch() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let url = format!("{}/n", proxy.url);
    let gets = (0..32).map(|_| get_json(&url));
    for seen in futures_util::future::join_all(gets).await {
        assert_eq!(seen["authorization"]["aud"], Value::from(up.clone()));
    }
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn ctrl_c_lets_in_flight_requests_finish() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let mut proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let slow = tokio::spawn(client().get(format!("{}/slow", proxy.url)).send());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = proxy.child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    let resp = slow
        .await
        .expect("task")
        .expect("the slow request finished");
    assert_eq!(resp.status(), 200);
    let status = tokio::time::timeout(Duration::from_secs(15), proxy.child.wait())
        .await
        .expect("the proxy exits")
        .expect("wait");
    assert!(status.success(), "{}", proxy.log());
}

#[tokio::test]
async fn server_sent_events_arrive_before_the_response_ends() {
    // The second event waits until the client has seen the first, so the
    // test hangs (and times out) if the proxy buffers the response.
    let gate = Arc::new(tokio::sync::Notify::new());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = format!("http://{}", listener.local_addr().expect("addr"));
    let app = Router::new().fallback({
        let gate = gate.clone();
        move || async move {
            let events = futures_util::stream::unfold(0, move |n| {
                let gate = gate.clone();
                async move {
                    match n {
                        0 => Some((Ok::<_, std::io::Error>("data: one\n\n"), 1)),
                        1 => {
                            gate.notified().await;
                            Some((Ok("data: two\n\n"), 2))
                        }
                        _ => None,
                    }
                }
            });
            (
                [("content-type", "text/event-stream")],
                Body::from_stream(events),
            )
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let mut resp = client()
        .get(format!("{}/events", proxy.url))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let first = tokio::time::timeout(Duration::from_secs(10), resp.chunk())
        .await
        .expect("the first event arrives while the response is open")
        .expect("read")
        .expect("a chunk");
    assert_eq!(&first[..], b"data: one\n\n");
    gate.notify_one();
    let rest = tokio::time::timeout(Duration::from_secs(10), resp.bytes())
        .await
        .expect("the stream ends")
        .expect("read");
    assert_eq!(&rest[..], b"data: two\n\n");
}

/// Asks the proxy at `url` for an upgrade to `shout` on a raw connection
/// and checks that the target's shouting answers come back through it.
pub(super) async fn shout_through(url: &str) {
    let addr = url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let head = format!(
        "GET /upgrade HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\nUpgrade: shout\r\n\r\n"
    );
    conn.write_all(head.as_bytes()).await.expect("write");
    let mut reader = BufReader::new(conn);
    let response = read_head(&mut reader).await;
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("upgrade: shout"),
        "{response}"
    );
    let mut conn = reader.into_inner();
    for word in ["hello", "again"] {
        conn.write_all(word.as_bytes()).await.expect("write");
        let mut back = [0u8; 5];
        tokio::time::timeout(Duration::from_secs(10), conn.read_exact(&mut back))
            .await
            .expect("the target answers through the tunnel")
            .expect("read");
        assert_eq!(&back, word.to_ascii_uppercase().as_bytes());
    }
}

/// Reads an HTTP/1.1 response head, up to the empty line.
async fn read_head(reader: &mut BufReader<tokio::net::TcpStream>) -> String {
    let mut response = String::new();
    loop {
        let mut line = String::new();
        let n = tokio::time::timeout(Duration::from_secs(10), reader.read_line(&mut line))
            .await
            .expect("the answer comes in time")
            .expect("read");
        if n == 0 || line == "\r\n" {
            break;
        }
        response.push_str(&line);
    }
    response
}

#[tokio::test]
async fn upgrades_are_tunnelled_with_a_token() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    shout_through(&proxy.url).await;
}

#[tokio::test]
async fn upgrades_are_tunnelled_over_http1_when_http2_is_on() {
    // The upstream speaks HTTP/1.1 only, as most WebSocket servers do;
    // with --http2 other requests to a plain-http target use h2c.
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up, "--http2"]).await;
    shout_through(&proxy.url).await;
}

#[tokio::test]
async fn connect_is_refused_with_501_over_http1_and_h2c() {
    use http_body_util::{BodyExt as _, Empty};
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up, "--http2"]).await;

    let addr = proxy.url.trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .expect("write");
    let response = read_head(&mut BufReader::new(conn)).await;
    assert!(response.starts_with("HTTP/1.1 501"), "{response}");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = hyper::Request::connect(proxy.url.as_str())
        .body(Empty::new())
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 501);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("CONNECT is not supported"), "{body}");
}

/// An h2c-only upstream, as a gRPC service is: answers with the version,
/// `te` and token audience it saw, then a `grpc-status` trailer.
async fn h2c_upstream(emu: &Emulator) -> String {
    use http_body_util::{BodyExt as _, StreamBody};
    use hyper::body::Frame;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let verifier = Arc::new(
        idtoken::Verifier::builder()
            .audience(origin.clone())
            .jwks_url(emu.jwks_url())
            .build()
            .expect("verifier"),
    );
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let verifier = verifier.clone();
            let service =
                hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let verifier = verifier.clone();
                    async move {
                        let token = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|v| v.strip_prefix("Bearer "))
                            .unwrap_or("")
                            .to_owned();
                        let aud = verifier
                            .verify(&token)
                            .await
                            .ok()
                            .and_then(|c| c.aud.clone());
                        let seen = json!({
                            "version": format!("{:?}", req.version()),
                            "te": req.headers().get("te").and_then(|v| v.to_str().ok()),
                            "aud": aud,
                        });
                        let mut trailers = HeaderMap::new();
                        trailers.insert("grpc-status", "0".parse().expect("value"));
                        let frames = futures_util::stream::iter([
                            Ok::<_, Infallible>(Frame::data(Bytes::from(seen.to_string()))),
                            Ok(Frame::trailers(trailers)),
                        ]);
                        Ok::<_, Infallible>(hyper::Response::new(StreamBody::new(frames).boxed()))
                    }
                });
            tokio::spawn(async move {
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
            });
        }
    });
    origin
}

#[tokio::test]
async fn http2_flag_speaks_h2c_both_ways_with_trailers() {
    use http_body_util::{BodyExt as _, Full};
    let emu = Emulator::start().await.expect("emulator");
    let up = h2c_upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up, "--http2"]).await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = hyper::Request::post(format!("{}/pkg.Service/Method", proxy.url))
        .header("te", "trailers")
        .header("content-type", "application/grpc")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\0")))
        .expect("request");
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body");
    let trailers = body.trailers().cloned().expect("trailers came through");
    assert_eq!(trailers["grpc-status"], "0");
    let seen: Value = serde_json::from_slice(&body.to_bytes()).expect("JSON");
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["te"], "trailers");
    assert_eq!(seen["aud"], Value::from(up));
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_and_never_sent_expired() {
    let emu = Emulator::builder()
        .token_lifetime(Duration::from_secs(8))
        .start()
        .await
        .expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &up]).await;
    let started = std::time::SystemTime::now();
    let mut tokens = std::collections::BTreeSet::new();
    while started.elapsed().expect("clock") < Duration::from_secs(13) {
        let seen = get_json(&proxy.url).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let claims = &seen["authorization"];
        assert_eq!(claims["aud"], Value::from(up.clone()), "{seen}");
        let exp = claims["exp"].as_f64().expect("exp");
        assert!(exp > now, "a token expired at {exp} was sent at {now}");
        tokens.insert(claims["iat"].to_string());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fetches = emu.counters().get(Endpoint::MetadataIdentity);
    assert!(tokens.len() >= 2, "the token was refreshed: {tokens:?}");
    // Refreshes start 2 s (a quarter of the lifetime) before expiry.
    assert!(
        (2..=4).contains(&fetches),
        "{fetches} fetches in 13 s of 8 s tokens"
    );
}

#[tokio::test]
async fn target_path_is_prefixed_and_the_audience_stays_the_origin() {
    let emu = Emulator::start().await.expect("emulator");
    let up = upstream(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let target = format!("{up}/base/");
    let proxy = start_proxy(home.path(), &metadata(&emu), &["--target", &target]).await;
    let seen = get_json(&format!("{}/items?x=1", proxy.url)).await;
    assert_eq!(seen["path"], "/base/items?x=1");
    assert_eq!(seen["authorization"]["aud"], Value::from(up), "{seen}");
}

#[tokio::test]
async fn an_unknown_header_choice_is_a_usage_error_naming_the_two() {
    let home = tempfile::tempdir().expect("home");
    let out = super::run(super::idtoken(home.path()).args([
        "proxy",
        "--target",
        "http://127.0.0.1:9",
        "--header",
        "x-goog-iap-jwt-assertion",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = super::stderr(&out);
    assert!(err.contains("x-serverless-authorization"), "{err}");
}
