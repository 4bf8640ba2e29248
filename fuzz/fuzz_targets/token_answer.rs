//! Token endpoint answers: an access token with `expires_in` (OAuth2, STS,
//! metadata) and an ID token in a JSON field (IAM `generateIdToken`,
//! OAuth2 `id_token`). Hostile numbers give far times, never a panic.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use libfuzzer_sys::fuzz_target;

use idtoken::fuzzing::{access_token_answer, id_token_answer};

fuzz_target!(|data: &[u8]| {
    for now in [
        UNIX_EPOCH,
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        idtoken::unix_time(u64::MAX),
    ] {
        if let Ok((expires_at, lifetime)) = access_token_answer(data, now) {
            assert!(expires_at >= now);
            assert!(expires_at.duration_since(now).unwrap_or_default() <= lifetime);
        }
    }
    for field in ["token", "id_token"] {
        if let Ok(token) = id_token_answer(data, field) {
            let _ = (token.expires_at(), token.lifetime(), token.claims());
        }
    }
});
