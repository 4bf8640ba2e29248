//! `idtoken curl`: the request, its body and headers, the token's header,
//! exit codes as curl's. Redirects are in `curl_redirects.rs`.

use idtoken_emulator::Emulator;
use serde_json::Value;

use crate::echo_service;
use crate::support::{idtoken, run, stderr, stdout};

#[tokio::test]
async fn get_sends_a_token_for_the_url_origin_and_streams_the_body() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args(["curl", &format!("http://{svc}/api/items?page=2")]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(seen["method"], "GET");
    assert_eq!(seen["path"], "/api/items");
    assert_eq!(seen["query"], "page=2");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(format!("http://{svc}")),
        "origin, no path or query"
    );
}

#[tokio::test]
async fn a_body_from_a_file_its_headers_and_a_given_audience_reach_the_service() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let body = home.path().join("body.json");
    std::fs::write(&body, r#"{"hello":"world"}"#).expect("write");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args([
            "curl",
            &format!("http://{svc}/submit"),
            "-X",
            "put",
            "-H",
            "Content-Type: application/json",
            "-H",
            "X-Custom: yes",
            "-d",
            &format!("@{}", body.display()),
            "--audience",
            "https://custom-audience.example",
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(seen["method"], "PUT");
    assert_eq!(seen["body"], r#"{"hello":"world"}"#);
    assert_eq!(seen["content_type"], "application/json");
    assert_eq!(seen["x_custom"], "yes");
    assert_eq!(
        seen["authorization"]["aud"],
        "https://custom-audience.example"
    );
}

#[tokio::test]
async fn an_own_authorization_header_moves_the_token_to_x_serverless_authorization() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args([
            "curl",
            &format!("http://{svc}/"),
            "-H",
            "Authorization: Basic dXNlcjpwdw==",
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(seen["raw_authorization"], "Basic dXNlcjpwdw==");
    assert_eq!(
        seen["x_serverless_authorization"]["aud"],
        Value::from(format!("http://{svc}"))
    );
}

#[tokio::test]
async fn include_prints_status_and_headers_and_output_writes_a_file() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let file = home.path().join("out.json");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args([
            "curl",
            &format!("http://{svc}/x"),
            "-i",
            "-o",
            file.to_str().expect("utf-8"),
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "the body went to the file");
    let written = std::fs::read_to_string(&file).expect("file");
    assert!(written.starts_with("HTTP/1.1 200 OK\r\n"), "{written}");
    assert!(
        written.contains("content-type: application/json"),
        "{written}"
    );
    assert!(written.contains("\"path\":\"/x\""), "{written}");
}

#[tokio::test]
async fn fail_exits_22_on_an_error_status_with_the_reason() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args(["curl", "--fail", &format!("http://{svc}/status/401")]))
    .await;
    assert_eq!(out.status.code(), Some(22), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
    assert!(stderr(&out).contains("invalid_token"), "{}", stderr(&out));
}

#[tokio::test]
async fn absurd_max_times_are_usage_errors_not_panics() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    for secs in ["inf", "1e20", "NaN", "-1"] {
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args([
                "curl",
                &format!("--max-time={secs}"),
                &format!("http://{svc}/"),
            ]))
        .await;
        assert_eq!(out.status.code(), Some(2), "-m {secs}: {}", stderr(&out));
        assert!(stderr(&out).contains("--max-time"), "{}", stderr(&out));
    }
}

#[tokio::test]
async fn unreachable_target_exits_7_naming_the_url() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .args(["curl", &url]))
    .await;
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains(&url), "{}", stderr(&out));
}

#[tokio::test]
async fn curl_with_impersonation_sends_the_targets_token() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", &files.authorized_user)
        .args(["curl", &format!("http://{svc}/x"), "--include-email"])
        .args([
            "--impersonate-service-account",
            &emu.target_service_account_email(),
        ])
        .args(["--iam-endpoint", &emu.url()]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(format!("http://{svc}"))
    );
    assert_eq!(
        seen["authorization"]["email"],
        Value::from(emu.target_service_account_email())
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[tokio::test]
async fn the_workforce_and_certificate_files_send_the_target_accounts_token() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    for creds in [
        &files.impersonated_from_workforce_user,
        &files.external_account_certificate,
    ] {
        let out = run(idtoken(home.path())
            .env("SSL_CERT_FILE", &files.tls_ca)
            .env("GOOGLE_APPLICATION_CREDENTIALS", creds)
            .args(["curl", "--no-cache", &format!("http://{svc}/who")]))
        .await;
        assert!(
            out.status.success(),
            "{}: {}",
            creds.display(),
            stderr(&out)
        );
        let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
        assert_eq!(
            seen["authorization"]["sub"],
            Value::from(emu.target_service_account_id()),
            "{}",
            creds.display()
        );
    }
}
