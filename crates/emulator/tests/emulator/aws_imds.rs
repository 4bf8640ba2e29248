//! The AWS instance metadata service: IMDSv1 and IMDSv2 as AWS answers
//! them, and role keys valid six hours from the emulator's clock.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::Value;

use crate::common::TestResult;

const TOKEN: &str = "/latest/api/token";
const ZONE: &str = "/latest/meta-data/placement/availability-zone";
const ROLE: &str = "/latest/meta-data/iam/security-credentials";

async fn get(
    emu: &Emulator,
    path: &str,
    token: Option<&str>,
) -> Result<(u16, String), reqwest::Error> {
    let mut req = reqwest::Client::new().get(format!("{}{path}", emu.url()));
    if let Some(t) = token {
        req = req.header("X-aws-ec2-metadata-token", t);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

async fn session(emu: &Emulator, ttl: Option<&str>) -> Result<(u16, String), reqwest::Error> {
    let mut req = reqwest::Client::new().put(format!("{}{TOKEN}", emu.url()));
    if let Some(ttl) = ttl {
        req = req.header("X-aws-ec2-metadata-token-ttl-seconds", ttl);
    }
    let resp = req.send().await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

#[tokio::test]
async fn imdsv1_and_imdsv2_both_answer_unless_v2_is_required() -> TestResult {
    let emu = Emulator::start().await?;
    assert_eq!(get(&emu, ZONE, None).await?, (200, "us-east-2b".into()));
    let (status, token) = session(&emu, Some("300")).await?;
    assert_eq!(status, 200);
    assert_eq!(
        get(&emu, ROLE, Some(&token)).await?,
        (200, "idtoken-emulator-role".into())
    );
    assert_eq!(get(&emu, ROLE, Some("made-up")).await?.0, 401);

    emu.require_imdsv2(true);
    assert_eq!(get(&emu, ZONE, None).await?.0, 401);
    assert_eq!(get(&emu, ZONE, Some(&token)).await?.0, 200);
    assert_eq!(emu.counters().get(Endpoint::AwsZone), 3);
    assert_eq!(emu.counters().get(Endpoint::AwsImdsToken), 1);
    Ok(())
}

#[tokio::test]
async fn session_tokens_need_a_ttl_from_1_to_21600_seconds() -> TestResult {
    let emu = Emulator::start().await?;
    for bad in [None, Some("0"), Some("21601"), Some("ten")] {
        assert_eq!(session(&emu, bad).await?.0, 400, "{bad:?}");
    }
    assert_eq!(session(&emu, Some("21600")).await?.0, 200);
    let proxied = reqwest::Client::new()
        .put(format!("{}{TOKEN}", emu.url()))
        .header("X-aws-ec2-metadata-token-ttl-seconds", "300")
        .header("X-Forwarded-For", "203.0.113.9")
        .send()
        .await?;
    assert_eq!(proxied.status().as_u16(), 403);
    Ok(())
}

#[tokio::test]
async fn session_tokens_expire_after_their_ttl_on_the_emulators_clock() -> TestResult {
    use std::sync::atomic::{AtomicU64, Ordering};
    let secs = Arc::new(AtomicU64::new(1_800_000_000));
    let clock = secs.clone();
    let emu = Emulator::builder()
        .clock(Arc::new(move || {
            UNIX_EPOCH + Duration::from_secs(clock.load(Ordering::SeqCst))
        }))
        .start()
        .await?;
    emu.require_imdsv2(true);
    let (status, token) = session(&emu, Some("60")).await?;
    assert_eq!(status, 200);
    secs.fetch_add(59, Ordering::SeqCst);
    assert_eq!(get(&emu, ZONE, Some(&token)).await?.0, 200);
    // Its TTL is over: refused as a token it never handed out is.
    secs.fetch_add(1, Ordering::SeqCst);
    assert_eq!(get(&emu, ZONE, Some(&token)).await?.0, 401);
    Ok(())
}

#[tokio::test]
async fn role_keys_expire_six_hours_after_the_emulators_clock() -> TestResult {
    let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let emu = Emulator::builder()
        .clock(Arc::new(move || at))
        .start()
        .await?;
    let (status, body) = get(&emu, &format!("{ROLE}/idtoken-emulator-role"), None).await?;
    assert_eq!(status, 200, "{body}");
    let keys: Value = serde_json::from_str(&body)?;
    let (id, secret, session) = emu.aws_role_key();
    assert_eq!(keys["AccessKeyId"], id.as_str());
    assert!(id.starts_with("ASIA") && id.len() == 20, "{id}");
    assert_eq!(keys["SecretAccessKey"], secret.as_str());
    assert_eq!(keys["Token"], session.as_str());
    assert_eq!(keys["Code"], "Success");
    let expires: SystemTime =
        humantime::parse_rfc3339(keys["Expiration"].as_str().ok_or("Expiration")?)?;
    assert_eq!(expires, at + Duration::from_secs(6 * 3600));
    assert_eq!(get(&emu, &format!("{ROLE}/other-role"), None).await?.0, 404);
    Ok(())
}

#[tokio::test]
async fn aws_metadata_faults_answer_plain_statuses_and_bodies() -> TestResult {
    let emu = Emulator::start().await?;
    emu.inject_fault(Endpoint::AwsRole, Fault::Status(503), 1);
    emu.inject_fault(Endpoint::AwsZone, Fault::Body("mars-north-1a".into()), 1);
    assert_eq!(get(&emu, ROLE, None).await?.0, 503);
    assert_eq!(get(&emu, ZONE, None).await?, (200, "mars-north-1a".into()));
    assert_eq!(get(&emu, ZONE, None).await?, (200, "us-east-2b".into()));
    Ok(())
}
