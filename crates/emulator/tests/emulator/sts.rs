//! STS: the token exchange of a workload identity pool's subject token,
//! and the subject-token URL of URL-sourced external accounts.

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::common::{BoxError, TestResult};

pub(crate) async fn exchange(
    emu: &Emulator,
    subject_token: &str,
    audience: &str,
) -> Result<(u16, Value), BoxError> {
    let ef: Value = serde_json::from_str(&emu.external_account_json(None))?;
    let resp = reqwest::Client::new()
        .post(emu.sts_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("audience", audience),
            ("scope", "https://www.googleapis.com/auth/cloud-platform"),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("subject_token", subject_token),
            (
                "subject_token_type",
                ef["subject_token_type"].as_str().ok_or("type")?,
            ),
        ])
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

pub(crate) fn pool_audience(emu: &Emulator) -> Result<String, BoxError> {
    let ef: Value = serde_json::from_str(&emu.external_account_json(None))?;
    Ok(ef["audience"].as_str().ok_or("audience")?.to_owned())
}

#[tokio::test]
async fn sts_exchanges_the_configured_subject_token_for_an_access_token() -> TestResult {
    let emu = Emulator::start().await?;
    let (status, body) = exchange(&emu, &emu.subject_token(), &pool_audience(&emu)?).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["access_token"].as_str().is_some());
    assert_eq!(emu.counters().get(Endpoint::Sts), 1);
    Ok(())
}

#[tokio::test]
async fn sts_rejects_other_subject_tokens_and_audiences() -> TestResult {
    let emu = Emulator::start().await?;
    let (status, body) = exchange(&emu, "forged", &pool_audience(&emu)?).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    let (status, body) = exchange(&emu, &emu.subject_token(), "//iam.googleapis.com/other").await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_target"))
    );
    Ok(())
}

#[tokio::test]
async fn subject_token_url_wants_its_header() -> TestResult {
    let emu = Emulator::start().await?;
    let bare = reqwest::get(emu.subject_token_url()).await?;
    assert_eq!(bare.status().as_u16(), 400);
    let ef: Value = serde_json::from_str(&emu.external_account_json(None))?;
    let headers = ef["credential_source"]["headers"]
        .as_object()
        .ok_or("headers")?;
    let mut req = reqwest::Client::new().get(emu.subject_token_url());
    for (k, v) in headers {
        req = req.header(k, v.as_str().ok_or("header value")?);
    }
    assert_eq!(req.send().await?.text().await?, emu.subject_token());
    Ok(())
}

#[tokio::test]
async fn sts_refuses_repeated_form_parameters() -> TestResult {
    // RFC 6749 section 3.1, which RFC 8693 token exchange builds on.
    let emu = Emulator::start().await?;
    let params = sts_params(&emu)?;
    for repeated in ["subject_token", "audience", "grant_type", "scope"] {
        let mut form = params.clone();
        let again = params
            .iter()
            .find(|(name, _)| *name == repeated)
            .cloned()
            .ok_or("a known parameter")?;
        form.push(again);
        let (status, body) = sts_form(&emu, &form).await?;
        assert_eq!(status, 400, "{repeated}: {body}");
        assert_eq!(body["error"], "invalid_request", "{repeated}");
        let desc = body["error_description"].as_str().unwrap_or_default();
        assert!(desc.contains(repeated), "{desc}");
    }
    assert_eq!(sts_form(&emu, &params).await?.0, 200);
    Ok(())
}

/// A good token exchange, as `(name, value)` pairs.
fn sts_params(emu: &Emulator) -> Result<Vec<(&'static str, String)>, BoxError> {
    let ef: Value = serde_json::from_str(&emu.external_account_json(None))?;
    Ok(vec![
        (
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange".into(),
        ),
        ("audience", pool_audience(emu)?),
        (
            "scope",
            "https://www.googleapis.com/auth/cloud-platform".into(),
        ),
        (
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:access_token".into(),
        ),
        ("subject_token", emu.subject_token()),
        (
            "subject_token_type",
            ef["subject_token_type"]
                .as_str()
                .ok_or("subject_token_type")?
                .to_owned(),
        ),
    ])
}

async fn sts_form(emu: &Emulator, form: &[(&str, String)]) -> Result<(u16, Value), BoxError> {
    let resp = reqwest::Client::new()
        .post(emu.sts_url())
        .form(form)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn sts_refuses_requests_without_a_required_field() -> TestResult {
    // STS v1 `token`: grant_type, requested_token_type, subject_token and
    // subject_token_type are required; audience is required for an external
    // credential; scope is optional.
    let emu = Emulator::start().await?;
    let params = sts_params(&emu)?;
    for (missing, error) in [
        ("grant_type", "unsupported_grant_type"),
        ("audience", "invalid_request"),
        ("requested_token_type", "invalid_request"),
        ("subject_token", "invalid_request"),
        ("subject_token_type", "invalid_request"),
    ] {
        for empty in [false, true] {
            let form: Vec<(&str, String)> = params
                .iter()
                .filter(|(name, _)| empty || *name != missing)
                .map(|(name, value)| {
                    let value = if *name == missing { "" } else { value };
                    (*name, value.to_owned())
                })
                .collect();
            let (status, body) = sts_form(&emu, &form).await?;
            assert_eq!(status, 400, "{missing} (empty: {empty}): {body}");
            assert_eq!(body["error"], error, "{missing}: {body}");
            let desc = body["error_description"].as_str().unwrap_or_default();
            assert!(desc.contains(missing), "{desc}");
        }
    }
    let without_scope: Vec<_> = params.into_iter().filter(|(n, _)| *n != "scope").collect();
    let (status, body) = sts_form(&emu, &without_scope).await?;
    assert_eq!(status, 200, "scope is optional: {body}");
    Ok(())
}

#[tokio::test]
async fn sample_executable_prints_a_response_whose_token_sts_accepts() -> TestResult {
    let emu = Emulator::start().await?;
    let dir = tempfile::tempdir()?;
    let files = emu.write_credentials(dir.path())?;
    let output_file = dir.path().join("cache.json");
    // Through sh, as the file is new (no exec of a file this process wrote).
    let run = std::process::Command::new("/bin/sh")
        .arg(&files.subject_token_executable)
        .env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", &output_file)
        .output()?;
    assert!(run.status.success(), "{run:?}");
    let response: Value = serde_json::from_slice(&run.stdout)?;
    assert_eq!(response["version"], 1, "{response}");
    assert_eq!(response["success"], true, "{response}");
    assert_eq!(
        response["token_type"],
        "urn:ietf:params:oauth:token-type:jwt"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let expires = response["expiration_time"]
        .as_u64()
        .ok_or("expiration_time")?;
    assert!(expires > now, "{response}");
    let cached: Value = serde_json::from_slice(&std::fs::read(&output_file)?)?;
    assert_eq!(cached, response, "the output file caches the same answer");
    let token = response["id_token"].as_str().ok_or("id_token")?;
    let (status, body) = exchange(&emu, token, &pool_audience(&emu)?).await?;
    assert_eq!(status, 200, "{body}");

    let file: Value = serde_json::from_slice(&std::fs::read(&files.external_account_executable)?)?;
    let executable = &file["credential_source"]["executable"];
    assert_eq!(
        executable["command"].as_str(),
        files.subject_token_executable.to_str()
    );
    assert_eq!(
        file["audience"].as_str(),
        Some(pool_audience(&emu)?.as_str())
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&files.subject_token_executable)?
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700, "owner-only and executable");
    }
    Ok(())
}
