//! The log on stderr: -v/-vv/-q, IDTOKEN_LOG and RUST_LOG, on every
//! command; and never a token in it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idtoken_emulator::Emulator;
use serde_json::json;

use crate::support::{idtoken, run, stderr, stdout};

/// `idtoken token` against the emulator's metadata server, with `args`
/// before the subcommand and `env` set.
async fn token_with(args: &[&str], env: &[(&str, &str)]) -> (String, String) {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let mut cmd = idtoken(home.path());
    cmd.env("GCE_METADATA_HOST", emu.metadata_host())
        .args(args)
        .args(["token", "--audience", "https://svc.example"]);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = run(&mut cmd).await;
    assert!(out.status.success(), "{}", stderr(&out));
    (stdout(&out).trim().to_owned(), stderr(&out))
}

#[tokio::test]
async fn debug_shows_each_request_to_an_identity_endpoint_and_never_the_token() {
    for (args, env) in [
        (&["-vv"][..], &[][..]),
        (&[][..], &[("RUST_LOG", "debug")][..]),
        (&[][..], &[("IDTOKEN_LOG", "idtoken=debug")][..]),
    ] {
        let (token, log) = token_with(args, env).await;
        assert!(log.contains("answered"), "{args:?} {env:?}: {log}");
        assert!(log.contains("/computeMetadata/v1/"), "{log}");
        assert!(!log.contains(&token), "the log never shows the token");
        assert!(
            !log.contains("audience=https"),
            "URLs are logged without their query"
        );
    }
}

#[tokio::test]
async fn by_default_and_with_quiet_requests_are_not_logged() {
    for args in [&[][..], &["-q"][..]] {
        let (_, log) = token_with(args, &[("RUST_LOG", "")]).await;
        assert!(!log.contains("answered"), "{args:?}: {log}");
    }
}

#[tokio::test]
async fn quiet_hides_warnings_but_not_the_error() {
    let home = tempfile::tempdir().expect("home");
    // A key set URL where nothing listens: the key cache warns, the
    // verification fails.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = format!("http://{}/certs", listener.local_addr().expect("addr"));
    drop(listener);
    // Well-formed and within its times, so only the key is missing.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let token = format!(
        "{}.{}.c2ln",
        b64(json!({"alg": "RS256", "kid": "k"})),
        b64(
            json!({"iss": "https://accounts.google.com", "aud": "https://svc.example",
                   "iat": now, "exp": now + 600})
        )
    );
    let token = token.as_str();
    let verify = |quiet: bool| {
        let mut cmd = idtoken(home.path());
        if quiet {
            cmd.arg("-q");
        }
        cmd.args([
            "verify",
            token,
            "--audience",
            "https://svc.example",
            "--jwks-url",
            &closed,
        ])
        .args(["--skew", "0"]);
        cmd
    };
    let loud = run(&mut verify(false)).await;
    let quiet = run(&mut verify(true)).await;
    assert_eq!(loud.status.code(), Some(1));
    assert_eq!(quiet.status.code(), Some(1));
    assert!(stderr(&loud).contains("WARN"), "{}", stderr(&loud));
    assert!(!stderr(&quiet).contains("WARN"), "{}", stderr(&quiet));
    assert!(
        stderr(&quiet).contains("idtoken: "),
        "the error itself is still said"
    );
    let both = run(idtoken(home.path()).args(["-q", "-v", "decode", token])).await;
    assert_eq!(
        both.status.code(),
        Some(2),
        "-q and -v together are a usage error"
    );
}
