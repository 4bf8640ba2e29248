//! `idtoken verify` and `idtoken decode`, run as a user would against an
//! in-process emulator.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idtoken::{Credentials, TokenOptions};
use idtoken_emulator::Emulator;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::*;

const AUD: &str = "https://svc.example";

async fn google_token(emu: &Emulator, aud: &str) -> String {
    Credentials::metadata_server(&emu.metadata_host())
        .fetch_id_token(aud, &TokenOptions::default())
        .await
        .expect("token")
        .as_str()
        .to_owned()
}

mod verify {
    use super::*;

    #[tokio::test]
    async fn prints_the_claims_of_a_valid_token_as_json() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, AUD).await;
        let out = run(idtoken(home.path())
            .args(["verify", &token, "--audience", AUD, "--jwks-url"])
            .arg(emu.jwks_url()))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let claims: Value = serde_json::from_str(&stdout(&out)).expect("JSON claims");
        assert_eq!(claims["aud"], AUD);
        assert_eq!(claims["iss"], "https://accounts.google.com");
    }

    #[tokio::test]
    async fn reads_the_token_from_stdin_and_the_key_set_from_idtoken_jwks_url() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, AUD).await;
        let mut child = idtoken(home.path())
            .env("IDTOKEN_JWKS_URL", emu.jwks_url())
            .args(["verify", "-", "--audience", AUD])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawned");
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(format!("Bearer {token}\n").as_bytes())
            .await
            .expect("written");
        drop(stdin);
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("in time")
            .expect("ran");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains(AUD));
    }

    #[tokio::test]
    async fn a_token_for_another_audience_exits_1_with_the_reason_on_stderr() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, "https://other.example").await;
        let out = run(idtoken(home.path())
            .env("IDTOKEN_JWKS_URL", emu.jwks_url())
            .args(["verify", &token, "--audience", AUD]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(
            err.contains("token refused: wrong audience \"https://other.example\""),
            "{err}"
        );
        assert!(!err.contains(&token), "the token is never echoed");
        assert_eq!(stdout(&out), "");
    }

    #[tokio::test]
    async fn an_expired_token_exits_1_saying_expired() {
        let two_hours_ago = SystemTime::now() - Duration::from_secs(7200);
        let emu = Emulator::builder()
            .clock(Arc::new(move || two_hours_ago))
            .start()
            .await
            .expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, AUD).await;
        let out = run(idtoken(home.path())
            .env("IDTOKEN_JWKS_URL", emu.jwks_url())
            .args(["verify", &token, "--audience", AUD]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("token expired at"),
            "{}",
            stderr(&out)
        );
    }

    #[tokio::test]
    async fn issuer_flag_replaces_the_default_issuers() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, AUD).await;
        let out = run(idtoken(home.path())
            .env("IDTOKEN_JWKS_URL", emu.jwks_url())
            .args(["verify", &token, "--audience", AUD])
            .args(["--issuer", "https://issuer.example"]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("wrong issuer"), "{}", stderr(&out));
    }

    #[tokio::test]
    async fn skew_flag_decides_whether_a_just_expired_token_passes() {
        // Expired 20 s ago: inside the default 30 s skew, outside `--skew 0`.
        let issued = SystemTime::now() - Duration::from_secs(3600 + 20);
        let emu = Emulator::builder()
            .clock(Arc::new(move || issued))
            .start()
            .await
            .expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let token = google_token(&emu, AUD).await;
        let verify = |extra: &[&str]| {
            let mut cmd = idtoken(home.path());
            cmd.env("IDTOKEN_JWKS_URL", emu.jwks_url())
                .args(["verify", &token, "--audience", AUD])
                .args(extra);
            cmd
        };
        let out = run(&mut verify(&[])).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let out = run(&mut verify(&["--skew", "0"])).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    }

    #[tokio::test]
    async fn iap_flag_verifies_iap_assertions_and_checks_the_email() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let aud = "/projects/123/apps/demo";
        let token = emu.iap_token(aud, "bob@example.com").expect("IAP token");
        let verify = |email: &'static str| {
            let mut cmd = idtoken(home.path());
            cmd.env("IDTOKEN_IAP_JWKS_URL", emu.iap_jwks_url()).args([
                "verify",
                &token,
                "--iap",
                "--audience",
                aud,
                "--email",
                email,
            ]);
            cmd
        };
        let out = run(&mut verify("@example.com")).await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("https://cloud.google.com/iap"));
        let out = run(&mut verify("alice@example.com")).await;
        assert_eq!(out.status.code(), Some(1));
        assert!(stderr(&out).contains("not allowed"), "{}", stderr(&out));
    }
}

mod decode {
    use super::*;

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
}
