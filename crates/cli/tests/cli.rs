//! The `idtoken` binary, run as a user would, against an in-process
//! emulator and a local echo service over loopback.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::{Value, json};
#[path = "support/mod.rs"]
mod support;
use support::{idtoken, run, stderr, stdout};

/// A service that answers every request with what it received, as JSON
/// (the token's claims instead of the token). `/status/N` answers N.
async fn echo_service() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().fallback(|method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let claims = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| idtoken::IdToken::parse(t).ok())
                .map(|t| t.claims().to_json())
        };
        let status = uri
            .path()
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let seen = json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "authorization": claims("authorization"),
            "x_serverless_authorization": claims("x-serverless-authorization"),
            "raw_authorization": headers.get("authorization").and_then(|v| v.to_str().ok()).filter(|v| !v.starts_with("Bearer ey")),
            "x_custom": headers.get("x-custom").and_then(|v| v.to_str().ok()),
            "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
            "body": String::from_utf8_lossy(&body),
        });
        (status, [("www-authenticate", "Bearer error=\"invalid_token\"")], axum::Json(seen))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test]
async fn help_ends_with_the_exit_codes_the_readme_lists() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).arg("--help")).await;
    assert!(out.status.success());
    let help = stdout(&out);
    let table = help
        .split_once("Exit codes:")
        .map(|(_, t)| format!("Exit codes:{t}"))
        .expect("--help lists the exit codes");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"))
        .expect("README");
    assert!(
        readme.contains(table.trim_end()),
        "README and --help disagree on exit codes:\n{table}"
    );
    for code in ["  7 ", "  22 ", "  28 "] {
        assert!(table.contains(code), "{table}");
    }
}

mod token {
    use super::*;

    #[tokio::test]
    async fn prints_a_metadata_token_for_the_audience() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let token = idtoken::IdToken::parse(stdout(&out).trim()).expect("a JWT on stdout");
        assert_eq!(token.claims().aud.as_deref(), Some("https://svc.example"));
        assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
    }

    #[tokio::test]
    async fn json_output_has_expiry_and_claims_and_full_format_adds_email() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args([
                "token",
                "--audience",
                "https://svc.example",
                "--format",
                "full",
                "--json",
            ]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(v["claims"]["aud"], "https://svc.example");
        assert_eq!(
            v["claims"]["email"],
            Value::from(emu.service_account_email())
        );
        assert!(v["expires_in"].as_u64().expect("expires_in") > 3000);
        assert!(v["expires_at"].as_str().expect("expires_at").ends_with('Z'));
        assert!(v["token"].as_str().expect("token").starts_with("ey"));
    }

    #[tokio::test]
    async fn credentials_flag_uses_the_key_file() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("key file");
        let out = run(idtoken(home.path()).args([
            "token",
            "--audience",
            "https://svc.example",
            "--credentials",
            files.service_account.to_str().expect("utf-8 path"),
        ]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(emu.counters().get(Endpoint::Token), 1);
    }

    #[tokio::test]
    async fn missing_audience_is_a_usage_error() {
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path()).args(["token"])).await;
        assert_eq!(out.status.code(), Some(2));
        assert!(
            stderr(&out).contains("--audience is required"),
            "{}",
            stderr(&out)
        );
    }

    #[tokio::test]
    async fn missing_key_file_exits_1_naming_the_file() {
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json")
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("/nonexistent/key.json"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
}

mod credentials {
    //! The credential flags shared by `token` and `curl`: impersonation,
    //! `--include-email`, and the warning for user credentials.
    use super::*;

    #[tokio::test]
    async fn impersonate_flag_mints_for_the_target_with_include_email() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let target = emu.target_service_account_email();
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &files.service_account)
            .args(["token", "--audience", "https://svc.example", "--json"])
            .args(["--impersonate-service-account", &target, "--include-email"])
            .args(["--iam-endpoint", &emu.url()]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(v["claims"]["aud"], "https://svc.example");
        assert_eq!(v["claims"]["email"], Value::from(target));
        assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 1);
    }

    #[tokio::test]
    async fn impersonation_chain_puts_earlier_emails_in_delegates() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let me = emu.service_account_email();
        let target = emu.target_service_account_email();
        // me -> target (delegate) -> me: only these hops are granted.
        emu.restrict_impersonation([
            (me.as_str(), target.as_str()),
            (target.as_str(), me.as_str()),
        ]);
        let chain = format!("{target},{me}");
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &files.service_account)
            .args(["token", "--audience", "https://svc.example", "--json"])
            .args(["--impersonate-service-account", &chain, "--include-email"])
            .args(["--iam-endpoint", &emu.url()]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(v["claims"]["email"], Value::from(me));
    }

    #[tokio::test]
    async fn refused_impersonation_exits_1_naming_the_permission() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        emu.restrict_impersonation([]);
        let out = run(idtoken(home.path())
            .args([
                "token",
                "--audience",
                "https://svc.example",
                "--credentials",
            ])
            .arg(&files.impersonated_from_service_account))
        .await;
        assert_eq!(out.status.code(), Some(1));
        assert!(
            stderr(&out).contains("iam.serviceAccounts.getOpenIdToken"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }

    #[tokio::test]
    async fn user_credentials_print_the_token_and_warn_about_the_client_id_audience() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &files.authorized_user)
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let token = idtoken::IdToken::parse(stdout(&out).trim()).expect("a JWT on stdout");
        assert_eq!(token.claims().aud.as_deref(), Some(emu.user_client_id()));
        let err = stderr(&out);
        assert!(
            err.contains("warning") && err.contains("OAuth client id"),
            "{err}"
        );
        assert!(err.contains("--impersonate-service-account"), "{err}");
        assert!(!err.contains(&emu.user_refresh_token()));
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
}

mod doctor {
    use super::*;

    #[tokio::test]
    async fn explains_a_key_file_then_mints_and_never_prints_the_token_or_key() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &files.service_account)
            .args(["doctor", "--audience", "https://svc.example"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        for want in [
            "GOOGLE_APPLICATION_CREDENTIALS=",
            "<- used",
            "service account key",
            &emu.service_account_email(),
            "JWT-bearer grant with target_audience",
            "aud will equal it: yes",
            "\"aud\": \"https://svc.example\"",
            "OK: a token can be had.",
        ] {
            assert!(text.contains(want), "{want:?} missing in:\n{text}");
        }
        assert!(!text.contains("eyJ"), "a token was printed:\n{text}");
        assert!(!text.contains("PRIVATE KEY"));
    }

    #[tokio::test]
    async fn warns_about_endpoints_outside_google_and_the_opt_in_for_plain_http_elsewhere() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let out = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &files.service_account)
            .args(["doctor", "--audience", "https://svc.example"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let text = stdout(&out);
        assert!(
            text.contains(&format!(
                "warning: token_uri {}/token is not a Google endpoint",
                emu.url()
            )),
            "{text}"
        );

        // An emulator reached by name: refused, unless opted in.
        let mut doc: Value = serde_json::from_str(&emu.service_account_json()).expect("json");
        doc["token_uri"] = json!("http://emulator.invalid:9/token");
        let key = home.path().join("by-name.json");
        std::fs::write(&key, doc.to_string()).expect("write");
        let refused = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert!(!refused.status.success());
        let why = stderr(&refused);
        assert!(
            why.contains("token_uri") && why.contains("IDTOKEN_ALLOW_INSECURE_HTTP"),
            "{why}"
        );
        let allowed = run(idtoken(home.path())
            .env("GOOGLE_APPLICATION_CREDENTIALS", &key)
            .env("IDTOKEN_ALLOW_INSECURE_HTTP", "1")
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert!(!allowed.status.success(), "no such host");
        let why = stderr(&allowed);
        assert!(
            why.contains("http://emulator.invalid:9/token")
                && !why.contains("IDTOKEN_ALLOW_INSECURE_HTTP"),
            "got past the rule to the network: {why}"
        );
    }

    #[tokio::test]
    async fn json_report_shows_each_discovery_step_with_timing_and_the_claims() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args(["doctor", "--json"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let steps = v["discovery"].as_array().expect("steps");
        assert_eq!(steps.len(), 3);
        assert_eq!(steps[0]["outcome"], "not set");
        assert_eq!(steps[2]["place"], "metadata server");
        assert_eq!(steps[2]["chosen"], true);
        assert!(steps[2]["elapsed_ms"].is_u64());
        assert_eq!(
            v["environment"]["GCE_METADATA_HOST"],
            Value::from(emu.metadata_host())
        );
        assert_eq!(
            v["credentials"]["principal"],
            Value::from(emu.service_account_email())
        );
        assert_eq!(v["audience"]["aud_will_match"], true);
        assert_eq!(v["token"]["claims"]["aud"], v["audience"]["requested"]);
    }

    #[tokio::test]
    async fn user_credentials_say_aud_will_not_match_and_how_to_fix_it() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let out = run(idtoken(home.path())
            .args(["doctor", "--json", "--credentials"])
            .arg(&files.authorized_user))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        assert_eq!(v["audience"]["aud_will_match"], false);
        assert!(
            v["audience"]["note"]
                .as_str()
                .expect("note")
                .contains("--impersonate-service-account")
        );
        assert_eq!(v["token"]["claims"]["aud"], emu.user_client_id());
        assert_eq!(v["token"]["audience_is_client_id"], true);
        assert!(!stdout(&out).contains(&emu.user_refresh_token()));
    }

    #[tokio::test]
    async fn impersonation_report_names_target_and_flow() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        let out = run(idtoken(home.path())
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                &files.external_account_url,
            )
            .args(["doctor", "--json"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
        let target = emu.target_service_account_email();
        assert_eq!(
            v["credentials"]["impersonation"]["target"],
            Value::from(target.clone())
        );
        let flow = v["flow"].as_str().expect("flow");
        assert!(
            flow.contains("STS") && flow.contains("generateIdToken"),
            "{flow}"
        );
        assert_eq!(
            v["token"]["claims"]["sub"],
            Value::from(emu.target_service_account_id())
        );
    }

    #[tokio::test]
    async fn no_credentials_exits_1_listing_what_was_tried() {
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("METADATA_SERVER_DETECTION", "none")
            .args(["doctor"]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        assert!(
            text.contains("skipped (METADATA_SERVER_DETECTION=none)"),
            "{text}"
        );
        assert!(text.contains("no Google credentials found"), "{text}");
        assert!(text.contains("BIOS vendor: "), "{text}");
    }

    #[tokio::test]
    async fn an_unknown_detection_value_exits_1_naming_the_valid_values() {
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path())
            .env("METADATA_SERVER_DETECTION", "maybe")
            .args(["doctor"]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        assert!(
            text.contains("environment variable METADATA_SERVER_DETECTION=\"maybe\" is not one of none, assume-present, bios-only, ping-only"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn refused_impersonation_exits_1_with_the_step_that_failed() {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        emu.restrict_impersonation([]);
        let out = run(idtoken(home.path())
            .env(
                "GOOGLE_APPLICATION_CREDENTIALS",
                &files.impersonated_from_user,
            )
            .args(["doctor"]))
        .await;
        assert_eq!(out.status.code(), Some(1));
        let text = stdout(&out);
        assert!(text.contains("impersonating: "), "{text}");
        assert!(text.contains("IAM generateIdToken"), "{text}");
        assert!(
            text.contains("iam.serviceAccounts.getOpenIdToken"),
            "{text}"
        );
    }
}

mod curl {
    use super::*;

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
    async fn post_data_from_a_file_with_headers_and_explicit_audience() {
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
    async fn absurd_durations_are_usage_errors_not_panics() {
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
        for secs in ["1e20", "inf"] {
            let out = run(idtoken(home.path())
                .env("GCE_METADATA_HOST", emu.metadata_host())
                .args([
                    "proxy",
                    "--target",
                    &format!("http://{svc}"),
                    "--upstream-timeout",
                    secs,
                ]))
            .await;
            assert_eq!(
                out.status.code(),
                Some(2),
                "--upstream-timeout {secs}: {}",
                stderr(&out)
            );
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
}

mod emulator {
    use super::*;
    use tokio::io::{AsyncBufReadExt, BufReader};

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
}

mod demo {
    use super::*;

    #[tokio::test]
    async fn demo_exits_0_after_all_checks_pass() {
        let home = tempfile::tempdir().expect("home");
        let out = run(idtoken(home.path()).arg("demo")).await;
        assert!(out.status.success(), "{}\n{}", stdout(&out), stderr(&out));
        let text = stdout(&out);
        assert!(text.contains("8 passed, 0 failed"), "{text}");
        for flow in [
            "metadata server",
            "service account key",
            "impersonated_service_account",
            "external_account",
            "authorized_user",
            "gcloud user login + impersonation",
        ] {
            assert!(text.contains(flow), "no row for {flow}: {text}");
        }
        assert!(text.contains("-> 401"), "{text}");
        assert!(!text.contains("FAIL"), "{text}");
    }
}

#[path = "cli/verify.rs"]
mod verify_and_decode;

#[path = "cli/proxy.rs"]
mod proxy;

#[path = "cli/proxy_tls.rs"]
mod proxy_tls;

#[path = "cli/curl_redirects.rs"]
mod curl_redirects;
