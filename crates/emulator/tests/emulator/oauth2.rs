//! The token endpoint's JWT-bearer grant: ID tokens, access tokens, and
//! precise refusals.

use idtoken_emulator::Emulator;
use serde_json::json;

use crate::common::{
    BoxError, JWT_BEARER, TestResult, grant, id_assertion, key_file, now, sign, verify,
};

#[tokio::test]
async fn good_assertion_returns_id_token_that_verifies_against_jwks() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let aud = "https://svc-123.europe-west1.run.app";
    let (status, body) = grant(&emu, &id_assertion(&emu, &kf, aud)?).await?;
    assert_eq!(status, 200, "{body}");
    let token = body["id_token"].as_str().ok_or("no id_token")?;
    let c = verify(&emu, token, aud).await?;
    assert_eq!(c["email"], kf.email.as_str());
    assert_eq!(c["azp"], kf.email.as_str());
    assert_eq!(c["email_verified"], true);
    Ok(())
}

#[tokio::test]
async fn python_style_assertion_with_google_token_audience_is_accepted() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now();
    // Python always sends Google's token URL as aud, and no kid check is needed.
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": "https://oauth2.googleapis.com/token",
                "iat": iat, "exp": iat + 3600, "target_audience": "https://x.example"}),
    )?;
    let (status, body) = grant(&emu, &assertion).await?;
    assert_eq!(status, 200, "{body}");
    Ok(())
}

#[tokio::test]
async fn go_style_backdated_assertion_is_accepted() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now() - 10;
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 3600,
                "target_audience": "https://x.example"}),
    )?;
    assert_eq!(grant(&emu, &assertion).await?.0, 200);
    Ok(())
}

#[tokio::test]
async fn tampered_assertion_is_invalid_grant_with_signature_reason() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let good = id_assertion(&emu, &kf, "https://a.example")?;
    let forged = id_assertion(&emu, &kf, "https://b.example")?;
    // b's claims under a's signature.
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = forged.split('.').nth(1).ok_or("segment")?;
    let (status, body) = grant(&emu, &parts.join(".")).await?;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    assert_eq!(body["error_description"], "Invalid JWT Signature.");
    Ok(())
}

#[tokio::test]
async fn expired_assertion_is_invalid_grant_naming_exp() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now() - 7200;
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 3600,
                "target_audience": "https://a.example"}),
    )?;
    let (status, body) = grant(&emu, &assertion).await?;
    assert_eq!(status, 400);
    assert_eq!(body["error"], "invalid_grant");
    let desc = body["error_description"].as_str().ok_or("description")?;
    assert!(desc.contains("Check your iat and exp values"), "{desc}");
    assert!(desc.contains("expired"), "{desc}");
    Ok(())
}

#[tokio::test]
async fn overlong_and_future_assertions_are_invalid_grant() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let now = now();
    for (iat, exp, why) in [
        (now, now + 7200, "more than 3600 s"),
        (now + 600, now + 1200, "after now"),
    ] {
        let assertion = sign(
            &kf,
            &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": exp,
                    "target_audience": "a"}),
        )?;
        let (status, body) = grant(&emu, &assertion).await?;
        assert_eq!(status, 400);
        let desc = body["error_description"].as_str().ok_or("description")?;
        assert!(desc.contains(why), "{desc}");
    }
    Ok(())
}

#[tokio::test]
async fn unknown_issuer_and_wrong_kid_and_garbage_are_invalid_grant() -> TestResult {
    let emu = Emulator::start().await?;
    let mut kf = key_file(&emu)?;
    let iat = now();
    let claims = json!({"iss": "someone@else.iam.gserviceaccount.com", "aud": emu.token_uri(),
                        "iat": iat, "exp": iat + 60, "target_audience": "a"});
    let (status, body) = grant(&emu, &sign(&kf, &claims)?).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
    assert!(
        body["error_description"]
            .to_string()
            .contains("unknown client_email")
    );

    kf.kid = "0123abcd".into();
    let (status, body) = grant(&emu, &id_assertion(&emu, &kf, "a")?).await?;
    assert_eq!(status, 400);
    assert!(
        body["error_description"].to_string().contains("kid"),
        "{body}"
    );

    for garbage in ["", "not-a-jwt", "a.b.c", "e30.e30.e30"] {
        let (status, body) = grant(&emu, garbage).await?;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{garbage}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn scope_assertion_returns_access_token() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now();
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 3600,
                "scope": "https://www.googleapis.com/auth/cloud-platform"}),
    )?;
    let (status, body) = grant(&emu, &assertion).await?;
    assert_eq!(status, 200, "{body}");
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert_eq!(body["expires_in"], 3600);
    assert_eq!(body["token_type"], "Bearer");
    Ok(())
}

#[tokio::test]
async fn assertion_without_audience_or_scope_is_invalid_scope() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now();
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 60}),
    )?;
    let (status, body) = grant(&emu, &assertion).await?;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );
    Ok(())
}

#[tokio::test]
async fn wrong_content_type_and_grant_type_are_refused_in_json() -> TestResult {
    let emu = Emulator::start().await?;
    let client = reqwest::Client::new();
    let resp = client
        .post(emu.token_uri())
        .header("content-type", "application/json")
        .body(json!({"grant_type": JWT_BEARER}).to_string())
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"], "invalid_request");

    let resp = client
        .post(emu.token_uri())
        .form(&[("grant_type", "password"), ("username", "u")])
        .send()
        .await?;
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await?;
    assert_eq!(body["error"], "unsupported_grant_type");
    Ok(())
}

#[tokio::test]
async fn assertion_for_another_token_endpoint_is_invalid_grant_failed_audience_check() -> TestResult
{
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now();
    for aud in [
        "https://evil.example/token",
        "https://oauth2.googleapis.com/token/",
        "http://oauth2.googleapis.com/token",
        "",
    ] {
        let assertion = sign(
            &kf,
            &json!({"iss": kf.email, "aud": aud, "iat": iat, "exp": iat + 3600,
                    "target_audience": "https://x.example"}),
        )?;
        let (status, body) = grant(&emu, &assertion).await?;
        assert_eq!(status, 400, "aud {aud:?}: {body}");
        assert_eq!(body["error"], "invalid_grant", "aud {aud:?}");
        assert_eq!(
            body["error_description"], "Invalid JWT: Failed audience check.",
            "aud {aud:?}"
        );
    }
    // No aud at all, or aud as a list, fails the same check.
    for claims in [
        json!({"iss": kf.email, "iat": iat, "exp": iat + 3600, "target_audience": "a"}),
        json!({"iss": kf.email, "aud": [emu.token_uri()], "iat": iat, "exp": iat + 3600,
               "target_audience": "a"}),
    ] {
        let (status, body) = grant(&emu, &sign(&kf, &claims)?).await?;
        assert_eq!(status, 400, "{claims}: {body}");
        assert_eq!(
            body["error_description"],
            "Invalid JWT: Failed audience check."
        );
    }
    Ok(())
}

#[tokio::test]
async fn assertion_aud_may_be_any_google_token_url_or_this_token_endpoint() -> TestResult {
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let iat = now();
    // Python and Node: oauth2.googleapis.com; old key files' token_uri and
    // old libraries: accounts.google.com and www.googleapis.com/oauth2/v4;
    // Go and Java: the key file's token_uri, here the emulator's own.
    for aud in [
        "https://oauth2.googleapis.com/token".to_owned(),
        "https://accounts.google.com/o/oauth2/token".to_owned(),
        "https://www.googleapis.com/oauth2/v4/token".to_owned(),
        emu.token_uri(),
        emu.token_uri().replace("127.0.0.1", "localhost"),
    ] {
        let assertion = sign(
            &kf,
            &json!({"iss": kf.email, "aud": aud, "iat": iat, "exp": iat + 3600,
                    "target_audience": "https://x.example"}),
        )?;
        let url = aud.contains("localhost").then(|| aud.clone());
        let resp = reqwest::Client::new()
            .post(url.unwrap_or_else(|| emu.token_uri()))
            .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
            .send()
            .await?;
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await?;
        assert_eq!(status, 200, "aud {aud:?}: {body}");
    }
    Ok(())
}

/// Posts a raw form body to the token endpoint; returns status and JSON body.
async fn post_form(url: &str, body: String) -> Result<(u16, serde_json::Value), BoxError> {
    let resp = reqwest::Client::new()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn repeated_form_parameters_are_invalid_request() -> TestResult {
    // RFC 6749 section 3.1: parameters must not be included more than once.
    let emu = Emulator::start().await?;
    let kf = key_file(&emu)?;
    let assertion = id_assertion(&emu, &kf, "https://x.example")?;
    let grant_type = format!("grant_type={}", JWT_BEARER.replace(':', "%3A"));
    let user: serde_json::Value = serde_json::from_str(&emu.authorized_user_json())?;
    let refresh = format!(
        "client_id={}&client_secret={}&refresh_token={}",
        user["client_id"].as_str().ok_or("client_id")?,
        user["client_secret"].as_str().ok_or("secret")?,
        user["refresh_token"].as_str().ok_or("refresh_token")?,
    );
    for (body, repeated) in [
        (
            format!("{grant_type}&assertion={assertion}&assertion={assertion}"),
            "assertion",
        ),
        (
            format!("{grant_type}&{grant_type}&assertion={assertion}"),
            "grant_type",
        ),
        (
            format!("grant_type=refresh_token&{refresh}&client_id=other"),
            "client_id",
        ),
        (
            format!("grant_type=refresh_token&{refresh}&refresh_token="),
            "refresh_token",
        ),
    ] {
        let (status, answer) = post_form(&emu.token_uri(), body).await?;
        assert_eq!(status, 400, "{repeated}: {answer}");
        assert_eq!(answer["error"], "invalid_request", "{repeated}");
        let desc = answer["error_description"].as_str().unwrap_or_default();
        assert!(desc.contains(repeated), "{desc}");
    }
    assert_eq!(
        post_form(
            &emu.token_uri(),
            format!("{grant_type}&assertion={assertion}")
        )
        .await?
        .0,
        200,
        "each parameter once is fine"
    );
    Ok(())
}
