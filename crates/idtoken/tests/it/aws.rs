//! AWS-sourced external accounts (`environment_id` `aws1`) against the
//! emulator's AWS instance metadata service and its STS, which checks the
//! SigV4 signature as AWS would. The environment-variable paths
//! (`AWS_REGION`, `AWS_ACCESS_KEY_ID`, ...) run in child processes, in the
//! CLI's tests, so this process's environment stays untouched: these tests
//! expect no AWS variables set.

use std::sync::Arc;
use std::time::Duration;

use idtoken::{Credentials, Error};
use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::{Value, json};

use crate::common::*;

const AUDIENCE: &str = "https://aws-caller.example.run.app";

/// The AWS requests of the emulator so far: session token, zone, role,
/// role keys.
fn imds(emu: &Emulator) -> [u64; 4] {
    let n = emu.counters();
    [
        n.get(Endpoint::AwsImdsToken),
        n.get(Endpoint::AwsZone),
        n.get(Endpoint::AwsRole),
        n.get(Endpoint::AwsRoleCredentials),
    ]
}

fn aws_file(emu: &Emulator, imdsv2: bool) -> Value {
    serde_json::from_str(&emu.aws_external_account_json(imdsv2)).expect("JSON")
}

fn load(doc: &Value) -> Result<Credentials, Error> {
    Credentials::from_json(doc.to_string().as_bytes(), "aws test file")
}

/// The role's secret key and session token: never in an error or `Debug`.
fn assert_no_aws_secrets(emu: &Emulator, shown: &str) {
    let (_, secret, session) = emu.aws_role_key();
    let (_, user_secret) = emu.aws_access_key();
    for s in [secret, session, user_secret] {
        assert!(!shown.contains(&s), "an AWS secret leaked in {shown}");
    }
}

fn assert_no_aws_variables() {
    for v in [
        "AWS_REGION",
        "AWS_DEFAULT_REGION",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
    ] {
        assert!(
            std::env::var_os(v).is_none(),
            "{v} is set in the test environment; these tests read the instance metadata service"
        );
    }
}

#[tokio::test]
async fn aws_imdsv2_file_mints_through_the_metadata_service_sts_and_iam() {
    assert_no_aws_variables();
    let emu = emulator().await;
    emu.require_imdsv2(true);
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_aws).expect("loads");
    let token = creds.token_source(AUDIENCE).token().await.expect("a token");
    assert_eq!(token.claims().aud.as_deref(), Some(AUDIENCE));
    assert_eq!(
        token.claims().sub.as_deref(),
        Some(emu.target_service_account_id().as_str())
    );
    // One session token for the whole fetch, then zone, role, keys.
    assert_eq!(imds(&emu), [1, 1, 1, 1]);
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    assert_no_aws_secrets(&emu, &format!("{creds:?}"));
}

#[tokio::test]
async fn aws_file_without_imdsv2_url_uses_imdsv1_and_names_the_fix_when_v2_is_required() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let creds = load(&aws_file(&emu, false)).expect("loads");
    creds
        .token_source(AUDIENCE)
        .token()
        .await
        .expect("IMDSv1 works");
    assert_eq!(imds(&emu), [0, 1, 1, 1]);

    emu.require_imdsv2(true);
    let err = load(&aws_file(&emu, false))
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("IMDSv2 is required")
        .to_string();
    assert!(
        err.contains("region_url")
            && err.contains("401")
            && err.contains("imdsv2_session_token_url"),
        "{err}"
    );
}

#[tokio::test]
async fn aws_role_credentials_are_kept_until_their_expiration_and_the_region_for_good() {
    assert_no_aws_variables();
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds = load(&aws_file(&emu, true))
        .expect("loads")
        .with_clock(Arc::new(clock.clone()));
    let source = creds.token_source(AUDIENCE);
    source.token().await.expect("first token");
    assert_eq!(imds(&emu), [1, 1, 1, 1]);

    // Tokens expired, the role's keys (6 h) not: STS again, no IMDS.
    clock.advance(Duration::from_secs(2 * 3600));
    source.token().await.expect("second token");
    assert_eq!(emu.counters().get(Endpoint::Sts), 2);
    assert_eq!(imds(&emu), [1, 1, 1, 1]);

    // Past the keys' Expiration: new keys, the region still known.
    clock.advance(Duration::from_secs(5 * 3600));
    source.token().await.expect("third token");
    assert_eq!(emu.counters().get(Endpoint::Sts), 3);
    assert_eq!(imds(&emu), [2, 1, 2, 2]);
}

#[tokio::test]
async fn aws_without_credentials_anywhere_names_the_variables_and_the_field() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let mut doc = aws_file(&emu, false);
    doc["credential_source"]
        .as_object_mut()
        .expect("object")
        .remove("url");
    let err = load(&doc)
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("no credentials")
        .to_string();
    assert!(
        err.contains("AWS_ACCESS_KEY_ID")
            && err.contains("AWS_SECRET_ACCESS_KEY")
            && err.contains("credential_source.url"),
        "{err}"
    );
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

#[tokio::test]
async fn aws_without_a_region_anywhere_names_the_variables_and_the_field() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let mut doc = aws_file(&emu, false);
    doc["credential_source"]
        .as_object_mut()
        .expect("object")
        .remove("region_url");
    let err = load(&doc)
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("no region")
        .to_string();
    assert!(
        err.contains("AWS_REGION") && err.contains("credential_source.region_url"),
        "{err}"
    );
}

#[tokio::test]
async fn aws_metadata_service_down_names_the_step_and_url() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let mut doc = aws_file(&emu, true);
    let down = format!("http://{closed}/latest/api/token");
    doc["credential_source"]["imdsv2_session_token_url"] = json!(down);
    let err = load(&doc)
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("IMDS is down");
    let text = err.to_string();
    assert!(
        text.contains("IMDSv2 session token")
            && text.contains("imdsv2_session_token_url")
            && text.contains(&down),
        "{text}"
    );
    assert!(err.is_transient(), "{err:?}");
}

#[tokio::test]
async fn aws_region_outside_aws_is_refused_by_sts_naming_the_region() {
    assert_no_aws_variables();
    let emu = emulator().await;
    emu.inject_fault(Endpoint::AwsZone, Fault::Body("mars-north-1a".into()), 1);
    let err = load(&aws_file(&emu, true))
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("STS refuses the region")
        .to_string();
    assert!(
        err.contains("invalid_grant")
            && err.contains("\"mars-north-1\" (from the url) is not an AWS region"),
        "{err}"
    );
}

#[tokio::test]
async fn aws_verification_url_in_another_region_than_the_signature_is_refused() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let mut doc = aws_file(&emu, true);
    doc["credential_source"]["regional_cred_verification_url"] =
        json!("https://sts.us-west-2.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15");
    let err = load(&doc)
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("regions differ")
        .to_string();
    assert!(
        err.contains("invalid_grant")
            && err.contains(
                "the signature is for region \"us-east-2\" but the url is in \"us-west-2\""
            ),
        "{err}"
    );
}

#[tokio::test]
async fn aws_wrong_secret_key_is_refused_by_sts_and_no_secret_is_shown() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let (id, _, session) = emu.aws_role_key();
    let wrong = json!({
        "Code": "Success",
        "AccessKeyId": id,
        "SecretAccessKey": "not-the-secret-key-of-this-access-key",
        "Token": session,
        "Expiration": "2099-01-01T00:00:00Z",
    });
    emu.inject_fault(
        Endpoint::AwsRoleCredentials,
        Fault::Body(wrong.to_string()),
        1,
    );
    let err = load(&aws_file(&emu, true))
        .expect("loads")
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("STS refuses the signature");
    let text = err.to_string();
    assert!(
        text.contains("STS token exchange")
            && text.contains("invalid_grant")
            && text.contains("SignatureDoesNotMatch")
            && text.contains("check the AWS keys"),
        "{text}"
    );
    assert_no_aws_secrets(&emu, &format!("{err}\n{err:?}"));
    assert!(!text.contains("not-the-secret-key"), "{text}");
}

#[tokio::test]
async fn aws_metadata_answers_that_are_not_a_zone_a_role_or_keys_are_named() {
    assert_no_aws_variables();
    let emu = emulator().await;
    let cases = [
        (Endpoint::AwsZone, "", "region_url", "not a region name"),
        (
            Endpoint::AwsRole,
            "../../../etc",
            "credential_source.url",
            "not an IAM role name",
        ),
        (
            Endpoint::AwsRoleCredentials,
            r#"{"Code":"Success","Token":"t"}"#,
            "credential_source.url/<role>",
            "no AccessKeyId or SecretAccessKey",
        ),
        (
            Endpoint::AwsRoleCredentials,
            "<html>",
            "credential_source.url/<role>",
            "not the JSON",
        ),
    ];
    for (endpoint, body, field, why) in cases {
        emu.inject_fault(endpoint, Fault::Body(body.into()), 1);
        let err = load(&aws_file(&emu, false))
            .expect("loads")
            .token_source(AUDIENCE)
            .token()
            .await
            .expect_err(body)
            .to_string();
        assert!(err.contains(field) && err.contains(why), "{body}: {err}");
    }
}

#[test]
fn aws_file_fields_are_checked_when_loaded() {
    let base = json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "imdsv2_session_token_url": "http://[fd00:ec2::254]/latest/api/token",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    });
    load(&base).expect("Google's own AWS file loads");
    let cases = [
        (
            "environment_id",
            json!("aws2"),
            "credential_source.environment_id",
            "\"2\" is not supported",
        ),
        (
            "environment_id",
            json!("aws"),
            "credential_source.environment_id",
            "AWS version \"\" is not supported",
        ),
        (
            "regional_cred_verification_url",
            json!(""),
            "credential_source.regional_cred_verification_url",
            "missing",
        ),
        (
            "regional_cred_verification_url",
            json!("http://sts.{region}.amazonaws.com"),
            "credential_source.regional_cred_verification_url",
            "https://",
        ),
        (
            "region_url",
            json!("http://metadata.evil.example/zone"),
            "credential_source.region_url",
            "plain http://",
        ),
        (
            "url",
            json!("http://10.0.0.1/creds"),
            "credential_source.url",
            "plain http://",
        ),
        (
            "imdsv2_session_token_url",
            json!("ftp://169.254.169.254/token"),
            "credential_source.imdsv2_session_token_url",
            "not an http(s) URL",
        ),
    ];
    for (field, value, named, why) in cases {
        let mut doc = base.clone();
        doc["credential_source"][field] = value;
        let err = load(&doc)
            .err()
            .unwrap_or_else(|| panic!("{field} accepted"))
            .to_string();
        assert!(err.contains(named) && err.contains(why), "{field}: {err}");
    }
    // Another environment is no AWS source: Google's clients read the
    // file or URL beside it.
    let mut other = base.clone();
    other["credential_source"] = json!({"environment_id": "azure1", "file": "/run/token"});
    let flow = load(&other).expect("a file source").flow_description();
    assert!(flow.contains("subject token file /run/token"), "{flow}");
}

#[test]
fn aws_flow_description_names_the_source_and_the_metadata_urls() {
    assert_no_aws_variables();
    let doc = json!({
        "type": "external_account",
        "audience": "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/aws",
        "subject_token_type": "urn:ietf:params:aws:token-type:aws4_request",
        "credential_source": {
            "environment_id": "aws1",
            "region_url": "http://169.254.169.254/latest/meta-data/placement/availability-zone",
            "url": "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "imdsv2_session_token_url": "http://169.254.169.254/latest/api/token",
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        },
    });
    let flow = load(&doc).expect("loads").flow_description();
    assert!(
        flow.contains("AWS (aws1)")
            && flow.contains("region from http://169.254.169.254/latest/meta-data/placement/availability-zone (region_url)")
            && flow.contains("credentials of the instance role at http://169.254.169.254/latest/meta-data/iam/security-credentials (url)")
            && flow.contains("IMDSv2"),
        "{flow}"
    );
}

/// An AWS supplier handing out the emulator's role keys (or `keys`),
/// counting how often it is asked for the region and for keys.
struct Keys {
    region: String,
    keys: Result<idtoken::external_account::AwsSecurityCredentials, String>,
    asked: Arc<std::sync::Mutex<(u32, u32)>>,
}

impl idtoken::external_account::AwsSecurityCredentialsSupplier for Keys {
    fn aws_region<'a>(
        &'a self,
        _: &'a idtoken::external_account::SubjectTokenContext,
    ) -> idtoken::external_account::SupplierFuture<'a> {
        Box::pin(async move {
            self.asked.lock().expect("lock").0 += 1;
            Ok(self.region.clone())
        })
    }

    fn aws_security_credentials<'a>(
        &'a self,
        context: &'a idtoken::external_account::SubjectTokenContext,
    ) -> idtoken::external_account::AwsCredentialsFuture<'a> {
        Box::pin(async move {
            assert_eq!(
                context.subject_token_type(),
                "urn:ietf:params:aws:token-type:aws4_request"
            );
            self.asked.lock().expect("lock").1 += 1;
            self.keys.clone().map_err(Into::into)
        })
    }
}

fn supplier_credentials(
    emu: &Emulator,
    region: &str,
    keys: Result<idtoken::external_account::AwsSecurityCredentials, String>,
) -> (Credentials, Arc<std::sync::Mutex<(u32, u32)>>) {
    let file = aws_file(emu, false);
    let asked = Arc::new(std::sync::Mutex::new((0, 0)));
    let creds = idtoken::external_account::Builder::new(
        file["audience"].as_str().expect("audience"),
        file["subject_token_type"].as_str().expect("type"),
    )
    .token_url(emu.sts_url())
    .service_account_impersonation_url(
        file["service_account_impersonation_url"]
            .as_str()
            .expect("url"),
    )
    .aws_security_credentials_supplier(Keys {
        region: region.to_owned(),
        keys,
        asked: asked.clone(),
    })
    .build()
    .expect("builds");
    (creds, asked)
}

fn role_keys(emu: &Emulator) -> idtoken::external_account::AwsSecurityCredentials {
    let (id, secret, session) = emu.aws_role_key();
    idtoken::external_account::AwsSecurityCredentials::new(id, secret).with_session_token(session)
}

#[tokio::test]
async fn aws_supplier_keys_sign_a_request_sts_accepts_asking_the_region_once() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let (creds, asked) = supplier_credentials(&emu, "us-east-2", Ok(role_keys(&emu)));
    let creds = creds.with_clock(Arc::new(clock.clone()));
    assert!(
        creds.origin().contains("aws_security_credentials_supplier"),
        "{}",
        creds.origin()
    );
    let source = creds.token_source(AUDIENCE);
    source.token().await.expect("first token");
    clock.advance(Duration::from_secs(2 * 3600));
    source.token().await.expect("second token");
    assert_eq!(emu.counters().get(Endpoint::Sts), 2);
    assert_eq!(imds(&emu), [0, 0, 0, 0]);
    // The region once, as Google's clients; keys at each fetch.
    assert_eq!(*asked.lock().expect("lock"), (1, 2));
    assert_no_aws_secrets(&emu, &format!("{creds:?}"));
}

#[tokio::test]
async fn aws_supplier_long_term_keys_are_accepted_too() {
    let emu = emulator().await;
    let (id, secret) = emu.aws_access_key();
    let keys = idtoken::external_account::AwsSecurityCredentials::new(id, secret);
    let (creds, _) = supplier_credentials(&emu, "us-east-2", Ok(keys));
    creds.token_source(AUDIENCE).token().await.expect("a token");
}

#[tokio::test]
async fn aws_supplier_failures_name_the_supplier_method() {
    let emu = emulator().await;
    let (creds, _) = supplier_credentials(&emu, "us-east-2", Err("the vault is sealed".into()));
    let err = creds
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("no keys")
        .to_string();
    assert!(
        err.contains(
            "AwsSecurityCredentialsSupplier::aws_security_credentials: the vault is sealed"
        ),
        "{err}"
    );

    let (creds, asked) = supplier_credentials(&emu, "US East", Ok(role_keys(&emu)));
    let err = creds
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("not a region")
        .to_string();
    assert!(
        err.contains("AwsSecurityCredentialsSupplier::aws_region") && err.contains("\"US East\""),
        "{err}"
    );
    assert_eq!(
        asked.lock().expect("lock").1,
        0,
        "no keys asked before the region passes"
    );
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

/// idtoken's subject token for the emulator's AWS file, signed at the
/// library's `clock` time, as a stand-in STS received it.
async fn signed_subject_token(emu: &Emulator, clock: Option<idtoken::ManualClock>) -> String {
    let (capture_url, seen) = capturing_sts().await;
    let mut doc = aws_file(emu, false);
    doc["token_url"] = json!(capture_url);
    let mut creds = load(&doc).expect("loads");
    if let Some(clock) = clock {
        creds = creds.with_clock(Arc::new(clock));
    }
    creds
        .token_source(AUDIENCE)
        .token()
        .await
        .expect_err("the stand-in refuses");
    let token = seen.lock().expect("lock").first().cloned();
    token.expect("a subject token")
}

/// The emulator's STS answer to `subject_token` for the AWS provider.
async fn exchange(emu: &Emulator, subject_token: &str) -> (u16, String) {
    let audience = aws_file(emu, false)["audience"]
        .as_str()
        .expect("audience")
        .to_owned();
    let resp = reqwest::Client::new()
        .post(emu.sts_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience.as_str()),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                "urn:ietf:params:aws:token-type:aws4_request",
            ),
        ])
        .send()
        .await
        .expect("STS answers");
    (resp.status().as_u16(), resp.text().await.expect("a body"))
}

fn decode(token: &str) -> Value {
    let json = percent_encoding::percent_decode_str(token)
        .decode_utf8()
        .expect("UTF-8");
    serde_json::from_str(&json).expect("JSON")
}

fn encode(doc: &Value) -> String {
    percent_encoding::utf8_percent_encode(&doc.to_string(), percent_encoding::NON_ALPHANUMERIC)
        .to_string()
}

/// `doc` with the header `name` set to `value` (or removed with `None`).
fn with_header(doc: &Value, name: &str, value: Option<&str>) -> Value {
    let mut doc = doc.clone();
    let headers = doc["headers"].as_array_mut().expect("headers");
    headers.retain(|h| {
        h["key"]
            .as_str()
            .is_none_or(|k| !k.eq_ignore_ascii_case(name))
    });
    if let Some(v) = value {
        headers.push(json!({"key": name, "value": v}));
    }
    doc
}

#[tokio::test]
async fn aws_sts_refuses_each_broken_part_of_a_signed_request() {
    let emu = emulator().await;
    let token = signed_subject_token(&emu, None).await;
    let (status, body) = exchange(&emu, &token).await;
    assert_eq!(status, 200, "the untouched token is accepted: {body}");

    let doc = decode(&token);
    let auth = doc["headers"][0]["value"]
        .as_str()
        .expect("auth")
        .to_owned();
    let (role_id, _, _) = emu.aws_role_key();
    let mut get = doc.clone();
    get["method"] = json!("GET");
    let mut assume_role = doc.clone();
    assume_role["url"] =
        json!("https://sts.us-east-2.amazonaws.com?Action=AssumeRole&Version=2011-06-15");
    let cases: Vec<(String, &str)> = vec![
        ("not JSON".into(), "not a serialized AWS request"),
        (encode(&get), "method \\\"GET\\\""),
        (encode(&assume_role), "lacks Action=GetCallerIdentity"),
        (
            encode(&with_header(&doc, "host", Some("sts.amazonaws.com"))),
            "the host header is not the url's host",
        ),
        (
            encode(&with_header(
                &doc,
                "x-goog-cloud-target-resource",
                Some("//iam.googleapis.com/other"),
            )),
            "is not the audience of the exchange",
        ),
        (
            encode(&with_header(&doc, "x-amz-security-token", None)),
            "InvalidClientTokenId: the x-amz-security-token is not the key's session token",
        ),
        (
            encode(&with_header(
                &doc,
                "Authorization",
                Some(&auth.replace(&role_id, "AKIAUNKNOWNKEY000000")),
            )),
            "InvalidClientTokenId: the access key id is not one of the account's",
        ),
        (
            encode(&with_header(
                &doc,
                "Authorization",
                Some(&auth.replace(";x-amz-security-token", "")),
            )),
            "x-amz-security-token is not among the SignedHeaders",
        ),
        (
            encode(&with_header(&doc, "x-amz-date", Some("20991231T000000Z"))),
            "the credential scope's date is not the date of x-amz-date",
        ),
        (
            encode(&with_header(
                &doc,
                "Authorization",
                Some(&format!("{}0", auth)),
            )),
            "SignatureDoesNotMatch",
        ),
    ];
    for (bad, why) in cases {
        let (status, body) = exchange(&emu, &bad).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(
            body.contains("invalid_grant") && body.contains(why),
            "{why}: {body}"
        );
    }
}

#[tokio::test]
async fn aws_sts_refuses_a_request_signed_more_than_15_minutes_ago() {
    let emu = emulator().await;
    let late = manual_clock();
    late.set(std::time::SystemTime::now() - Duration::from_secs(16 * 60));
    let token = signed_subject_token(&emu, Some(late)).await;
    let (status, body) = exchange(&emu, &token).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body.contains("invalid_grant") && body.contains("more than 15 minutes"),
        "{body}"
    );

    let recent = manual_clock();
    recent.set(std::time::SystemTime::now() - Duration::from_secs(14 * 60));
    let token = signed_subject_token(&emu, Some(recent)).await;
    let (status, body) = exchange(&emu, &token).await;
    assert_eq!(status, 200, "14 minutes is within AWS's limit: {body}");
}
