//! Shared test setup: emulators, key files, bounded waiting.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use idtoken::{Clock, Credentials, ManualClock};
use idtoken_emulator::{Emulator, Endpoint};

pub async fn emulator() -> Emulator {
    Emulator::start().await.expect("emulator starts")
}

/// An emulator whose clock is `clock`, so tokens it issues line up with
/// the client's simulated time.
pub async fn emulator_on(clock: &ManualClock) -> Emulator {
    let c = clock.clone();
    Emulator::builder()
        .clock(Arc::new(move || c.now()))
        .start()
        .await
        .expect("emulator starts")
}

/// A clock stopped at the current real time.
pub fn manual_clock() -> ManualClock {
    ManualClock::new(std::time::SystemTime::now())
}

/// Writes the emulator's key file into a new temp dir.
pub fn key_file(emu: &Emulator) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = emu.write_credentials(dir.path()).expect("key file written");
    (dir, files.service_account)
}

/// Every credential file the emulator serves, in a new temp dir.
pub fn all_files(emu: &Emulator) -> (tempfile::TempDir, idtoken_emulator::CredentialFiles) {
    let dir = tempfile::tempdir().expect("temp dir");
    let files = emu.write_credentials(dir.path()).expect("files written");
    (dir, files)
}

/// Service account credentials for the emulator's default account.
pub fn service_account(emu: &Emulator) -> (tempfile::TempDir, Credentials) {
    let (dir, path) = key_file(emu);
    let creds = Credentials::from_file(&path).expect("key file loads");
    (dir, creds)
}

/// Waits (bounded) until the emulator has counted `n` requests at `endpoint`.
pub async fn wait_for_count(emu: &Emulator, endpoint: Endpoint, n: u64) {
    for _ in 0..500 {
        if emu.counters().get(endpoint) >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the emulator saw {} requests at {endpoint}, expected {n}",
        emu.counters().get(endpoint)
    );
}

/// Fails the test instead of hanging when `fut` does not finish promptly.
pub async fn within<T>(what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish: it blocked"))
}
