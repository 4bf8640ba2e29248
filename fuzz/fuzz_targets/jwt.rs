//! Any text as a compact JWS: the strict parser (`jws::parse`), the claim
//! set read into `Claims` and back, the same token read the verifier's
//! way (its header members and typed claims in slots while parsing) with
//! the same outcome and the same values, and `IdToken::parse`, whose
//! `Debug` must never show the token.
#![no_main]

use libfuzzer_sys::fuzz_target;

use idtoken::IdToken;
use idtoken::fuzzing::{claims_from_map, parse_as_verifier, parse_jws};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let direct = parse_as_verifier(text);
    match parse_jws(text) {
        Err(e) => assert_eq!(direct.map(|_| ()), Err(e), "the two parsers disagree"),
        Ok(jws) => {
            assert!(jws.signing_input_len < text.len());
            let via_map = claims_from_map(jws.claims);
            match (&direct, &via_map) {
                (Ok((header, claims)), Ok(from_map)) => {
                    assert_eq!(claims, from_map, "typed claims read two ways differ");
                    for (name, slot) in header {
                        assert_eq!(slot.as_ref(), jws.header.get(*name), "header `{name}`");
                    }
                }
                (Err(a), Err(b)) => assert_eq!(a, b, "the two readings fail differently"),
                _ => panic!("one reading failed, the other did not: {direct:?} {via_map:?}"),
            }
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
