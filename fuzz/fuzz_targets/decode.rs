//! `idtoken decode`'s text (crates/cli/src/cmd/decode/render.rs, included
//! as it is): any input, hostile `exp`/`iat`/`nbf` included, gives text or
//! an error, never a panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

#[allow(dead_code)]
#[path = "../../crates/cli/src/cmd/decode/render.rs"]
mod render;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    for now in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        idtoken::unix_time(u64::MAX),
    ] {
        if let Ok(text) = render::render(token, now) {
            assert!(text.starts_with("# NOT VERIFIED"));
        }
    }
});
