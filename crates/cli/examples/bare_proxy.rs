//! The least a reverse proxy built on hyper and tokio does, for
//! `scripts/bench-proxy`'s floor row: HTTP/1.1 in, one HTTP/1.1
//! connection to the target per client connection, the same headers
//! added as `idtoken proxy` adds (a fixed `Authorization`,
//! `X-Forwarded-For`, `-Proto`, `-Host`), nothing else (no token source,
//! no log, no checks, no timeouts, no hop-by-hop headers removed). What
//! `idtoken proxy` costs beyond it is its own; what this costs beyond
//! nginx is hyper's and tokio's.
//!
//! ```sh
//! cargo run --release -p idtoken-cli --example bare_proxy -- \
//!   127.0.0.1:18188 127.0.0.1:18181 "Bearer TOKEN"
//! ```
//!
//! `BARE_INLINE=1` drives each target connection in its client
//! connection's task instead of a task of its own. `BARE_H2C=1` speaks
//! HTTP/2 without TLS on both sides instead (one target connection per
//! client connection, its streams multiplexed), as `idtoken proxy
//! --http2` does; with `BARE_H1_OUT=1` too, h2c in and HTTP/1.1 out, one
//! request at a time, as nginx proxies (to tell hyper's HTTP/2 client's
//! share from its server's).

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::AUTHORIZATION;
use http::{HeaderName, HeaderValue};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::{TcpListener, TcpStream};

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

type Error = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(listen), Some(target), Some(authorization)) = (args.next(), args.next(), args.next())
    else {
        return Err("usage: bare_proxy LISTEN_ADDR TARGET_ADDR AUTHORIZATION".into());
    };
    let mut authorization = HeaderValue::from_str(&authorization)?;
    // As idtoken's token header: never logged, and over HTTP/2 never put
    // in the HPACK table (RFC 7541 7.1.3), so encoded in full every time.
    authorization.set_sensitive(true);
    let listen: SocketAddr = listen.parse()?;
    let target: SocketAddr = target.parse()?;
    if !listen.ip().is_loopback() {
        return Err("bare_proxy listens on loopback only".into());
    }
    let inline = std::env::var_os("BARE_INLINE").is_some();
    let h2c = std::env::var_os("BARE_H2C").is_some();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(serve(listen, target, authorization, inline, h2c))
}

async fn serve(
    listen: SocketAddr,
    target: SocketAddr,
    authorization: HeaderValue,
    inline: bool,
    h2c: bool,
) -> Result<(), Error> {
    let listener = TcpListener::bind(listen).await?;
    println!("http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let headers = Added {
            authorization: authorization.clone(),
            forwarded_for: HeaderValue::from_str(&peer.ip().to_string())?,
            forwarded_host: HeaderValue::from_str(&listen.to_string())?,
        };
        tokio::spawn(async move {
            let served = if h2c {
                connection_h2c(stream, target, headers).await
            } else {
                connection(stream, target, headers, inline).await
            };
            if let Err(e) = served {
                eprintln!("bare_proxy: {e}");
            }
        });
    }
}

/// The headers every request of a connection gets.
#[derive(Clone)]
struct Added {
    authorization: HeaderValue,
    forwarded_for: HeaderValue,
    forwarded_host: HeaderValue,
}

impl Added {
    fn to(self, headers: &mut http::HeaderMap) {
        headers.insert(AUTHORIZATION, self.authorization);
        headers.insert(X_FORWARDED_FOR, self.forwarded_for);
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
        headers.insert(X_FORWARDED_HOST, self.forwarded_host);
    }
}

async fn connection_h2c(stream: TcpStream, target: SocketAddr, added: Added) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let upstream = TcpStream::connect(target).await?;
    upstream.set_nodelay(true)?;
    if std::env::var_os("BARE_H1_OUT").is_some() {
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
        tokio::spawn(conn);
        let sender = Arc::new(tokio::sync::Mutex::new(sender));
        let service = service_fn(move |mut req: http::Request<Incoming>| {
            let (sender, added) = (sender.clone(), added.clone());
            async move {
                added.to(req.headers_mut());
                *req.version_mut() = http::Version::HTTP_11;
                // HTTP/1.1 wants `Host` and the origin form.
                if let Some(host) = req.uri().authority().map(|a| a.as_str().to_owned())
                    && let Ok(host) = HeaderValue::from_str(&host)
                {
                    req.headers_mut().insert(http::header::HOST, host);
                }
                let path = req
                    .uri()
                    .path_and_query()
                    .map_or("/", |p| p.as_str())
                    .to_owned();
                if let Ok(path) = path.parse() {
                    *req.uri_mut() = path;
                }
                let mut sender = sender.lock().await;
                sender.ready().await?;
                sender.send_request(req).await
            }
        });
        hyper::server::conn::http2::Builder::new(TokioExecutor::new())
            .serve_connection(TokioIo::new(stream), service)
            .await?;
        return Ok(());
    }
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(upstream)).await?;
    tokio::spawn(conn);
    let service = service_fn(move |mut req: http::Request<Incoming>| {
        let (mut sender, added) = (sender.clone(), added.clone());
        async move {
            added.to(req.headers_mut());
            sender.send_request(req).await
        }
    });
    hyper::server::conn::http2::Builder::new(TokioExecutor::new())
        .serve_connection(TokioIo::new(stream), service)
        .await?;
    Ok(())
}

async fn connection(
    stream: TcpStream,
    target: SocketAddr,
    added: Added,
    inline: bool,
) -> Result<(), Error> {
    stream.set_nodelay(true)?;
    let upstream = TcpStream::connect(target).await?;
    upstream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(upstream)).await?;
    let sender = Arc::new(tokio::sync::Mutex::new(sender));
    let service = service_fn(move |mut req: http::Request<Incoming>| {
        let (sender, added) = (sender.clone(), added.clone());
        async move {
            added.to(req.headers_mut());
            let mut sender = sender.lock().await;
            sender.ready().await?;
            sender.send_request(req).await
        }
    });
    let server =
        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service);
    if inline {
        tokio::select! {
            served = server => served?,
            _ = conn => {}
        }
    } else {
        tokio::spawn(conn);
        server.await?;
    }
    Ok(())
}
