//! Shared test setup: emulators, key files, bounded waiting.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::task::Poll;
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

/// Waits (bounded) until `done` holds.
pub async fn eventually(what: &str, done: impl Fn() -> bool) {
    within(what, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

/// Polls each call once, then lets it go on in a task of its own. A cache
/// joins the fetch in flight (or starts it) in its first poll, so when this
/// returns every caller waits on that one fetch: no sleep to let them
/// gather. A call that finished in its first poll yields its outcome.
pub async fn first_polled<F>(
    calls: impl IntoIterator<Item = F>,
) -> Vec<tokio::task::JoinHandle<F::Output>>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut tasks = Vec::new();
    for call in calls {
        let mut call = Box::pin(call);
        let first = std::future::poll_fn(|cx| Poll::Ready(call.as_mut().poll(cx))).await;
        tasks.push(match first {
            Poll::Ready(out) => tokio::spawn(async move { out }),
            Poll::Pending => tokio::spawn(call),
        });
    }
    tasks
}

/// Tasks alive on this runtime. On a current-thread runtime, between two
/// reads with no `.await` that yields in between, it changes only by the
/// tasks spawned there: a cache that started a fetch (a task of its own)
/// shows up at once, without waiting for its request to arrive anywhere.
pub fn alive_tasks() -> usize {
    tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks()
}

/// Collects formatted log output.
#[derive(Clone, Default)]
pub struct Logs(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Logs {
    /// Lines that hold both `needle` and `about`.
    pub fn count(&self, needle: &str, about: &str) -> usize {
        let bytes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&bytes)
            .lines()
            .filter(|l| l.contains(needle) && l.contains(about))
            .count()
    }

    /// The process-wide log, installed once. Global rather than a scoped
    /// subscriber: the refreshes run in tasks of their own, and tracing's
    /// per-callsite interest cache, filled from whichever thread first
    /// logs there, can hide a scoped subscriber's events from them when
    /// other tests run alongside.
    pub fn global() -> Logs {
        static LOGS: std::sync::OnceLock<Logs> = std::sync::OnceLock::new();
        LOGS.get_or_init(|| {
            let logs = Logs::default();
            let writer = logs.clone();
            let subscriber = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::INFO)
                .with_ansi(false)
                .with_writer(move || writer.clone())
                .finish();
            tracing::subscriber::set_global_default(subscriber).expect("the only global log");
            logs
        })
        .clone()
    }
}

/// An STS stand-in that keeps the form of each exchange it gets and
/// refuses it: how a test sees the subject token idtoken sends.
pub async fn capturing_sts() -> (String, Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::routing::post;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = seen.clone();
    let app = axum::Router::new().route(
        "/v1/token",
        post(
            move |axum::Form(form): axum::Form<std::collections::HashMap<String, String>>| async move {
                keep.lock()
                    .expect("lock")
                    .push(form.get("subject_token").cloned().unwrap_or_default());
                (
                    axum::http::StatusCode::BAD_REQUEST,
                    r#"{"error":"invalid_request","error_description":"captured"}"#,
                )
            },
        ),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1/token"), seen)
}
