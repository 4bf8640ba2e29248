//! The proxy's header rewriting (crates/cli/src/cmd/proxy/headers.rs,
//! included as it is): hop-by-hop strip, upgrade, `X-Forwarded-*`.
//!
//! Input: a first line for the proxy's own `Host`, then `name: value`
//! lines (invalid names or values are skipped).
#![no_main]

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/cli/src/cmd/proxy/headers.rs"]
mod headers;

const HOP_BY_HOP: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

fuzz_target!(|data: &[u8]| {
    let mut lines = data.split(|b| *b == b'\n');
    let local = lines
        .next()
        .and_then(|l| HeaderValue::from_bytes(l).ok())
        .unwrap_or(HeaderValue::from_static("127.0.0.1:8080"));
    let mut map = HeaderMap::new();
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            map.append(n, v);
        }
    }
    let named: Vec<HeaderName> = map
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    let upgrade = headers::upgrade_protocol(&map);
    headers::strip_hop_by_hop(&mut map);
    for name in HOP_BY_HOP.iter().copied().filter(|n| *n != "te") {
        assert!(!map.contains_key(name), "{name} survived");
    }
    // `TE: trailers` is the one hop-by-hop header kept (gRPC needs it).
    assert!(map.get_all(header::TE).iter().all(|v| v == "trailers"));
    for name in &named {
        assert!(
            *name == header::TE || !map.contains_key(name),
            "{name} survived"
        );
    }
    if let Some(protocol) = upgrade {
        headers::keep_upgrade(&mut map, protocol.clone());
        assert_eq!(map.get(header::UPGRADE), Some(&protocol));
    }
    for peer in ["127.0.0.1:5000", "[::1]:5000"] {
        let peer: SocketAddr = peer.parse().expect("peer");
        let before = map.get("x-forwarded-for").cloned();
        let mut m = map.clone();
        headers::add_forwarded(&mut m, &headers::forwarded_for(peer), &local);
        assert_eq!(m.get("x-forwarded-host"), Some(&local));
        assert_eq!(m["x-forwarded-proto"], "http");
        let xff = m.get("x-forwarded-for").and_then(|v| v.to_str().ok());
        if before.as_ref().is_none_or(|b| b.to_str().is_ok()) {
            let ip = peer.ip().to_string();
            assert!(xff.is_some_and(|x| x.ends_with(&ip)), "peer not appended");
        }
    }
});
