//! The gcloud user's `refresh_token` grant, and the credential files.

use idtoken_emulator::Emulator;
use serde_json::Value;

use crate::common::{BoxError, TestResult, claims};

async fn refresh(emu: &Emulator, refresh_token: &str) -> Result<(u16, Value), BoxError> {
    let user: Value = serde_json::from_str(&emu.authorized_user_json())?;
    let resp = reqwest::Client::new()
        .post(emu.token_uri())
        .form(&[
            ("grant_type", "refresh_token"),
            ("client_id", user["client_id"].as_str().ok_or("client_id")?),
            (
                "client_secret",
                user["client_secret"].as_str().ok_or("secret")?,
            ),
            ("refresh_token", refresh_token),
        ])
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn refresh_grant_answers_access_token_and_id_token_for_the_client_id() -> TestResult {
    let emu = Emulator::start().await?;
    let (status, body) = refresh(&emu, &emu.user_refresh_token()).await?;
    assert_eq!(status, 200, "{body}");
    for field in [
        "access_token",
        "expires_in",
        "id_token",
        "scope",
        "token_type",
    ] {
        assert!(body.get(field).is_some(), "no {field} in {body}");
    }
    let c = claims(body["id_token"].as_str().ok_or("id_token")?)?;
    assert_eq!(c["aud"], emu.user_client_id());
    assert_eq!(c["email"], emu.user_email());
    Ok(())
}

#[tokio::test]
async fn revoked_or_unknown_refresh_token_is_invalid_grant() -> TestResult {
    let emu = Emulator::start().await?;
    let (status, body) = refresh(&emu, "1//not-ours").await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    emu.revoke_refresh_token();
    let (status, body) = refresh(&emu, &emu.user_refresh_token()).await?;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(
        body["error_description"],
        "Token has been expired or revoked."
    );
    Ok(())
}

#[tokio::test]
async fn every_credential_file_is_written() -> TestResult {
    let emu = Emulator::start().await?;
    let dir = tempfile::tempdir()?;
    let f = emu.write_credentials(dir.path())?;
    for (path, ty) in [
        (&f.authorized_user, "authorized_user"),
        (
            &f.impersonated_from_service_account,
            "impersonated_service_account",
        ),
        (&f.impersonated_from_user, "impersonated_service_account"),
        (&f.external_account_file, "external_account"),
        (&f.external_account_url, "external_account"),
    ] {
        let v: Value = serde_json::from_slice(&std::fs::read(path)?)?;
        assert_eq!(v["type"], ty, "{}", path.display());
    }
    assert_eq!(
        std::fs::read_to_string(&f.subject_token)?,
        emu.subject_token()
    );
    Ok(())
}
