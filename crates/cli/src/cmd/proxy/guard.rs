//! Which requests may act with the user's identity. A web page in the
//! user's browser can reach the proxy on 127.0.0.1 too, two ways:
//!
//! - DNS rebinding: the page's own name starts resolving to 127.0.0.1, so
//!   its scripts talk to the proxy as their own origin and read the
//!   answers. Their requests carry that name in `Host`. Only loopback
//!   addresses, `localhost` names and names given with `--allow-host` are
//!   accepted; an attacker cannot rebind an IP literal. Other addresses
//!   (0.0.0.0, `[::ffff:127.0.0.1]`, a LAN address) reach a proxy on
//!   loopback too, but browsers send no Fetch Metadata there, so they are
//!   refused unless named with `--allow-host`.
//! - Prefetches (`Sec-Purpose: prefetch`) are refused: another site can
//!   trigger them, and they look like the user's own navigations.
//! - Cross-site requests (form posts, `fetch` with `no-cors`): the page
//!   cannot read the answer, but the request acts with the user's
//!   identity. Browsers label them (`Sec-Fetch-Site: cross-site`, or an
//!   `Origin` of another site). They are refused, except top-level GET and
//!   HEAD navigations, as `SameSite=Lax` cookies allow. Top-level means
//!   `Sec-Fetch-Dest: document`: frames, objects and embeds navigate too,
//!   and admitting them would let any site frame the service (clickjacking).
//!
//! curl, gRPC clients and other tools send no such labels and pass. The
//! checks run before any token is fetched.

use std::net::IpAddr;

use http::Method;
use http::header::{HeaderMap, HeaderValue};

/// The request headers the guard reads (the first value of each), found
/// in one pass over the request's headers: a lookup by name hashes the
/// name, and the guard needs seven.
#[derive(Default)]
struct Labels<'a> {
    host: Option<&'a HeaderValue>,
    origin: Option<&'a HeaderValue>,
    sec_purpose: Option<&'a HeaderValue>,
    purpose: Option<&'a HeaderValue>,
    sec_fetch_mode: Option<&'a HeaderValue>,
    sec_fetch_dest: Option<&'a HeaderValue>,
    sec_fetch_site: Option<&'a HeaderValue>,
}

impl<'a> Labels<'a> {
    fn of(headers: &'a HeaderMap) -> Self {
        let mut labels = Self::default();
        for (name, value) in headers {
            let slot = match name.as_str() {
                "host" => &mut labels.host,
                "origin" => &mut labels.origin,
                "sec-purpose" => &mut labels.sec_purpose,
                "purpose" => &mut labels.purpose,
                "sec-fetch-mode" => &mut labels.sec_fetch_mode,
                "sec-fetch-dest" => &mut labels.sec_fetch_dest,
                "sec-fetch-site" => &mut labels.sec_fetch_site,
                _ => continue,
            };
            // The first value, as `HeaderMap::get` gives it.
            slot.get_or_insert(value);
        }
        labels
    }
}

/// The host names, besides loopback addresses and `localhost`, that
/// requests may name in `Host`.
#[derive(Debug, Default)]
pub(super) struct Guard {
    allowed_hosts: Vec<String>,
}

impl Guard {
    /// A guard that also accepts these host names (`--allow-host`).
    pub(super) fn new(allowed_hosts: &[String]) -> Self {
        Self {
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
        }
    }

    /// `Ok` when the request may go on; otherwise why not, for the 403.
    /// `authority` is the request URI's (HTTP/2 names the host there).
    pub(super) fn check(
        &self,
        method: &Method,
        headers: &HeaderMap,
        authority: Option<&str>,
    ) -> Result<(), String> {
        let labels = Labels::of(headers);
        let host = labels.host.and_then(|v| v.to_str().ok()).or(authority);
        // Browsers always send a host; a request without one is a tool's.
        if let Some(host) = host {
            let name = host_name(host);
            // The usual name first, compared rather than parsed (this runs
            // for every request).
            let allowed = name == "127.0.0.1"
                || self.local_name(name)
                || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
            if !allowed {
                return Err(if name.parse::<IpAddr>().is_ok() {
                    format!(
                        "refused: the request names the address {name}. Browsers send no Fetch Metadata to it (only to loopback and localhost), so the proxy cannot tell another site's page from you. Use http://127.0.0.1:PORT or http://localhost:PORT, or pass --allow-host {name} if you must reach it by that address."
                    )
                } else {
                    format!(
                        "refused: the request names the host {name:?}, which is neither a loopback address nor localhost. A web page may be using DNS rebinding to act with your identity. Use http://127.0.0.1:PORT or http://localhost:PORT, or pass --allow-host {name} if that name is yours."
                    )
                });
            }
        }

        // A prefetch (speculation rules, <link rel=prefetch>) can come
        // from any site, arrives as a navigation the user never saw, and
        // is only ever an optimisation: refuse it.
        let prefetch = |value: Option<&HeaderValue>| {
            value
                .and_then(|v| v.to_str().ok())
                .is_some_and(|v| v.contains("prefetch"))
        };
        if prefetch(labels.sec_purpose) || prefetch(labels.purpose) {
            return Err(
                "refused: a prefetch (Sec-Purpose) would act with your identity without you seeing it; only requests you make go through.".to_owned(),
            );
        }

        // Top-level only: frames, objects and embeds navigate too.
        let top_level_navigation = matches!(*method, Method::GET | Method::HEAD)
            && labels
                .sec_fetch_mode
                .is_some_and(|v| v.as_bytes() == b"navigate")
            && labels
                .sec_fetch_dest
                .is_some_and(|v| v.as_bytes() == b"document");
        if top_level_navigation {
            return Ok(());
        }
        match labels.sec_fetch_site.map(|v| v.as_bytes()) {
            Some(b"cross-site") => Err(
                "refused: a page on another site sent this request (Sec-Fetch-Site: cross-site) and it would act with your identity. Only top-level GET and HEAD navigations (Sec-Fetch-Dest: document) from other sites are let through; frames, objects and embeds are not.".to_owned(),
            ),
            // same-origin, same-site, none (typed in the address bar).
            Some(_) => Ok(()),
            // Browsers without Fetch Metadata still send Origin on
            // cross-origin requests and on form posts.
            None => match labels.origin.and_then(|v| v.to_str().ok()) {
                None => Ok(()),
                Some(origin) if self.local_origin(origin, host) => Ok(()),
                Some(origin) => Err(format!(
                    "refused: a page from {origin:?} sent this request and it would act with your identity. Only pages served from this machine (localhost, a loopback address) may use the proxy."
                )),
            },
        }
    }

    /// `localhost`, `*.localhost` (browsers resolve both to loopback
    /// themselves), or a name given with `--allow-host`.
    fn local_name(&self, name: &str) -> bool {
        // Case-insensitive without allocating: this runs for every request.
        let b = name.as_bytes();
        name.eq_ignore_ascii_case("localhost")
            || (b.len() > 10 && b[b.len() - 10..].eq_ignore_ascii_case(b".localhost"))
            || self
                .allowed_hosts
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name))
    }

    /// Whether a page at `origin` is one of this machine's: a local name,
    /// a loopback address, or the host the request itself names.
    fn local_origin(&self, origin: &str, request_host: Option<&str>) -> bool {
        let Some((_, rest)) = origin.split_once("://") else {
            return false; // "null": sandboxed frames, files
        };
        let name = host_name(rest);
        self.local_name(name)
            || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
            || request_host.is_some_and(|h| host_name(h).eq_ignore_ascii_case(name))
    }
}

/// The name or address in `host[:port]`, without brackets around IPv6.
fn host_name(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    // The port's digits from the end, then its colon: byte by byte, as
    // this runs for every request (`rsplit_once` costs three times more).
    let b = host.as_bytes();
    let digits = b.iter().rev().take_while(|c| c.is_ascii_digit()).count();
    match b.len().checked_sub(digits + 1) {
        Some(colon) if b[colon] == b':' => &host[..colon],
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn host_names_lose_their_port_and_ipv6_brackets() {
        assert_eq!(host_name("localhost:8080"), "localhost");
        assert_eq!(host_name("[::1]:8080"), "::1");
        assert_eq!(host_name("[::1]"), "::1");
        assert_eq!(host_name("127.0.0.1"), "127.0.0.1");
        assert_eq!(host_name("example.com"), "example.com");
        assert_eq!(host_name("localhost:"), "localhost");
        assert_eq!(host_name("8080"), "8080");
        assert_eq!(host_name(":8080"), "");
        assert_eq!(host_name("a:b:80"), "a:b");
        assert_eq!(host_name("a:b"), "a:b");
    }

    #[test]
    fn ip_literals_and_localhost_names_pass_other_names_do_not() {
        let g = Guard::new(&["dev.internal".to_owned()]);
        for ok in [
            "127.0.0.1:8080",
            "[::1]:1",
            "localhost:80",
            "App.LocalHost:8080",
            "DEV.internal:8080",
        ] {
            let h = headers(&[("host", ok)]);
            assert!(g.check(&Method::POST, &h, None).is_ok(), "{ok}");
        }
        let h = headers(&[("host", "evil.example:8080")]);
        let why = g.check(&Method::GET, &h, None).expect_err("rebinding");
        assert!(why.contains("--allow-host evil.example"), "{why}");
        assert!(
            g.check(&Method::GET, &HeaderMap::new(), Some("evil.example"))
                .is_err()
        );
    }

    #[test]
    fn cross_site_requests_are_refused_except_safe_navigations() {
        let g = Guard::default();
        let post = headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "no-cors"),
        ]);
        assert!(g.check(&Method::POST, &post, None).is_err());
        let nav = headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ]);
        assert!(g.check(&Method::GET, &nav, None).is_ok());
        assert!(
            g.check(&Method::POST, &nav, None).is_err(),
            "a form post navigates too"
        );
        for site in ["same-origin", "same-site", "none"] {
            let h = headers(&[
                ("host", "localhost:8080"),
                ("sec-fetch-site", site),
                ("sec-fetch-mode", "cors"),
            ]);
            assert!(g.check(&Method::DELETE, &h, None).is_ok(), "{site}");
        }
    }

    #[test]
    fn addresses_browsers_send_no_fetch_metadata_to_are_refused_unless_allowed() {
        // Chromium marks requests to loopback with Fetch Metadata, but not
        // to 0.0.0.0, to IPv4-mapped loopback or to other addresses: a
        // page could frame the service or load images through those.
        let g = Guard::default();
        // `Host` values, not listeners: what a browser sends for a page
        // at the unspecified address (no port) and the like.
        let unspecified: &'static str = std::net::Ipv4Addr::UNSPECIFIED.to_string().leak();
        for bad in [
            unspecified,
            "[::ffff:127.0.0.1]:8080",
            "[::]:8080",
            "192.168.1.5:8080",
        ] {
            let h = headers(&[("host", bad)]);
            let why = g.check(&Method::GET, &h, None).expect_err(bad);
            assert!(why.contains("Fetch Metadata"), "{why}");
        }
        for ok in [
            "127.0.0.1:8080",
            "127.1.2.3:80",
            "[::1]:8080",
            "localhost:1",
        ] {
            let h = headers(&[("host", ok)]);
            assert!(g.check(&Method::GET, &h, None).is_ok(), "{ok}");
        }
        let lan = Guard::new(&["192.168.1.5".to_owned()]);
        let h = headers(&[("host", "192.168.1.5:8080")]);
        assert!(lan.check(&Method::GET, &h, None).is_ok(), "allowed by name");
    }

    #[test]
    fn prefetches_are_refused_wherever_they_come_from() {
        let g = Guard::default();
        for (name, value) in [
            ("sec-purpose", "prefetch"),
            ("sec-purpose", "prefetch;prerender"),
            ("purpose", "prefetch"),
        ] {
            let h = headers(&[
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "none"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", "document"),
                (name, value),
            ]);
            let why = g.check(&Method::GET, &h, None).expect_err(value);
            assert!(why.contains("prefetch"), "{why}");
        }
    }

    #[test]
    fn cross_site_frames_and_embeds_are_refused_only_top_level_documents_pass() {
        let g = Guard::default();
        // Frames, objects and embeds are navigations too; letting them
        // through lets any site frame the user's service (clickjacking).
        for dest in ["iframe", "frame", "object", "embed"] {
            let h = headers(&[
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "cross-site"),
                ("sec-fetch-mode", "navigate"),
                ("sec-fetch-dest", dest),
            ]);
            let why = g.check(&Method::GET, &h, None).expect_err(dest);
            assert!(why.contains("top-level"), "{why}");
        }
        let top = headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "cross-site"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "document"),
        ]);
        assert!(g.check(&Method::GET, &top, None).is_ok());
        // A frame of the proxy's own pages is the user's own doing.
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-dest", "iframe"),
        ]);
        assert!(g.check(&Method::GET, &own, None).is_ok());
    }

    #[test]
    fn a_repeated_label_counts_by_its_first_value() {
        let g = Guard::default();
        let mut h = headers(&[("host", "127.0.0.1:8080")]);
        h.append("sec-fetch-site", HeaderValue::from_static("cross-site"));
        h.append("sec-fetch-site", HeaderValue::from_static("same-origin"));
        assert!(g.check(&Method::POST, &h, None).is_err());
        let mut h = headers(&[("sec-fetch-site", "same-origin")]);
        h.append("host", HeaderValue::from_static("evil.example"));
        h.append("host", HeaderValue::from_static("127.0.0.1:8080"));
        assert!(g.check(&Method::GET, &h, None).is_err());
    }

    #[test]
    fn without_fetch_metadata_the_origin_decides() {
        let g = Guard::new(&["192.168.1.5".to_owned()]);
        for ok in [
            "http://localhost:3000",
            "http://127.0.0.1:5173",
            "http://[::1]:8080",
            "http://192.168.1.5:8080",
        ] {
            let h = headers(&[("host", "192.168.1.5:8080"), ("origin", ok)]);
            assert!(g.check(&Method::POST, &h, None).is_ok(), "{ok}");
        }
        for bad in ["https://evil.example", "null", "http://203.0.113.9"] {
            let h = headers(&[("host", "127.0.0.1:8080"), ("origin", bad)]);
            assert!(g.check(&Method::POST, &h, None).is_err(), "{bad}");
        }
    }
}
