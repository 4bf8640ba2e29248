//! Header rewriting between client and target: hop-by-hop headers out,
//! `X-Forwarded-*` in.

use std::net::SocketAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// The headers that concern one connection only, as names that need no
/// parsing per request. A `static`, not a `const`: each use of a `const`
/// array builds a copy and drops its names (about 500 instructions a
/// request, docs/BENCHMARKS.md).
static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];
/// [`HOP_BY_HOP`]'s `Connection` and `TE`, as bits of a set of its indexes.
const CONNECTION_BIT: u16 = 1 << 0;
const TE_BIT: u16 = 1 << 5;
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Removes the headers that concern one connection only (RFC 9110 7.6.1):
/// those that `Connection` names, then the fixed list.
pub(super) fn strip_hop_by_hop(headers: &mut HeaderMap) {
    // One pass over the names finds which are there: most messages carry
    // none or only `Connection`, and a removal per fixed name costs a hash
    // each, on every request and every response (docs/BENCHMARKS.md).
    let mut present = 0u16;
    for name in headers.keys() {
        if let Some(i) = hop_by_hop_index(name) {
            present |= 1 << i;
        }
    }
    if present == 0 {
        return;
    }
    // `TE: trailers` is end-to-end in practice: gRPC over HTTP/2 needs it.
    let trailers = present & TE_BIT != 0
        && headers
            .get_all(header::TE)
            .iter()
            .flat_map(list_tokens)
            .any(|t| t.eq_ignore_ascii_case(b"trailers"));
    // `keep-alive` and `close`, what `Connection` says most often, name no
    // header to remove beyond the fixed list: then nothing is collected.
    let names_more =
        |t: &&[u8]| !t.eq_ignore_ascii_case(b"keep-alive") && !t.eq_ignore_ascii_case(b"close");
    let plain = |v: &HeaderValue| {
        let v = v.as_bytes();
        v.eq_ignore_ascii_case(b"keep-alive") || v.eq_ignore_ascii_case(b"close")
    };
    if present & CONNECTION_BIT != 0
        && !headers.get_all(header::CONNECTION).iter().all(plain)
        && connection_tokens(headers).any(|t| names_more(&t))
    {
        let named: Vec<HeaderName> = connection_tokens(headers)
            .filter(names_more)
            .filter_map(|name| HeaderName::from_bytes(name).ok())
            .filter(|name| !HOP_BY_HOP.contains(name))
            .collect();
        for name in named {
            headers.remove(name);
        }
    }
    for (i, name) in HOP_BY_HOP.iter().enumerate() {
        if present & (1 << i) != 0 {
            headers.remove(name);
        }
    }
    if trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
}

/// `name`'s index in [`HOP_BY_HOP`], if it is there: a match on the
/// name's text, which is mostly length comparisons, where comparing with
/// each of the nine names was about 600 instructions a message.
fn hop_by_hop_index(name: &HeaderName) -> Option<usize> {
    Some(match name.as_str() {
        "connection" => 0,
        "keep-alive" => 1,
        "proxy-connection" => 2,
        "proxy-authenticate" => 3,
        "proxy-authorization" => 4,
        "te" => 5,
        "trailer" => 6,
        "transfer-encoding" => 7,
        "upgrade" => 8,
        _ => return None,
    })
}

/// The options `Connection` lists, trimmed.
fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = &[u8]> {
    headers
        .get_all(header::CONNECTION)
        .iter()
        .flat_map(list_tokens)
}

/// The comma-separated items of a header value, trimmed, as bytes: a
/// non-ASCII byte in one item (which `to_str` would refuse for the whole
/// value) leaves the others readable.
fn list_tokens(value: &HeaderValue) -> impl Iterator<Item = &[u8]> {
    value
        .as_bytes()
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
}

/// The protocol asked for or agreed to, when `Connection` names `upgrade`
/// and `Upgrade` says which.
pub(super) fn upgrade_protocol(headers: &HeaderMap) -> Option<HeaderValue> {
    let asked = connection_tokens(headers).any(|t| t.eq_ignore_ascii_case(b"upgrade"));
    if asked {
        headers.get(header::UPGRADE).cloned()
    } else {
        None
    }
}

/// Puts back the two headers an upgrade needs after the hop-by-hop strip.
pub(super) fn keep_upgrade(headers: &mut HeaderMap, protocol: HeaderValue) {
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, protocol);
}

/// The client's address as `X-Forwarded-For` gives it, made once per
/// connection rather than formatted for each of its requests.
pub(super) fn forwarded_for(peer: SocketAddr) -> HeaderValue {
    HeaderValue::from_str(&peer.ip().to_string())
        .unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// `X-Forwarded-For` (appended to, `peer` from [`forwarded_for`]),
/// `-Proto` and `-Host`.
pub(super) fn add_forwarded(headers: &mut HeaderMap, peer: &HeaderValue, local_host: &HeaderValue) {
    let xff = match headers.get(&X_FORWARDED_FOR).map(|v| v.as_bytes()) {
        Some(prev) => {
            let mut both = Vec::with_capacity(prev.len() + 2 + peer.len());
            both.extend_from_slice(prev);
            both.extend_from_slice(b", ");
            both.extend_from_slice(peer.as_bytes());
            HeaderValue::from_bytes(&both).ok()
        }
        None => Some(peer.clone()),
    };
    if let Some(v) = xff {
        headers.insert(X_FORWARDED_FOR, v);
    }
    headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));
    headers.insert(X_FORWARDED_HOST, local_host.clone());
}

/// `loc` rewritten to the proxy (`http://local_host`) when it points at
/// the target `origin` and under its path `prefix`; `None` leaves it alone.
pub(super) fn rewrite_location(
    loc: &HeaderValue,
    origin: &str,
    prefix: &str,
    local_host: &HeaderValue,
) -> Option<HeaderValue> {
    let loc = loc.to_str().ok()?;
    let head = loc.get(..origin.len())?;
    if !head.eq_ignore_ascii_case(origin) {
        return None;
    }
    let under = |rest: &str| rest.is_empty() || rest.starts_with(['/', '?', '#']);
    let rest = loc.get(origin.len()..)?;
    if !under(rest) {
        return None; // another host that shares a prefix: target.example.evil
    }
    let rest = rest.strip_prefix(prefix)?;
    if !under(rest) {
        return None; // /basement is not under /base
    }
    let host = local_host.to_str().ok()?;
    HeaderValue::from_str(&format!("http://{host}{rest}")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_are_removed() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, x-secret"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("te", HeaderValue::from_static("gzip"));
        h.insert("proxy-authorization", HeaderValue::from_static("Basic x"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn a_non_ascii_byte_in_connection_does_not_hide_the_names_beside_it() {
        let mut h = HeaderMap::new();
        h.insert(
            "connection",
            HeaderValue::from_bytes(b"x-secret, caf\xe9").expect("obs-text is allowed"),
        );
        h.insert("x-secret", HeaderValue::from_static("1"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn the_connection_and_te_bits_index_those_names() {
        assert_eq!(1 << 0, CONNECTION_BIT);
        assert_eq!(HOP_BY_HOP[0], header::CONNECTION);
        assert_eq!(1 << 5, TE_BIT);
        assert_eq!(HOP_BY_HOP[5], header::TE);
    }

    #[test]
    fn each_hop_by_hop_name_is_found_at_its_index_and_no_other_name_is() {
        for (i, name) in HOP_BY_HOP.iter().enumerate() {
            assert_eq!(hop_by_hop_index(name), Some(i), "{name}");
        }
        for other in [
            "host",
            "x-forwarded-for",
            "trailers",
            "connections",
            "upgrade-insecure-requests",
        ] {
            let name = HeaderName::from_static(other);
            assert_eq!(hop_by_hop_index(&name), None, "{other}");
        }
    }

    #[test]
    fn te_trailers_stays_and_keep_alive_alone_removes_only_connection() {
        let mut h = HeaderMap::new();
        h.insert("te", HeaderValue::from_static("trailers, gzip"));
        h.insert("connection", HeaderValue::from_static("Keep-Alive"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["te"], "trailers");
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn forwarded_for_appends_the_peer() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("10.0.0.1"));
        let peer = forwarded_for("127.0.0.1:5000".parse().expect("addr"));
        add_forwarded(&mut h, &peer, &HeaderValue::from_static("localhost:8080"));
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-host"], "localhost:8080");
        assert_eq!(h["x-forwarded-proto"], "http");
    }

    #[test]
    fn upgrade_needs_connection_to_name_it() {
        let mut h = HeaderMap::new();
        h.insert("upgrade", HeaderValue::from_static("websocket"));
        assert!(upgrade_protocol(&h).is_none());
        h.insert(
            "connection",
            HeaderValue::from_static("keep-alive, Upgrade"),
        );
        assert_eq!(upgrade_protocol(&h).expect("asked"), "websocket");
    }

    #[test]
    fn location_is_rewritten_only_under_the_target() {
        let local = HeaderValue::from_static("127.0.0.1:8080");
        let at = |loc: &'static str, prefix: &str| {
            rewrite_location(
                &HeaderValue::from_static(loc),
                "https://svc.run.app",
                prefix,
                &local,
            )
            .map(|v| v.to_str().expect("ascii").to_owned())
        };
        assert_eq!(
            at("https://SVC.run.app/x?y=1", "").as_deref(),
            Some("http://127.0.0.1:8080/x?y=1")
        );
        assert_eq!(
            at("https://svc.run.app", "").as_deref(),
            Some("http://127.0.0.1:8080")
        );
        assert_eq!(
            at("https://svc.run.app/base/x", "/base").as_deref(),
            Some("http://127.0.0.1:8080/x")
        );
        assert_eq!(at("https://svc.run.app/basement", "/base"), None);
        assert_eq!(at("https://svc.run.app/other", "/base"), None);
        assert_eq!(at("https://svc.run.app.evil/x", ""), None);
        assert_eq!(at("https://other.example/x", ""), None);
        assert_eq!(at("/relative", ""), None);
    }
}
