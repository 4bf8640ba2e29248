//! The proxy's side towards the target: pooled clients over TCP or TLS
//! (rustls, the system's roots), HTTP/1.1 or HTTP/2.

use std::time::Duration;

use http::uri::Scheme;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::metrics::CountedBody;
use crate::Failure;

/// The most an HTTP/1.1 connection buffers, each way, on either side of
/// the proxy. hyper's default (about 400 KiB) let a connection carrying a
/// large body hold a megabyte; 64 KiB keeps 64 such connections near
/// 20 MiB without slowing them (docs/BENCHMARKS.md).
pub(super) const MAX_BUF: usize = 64 * 1024;

/// A pooled client to the target.
pub(super) type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, CountedBody>;

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
