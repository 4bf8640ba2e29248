//! The token cache: one fetch for many callers, refresh ahead of expiry
//! without blocking anyone, never an expired token.

use std::sync::Arc;
use std::time::Duration;

use idtoken::{Clock, Credentials};
use idtoken_emulator::{Emulator, Endpoint, Fault};

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

/// With no token held, a failed fetch is the caller's error and nothing
/// else: a warning that a valid token is kept would be false, and a CLI
/// would show the same failure twice.
#[tokio::test]
async fn a_cold_fetch_failure_is_returned_not_also_logged_as_a_warning() {
    let logs = Logs::global();
    let emu = Emulator::start().await.expect("emulator");
    let creds = Credentials::metadata_server(&emu.metadata_host());
    let audience = "https://cold-failure.svc.example";
    let source = creds.token_source(audience);
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(503), 3);
    let err = source.token().await.expect_err("every attempt fails");
    assert!(err.to_string().contains("503"), "{err}");
    assert_eq!(
        logs.count("WARN", audience),
        0,
        "no warning besides the error"
    );
}

#[tokio::test]
async fn failed_background_refresh_keeps_the_valid_token_and_backs_off() {
    let logs = Logs::global();
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(Arc::new(clock.clone()));
    // An audience of its own: the log lines below are found by it.
    let audience = "https://backoff.svc.example";
    let source = creds.token_source(audience);
    let old = source.token().await.expect("first token");
    clock.set(old.expires_at() - Duration::from_secs(200));

    // The refresh fails on every retry the HTTP layer makes (3 attempts).
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(503), 3);
    let got = source.token().await.expect("cached token");
    assert_eq!(got.as_str(), old.as_str());
    wait_for_count(&emu, Endpoint::MetadataIdentity, 4).await;
    // The failure is recorded (the backoff set) before it is logged.
    eventually("the failed refresh is recorded", || {
        logs.count("ID token fetch failed", audience) > 0
    })
    .await;

    // Within the backoff, calls serve the valid token and start nothing:
    // a refresh would be a task of its own, counted as soon as it is
    // spawned (this test's runtime has one thread, and these warm calls
    // never yield to it).
    let before = alive_tasks();
    for _ in 0..20 {
        assert_eq!(source.token().await.expect("token").as_str(), old.as_str());
    }
    assert_eq!(
        alive_tasks(),
        before,
        "no refresh started within the backoff"
    );
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
    // Every caller has joined the one fetch before it is let go.
    let tasks = first_polled((0..20).map(|_| {
        let source = source.clone();
        async move { source.token().await }
    }))
    .await;
    wait_for_count(&emu, Endpoint::MetadataIdentity, 1).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_that_give_up_do_not_abort_the_shared_fetch() {
    let emu = emulator().await;
    let source =
        Credentials::metadata_server(&emu.metadata_host()).token_source("https://svc.example");
    emu.set_delay(Endpoint::MetadataIdentity, Duration::from_millis(1500));
    // 100 callers, each giving up after a sliver of the fetch's time (a
    // client disconnect, a short timeout), one after another.
    for _ in 0..100 {
        let impatient = tokio::time::timeout(Duration::from_millis(5), source.token()).await;
        assert!(impatient.is_err(), "gave up before the answer");
    }
    let token = within("the patient caller", source.token())
        .await
        .expect("token");
    assert_eq!(token.claims().aud.as_deref(), Some("https://svc.example"));
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        1,
        "one fetch, which every caller joined"
    );
}

#[tokio::test]
async fn a_token_checked_after_a_long_fetch_is_not_handed_out_inside_its_margin() {
    // The emulator mints on real time; the client's clock moves on while
    // the answer is held, as on a slow network.
    let emu = emulator().await;
    let clock = manual_clock();
    let source = Credentials::metadata_server(&emu.metadata_host())
        .with_clock(Arc::new(clock.clone()))
        .token_source("https://svc.example");
    let hold = emu.hold(Endpoint::MetadataIdentity);
    let pending = tokio::spawn({
        let source = source.clone();
        async move { source.token().await }
    });
    wait_for_count(&emu, Endpoint::MetadataIdentity, 1).await;
    // An hour-long token arrives with 5 s left by the client's clock:
    // inside the 10 s margin.
    clock.advance(Duration::from_secs(3595));
    hold.release();
    let outcome = within("the fetch", pending).await.expect("task");
    match outcome {
        Err(idtoken::Error::StaleToken { .. }) => {}
        Ok(t) => panic!(
            "handed out a token with {:?} left",
            t.expires_at().duration_since(clock.now())
        ),
        Err(e) => panic!("unexpected error: {e}"),
    }
}

#[test]
fn a_refresh_dropped_with_its_runtime_does_not_stop_later_refreshes() {
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let clock = manual_clock();
    let (emu, source, old) = main.block_on(async {
        let emu = emulator_on(&clock).await;
        let source = Credentials::metadata_server(&emu.metadata_host())
            .with_clock(Arc::new(clock.clone()))
            .token_source("https://svc.example");
        let old = source.token().await.expect("first token");
        (emu, source, old)
    });
    // Inside the refresh window; the refresh starts on a short-lived
    // runtime and is held at the emulator when that runtime shuts down.
    clock.set(old.expires_at() - Duration::from_secs(200));
    let hold = emu.hold(Endpoint::MetadataIdentity);
    let doomed = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    doomed.block_on(async {
        let got = source.token().await.expect("cached token");
        assert_eq!(got.as_str(), old.as_str());
        wait_for_count(&emu, Endpoint::MetadataIdentity, 2).await;
    });
    drop(doomed);
    hold.release();
    main.block_on(async {
        let got = source.token().await.expect("cached token");
        assert_eq!(got.as_str(), old.as_str());
        wait_for_count(&emu, Endpoint::MetadataIdentity, 3).await;
        within("the refreshed token", async {
            loop {
                let t = source.token().await.expect("token");
                if t.as_str() != old.as_str() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
    });
}

/// A token kept elsewhere (the CLI's cache across processes) starts a
/// source: served with no fetch, refreshed from `refresh_at` on as the
/// source's own would be, and never handed out expired.
#[tokio::test]
async fn a_seeded_token_is_served_without_a_fetch_and_refreshed_at_its_refresh_point() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(Arc::new(clock.clone()));
    let kept = creds
        .token_source("https://svc.example")
        .token()
        .await
        .expect("a token minted by another source");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
    assert_eq!(
        kept.expires_at().duration_since(kept.refresh_at()).ok(),
        Some(Duration::from_secs(225)),
        "an hour's token is refreshed 225 s ahead"
    );

    let source = creds.token_source("https://svc.example");
    source.seed(kept.clone());
    for _ in 0..10 {
        assert_eq!(source.token().await.expect("token").as_str(), kept.as_str());
    }
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        1,
        "a seeded token needs no fetch"
    );
    // Past its refresh point: still served, and one refresh starts.
    clock.set(kept.refresh_at() + Duration::from_secs(1));
    let got = source.token().await.expect("token");
    assert_eq!(got.as_str(), kept.as_str(), "still valid: served at once");
    wait_for_count(&emu, Endpoint::MetadataIdentity, 2).await;

    // Seeding an expired token never hands it out.
    let other = creds.token_source("https://svc.example");
    clock.set(kept.expires_at() + Duration::from_secs(1));
    other.seed(kept.clone());
    let fresh = other.token().await.expect("token");
    assert_ne!(fresh.as_str(), kept.as_str());
    assert!(fresh.expires_at() > kept.expires_at());
}

#[tokio::test]
async fn stats_count_each_fetch_once_its_failures_and_the_cached_tokens_time_left() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let creds =
        Credentials::metadata_server(&emu.metadata_host()).with_clock(Arc::new(clock.clone()));
    let source = creds.token_source("https://stats.svc.example");
    let empty = source.stats();
    assert_eq!((empty.fetches, empty.fetch_failures), (0, 0));
    assert!(!empty.fetch_in_flight && !empty.usable);
    assert_eq!((empty.expires_at, empty.expires_in), (None, None));

    // Twenty callers, one fetch: counted once, seen in flight while held.
    let hold = emu.hold(Endpoint::MetadataIdentity);
    let tasks = first_polled((0..20).map(|_| {
        let source = source.clone();
        async move { source.token().await }
    }))
    .await;
    wait_for_count(&emu, Endpoint::MetadataIdentity, 1).await;
    let held = source.stats();
    assert_eq!(held.fetches, 1);
    assert!(held.fetch_in_flight && !held.usable);
    hold.release();
    let mut token = None;
    for t in tasks {
        token = Some(
            within("a waiting caller", t)
                .await
                .expect("task")
                .expect("token"),
        );
    }
    let token = token.expect("twenty tokens");
    let warm = source.stats();
    assert_eq!((warm.fetches, warm.fetch_failures), (1, 0));
    assert!(!warm.fetch_in_flight && warm.usable);
    assert_eq!(warm.expires_at, Some(token.expires_at()));
    assert_eq!(
        warm.expires_in,
        token.expires_at().duration_since(clock.now()).ok()
    );

    // Past expiry the token is no longer usable and has no time left; the
    // fetch that replaces it fails and is counted as a failure.
    clock.set(token.expires_at() + Duration::from_secs(1));
    let expired = source.stats();
    assert!(!expired.usable);
    assert_eq!(expired.expires_in, Some(Duration::ZERO));
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(404), 1);
    source.token().await.expect_err("404 fails");
    let failed = source.stats();
    assert_eq!((failed.fetches, failed.fetch_failures), (2, 1));
    assert!(!failed.fetch_in_flight);
    assert_eq!(
        failed.expires_at,
        Some(token.expires_at()),
        "the old token is still what the cache holds"
    );
}
