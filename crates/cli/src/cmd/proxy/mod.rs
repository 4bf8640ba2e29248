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
//! - [`Proxy::handle`] (in `forward`) forwards one request: hop-by-hop headers out (`headers`),
//!   `Host` for the target, `X-Forwarded-*` in, the token in its header;
//!   bodies stream both ways. `Location` headers that point at the target
//!   come back pointing at the proxy.
//! - `listen` accepts connections and shuts down gracefully; `target`
//!   builds the pooled clients to the target.
//! - [`log::Logged`] wraps each response body and writes the access-log line
//!   (method, path, status, duration, bytes) when the body ends.
//!
//! The token goes only to the target: the client talks to one origin.

use std::sync::Arc;
use std::time::SystemTime;

use crate::Failure;
pub(crate) use config::{Args, ProxyConfig, resolve};
use forward::Proxy;
use guard::Guard;
use listen::serve;
use target::https_client;

mod config;
mod forward;
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
    // starts the library's source: it serves the first requests, and the
    // source refreshes it ahead of expiry as it would its own.
    let options = creds.token_options();
    let source = creds.source(&cache);
    let slot = source
        .as_ref()
        .and_then(|s| creds.slot(&cache, s, &audience, &options));
    let cached = slot.as_ref().and_then(|s| s.lookup(SystemTime::now()));
    if let Some(e) = &cached
        && e.facts.audience_is_client_id
    {
        super::warn_client_id_audience(&e.token, &audience);
    }
    // Missing credentials do not stop the proxy: every request answers
    // 500 with what to run, which a browser user sees.
    let loaded = creds.load_from(source.as_ref()).await;
    let tokens = match &loaded {
        Ok(c) => {
            let src = c.token_source_with(audience.clone(), options.clone());
            if let Some(e) = &cached {
                src.seed(e.token.clone());
            }
            Ok(src)
        }
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
    });
    if let (Ok(src), Ok(creds), None) = (&proxy.tokens, loaded, &cached) {
        // Without a cached token, mint the first now: credential problems
        // show at start, and the first request does not wait. It goes into
        // the token cache.
        let src = src.clone();
        let format = crate::token_cache::format_name(options.format);
        tokio::spawn(async move {
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
        "idtoken: proxy: http://{local} -> {} (audience {audience}, header {}{})",
        proxy.target.origin,
        proxy.header.name(),
        target::egress_note(&proxy.target)
    );
    println!("http://{local}");

    serve(listener, proxy, http2).await;
    Ok(())
}
