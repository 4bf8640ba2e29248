//! `idtoken proxy`: a local reverse proxy to one target that adds an ID
//! token to every request, so a browser, curl or any local tool can reach a
//! private Cloud Run service.
//!
//! - [`Args`] are resolved once, by [`resolve`] in `config`, into a
//!   [`ProxyConfig`]: the target's parts, audience, header, listen address,
//!   timeout, credential flags; no socket or token yet. [`run`] makes a
//!   [`Proxy`] of it: the token source (one cached
//!   [`idtoken::IdTokenSource`], refreshed ahead of expiry by the library),
//!   the header that carries it, a pooled client.
//! - [`Proxy::handle`] forwards one request: hop-by-hop headers out (`headers`),
//!   `Host` for the target, `X-Forwarded-*` in, the token in its header;
//!   bodies stream both ways. `Location` headers that point at the target
//!   come back pointing at the proxy.
//! - `listen` accepts connections and shuts down gracefully; `target`
//!   builds the pooled clients to the target.
//! - [`Logged`] (in `log`) wraps each response body and writes the access-log line
//!   (method, path, status, duration, bytes) when the body ends.
//!
//! The token goes only to the target: the client talks to one origin.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::BodyExt as _;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use idtoken::TokenHeader;

use crate::Failure;
use config::Target;
pub(crate) use config::{Args, ProxyConfig, resolve};
use guard::Guard;
use headers::{add_forwarded, keep_upgrade, rewrite_location, strip_hop_by_hop, upgrade_protocol};
use listen::serve;
use log::{LogLine, Logged};
use target::{HttpsClient, https_client};

mod config;
mod guard;
mod headers;
mod listen;
mod log;
mod target;

/// What `idtoken proxy --help` says after the flags.
pub(crate) const AFTER_HELP: &str = "\
WebSocket and other HTTP/1.1 upgrades are tunnelled, with or without --http2
(upgrades always go to the target over HTTP/1.1). CONNECT answers 501: this is
not a forward proxy, and HTTP/2 extended CONNECT (RFC 8441) is not offered.

An https target's certificate is checked against the system's roots. To trust
a private CA on Linux, set SSL_CERT_FILE=ca.pem (PEM; it replaces the system
roots: concatenate it with /etc/ssl/certs/ca-certificates.crt to keep them) or
SSL_CERT_DIR; on macOS and Windows, add the CA to the system's trust store.
An untrusted certificate answers 502 naming the problem; no token is sent.

Web pages in your browser can reach 127.0.0.1 too. Requests naming a host
other than a loopback address or localhost (DNS rebinding, or addresses
such as 0.0.0.0 to which browsers send no Fetch Metadata; --allow-host adds
names), prefetches (Sec-Purpose), and requests a browser marks as sent by
another site (Sec-Fetch-Site: cross-site, or a foreign Origin), except
top-level GET/HEAD navigations
(Sec-Fetch-Dest: document; another site's frames, objects and embeds are
refused, so no site can frame your service), are answered 403 before any
token is fetched. curl and other tools are not affected.";

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// The resolved configuration and shared state of a running proxy.
struct Proxy {
    target: Target,
    /// The token source, or why there are no credentials.
    tokens: Result<idtoken::IdTokenSource, String>,
    /// A token from the token cache, used until its refresh margin
    /// (`stale_at`); by then `tokens` has fetched its own.
    seed: Option<(idtoken::IdToken, SystemTime)>,
    header: TokenHeader,
    client: HttpsClient,
    /// HTTP/1.1 only, for requests that ask for an upgrade.
    upgrade_client: HttpsClient,
    timeout: Duration,
    local: SocketAddr,
    /// Refuses requests from web pages that are not the user's.
    guard: Guard,
}

/// Runs the proxy `config` describes until Ctrl-C.
pub(crate) async fn run(config: ProxyConfig) -> Result<(), Failure> {
    let ProxyConfig {
        target,
        audience,
        header,
        listen,
        allowed_hosts,
        upstream_timeout,
        http2,
        creds,
        cache,
    } = config;
    // A token cached by `idtoken token`, `curl` or an earlier proxy
    // serves the first requests; the library's source takes over at its
    // refresh margin.
    let options = creds.token_options();
    let source = creds.source(&cache);
    let slot = source
        .as_ref()
        .and_then(|s| creds.slot(&cache, s, &audience, &options));
    let seed = slot
        .as_ref()
        .and_then(|s| s.lookup(SystemTime::now()))
        .map(|e| {
            if e.facts.audience_is_client_id {
                super::warn_client_id_audience(&e.token, &audience);
            }
            let stale_at = crate::token_cache::stale_at(&e.token);
            (e.token, stale_at)
        });
    // Missing credentials do not stop the proxy: every request answers
    // 500 with what to run, which a browser user sees.
    let loaded = creds.load_from(source.as_ref()).await;
    let tokens = match &loaded {
        Ok(c) => Ok(c.token_source_with(audience.clone(), options.clone())),
        Err(f) => {
            eprintln!("idtoken: proxy: {}", f.message);
            Err(f.message.clone())
        }
    };

    let client = https_client(http2, &target.scheme)?;
    // Upgrades (WebSocket) exist in HTTP/1.1 only: with --http2 they need
    // a client of their own that never negotiates HTTP/2.
    let upgrade_client = if http2 {
        https_client(false, &target.scheme)?
    } else {
        client.clone()
    };

    let listener = tokio::net::TcpListener::bind(listen).await.map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot listen on {listen}: {e}"),
        )
    })?;
    let local = listener.local_addr().map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot read the listening address: {e}"),
        )
    })?;
    if !local.ip().is_loopback() {
        eprintln!(
            "idtoken: WARNING: listening on {local}, not loopback: anyone who can reach it acts with your identity"
        );
    }

    let proxy = Arc::new(Proxy {
        target,
        tokens,
        header,
        client,
        upgrade_client,
        timeout: upstream_timeout,
        local,
        guard: Guard::new(&allowed_hosts),
        seed,
    });
    if let (Ok(src), Ok(creds)) = (&proxy.tokens, loaded) {
        // Mint the first token now, or when the cached one is due for
        // refresh: credential problems show at start, and the first
        // request does not wait. The first token goes into the cache.
        let src = src.clone();
        let refresh_at = proxy.seed.as_ref().map(|(_, at)| *at);
        let format = crate::token_cache::format_name(options.format);
        tokio::spawn(async move {
            if let Some(at) = refresh_at {
                let wait = at.duration_since(SystemTime::now()).unwrap_or_default();
                tokio::time::sleep(wait).await;
            }
            match src.token().await {
                Ok(t) => {
                    super::warn_if_client_id_audience(&t, src.audience());
                    if let Some(slot) = slot {
                        slot.store(&creds, &t, &format);
                    }
                }
                Err(e) => eprintln!("idtoken: proxy: cannot get an ID token yet: {e}"),
            }
        });
    }
    eprintln!(
        "idtoken: proxy: http://{local} -> {} (audience {audience}, header {})",
        proxy.target.origin,
        proxy.header.name()
    );
    println!("http://{local}");

    serve(listener, proxy, http2).await;
    Ok(())
}

impl Proxy {
    /// Forwards one request and answers with the target's response, or
    /// with a 500/502/504 that says what went wrong.
    async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<Logged> {
        let started = Instant::now();
        let method = req.method().clone();
        let path = req
            .uri()
            .path_and_query()
            .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned());
        let resp = match self.forward(req, peer).await {
            Ok(resp) => resp,
            Err((status, why)) => {
                eprintln!("idtoken: proxy: {method} {path}: {why}");
                error_response(status, why)
            }
        };
        let (parts, body) = resp.into_parts();
        let log = LogLine {
            method,
            path,
            status: parts.status,
            started,
        };
        Response::from_parts(parts, Logged::new(body, log))
    }

    async fn forward(
        &self,
        mut req: Request<Incoming>,
        peer: SocketAddr,
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
        let token = match &self.seed {
            Some((seed, stale_at)) if SystemTime::now() < *stale_at => seed.clone(),
            _ => source.token().await.map_err(|e| {
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
        add_forwarded(&mut parts.headers, peer, &local_host);
        // The client sets `Host` (HTTP/1.1) or `:authority` (HTTP/2) from
        // the target URI.
        parts.headers.remove(header::HOST);
        parts
            .headers
            .insert(self.header.header_name(), self.header.value(&token));
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = Uri::builder()
            .scheme(self.target.scheme.clone())
            .authority(self.target.authority.clone())
            .path_and_query(format!("{}{path}", self.target.prefix))
            .build()
            .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad request path: {e}")))?;
        parts.version = http::Version::HTTP_11;

        let client = if upgrade.is_some() {
            &self.upgrade_client
        } else {
            &self.client
        };
        let resp = tokio::time::timeout(
            self.timeout,
            client.request(Request::from_parts(parts, body)),
        )
        .await
        .map_err(|_| {
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
                    cause_chain(&e)
                ),
            )
        })?;

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
            tokio::spawn(join_upgraded(client, target));
        }
        if let Some(loc) = parts.headers.get(header::LOCATION)
            && let Some(local) =
                rewrite_location(loc, &self.target.origin, &self.target.prefix, &local_host)
        {
            parts.headers.insert(header::LOCATION, local);
        }
        Ok(Response::from_parts(parts, body.boxed()))
    }
}

/// Copies bytes both ways between the upgraded client and target
/// connections until either side closes.
async fn join_upgraded(client: hyper::upgrade::OnUpgrade, target: hyper::upgrade::OnUpgrade) {
    match tokio::try_join!(client, target) {
        Ok((client, target)) => {
            let (mut client, mut target) = (TokioIo::new(client), TokioIo::new(target));
            let _ = tokio::io::copy_bidirectional(&mut client, &mut target).await;
        }
        Err(e) => eprintln!("idtoken: proxy: upgrade failed: {e}"),
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
    let mut resp = Response::new(
        http_body_util::Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}
