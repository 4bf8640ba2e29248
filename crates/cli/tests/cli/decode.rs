//! `idtoken decode`: shows a token without verifying it, as strictly as
//! the verifier parses, and never panics on what it is given.

use idtoken_emulator::Emulator;

use crate::support::{idtoken, run, stderr, stdout};
use crate::{AUD, google_token};

#[tokio::test]
async fn shows_header_claims_dates_and_says_nothing_was_verified() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let token = google_token(&emu, AUD).await;
    let out = run(idtoken(home.path()).args(["decode", &token])).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with("# NOT VERIFIED"), "{text}");
    assert!(text.contains("\"alg\": \"RS256\""), "{text}");
    assert!(text.contains(&format!("\"aud\": \"{AUD}\"")), "{text}");
    assert!(text.contains("# expires"), "{text}");
    assert!(
        text.contains("(in 59m") || text.contains("(in 1h"),
        "{text}"
    );
    assert!(!text.contains(&token));
}

#[tokio::test]
async fn garbage_exits_1_without_a_panic() {
    let home = tempfile::tempdir().expect("home");
    for bad in ["abc", "a.b.c", "e30.e30"] {
        let out = run(idtoken(home.path()).args(["decode", bad])).await;
        assert_eq!(out.status.code(), Some(1), "{bad}: {}", stderr(&out));
        assert!(stderr(&out).contains("not a JWT"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn times_past_the_year_9999_are_shown_without_a_panic() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let home = tempfile::tempdir().expect("home");
    for exp in [
        "10000000000000000000",
        "18446744073709551615",
        "253402300800",
    ] {
        let token = format!(
            "{}.{}.{}",
            b64(r#"{"alg":"RS256"}"#),
            b64(&format!(r#"{{"exp":{exp},"iat":{exp},"nbf":{exp}}}"#)),
            b64("sig")
        );
        let out = run(idtoken(home.path()).args(["decode", &token])).await;
        assert_eq!(out.status.code(), Some(0), "exp {exp}: {}", stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("# expires    after the year 9999"), "{text}");
    }
}

#[tokio::test]
async fn decodes_as_strictly_as_the_verifier_parses() {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let home = tempfile::tempdir().expect("home");
    let twice = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(r#"{"aud":"shown","aud":"used"}"#),
        b64("sig")
    );
    let huge = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(&format!(r#"{{"pad":"{}"}}"#, "x".repeat(20_000))),
        b64("sig")
    );
    for (token, why) in [(twice, "duplicate"), (huge, "limit")] {
        let out = run(idtoken(home.path()).args(["decode", &token])).await;
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("not a JWT") && err.contains(why), "{err}");
    }
}
