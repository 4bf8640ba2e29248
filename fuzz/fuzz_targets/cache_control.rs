//! A key-set answer's `Cache-Control` and `Age` headers (one value per
//! line: Cache-Control, Age, then more Cache-Control values) through the
//! key cache's lifetime parsing and the refresh/expiry times it derives,
//! at the epoch, today and the end of the year 9999.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use http::{HeaderMap, HeaderValue, header};
use libfuzzer_sys::fuzz_target;

use idtoken::fuzzing::key_set_lifetime;

fuzz_target!(|data: &[u8]| {
    let mut headers = HeaderMap::new();
    for (i, line) in data.split(|b| *b == b'\n').enumerate() {
        let Ok(value) = HeaderValue::from_bytes(line) else {
            continue;
        };
        let name = if i == 1 {
            header::AGE
        } else {
            header::CACHE_CONTROL
        };
        headers.append(name, value);
    }
    let latest = idtoken::unix_time(u64::MAX);
    for now in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        latest,
    ] {
        let (_, refresh_at, expires_at) = key_set_lifetime(&headers, now);
        assert!(now <= refresh_at && refresh_at <= expires_at);
        let held = expires_at.duration_since(now).unwrap_or_default();
        // Within 30 s and a day, unless the year 9999 cut it short.
        assert!(held <= Duration::from_secs(24 * 3600));
        assert!(held >= Duration::from_secs(30) || expires_at == latest);
    }
});
