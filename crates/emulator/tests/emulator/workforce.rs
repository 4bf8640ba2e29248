//! STS's refresh grant for workforce users (`external_account_authorized_user`):
//! the OAuth client as HTTP Basic, refused otherwise, as STS does.

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::common::{BoxError, TestResult};

fn file(emu: &Emulator) -> Result<Value, BoxError> {
    Ok(serde_json::from_str(
        &emu.external_account_authorized_user_json(),
    )?)
}

async fn refresh(
    emu: &Emulator,
    basic: Option<(&str, &str)>,
    refresh_token: &str,
) -> Result<(u16, Value), BoxError> {
    let mut req = reqwest::Client::new()
        .post(emu.sts_oauthtoken_url())
        .form(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ]);
    if let Some((id, secret)) = basic {
        req = req.basic_auth(id, Some(secret));
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn workforce_refresh_with_the_basic_client_answers_an_access_token_only() -> TestResult {
    let emu = Emulator::start().await?;
    let f = file(&emu)?;
    let client = (
        f["client_id"].as_str().ok_or("client_id")?,
        f["client_secret"].as_str().ok_or("client_secret")?,
    );
    assert_eq!(f["token_url"], emu.sts_oauthtoken_url());
    let (status, body) = refresh(&emu, Some(client), &emu.workforce_refresh_token()).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some(), "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body.get("id_token").is_none(), "{body}");
    assert_eq!(emu.counters().get(Endpoint::StsOauthToken), 1);
    Ok(())
}

#[tokio::test]
async fn workforce_refresh_refuses_a_missing_or_wrong_client_and_a_bad_or_revoked_token()
-> TestResult {
    let emu = Emulator::start().await?;
    let f = file(&emu)?;
    let id = f["client_id"].as_str().ok_or("client_id")?;
    let secret = f["client_secret"].as_str().ok_or("client_secret")?;
    let good = emu.workforce_refresh_token();

    let (status, body) = refresh(&emu, None, &good).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = refresh(&emu, Some((id, "wrong")), &good).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = refresh(&emu, Some((id, secret)), "other").await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    emu.revoke_workforce_refresh_token();
    let (status, body) = refresh(&emu, Some((id, secret)), &good).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );

    let resp = reqwest::Client::new()
        .post(emu.sts_oauthtoken_url())
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "password"), ("refresh_token", good.as_str())])
        .send()
        .await?;
    assert_eq!(resp.status().as_u16(), 400);
    let body: Value = resp.json().await?;
    assert_eq!(body["error"], "unsupported_grant_type");
    Ok(())
}
