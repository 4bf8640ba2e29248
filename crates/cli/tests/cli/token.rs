//! `idtoken token`: printing a token, and the credential flags it shares
//! with `curl`, `proxy` and `doctor` (impersonation, `--include-email`,
//! the warning for user credentials).

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::support::{idtoken, run, stderr, stdout};

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

// The credential flags.

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
async fn workforce_user_mints_the_true_audience_only_through_impersonation() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let alone = run(idtoken(home.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_authorized_user,
        )
        .args(["token", "--audience", "https://svc.example"]))
    .await;
    assert_eq!(alone.status.code(), Some(1), "{}", stderr(&alone));
    assert!(
        stderr(&alone).contains("--impersonate-service-account"),
        "{}",
        stderr(&alone)
    );
    assert!(stdout(&alone).is_empty());

    let target = emu.target_service_account_email();
    let out = run(idtoken(home.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_authorized_user,
        )
        .args(["token", "--audience", "https://svc.example", "--json"])
        .args(["--impersonate-service-account", &target, "--include-email"])
        .args(["--iam-endpoint", &emu.url()]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["claims"]["aud"], "https://svc.example");
    assert_eq!(v["claims"]["email"], Value::from(target));
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 1);
    assert!(!stderr(&out).contains(&emu.workforce_refresh_token()));

    let doctor = run(idtoken(home.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.impersonated_from_workforce_user,
        )
        .args(["doctor"]))
    .await;
    let shown = stdout(&doctor);
    assert!(shown.contains("workforce user"), "{shown}");
    assert!(!shown.contains(&emu.workforce_refresh_token()), "{shown}");
}

#[tokio::test]
async fn certificate_source_exchanges_at_sts_over_mutual_tls_and_mints_for_the_target() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .env("SSL_CERT_FILE", &files.tls_ca)
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_certificate,
        )
        .args(["token", "--audience", "https://svc.example", "--json"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["claims"]["aud"], "https://svc.example");
    assert_eq!(
        v["claims"]["sub"],
        Value::from(emu.target_service_account_id())
    );
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 1);
}

#[tokio::test]
async fn default_certificate_config_is_found_by_variable_then_in_gclouds_folder() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let creds = home.path().join("default_cert.json");
    std::fs::write(
        &creds,
        emu.external_account_certificate_json(None, Some(&files.workload_trust_chain)),
    )
    .expect("write");
    // GOOGLE_API_CERTIFICATE_CONFIG names it.
    let out = run(idtoken(home.path())
        .env("SSL_CERT_FILE", &files.tls_ca)
        .env("GOOGLE_API_CERTIFICATE_CONFIG", &files.certificate_config)
        .args([
            "token",
            "--no-cache",
            "--audience",
            "https://svc.example",
            "--credentials",
        ])
        .arg(&creds))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    // Without it: ~/.config/gcloud/certificate_config.json, missing first...
    let missing = run(idtoken(home.path())
        .env("SSL_CERT_FILE", &files.tls_ca)
        .args([
            "token",
            "--no-cache",
            "--audience",
            "https://svc.example",
            "--credentials",
        ])
        .arg(&creds))
    .await;
    assert_eq!(missing.status.code(), Some(1));
    let err = stderr(&missing);
    assert!(
        err.contains("certificate_config.json") && err.contains("does not exist"),
        "{err}"
    );
    // ...then there.
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).expect("mkdir");
    std::fs::copy(
        &files.certificate_config,
        gcloud.join("certificate_config.json"),
    )
    .expect("copy");
    let out = run(idtoken(home.path())
        .env("SSL_CERT_FILE", &files.tls_ca)
        .args([
            "token",
            "--no-cache",
            "--audience",
            "https://svc.example",
            "--credentials",
        ])
        .arg(&creds))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(emu.counters().get(Endpoint::Sts), 2);
}
