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
        "reference: tokio RwLock<Option<IdToken>> read + clone",
        |b| {
            b.to_async(&rt)
                .iter(|| async { black_box(locked.read().await.clone()) })
        },
    );
    group.finish();
}

criterion_group!(benches, warm_token);
criterion_main!(benches);
