//! The tower layer's hot path allocates nothing: with a cached token, a
//! request costs lookups, a clock read and reference-count increments.
//!
//! A separate test binary because it installs a counting global allocator.
//! Requests are polled by hand with a no-op waker on this thread, so no
//! runtime thread allocates inside the measured window.

use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::task::{Context, Poll, Waker};

use idtoken::Credentials;
use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::tower::AddIdTokenLayer;
use idtoken_emulator::Emulator;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};
use tower_layer::Layer as _;
use tower_service::Service;

#[global_allocator]
static GLOBAL: &StatsAlloc<std::alloc::System> = &INSTRUMENTED_SYSTEM;

/// A service that answers at once.
#[derive(Clone)]
struct Instant;

impl Service<http::Request<()>> for Instant {
    type Response = usize;
    type Error = Infallible;
    type Future = Ready<Result<usize, Infallible>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<()>) -> Self::Future {
        ready(Ok(req.headers().len()))
    }
}

/// A request whose header map already has room (inserting into an empty
/// map allocates its table: the request's cost, not the layer's).
fn request() -> http::Request<()> {
    http::Request::get("http://svc.example/items")
        .header("x-request-id", "1")
        .body(())
        .expect("request")
}

fn call_now<S>(svc: &mut S, req: http::Request<()>) -> usize
where
    S: Service<http::Request<()>, Response = usize>,
    S::Error: std::fmt::Debug,
{
    let mut cx = Context::from_waker(Waker::noop());
    assert!(svc.poll_ready(&mut cx).is_ready());
    match pin!(svc.call(req)).poll(&mut cx) {
        Poll::Ready(result) => result.expect("the call succeeds"),
        Poll::Pending => panic!("a warm call waited"),
    }
}

#[test]
fn warm_requests_through_the_tower_layer_allocate_nothing() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let emu = rt.block_on(Emulator::start()).expect("emulator starts");
    let creds = Credentials::metadata_server(&emu.metadata_host());
    for audience in [
        Audience::Fixed("http://svc.example".into()),
        Audience::FromUrl,
    ] {
        let mut svc =
            AddIdTokenLayer::new(Tokens::new(creds.clone(), audience.clone())).layer(Instant);
        // Cold: fetch the token. The second call shares the token's header
        // bytes (their first clone moves them to a shared buffer).
        let mut warm = svc.clone();
        rt.block_on(async move {
            for _ in 0..2 {
                std::future::poll_fn(|cx| warm.poll_ready(cx))
                    .await
                    .expect("ready");
                warm.call(request()).await.expect("the cold call succeeds");
            }
        });
        let requests: Vec<_> = (0..100).map(|_| request()).collect();
        let region = Region::new(GLOBAL);
        for req in requests {
            assert_eq!(call_now(&mut svc, req), 2, "the token header was added");
        }
        let change = region.change();
        assert_eq!(
            (change.allocations, change.reallocations),
            (0, 0),
            "{audience:?}: 100 warm requests allocated"
        );
    }
}
