//! `idtoken proxy`: a local reverse proxy that adds an ID token to every
//! request to its target, so a browser, curl or any local tool can reach a
//! private Cloud Run service; with `--config`, several listeners, each to
//! its own target.
//!
//! - [`Args`] are resolved once, by [`resolve`] in `config`, into one
//!   [`ProxyConfig`] per listener (the flags, or `config_file`'s
//!   `[[listener]]` tables): the target's parts, audience, header, listen
//!   address, timeout, credential flags; no socket or token yet. [`run`]
//!   loads the credentials once and makes a [`Proxy`] of each: its token
//!   source (one cached [`idtoken::IdTokenSource`], refreshed ahead of
//!   expiry by the library), the header that carries it, the connector to
//!   the target and pooled clients.
//! - [`Proxy::handle`] (in `forward`) forwards one request: hop-by-hop headers out (`headers`),
//!   `Host` for the target, `X-Forwarded-*` in, the token in its header;
//!   bodies stream both ways. `Location` headers that point at the target
//!   come back pointing at the proxy.
//! - `listen` accepts connections and shuts down gracefully; `target`
//!   holds each client connection's own connection to the target
//!   ([`target::Upstream`]) and builds the pooled clients.
//! - [`log::Logged`] wraps each response body and writes the access-log line
//!   (method, path, status, duration, bytes; text or JSON) when the body
//!   ends, and counts the request in the listener's `metrics`.
//! - With `--admin-listen`, `admin` serves `/healthz`, `/readyz` and
//!   `/metrics` from a [`metrics::Registry`] of every listener.
//!
//! The token goes only to the target: the client talks to one origin.

use std::future::Future;
use std::sync::Arc;
use std::time::SystemTime;

use http::Uri;
use idtoken::Credentials;

use crate::Failure;
use crate::token_cache::Source;
pub(crate) use config::{Args, Proxies, ProxyConfig, resolve};
use forward::Proxy;
use guard::Guard;
use listen::{bind, serve};
use log::LogStyle;
pub(crate) use log::flush as flush_access_log;
use metrics::{ListenerMetrics, Registry};
use target::https_client;

mod admin;
mod config;
mod config_file;
mod forward;
mod guard;
mod headers;
mod idle;
mod joined;
mod listen;
mod log;
mod metrics;
mod stop;
mod target;
mod timers;

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

The target is reached through HTTPS_PROXY/HTTP_PROXY/ALL_PROXY (CONNECT
tunnels; user:password@ in the proxy URL is sent, never printed) unless
NO_PROXY names it, as token requests are; the metadata server is always
reached directly.

--config FILE serves several targets from one process: one [[listener]]
table each, its keys the flags' names (listen, target, audience, header,
impersonate-service-account, ...); see docs/PROXY.md.

Web pages in your browser can reach 127.0.0.1 too. Requests naming a host
other than a loopback address or localhost (DNS rebinding, or addresses
such as 0.0.0.0 to which browsers send no Fetch Metadata; --allow-host adds
names), prefetches (Sec-Purpose), and requests a browser marks as sent by
another site (Sec-Fetch-Site: cross-site, or a foreign Origin), except
top-level GET/HEAD navigations
(Sec-Fetch-Dest: document; another site's frames, objects and embeds are
refused, so no site can frame your service), are answered 403 before any
token is fetched. curl and other tools are not affected.";

/// Runs the listeners `config` describes until Ctrl-C (or SIGTERM), then lets each
/// finish its requests in flight. The credentials are loaded once and
/// shared; each listener has its own token source (its audience, its
/// impersonation); the admin server, if asked for, reports them all.
pub(crate) async fn run(config: Proxies) -> Result<(), Failure> {
    let Proxies {
        listeners,
        admin,
        log_format,
    } = config;
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = stop.send(true);
    });
    tokio::spawn(heartbeat());
    tokio::spawn(log::flusher());
    // The runtime has one thread: let the task above install the signal
    // handlers before any listener says it is up.
    tokio::task::yield_now().await;

    // Every listener has the same credentials flags (file, cache).
    let Some(first) = listeners.first() else {
        return Ok(());
    };
    // A token cached by `idtoken token`, `curl` or an earlier proxy
    // starts the library's source: it serves the first requests, and the
    // source refreshes it ahead of expiry as it would its own.
    let source = first.creds.source(&first.cache);
    // Missing credentials do not stop the proxy: every request answers
    // 500 with what to run, which a browser user sees.
    let base = first
        .creds
        .load_base_from(source.as_ref())
        .await
        .map_err(|f| {
            eprintln!("idtoken: proxy: {}", f.message);
            f.message
        });
    let mut registry = Registry::default();
    let mut servers = Vec::with_capacity(listeners.len());
    // Text lines name their listener when there are several (JSON lines
    // always do).
    let log = LogStyle {
        format: log_format,
        name_listener: listeners.len() > 1,
    };
    for config in listeners {
        let (proxy, server) = start(config, log, source.as_ref(), &base, stopping.clone()).await?;
        registry.add(
            proxy.local,
            &proxy.target.origin,
            proxy.metrics,
            proxy.tokens.clone(),
        );
        servers.push(server);
    }
    if let Some(admin) = admin {
        admin::start(admin, registry).await?;
    }
    futures_util::future::join_all(servers).await;
    log::flush();
    Ok(())
}

/// Ctrl-C, or on Unix also SIGTERM (what `docker stop`, systemd and
/// `kill` send): either stops the proxy gracefully.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// A timer that is always due within half a second, so that a request's
/// `--upstream-timeout` timer is never the soonest one. tokio wakes its
/// own driver (an eventfd write and one more epoll round) whenever a new
/// timer is due sooner than every pending one, which on an otherwise idle
/// connection was every request's (`scripts/bench-instructions`,
/// docs/BENCHMARKS.md). Costs two wake-ups a second when idle. (The
/// access log's 10 ms wait is sooner, and pays that wake-up once per batch
/// of lines, not per request.)
async fn heartbeat() {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
    }
}

/// Starts one listener: its token source (seeded from the token cache),
/// its clients to the target, its socket, bound and announced. Returns
/// the proxy and its server, which runs until `stopping`.
async fn start(
    config: ProxyConfig,
    log: LogStyle,
    source: Option<&Source>,
    base: &Result<Credentials, String>,
    stopping: tokio::sync::watch::Receiver<bool>,
) -> Result<(Arc<Proxy>, impl Future<Output = ()> + use<>), Failure> {
    let ProxyConfig {
        target,
        audience,
        header,
        listen,
        allowed_hosts,
        upstream_timeout,
        header_timeout,
        http2,
        creds,
        cache,
    } = config;
    let options = creds.token_options();
    let slot = source.and_then(|s| creds.slot(&cache, s, &audience, &options));
    let cached = slot.as_ref().and_then(|s| s.lookup(SystemTime::now()));
    if let Some(e) = &cached
        && e.facts.audience_is_client_id
    {
        super::warn_client_id_audience(&e.token, &audience);
    }
    let loaded = base.clone().map(|b| creds.impersonating(b));
    let tokens = loaded.as_ref().map_err(Clone::clone).map(|c| {
        let src = c.token_source_with(audience.clone(), options.clone());
        if let Some(e) = &cached {
            src.seed(e.token.clone());
        }
        src
    });

    let connector = target::connector(http2)?;
    let client = https_client(connector.clone(), http2, &target.scheme);
    // Upgrades (WebSocket) exist in HTTP/1.1 only: with --http2 they need
    // a client of their own that never negotiates HTTP/2.
    let upgrade_client = if http2 {
        https_client(target::connector(false)?, false, &target.scheme)
    } else {
        client.clone()
    };
    let target_uri = Uri::builder()
        .scheme(target.scheme.clone())
        .authority(target.authority.clone())
        .path_and_query("/")
        .build()
        .map_err(|e| Failure::new(crate::exit::USAGE, format!("bad target: {e}")))?;
    let target_host = target::host_header(&target)?;

    let (listener, local) = bind(listen, "anyone who can reach it acts with your identity").await?;

    let proxy = Arc::new(Proxy {
        target,
        tokens,
        header,
        client,
        connector,
        target_uri,
        target_host,
        upgrade_client,
        timeout: upstream_timeout,
        local,
        guard: Guard::new(&allowed_hosts),
        metrics: ListenerMetrics::new_static(),
        log,
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
                    log::flush();
                    super::warn_if_client_id_audience(&t, src.audience());
                    if let Some(slot) = slot {
                        slot.store(&creds, &t, &format);
                    }
                }
                Err(e) => log::say(format_args!(
                    "idtoken: proxy: cannot get an ID token yet: {e}"
                )),
            }
        });
    }
    eprintln!(
        "idtoken: proxy: http://{local} -> {} (audience {audience}, header {}{})",
        proxy.target.origin,
        proxy.header.name(),
        target::egress_note(&proxy.target_uri)
    );
    println!("http://{local}");
    let served = serve(listener, proxy.clone(), http2, header_timeout, stopping);
    Ok((proxy, served))
}
