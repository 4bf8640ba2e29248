//! `idtoken demo`: in one process, the emulator (a stand-in for Google) and
//! a small protected service on loopback, then requests that must be
//! refused or accepted. Exits 0 only if every one turned out as expected.
//!
//! The service is an axum router behind the library's
//! [`VerifyLayer`]: the layer refuses bad requests with 401 and a
//! `WWW-Authenticate` challenge, the handler reads [`VerifiedClaims`].

use std::net::SocketAddr;

use axum::Router;
use axum::http::header;
use idtoken::integrations::axum::VerifiedClaims;
use idtoken::integrations::tower::VerifyLayer;
use idtoken::{Credentials, Env, Format, Impersonate, TokenOptions, Verifier};
use idtoken_emulator::Emulator;
use serde_json::{Value, json};

use crate::Failure;

/// Arguments of `idtoken demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {}

pub(crate) async fn run(_args: Args) -> Result<(), Failure> {
    let fail = |what: &str, e: &dyn std::fmt::Display| {
        Failure::new(crate::exit::FAILURE, format!("{what}: {e}"))
    };
    let emu = Emulator::start()
        .await
        .map_err(|e| fail("cannot start the emulator", &e))?;
    let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .await
        .map_err(|e| fail("cannot bind the protected service", &e))?;
    let service_url = format!(
        "http://{}",
        listener
            .local_addr()
            .map_err(|e| fail("cannot read the service address", &e))?
    );
    let verifier = Verifier::builder()
        .audience(&service_url)
        .jwks_url(emu.jwks_url())
        .build()?;
    let app = Router::new()
        .fallback(protected)
        .layer(VerifyLayer::new(verifier));
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    println!("idtoken demo");
    println!("  Google stand-in (emulator): {}", emu.url());
    println!(
        "  protected service:          {service_url} (accepts only emulator-signed tokens for this audience)"
    );
    println!();

    let dir = std::env::temp_dir().join(format!("idtoken-demo-{}", emu.addr().port()));
    std::fs::create_dir_all(&dir).map_err(|e| fail("cannot create a temporary folder", &e))?;
    let files = emu
        .write_credentials(&dir)
        .map_err(|e| fail("cannot write the key file", &e))?;

    let http = reqwest::Client::new();
    let mut passed = 0;
    let mut failed = 0;
    let mut report = |ok: bool, line: String| {
        println!("  {} {line}", if ok { "ok  " } else { "FAIL" });
        if ok {
            passed += 1;
        } else {
            failed += 1;
        }
    };

    // 1. No token at all.
    let (status, body) = call(&http, &service_url, None).await;
    report(
        status == 401,
        format!(
            "{:<52} -> {status} {}",
            "no token",
            body["error_description"].as_str().unwrap_or("")
        ),
    );

    // Each flow, found by Application Default Credentials as a user's
    // environment would point at it.
    let key_file = |path: &std::path::Path| {
        Env::empty().with("GOOGLE_APPLICATION_CREDENTIALS", path.display().to_string())
    };
    let impersonate_target =
        Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url());
    let flows = [
        Flow {
            name: "metadata server (GCE_METADATA_HOST)",
            env: Env::empty().with("GCE_METADATA_HOST", emu.metadata_host()),
            impersonate: None,
            expect: 200,
        },
        Flow {
            name: "service account key (GOOGLE_APPLICATION_CREDENTIALS)",
            env: key_file(&files.service_account),
            impersonate: None,
            expect: 200,
        },
        Flow {
            name: "impersonation file (impersonated_service_account)",
            env: key_file(&files.impersonated_from_service_account),
            impersonate: None,
            expect: 200,
        },
        Flow {
            name: "workload identity federation (external_account)",
            env: key_file(&files.external_account_file),
            impersonate: None,
            expect: 200,
        },
        // A user's own token carries the OAuth client id as `aud`: a
        // service that checks the audience must refuse it...
        Flow {
            name: "gcloud user login (authorized_user)",
            env: key_file(&files.authorized_user),
            impersonate: None,
            expect: 401,
        },
        // ...and impersonating a service account gets the right audience.
        Flow {
            name: "gcloud user login + impersonation",
            env: key_file(&files.authorized_user),
            impersonate: Some(impersonate_target),
            expect: 200,
        },
    ];
    for flow in flows {
        let name = flow.name;
        let outcome = async {
            let mut creds = Credentials::discover_with(&flow.env).await?;
            if let Some(how) = flow.impersonate {
                creds = creds.impersonate(how);
            }
            // `format=full` (metadata) and `includeEmail` (IAM) put the
            // email in the token, so the service can show who called.
            let options = TokenOptions::default()
                .format(Format::Full)
                .include_email(true);
            let token = creds
                .token_source_with(&service_url, options)
                .token()
                .await?;
            Ok::<_, idtoken::Error>(call(&http, &service_url, Some(&token)).await)
        }
        .await;
        match outcome {
            Ok((status, body)) if status == 200 => report(
                flow.expect == 200 && body["aud"] == json!(service_url),
                format!(
                    "{name:<52} -> {status}, the service saw email={} aud={}",
                    body["email"].as_str().unwrap_or("?"),
                    body["aud"].as_str().unwrap_or("?")
                ),
            ),
            Ok((status, body)) => report(
                status == flow.expect,
                format!(
                    "{name:<52} -> {status} {}",
                    body["error_description"].as_str().unwrap_or("")
                ),
            ),
            Err(e) => report(false, format!("{name:<52} -> error: {e}")),
        }
    }

    // A valid token minted for another service.
    let other = Credentials::metadata_server(&emu.metadata_host())
        .token_source("https://another-service.example")
        .token()
        .await;
    match other {
        Ok(token) => {
            let (status, body) = call(&http, &service_url, Some(&token)).await;
            report(
                status == 401,
                format!(
                    "{:<52} -> {status} {}",
                    "token for another audience",
                    body["error_description"].as_str().unwrap_or("")
                ),
            );
        }
        Err(e) => report(false, format!("token for another audience -> error: {e}")),
    }

    server.abort();
    let _ = std::fs::remove_dir_all(&dir);
    println!();
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        println!(
            "Next: `idtoken emulator` to run the stand-in yourself, `idtoken curl URL` to call a real service."
        );
        Ok(())
    } else {
        Err(Failure::new(
            crate::exit::FAILURE,
            "the demo did not go as expected",
        ))
    }
}

/// One way of getting credentials, and the status the service should answer.
struct Flow {
    name: &'static str,
    env: Env,
    impersonate: Option<Impersonate>,
    expect: u16,
}

/// GETs the protected service, with a token if given. The body is the
/// service's JSON on success; on refusal, `error_description` comes from
/// the `WWW-Authenticate` challenge.
async fn call(http: &reqwest::Client, url: &str, token: Option<&idtoken::IdToken>) -> (u16, Value) {
    let mut req = http.get(format!("{url}/hello"));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, t.authorization_header());
    }
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let challenge = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split_once("error_description=\""))
                .map(|(_, d)| d.trim_end_matches('"').to_owned());
            match challenge {
                Some(why) => (status, json!({"error_description": why})),
                None => (status, resp.json().await.unwrap_or(Value::Null)),
            }
        }
        Err(e) => (0, json!({"error": e.to_string()})),
    }
}

/// The protected service: the layer has verified the token for its audience.
async fn protected(VerifiedClaims(claims): VerifiedClaims) -> axum::Json<Value> {
    axum::Json(json!({
        "email": claims.email,
        "aud": claims.aud,
        "sub": claims.sub,
    }))
}
