//! The proxy's metrics: [`ListenerMetrics`], one set per listener, counted
//! on the request path with relaxed atomics (no lock, no allocation), and
//! [`Registry`], every listener's set with its labels and token source,
//! which the admin server renders in Prometheus' text format.
//!
//! The text format is written here by hand: it is a few lines of
//! `name{labels} value`, and the crates that write it (`prometheus`,
//! `prometheus-client`, `metrics-exporter-prometheus`) bring a registry of
//! their own whose labelled families sit behind a lock on the request path,
//! or a recorder and an HTTP server of their own.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use idtoken::IdTokenSource;

/// The methods counted by name; any other counts as `OTHER`.
const METHODS: [Method; 9] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
    Method::OPTIONS,
    Method::CONNECT,
    Method::TRACE,
];
const METHOD_NAMES: [&str; 10] = [
    "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE", "OTHER",
];
/// Status classes: `1xx` to `5xx`, and `other` for the codes 600 to 999
/// that HTTP's syntax allows and no standard uses.
const CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "other"];

/// Upper bounds of the upstream latency buckets, in microseconds
/// (Prometheus' default buckets: 5 ms to 10 s); one more bucket, `+Inf`,
/// takes the rest.
const BUCKETS_US: [u64; 11] = [
    5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000, 5_000_000,
    10_000_000,
];
const BUCKET_LABELS: [&str; 12] = [
    "0.005", "0.01", "0.025", "0.05", "0.1", "0.25", "0.5", "1", "2.5", "5", "10", "+Inf",
];

/// What one listener counts. Made once per listener for the life of the
/// process ([`ListenerMetrics::new_static`]), so that response bodies,
/// connection tasks and tunnels refer to it without reference counting.
#[derive(Default)]
pub(super) struct ListenerMetrics {
    /// Finished requests, by method and status class.
    requests: [[AtomicU64; CLASSES.len()]; METHOD_NAMES.len()],
    /// Time from sending a request to the target to its response headers.
    upstream: Histogram,
    /// Body bytes from clients to the target, tunnels included.
    pub(super) request_bytes: AtomicU64,
    /// Body bytes from the target to clients, tunnels included.
    response_bytes: AtomicU64,
    connections_active: AtomicU64,
    connections_total: AtomicU64,
    upgrades_active: AtomicU64,
    upgrades_total: AtomicU64,
}

/// A fixed-bucket histogram: a count per bucket and the sum, each an
/// atomic; the cumulative counts Prometheus wants are added up when read.
#[derive(Default)]
struct Histogram {
    buckets: [AtomicU64; BUCKET_LABELS.len()],
    sum_us: AtomicU64,
}

impl ListenerMetrics {
    /// A set that lives as long as the process (one per listener, made at
    /// start: the memory is never reclaimed, and need not be).
    pub(super) fn new_static() -> &'static Self {
        Box::leak(Box::default())
    }

    /// Counts one finished request and its response body's bytes.
    pub(super) fn request_done(&self, method: &Method, status: StatusCode, bytes: u64) {
        let m = METHODS
            .iter()
            .position(|known| known == method)
            .unwrap_or(METHODS.len());
        // `StatusCode` holds 100 to 999.
        let class = usize::from(status.as_u16() / 100)
            .saturating_sub(1)
            .min(CLASSES.len() - 1);
        self.requests[m][class].fetch_add(1, Relaxed);
        self.response_bytes.fetch_add(bytes, Relaxed);
    }

    /// Records how long the target took to send response headers.
    pub(super) fn upstream_latency(&self, took: Duration) {
        let us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        let bucket = BUCKETS_US
            .iter()
            .position(|&bound| us <= bound)
            .unwrap_or(BUCKETS_US.len());
        self.upstream.buckets[bucket].fetch_add(1, Relaxed);
        self.upstream.sum_us.fetch_add(us, Relaxed);
    }

    /// Counts an accepted connection until the returned guard drops.
    pub(super) fn connection(&'static self) -> Open {
        self.connections_total.fetch_add(1, Relaxed);
        self.connections_active.fetch_add(1, Relaxed);
        Open(&self.connections_active)
    }

    /// Counts an upgraded connection (a tunnel) until the guard drops.
    pub(super) fn upgrade(&'static self) -> Open {
        self.upgrades_total.fetch_add(1, Relaxed);
        self.upgrades_active.fetch_add(1, Relaxed);
        Open(&self.upgrades_active)
    }

    /// Adds a finished tunnel's bytes each way.
    pub(super) fn tunnelled(&self, to_target: u64, to_client: u64) {
        self.request_bytes.fetch_add(to_target, Relaxed);
        self.response_bytes.fetch_add(to_client, Relaxed);
    }
}

/// Something open (a connection, a tunnel) counted in a gauge until this
/// drops.
pub(super) struct Open(&'static AtomicU64);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

/// A request body on its way to the target, counting its bytes.
pub(super) struct CountedBody {
    inner: Incoming,
    bytes: &'static AtomicU64,
}

impl CountedBody {
    pub(super) fn new(inner: Incoming, metrics: &'static ListenerMetrics) -> Self {
        Self {
            inner,
            bytes: &metrics.request_bytes,
        }
    }
}

impl Body for CountedBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            self.bytes.fetch_add(data.len() as u64, Relaxed);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// One listener as the admin server shows it.
struct Entry {
    /// `ADDR -> ORIGIN`, for `/readyz`.
    name: String,
    /// `listener="ADDR",target="ORIGIN"`, escaped once.
    labels: String,
    metrics: &'static ListenerMetrics,
    /// Its token source, or why it has none.
    tokens: Result<IdTokenSource, String>,
}

/// Every listener's metrics and token source, for the admin server. Built
/// at start, read-only afterwards: several listeners share one admin port.
#[derive(Default)]
pub(super) struct Registry {
    entries: Vec<Entry>,
}

impl Registry {
    /// Adds the listener on `local` forwarding to `target`.
    pub(super) fn add(
        &mut self,
        local: SocketAddr,
        target: &str,
        metrics: &'static ListenerMetrics,
        tokens: Result<IdTokenSource, String>,
    ) {
        let labels = format!(
            "listener=\"{}\",target=\"{}\"",
            escape(&local.to_string()),
            escape(target)
        );
        self.entries.push(Entry {
            name: format!("{local} -> {target}"),
            labels,
            metrics,
            tokens,
        });
    }

    /// Each listener's name (`ADDR -> ORIGIN`) and token source, for
    /// `/readyz`.
    pub(super) fn sources(
        &self,
    ) -> impl Iterator<Item = (&str, &Result<IdTokenSource, String>)> + '_ {
        self.entries.iter().map(|e| (e.name.as_str(), &e.tokens))
    }

    /// Every metric in Prometheus' text format (version 0.0.4). Token
    /// facts come from each source's [`IdTokenSource::stats`]; the token
    /// itself never appears.
    pub(super) fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        let family = |out: &mut String, name: &str, kind: &str, help: &str| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        };

        family(
            &mut out,
            "idtoken_proxy_requests_total",
            "counter",
            "Requests answered (the body sent or the client gone), by method and status class.",
        );
        for e in &self.entries {
            for (m, by_class) in e.metrics.requests.iter().enumerate() {
                for (c, count) in by_class.iter().enumerate() {
                    // Like a labelled family, a series appears once counted.
                    let n = count.load(Relaxed);
                    if n > 0 {
                        let _ = writeln!(
                            out,
                            "idtoken_proxy_requests_total{{{},method=\"{}\",code=\"{}\"}} {n}",
                            e.labels, METHOD_NAMES[m], CLASSES[c]
                        );
                    }
                }
            }
        }

        family(
            &mut out,
            "idtoken_proxy_upstream_duration_seconds",
            "histogram",
            "Time from sending a request to the target to its response headers.",
        );
        for e in &self.entries {
            let h = &e.metrics.upstream;
            let mut cumulative = 0u64;
            for (bucket, le) in h.buckets.iter().zip(BUCKET_LABELS) {
                cumulative = cumulative.saturating_add(bucket.load(Relaxed));
                let _ = writeln!(
                    out,
                    "idtoken_proxy_upstream_duration_seconds_bucket{{{},le=\"{le}\"}} {cumulative}",
                    e.labels
                );
            }
            let sum = Duration::from_micros(h.sum_us.load(Relaxed)).as_secs_f64();
            let _ = writeln!(
                out,
                "idtoken_proxy_upstream_duration_seconds_sum{{{}}} {sum}\nidtoken_proxy_upstream_duration_seconds_count{{{}}} {cumulative}",
                e.labels, e.labels
            );
        }

        // Name, type, help, and where each listener keeps the value.
        type Plain = (
            &'static str,
            &'static str,
            &'static str,
            fn(&ListenerMetrics) -> &AtomicU64,
        );
        let plain: [Plain; 6] = [
            (
                "idtoken_proxy_request_bytes_total",
                "counter",
                "Body bytes from clients to the target, upgraded connections included.",
                |m| &m.request_bytes,
            ),
            (
                "idtoken_proxy_response_bytes_total",
                "counter",
                "Body bytes from the target to clients, upgraded connections included.",
                |m| &m.response_bytes,
            ),
            (
                "idtoken_proxy_connections_active",
                "gauge",
                "Client connections open and serving HTTP (an upgraded one counts as an upgrade).",
                |m| &m.connections_active,
            ),
            (
                "idtoken_proxy_connections_total",
                "counter",
                "Client connections accepted.",
                |m| &m.connections_total,
            ),
            (
                "idtoken_proxy_upgrades_active",
                "gauge",
                "Upgraded connections (WebSocket and others) open as tunnels.",
                |m| &m.upgrades_active,
            ),
            (
                "idtoken_proxy_upgrades_total",
                "counter",
                "Upgraded connections opened.",
                |m| &m.upgrades_total,
            ),
        ];
        for (name, kind, help, value) in plain {
            family(&mut out, name, kind, help);
            for e in &self.entries {
                let _ = writeln!(
                    out,
                    "{name}{{{}}} {}",
                    e.labels,
                    value(e.metrics).load(Relaxed)
                );
            }
        }

        let stats: Vec<_> = self
            .entries
            .iter()
            .filter_map(|e| Some((e.labels.as_str(), e.tokens.as_ref().ok()?.stats())))
            .collect();
        // Each token family: its name, kind, help and value (none: no line).
        type Stat = fn(&idtoken::TokenSourceStats) -> Option<u64>;
        let token: [(&str, &str, &str, Stat); 4] = [
            (
                "idtoken_proxy_token_fetches_total",
                "counter",
                "ID token fetches started (first fetches and refreshes).",
                |s| Some(s.fetches),
            ),
            (
                "idtoken_proxy_token_fetch_failures_total",
                "counter",
                "ID token fetches that failed.",
                |s| Some(s.fetch_failures),
            ),
            (
                "idtoken_proxy_token_refreshes_in_flight",
                "gauge",
                "ID token fetches running now (at most one per token source).",
                |s| Some(u64::from(s.fetch_in_flight)),
            ),
            (
                "idtoken_proxy_token_expires_in_seconds",
                "gauge",
                "Seconds until the cached ID token expires (0 once expired; absent before the first token).",
                |s| s.expires_in.map(|left| left.as_secs()),
            ),
        ];
        for (name, kind, help, value) in token {
            family(&mut out, name, kind, help);
            for (labels, s) in &stats {
                if let Some(v) = value(s) {
                    let _ = writeln!(out, "{name}{{{labels}}} {v}");
                }
            }
        }
        out
    }
}

/// A label value as the text format wants it: `\`, `"` and newlines
/// escaped.
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
