//! `idtoken emulator`: what it prints works.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{idtoken, run, stderr, stdout};

#[tokio::test]
async fn prints_export_lines_that_work() {
    let home = tempfile::tempdir().expect("home");
    let creds = home.path().join("creds");
    let mut child = idtoken(home.path())
        .args(["emulator", "--token-lifetime", "120", "--credentials-dir"])
        .arg(&creds)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawned");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut exports = std::collections::HashMap::new();
    while exports.len() < 4 {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("export lines in time")
            .expect("read")
            .expect("a line");
        let (k, v) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .expect("an export line");
        exports.insert(k.to_owned(), v.to_owned());
    }
    // The key file it wrote works with the token endpoint it serves.
    let key = &exports["GOOGLE_APPLICATION_CREDENTIALS"];
    assert!(Path::new(key).starts_with(&creds));
    let out = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", key)
        .args(["token", "--audience", "https://svc.example", "--json"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let claims = &v["claims"];
    assert_eq!(
        claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
        120
    );
    // And the metadata host answers too.
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", &exports["GCE_METADATA_HOST"])
        .args(["token", "--audience", "https://svc.example"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(exports["IDTOKEN_JWKS_URL"].ends_with("/oauth2/v3/certs"));
    child.kill().await.expect("killed");
}
