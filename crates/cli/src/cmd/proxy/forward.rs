//! Forwarding one request: [`Proxy`], the running proxy's shared state,
//! and [`Proxy::handle`]: the guard, hop-by-hop headers out, `Host` for
//! the target, `X-Forwarded-*` in, the token in its header, bodies
//! streamed both ways, upgrades tunnelled, `Location` rewritten, and
//! the access-log line when the response body ends.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::{self, HeaderValue};
use http::uri::PathAndQuery;
use http::{Request, Response, StatusCode, Uri};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use idtoken::TokenHeader;

use super::config::Target;
use super::guard::Guard;
use super::headers::{
    add_forwarded, keep_upgrade, rewrite_location, strip_hop_by_hop, upgrade_protocol,
};
use super::idle::Streams;
use super::log::{LogLine, LogStyle, Logged, ProxyBody};
use super::metrics::{CountedBody, ListenerMetrics};
use super::target::{BoxError, Connector, HttpsClient, Upstream};
use super::timers::{TimerSlot, deadline_after};

/// The resolved configuration and shared state of a running proxy.
pub(super) struct Proxy {
    pub(super) target: Target,
    /// The token source, or why there are no credentials.
    pub(super) tokens: Result<idtoken::IdTokenSource, String>,
    pub(super) header: TokenHeader,
    pub(super) client: HttpsClient,
    /// Opens the connections [`ClientConn::upstream`] keeps.
    pub(super) connector: Connector,
    /// `scheme://authority/` of the target, what `connector` connects to.
    pub(super) target_uri: Uri,
    /// The `Host` header of requests sent on a dedicated connection.
    pub(super) target_host: HeaderValue,
    /// HTTP/1.1 only, for requests that ask for an upgrade.
    pub(super) upgrade_client: HttpsClient,
    pub(super) timeout: Duration,
    pub(super) local: SocketAddr,
    /// Refuses requests from web pages that are not the user's.
    pub(super) guard: Guard,
    /// This listener's counters (the admin server shows them).
    pub(super) metrics: &'static ListenerMetrics,
    pub(super) log: LogStyle,
}

/// What one client connection keeps between its requests.
pub(super) struct ClientConn {
    /// The client's address as `X-Forwarded-For` gives it.
    pub(super) peer: HeaderValue,
    /// What its requests go to the target on (upgrades excepted).
    pub(super) upstream: Upstream,
    /// Its requests in progress, on an `--http2` listener (`idle.rs`).
    pub(super) streams: Option<Arc<Streams>>,
    /// The timers its requests' upstream timeouts reuse.
    pub(super) upstream_timers: TimerSlot,
}

impl Proxy {
    /// Forwards one request and answers with the target's response, or
    /// with a 500/502/504 that says what went wrong.
    pub(super) async fn handle(
        &self,
        req: Request<Incoming>,
        conn: &ClientConn,
    ) -> Response<Logged> {
        let started = Instant::now();
        let in_progress = conn.streams.as_ref().map(Streams::begin);
        let method = req.method().clone();
        // A shared reference to the request's bytes, not a copy.
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let resp = match self.forward(req, conn).await {
            Ok(resp) => resp,
            Err((status, why)) => {
                super::log::say(format_args!("idtoken: proxy: {method} {path}: {why}"));
                error_response(status, why)
            }
        };
        let (parts, body) = resp.into_parts();
        let log = LogLine {
            listener: self.local,
            method,
            path,
            status: parts.status,
            started,
            style: self.log,
            metrics: self.metrics,
            _in_progress: in_progress,
        };
        Response::from_parts(parts, Logged::new(body, log))
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        conn: &ClientConn,
    ) -> Result<Response<ProxyBody>, (StatusCode, String)> {
        // CONNECT asks for a tunnel to a host of the client's choosing (or,
        // over HTTP/2, a WebSocket by RFC 8441); neither is forwarded, and
        // no token is fetched for it.
        if req.method() == http::Method::CONNECT {
            return Err((
                StatusCode::NOT_IMPLEMENTED,
                "CONNECT is not supported: this is a reverse proxy to one target, not a forward proxy; \
                 for WebSocket use HTTP/1.1 (Upgrade), not HTTP/2 extended CONNECT"
                    .to_owned(),
            ));
        }
        self.guard
            .check(
                req.method(),
                req.headers(),
                req.uri().authority().map(|a| a.as_str()),
            )
            .map_err(|why| (StatusCode::FORBIDDEN, why))?;
        let source = self.tokens.as_ref().map_err(|why| {
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{why}\nRun `gcloud auth application-default login`, then `idtoken doctor` to check, and restart the proxy."),
            )
        })?;
        // The fetch's future is large and rarely needed: boxed, it stays
        // out of every request's future, which HTTP/2 copies into a task.
        let token = match source.ready() {
            Some(token) => token,
            None => Box::pin(source.token()).await.map_err(|e| {
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("cannot get an ID token: {e}\nRun `idtoken doctor` to see why."),
                )
            })?,
        };

        // An upgrade (WebSocket) keeps its `Upgrade` header; both sides'
        // connections are joined once the target answers 101.
        let upgrade = upgrade_protocol(req.headers());
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut req));
        let (mut parts, body) = req.into_parts();
        // HTTP/2 clients name the host in the URI, not in `Host`.
        let local_host = parts
            .headers
            .get(header::HOST)
            .cloned()
            .or_else(|| {
                let a = parts.uri.authority()?;
                HeaderValue::from_str(a.as_str()).ok()
            })
            .unwrap_or_else(|| host_value(&self.local));
        strip_hop_by_hop(&mut parts.headers);
        if let Some(protocol) = &upgrade {
            keep_upgrade(&mut parts.headers, protocol.clone());
        }
        add_forwarded(&mut parts.headers, &conn.peer, &local_host);
        parts
            .headers
            .insert(self.header.header_name(), self.header.value(&token));
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        // Without a target path prefix the request's path goes as it is,
        // not copied and parsed again.
        let path = if self.target.prefix.is_empty() {
            path
        } else {
            PathAndQuery::try_from(format!("{}{path}", self.target.prefix))
                .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad request path: {e}")))?
        };
        parts.version = http::Version::HTTP_11;
        let body = CountedBody::new(body, self.metrics);
        // tokio's clock: the upstream timeout's deadline is reckoned from it.
        let sent = tokio::time::Instant::now();
        // Pinned where it is: raced against the timer by reference, not
        // moved (copied) into the race.
        let sending = std::pin::pin!(async {
            match (&conn.upstream, &upgrade) {
                // Origin form and `Host`, as the pooled client would write them.
                (Upstream::Http1(upstream), None) => {
                    parts.uri = Uri::from(path);
                    // In the client's `Host`'s place: a replacement costs
                    // less than a removal and an insertion.
                    parts.headers.insert(header::HOST, self.target_host.clone());
                    let req = Request::from_parts(parts, body);
                    upstream.send(&self.connector, &self.target_uri, req).await
                }
                // hyper sets `:authority` (HTTP/2) or `Host` (the pooled
                // client) from the target URI.
                (Upstream::Http2(upstream), None) => {
                    parts.headers.remove(header::HOST);
                    parts.uri = self.target_url(path)?;
                    let req = Request::from_parts(parts, body);
                    upstream.send(&self.connector, &self.target_uri, req).await
                }
                _ => {
                    parts.headers.remove(header::HOST);
                    parts.uri = self.target_url(path)?;
                    let client = if upgrade.is_some() {
                        &self.upgrade_client
                    } else {
                        &self.client
                    };
                    let req = Request::from_parts(parts, body);
                    client.request(req).await.map_err(BoxError::from)
                }
            }
        });
        let deadline = deadline_after(sent, self.timeout);
        let resp = conn.upstream_timers.within(deadline, sending).await;
        let resp = resp
            .ok_or_else(|| {
                (
                    StatusCode::GATEWAY_TIMEOUT,
                    format!(
                        "the target {} sent no response within {:?} (--upstream-timeout)",
                        self.target.origin, self.timeout
                    ),
                )
            })?
            .map_err(|e| {
                (
                    StatusCode::BAD_GATEWAY,
                    format!(
                        "cannot reach the target {}: {}",
                        self.target.origin,
                        cause_chain(&*e)
                    ),
                )
            })?;

        self.metrics.upstream_latency(sent.elapsed());
        let mut resp = resp;
        let tunnel = match (client_upgrade, resp.status()) {
            (Some(client), StatusCode::SWITCHING_PROTOCOLS) => {
                upgrade_protocol(resp.headers()).map(|p| (client, hyper::upgrade::on(&mut resp), p))
            }
            _ => None,
        };
        let (mut parts, body) = resp.into_parts();
        strip_hop_by_hop(&mut parts.headers);
        if let Some((client, target, protocol)) = tunnel {
            keep_upgrade(&mut parts.headers, protocol);
            tokio::spawn(join_upgraded(client, target, self.metrics));
        }
        if let Some(loc) = parts.headers.get(header::LOCATION)
            && let Some(local) =
                rewrite_location(loc, &self.target.origin, &self.target.prefix, &local_host)
        {
            parts.headers.insert(header::LOCATION, local);
        }
        Ok(Response::from_parts(parts, ProxyBody::Target(body)))
    }

    /// The target's URL for `path`: absolute form, as the pooled client
    /// and HTTP/2 (`:scheme`, `:authority`) need it.
    fn target_url(&self, path: PathAndQuery) -> Result<Uri, BoxError> {
        // From parts already parsed: the builder would convert each again.
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.target.scheme.clone());
        parts.authority = Some(self.target.authority.clone());
        parts.path_and_query = Some(path);
        Ok(Uri::from_parts(parts)?)
    }
}

/// Copies bytes both ways between the upgraded client and target
/// connections until either side closes; counted as an upgrade while open,
/// and its bytes once it closes cleanly.
async fn join_upgraded(
    client: hyper::upgrade::OnUpgrade,
    target: hyper::upgrade::OnUpgrade,
    metrics: &'static ListenerMetrics,
) {
    match tokio::try_join!(client, target) {
        Ok((client, target)) => {
            let _open = metrics.upgrade();
            let (mut client, mut target) = (TokioIo::new(client), TokioIo::new(target));
            if let Ok((to_target, to_client)) =
                tokio::io::copy_bidirectional(&mut client, &mut target).await
            {
                metrics.tunnelled(to_target, to_client);
            }
        }
        Err(e) => super::log::say(format_args!("idtoken: proxy: upgrade failed: {e}")),
    }
}

fn host_value(addr: &SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"))
}

/// Every cause of an error, outermost first, joined by `: `.
fn cause_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

fn error_response(status: StatusCode, why: String) -> Response<ProxyBody> {
    let body = format!(
        "idtoken proxy: {} {}\n{why}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("")
    );
    let mut resp = Response::new(ProxyBody::message(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
