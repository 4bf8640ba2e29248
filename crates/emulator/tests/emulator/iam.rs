//! IAM Credentials `generateIdToken` / `generateAccessToken`: bearer checks,
//! the grant table, delegates, `includeEmail`, Google's error shape.

use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::{Value, json};

use crate::common::{BoxError, JWT_BEARER, TestResult, key_file, now, sign, verify};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// An access token for the default service account (JWT-bearer with scope).
async fn sa_access_token(emu: &Emulator) -> Result<String, BoxError> {
    let kf = key_file(emu)?;
    let iat = now();
    let assertion = sign(
        &kf,
        &json!({"iss": kf.email, "aud": emu.token_uri(), "iat": iat, "exp": iat + 3600,
                "scope": CLOUD_PLATFORM}),
    )?;
    let body: Value = reqwest::Client::new()
        .post(emu.token_uri())
        .form(&[("grant_type", JWT_BEARER), ("assertion", &assertion)])
        .send()
        .await?
        .json()
        .await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

async fn call(
    emu: &Emulator,
    target: &str,
    method: &str,
    bearer: Option<&str>,
    body: Value,
) -> Result<(u16, Value), BoxError> {
    let mut req = reqwest::Client::new()
        .post(emu.iam_url(target, method))
        .json(&body);
    if let Some(b) = bearer {
        req = req.bearer_auth(b);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.json().await?))
}

#[tokio::test]
async fn generate_id_token_with_include_email_verifies_for_the_audience() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    let aud = "https://svc-abc.a.run.app";
    let body = json!({"audience": aud, "includeEmail": true});
    let (status, answer) = call(&emu, &target, "generateIdToken", Some(&at), body).await?;
    assert_eq!(status, 200, "{answer}");
    let claims = verify(&emu, answer["token"].as_str().ok_or("no token")?, aud).await?;
    assert_eq!(claims["email"], target.as_str());
    assert_eq!(claims["sub"], emu.target_service_account_id().as_str());
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 1);
    Ok(())
}

#[tokio::test]
async fn generate_id_token_without_include_email_has_no_email() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    let (status, answer) = call(
        &emu,
        &target,
        "generateIdToken",
        Some(&at),
        json!({"audience": "https://x.example"}),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    let claims = verify(
        &emu,
        answer["token"].as_str().ok_or("no token")?,
        "https://x.example",
    )
    .await?;
    assert!(claims.get("email").is_none(), "{claims}");
    Ok(())
}

#[tokio::test]
async fn missing_or_unknown_bearer_is_401_unauthenticated() -> TestResult {
    let emu = Emulator::start().await?;
    let target = emu.target_service_account_email();
    let body = json!({"audience": "https://x.example"});
    for bearer in [None, Some("ya29.not-issued-here")] {
        let (status, answer) = call(&emu, &target, "generateIdToken", bearer, body.clone()).await?;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["error"]["status"], "UNAUTHENTICATED");
    }
    Ok(())
}

#[tokio::test]
async fn refused_grant_is_403_naming_get_open_id_token_permission() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    emu.restrict_impersonation([]);
    let (status, answer) = call(
        &emu,
        &target,
        "generateIdToken",
        Some(&at),
        json!({"audience": "https://x.example"}),
    )
    .await?;
    assert_eq!(status, 403);
    assert_eq!(
        answer,
        json!({"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
            "Permission 'iam.serviceAccounts.getOpenIdToken' denied on resource (or it may not exist)."}})
    );
    Ok(())
}

#[tokio::test]
async fn unknown_target_is_403_too() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let (status, _) = call(
        &emu,
        "nobody@idtoken-emulator.iam.gserviceaccount.com",
        "generateIdToken",
        Some(&at),
        json!({"audience": "https://x.example"}),
    )
    .await?;
    assert_eq!(status, 403);
    Ok(())
}

#[tokio::test]
async fn delegate_chain_needs_a_grant_for_every_hop() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let me = emu.service_account_email();
    let target = emu.target_service_account_email();
    // Via the target itself as delegate: me -> target -> target.
    let body = json!({"audience": "https://x.example",
                      "delegates": [format!("projects/-/serviceAccounts/{target}")]});
    emu.restrict_impersonation([(me.as_str(), target.as_str())]);
    let (status, _) = call(&emu, &target, "generateIdToken", Some(&at), body.clone()).await?;
    assert_eq!(status, 403, "the hop target -> target is not granted");
    emu.restrict_impersonation([
        (me.as_str(), target.as_str()),
        (target.as_str(), target.as_str()),
    ]);
    let (status, answer) = call(&emu, &target, "generateIdToken", Some(&at), body).await?;
    assert_eq!(status, 200, "{answer}");
    let bad = json!({"audience": "https://x.example", "delegates": ["not-a-resource-name"]});
    let (status, _) = call(&emu, &target, "generateIdToken", Some(&at), bad).await?;
    assert_eq!(status, 400);
    Ok(())
}

#[tokio::test]
async fn generate_access_token_issues_a_token_iam_accepts_in_turn() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    let (status, answer) = call(
        &emu,
        &target,
        "generateAccessToken",
        Some(&at),
        json!({"scope": [CLOUD_PLATFORM], "lifetime": "3600s"}),
    )
    .await?;
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer["expireTime"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let target_at = answer["accessToken"].as_str().ok_or("no accessToken")?;
    // An account minting for itself needs a grant on itself, as at Google.
    emu.grant_impersonation(&target, &target);
    let (status, _) = call(
        &emu,
        &target,
        "generateIdToken",
        Some(target_at),
        json!({"audience": "https://x.example"}),
    )
    .await?;
    assert_eq!(status, 200);
    Ok(())
}

#[tokio::test]
async fn iam_faults_answer_google_shaped_errors() -> TestResult {
    let emu = Emulator::start().await?;
    emu.inject_fault(Endpoint::IamGenerateIdToken, Fault::Status(503), 1);
    let target = emu.target_service_account_email();
    let (status, answer) = call(
        &emu,
        &target,
        "generateIdToken",
        None,
        json!({"audience": "a"}),
    )
    .await?;
    assert_eq!(status, 503);
    assert_eq!(answer["error"]["status"], "UNAVAILABLE");
    Ok(())
}

#[tokio::test]
async fn null_delegates_are_accepted_as_python_sends_them() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    let body = json!({"audience": "https://x.example", "delegates": null, "includeEmail": true});
    let (status, answer) = call(&emu, &target, "generateIdToken", Some(&at), body).await?;
    assert_eq!(status, 200, "{answer}");
    Ok(())
}

#[tokio::test]
async fn expired_bearer_is_401() -> TestResult {
    let clock = std::sync::Arc::new(std::sync::Mutex::new(std::time::SystemTime::now()));
    let c = clock.clone();
    let emu = Emulator::builder()
        .clock(std::sync::Arc::new(move || {
            *c.lock().unwrap_or_else(|e| e.into_inner())
        }))
        .start()
        .await?;
    let at = sa_access_token(&emu).await?;
    *clock.lock().unwrap_or_else(|e| e.into_inner()) += std::time::Duration::from_secs(3601);
    let target = emu.target_service_account_email();
    let (status, answer) = call(
        &emu,
        &target,
        "generateIdToken",
        Some(&at),
        json!({"audience": "https://x.example"}),
    )
    .await?;
    assert_eq!(status, 401, "{answer}");
    Ok(())
}

#[tokio::test]
async fn unknown_body_fields_are_400_unknown_name_as_google_says() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    for (method, body, unknown) in [
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "foo": 1}),
            "foo",
        ),
        // Right name, wrong method: scope belongs to generateAccessToken.
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "scope": [CLOUD_PLATFORM]}),
            "scope",
        ),
        // A misspelling that a lax server would silently ignore.
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "includeemail": true}),
            "includeemail",
        ),
        (
            "generateAccessToken",
            json!({"scope": [CLOUD_PLATFORM], "audience": "https://x.example"}),
            "audience",
        ),
        (
            "generateAccessToken",
            json!({"scope": [CLOUD_PLATFORM], "lifetimeSeconds": 3600}),
            "lifetimeSeconds",
        ),
    ] {
        let (status, answer) = call(&emu, &target, method, Some(&at), body).await?;
        assert_eq!(status, 400, "{method} {unknown}: {answer}");
        assert_eq!(answer["error"]["code"], 400);
        assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
        assert_eq!(
            answer["error"]["message"],
            format!(
                "Invalid JSON payload received. Unknown name \"{unknown}\": Cannot find field."
            ),
            "{method}"
        );
    }
    assert_eq!(emu.counters().get(Endpoint::IamGenerateIdToken), 3);
    Ok(())
}

#[tokio::test]
async fn every_field_google_clients_send_is_known() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    for (method, body) in [
        // Python impersonated_credentials.
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "delegates": null, "includeEmail": true}),
        ),
        // Node Impersonated.fetchIdToken.
        (
            "generateIdToken",
            json!({"delegates": [], "audience": "https://x.example", "includeEmail": true,
                   "useEmailAzp": true}),
        ),
        // Python's service-account flow outside googleapis.com: strings.
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "includeEmail": "true", "useEmailAzp": "true"}),
        ),
        // Proto field names are accepted as well as their JSON names.
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "include_email": true}),
        ),
        // Python and Node impersonated credentials.
        (
            "generateAccessToken",
            json!({"delegates": [], "scope": [CLOUD_PLATFORM], "lifetime": "3600s"}),
        ),
    ] {
        let (status, answer) = call(&emu, &target, method, Some(&at), body.clone()).await?;
        assert_eq!(status, 200, "{method} {body}: {answer}");
    }
    Ok(())
}

#[tokio::test]
async fn wrongly_typed_fields_are_400_invalid_value_naming_the_field() -> TestResult {
    let emu = Emulator::start().await?;
    let at = sa_access_token(&emu).await?;
    let target = emu.target_service_account_email();
    for (method, body, message) in [
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "includeEmail": "yes"}),
            "Invalid value at 'include_email' (TYPE_BOOL), \"yes\"",
        ),
        (
            "generateIdToken",
            json!({"audience": "https://x.example", "delegates": [7]}),
            "Invalid value at 'delegates[0]' (TYPE_STRING), 7",
        ),
        (
            "generateAccessToken",
            json!({"scope": [CLOUD_PLATFORM], "lifetime": 3600}),
            "Invalid value at 'lifetime' (type.googleapis.com/google.protobuf.Duration), 3600",
        ),
    ] {
        let (status, answer) = call(&emu, &target, method, Some(&at), body).await?;
        assert_eq!(status, 400, "{answer}");
        assert_eq!(answer["error"]["message"], message);
    }
    Ok(())
}

/// An access token for the gcloud user (refresh grant).
async fn user_access_token(emu: &Emulator) -> Result<String, BoxError> {
    let user: Value = serde_json::from_str(&emu.authorized_user_json())?;
    let field = |name: &str| {
        user[name]
            .as_str()
            .map(str::to_owned)
            .ok_or(name.to_owned())
    };
    let body: Value = reqwest::Client::new()
        .post(emu.token_uri())
        .form(&[
            ("grant_type", "refresh_token".to_owned()),
            ("client_id", field("client_id")?),
            ("client_secret", field("client_secret")?),
            ("refresh_token", field("refresh_token")?),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

/// A federated access token for the workload identity pool's principal (STS).
async fn federated_access_token(emu: &Emulator) -> Result<String, BoxError> {
    let ef: Value = serde_json::from_str(&emu.external_account_json(None))?;
    let field = |name: &str| ef[name].as_str().map(str::to_owned).ok_or(name.to_owned());
    let body: Value = reqwest::Client::new()
        .post(emu.sts_url())
        .form(&[
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_owned(),
            ),
            ("audience", field("audience")?),
            ("scope", CLOUD_PLATFORM.to_owned()),
            (
                "requested_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_owned(),
            ),
            ("subject_token", emu.subject_token()),
            ("subject_token_type", field("subject_token_type")?),
        ])
        .send()
        .await?
        .json()
        .await?;
    Ok(body["access_token"]
        .as_str()
        .ok_or("no access_token")?
        .to_owned())
}

#[tokio::test]
async fn impersonation_is_refused_by_default_unless_the_credential_files_need_it() -> TestResult {
    let emu = Emulator::start().await?;
    let me = emu.service_account_email();
    let target = emu.target_service_account_email();
    let sa = sa_access_token(&emu).await?;
    let user = user_access_token(&emu).await?;
    let federated = federated_access_token(&emu).await?;
    let body = json!({"audience": "https://x.example"});
    // What the impersonating credential files do: each source -> target.
    for (who, bearer) in [("key file", &sa), ("user", &user), ("pool", &federated)] {
        let (status, answer) =
            call(&emu, &target, "generateIdToken", Some(bearer), body.clone()).await?;
        assert_eq!(status, 200, "{who} -> target: {answer}");
    }
    // Nothing else: not the default account, not even by itself, and not
    // back from the target.
    let (_, answer) = call(
        &emu,
        &target,
        "generateAccessToken",
        Some(&sa),
        json!({"scope": [CLOUD_PLATFORM]}),
    )
    .await?;
    let as_target = answer["accessToken"].as_str().ok_or("no accessToken")?;
    for (who, bearer) in [
        ("key file", sa.as_str()),
        ("user", &user),
        ("pool", &federated),
        ("target", as_target),
    ] {
        for method in ["generateIdToken", "generateAccessToken"] {
            let body = match method {
                "generateIdToken" => json!({"audience": "https://x.example"}),
                _ => json!({"scope": [CLOUD_PLATFORM]}),
            };
            let (status, answer) = call(&emu, &me, method, Some(bearer), body).await?;
            assert_eq!(status, 403, "{who} -> default account, {method}: {answer}");
            assert_eq!(answer["error"]["status"], "PERMISSION_DENIED");
        }
    }
    // A grant makes one more pair work, and only that one.
    emu.grant_impersonation(&target, &me);
    let (status, answer) =
        call(&emu, &me, "generateIdToken", Some(as_target), body.clone()).await?;
    assert_eq!(
        status, 200,
        "target -> default account once granted: {answer}"
    );
    let (status, _) = call(&emu, &me, "generateIdToken", Some(&sa), body).await?;
    assert_eq!(status, 403, "still not the default account by itself");
    Ok(())
}
