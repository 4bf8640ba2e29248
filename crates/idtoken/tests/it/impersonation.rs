//! Every credential type mints a token over the wire: gcloud users
//! (marked), impersonation files, external accounts, and impersonation on
//! request from any source; access tokens on the way are cached.

use idtoken::{Credentials, CredentialsKind, Impersonate, TokenOptions};
use idtoken_emulator::{Emulator, Endpoint};

use crate::common::*;

const AUD: &str = "https://svc-abc.a.run.app";

async fn mint(creds: &Credentials) -> idtoken::IdToken {
    creds
        .fetch_id_token(AUD, &TokenOptions::default().include_email(true))
        .await
        .expect("token")
}

fn assert_target_token(emu: &Emulator, token: &idtoken::IdToken) {
    let c = token.claims();
    assert_eq!(c.aud.as_deref(), Some(AUD));
    assert_eq!(
        c.sub.as_deref(),
        Some(emu.target_service_account_id().as_str())
    );
    assert_eq!(
        c.email.as_deref(),
        Some(emu.target_service_account_email().as_str())
    );
    assert!(!token.audience_is_client_id());
}

#[tokio::test]
async fn authorized_user_returns_the_refresh_grants_token_marked_as_client_id_audience() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.authorized_user).expect("user file loads");
    assert_eq!(creds.kind(), CredentialsKind::AuthorizedUser);
    assert!(creds.audience_is_client_id());
    let token = mint(&creds).await;
    assert!(token.audience_is_client_id());
    assert_eq!(token.claims().aud.as_deref(), Some(emu.user_client_id()));
    assert_eq!(token.claims().email.as_deref(), Some(emu.user_email()));
    assert!(format!("{token:?}").contains("audience_is_client_id: true"));
}

#[tokio::test]
async fn impersonated_file_with_service_account_source_mints_for_the_target() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_service_account).expect("loads");
    assert_eq!(creds.kind(), CredentialsKind::ImpersonatedServiceAccount);
    assert_eq!(
        creds.principal(),
        Some(emu.target_service_account_email().as_str())
    );
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::Token), 1);
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 1);
}

#[tokio::test]
async fn impersonated_file_with_user_source_mints_for_the_true_audience() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_user).expect("loads");
    assert!(!creds.audience_is_client_id());
    assert_target_token(&emu, &mint(&creds).await);
}

#[tokio::test]
async fn include_email_off_leaves_email_out() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_service_account).expect("loads");
    let token = creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect("token");
    assert_eq!(token.claims().email, None);
}

#[tokio::test]
async fn external_account_with_file_source_exchanges_at_sts_then_impersonates() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_file).expect("loads");
    assert_eq!(creds.kind(), CredentialsKind::ExternalAccount);
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
}

#[tokio::test]
async fn external_account_with_url_source_sends_the_headers_and_mints() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_url).expect("loads");
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::SubjectToken), 1);
}

#[tokio::test]
async fn external_account_json_subject_token_reads_the_named_field() {
    let emu = emulator().await;
    let dir = tempfile::tempdir().expect("dir");
    let subject = dir.path().join("token.json");
    std::fs::write(
        &subject,
        format!(r#"{{"id_token":"{}"}}"#, emu.subject_token()),
    )
    .expect("write");
    let mut doc: serde_json::Value =
        serde_json::from_str(&emu.external_account_json(Some(&subject))).expect("json");
    doc["credential_source"]["format"] =
        serde_json::json!({"type": "json", "subject_token_field_name": "id_token"});
    let creds = Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads");
    assert_target_token(&emu, &mint(&creds).await);
}

#[tokio::test]
async fn workforce_user_cannot_mint_alone_and_the_error_says_to_impersonate() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_authorized_user).expect("loads");
    assert_eq!(creds.kind(), CredentialsKind::ExternalAuthorizedUser);
    let err = creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect_err("a workforce user holds no ID tokens");
    let text = err.to_string();
    assert!(text.contains("--impersonate-service-account"), "{text}");
    assert!(text.contains("Credentials::impersonate"), "{text}");
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 0);
}

#[tokio::test]
async fn workforce_user_impersonating_refreshes_at_sts_with_its_client_then_mints_the_audience() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let how = Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url());
    let creds = Credentials::from_file(&files.external_account_authorized_user)
        .expect("loads")
        .impersonate(how);
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 1);
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 1);
    assert_eq!(emu.counters().get(Endpoint::Token), 0);
}

#[tokio::test]
async fn impersonated_file_with_workforce_user_source_mints_for_the_target() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_workforce_user).expect("loads");
    assert_eq!(creds.kind(), CredentialsKind::ImpersonatedServiceAccount);
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 1);
}

#[tokio::test]
async fn revoked_workforce_login_fails_naming_the_step_and_the_next_step() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    emu.revoke_workforce_refresh_token();
    let creds = Credentials::from_file(&files.impersonated_from_workforce_user).expect("loads");
    let err = creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect_err("revoked");
    let text = err.to_string();
    assert!(text.contains("workforce user: STS refresh grant"), "{text}");
    assert!(text.contains("invalid_grant"), "{text}");
    assert!(text.contains("--login-config"), "{text}");
    assert!(!text.contains(&emu.workforce_refresh_token()), "{text}");
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 0);
}

#[tokio::test]
async fn impersonation_on_request_works_from_a_key_file_the_metadata_server_and_a_user() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let how = Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url());
    let sources = [
        Credentials::from_file(&files.service_account).expect("key"),
        Credentials::metadata_server(&emu.metadata_host()),
        Credentials::from_file(&files.authorized_user).expect("user"),
    ];
    for source in sources {
        let creds = source.impersonate(how.clone());
        assert_target_token(&emu, &mint(&creds).await);
    }
    assert_eq!(emu.counters().get(Endpoint::MetadataToken), 1);
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 0);
}

#[tokio::test]
async fn impersonating_from_an_impersonation_delegates_through_the_first_target() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let me = emu.service_account_email();
    let target = emu.target_service_account_email();
    let creds = Credentials::from_file(&files.impersonated_from_service_account)
        .expect("loads")
        .impersonate(Impersonate::new(me.clone()).iam_endpoint(emu.url()));
    let how = creds.impersonation().expect("impersonating");
    assert_eq!(how.target(), me);
    assert_eq!(how.delegate_emails(), std::slice::from_ref(&target));
    // me -> target (delegate) -> me
    emu.restrict_impersonation([
        (me.as_str(), target.as_str()),
        (target.as_str(), me.as_str()),
    ]);
    let token = mint(&creds).await;
    assert_eq!(token.claims().email.as_deref(), Some(me.as_str()));
}

#[tokio::test]
async fn source_access_token_is_cached_across_audiences() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_service_account).expect("loads");
    for aud in [
        "https://a.example",
        "https://b.example",
        "https://c.example",
    ] {
        creds
            .fetch_id_token(aud, &TokenOptions::default())
            .await
            .expect("token");
    }
    assert_eq!(emu.counters().get(Endpoint::Token), 1, "one access token");
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 3);
}

#[tokio::test]
async fn concurrent_first_calls_share_one_source_access_token_fetch() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_file).expect("loads");
    let hold = emu.hold(Endpoint::Sts);
    // Every call has joined the one source access token fetch before it is
    // let go.
    let calls = first_polled((0..8).map(|i| {
        let creds = creds.clone();
        async move {
            creds
                .fetch_id_token(&format!("https://{i}.example"), &TokenOptions::default())
                .await
        }
    }))
    .await;
    wait_for_count(&emu, Endpoint::Sts, 1).await;
    hold.release();
    for call in calls {
        within("impersonated fetch", call)
            .await
            .expect("joins")
            .expect("token");
    }
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    assert_eq!(emu.counters().get(Endpoint::SubjectToken), 0);
}

#[tokio::test]
async fn source_access_token_is_refreshed_ahead_of_its_expiry() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.impersonated_from_service_account)
        .expect("loads")
        .with_clock(std::sync::Arc::new(clock.clone()));
    mint(&creds).await;
    // 59 minutes on: the access token (1 h) is due, not yet expired.
    clock.advance(std::time::Duration::from_secs(59 * 60));
    mint(&creds).await;
    wait_for_count(&emu, Endpoint::Token, 2).await;
    assert_eq!(emu.counters().get(Endpoint::Token), 2);
}

#[tokio::test]
async fn a_github_actions_file_mints_through_the_jobs_token_endpoint() {
    let emu = emulator().await;
    let creds = Credentials::from_json(
        emu.github_actions_credentials_json().as_bytes(),
        "gha-creds-test.json",
    )
    .expect("loads");
    assert_eq!(creds.kind(), CredentialsKind::ExternalAccount);
    assert_target_token(&emu, &mint(&creds).await);
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
}
