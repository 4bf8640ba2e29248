//! The proxy's side towards the target: pooled clients over TCP or TLS
//! (rustls, the system's roots), HTTP/1.1 or HTTP/2, connecting directly
//! or through the forward proxy the environment names ([`Egress`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use http::header::HeaderValue;
use http::uri::Scheme;
use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::config::Target;
use super::joined::{Driver, Side};
use super::metrics::CountedBody;
use crate::Failure;

/// The most an HTTP/1.1 connection buffers, each way, on either side of
/// the proxy. hyper's default (about 400 KiB) let a connection carrying a
/// large body hold a megabyte; 64 KiB keeps 64 such connections near
/// 20 MiB without slowing them (docs/BENCHMARKS.md).
pub(super) const MAX_BUF: usize = 64 * 1024;

/// The most an HTTP/2 stream buffers to send, toward the client or the
/// target, beyond what it has written to the socket (h2 takes one more
/// chunk past it). hyper's defaults (400 KiB toward the client, 1 MiB
/// toward the target) let a client that reads slowly make the proxy hold
/// 23 MiB on 64 streams of one connection; 64 KiB is of the order of what
/// nginx's default `proxy_buffers` hold of an answer (eight memory pages:
/// 32 KiB with 4 KiB pages, 64 KiB with 8 KiB; docs/PROXY.md, "Memory").
pub(super) const H2_SEND_BUF: usize = 64 * 1024;

/// The HTTP/2 flow-control window of a connection of the proxy's own, for
/// what it receives: from a client, and from an `http://` target over
/// h2c. hyper's client default (5 MiB) let each client connection make the
/// proxy hold 5 MiB of the target's answers; 1 MiB is hyper's server
/// default, and moved 1 MiB bodies as fast on loopback (docs/BENCHMARKS.md).
pub(super) const H2_CONN_WINDOW: u32 = 1024 * 1024;

/// The HTTP/2 flow-control window of one stream, a quarter of
/// [`H2_CONN_WINDOW`]: what a stream its reader has stopped reading holds
/// of the connection's window, so that one such stream (a slow gRPC
/// stream, say) cannot hold up the other requests of its connection.
pub(super) const H2_STREAM_WINDOW: u32 = 256 * 1024;

/// The most streams a client may have open on one HTTP/2 connection:
/// nginx's `http2_max_concurrent_streams` (hyper's default is 200). With
/// [`H2_SEND_BUF`] it bounds what one connection can make the proxy hold.
pub(super) const H2_MAX_STREAMS: u32 = 128;

/// The windows of the pool's HTTP/2 connection to an `https://` target,
/// which every client shares: hyper's 5 MiB for the connection, so that
/// many clients' answers move at once from a distant target, and 1 MiB a
/// stream (hyper's is 2 MiB), so that it takes five streams whose
/// clients stopped reading to hold up the rest.
const POOL_CONN_WINDOW: u32 = 5 * 1024 * 1024;
const POOL_STREAM_WINDOW: u32 = 1024 * 1024;

/// How the proxy opens connections to the target: TCP, or TLS with the
/// system's roots, directly or through the environment's forward proxy.
pub(super) type Connector = hyper_rustls::HttpsConnector<Egress>;

/// A pooled client to the target.
pub(super) type HttpsClient = Client<Connector, CountedBody>;

/// Connections to the target over HTTP/1.1, or with `http2` also HTTP/2
/// (agreed by ALPN). Server certificates are checked against the system's
/// roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` on Linux replace them).
pub(super) fn connector(http2: bool) -> Result<Connector, Failure> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .try_with_platform_verifier()
        .map_err(|e| Failure::new(crate::exit::FAILURE, format!("cannot set up TLS: {e}")))?
        .https_or_http();
    // Small requests and responses go out at once, as on the listening side.
    let mut tcp = HttpConnector::new();
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_connect_timeout(Some(Duration::from_secs(10)));
    let tcp = Egress { tcp };
    Ok(if http2 {
        connector.enable_all_versions().wrap_connector(tcp)
    } else {
        connector.enable_http1().wrap_connector(tcp)
    })
}

/// A pooled client to the target over `connector`: HTTP/1.1, or with
/// `http2` also HTTP/2 (assumed for http, where no ALPN can agree on it).
pub(super) fn https_client(connector: Connector, http2: bool, scheme: &Scheme) -> HttpsClient {
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_idle_timeout(Duration::from_secs(90));
    client.http1_max_buf_size(MAX_BUF);
    client.http2_max_send_buf_size(H2_SEND_BUF);
    client.http2_initial_connection_window_size(POOL_CONN_WINDOW);
    client.http2_initial_stream_window_size(POOL_STREAM_WINDOW);
    client.http2_only(http2 && *scheme == Scheme::HTTP);
    client.build(connector)
}

/// What one client connection's requests go to the target on.
pub(super) enum Upstream {
    /// Its own HTTP/1.1 connection.
    Http1(Http1Conn),
    /// Its own HTTP/2 connection, its requests multiplexed on it
    /// (`--http2` to an `http://` target: HTTP/2 by prior knowledge).
    Http2(Http2Conn),
    /// The pooled client (`--http2` to an `https://` target, where ALPN
    /// agrees on HTTP/2 or HTTP/1.1 per connection).
    Pooled,
}

impl Upstream {
    /// The upstream for a new client connection in front of a `scheme`
    /// target: on an HTTP/1.1 listener `driver` is the connection's (its
    /// task drives the target connection too, `joined.rs`); `None` on an
    /// `--http2` listener.
    ///
    /// A connection of its own for each client connection spares every
    /// request the pool's checkout (a lock, a hash of the pool key, a
    /// race between an idle connection and a new one) and return: about
    /// 8k of the 55k instructions of a proxied HTTP/1.1 request, more
    /// over HTTP/2 (docs/BENCHMARKS.md). Upgrades always take the pool.
    pub(super) fn for_listener(driver: Option<Driver>, scheme: &Scheme) -> Self {
        match (driver, *scheme == Scheme::HTTP) {
            (Some(driver), _) => Upstream::Http1(Http1Conn {
                sender: Mutex::default(),
                driver,
            }),
            (None, true) => Upstream::Http2(Http2Conn::default()),
            (None, false) => Upstream::Pooled,
        }
    }
}

/// One client connection's own HTTP/1.1 connection to the target, opened
/// on its first request, driven in the client connection's task
/// (`joined.rs`), and closed with it.
///
/// A client's HTTP/1.1 connection hands the proxy one request at a time
/// (hyper polls the next only once the previous response is written), so
/// one target connection serves it.
pub(super) struct Http1Conn {
    sender: Mutex<Option<http1::SendRequest<CountedBody>>>,
    /// Drives the target connection in the client connection's task.
    driver: Driver,
}

impl Http1Conn {
    /// Sends `req` (origin-form, with its `Host`) to `target` on this
    /// client's connection, opening one if there is none or the target
    /// closed it.
    pub(super) async fn send(
        &self,
        connector: &Connector,
        target: &Uri,
        mut req: Request<CountedBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut kept = self.take_ready().await;
        loop {
            let reused = kept.is_some();
            let mut sender = match kept.take() {
                Some(s) => s,
                // Boxed: opening is rare, and its future would otherwise
                // make every request's future larger.
                None => {
                    let (sender, conn) = Box::pin(open_http1(connector, target)).await?;
                    self.driver.drive(conn);
                    sender
                }
            };
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    *self.slot() = Some(sender);
                    return Ok(resp);
                }
                // A kept connection that the target closed between two
                // requests gives the request back unsent: it goes once
                // more, on a new connection, as the pool would send it.
                Err(mut e) => match e.take_message() {
                    Some(unsent) if reused => req = unsent,
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// The kept connection once it is ready for a request (the previous
    /// response's body read to its end), or `None` if it has closed.
    async fn take_ready(&self) -> Option<http1::SendRequest<CountedBody>> {
        let mut sender = self.slot().take()?;
        sender.ready().await.ok()?;
        Some(sender)
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<http1::SendRequest<CountedBody>>> {
        // Never held across an await, so never poisoned by a panic there.
        self.sender.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One client connection's own HTTP/2 connection to the target, opened
/// on its first request and closed with it (once its last stream ends).
/// Its requests may come at once (an HTTP/2 client); they share it as
/// streams.
#[derive(Default)]
pub(super) struct Http2Conn {
    /// Held while a connection opens, so that requests arriving together
    /// wait for one connection rather than each opening its own.
    sender: tokio::sync::Mutex<Option<http2::SendRequest<CountedBody>>>,
    /// Whether the target has answered one of this client's requests:
    /// until it has, a failed request may mean that it does not speak
    /// HTTP/2 at all ([`NoHttp2Answer`]).
    answered: AtomicBool,
}

impl Http2Conn {
    /// Sends `req` (absolute-form: HTTP/2 takes `:scheme` and
    /// `:authority` from it) on this client's connection, opening one if
    /// there is none or the target closed it.
    pub(super) async fn send(
        &self,
        connector: &Connector,
        target: &Uri,
        mut req: Request<CountedBody>,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut retried = false;
        loop {
            let mut sender = self.sender(connector, target).await?;
            match sender.try_send_request(req).await {
                Ok(resp) => {
                    self.answered.store(true, Ordering::Relaxed);
                    return Ok(resp);
                }
                // A connection the target closed (GOAWAY) gives back the
                // requests it had not yet handed to HTTP/2, which the
                // target never saw, and is closed by then: each goes once
                // more, on a new connection.
                Err(mut e) => match e.take_message() {
                    Some(unsent) if !retried => {
                        req = unsent;
                        retried = true;
                    }
                    _ if !self.answered.load(Ordering::Relaxed) => {
                        return Err(Box::new(NoHttp2Answer(e.into_error())));
                    }
                    _ => return Err(e.into_error().into()),
                },
            }
        }
    }

    /// The kept connection, or a new one if there is none or it closed.
    async fn sender(
        &self,
        connector: &Connector,
        target: &Uri,
    ) -> Result<http2::SendRequest<CountedBody>, BoxError> {
        let mut slot = self.sender.lock().await;
        if let Some(sender) = slot.as_ref().filter(|s| !s.is_closed()) {
            return Ok(sender.clone());
        }
        // Boxed: opening is rare, and its future would otherwise make
        // every request's future larger.
        let sender = Box::pin(open_http2(connector, target)).await?;
        *slot = Some(sender.clone());
        Ok(sender)
    }
}

/// A request that failed on an HTTP/2 connection the target accepted
/// but has not answered on: an `http://` target that speaks only
/// HTTP/1.1 answers HTTP/2's preface with bytes HTTP/2 cannot read, or
/// closes, and hyper's error alone ("frame with invalid size", "broken
/// pipe") does not say so.
#[derive(Debug)]
struct NoHttp2Answer(hyper::Error);

impl std::fmt::Display for NoHttp2Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(
            "no HTTP/2 answer (with --http2, an http:// target is spoken to in HTTP/2 \
             without TLS; if it speaks only HTTP/1.1, run the proxy without --http2)",
        )
    }
}

impl std::error::Error for NoHttp2Answer {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

/// Opens an HTTP/2 connection to `target` (`scheme://authority/`) and
/// runs it on a task of its own until its senders are dropped and its
/// streams have ended.
async fn open_http2(
    connector: &Connector,
    target: &Uri,
) -> Result<http2::SendRequest<CountedBody>, BoxError> {
    // Only `http://` targets get a connection of their own over HTTP/2:
    // typed as the plain TCP stream it is, not as one that may hold a TLS
    // session, the futures hyper moves into a task for every request are
    // that much smaller (docs/BENCHMARKS.md).
    let io = match connect(connector, target).await? {
        hyper_rustls::MaybeHttpsStream::Http(io) => io,
        hyper_rustls::MaybeHttpsStream::Https(_) => {
            return Err(format!(
                "{target} is an https:// target: HTTP/2 to it goes through the pool"
            )
            .into());
        }
    };
    let (sender, conn) = http2::Builder::new(TokioExecutor::new())
        .initial_connection_window_size(H2_CONN_WINDOW)
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .max_send_buf_size(H2_SEND_BUF)
        .handshake(io)
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// A new connection to `target` (`scheme://authority/`) through
/// `connector`: TCP, TLS, through the forward proxy as the environment says.
async fn connect(
    connector: &Connector,
    target: &Uri,
) -> Result<hyper_rustls::MaybeHttpsStream<TokioIo<tokio::net::TcpStream>>, BoxError> {
    let mut connector = connector.clone();
    std::future::poll_fn(|cx| tower_service::Service::poll_ready(&mut connector, cx)).await?;
    tower_service::Service::call(&mut connector, target.clone()).await
}

/// Opens an HTTP/1.1 connection to `target` (`scheme://authority/`): its
/// sender, and the future that runs it until the sender is dropped.
async fn open_http1(
    connector: &Connector,
    target: &Uri,
) -> Result<(http1::SendRequest<CountedBody>, Side), BoxError> {
    // An `http://` target's connection is driven as the plain TCP stream
    // it is: every read and write skips the TLS-or-not dispatch.
    match connect(connector, target).await? {
        hyper_rustls::MaybeHttpsStream::Http(io) => run_http1(io).await,
        tls => run_http1(tls).await,
    }
}

/// The HTTP/1.1 handshake on `io`: the connection's sender, and the
/// future that runs it.
async fn run_http1<T>(io: T) -> Result<(http1::SendRequest<CountedBody>, Side), BoxError>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (sender, conn) = http1::Builder::new()
        .max_buf_size(MAX_BUF)
        .handshake(io)
        .await?;
    Ok((
        sender,
        Box::pin(async move {
            let _ = conn.await;
        }),
    ))
}

/// The `Host` header for requests to `target`: its host, and its port
/// unless the scheme's default (as hyper's pooled client writes it).
pub(super) fn host_header(target: &Target) -> Result<HeaderValue, Failure> {
    let host = target.authority.host();
    let default = if target.scheme == Scheme::HTTPS {
        443
    } else {
        80
    };
    let value = match target.authority.port_u16() {
        Some(port) if port != default => format!("{host}:{port}"),
        _ => host.to_owned(),
    };
    HeaderValue::from_str(&value).map_err(|e| {
        Failure::new(
            crate::exit::USAGE,
            format!("the target's host cannot be a Host header: {e}"),
        )
    })
}

/// `, through the forward proxy http://HOST:PORT/` when the environment
/// sends connections to `target` through one (its address only).
pub(super) fn egress_note(target: &Uri) -> String {
    match idtoken::egress_proxy(target) {
        Some(p) => format!(", through the forward proxy {}", p.uri()),
        None => String::new(),
    }
}

pub(super) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Connections to the target: straight over TCP, or through the forward
/// proxy [`idtoken::egress_proxy`] names for the target's URL (the
/// library's rule, the one its token requests follow: `HTTPS_PROXY`,
/// `HTTP_PROXY`, `NO_PROXY`), with `Proxy-Authorization` from the proxy
/// URL's credentials.
///
/// Every connection through a proxy is a CONNECT tunnel, `http://`
/// targets' too (not requests in absolute form): HTTP/2 with prior
/// knowledge (`--http2`) and upgrades (WebSocket) need a connection of
/// their own to the target, the credentials go to the proxy once per
/// connection and never in a forwarded request, and the proxy never
/// sees the ID token as a header it parses. TLS, for `https://`, runs
/// inside the tunnel, end to end with the target.
#[derive(Clone)]
pub(super) struct Egress {
    tcp: HttpConnector,
}

impl tower_service::Service<Uri> for Egress {
    type Response = TokioIo<tokio::net::TcpStream>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        // `HttpConnector` is always ready.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let mut tcp = self.tcp.clone();
        let Some(proxy) = idtoken::egress_proxy(&dst) else {
            return Box::pin(async move { tcp.call(dst).await.map_err(Into::into) });
        };
        // Shown in errors: the proxy's address, never its credentials.
        let shown = proxy.uri().clone();
        if shown.scheme() != Some(&Scheme::HTTP) {
            return Box::pin(async move {
                Err(format!(
                    "the forward proxy {shown} is not an http:// proxy; idtoken proxy tunnels to its target through http:// proxies only"
                )
                .into())
            });
        }
        let mut tunnel = Tunnel::new(shown.clone(), tcp);
        if let Some(auth) = proxy.authorization() {
            tunnel = tunnel.with_auth(auth.clone());
        }
        let dst = with_port(dst);
        Box::pin(async move {
            tunnel.call(dst).await.map_err(|e| {
                Box::new(ThroughProxy {
                    proxy: shown,
                    source: e.into(),
                }) as BoxError
            })
        })
    }
}

/// `dst` with its port written out: `Tunnel` asks for port 443 when the
/// URI names none, which for an `http://` target is the wrong one.
fn with_port(dst: Uri) -> Uri {
    let (Some(host), None) = (dst.host(), dst.port_u16()) else {
        return dst;
    };
    let port = if dst.scheme() == Some(&Scheme::HTTP) {
        80
    } else {
        443
    };
    let mut parts = dst.clone().into_parts();
    parts.authority = format!("{host}:{port}").parse().ok();
    Uri::from_parts(parts).unwrap_or(dst)
}

/// A tunnel through the forward proxy failed: names the proxy (its
/// address only) and why.
#[derive(Debug)]
struct ThroughProxy {
    proxy: Uri,
    source: BoxError,
}

impl std::fmt::Display for ThroughProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "through the forward proxy {}: {}",
            self.proxy, self.source
        )
    }
}

impl std::error::Error for ThroughProxy {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tunnel_asks_for_the_schemes_port_when_the_target_names_none() {
        let port = |uri: &'static str| with_port(Uri::from_static(uri)).port_u16();
        assert_eq!(port("http://svc.example/x"), Some(80));
        assert_eq!(port("https://svc.example/x"), Some(443));
        assert_eq!(port("http://svc.example:8080/"), Some(8080));
        assert_eq!(port("http://[::1]/"), Some(80));
        assert_eq!(
            with_port(Uri::from_static("http://svc.example/a?b=1")),
            "http://svc.example:80/a?b=1"
        );
    }
}
