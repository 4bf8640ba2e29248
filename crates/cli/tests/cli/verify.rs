//! `idtoken verify`: claims of a valid token, and each reason to refuse
//! one; tokens on stdin, key sets from flags and environment variables.

use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use idtoken_emulator::Emulator;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use crate::support::{idtoken, run, stderr, stdout};
use crate::{AUD, google_token};

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

/// docs/TROUBLESHOOTING.md quotes `idtoken verify`'s refusals: each quote
/// is what the command says today for the case the guide describes.
#[tokio::test]
async fn the_troubleshooting_guide_quotes_real_refusals() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let guide = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/TROUBLESHOOTING.md"
    ))
    .expect("the guide");
    let run_url = "https://hello-abc123-uc.a.run.app";
    let token = google_token(&emu, run_url).await;
    let files = emu.write_credentials(home.path()).expect("files");
    let user = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", &files.authorized_user)
        .args(["token", "--audience", run_url]))
    .await;
    assert!(user.status.success(), "{}", stderr(&user));
    let user = stdout(&user).trim().to_owned();
    let iap_aud = "/projects/123/global/backendServices/456";
    let iap = emu.iap_token(iap_aud, "alice@example.com").expect("iap");
    let cases: [(&str, &str, &[&str]); 6] = [
        (&token, "https://other-xyz-uc.a.run.app", &[]),
        (&token, "https://hello-abc123-uc.a.run.app/items", &[]),
        (&user, run_url, &[]),
        (&token, run_url, &["--issuer", "https://example.com"]),
        (&iap, iap_aud, &[]),
        (&iap, "/projects/123/apps/my-project", &["--iap"]),
    ];
    for (token, audience, extra) in cases {
        let iap_case = extra.contains(&"--iap");
        let jwks = if iap_case {
            emu.iap_jwks_url()
        } else {
            emu.jwks_url()
        };
        let out = run(idtoken(home.path())
            .args(["verify", token, "--audience", audience, "--jwks-url", &jwks])
            .args(extra))
        .await;
        assert_eq!(out.status.code(), Some(1), "{audience} {extra:?}");
        let err = stderr(&out);
        let reason = err
            .trim()
            .strip_prefix("idtoken: token refused: ")
            .unwrap_or_else(|| panic!("a refusal: {err}"));
        // The guide abbreviates long expectations with "...".
        let quoted = reason
            .split("; expected one of [\"https://hello")
            .next()
            .unwrap_or(reason);
        assert!(
            guide.contains(quoted),
            "docs/TROUBLESHOOTING.md does not quote `{reason}`"
        );
    }
}
