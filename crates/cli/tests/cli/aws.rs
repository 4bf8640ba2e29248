//! An AWS-sourced `external_account` file (`environment_id` `aws1`) through
//! `token`, `curl`, `proxy` and `doctor`: keys from the environment (these
//! run in child processes, so `AWS_*` variables are theirs alone) or from
//! the emulator's AWS instance metadata service.

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::echo_service;
use crate::support::{idtoken, run, start_proxy, stderr, stdout};

/// The AWS requests: session token, zone, role, keys.
fn aws_metadata_requests(emu: &Emulator) -> [u64; 4] {
    let n = emu.counters();
    [
        n.get(Endpoint::AwsImdsToken),
        n.get(Endpoint::AwsZone),
        n.get(Endpoint::AwsRole),
        n.get(Endpoint::AwsRoleCredentials),
    ]
}

/// `AWS_REGION` and the long-term key, as on a machine outside EC2.
fn aws_env(emu: &Emulator) -> Vec<(&'static str, String)> {
    let (id, secret) = emu.aws_access_key();
    vec![
        ("AWS_REGION", emu.aws_region().to_owned()),
        ("AWS_ACCESS_KEY_ID", id),
        ("AWS_SECRET_ACCESS_KEY", secret),
    ]
}

#[tokio::test]
async fn token_with_aws_keys_in_the_environment_asks_no_metadata_service() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .envs(aws_env(&emu))
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_aws,
        )
        .args(["token", "--audience", "https://svc.example"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let token = idtoken::IdToken::parse(stdout(&out).trim()).expect("a JWT on stdout");
    assert_eq!(token.claims().aud.as_deref(), Some("https://svc.example"));
    assert_eq!(
        token.claims().sub.as_deref(),
        Some(emu.target_service_account_id().as_str())
    );
    assert_eq!(aws_metadata_requests(&emu), [0, 0, 0, 0]);
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
}

#[tokio::test]
async fn token_with_a_wrong_aws_secret_key_says_sts_refused_the_signature() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .envs(aws_env(&emu))
        .env("AWS_SECRET_ACCESS_KEY", "a-secret-key-aws-never-issued")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_aws,
        )
        .args(["token", "--audience", "https://svc.example"]))
    .await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("STS token exchange")
            && err.contains("invalid_grant")
            && err.contains("SignatureDoesNotMatch"),
        "{err}"
    );
    assert!(!err.contains("a-secret-key-aws-never-issued"), "{err}");
}

#[tokio::test]
async fn curl_with_the_aws_file_reads_the_instance_metadata_service_and_sends_a_token() {
    let emu = Emulator::start().await.expect("emulator");
    emu.require_imdsv2(true);
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_aws,
        )
        .args(["curl", &format!("http://{svc}/api")]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(format!("http://{svc}"))
    );
    assert_eq!(aws_metadata_requests(&emu), [1, 1, 1, 1]);
}

#[tokio::test]
async fn proxy_with_the_aws_file_adds_tokens() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = echo_service().await;
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let env = [(
        "GOOGLE_APPLICATION_CREDENTIALS",
        files.external_account_aws.display().to_string(),
    )];
    let target = format!("http://{svc}");
    let proxy = start_proxy(home.path(), &env, &["--target", &target]).await;
    let seen: Value = reqwest::get(format!("{}/items", proxy.url))
        .await
        .expect("proxied")
        .json()
        .await
        .expect("echo JSON");
    assert_eq!(seen["authorization"]["aud"], Value::from(target));
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    assert_eq!(aws_metadata_requests(&emu), [1, 1, 1, 1]);
}

#[tokio::test]
async fn doctor_names_the_aws_source_and_where_region_and_keys_come_from_never_the_secrets() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let files = emu.write_credentials(home.path()).expect("files");
    let out = run(idtoken(home.path())
        .envs(aws_env(&emu))
        .env("AWS_SESSION_TOKEN", "a-session-token-to-hide")
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_aws,
        )
        .args(["doctor", "--json"]))
    .await;
    let text = stdout(&out);
    let v: Value = serde_json::from_str(&text).expect("JSON");
    let flow = v["flow"].as_str().expect("flow");
    assert!(
        flow.contains("AWS (aws1)")
            && flow.contains("region us-east-2 from AWS_REGION")
            && flow.contains(
                "credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
            ),
        "{flow}"
    );
    let (_, secret) = emu.aws_access_key();
    for hidden in [secret.as_str(), "a-session-token-to-hide"] {
        assert!(!text.contains(hidden), "{text}");
        assert!(!stderr(&out).contains(hidden), "{}", stderr(&out));
    }

    // Without the variables: the instance metadata URLs.
    let out = run(idtoken(home.path())
        .env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            &files.external_account_aws,
        )
        .args(["doctor", "--json"]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let flow = v["flow"].as_str().expect("flow");
    assert!(
        flow.contains("region from http://127.0.0.1")
            && flow.contains("(region_url)")
            && flow.contains("credentials of the instance role at http://127.0.0.1")
            && flow.contains("IMDSv2"),
        "{flow}"
    );
}
