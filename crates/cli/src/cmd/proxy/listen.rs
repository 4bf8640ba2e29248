//! The proxy's listening side: binding (the proxy's and the admin
//! server's addresses), the accept loop, HTTP/1.1 (and h2c with
//! `--http2`) connections with upgrades, and graceful shutdown on Ctrl-C.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

use super::forward::{ClientConn, Proxy};
use super::headers::forwarded_for;
use super::idle::Streams;
use super::joined::Driver;
use super::stop::{Stop, unless_stopped, until_stopped};
use super::target::{
    H2_CONN_WINDOW, H2_MAX_STREAMS, H2_SEND_BUF, H2_STREAM_WINDOW, MAX_BUF, Upstream,
};
use super::timers::{HeaderTimer, TimerSlot};
use crate::Failure;

/// Binds `addr` (which `config` has allowed), and warns on stderr when the
/// address it got is not loopback: then `exposed` (what anyone who can
/// reach it gets) follows the warning.
pub(super) async fn bind(
    addr: SocketAddr,
    exposed: &str,
) -> Result<(TcpListener, SocketAddr), Failure> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot listen on {addr}: {e}"),
        )
    })?;
    let local = listener.local_addr().map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot read the listening address: {e}"),
        )
    })?;
    if !local.ip().is_loopback() {
        eprintln!("idtoken: WARNING: listening on {local}, not loopback: {exposed}");
    }
    Ok((listener, local))
}

/// HTTP/2's connection preface (RFC 9113, section 3.4), which a client of
/// an `--http2` listener sends first if it speaks HTTP/2.
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits, at most `within`, for a client's first bytes to tell HTTP/2
/// from HTTP/1.1: a byte off the preface, the whole preface, or the end of
/// the stream; false when they did not come in time. hyper-util's version
/// detection reads the same bytes before any of hyper's timers runs, so
/// without this a client of an `--http2` listener that sends nothing (or
/// part of the preface) would hold its connection for ever. Only peeks:
/// hyper reads them.
async fn protocol_told(stream: &TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within; // time: bounded (a day at most, `config`)
    let mut first = [0u8; 24];
    let mut pause = Duration::from_millis(10);
    loop {
        let n = match tokio::time::timeout_at(deadline, stream.peek(&mut first)).await {
            Ok(Ok(n)) => n,
            // hyper meets the error on its first read and ends there.
            Ok(Err(_)) => return true,
            Err(_) => return false,
        };
        if n == 0 || n == H2_PREFACE.len() || first[..n] != H2_PREFACE[..n] {
            return true;
        }
        // The start of the preface (a peek returns at once while bytes
        // wait): look again a little later, less often as time goes on.
        let pause_until = tokio::time::Instant::now() + pause; // time: bounded (1 s at most)
        if pause_until >= deadline {
            tokio::time::sleep_until(deadline).await;
            return false;
        }
        tokio::time::sleep_until(pause_until).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// How long in-flight requests may run after Ctrl-C.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` changes (Ctrl-C), then lets
/// in-flight requests finish for up to [`SHUTDOWN_GRACE`]. Upgraded
/// connections (WebSocket) are tunnels without requests; they end with
/// the process. An HTTP/1.1 connection is closed when a request head takes
/// longer than `header_timeout` from the moment the proxy is ready for it
/// (hyper's `header_read_timeout`: from the connection's start, then from
/// the end of each response, so idle keep-alive time counts); with
/// `http2`, a client that does not say which protocol it speaks within
/// `header_timeout` is too ([`protocol_told`]).
///
/// HTTP/1.1 connections allow half-closes (hyper's `half_close`): the
/// client's socket is not read while its request is in flight, so a
/// client that closes its sending half after the request (`nc -N`) gets
/// the answer, and one that went away is found out when the answer is
/// written to it, the wait bounded by `--upstream-timeout`. hyper's
/// default read there to end the request at the client's end of stream;
/// that read also came while the request still held the read buffer, so
/// hyper allocated a new one (8 KiB) for every request (docs/BENCHMARKS.md).
pub(super) async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    http2: bool,
    header_timeout: Duration,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    // Each connection task holds a clone of `alive`; when the last one is
    // dropped, `recv` on the other end returns `None`: all are done.
    let (alive, mut all_done) = tokio::sync::mpsc::channel::<()>(1);
    let stop = Arc::new(Stop::default());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        super::log::say(format_args!("idtoken: proxy: accept failed: {e}"));
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let open = proxy.metrics.connection();
                let proxy = proxy.clone();
                // hyper times HTTP/1.1 heads only: an `--http2` listener
                // counts requests to close idle HTTP/2 connections itself.
                let streams = http2.then(|| Arc::new(Streams::default()));
                // HTTP/1.1: the connection's task drives its connection to
                // the target too (`joined.rs`).
                let driver = (!http2).then(Driver::new);
                let conn = Arc::new(ClientConn {
                    peer: forwarded_for(peer),
                    upstream: Upstream::for_listener(driver.clone(), &proxy.target.scheme),
                    streams: streams.clone(),
                    // HTTP/1.1 runs a connection's requests in its task;
                    // HTTP/2 gives each a task (`timers.rs`).
                    upstream_timers: TimerSlot::new(!http2),
                });
                let handle = move |req| {
                    let (proxy, conn) = (proxy.clone(), conn.clone());
                    async move { Ok::<_, Infallible>(proxy.handle(req, &conn).await) }
                };
                let alive = alive.clone();
                let stopping = stop.clone();
                tokio::spawn(async move {
                    let (_alive, _open) = (alive, open);
                    let idle = async move {
                        match streams {
                            Some(streams) => streams.idle(header_timeout).await,
                            None => std::future::pending().await,
                        }
                    };
                    match driver {
                        // `--http2`: HTTP/2 or HTTP/1.1, as the client speaks.
                        None => {
                            // Ctrl-C ends the wait too: nothing is in flight yet.
                            let told = protocol_told(&stream, header_timeout);
                            if unless_stopped(told, stopping.clone()).await != Some(true) {
                                return;
                            }
                            let io = TokioIo::new(stream);
                            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
                            builder
                                .http1()
                                .max_buf_size(MAX_BUF)
                                .half_close(true)
                                .timer(HeaderTimer::default())
                                .header_read_timeout(header_timeout);
                            builder
                                .http2()
                                .initial_connection_window_size(H2_CONN_WINDOW)
                                .initial_stream_window_size(H2_STREAM_WINDOW)
                                .max_concurrent_streams(H2_MAX_STREAMS)
                                .max_send_buf_size(H2_SEND_BUF);
                            // HTTP/2 moves each request's future into a task of
                            // its own, several copies on the way: boxed, only a
                            // pointer moves (h2c: 2.3k fewer instructions a
                            // request). HTTP/1.1 keeps the future in the
                            // connection's task, where boxing costs 1k more: its
                            // clients pay that here, not on a plain listener.
                            let service = hyper::service::service_fn(move |req| Box::pin(handle(req)));
                            let conn = builder.serve_connection_with_upgrades(io, service);
                            until_stopped(conn, stopping, idle, |c| c.graceful_shutdown()).await;
                        }
                        Some(driver) => {
                            let io = TokioIo::new(stream);
                            let conn = hyper::server::conn::http1::Builder::new()
                                .max_buf_size(MAX_BUF)
                                .half_close(true)
                                .timer(HeaderTimer::default())
                                .header_read_timeout(header_timeout)
                                .serve_connection(io, hyper::service::service_fn(handle))
                                .with_upgrades();
                            driver
                                .run(until_stopped(conn, stopping, idle, |c| c.graceful_shutdown()))
                                .await;
                        }
                    }
                });
            }
            _ = shutdown.changed() => break,
        }
    }
    drop(listener);
    super::log::say(format_args!(
        "idtoken: proxy: shutting down; waiting up to {SHUTDOWN_GRACE:?} for requests in flight"
    ));
    stop.stop();
    drop(alive);
    if tokio::time::timeout(SHUTDOWN_GRACE, all_done.recv())
        .await
        .is_err()
    {
        super::log::say(format_args!(
            "idtoken: proxy: requests still in flight after {SHUTDOWN_GRACE:?}; stopping"
        ));
    }
}
