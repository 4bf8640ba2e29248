//! Clients that open connections and then send nothing, or too little:
//! `--header-timeout` closes them, so they cannot hold the proxy's
//! connections (and file descriptors) for ever. And clients that read
//! nothing: the proxy's HTTP/2 buffers and windows bound what they make
//! it hold. And clients that close their sending half after a request:
//! they still get the answer.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::client::{client, read_head};
use super::fixture::{Builder, ProxyFixture};
use crate::support::{idtoken, run, stderr};

/// Far longer than any header timeout these tests set: reaching it means
/// the proxy kept the connection open.
const PATIENCE: Duration = Duration::from_secs(20);

/// Reads until the proxy closes `conn`; false if it is still open after
/// [`PATIENCE`]. A reset counts as closed.
async fn closed_by_proxy(conn: &mut TcpStream) -> bool {
    let mut buf = [0u8; 1024];
    let waited = tokio::time::timeout(PATIENCE, async {
        loop {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    waited.is_ok()
}

/// An `--http2` proxy to an h2c target, its header timeout 0.5 s.
fn http2_listener() -> Builder {
    ProxyFixture::builder()
        .h2c()
        .arg("--http2")
        .arg("--header-timeout")
        .arg("0.5")
}

fn addr(fx: &ProxyFixture) -> String {
    fx.url().trim_start_matches("http://").to_owned()
}

/// Sends `request` (its line and headers but `Host` and the empty line) on
/// a new connection and reads the answer's head: the connection, ready
/// for the body, and the head.
async fn exchange(fx: &ProxyFixture, request: &str) -> (BufReader<TcpStream>, String) {
    let conn = TcpStream::connect(addr(fx)).await.expect("connect");
    let mut reader = BufReader::new(conn);
    let head = format!("{request}Host: {}\r\n\r\n", addr(fx));
    reader
        .get_mut()
        .write_all(head.as_bytes())
        .await
        .expect("write");
    let answer = read_head(&mut reader).await;
    (reader, answer)
}

/// A connection to the proxy that has sent a request line and a header,
/// but not the empty line that ends the head.
async fn unfinished_head(fx: &ProxyFixture) -> TcpStream {
    let mut conn = TcpStream::connect(addr(fx)).await.expect("connect");
    conn.write_all(format!("GET / HTTP/1.1\r\nHost: {}\r\n", addr(fx)).as_bytes())
        .await
        .expect("write");
    conn
}

#[tokio::test]
async fn a_request_head_never_finished_is_cut_off_and_others_still_served() {
    let fx = ProxyFixture::builder()
        .arg("--header-timeout")
        .arg("0.5")
        .start()
        .await;
    assert!(
        closed_by_proxy(&mut unfinished_head(&fx).await).await,
        "the proxy held a connection whose request head never ended"
    );
    let mut silent = TcpStream::connect(addr(&fx)).await.expect("connect");
    assert!(
        closed_by_proxy(&mut silent).await,
        "the proxy held a connection that never sent a byte"
    );
    let resp = client().get(fx.url()).send().await.expect("request");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_header_timeout() {
    let fx = ProxyFixture::builder()
        .arg("--header-timeout")
        .arg("0.5")
        .start()
        .await;
    let (mut reader, head) = exchange(&fx, "GET / HTTP/1.1\r\n").await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .expect("a Content-Length");
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.expect("body");
    let mut conn = reader.into_inner();
    assert!(
        closed_by_proxy(&mut conn).await,
        "an idle keep-alive connection stayed open"
    );
}

#[tokio::test]
async fn a_slow_response_is_not_cut_by_the_header_timeout() {
    // The header timeout runs only while the proxy waits for a request
    // head: a target slower than it is still answered (here with the
    // --upstream-timeout's 504, after four header timeouts).
    let fx = ProxyFixture::builder()
        .arg("--header-timeout")
        .arg("0.5")
        .arg("--upstream-timeout")
        .arg("2")
        .start()
        .await;
    let resp = client()
        .get(format!("{}/held", fx.url()))
        .send()
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(resp.status(), 504);
}

#[tokio::test]
async fn the_header_timeout_holds_for_http1_clients_of_an_http2_listener() {
    let fx = http2_listener().start().await;
    assert!(
        closed_by_proxy(&mut unfinished_head(&fx).await).await,
        "the --http2 listener held an HTTP/1.1 head that never ended"
    );
}

#[tokio::test]
async fn an_http2_listener_cuts_off_clients_that_never_say_which_protocol() {
    let fx = http2_listener().start().await;
    let mut silent = TcpStream::connect(addr(&fx)).await.expect("connect");
    assert!(
        closed_by_proxy(&mut silent).await,
        "the --http2 listener held a connection that never sent a byte"
    );
    // The start of HTTP/2's preface, and no more.
    let mut partial = TcpStream::connect(addr(&fx)).await.expect("connect");
    partial.write_all(b"PRI * HTTP/2").await.expect("write");
    assert!(
        closed_by_proxy(&mut partial).await,
        "the --http2 listener held a connection that sent part of the preface"
    );
    // A client that speaks HTTP/2 is served as before.
    let (mut sender, _conn) = h2c_connection(&fx).await;
    assert_eq!(h2c_get(&fx, &mut sender, "/pkg.Service/Method").await, 200);
}

#[tokio::test]
async fn a_stopping_http2_listener_closes_a_silent_client_at_once() {
    // The default header timeout (60 s), longer than Ctrl-C's 10 s grace.
    let fx = ProxyFixture::builder().arg("--http2").start().await;
    let mut silent = TcpStream::connect(addr(&fx)).await.expect("connect");
    // Accepted after the silent connection, so that one is in the proxy
    // by the time this request reaches the target.
    let in_flight = tokio::spawn(client().get(format!("{}/held", fx.url())).send());
    fx.upstream().held_request_arrived().await;
    let pid = fx.proxy.child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    fx.proxy.log_says("shutting down").await;
    // Closed while the proxy still waits for the request in flight: not
    // when the grace ends and the process goes, taking that request too.
    assert!(
        closed_by_proxy(&mut silent).await,
        "the silent connection outlived the proxy"
    );
    fx.upstream().release_held();
    let resp = in_flight
        .await
        .expect("task")
        .expect("the request in flight finished after the silent client was closed");
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn an_upgraded_connection_outlives_the_header_timeout() {
    let fx = ProxyFixture::builder()
        .arg("--header-timeout")
        .arg("0.5")
        .start()
        .await;
    let request = "GET /upgrade HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: shout\r\n";
    let (reader, head) = exchange(&fx, request).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut tunnel = reader.into_inner();
    // Idle for four header timeouts: a tunnel has no request heads.
    tokio::time::sleep(Duration::from_secs(2)).await;
    tunnel.write_all(b"later").await.expect("write");
    let mut back = [0u8; 5];
    tokio::time::timeout(PATIENCE, tunnel.read_exact(&mut back))
        .await
        .expect("the target answers through the tunnel")
        .expect("the tunnel is still open");
    assert_eq!(&back, b"LATER");
}

#[tokio::test]
async fn absurd_header_timeouts_are_usage_errors_not_panics() {
    let home = tempfile::tempdir().expect("home");
    for secs in ["0", "-1", "1e19", "1e20", "inf", "NaN"] {
        let out = run(idtoken(home.path()).args([
            "proxy",
            "--target",
            "http://127.0.0.1:9",
            // `=`: clap would take a lone `-1` for a flag.
            &format!("--header-timeout={secs}"),
        ]))
        .await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "--header-timeout {secs}: {}",
            stderr(&out)
        );
        assert!(
            stderr(&out).contains("--header-timeout"),
            "--header-timeout {secs}: {}",
            stderr(&out)
        );
    }
}

/// The sending side of an h2c connection to the proxy.
type H2cSender = hyper::client::conn::http2::SendRequest<http_body_util::Empty<axum::body::Bytes>>;

/// An HTTP/2 connection to `fx` over h2c (prior knowledge), its driver
/// running on a task of its own: it ends when the proxy closes the
/// connection.
async fn h2c_connection(
    fx: &ProxyFixture,
) -> (H2cSender, tokio::task::JoinHandle<Result<(), hyper::Error>>) {
    let tcp = TcpStream::connect(addr(fx)).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .expect("h2c handshake");
    (sender, tokio::spawn(conn))
}

/// An h2c GET of `path` on `sender`: its response, its body unread.
async fn h2c_send(
    fx: &ProxyFixture,
    sender: &mut H2cSender,
    path: &str,
) -> hyper::Response<hyper::body::Incoming> {
    let req = hyper::Request::get(format!("{}{path}", fx.url()))
        .body(http_body_util::Empty::new())
        .expect("request");
    tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("in time")
        .expect("an h2c response")
}

/// An h2c GET of `path` on `sender`: its status, its body read.
async fn h2c_get(fx: &ProxyFixture, sender: &mut H2cSender, path: &str) -> u16 {
    use http_body_util::BodyExt as _;
    let resp = h2c_send(fx, sender, path).await;
    let status = resp.status().as_u16();
    resp.into_body().collect().await.expect("body");
    status
}

#[tokio::test]
async fn an_idle_http2_connection_is_closed_after_the_header_timeout() {
    let fx = http2_listener().start().await;
    let (mut sender, conn) = h2c_connection(&fx).await;
    assert_eq!(h2c_get(&fx, &mut sender, "/items").await, 200);
    // Nothing more is asked: the proxy says GOAWAY and closes.
    let ended = tokio::time::timeout(PATIENCE, conn).await;
    assert!(ended.is_ok(), "an idle HTTP/2 connection stayed open");
}

#[tokio::test]
async fn an_http2_request_in_progress_keeps_its_connection_past_the_header_timeout() {
    // Four header timeouts pass while /held waits for the target: the
    // connection stays, and the request gets the --upstream-timeout's 504.
    let fx = http2_listener()
        .arg("--upstream-timeout")
        .arg("2")
        .start()
        .await;
    let (mut sender, _conn) = h2c_connection(&fx).await;
    assert_eq!(h2c_get(&fx, &mut sender, "/held").await, 504);
}

/// A client that reads nothing: every read waits for ever, while writes
/// go through. Its HTTP/2 requests go out; no answer ever comes in.
#[cfg(target_os = "linux")]
struct Deaf(TcpStream);

#[cfg(target_os = "linux")]
impl tokio::io::AsyncRead for Deaf {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        _: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Pending
    }
}

#[cfg(target_os = "linux")]
impl tokio::io::AsyncWrite for Deaf {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        tokio::io::AsyncWrite::poll_write(std::pin::Pin::new(&mut self.0), cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_flush(std::pin::Pin::new(&mut self.0), cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        tokio::io::AsyncWrite::poll_shutdown(std::pin::Pin::new(&mut self.0), cx)
    }
}

/// The resident memory of process `pid`, in KiB (`VmRSS`).
#[cfg(target_os = "linux")]
fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// `pid`'s resident memory once it has stopped moving: within 64 KiB of
/// where it stood 2 s before, for 2 s on end (at most a minute).
#[cfg(target_os = "linux")]
async fn settled_resident_kib(pid: u32) -> u64 {
    let mut since = resident_kib(pid);
    let mut same = 0;
    for _ in 0..240 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = resident_kib(pid);
        if now.abs_diff(since) <= 64 {
            same += 1;
        } else {
            (since, same) = (now, 0);
        }
        if same == 8 {
            return now;
        }
    }
    panic!("the proxy's memory still moved after a minute: {since} KiB");
}

/// Asserts that the proxy's resident memory grows by less than
/// `limit_kib` while a client that reads nothing has `streams` endless
/// answers open on one HTTP/2 connection to it. Its windows let the
/// proxy send all it likes: once the sockets are full, what the proxy
/// holds is what its HTTP/2 buffers toward the client (per stream) and
/// its window toward the target (per connection) allow.
#[cfg(target_os = "linux")]
async fn a_deaf_client_makes_the_proxy_grow_less_than(streams: usize, limit_kib: u64) {
    let fx = ProxyFixture::builder().h2c().arg("--http2").start().await;
    let pid = fx.proxy.child.id().expect("the proxy's pid");
    let (mut sender, _conn) = h2c_connection(&fx).await;
    assert_eq!(h2c_get(&fx, &mut sender, "/items").await, 200);
    let before = settled_resident_kib(pid).await;

    let tcp = TcpStream::connect(addr(&fx)).await.expect("connect");
    let (mut deaf, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .initial_stream_window_size(i32::MAX as u32)
            .initial_connection_window_size(i32::MAX as u32)
            .handshake::<_, http_body_util::Empty<axum::body::Bytes>>(hyper_util::rt::TokioIo::new(
                Deaf(tcp),
            ))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    for _ in 0..streams {
        let req = hyper::Request::get(format!("{}/endless", fx.url()))
            .body(http_body_util::Empty::new())
            .expect("request");
        // Never answered (nothing is read): the request stays open.
        tokio::spawn(deaf.send_request(req));
    }
    let grown = settled_resident_kib(pid).await.saturating_sub(before);
    // At least most of the window toward the target came in: the answers
    // flowed, so the tests below can fail.
    assert!(
        grown > 512,
        "the proxy grew by {grown} KiB only: did the answers flow?"
    );
    assert!(
        grown < limit_kib,
        "the proxy grew by {grown} KiB for {streams} streams (limit {limit_kib} KiB)"
    );
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_client_that_reads_nothing_makes_the_proxy_hold_a_bounded_buffer_per_http2_stream() {
    // 64 streams: hyper's 400 KiB a stream toward the client held about
    // 23 MiB here; the proxy's 64 KiB (PROXY.md) about 6 MiB with the
    // window toward the target.
    a_deaf_client_makes_the_proxy_grow_less_than(64, 12 * 1024).await;
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn a_client_that_reads_nothing_makes_the_proxy_hold_a_bounded_window_from_the_target() {
    // 4 streams: hyper's 5 MiB window a connection toward the target
    // came in whole; the proxy's 1 MiB (PROXY.md) bounds it.
    a_deaf_client_makes_the_proxy_grow_less_than(4, 4 * 1024).await;
}

#[tokio::test]
async fn http2_streams_their_client_stopped_reading_do_not_hold_up_the_others() {
    // /endless is asked twice and neither answer read: the proxy holds
    // what each stream's windows allow, toward the client and from the
    // target. Another request on the same connection must still be
    // answered: two streams may not take the whole window of the
    // connection to the target (with hyper's windows, three took it).
    let fx = ProxyFixture::builder().h2c().arg("--http2").start().await;
    let (mut sender, _conn) = h2c_connection(&fx).await;
    let mut stalled = Vec::new();
    for _ in 0..2 {
        let resp = h2c_send(&fx, &mut sender, "/endless").await;
        assert_eq!(resp.status(), 200);
        stalled.push(resp);
    }
    // Long enough for the stalled streams to fill their windows.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = tokio::time::timeout(PATIENCE, h2c_get(&fx, &mut sender, "/512k"))
        .await
        .expect("the request was held up behind the stalled streams");
    assert_eq!(status, 200);
    drop(stalled);
}

/// Sends `GET /held` on a new connection and closes the connection's
/// sending half, as `nc -N` or a shell's `printf ... | nc` does; the
/// target answers once the request reached it. The answer's head.
async fn held_request_then_half_close(fx: &ProxyFixture) -> String {
    let conn = TcpStream::connect(addr(fx)).await.expect("connect");
    let mut reader = BufReader::new(conn);
    let head = format!("GET /held HTTP/1.1\r\nHost: {}\r\n\r\n", addr(fx));
    let conn = reader.get_mut();
    conn.write_all(head.as_bytes()).await.expect("write");
    conn.shutdown().await.expect("half-close");
    fx.upstream().held_request_arrived().await;
    fx.upstream().release_held();
    read_head(&mut reader).await
}

#[tokio::test]
async fn a_client_that_half_closes_after_its_request_still_gets_the_answer() {
    let fx = ProxyFixture::builder().start().await;
    let head = held_request_then_half_close(&fx).await;
    assert!(head.starts_with("HTTP/1.1 200"), "no answer: {head:?}");
}

#[tokio::test]
async fn an_http1_client_of_an_http2_listener_that_half_closes_still_gets_the_answer() {
    let fx = ProxyFixture::builder().arg("--http2").start().await;
    let head = held_request_then_half_close(&fx).await;
    assert!(head.starts_with("HTTP/1.1 200"), "no answer: {head:?}");
}
