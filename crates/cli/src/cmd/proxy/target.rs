//! The proxy's side towards the target: pooled clients over TCP or TLS
//! (rustls, the system's roots), HTTP/1.1 or HTTP/2, connecting directly
//! or through the forward proxy the environment names ([`Egress`]).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use http::uri::Scheme;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::proxy::Tunnel;
use hyper_util::rt::{TokioExecutor, TokioIo};

use super::config::Target;
use super::metrics::CountedBody;
use crate::Failure;

/// The most an HTTP/1.1 connection buffers, each way, on either side of
/// the proxy. hyper's default (about 400 KiB) let a connection carrying a
/// large body hold a megabyte; 64 KiB keeps 64 such connections near
/// 20 MiB without slowing them (docs/BENCHMARKS.md).
pub(super) const MAX_BUF: usize = 64 * 1024;

/// A pooled client to the target.
pub(super) type HttpsClient = Client<hyper_rustls::HttpsConnector<Egress>, CountedBody>;

/// A pooled client to the target: HTTP/1.1, or with `http2` also HTTP/2
/// (agreed by ALPN for https, assumed for http). Server certificates are
/// checked against the system's roots (`SSL_CERT_FILE`/`SSL_CERT_DIR` on
/// Linux replace them).
pub(super) fn https_client(http2: bool, scheme: &Scheme) -> Result<HttpsClient, Failure> {
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
    let connector = if http2 {
        connector.enable_all_versions().wrap_connector(tcp)
    } else {
        connector.enable_http1().wrap_connector(tcp)
    };
    let mut client = Client::builder(TokioExecutor::new());
    client.pool_idle_timeout(Duration::from_secs(90));
    client.http1_max_buf_size(MAX_BUF);
    // Without TLS there is no ALPN to agree on HTTP/2: assume it.
    client.http2_only(http2 && *scheme == Scheme::HTTP);
    Ok(client.build(connector))
}

/// `, through the forward proxy http://HOST:PORT/` when the environment
/// sends connections to `target` through one (its address only).
pub(super) fn egress_note(target: &Target) -> String {
    let uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query("/")
        .build();
    match uri.ok().as_ref().and_then(idtoken::egress_proxy) {
        Some(p) => format!(", through the forward proxy {}", p.uri()),
        None => String::new(),
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

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
