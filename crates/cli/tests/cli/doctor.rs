//! `idtoken doctor`: the report, in text and JSON, for each kind of
//! credentials, and that it never shows a token or a secret.

use idtoken_emulator::Emulator;
use serde_json::{Value, json};

use crate::support::{idtoken, run, stderr, stdout};

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

#[tokio::test]
async fn doctor_shows_the_forward_proxy_but_never_its_credentials() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .env("HTTPS_PROXY", "http://alice:s3cret-pw@127.0.0.1:3128")
        .args(["doctor", "--json"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["forward_proxy"]["proxy"], "http://127.0.0.1:3128/");
    assert_eq!(v["forward_proxy"]["credentials"], true);
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .env("HTTPS_PROXY", "http://alice:s3cret-pw@127.0.0.1:3128")
        .args(["doctor"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "https://oauth2.googleapis.com/ through http://127.0.0.1:3128/, with credentials"
        ),
        "{text}"
    );
    for shown in [stdout(&out), stderr(&out)] {
        assert!(
            !shown.contains("s3cret-pw") && !shown.contains("alice"),
            "{shown}"
        );
    }
    let out = run(idtoken(home.path())
        .env("GCE_METADATA_HOST", emu.metadata_host())
        .env("HTTPS_PROXY", "http://127.0.0.1:3128")
        .env("NO_PROXY", "googleapis.com")
        .args(["doctor", "--json"]))
    .await;
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(v["forward_proxy"]["proxy"].is_null(), "{v}");
}

#[tokio::test]
async fn certificate_source_report_names_the_source_and_the_certificates_subject_and_expiry() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .env("SSL_CERT_FILE", &files.tls_ca)
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_certificate,
        )
        .args(["doctor"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(shown.contains("X.509 certificate (mutual TLS)"), "{shown}");
    assert!(
        shown.contains("client certificate: CN=emulator-workload"),
        "{shown}"
    );
    assert!(shown.contains("expires"), "{shown}");
    assert!(!shown.contains("PRIVATE KEY"), "{shown}");
    assert!(shown.contains("OK: a token can be had."), "{shown}");
}
