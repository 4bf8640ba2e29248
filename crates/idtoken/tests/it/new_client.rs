//! `integrations::reqwest_middleware::new_client` reads Application Default Credentials from the
//! process environment, which tests must not change. So each case re-runs
//! this test binary for one ignored `child_*` test, with the environment set
//! on the child only (and nothing inherited), and checks how it ended. The
//! emulator and the upstream live in the parent; the child reaches them
//! over loopback.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use idtoken_emulator::Endpoint;

use crate::common::*;
use crate::upstream::Upstream;

/// Set on the child: the audience (the upstream's URL) its body uses.
/// Without it a `child_*` test does nothing, so `--include-ignored` runs
/// stay harmless.
const CHILD_AUDIENCE: &str = "IDTOKEN_TEST_CHILD_AUDIENCE";
/// Printed by a child body that got to its end.
const DONE: &str = "child body done";

/// Runs the ignored test `name` of this module in a child process whose
/// environment is exactly `vars`, and returns its output once it passed.
async fn run_child(name: &str, vars: Vec<(&'static str, String)>) -> String {
    let module = module_path!()
        .split_once("::")
        .map_or(module_path!(), |(_, m)| m);
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--exact", &format!("{module}::{name}")])
        .args(["--ignored", "--nocapture", "--test-threads=1"])
        .env_clear()
        .envs(vars)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // Wait on a blocking thread so the emulator and the upstream, tasks of
    // this runtime, keep answering the child.
    let out = tokio::task::spawn_blocking(move || wait_bounded(cmd, Duration::from_secs(60)))
        .await
        .expect("waiter thread");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "the child failed:\n{text}");
    // A wrong test name would run nothing and still exit 0.
    assert!(text.contains(DONE), "the child body did not run:\n{text}");
    text
}

/// Runs `cmd`, killing it if it has not exited within `limit`. Its output
/// is a test harness report, far below a pipe's buffer.
fn wait_bounded(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.spawn().expect("the child starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("child status").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("child output");
            panic!(
                "the child hung; killed it:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("child output")
}

/// The child's environment: an empty home (no gcloud file), the audience,
/// and `extra`.
fn child_env(
    home: &Path,
    audience: &str,
    extra: &[(&'static str, String)],
) -> Vec<(&'static str, String)> {
    let mut vars = vec![
        ("HOME", home.display().to_string()),
        (CHILD_AUDIENCE, audience.to_owned()),
    ];
    vars.extend_from_slice(extra);
    vars
}

#[tokio::test]
async fn new_client_uses_the_key_file_named_by_google_application_credentials() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let (_dir, key) = key_file(&emu);
    let home = tempfile::tempdir().expect("home");
    let env = child_env(
        home.path(),
        &up.url,
        &[
            ("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string()),
            // Present so that a client ignoring the key file would show up
            // at the metadata counters.
            ("GCE_METADATA_HOST", emu.metadata_host()),
        ],
    );
    run_child("child_new_client_request_carries_a_token", env).await;
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].verified, Some(true), "{seen:?}");
    assert_eq!(emu.counters().get(Endpoint::Token), 1);
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 0);
    assert_eq!(emu.counters().get(Endpoint::MetadataPing), 0);
}

#[tokio::test]
async fn new_client_falls_back_to_the_metadata_server_at_gce_metadata_host() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let home = tempfile::tempdir().expect("home");
    let env = child_env(
        home.path(),
        &up.url,
        &[("GCE_METADATA_HOST", emu.metadata_host())],
    );
    run_child("child_new_client_request_carries_a_token", env).await;
    let seen = up.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].verified, Some(true), "{seen:?}");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
    assert_eq!(emu.counters().get(Endpoint::Token), 0);
}

#[tokio::test]
async fn new_client_without_credentials_fails_at_once_naming_what_it_tried() {
    let home = tempfile::tempdir().expect("home");
    // No metadata probe: off Google Cloud it would go to 169.254.169.254.
    let env = child_env(
        home.path(),
        "https://svc.example",
        &[("METADATA_SERVER_DETECTION", "none".to_owned())],
    );
    let out = run_child("child_new_client_without_credentials_is_an_error", env).await;
    assert!(out.contains("no Google credentials found"), "{out}");
}

/// The child's audience, or `None` when not run as a child.
fn child_audience() -> Option<String> {
    std::env::var(CHILD_AUDIENCE).ok()
}

#[tokio::test]
#[ignore = "a child body: run by the new_client_* tests with its environment"]
async fn child_new_client_request_carries_a_token() {
    let Some(audience) = child_audience() else {
        return;
    };
    let client = within(
        "new_client",
        idtoken::integrations::reqwest_middleware::new_client(audience.clone()),
    )
    .await
    .expect("credentials found");
    let resp = within("a request", client.get(format!("{audience}/child")).send())
        .await
        .expect("sent");
    assert_eq!(resp.status(), 200);
    println!("{DONE}");
}

#[tokio::test]
#[ignore = "a child body: run by the new_client_* tests with its environment"]
async fn child_new_client_without_credentials_is_an_error() {
    let Some(audience) = child_audience() else {
        return;
    };
    let err = within(
        "new_client",
        idtoken::integrations::reqwest_middleware::new_client(audience),
    )
    .await
    .expect_err("no credentials");
    assert!(
        matches!(err, idtoken::Error::NoCredentials { .. }),
        "{err:?}"
    );
    // What the caller reads: every place tried and what to do next.
    let text = err.to_string();
    for needle in [
        "GOOGLE_APPLICATION_CREDENTIALS",
        "METADATA_SERVER_DETECTION=none",
        "gcloud auth application-default login",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in: {text}");
    }
    println!("{text}\n{DONE}");
}
