//! Bad input gets a clear error that names the file, field or endpoint and
//! the next step, and never a secret.

use std::time::{Duration, Instant};

use idtoken::{Credentials, CredentialsProblem, EndpointProblem, Env, Error, TokenOptions};
use idtoken_emulator::{Endpoint, Fault};
use serde_json::Value;

use crate::common::*;

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    std::fs::write(&path, content).expect("write");
    path
}

fn problem(err: &Error) -> &CredentialsProblem {
    match err {
        Error::Credentials { problem, .. } => problem,
        other => panic!("expected a credentials error, got {other:?}"),
    }
}

#[tokio::test]
async fn missing_credentials_file_names_the_file_and_the_variable() {
    let env = Env::empty().with("GOOGLE_APPLICATION_CREDENTIALS", "/nonexistent/key.json");
    let err = Credentials::discover_with(&env)
        .await
        .expect_err("missing file");
    assert_eq!(problem(&err), &CredentialsProblem::NotFound);
    let msg = err.to_string();
    assert!(msg.contains("/nonexistent/key.json"), "{msg}");
    assert!(msg.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{msg}");
}

#[test]
fn malformed_json_gives_line_and_column_but_no_content() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(
        &dir,
        "bad.json",
        "{\n  \"type\": \"service_account\",\n  \"private_key\": \"SECRETSECRET\" oops\n}",
    );
    let err = Credentials::from_file(&path).expect_err("malformed");
    assert!(
        matches!(
            problem(&err),
            CredentialsProblem::InvalidJson { line: 3, .. }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains("bad.json") && msg.contains("line 3"), "{msg}");
    assert!(!msg.contains("SECRET"), "content leaked: {msg}");
}

#[tokio::test]
async fn service_account_without_private_key_names_the_field() {
    let emu = emulator().await;
    let mut key: Value = serde_json::from_str(&emu.service_account_json()).expect("json");
    key.as_object_mut().expect("object").remove("private_key");
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "key.json", &key.to_string());
    let err = Credentials::from_file(&path).expect_err("no key");
    assert_eq!(
        problem(&err),
        &CredentialsProblem::MissingField("private_key")
    );
    assert!(err.to_string().contains("`private_key`"), "{err}");
}

#[test]
fn garbage_private_key_is_an_invalid_field_without_echo() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(
        &dir,
        "key.json",
        r#"{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nTOPSECRETbase64\n-----END PRIVATE KEY-----\n"}"#,
    );
    let err = Credentials::from_file(&path).expect_err("bad key");
    assert!(
        matches!(
            problem(&err),
            CredentialsProblem::InvalidField {
                field: "private_key",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(!err.to_string().contains("TOPSECRET"), "{err}");
}

#[test]
fn unknown_type_is_named_and_known_types_listed() {
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "x.json", r#"{"type":"kerberos_ticket"}"#);
    let err = Credentials::from_file(&path).expect_err("unknown");
    assert_eq!(
        problem(&err),
        &CredentialsProblem::UnknownType("kerberos_ticket".into())
    );
    assert!(err.to_string().contains("service_account"), "{err}");
}

#[test]
fn later_credential_types_are_refused_as_not_yet_supported() {
    let dir = tempfile::tempdir().expect("dir");
    let ty = "gdch_service_account";
    let path = write(&dir, "x.json", &format!(r#"{{"type":"{ty}"}}"#));
    let err = Credentials::from_file(&path).expect_err("unsupported");
    assert_eq!(
        problem(&err),
        &CredentialsProblem::UnsupportedType(ty.into())
    );
    assert!(err.to_string().contains("not supported yet"), "{err}");
}

#[tokio::test]
async fn metadata_server_down_fails_within_seconds_and_says_what_was_tried() {
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", format!("127.0.0.1:{port}"));
    let started = Instant::now();
    let err = Credentials::discover_with(&env)
        .await
        .expect_err("nothing there");
    // Bounded: the probe's own limits are 2 attempts of at most 1.5 s.
    assert!(started.elapsed() < Duration::from_secs(10));
    let Error::NoCredentials { tried } = &err else {
        panic!("expected NoCredentials, got {err:?}")
    };
    assert_eq!(tried.len(), 3, "{tried:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("GOOGLE_APPLICATION_CREDENTIALS: not set"),
        "{msg}"
    );
    assert!(
        msg.contains("application_default_credentials.json"),
        "{msg}"
    );
    assert!(msg.contains(&format!("127.0.0.1:{port}")), "{msg}");
    assert!(
        msg.contains("gcloud auth application-default login"),
        "{msg}"
    );
}

#[tokio::test]
async fn metadata_answer_that_is_not_a_jwt_is_rejected_without_echo() {
    let emu = emulator().await;
    emu.inject_fault(
        Endpoint::MetadataIdentity,
        Fault::Body("<html>captive portal SECRET</html>".into()),
        1,
    );
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("not a JWT");
    let Error::Endpoint {
        problem: EndpointProblem::InvalidResponse(why),
        url,
        ..
    } = &err
    else {
        panic!("expected an invalid response, got {err:?}")
    };
    assert!(why.contains("not an ID token"), "{why}");
    assert!(url.contains("/identity"), "{url}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
}

#[tokio::test]
async fn token_endpoint_400_is_reported_with_googles_reason_and_not_retried() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    emu.inject_fault(Endpoint::Token, Fault::Status(400), 1);
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("400");
    let Error::Endpoint {
        problem: EndpointProblem::Status { status, .. },
        step,
        url,
    } = &err
    else {
        panic!("expected a status error, got {err:?}")
    };
    assert_eq!(*status, 400);
    assert!(step.contains("JWT-bearer"), "{step}");
    assert_eq!(url, &emu.token_uri());
    assert!(!err.is_transient());
    assert_eq!(
        emu.counters().get(Endpoint::Token),
        1,
        "a 400 is not retried"
    );
}

#[tokio::test]
async fn assertion_signed_with_an_unknown_key_gets_invalid_grant() {
    let emu = emulator().await;
    let other = emulator().await;
    // A key file from another emulator, pointed at this one's token endpoint.
    let mut key: Value = serde_json::from_str(&other.service_account_json()).expect("json");
    key["token_uri"] = Value::from(emu.token_uri());
    let dir = tempfile::tempdir().expect("dir");
    let path = write(&dir, "key.json", &key.to_string());
    let creds = Credentials::from_file(&path).expect("loads");
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("invalid_grant");
    let msg = err.to_string();
    assert!(msg.contains("HTTP 400 invalid_grant"), "{msg}");
    assert!(
        msg.contains("gcloud iam service-accounts keys create"),
        "{msg}"
    );
}

#[tokio::test]
async fn token_endpoint_500_is_retried_a_bounded_number_of_times() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    emu.inject_fault(Endpoint::Token, Fault::Status(500), 10);
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("500");
    assert!(err.is_transient());
    assert!(err.to_string().contains("HTTP 500"), "{err}");
    assert!(err.to_string().contains("try again later"), "{err}");
    assert_eq!(
        emu.counters().get(Endpoint::Token),
        3,
        "three attempts, then the error"
    );
}

#[tokio::test]
async fn transient_500_then_success_is_invisible_to_the_caller() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    emu.inject_fault(Endpoint::Token, Fault::Status(500), 1);
    creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect("second attempt succeeds");
    assert_eq!(emu.counters().get(Endpoint::Token), 2);
}

#[tokio::test]
async fn empty_audience_is_refused_before_any_request() {
    let emu = emulator().await;
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let err = creds
        .fetch_id_token("  ", &TokenOptions::default())
        .await
        .expect_err("empty");
    assert!(matches!(err, Error::InvalidArgument(_)));
    assert_eq!(emu.counters().total(), 0);
}

#[tokio::test]
async fn a_token_already_expired_by_our_clock_is_refused_and_blames_the_clock() {
    let emu = emulator().await;
    // This machine's clock runs two hours ahead of the token issuer's.
    let ahead = idtoken::ManualClock::new(std::time::SystemTime::now() + Duration::from_secs(7200));
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(std::sync::Arc::new(ahead));
    let err = creds
        .token_source("https://svc.example")
        .token()
        .await
        .expect_err("stale");
    assert!(matches!(err, Error::StaleToken { .. }), "{err:?}");
    assert!(err.to_string().contains("check the system clock"), "{err}");
}

#[tokio::test]
async fn token_answer_without_id_token_names_the_field_and_what_to_check() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    emu.inject_fault(
        Endpoint::Token,
        Fault::Body(r#"{"access_token":"ya29.SECRET"}"#.into()),
        1,
    );
    let err = creds
        .fetch_id_token("https://svc.example", &TokenOptions::default())
        .await
        .expect_err("no id_token");
    let msg = err.to_string();
    assert!(msg.contains("no `id_token` field"), "{msg}");
    assert!(msg.contains("token_uri"), "{msg}");
    assert!(!msg.contains("SECRET"), "{msg}");
}
