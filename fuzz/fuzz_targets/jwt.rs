//! Any text as a compact JWS: the strict parser (`jws::parse`), the claim
//! set read into `Claims` and back, the same claims read the verifier's
//! way (typed claims kept apart while parsing) with the same outcome, and
//! `IdToken::parse`, whose `Debug` must never show the token.
#![no_main]

use libfuzzer_sys::fuzz_target;

use idtoken::IdToken;
use idtoken::fuzzing::{claims_from_map, parse_claims, parse_jws};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let direct = parse_claims(text);
    match parse_jws(text) {
        Err(e) => assert_eq!(direct, Err(e), "the two parsers disagree"),
        Ok(jws) => {
            assert!(jws.signing_input_len < text.len());
            let via_map = claims_from_map(jws.claims);
            assert_eq!(direct, via_map, "typed claims read two ways differ");
            if let Ok(claims) = via_map {
                // Typed claims survive a round trip through JSON unchanged.
                let serde_json::Value::Object(map) = claims.to_json() else {
                    panic!("claims are not an object");
                };
                let again = claims_from_map(map).expect("claims from to_json read back");
                assert_eq!(again, claims);
            }
        }
    }
    if let Ok(token) = IdToken::parse(text) {
        let shown = format!("{token:?} {token}");
        assert!(!shown.contains(token.as_str()), "Debug shows the token");
        let _ = (token.expires_at(), token.issued_at(), token.lifetime());
        assert!(token.authorization_header().is_sensitive());
    }
});
