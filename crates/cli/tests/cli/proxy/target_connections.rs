//! How the proxy uses its connections to the target: one per client
//! connection, kept between requests, and replaced without losing a
//! request when the target closes it. The targets here count the
//! connections they accept: a bare HTTP/1.1 server on a TCP socket, and
//! an h2c server (for `--http2`).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

use super::client::client;
use super::fixture::ProxyFixture;

/// A target answering `ok` to every request; with `close_after_each` it
/// closes the connection after each answer without saying so (no
/// `Connection: close`), as a server whose keep-alive timeout ran out
/// does. Returns its origin and its count of accepted connections.
async fn counting_target(close_after_each: bool) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    // A request head, up to its blank line (GETs: no body).
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match stream.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) if line == "\r\n" => break,
                            Ok(_) => {}
                        }
                    }
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if stream.get_mut().write_all(answer).await.is_err() || close_after_each {
                        return;
                    }
                }
            });
        }
    });
    (origin, accepted)
}

#[tokio::test]
async fn one_client_connection_keeps_one_target_connection() {
    let (origin, accepted) = counting_target(false).await;
    let fx = ProxyFixture::builder().target(origin).start().await;
    // reqwest keeps its one connection to the proxy between requests.
    let http = client();
    for _ in 0..20 {
        let resp = http.get(fx.url()).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.text().await.expect("body"), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "{}", fx.log());
}

#[tokio::test]
async fn a_target_closing_kept_connections_loses_no_request() {
    let (origin, accepted) = counting_target(true).await;
    let fx = ProxyFixture::builder().target(origin).start().await;
    let http = client();
    for i in 0..10 {
        let resp = http.get(fx.url()).send().await.expect("request");
        assert_eq!(resp.status(), 200, "request {i}: {}", fx.log());
        assert_eq!(resp.text().await.expect("body"), "ok");
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 10);
}

#[tokio::test]
async fn a_kept_timer_still_times_out_and_the_next_request_gets_its_own_answer() {
    let fx = ProxyFixture::builder()
        .arg("--upstream-timeout")
        .arg("0.5")
        .start()
        .await;
    // One client connection: the second request goes where the first
    // went, and must not be answered by the first one's late response.
    let http = client();
    // Answered requests first: the held one's timer is the kept one,
    // moved later by each request before it.
    for _ in 0..3 {
        let resp = http.get(fx.url()).send().await.expect("request");
        assert_eq!(resp.status(), 200);
        resp.text().await.expect("body");
    }
    let resp = http
        .get(format!("{}/held", fx.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    resp.text().await.expect("body");
    fx.upstream().release_held();
    for path in ["/first-after", "/second-after"] {
        let resp = http
            .get(format!("{}{path}", fx.url()))
            .send()
            .await
            .expect("request");
        assert_eq!(resp.status(), 200);
        let seen: serde_json::Value = resp.json().await.expect("json");
        assert_eq!(seen["path"], path, "{seen}");
    }
}

/// An h2c target answering `ok` to every request; with
/// `go_away_after_each` it sends GOAWAY once it has answered a request,
/// as a server being drained does. Returns its origin and its count of
/// accepted connections.
async fn counting_h2c_target(go_away_after_each: bool) -> (String, Arc<AtomicUsize>) {
    use hyper::server::conn::http2;
    use hyper_util::rt::{TokioExecutor, TokioIo};

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let origin = format!("http://{}", listener.local_addr().expect("addr"));
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let (answered, mut first_answer) = tokio::sync::mpsc::channel::<()>(64);
                let service = hyper::service::service_fn(move |_req| {
                    let answered = answered.clone();
                    async move {
                        let _ = answered.try_send(());
                        Ok::<_, std::convert::Infallible>(hyper::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from_static(b"ok")),
                        ))
                    }
                });
                let conn = http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                tokio::select! {
                    _ = conn.as_mut() => return,
                    _ = first_answer.recv(), if go_away_after_each => {}
                }
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            });
        }
    });
    (origin, accepted)
}

/// A client speaking h2c (prior knowledge) to the proxy: one connection,
/// its requests as streams.
type H2cClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    http_body_util::Empty<bytes::Bytes>,
>;

fn h2c_client() -> H2cClient {
    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// GETs `url` over `http`: the status and the body.
async fn h2c_get(http: &H2cClient, url: &str) -> (u16, String) {
    use http_body_util::BodyExt as _;
    let req = hyper::Request::get(url)
        .body(http_body_util::Empty::new())
        .expect("request");
    let resp = tokio::time::timeout(std::time::Duration::from_secs(20), http.request(req))
        .await
        .expect("in time")
        .expect("response");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Sends 16 GETs to `url` over `http` at once; each must get `ok`.
async fn sixteen_at_once(http: &H2cClient, url: &str) {
    let mut requests = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (http, url) = (http.clone(), url.to_owned());
        requests.spawn(async move { h2c_get(&http, &url).await });
    }
    while let Some(done) = requests.join_next().await {
        assert_eq!(done.expect("task"), (200, "ok".to_owned()));
    }
}

#[tokio::test]
async fn concurrent_h2c_streams_of_one_client_connection_share_one_target_connection() {
    let (origin, accepted) = counting_h2c_target(false).await;
    let fx = ProxyFixture::builder()
        .target(origin)
        .arg("--http2")
        .start()
        .await;
    let http = h2c_client();
    // The first request opens the client's connection; then 16 at once.
    assert_eq!(h2c_get(&http, fx.url()).await, (200, "ok".to_owned()));
    sixteen_at_once(&http, fx.url()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "{}", fx.log());
}

#[tokio::test]
async fn concurrent_first_requests_open_one_h2c_target_connection() {
    let (origin, accepted) = counting_h2c_target(false).await;
    let fx = ProxyFixture::builder()
        .target(origin)
        .arg("--http2")
        .start()
        .await;
    // The client's first 16 requests go out together on its new
    // connection, before the proxy has any to the target.
    sixteen_at_once(&h2c_client(), fx.url()).await;
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "{}", fx.log());
}

#[tokio::test]
async fn an_h2c_target_going_away_after_each_answer_loses_no_request() {
    let (origin, accepted) = counting_h2c_target(true).await;
    let fx = ProxyFixture::builder()
        .target(origin)
        .arg("--http2")
        .start()
        .await;
    let http = h2c_client();
    for i in 0..10 {
        let got = h2c_get(&http, fx.url()).await;
        assert_eq!(got, (200, "ok".to_owned()), "request {i}: {}", fx.log());
    }
    // A request that reaches the target before its GOAWAY is still
    // answered there, so not every request needs a new connection; most do.
    let accepted = accepted.load(Ordering::SeqCst);
    assert!((2..=10).contains(&accepted), "{accepted} connections");
}
