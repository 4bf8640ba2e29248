//! The local client's side: what a user's tool does through the proxy.

use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// A client that shows redirects instead of following them.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// GETs `url`, expecting 200 and JSON.
pub async fn get_json(url: &str) -> Value {
    let resp = client().get(url).send().await.expect("request");
    let status = resp.status();
    let body = resp.text().await.expect("body");
    assert_eq!(status, 200, "{body}");
    serde_json::from_str(&body).expect("JSON")
}

/// Asks the proxy at `url` for an upgrade to `shout` on a raw connection
/// and checks that the target's shouting answers come back through it.
pub async fn shout_through(url: &str) {
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
pub async fn read_head(reader: &mut BufReader<tokio::net::TcpStream>) -> String {
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
