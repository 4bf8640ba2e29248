//! Endpoints that receive credentials (refresh tokens, signed assertions,
//! access and subject tokens) must be https, or plain http on this machine
//! (the emulator): every field that names one is checked, and the error
//! names the field and the way out, before anything is sent.

use idtoken::{Credentials, Error, Impersonate, TokenOptions};
use idtoken_emulator::Endpoint;
use serde_json::{Value, json};

use crate::common::*;

const ELSEWHERE: &str = "http://emulator.example:8080";

fn with(doc: &str, pointer: &str, value: Value) -> Vec<u8> {
    let mut doc: Value = serde_json::from_str(doc).expect("json");
    *doc.pointer_mut(pointer).expect("field exists") = value;
    doc.to_string().into_bytes()
}

fn assert_refused(json: &[u8], field: &str) {
    let err = Credentials::from_json(json, "test")
        .expect_err(field)
        .to_string();
    assert!(err.contains(field), "names the field {field}: {err}");
    assert!(err.contains("emulator.example"), "names the host: {err}");
    assert!(
        err.contains(idtoken::ALLOW_INSECURE_HTTP),
        "says the way out: {err}"
    );
}

#[tokio::test]
async fn plain_http_off_this_machine_is_refused_in_every_credentials_field() {
    let emu = emulator().await;
    let sa = emu.service_account_json();
    assert_refused(
        &with(&sa, "/token_uri", json!(format!("{ELSEWHERE}/token"))),
        "token_uri",
    );
    let user = emu.authorized_user_json();
    assert_refused(
        &with(&user, "/token_uri", json!(format!("{ELSEWHERE}/token"))),
        "token_uri",
    );
    let imp = emu.impersonated_json(false);
    let iam = format!(
        "{ELSEWHERE}/v1/projects/-/serviceAccounts/{}:generateAccessToken",
        emu.target_service_account_email()
    );
    assert_refused(
        &with(&imp, "/service_account_impersonation_url", json!(iam)),
        "service_account_impersonation_url",
    );
    let ext = emu.external_account_json(None);
    assert_refused(
        &with(&ext, "/token_url", json!(format!("{ELSEWHERE}/v1/token"))),
        "token_url",
    );
    assert_refused(
        &with(&ext, "/service_account_impersonation_url", json!(iam)),
        "service_account_impersonation_url",
    );
    assert_refused(
        &with(
            &ext,
            "/credential_source/url",
            json!(format!("{ELSEWHERE}/subject")),
        ),
        "credential_source.url",
    );
    let workforce = emu.external_account_authorized_user_json();
    assert_refused(
        &with(
            &workforce,
            "/token_url",
            json!(format!("{ELSEWHERE}/v1/oauthtoken")),
        ),
        "token_url",
    );
    // The same files on loopback load: the emulator is plain http too.
    for doc in [&sa, &user, &imp, &ext, &workforce] {
        Credentials::from_json(doc.as_bytes(), "test").expect("loopback http is fine");
    }
    assert_eq!(emu.counters().total(), 0, "nothing was sent anywhere");
}

#[tokio::test]
async fn a_plain_http_iam_endpoint_off_this_machine_is_refused_before_any_token_is_fetched() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host())
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(ELSEWHERE));
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Credentials { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("iam_endpoint") && text.contains(idtoken::ALLOW_INSECURE_HTTP),
        "{text}"
    );
    assert_eq!(
        emu.counters().get(Endpoint::MetadataToken),
        0,
        "the source's access token was not even fetched"
    );
}

#[tokio::test]
async fn endpoints_outside_google_are_listed_for_doctor() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_service_account).expect("loads");
    let outside = creds.endpoints_outside_google();
    let fields: Vec<&str> = outside.iter().map(|(f, _)| *f).collect();
    assert_eq!(fields, ["token_uri", "IAM endpoint"], "{outside:?}");
    assert!(outside.iter().all(|(_, url)| url.starts_with(&emu.url())));
    // Google's own endpoints, and a universe domain's, are not listed.
    let mut doc: Value = serde_json::from_str(&emu.service_account_json()).expect("json");
    doc["token_uri"] = json!("https://oauth2.googleapis.com/token");
    let google = Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads");
    assert!(google.endpoints_outside_google().is_empty());
    doc["token_uri"] = json!("https://oauth2.apis-example.test/token");
    doc["universe_domain"] = json!("apis-example.test");
    let universe = Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads");
    // The endpoint is covered by the universe, but the universe itself is
    // named: a hostile file could set both.
    assert_eq!(
        universe.endpoints_outside_google(),
        [("universe_domain", "apis-example.test".to_owned())]
    );
    doc["universe_domain"] = json!("googleapis.com");
    doc["token_uri"] = json!("https://oauth2.googleapis.com/token");
    let google = Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads");
    assert!(google.endpoints_outside_google().is_empty());
}
