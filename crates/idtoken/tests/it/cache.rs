//! The token cache: one fetch for many callers, refresh ahead of expiry
//! without blocking anyone, never an expired token.

use std::sync::Arc;
use std::time::Duration;

use idtoken::{Clock, Credentials};
use idtoken_emulator::{Endpoint, Fault};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_concurrent_first_calls_make_one_fetch() {
    let emu = emulator().await;
    let source =
        Credentials::metadata_server(&emu.metadata_host()).token_source("https://svc.example");
    // Hold the first fetch at the emulator so that every caller arrives
    // while it is in flight.
    let hold = emu.hold(Endpoint::MetadataIdentity);
    let barrier = Arc::new(tokio::sync::Barrier::new(1001));
    let mut tasks = Vec::new();
    for _ in 0..1000 {
        let (source, barrier) = (source.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            source.token().await
        }));
    }
    barrier.wait().await;
    wait_for_count(&emu, Endpoint::MetadataIdentity, 1).await;
    hold.release();
    let mut tokens = Vec::new();
    for t in tasks {
        tokens.push(
            within("a first call", t)
                .await
                .expect("task")
                .expect("token"),
        );
    }
    assert!(tokens.iter().all(|t| t.as_str() == tokens[0].as_str()));
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn warm_calls_make_no_requests() {
    let emu = emulator().await;
    let (_dir, creds) = service_account(&emu);
    let source = creds.token_source("https://svc.example");
    let first = source.token().await.expect("token");
    for _ in 0..100 {
        assert_eq!(
            source.token().await.expect("token").as_str(),
            first.as_str()
        );
    }
    assert_eq!(emu.counters().get(Endpoint::Token), 1);
}

#[tokio::test]
async fn refresh_starts_ahead_of_expiry_and_blocks_no_caller() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(Arc::new(clock.clone()));
    let source = creds.token_source("https://svc.example");
    let old = source.token().await.expect("first token");

    // 200 s before expiry: inside the refresh window (225 s), still valid.
    let exp = old.expires_at();
    clock.set(exp - Duration::from_secs(200));
    let hold = emu.hold(Endpoint::MetadataIdentity);
    for _ in 0..50 {
        // While the refresh is held at the emulator, every call returns the
        // cached token at once; a blocked call would hang here.
        let got = within("a call during refresh", source.token())
            .await
            .expect("token");
        assert_eq!(got.as_str(), old.as_str());
    }
    wait_for_count(&emu, Endpoint::MetadataIdentity, 2).await;
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        2,
        "one background refresh"
    );
    hold.release();

    let mut fresh = old.clone();
    for _ in 0..500 {
        fresh = source.token().await.expect("token");
        if fresh.as_str() != old.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(
        fresh.as_str(),
        old.as_str(),
        "the refreshed token replaced the old one"
    );
    assert!(fresh.expires_at() > exp);
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 2);
}

#[tokio::test]
async fn crossing_many_expiries_never_hands_out_an_expired_token() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let (_dir, creds) = service_account(&emu);
    let source = creds
        .with_clock(Arc::new(clock.clone()))
        .token_source("https://svc.example");
    for hop in 0..50u64 {
        let token = source.token().await.expect("token");
        assert!(
            token.expires_at() > clock.now() + Duration::from_secs(10),
            "hop {hop}: token expires at {:?}, now {:?}",
            token.expires_at(),
            clock.now()
        );
        // Jump past this token's expiry.
        clock.set(token.expires_at() + Duration::from_secs(1));
    }
    assert_eq!(
        emu.counters().get(Endpoint::Token),
        50,
        "one fetch per lifetime crossed"
    );
}

#[tokio::test]
async fn failed_background_refresh_keeps_the_valid_token_and_backs_off() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(Arc::new(clock.clone()));
    let source = creds.token_source("https://svc.example");
    let old = source.token().await.expect("first token");
    clock.set(old.expires_at() - Duration::from_secs(200));

    // The refresh fails on every retry the HTTP layer makes (3 attempts).
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(503), 3);
    let got = source.token().await.expect("cached token");
    assert_eq!(got.as_str(), old.as_str());
    wait_for_count(&emu, Endpoint::MetadataIdentity, 4).await;
    // Let the background task record its failure.
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Within the backoff, calls serve the valid token and start nothing.
    for _ in 0..20 {
        assert_eq!(source.token().await.expect("token").as_str(), old.as_str());
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        4,
        "no retry before the backoff"
    );

    // After the backoff (at most 1.5 s for a first failure) it retries and succeeds.
    clock.advance(Duration::from_secs(2));
    source.token().await.expect("token");
    wait_for_count(&emu, Endpoint::MetadataIdentity, 5).await;
    let mut fresh = old.clone();
    for _ in 0..500 {
        fresh = source.token().await.expect("token");
        if fresh.as_str() != old.as_str() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_ne!(fresh.as_str(), old.as_str());
}

#[tokio::test]
async fn cold_callers_share_the_error_of_a_failed_fetch() {
    let emu = emulator().await;
    let source =
        Credentials::metadata_server(&emu.metadata_host()).token_source("https://svc.example");
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(404), 1);
    let hold = emu.hold(Endpoint::MetadataIdentity);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let source = source.clone();
        tasks.push(tokio::spawn(async move { source.token().await }));
    }
    wait_for_count(&emu, Endpoint::MetadataIdentity, 1).await;
    tokio::time::sleep(Duration::from_millis(50)).await;
    hold.release();
    for t in tasks {
        let err = within("a waiting caller", t)
            .await
            .expect("task")
            .expect_err("404 fails");
        assert!(err.to_string().contains("404"), "{err}");
    }
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        1,
        "waiters did not refetch"
    );
}
