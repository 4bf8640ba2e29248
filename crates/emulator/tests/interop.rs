//! Google's own client libraries, unchanged, against the emulator: Python
//! `google-auth` and Node `google-auth-library`, pinned in `interop/`.
//!
//! Each test starts its own emulator, runs one small script from `interop/`
//! through `interop/harness.rs` with a controlled environment (only `PATH`, a fresh empty `HOME` and the
//! variables under test), and checks both what the script got and what the
//! emulator saw. They are ignored by plain `cargo test` because they need the
//! clients that `scripts/setup-interop` installs; `scripts/test` runs them,
//! and when run without the clients they fail, never pass silently.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

// Shared with the library's cross-checks (crosscheck.rs).
#[path = "../../../interop/harness.rs"]
mod harness;

/// A string field of a script's JSON answer.
fn field<'a>(answer: &'a Value, name: &str) -> &'a str {
    answer[name]
        .as_str()
        .unwrap_or_else(|| panic!("the script's answer lacks string {name:?}: {answer}"))
}

/// The claims of a compact JWT, decoded without verification.
fn claims(jwt: &str) -> Value {
    let mut parts = jwt.split('.');
    let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(_), Some(payload), Some(_), None) => payload,
        _ => panic!("not a compact JWT: {jwt:?}"),
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(payload)
        .expect("the JWT payload is base64url");
    serde_json::from_slice(&bytes).expect("the JWT payload is JSON")
}

/// Now, in seconds since the epoch.
fn now() -> i64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs();
    i64::try_from(secs).expect("seconds fit i64")
}

async fn start() -> Emulator {
    Emulator::start().await.expect("start the emulator")
}

/// Asserts the claims every emulator ID token for `audience` carries.
fn assert_id_token(emu: &Emulator, claims: &Value, audience: &str) {
    assert_eq!(claims["aud"], audience, "aud, in {claims}");
    assert_eq!(claims["iss"], emu.issuer(), "iss, in {claims}");
    let exp = claims["exp"].as_i64().expect("exp is a number");
    let iat = claims["iat"].as_i64().expect("iat is a number");
    assert_eq!(exp - iat, 3600, "one hour lifetime, in {claims}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_fetch_id_token_uses_metadata_server_with_full_format() {
    let emu = start().await;
    let audience = "https://python-metadata.example.run.app";
    let host = emu.metadata_host();
    let answer = harness::run(
        harness::python("fetch_id_token.py", &[audience]),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    // Only format=full tokens carry the email.
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    assert_eq!(c["email_verified"], true, "in {c}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataPing), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::Token), 0, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_fetch_id_token_uses_service_account_key_file_token_uri() {
    let emu = start().await;
    let audience = "https://python-key-file.example.run.app";
    let dir = tempfile::tempdir().expect("a temp dir for the key file");
    let files = emu
        .write_credentials(dir.path())
        .expect("write the key file");
    let key_file = files.service_account.to_str().expect("a UTF-8 temp path");
    let answer = harness::run(
        harness::python("fetch_id_token.py", &[audience]),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::Token), 1, "{n:?}");
    assert_eq!(n.total(), 1, "nothing but the token endpoint: {n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_compute_id_token_credentials_refresh_gives_token_and_expiry() {
    let emu = start().await;
    let audience = "https://python-compute.example.run.app";
    let host = emu.metadata_host();
    let before = now();
    let answer = harness::run(
        harness::python("compute_id_token_credentials.py", &[audience]),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;
    let after = now();

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    let expiry = answer["expiry"].as_i64().expect("expiry is epoch seconds");
    assert_eq!(Some(expiry), c["exp"].as_i64(), "expiry is the token's exp");
    assert!(
        (before + 3600 - 5..=after + 3600 + 5).contains(&expiry),
        "expiry {expiry} is not about an hour after {before}..{after}"
    );
    assert_eq!(answer["valid"], true, "{answer}");
    // The constructor asks the metadata server which account it is.
    assert_eq!(
        field(&answer, "service_account_email"),
        emu.service_account_email()
    );
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::MetadataServiceAccount), 1, "{n:?}");
}

/// A token straight from the emulator's metadata identity endpoint.
async fn metadata_token(emu: &Emulator, audience: &str) -> String {
    reqwest::Client::new()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/identity",
            emu.url()
        ))
        .query(&[("audience", audience)])
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .expect("reach the identity endpoint")
        .error_for_status()
        .expect("the identity endpoint answers 200")
        .text()
        .await
        .expect("read the token")
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_verify_token_accepts_emulator_token_with_pem_certs() {
    let emu = start().await;
    let audience = "https://python-verify.example.run.app";
    let token = metadata_token(&emu, audience).await;
    let answer = harness::run(
        harness::python("verify_token.py", &[&token, audience, &emu.pem_certs_url()]),
        &[],
    )
    .await;

    let c = &answer["claims"];
    assert!(c.is_object(), "verification failed: {answer}");
    assert_id_token(&emu, c, audience);
    assert_eq!(c["sub"], emu.service_account_id(), "in {c}");
    assert_eq!(emu.counters().get(Endpoint::CertsV1), 1);
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_verify_token_rejects_wrong_audience() {
    let emu = start().await;
    let token = metadata_token(&emu, "https://python-verify.example.run.app").await;
    let answer = harness::run(
        harness::python(
            "verify_token.py",
            &[
                &token,
                "https://someone-else.example.run.app",
                &emu.pem_certs_url(),
            ],
        ),
        &[],
    )
    .await;

    assert!(answer.get("claims").is_none(), "accepted: {answer}");
    assert!(!field(&answer, "error").is_empty(), "{answer}");
    let message = field(&answer, "message");
    assert!(
        message.contains("wrong audience"),
        "rejected, but not for the audience: {answer}"
    );
    // The signature was checked with the emulator's certificates first.
    assert_eq!(emu.counters().get(Endpoint::CertsV1), 1);
}

/// Detection is left on (no `METADATA_SERVER_DETECTION`), so the library's
/// real ping of `/computeMetadata/v1/instance` decides it is on GCE.
#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_id_token_client_sends_metadata_token_as_bearer_and_caches_it() {
    let emu = start().await;
    let audience = "https://node-metadata.example.run.app";
    let host = emu.metadata_host();
    let answer = harness::run(
        harness::node(
            "id_token_client.mjs",
            &[audience, &format!("{audience}/hello")],
        ),
        // gcp-metadata prefers GCE_METADATA_IP over GCE_METADATA_HOST.
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let header = field(&answer, "authorization");
    let jwt = header
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer header: {header:?}"));
    let c = claims(jwt);
    assert_id_token(&emu, &c, audience);
    // Node asks for format=full.
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    assert_eq!(
        field(&answer, "second_authorization"),
        header,
        "the second call reuses the token"
    );
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    // On Google hardware the library trusts the BIOS and skips the ping.
    let pings = if answer["gcp_residency"] == true {
        0
    } else {
        1
    };
    assert_eq!(n.get(Endpoint::MetadataPing), pings, "{n:?}");
    assert_eq!(n.get(Endpoint::Token), 0, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_impersonated_id_token_credentials_mint_for_the_target() {
    let emu = start().await;
    let audience = "https://python-impersonated.example.run.app";
    let dir = tempfile::tempdir().expect("a temp dir for the key file");
    let files = emu
        .write_credentials(dir.path())
        .expect("write the key file");
    let key_file = files.service_account.to_str().expect("a UTF-8 temp path");
    let target = emu.target_service_account_email();
    let answer = harness::run(
        harness::python("impersonated_id_token.py", &[audience, &target, &emu.url()]),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], target.as_str(), "includeEmail, in {c}");
    assert_eq!(c["sub"], emu.target_service_account_id(), "in {c}");
    let n = emu.counters();
    assert_eq!(
        n.get(Endpoint::Token),
        1,
        "the source's access token: {n:?}"
    );
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_certificate_source_exchanges_over_mutual_tls_then_impersonates() {
    let emu = start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the files");
    let files = emu.write_credentials(dir.path()).expect("write the files");
    let creds = files
        .external_account_certificate
        .to_str()
        .expect("a UTF-8 temp path");
    let ca = files.tls_ca.to_str().expect("a UTF-8 temp path");
    let answer = harness::run(
        harness::python("certificate_external_account.py", &[]),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", creds),
            ("REQUESTS_CA_BUNDLE", ca),
        ],
    )
    .await;
    assert_eq!(answer["type"], "google.auth.identity_pool", "{answer}");
    assert!(answer["token_length"].as_u64() > Some(0), "{answer}");
    let n = emu.counters();
    // Google's client built the subject token and presented its leaf over
    // mTLS: STS accepted it only because the two match.
    assert_eq!(n.get(Endpoint::Sts), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateAccessToken), 1, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_workforce_user_refreshes_at_sts_with_its_basic_client() {
    let emu = start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the files");
    let files = emu.write_credentials(dir.path()).expect("write the files");
    let creds = files
        .external_account_authorized_user
        .to_str()
        .expect("a UTF-8 temp path");
    let answer = harness::run(
        harness::python("workforce_user.py", &[]),
        &[("GOOGLE_APPLICATION_CREDENTIALS", creds)],
    )
    .await;
    assert!(answer["token_length"].as_u64() > Some(0), "{answer}");
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 1);
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_impersonated_fetch_id_token_mints_for_the_target() {
    let emu = start().await;
    let audience = "https://node-impersonated.example.run.app";
    let host = emu.metadata_host();
    let target = emu.target_service_account_email();
    let answer = harness::run(
        harness::node(
            "impersonated_id_token.mjs",
            &[audience, &target, &emu.url()],
        ),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], target.as_str(), "includeEmail, in {c}");
    let n = emu.counters();
    assert_eq!(
        n.get(Endpoint::MetadataToken),
        1,
        "the source's access token: {n:?}"
    );
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
}

/// Runs `script` (Python or Node) on the emulator's executable-sourced
/// file with executables allowed, and checks what reached the emulator:
/// one STS exchange of the sample executable's token, accepted, then one
/// impersonation.
async fn executable_source_through(
    script: fn(&str, &[&str]) -> std::process::Command,
    name: &str,
    class: &str,
) {
    let emu = start().await;
    let dir = tempfile::tempdir().expect("a temp dir for the files");
    let files = emu
        .write_credentials(dir.path())
        .expect("write the credential files");
    let creds = files
        .external_account_executable
        .to_str()
        .expect("a UTF-8 temp path");
    let answer = harness::run(
        script(name, &[]),
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", creds),
            ("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES", "1"),
        ],
    )
    .await;
    assert_eq!(field(&answer, "class"), class, "{answer}");
    assert!(!field(&answer, "token").is_empty(), "{answer}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::Sts), 1, "one accepted exchange: {n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateAccessToken), 1, "{n:?}");
    assert!(
        dir.path().join("executable_output.json").is_file(),
        "the sample executable ran and cached its answer"
    );
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_pluggable_credentials_run_the_sample_executable_and_sts_accepts_the_exchange() {
    executable_source_through(
        harness::python,
        "external_account_token.py",
        "google.auth.pluggable.Credentials",
    )
    .await;
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_pluggable_auth_client_runs_the_sample_executable_and_sts_accepts_the_exchange() {
    executable_source_through(
        harness::node,
        "external_account_token.mjs",
        "PluggableAuthClient",
    )
    .await;
}

/// Writes the emulator's credential files; returns the AWS-sourced one.
fn aws_file(emu: &Emulator, dir: &std::path::Path) -> String {
    let files = emu.write_credentials(dir).expect("write the files");
    files
        .external_account_aws
        .to_str()
        .expect("a UTF-8 temp path")
        .to_owned()
}

/// The AWS instance metadata requests: session token, zone, role, keys.
fn aws_metadata_requests(emu: &Emulator) -> [u64; 4] {
    let n = emu.counters();
    [
        n.get(Endpoint::AwsImdsToken),
        n.get(Endpoint::AwsZone),
        n.get(Endpoint::AwsRole),
        n.get(Endpoint::AwsRoleCredentials),
    ]
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_aws_credentials_sign_get_caller_identity_that_sts_accepts() {
    let emu = start().await;
    emu.require_imdsv2(true);
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = aws_file(&emu, dir.path());
    let answer = harness::run(
        harness::python("aws_credentials.py", &["access", &file]),
        &[],
    )
    .await;

    assert!(field(&answer, "token").starts_with("ya29."), "{answer}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::Sts), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateAccessToken), 1, "{n:?}");
    // Python asks for an IMDSv2 session token for the region and again for
    // the keys.
    assert_eq!(aws_metadata_requests(&emu), [2, 1, 1, 1]);
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_aws_credentials_from_environment_variables_need_no_metadata_service() {
    let emu = start().await;
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = aws_file(&emu, dir.path());
    let (key_id, secret) = emu.aws_access_key();
    let answer = harness::run(
        harness::python("aws_credentials.py", &["access", &file]),
        &[
            ("AWS_REGION", emu.aws_region()),
            ("AWS_ACCESS_KEY_ID", &key_id),
            ("AWS_SECRET_ACCESS_KEY", &secret),
        ],
    )
    .await;

    assert!(field(&answer, "token").starts_with("ya29."), "{answer}");
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    assert_eq!(aws_metadata_requests(&emu), [0, 0, 0, 0]);
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_aws_client_signs_get_caller_identity_that_sts_accepts() {
    let emu = start().await;
    emu.require_imdsv2(true);
    let dir = tempfile::tempdir().expect("a temp dir");
    let file = aws_file(&emu, dir.path());
    let answer = harness::run(harness::node("aws_credentials.mjs", &[&file]), &[]).await;

    assert!(field(&answer, "token").starts_with("ya29."), "{answer}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::Sts), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateAccessToken), 1, "{n:?}");
    // Node, like Python, asks for a session token per metadata lookup.
    assert_eq!(aws_metadata_requests(&emu), [2, 1, 1, 1]);
}
