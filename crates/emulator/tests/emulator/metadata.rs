//! The metadata server: flavor rule, identity tokens and their cache.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::common::{TestResult, claims, verify};

const IDENTITY: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";

async fn get(emu: &Emulator, path: &str) -> Result<reqwest::Response, reqwest::Error> {
    reqwest::Client::new()
        .get(format!("{}{path}", emu.url()))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
}

fn flavored(resp: &reqwest::Response) -> bool {
    resp.headers()
        .get("metadata-flavor")
        .is_some_and(|v| v == "Google")
}

#[tokio::test]
async fn request_without_flavor_header_is_forbidden() -> TestResult {
    let emu = Emulator::start().await?;
    let url = format!("{}{IDENTITY}?audience=https://a.example", emu.url());
    let resp = reqwest::get(&url).await?;
    assert_eq!(resp.status(), 403);
    assert!(flavored(&resp), "even refusals carry the flavor header");
    assert!(resp.text().await?.contains("Metadata-Flavor"));
    // Counted although refused.
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
    Ok(())
}

#[tokio::test]
async fn proxied_requests_with_x_forwarded_for_are_forbidden() -> TestResult {
    let emu = Emulator::start().await?;
    let resp = reqwest::Client::new()
        .get(format!(
            "{}{IDENTITY}?audience=https://a.example",
            emu.url()
        ))
        .header("metadata-flavor", "Google")
        .header("x-forwarded-for", "203.0.113.7")
        .send()
        .await?;
    assert_eq!(resp.status(), 403);
    assert!(flavored(&resp));
    assert!(resp.text().await?.contains("X-Forwarded-For"));
    Ok(())
}

#[tokio::test]
async fn ping_answers_with_flavor_on_every_spelling() -> TestResult {
    let emu = Emulator::start().await?;
    for path in [
        "/",
        "/computeMetadata/v1",
        "/computeMetadata/v1/",
        "/computeMetadata/v1/instance/",
    ] {
        let resp = get(&emu, path).await?;
        assert_eq!(resp.status(), 200, "{path}");
        assert!(flavored(&resp), "{path}");
    }
    assert_eq!(emu.counters().get(Endpoint::MetadataPing), 4);
    Ok(())
}

#[tokio::test]
async fn identity_without_audience_is_bad_request() -> TestResult {
    let emu = Emulator::start().await?;
    for query in ["", "?audience=", "?format=full"] {
        let resp = get(&emu, &format!("{IDENTITY}{query}")).await?;
        assert_eq!(resp.status(), 400, "{query}");
        assert!(
            resp.text()
                .await?
                .contains("non-empty audience parameter required")
        );
    }
    Ok(())
}

#[tokio::test]
async fn identity_with_unknown_format_is_bad_request() -> TestResult {
    let emu = Emulator::start().await?;
    let resp = get(&emu, &format!("{IDENTITY}?audience=x&format=fancy")).await?;
    assert_eq!(resp.status(), 400);
    Ok(())
}

#[tokio::test]
async fn identity_token_has_audience_and_issuer_and_verifies() -> TestResult {
    let emu = Emulator::start().await?;
    let aud = "https://svc-abc-uc.a.run.app";
    let resp = get(&emu, &format!("{IDENTITY}?audience={aud}")).await?;
    assert_eq!(resp.status(), 200);
    assert!(flavored(&resp));
    let token = resp.text().await?;
    let c = verify(&emu, &token, aud).await?;
    assert_eq!(c["iss"], "https://accounts.google.com");
    assert_eq!(c["aud"], aud);
    assert!(c.get("email").is_none(), "standard format has no email");
    let sub = c["sub"].as_str().ok_or("sub")?;
    assert_eq!(sub.len(), 21);
    assert_eq!(
        c["exp"].as_i64().ok_or("exp")? - c["iat"].as_i64().ok_or("iat")?,
        3600
    );
    Ok(())
}

#[tokio::test]
async fn full_format_adds_email_and_licenses_add_license_ids() -> TestResult {
    let emu = Emulator::start().await?;
    let token = get(&emu, &format!("{IDENTITY}?audience=a&format=full"))
        .await?
        .text()
        .await?;
    let c = claims(&token)?;
    assert_eq!(c["email"], emu.service_account_email().as_str());
    assert_eq!(c["email_verified"], true);
    assert_eq!(
        c["google"]["compute_engine"]["project_id"],
        "idtoken-emulator"
    );
    assert!(c["google"]["compute_engine"].get("license_id").is_none());

    let path = format!("{IDENTITY}?audience=a&format=full&licenses=TRUE");
    let c = claims(&get(&emu, &path).await?.text().await?)?;
    assert!(c["google"]["compute_engine"]["license_id"].is_array());
    Ok(())
}

#[tokio::test]
async fn same_token_is_handed_out_within_the_cache_window() -> TestResult {
    let emu = Emulator::start().await?;
    let path = format!("{IDENTITY}?audience=https://a.example&format=full");
    let first = get(&emu, &path).await?.text().await?;
    let second = get(&emu, &path).await?.text().await?;
    assert_eq!(first, second);
    // Another audience is another token.
    let other = get(
        &emu,
        &format!("{IDENTITY}?audience=https://b.example&format=full"),
    )
    .await?;
    assert_ne!(other.text().await?, first);
    Ok(())
}

#[tokio::test]
async fn cached_token_is_renewed_when_less_than_four_minutes_remain() -> TestResult {
    let start = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let secs = Arc::new(AtomicU64::new(start));
    let clock = Arc::clone(&secs);
    let emu = Emulator::builder()
        .clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst))
        }))
        .start()
        .await?;
    let path = format!("{IDENTITY}?audience=a");
    let first = get(&emu, &path).await?.text().await?;
    secs.store(start + 3600 - 240, Ordering::SeqCst);
    assert_eq!(
        get(&emu, &path).await?.text().await?,
        first,
        "240 s left: still cached"
    );
    secs.store(start + 3600 - 239, Ordering::SeqCst);
    let renewed = get(&emu, &path).await?.text().await?;
    assert_ne!(renewed, first);
    assert_eq!(claims(&renewed)?["iat"], start + 3600 - 239);
    Ok(())
}

#[tokio::test]
async fn short_lived_tokens_are_renewed_at_half_their_life_to_the_millisecond() -> TestResult {
    // A 3 s token: renewed once less than 1.5 s is left. Whole seconds would
    // round 1.5 s down to 1 s and hand out tokens with almost nothing left.
    let start_ms = u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
    let start_ms = start_ms - start_ms % 1000 + 900; // minted at .900: exp is 2.1 s away
    let ms = Arc::new(AtomicU64::new(start_ms));
    let clock = Arc::clone(&ms);
    let emu = Emulator::builder()
        .token_lifetime(Duration::from_secs(3))
        .clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_millis(clock.load(Ordering::SeqCst))
        }))
        .start()
        .await?;
    let path = format!("{IDENTITY}?audience=a");
    let first = get(&emu, &path).await?.text().await?;
    ms.store(start_ms + 500, Ordering::SeqCst); // 1.6 s left
    assert_eq!(
        get(&emu, &path).await?.text().await?,
        first,
        "1.6 s left: cached"
    );
    ms.store(start_ms + 700, Ordering::SeqCst); // 1.4 s left
    let renewed = get(&emu, &path).await?.text().await?;
    assert_ne!(renewed, first, "1.4 s left: renewed");
    Ok(())
}

#[tokio::test]
async fn email_and_recursive_service_account_describe_the_default_account() -> TestResult {
    let emu = Emulator::start().await?;
    let base = "/computeMetadata/v1/instance/service-accounts";
    let email = get(&emu, &format!("{base}/default/email"))
        .await?
        .text()
        .await?;
    assert_eq!(email, emu.service_account_email());

    for account in ["default", email.as_str()] {
        let resp = get(&emu, &format!("{base}/{account}/?recursive=true")).await?;
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await?;
        assert_eq!(body["email"], email.as_str());
        assert_eq!(body["aliases"][0], "default");
    }
    assert_eq!(emu.counters().get(Endpoint::MetadataServiceAccount), 2);
    let project = get(&emu, "/computeMetadata/v1/project/project-id").await?;
    assert_eq!(project.text().await?, "idtoken-emulator");
    Ok(())
}

#[tokio::test]
async fn unknown_paths_are_not_found_with_flavor() -> TestResult {
    let emu = Emulator::start().await?;
    let resp = get(&emu, "/computeMetadata/v1/instance/zone-of-the-moon").await?;
    assert_eq!(resp.status(), 404);
    assert!(flavored(&resp));
    let resp = get(
        &emu,
        "/computeMetadata/v1/instance/service-accounts/nobody@x/email",
    )
    .await?;
    assert_eq!(resp.status(), 404);
    Ok(())
}
