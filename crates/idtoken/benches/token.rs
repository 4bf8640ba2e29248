//! Warm-cache cost of `IdTokenSource::token()`: the call every request
//! makes once a token is cached.
//!
//! A service account token is minted once against an in-process emulator;
//! then the benchmark measures only the cached path. A `tokio::sync::RwLock`
//! cache (what a straightforward implementation uses) runs in the same
//! process as a reference point.

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use idtoken::{Credentials, IdToken};
use idtoken_emulator::Emulator;

fn warm_token(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let (_emu, _dir, source) = rt.block_on(async {
        let emu = Emulator::start().await.expect("emulator");
        let dir = tempfile::tempdir().expect("dir");
        let files = emu.write_credentials(dir.path()).expect("key file");
        let creds = Credentials::from_file(&files.service_account).expect("creds");
        let source = creds.token_source("https://bench.example");
        source.token().await.expect("first token");
        (emu, dir, source)
    });
    let token: IdToken = source.cached().expect("cached");
    let locked = tokio::sync::RwLock::new(Some(token));

    let mut group = c.benchmark_group("warm token");
    group.bench_function("idtoken IdTokenSource::token()", |b| {
        b.to_async(&rt)
            .iter(|| async { black_box(source.token().await.expect("token")) })
    });
    group.bench_function("idtoken IdTokenSource::cached()", |b| {
        b.iter(|| black_box(source.cached()))
    });
    group.bench_function(
        "reference: tokio RwLock<Option<IdToken>> read, expiry check, clone",
        |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(unexpired(&*locked.read().await)) })
        },
    );
    group.finish();

    // Every thread reads the same cache at once, as request handlers do.
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let std_locked = std::sync::RwLock::new(source.cached());
    let mut group = c.benchmark_group(format!("warm token, {threads} threads at once"));
    group.bench_function("idtoken IdTokenSource::cached()", |b| {
        b.iter_custom(|iters| {
            on_threads(threads, iters, || {
                black_box(source.cached());
            })
        })
    });
    group.bench_function(
        "reference: std RwLock<Option<IdToken>> read, expiry check, clone",
        |b| {
            b.iter_custom(|iters| {
                on_threads(threads, iters, || {
                    black_box(std_locked.read().map(|g| unexpired(&g)).ok());
                })
            })
        },
    );
    group.finish();
}

/// What any cache must do on a read: hand out the token only if it has
/// not expired, by the system clock.
fn unexpired(token: &Option<IdToken>) -> Option<IdToken> {
    token
        .as_ref()
        .filter(|t| t.expires_at() > std::time::SystemTime::now())
        .cloned()
}

/// Runs `iters` calls of `f` split over `threads` threads and returns the
/// wall time, so criterion reports the inverse of the combined throughput.
fn on_threads(threads: usize, iters: u64, f: impl Fn() + Sync) -> std::time::Duration {
    let per_thread = iters.div_ceil(threads as u64);
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    f();
                }
            });
        }
    });
    start.elapsed()
}

criterion_group!(benches, warm_token);
criterion_main!(benches);
