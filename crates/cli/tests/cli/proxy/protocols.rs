//! What the proxy carries besides plain requests: server-sent events as
//! they come, upgrades (WebSocket-like) tunnelled, CONNECT refused, h2c
//! with trailers for gRPC.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};

use super::client::{client, read_head, shout_through};
use super::fixture::ProxyFixture;

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
    let fx = ProxyFixture::builder().target(up).start().await;
    let mut resp = client()
        .get(format!("{}/events", fx.url()))
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

#[tokio::test]
async fn upgrades_are_tunnelled_with_a_token() {
    let fx = ProxyFixture::builder().start().await;
    shout_through(fx.url()).await;
}

#[tokio::test]
async fn upgrades_are_tunnelled_over_http1_when_http2_is_on() {
    // The upstream speaks HTTP/1.1 only, as most WebSocket servers do;
    // with --http2 other requests to a plain-http target use h2c.
    let fx = ProxyFixture::builder().arg("--http2").start().await;
    shout_through(fx.url()).await;
}

#[tokio::test]
async fn http2_to_a_target_that_speaks_only_http1_says_to_drop_the_flag() {
    // With --http2, an http:// target gets HTTP/2 by prior knowledge; an
    // HTTP/1.1-only one answers with bytes HTTP/2 cannot read (nginx
    // without `http2` on its listener answers the preface 400).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let target = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let mut preface = [0u8; 24];
            let _ = tokio::io::AsyncReadExt::read_exact(&mut conn, &mut preface).await;
            let _ = conn
                .write_all(
                    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                )
                .await;
        }
    });
    let fx = ProxyFixture::builder()
        .target(target)
        .arg("--http2")
        .start()
        .await;
    let resp = client()
        .get(format!("{}/x", fx.url()))
        .send()
        .await
        .expect("response");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("speaks only HTTP/1.1") && body.contains("without --http2"),
        "{body}"
    );
}

#[tokio::test]
async fn connect_is_refused_with_501_over_http1_and_h2c() {
    use http_body_util::{BodyExt as _, Empty};
    let fx = ProxyFixture::builder().arg("--http2").start().await;

    let addr = fx.url().trim_start_matches("http://");
    let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
    conn.write_all(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        .await
        .expect("write");
    let response = read_head(&mut BufReader::new(conn)).await;
    assert!(response.starts_with("HTTP/1.1 501"), "{response}");

    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    let req = hyper::Request::connect(fx.url())
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

#[tokio::test]
async fn http2_flag_speaks_h2c_both_ways_with_trailers() {
    use http_body_util::{BodyExt as _, Full};
    let fx = ProxyFixture::builder().h2c().arg("--http2").start().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = hyper::Request::post(format!("{}/pkg.Service/Method", fx.url()))
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
    assert_eq!(seen["aud"], Value::from(fx.origin.clone()));
}
