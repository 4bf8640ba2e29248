//! Bad input along the credential chains, each over the wire: every error
//! names the step that failed and what to do, and nothing secret is in any
//! message or `Debug` output.

use idtoken::{Credentials, CredentialsProblem, EndpointProblem, Error, Impersonate, TokenOptions};
use idtoken_emulator::{Emulator, Endpoint, Fault};

use crate::common::*;

const AUD: &str = "https://svc-abc.a.run.app";

async fn fail(creds: &Credentials) -> Error {
    creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect_err("the chain fails")
}

/// The secrets the emulator's files hold, none of which may leak.
fn secrets(emu: &Emulator) -> Vec<String> {
    let user: serde_json::Value =
        serde_json::from_str(&emu.authorized_user_json()).expect("user json");
    let workforce: serde_json::Value =
        serde_json::from_str(&emu.external_account_authorized_user_json()).expect("json");
    vec![
        emu.workforce_refresh_token(),
        workforce["client_secret"]
            .as_str()
            .expect("secret")
            .to_owned(),
        emu.user_refresh_token(),
        user["client_secret"].as_str().expect("secret").to_owned(),
        emu.subject_token(),
        "ya29.".to_owned(),
        "PRIVATE KEY".to_owned(),
    ]
}

fn assert_no_secrets(emu: &Emulator, err: &Error) {
    let shown = format!("{err}\n{err:?}");
    for secret in secrets(emu) {
        assert!(!shown.contains(&secret), "{secret:?} leaked in {shown}");
    }
}

fn endpoint_step(err: &Error) -> (&'static str, &EndpointProblem) {
    match err {
        Error::Endpoint { step, problem, .. } => (step, problem),
        other => panic!("expected an endpoint error, got {other:?}"),
    }
}

fn credentials_problem(err: &Error) -> &CredentialsProblem {
    match err {
        Error::Credentials { problem, .. } => problem,
        other => panic!("expected a credentials error, got {other:?}"),
    }
}

#[tokio::test]
async fn malformed_impersonation_url_is_refused_naming_the_field() {
    let emu = emulator().await;
    let mut doc: serde_json::Value =
        serde_json::from_str(&emu.impersonated_json(false)).expect("json");
    doc["service_account_impersonation_url"] =
        "https://iamcredentials.googleapis.com/v1/nope".into();
    let err = Credentials::from_json(doc.to_string().as_bytes(), "impersonation file")
        .expect_err("malformed URL");
    assert!(matches!(
        credentials_problem(&err),
        CredentialsProblem::InvalidField {
            field: "service_account_impersonation_url",
            ..
        }
    ));
    assert!(
        err.to_string()
            .contains("serviceAccounts/EMAIL:generateAccessToken"),
        "{err}"
    );
    assert_no_secrets(&emu, &err);
}

#[tokio::test]
async fn target_refused_by_iam_names_the_permission_and_the_role_to_grant() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    emu.restrict_impersonation([]);
    let creds = Credentials::from_file(&files.impersonated_from_service_account).expect("loads");
    let err = fail(&creds).await;
    let (step, problem) = endpoint_step(&err);
    assert!(step.contains("generateIdToken"), "{step}");
    assert!(matches!(
        problem,
        EndpointProblem::Status { status: 403, .. }
    ));
    let msg = err.to_string();
    assert!(msg.contains("iam.serviceAccounts.getOpenIdToken"), "{msg}");
    assert!(
        msg.contains("roles/iam.serviceAccountTokenCreator"),
        "{msg}"
    );
    assert!(!err.is_transient());
    assert_no_secrets(&emu, &err);
}

#[tokio::test]
async fn sts_rejecting_the_subject_token_names_sts_and_the_provider_checks() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let subject = dir.path().join("subject.txt");
    std::fs::write(&subject, "a-token-the-provider-does-not-trust").expect("write");
    let creds = Credentials::from_json(emu.external_account_json(Some(&subject)).as_bytes(), "wif")
        .expect("loads");
    let err = fail(&creds).await;
    let (step, problem) = endpoint_step(&err);
    assert!(step.contains("STS"), "{step}");
    assert!(
        matches!(problem, EndpointProblem::Status { status: 400, error: Some(e), .. } if e == "invalid_grant")
    );
    assert!(
        err.to_string().contains("workload identity provider"),
        "{err}"
    );
    assert!(
        !err.to_string()
            .contains("a-token-the-provider-does-not-trust")
    );
    assert_no_secrets(&emu, &err);
}

#[tokio::test]
async fn missing_or_empty_subject_token_file_names_the_file_and_credential_source() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("absent.txt");
    let empty = dir.path().join("empty.txt");
    std::fs::write(&empty, "  \n").expect("write");
    for (path, says) in [(&missing, "does not exist"), (&empty, "empty")] {
        let creds = Credentials::from_json(emu.external_account_json(Some(path)).as_bytes(), "wif")
            .expect("loads");
        let err = fail(&creds).await;
        assert!(matches!(
            credentials_problem(&err),
            CredentialsProblem::SubjectToken(_)
        ));
        let msg = err.to_string();
        assert!(msg.contains(&path.display().to_string()), "{msg}");
        assert!(
            msg.contains(says) && msg.contains("credential_source"),
            "{msg}"
        );
    }
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

/// A subject-token file path pointing at something huge (a log, a
/// device) is refused after a bounded read, not read whole into memory.
#[tokio::test]
async fn an_oversized_subject_token_file_is_refused_naming_the_limit() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let big = dir.path().join("big.txt");
    std::fs::write(&big, vec![b'a'; 2 * 1024 * 1024]).expect("write");
    let creds = Credentials::from_json(emu.external_account_json(Some(&big)).as_bytes(), "wif")
        .expect("loads");
    let err = fail(&creds).await;
    let msg = err.to_string();
    assert!(msg.contains(&big.display().to_string()), "{msg}");
    assert!(msg.contains("larger than"), "{msg}");
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

#[tokio::test]
async fn subject_token_url_down_names_the_url_step_and_is_transient() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    emu.inject_fault(Endpoint::SubjectToken, Fault::Status(503), 3);
    let creds = Credentials::from_file(&files.external_account_url).expect("loads");
    let err = fail(&creds).await;
    let (step, problem) = endpoint_step(&err);
    assert!(step.contains("subject token URL"), "{step}");
    assert!(matches!(
        problem,
        EndpointProblem::Status { status: 503, .. }
    ));
    assert!(err.is_transient());
    assert_no_secrets(&emu, &err);
}

#[tokio::test]
async fn revoked_refresh_token_says_to_log_in_again_without_leaking_it() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    emu.revoke_refresh_token();
    let user = Credentials::from_file(&files.authorized_user).expect("loads");
    let impersonated = Credentials::from_file(&files.impersonated_from_user).expect("loads");
    for creds in [user, impersonated] {
        let err = fail(&creds).await;
        let (step, problem) = endpoint_step(&err);
        assert!(step.contains("refresh grant"), "{step}");
        assert!(
            matches!(problem, EndpointProblem::Status { error: Some(e), .. } if e == "invalid_grant")
        );
        assert!(
            err.to_string()
                .contains("gcloud auth application-default login"),
            "{err}"
        );
        assert_no_secrets(&emu, &err);
        assert_no_secrets_debug(&emu, &creds);
    }
}

fn assert_no_secrets_debug(emu: &Emulator, creds: &Credentials) {
    let shown = format!("{creds:?}");
    for secret in secrets(emu) {
        assert!(!shown.contains(&secret), "{secret:?} leaked in {shown}");
    }
}

#[tokio::test]
async fn external_account_without_impersonation_explains_federated_principals_cannot_hold_id_tokens()
 {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.external_account_file).expect("read"))
            .expect("json");
    doc.as_object_mut()
        .expect("object")
        .remove("service_account_impersonation_url");
    let creds = Credentials::from_json(doc.to_string().as_bytes(), "wif").expect("loads");
    let err = fail(&creds).await;
    assert_eq!(
        credentials_problem(&err),
        &CredentialsProblem::FederatedPrincipalCannotMintIdTokens
    );
    assert!(
        err.to_string()
            .contains("service_account_impersonation_url"),
        "{err}"
    );
    assert_eq!(emu.counters().total(), 0, "fails before any request");
    // Impersonating on request fixes it.
    let fixed = creds
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url()));
    fixed
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect("token via explicit impersonation");
}

#[tokio::test]
async fn executable_source_without_permission_names_the_variable_and_runs_nothing() {
    assert!(
        std::env::var_os("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES").is_none(),
        "run the library tests without GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES"
    );
    let emu = emulator().await;
    let (dir, files) = all_files(&emu);
    let marker = dir.path().join("ran");
    let script = dir.path().join("get-token.sh");
    std::fs::write(&script, format!("touch {}\n", marker.display())).expect("write");
    let mut doc: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&files.external_account_file).expect("read"))
            .expect("json");
    doc["credential_source"] = serde_json::json!({
        "executable": {"command": format!("/bin/sh {}", script.display())}
    });
    let creds = Credentials::from_json(doc.to_string().as_bytes(), "wif").expect("loads");
    assert!(
        creds.flow_description().contains("not allowed to run"),
        "{}",
        creds.flow_description()
    );
    let err = fail(&creds).await;
    let text = err.to_string();
    assert!(
        matches!(
            credentials_problem(&err),
            CredentialsProblem::SubjectToken(_)
        ),
        "{err:?}"
    );
    assert!(
        text.contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1")
            && text.contains("credential_source.executable"),
        "{text}"
    );
    assert!(!marker.exists(), "the command ran");
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

#[tokio::test]
async fn workforce_user_with_a_wrong_client_secret_names_the_client_and_leaks_nothing() {
    let emu = emulator().await;
    let mut doc: serde_json::Value =
        serde_json::from_str(&emu.external_account_authorized_user_json()).expect("json");
    doc["client_secret"] = serde_json::json!("not-the-secret");
    let creds = Credentials::from_json(doc.to_string().as_bytes(), "workforce")
        .expect("loads")
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url()));
    let err = fail(&creds).await;
    let (step, problem) = endpoint_step(&err);
    assert_eq!(step, "workforce user: STS refresh grant");
    assert!(
        matches!(problem, EndpointProblem::Status { status: 401, error: Some(e), .. } if e == "invalid_client"),
        "{problem:?}"
    );
    assert!(err.to_string().contains("client_secret"), "{err}");
    assert_no_secrets(&emu, &err);
    assert_no_secrets_debug(&emu, &creds);
}
