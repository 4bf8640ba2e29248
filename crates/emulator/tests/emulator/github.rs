//! GitHub Actions' OIDC token endpoint (`ACTIONS_ID_TOKEN_REQUEST_URL`), and
//! STS taking its tokens as the pool's subject tokens as Google does for a
//! provider whose issuer is GitHub's.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::Value;

use crate::common::{BoxError, TestResult, claims};
use crate::sts::{exchange, pool_audience};

/// GETs the request URL with `&audience=` as a job's client does, with
/// `bearer` as the `Authorization` value when given.
async fn github_token(
    emu: &Emulator,
    audience: Option<&str>,
    bearer: Option<&str>,
) -> Result<(u16, Value), BoxError> {
    let mut url = reqwest::Url::parse(&emu.github_id_token_request_url())?;
    if let Some(aud) = audience {
        url.query_pairs_mut().append_pair("audience", aud);
    }
    let mut req = reqwest::Client::new().get(url);
    if let Some(b) = bearer {
        req = req.header("authorization", b);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

/// The audience `google-github-actions/auth` asks GitHub for by default.
fn provider_audience(emu: &Emulator) -> Result<String, BoxError> {
    Ok(format!("https:{}", pool_audience(emu)?))
}

#[tokio::test]
async fn the_token_endpoint_wants_the_jobs_request_token() -> TestResult {
    let emu = Emulator::start().await?;
    let aud = provider_audience(&emu)?;
    let (status, body) = github_token(&emu, Some(&aud), None).await?;
    assert_eq!(status, 401, "{body}");
    let (status, _) = github_token(&emu, Some(&aud), Some("Bearer not-the-token")).await?;
    assert_eq!(status, 401);
    let bearer = format!("Bearer {}", emu.github_id_token_request_token());
    let (status, body) = github_token(&emu, Some(&aud), Some(&bearer)).await?;
    assert_eq!(status, 200, "{body}");
    let c = claims(body["value"].as_str().ok_or("value")?)?;
    assert_eq!(c["iss"], "https://token.actions.githubusercontent.com");
    assert_eq!(c["aud"], aud.as_str());
    assert_eq!(c["sub"], "repo:octo-org/octo-repo:ref:refs/heads/main");
    assert_eq!(c["repository"], "octo-org/octo-repo");
    let (_, body) = github_token(&emu, None, Some(&bearer)).await?;
    let c = claims(body["value"].as_str().ok_or("value")?)?;
    assert_eq!(c["aud"], "https://github.com/octo-org", "GitHub's default");
    Ok(())
}

#[tokio::test]
async fn the_token_endpoint_is_counted_and_can_fail_on_request() -> TestResult {
    let emu = Emulator::start().await?;
    let aud = provider_audience(&emu)?;
    let bearer = format!("Bearer {}", emu.github_id_token_request_token());
    emu.inject_fault(Endpoint::GithubIdToken, Fault::Status(503), 1);
    let (status, body) = github_token(&emu, Some(&aud), Some(&bearer)).await?;
    assert_eq!(status, 503, "{body}");
    assert!(body["message"].is_string(), "GitHub's error shape: {body}");
    let (status, body) = github_token(&emu, Some(&aud), Some(&bearer)).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(emu.counters().get(Endpoint::GithubIdToken), 2);
    Ok(())
}

#[tokio::test]
async fn sts_takes_a_github_token_only_for_the_providers_audience() -> TestResult {
    let emu = Emulator::start().await?;
    let bearer = format!("Bearer {}", emu.github_id_token_request_token());
    let pool = pool_audience(&emu)?;
    let (_, body) = github_token(&emu, Some(&provider_audience(&emu)?), Some(&bearer)).await?;
    let good = body["value"].as_str().ok_or("value")?.to_owned();
    let (status, body) = exchange(&emu, &good, &pool).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some());

    let (_, body) = github_token(&emu, None, Some(&bearer)).await?;
    let other = body["value"].as_str().ok_or("value")?.to_owned();
    let (status, body) = exchange(&emu, &other, &pool).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    let why = body["error_description"].as_str().ok_or("description")?;
    assert!(
        why.contains("audience") && why.contains("https://github.com/octo-org"),
        "{why}"
    );

    // One signature byte off: the provider's key set does not vouch for it.
    let mut forged = good.into_bytes();
    let last = forged.len() - 2;
    forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged)?;
    let (status, body) = exchange(&emu, &forged, &pool).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"], "invalid_grant");
    Ok(())
}

#[tokio::test]
async fn sts_refuses_an_expired_github_token() -> TestResult {
    let offset = Arc::new(AtomicU64::new(0));
    let clock_offset = Arc::clone(&offset);
    let emu = Emulator::builder()
        .clock(Arc::new(move || {
            SystemTime::now() + Duration::from_secs(clock_offset.load(Ordering::Relaxed))
        }))
        .start()
        .await?;
    let bearer = format!("Bearer {}", emu.github_id_token_request_token());
    let (_, body) = github_token(&emu, Some(&provider_audience(&emu)?), Some(&bearer)).await?;
    let token = body["value"].as_str().ok_or("value")?.to_owned();
    offset.store(301, Ordering::Relaxed);
    let (status, body) = exchange(&emu, &token, &pool_audience(&emu)?).await?;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error_description"], "The ID Token has expired.");
    Ok(())
}
