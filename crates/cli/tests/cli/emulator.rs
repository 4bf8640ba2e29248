//! `idtoken emulator`: what it prints works.

use std::collections::HashMap;
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
    let exports = exports(&mut child).await;
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

/// The `export` lines it prints on standard output, by name.
async fn exports(child: &mut tokio::process::Child) -> HashMap<String, String> {
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut exports = HashMap::new();
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
    exports
}

#[tokio::test]
async fn fail_makes_the_next_answers_of_an_endpoint_fail_then_it_recovers() {
    let home = tempfile::tempdir().expect("home");
    let mut child = idtoken(home.path())
        .args([
            "emulator",
            "--fail",
            "metadata_identity=503x3",
            "--credentials-dir",
        ])
        .arg(home.path().join("creds"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawned");
    let exports = exports(&mut child).await;
    let token = || {
        let mut cmd = idtoken(home.path());
        cmd.env("GCE_METADATA_HOST", &exports["GCE_METADATA_HOST"])
            .args(["token", "--audience", "https://svc.example"]);
        cmd
    };
    let host = &exports["GCE_METADATA_HOST"];
    // The metadata flow makes three attempts, and each gets a 503.
    let out = run(&mut token()).await;
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("503"), "{}", stderr(&out));
    assert_eq!(identity_requests(host).await, 3);
    // The faults are used up: the next call mints, at its first attempt.
    let out = run(&mut token()).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).trim().split('.').count(),
        3,
        "{}",
        stdout(&out)
    );
    assert_eq!(identity_requests(host).await, 4);
    child.kill().await.expect("killed");
}

/// The emulator's count of metadata identity requests, from its
/// `/_emulator/counters` at `host` (`127.0.0.1:PORT`).
async fn identity_requests(host: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let asked = async {
        let mut conn = tokio::net::TcpStream::connect(host).await.expect("connect");
        let request = format!(
            "GET /_emulator/counters HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        );
        conn.write_all(request.as_bytes()).await.expect("write");
        let mut answer = String::new();
        conn.read_to_string(&mut answer).await.expect("read");
        answer
    };
    let answer = tokio::time::timeout(Duration::from_secs(10), asked)
        .await
        .expect("counters in time");
    let (_, body) = answer.split_once("\r\n\r\n").expect("a body");
    let counters: Value = serde_json::from_str(body).expect("JSON");
    counters["metadata_identity"].as_u64().expect("a count")
}
