//! How the proxy uses its connections to the target: one per client
//! connection, kept between requests, and replaced without losing a
//! request when the target closes it. The target here is a bare HTTP/1.1
//! server on a TCP socket that counts the connections it accepts.

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
