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
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawned");
    // The hint on stderr names the service account to impersonate.
    let mut notes = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let target = loop {
        let line = tokio::time::timeout(Duration::from_secs(30), notes.next_line())
            .await
            .expect("notes in time")
            .expect("read")
            .expect("a line");
        if let Some(rest) =
            line.strip_prefix("# impersonate on request with --impersonate-service-account ")
        {
            break rest.split_whitespace().next().expect("an email").to_owned();
        }
    };
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut exports = std::collections::HashMap::new();
    while !exports.contains_key("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS") {
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
    // Impersonation reaches its IAM endpoint through gcloud's override
    // variable, with no --iam-endpoint.
    let iam = &exports["CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS"];
    assert!(
        iam.starts_with("http://127.0.0.1:") && iam.ends_with('/'),
        "{iam}"
    );
    let out = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", key)
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS", iam)
        .args(["token", "--audience", "https://svc.example", "--json"])
        .args(["--impersonate-service-account", &target, "--include-email"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["claims"]["email"], target.as_str());
    // And doctor shows the override in effect.
    let out = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", key)
        .env("CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS", iam)
        .args(["doctor", "--audience", "https://svc.example"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!(
            "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS={iam}"
        )),
        "{}",
        stdout(&out)
    );
    child.kill().await.expect("killed");
}
