//! A claim set (JSON text) inside a well-formed token, through every check
//! the verifier makes before it needs a key (`Verifier::check_offline`:
//! header, `Claims`, iss/aud/exp/iat/nbf with skew, lifetime, email, hd)
//! at a few "now"s, and through `IdToken::parse` (exp/iat as times).
//!
//! The first byte picks the kind (bit 0) and the verifier's options
//! (bit 1); the rest is the payload.
#![no_main]

use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use libfuzzer_sys::fuzz_target;

use idtoken::fuzzing::verify_offline;
use idtoken::{IdToken, Kind, Verifier};

const AUDIENCE: &str = "https://svc.example";
const NOWS: [u64; 5] = [0, 1_700_000_000, 1_796_050_000, 253_402_300_799, u64::MAX];

fn verifiers() -> &'static [Verifier; 4] {
    static V: OnceLock<[Verifier; 4]> = OnceLock::new();
    V.get_or_init(|| {
        let plain = |kind| {
            Verifier::builder_for(kind)
                .audience(AUDIENCE)
                .audience("other")
                .skew(Duration::from_secs(30))
        };
        let strict = |kind| {
            plain(kind)
                .allow_email("a@example.com")
                .allow_email_domain("@example.org")
                .hosted_domain("example.org")
                .max_lifetime(Duration::from_secs(3600))
        };
        let build = |b: idtoken::VerifierBuilder| b.build().expect("verifier");
        [
            build(plain(Kind::Google)),
            build(plain(Kind::Iap)),
            build(strict(Kind::Google)),
            build(strict(Kind::Iap)),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, payload)) = data.split_first() else {
        return;
    };
    let verifier = &verifiers()[usize::from(pick & 3)];
    let header = match verifier.kind() {
        Kind::Iap => r#"{"alg":"ES256","kid":"k","typ":"JWT"}"#,
        _ => r#"{"alg":"RS256","kid":"k","typ":"JWT"}"#,
    };
    let token = format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload),
        URL_SAFE_NO_PAD.encode([7u8; 64]),
    );
    for now in NOWS {
        if let Ok(claims) = verify_offline(verifier, &token, now) {
            // What passed really holds.
            let exp = claims.exp.expect("exp checked");
            let iat = claims.iat.expect("iat checked");
            assert!(now < exp.saturating_add(30), "expired token passed");
            assert!(iat <= now.saturating_add(30), "future iat passed");
            assert!(claims.nbf.is_none_or(|nbf| nbf <= now.saturating_add(30)));
            assert!(matches!(claims.aud.as_deref(), Some(AUDIENCE | "other")));
        }
    }
    if let Ok(t) = IdToken::parse(&token) {
        let _ = (t.expires_at(), t.issued_at(), t.lifetime());
    }
});
