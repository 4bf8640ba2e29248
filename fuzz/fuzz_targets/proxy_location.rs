//! The proxy's `Location` rewriting (crates/cli/src/cmd/proxy/headers.rs,
//! included as it is): a redirect is pointed back at the proxy only when it
//! is under the target's origin and path prefix, never for another host
//! that merely starts the same way.
//!
//! Input lines: Location, target origin, path prefix, the proxy's `Host`.
#![no_main]

use http::HeaderValue;
use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/cli/src/cmd/proxy/headers.rs"]
mod headers;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let (Some(loc), Some(origin), Some(prefix), Some(host)) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return;
    };
    let (Ok(loc_value), Ok(host_value)) = (HeaderValue::from_str(loc), HeaderValue::from_str(host))
    else {
        return;
    };
    let Some(out) = headers::rewrite_location(&loc_value, origin, prefix, &host_value) else {
        return;
    };
    let out = out.to_str().expect("rewritten Location is text");
    // Only under the target: its origin, then the end or a path, query or
    // fragment; then the prefix, then the same.
    let head = loc
        .get(..origin.len())
        .expect("Location starts with the origin");
    assert!(head.eq_ignore_ascii_case(origin));
    let under = |rest: &str| rest.is_empty() || rest.starts_with(['/', '?', '#']);
    let rest = &loc[origin.len()..];
    assert!(
        under(rest),
        "another host rewritten: {loc:?} for {origin:?}"
    );
    let tail = rest.strip_prefix(prefix).expect("under the prefix");
    assert!(under(tail));
    assert_eq!(out, format!("http://{host}{tail}"));
});
