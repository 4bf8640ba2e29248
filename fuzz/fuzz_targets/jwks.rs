//! A JWK-set answer body (Google's RS256 set, IAP's ES256 set) through the
//! key cache's parser: usable keys are RSA or uncompressed P-256 points.
//!
//! The library reads no PEM maps (Google's `v1/certs`, IAP's
//! `public_key`): its verifier takes JWK sets only, so there is no PEM-map
//! parser to fuzz; the emulator serves PEM maps but only writes them.
#![no_main]

use libfuzzer_sys::fuzz_target;

use idtoken::fuzzing::parse_key_set;

fuzz_target!(|data: &[u8]| {
    if let Ok(keys) = parse_key_set(data) {
        for (kind, len) in keys.values() {
            match *kind {
                // The SubjectPublicKeyInfo of an uncompressed P-256 point.
                "P-256" => assert_eq!(*len, 91),
                "RSA" => {}
                other => panic!("unexpected key kind {other}"),
            }
        }
    }
});
