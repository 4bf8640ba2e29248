//! The verifier's key cache under load and failure, over loopback against
//! the emulator: one fetch for a cold crowd, rotation without failures,
//! stale-if-error, background refresh, unknown-`kid` rate limit.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use idtoken::{Clock as _, ManualClock, Verifier};
use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::json;

use crate::common::*;

const AUD: &str = "https://svc.example";

/// An emulator on `clock` whose key sets say `max-age=SECS`.
async fn emulator_with_max_age(clock: &ManualClock, secs: u64) -> Emulator {
    let c = clock.clone();
    Emulator::builder()
        .clock(Arc::new(move || c.now()))
        .jwks_max_age(Duration::from_secs(secs))
        .start()
        .await
        .expect("emulator")
}

/// A valid token for `AUD`, signed now with the emulator's current key.
fn token_at(emu: &Emulator, now: SystemTime, kid: &str) -> String {
    let now = now
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = json!({"alg": "RS256", "kid": kid, "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
        "iat": now, "exp": now + 3600});
    emu.sign_google(&header.to_string(), &claims.to_string())
        .expect("emulator signs")
}

fn token(emu: &Emulator, now: SystemTime) -> String {
    token_at(emu, now, &emu.google_kid())
}

fn verifier(emu: &Emulator, clock: Option<&ManualClock>) -> Verifier {
    let mut b = Verifier::builder().audience(AUD).jwks_url(emu.jwks_url());
    if let Some(c) = clock {
        b = b.clock(Arc::new(c.clone()));
    }
    b.build().expect("verifier")
}

/// Runs `per_task` verifications of `tokens()` in each of `tasks` tasks;
/// returns the number of failures.
async fn hammer(
    v: &Verifier,
    tasks: usize,
    per_task: usize,
    tokens: impl Fn(usize) -> String + Send + Sync + 'static,
) -> usize {
    let tokens = Arc::new(tokens);
    let mut set = tokio::task::JoinSet::new();
    for t in 0..tasks {
        let (v, tokens) = (v.clone(), Arc::clone(&tokens));
        set.spawn(async move {
            let mut failed = 0;
            for i in 0..per_task {
                if let Err(e) = v.verify(&tokens(t * per_task + i)).await {
                    eprintln!("verification failed: {e}");
                    failed += 1;
                }
            }
            failed
        });
    }
    let mut failed = 0;
    while let Some(r) = set.join_next().await {
        failed += r.expect("task finished");
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ten_thousand_verifications_on_a_cold_cache_share_one_key_fetch() {
    let emu = emulator().await;
    let v = verifier(&emu, None);
    let tok = token(&emu, SystemTime::now());
    let hold = emu.hold(Endpoint::JwksV3);
    let crowd = {
        let v = v.clone();
        tokio::spawn(async move { hammer(&v, 100, 100, move |_| tok.clone()).await })
    };
    wait_for_count(&emu, Endpoint::JwksV3, 1).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    hold.release();
    let failed = within("10,000 verifications", crowd).await.expect("crowd");
    assert_eq!(failed, 0);
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_rotation_mid_stream_causes_no_failures() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let emu = Arc::new(emulator().await);
    let v = verifier(&emu, None);
    let old = token(&emu, SystemTime::now());
    v.verify(&old).await.expect("warm");
    let current = Arc::new(arc_swap::ArcSwap::from_pointee(old.clone()));
    let (stop, failed, new_ok) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
    );
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..20 {
        let (v, old, current) = (v.clone(), old.clone(), Arc::clone(&current));
        let (stop, failed, new_ok) = (stop.clone(), failed.clone(), new_ok.clone());
        tasks.spawn(async move {
            let mut i = t;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let tok = if i % 2 == 0 {
                    old.clone()
                } else {
                    current.load().as_ref().clone()
                };
                match v.verify(&tok).await {
                    Ok(_) if tok != old => _ = new_ok.fetch_add(1, Ordering::Relaxed),
                    Ok(_) => {}
                    Err(_) => _ = failed.fetch_add(1, Ordering::Relaxed),
                }
                tokio::task::yield_now().await;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let e = Arc::clone(&emu);
    tokio::task::spawn_blocking(move || e.rotate_keys())
        .await
        .expect("rotated");
    current.store(Arc::new(token(&emu, SystemTime::now())));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    within("the stream", async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    assert_eq!(failed.load(Ordering::Relaxed), 0);
    assert!(
        new_ok.load(Ordering::Relaxed) > 0,
        "tokens from the new key were verified mid-stream"
    );
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        2,
        "one refetch for the new kid"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_endpoint_down_with_a_warm_cache_causes_no_failures() {
    let clock = manual_clock();
    let emu = emulator_with_max_age(&clock, 60).await;
    let v = verifier(&emu, Some(&clock));
    let tok = token(&emu, clock.now());
    v.verify(&tok).await.expect("warm");
    emu.inject_fault(Endpoint::JwksV3, Fault::Status(503), 1000);
    clock.advance(Duration::from_secs(120));
    let t = tok.clone();
    assert_eq!(hammer(&v, 20, 100, move |_| t.clone()).await, 0);
    // One background refresh for the lapsed set (a fetch is up to 3 HTTP
    // tries), not one per verification; the next waits out the 30 s retry
    // interval, which is set before the failure is logged.
    wait_for_count(&emu, Endpoint::JwksV3, 1 + 3).await;
    let (logs, url) = (Logs::global(), emu.jwks_url());
    eventually("the failed refresh is recorded", || {
        logs.count("key set fetch failed", &url) > 0
    })
    .await;
    assert_eq!(hammer(&v, 20, 100, move |_| tok.clone()).await, 0);
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1 + 3);
    clock.advance(Duration::from_secs(31));
    let tok = token(&emu, clock.now());
    v.verify(&tok).await.expect("still served from cache");
    wait_for_count(&emu, Endpoint::JwksV3, 1 + 3 + 3).await;
    // No verification follows that could start another fetch.
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1 + 3 + 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_are_refreshed_in_the_background_before_they_lapse() {
    let clock = manual_clock();
    let emu = emulator_with_max_age(&clock, 100).await;
    let v = verifier(&emu, Some(&clock));
    let tok = token(&emu, clock.now());
    v.verify(&tok).await.expect("warm");
    let hold = emu.hold(Endpoint::JwksV3);
    clock.advance(Duration::from_secs(95));
    within("a verification during the refresh", v.verify(&tok))
        .await
        .expect("served from cache while the refresh waits");
    wait_for_count(&emu, Endpoint::JwksV3, 2).await;
    for _ in 0..100 {
        within("verify", v.verify(&tok)).await.expect("not blocked");
    }
    hold.release();
    tokio::time::sleep(Duration::from_millis(200)).await;
    clock.advance(Duration::from_secs(10));
    v.verify(&tok).await.expect("refreshed keys");
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        2,
        "one background refresh"
    );
}

#[tokio::test]
async fn random_kids_cause_at_most_one_refetch_per_interval() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let v = verifier(&emu, Some(&clock));
    v.verify(&token(&emu, clock.now())).await.expect("warm");
    for i in 0..200 {
        let forged = token_at(&emu, clock.now(), &format!("random-{i}"));
        assert!(v.verify(&forged).await.is_err());
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 2);
    clock.advance(Duration::from_secs(31));
    for i in 0..200 {
        let forged = token_at(&emu, clock.now(), &format!("again-{i}"));
        assert!(v.verify(&forged).await.is_err());
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 3);
}

#[tokio::test]
async fn a_key_set_served_with_max_age_zero_is_still_held_briefly() {
    let emu = Emulator::builder()
        .jwks_max_age(Duration::ZERO)
        .start()
        .await
        .expect("emulator");
    let v = verifier(&emu, None);
    let tok = token(&emu, SystemTime::now());
    for _ in 0..1000 {
        v.verify(&tok).await.expect("valid");
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
}

#[tokio::test]
async fn a_key_endpoint_outage_is_logged_once_not_per_request() {
    let all = Logs::global();
    let clock = manual_clock();
    let emu = emulator_with_max_age(&clock, 60).await;
    let v = verifier(&emu, Some(&clock));
    let tok = token(&emu, clock.now());
    let url = emu.jwks_url();
    let logs = |needle: &str| all.count(needle, &url);
    v.verify(&tok).await.expect("warm");
    // Fetches run one at a time, so the first request of a new fetch says
    // the one before it has ended, its logging included.
    // Two refresh attempts (3 HTTP tries each) fail; the one after succeeds.
    emu.inject_fault(Endpoint::JwksV3, Fault::Status(503), 6);
    for round in 1..=2 {
        clock.advance(Duration::from_secs(61));
        for _ in 0..300 {
            v.verify(&tok).await.expect("served from cache");
        }
        verify_until(&emu, &v, &tok, 1 + 3 * (round - 1) + 1).await;
        wait_for_count(&emu, Endpoint::JwksV3, 1 + 3 * round).await;
        eventually("the failure is logged", || logs("key set fetch failed") > 0).await;
    }
    // The second failure is not logged, so nothing says it is recorded, and
    // its retry interval counts from then. A verification with an unknown
    // `kid` waits for the fetch in flight, if any, and within the interval
    // starts none: after it, the failure is recorded, before the clock moves.
    let err = v
        .verify(&forged(clock.now(), "forged-kid"))
        .await
        .expect_err("unknown kid");
    assert!(
        matches!(err, idtoken::VerifyError::UnknownKey { .. }),
        "{err}"
    );
    clock.advance(Duration::from_secs(61));
    verify_until(&emu, &v, &tok, 1 + 3 * 2 + 1).await;
    // The second failed fetch has ended: whatever it logged is written.
    assert_eq!(logs("key set fetch failed"), 1, "one line per outage");
    v.verify(&tok).await.expect("fresh keys");
    eventually("the recovery is logged", || {
        logs("key set endpoint answers again") > 0
    })
    .await;
    // No fetch runs any more (the keys are fresh): nothing else can log.
    assert_eq!(logs("key set endpoint answers again"), 1);
}

/// Verifies `tok` (served from the cache) until the emulator has seen `n`
/// key-set requests: the verifications start the background refresh.
async fn verify_until(emu: &Emulator, v: &Verifier, tok: &str, n: u64) {
    let what = format!("a background refresh (request {n})");
    within(&what, async {
        while emu.counters().get(Endpoint::JwksV3) < n {
            v.verify(tok).await.expect("served from cache");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn keys_past_max_age_keep_serving_at_once_while_a_slow_refresh_runs() {
    let clock = manual_clock();
    let emu = emulator_with_max_age(&clock, 60).await;
    let v = verifier(&emu, Some(&clock));
    let tok = token(&emu, clock.now());
    v.verify(&tok).await.expect("warm");
    // The key endpoint is slow rather than down: its answer is held for
    // as long as this test likes, and the keys are past their max-age.
    let hold = emu.hold(Endpoint::JwksV3);
    clock.advance(Duration::from_secs(120));
    let t = tok.clone();
    let failed = within(
        "1,000 verifications while the refresh is held",
        hammer(&v, 10, 100, move |_| t.clone()),
    )
    .await;
    assert_eq!(failed, 0);
    wait_for_count(&emu, Endpoint::JwksV3, 2).await;
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        2,
        "one key-set request in flight"
    );
    hold.release();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cold_cache_during_an_outage_makes_one_fetch_sequence_then_fails_fast() {
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let v = verifier(&emu, Some(&clock));
    emu.inject_fault(Endpoint::JwksV3, Fault::Status(503), 10_000);
    let now = clock.now();
    let good = token(&emu, now);
    let outcomes = within(
        "500 cold verifications",
        hammer_errors(&v, 500, move |i| {
            // Signed tokens and well-formed forgeries with unknown kids.
            if i % 2 == 0 {
                good.clone()
            } else {
                forged(now, &format!("forged-{i}"))
            }
        }),
    )
    .await;
    assert_eq!(outcomes.len(), 500);
    assert!(
        outcomes
            .iter()
            .all(|e| matches!(e, Some(idtoken::VerifyError::KeysUnavailable { .. }))),
        "{:?}",
        outcomes
            .iter()
            .find(|e| !matches!(e, Some(idtoken::VerifyError::KeysUnavailable { .. })))
    );
    assert_eq!(
        emu.counters().get(Endpoint::JwksV3),
        3,
        "one fetch sequence (3 HTTP tries) for all 500"
    );
    // In the negative-cache window: fail fast, no request.
    for _ in 0..100 {
        let e = v.verify(&token(&emu, now)).await.expect_err("fails fast");
        assert!(e.is_unavailable(), "{e}");
        assert!(e.to_string().contains("503"), "the cause is kept: {e}");
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 3);
    // After the window (5 s, plus up to half again), one new sequence.
    clock.advance(Duration::from_secs(8));
    let _ = v.verify(&token(&emu, clock.now())).await;
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verifications_that_give_up_do_not_abort_the_shared_key_fetch() {
    let emu = emulator().await;
    let v = verifier(&emu, None);
    let tok = token(&emu, SystemTime::now());
    emu.set_delay(Endpoint::JwksV3, Duration::from_millis(1500));
    for _ in 0..100 {
        let impatient = tokio::time::timeout(Duration::from_millis(5), v.verify(&tok)).await;
        assert!(impatient.is_err(), "gave up before the keys came");
    }
    within("the patient verification", v.verify(&tok))
        .await
        .expect("verifies");
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 1);
}

/// A well-formed RS256 token for `AUD` under `kid`, signed by no one.
fn forged(now: SystemTime, kid: &str) -> String {
    use base64::Engine as _;
    let b64 = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let now = now
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    format!(
        "{}.{}.{}",
        b64(json!({"alg": "RS256", "kid": kid, "typ": "JWT"})),
        b64(
            json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
            "iat": now, "exp": now + 3600})
        ),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode([7u8; 256])
    )
}

/// Verifies `n` tokens at once, one task each; the error of each, if any.
async fn hammer_errors(
    v: &Verifier,
    n: usize,
    tokens: impl Fn(usize) -> String,
) -> Vec<Option<idtoken::VerifyError>> {
    let barrier = Arc::new(tokio::sync::Barrier::new(n));
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (v, tok, barrier) = (v.clone(), tokens(i), barrier.clone());
        set.spawn(async move {
            barrier.wait().await;
            v.verify(&tok).await.err()
        });
    }
    let mut out = Vec::new();
    while let Some(r) = set.join_next().await {
        out.push(r.expect("task finished"));
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_kid_does_not_wait_out_a_slow_refresh() {
    let clock = manual_clock();
    let emu = emulator_with_max_age(&clock, 60).await;
    let v = verifier(&emu, Some(&clock));
    v.verify(&token(&emu, clock.now())).await.expect("warm");
    // The refresh hangs at the emulator for as long as this test runs.
    let hold = emu.hold(Endpoint::JwksV3);
    clock.advance(Duration::from_secs(120));
    v.verify(&token(&emu, clock.now()))
        .await
        .expect("stale keys serve");
    wait_for_count(&emu, Endpoint::JwksV3, 2).await;
    let forged = forged(clock.now(), "forged-kid");
    let err = within("a forged kid during a slow refresh", v.verify(&forged))
        .await
        .expect_err("unknown kid");
    assert!(
        matches!(err, idtoken::VerifyError::UnknownKey { .. }),
        "{err}"
    );
    hold.release();
}
