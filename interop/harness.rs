//! Running Google's client libraries from the scripts in `interop/`: the one
//! harness of the emulator's interop tests (`crates/emulator/tests/interop.rs`)
//! and the library's cross-checks (`crates/idtoken/tests/it/crosscheck.rs`),
//! each of which includes this file with `#[path] mod harness;` (a shared
//! crate would be heavier than one file).
//!
//! It locates the interpreters (`IDTOKEN_INTEROP_PYTHON`, the venv's
//! Python; `IDTOKEN_INTEROP_NODE_DIR`, the folder with `node_modules`),
//! runs a script with a clean environment (only `PATH`, a fresh empty `HOME`
//! so no gcloud file is found, and the variables under test) and a timeout,
//! and parses the one JSON line a script prints. Without the clients it
//! panics saying how to install them: the tests fail, never pass silently.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long a script may run before it is killed and the test fails.
const TIMEOUT: Duration = Duration::from_secs(60);
/// What to do when the clients are missing.
const SETUP: &str = "run scripts/setup-interop first (scripts/test does), \
    then pass IDTOKEN_INTEROP_PYTHON and IDTOKEN_INTEROP_NODE_DIR as scripts/test does";

/// Both test crates live at `crates/<name>`.
fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../interop")
}

fn env_path(var: &str) -> PathBuf {
    match std::env::var_os(var) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => panic!("{var} is not set: {SETUP}"),
    }
}

/// A script of `interop/python`, run by the venv's Python.
pub fn python(script: &str, args: &[&str]) -> Command {
    let python = env_path("IDTOKEN_INTEROP_PYTHON");
    assert!(
        python.is_file(),
        "IDTOKEN_INTEROP_PYTHON={} is not a file: {SETUP}",
        python.display()
    );
    let mut cmd = Command::new(python);
    cmd.arg(interop_dir().join("python").join(script))
        .args(args);
    cmd
}

/// A script of the Node interop folder (it resolves its packages from
/// the `node_modules` next to it), run by the `node` on `PATH`.
pub fn node(script: &str, args: &[&str]) -> Command {
    let dir = env_path("IDTOKEN_INTEROP_NODE_DIR");
    assert!(
        dir.join("node_modules/google-auth-library").is_dir(),
        "IDTOKEN_INTEROP_NODE_DIR={} has no node_modules/google-auth-library: {SETUP}",
        dir.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script)).args(args).current_dir(dir);
    cmd
}

/// Runs `cmd` with only `PATH`, a fresh `HOME` (so no gcloud file is
/// found) and `env`; fails the test unless it exits 0 within the timeout
/// and prints a JSON line, which it returns.
pub async fn run(mut cmd: Command, env: &[(&str, &str)]) -> Value {
    let scratch = tempfile::tempdir().expect("a temp dir for HOME and output");
    let home = scratch.path().join("home");
    std::fs::create_dir(&home).expect("create the temp HOME");
    let stdout_path = scratch.path().join("stdout");
    let stderr_path = scratch.path().join("stderr");
    let path = std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    let what = describe(&cmd);
    cmd.env_clear()
        .env("PATH", path)
        .env("HOME", &home)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        // Files, not pipes: nothing to drain while we poll.
        .stdout(File::create(&stdout_path).expect("create the stdout file"))
        .stderr(File::create(&stderr_path).expect("create the stderr file"));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {what}: {e}: {SETUP}"));
    let deadline = Instant::now() + TIMEOUT;
    // Poll instead of blocking: the emulator serves on this same runtime.
    let status = loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            break status;
        }
        if Instant::now() >= deadline {
            // Kill may race with a natural exit; either way it is gone.
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} did not finish within {TIMEOUT:?}; stderr:\n{}",
                read(&stderr_path)
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let stdout = read(&stdout_path);
    let stderr = read(&stderr_path);
    assert!(
        status.success(),
        "{what} failed ({status}); stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or_else(|| panic!("{what} printed nothing; stderr:\n{stderr}"));
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("{what} printed {line:?}, not JSON: {e}; stderr:\n{stderr}"))
}

/// Runs a verify script (`verify_token.py`, `verify_token.mjs`), which
/// prints `{"claims": ...}` or `{"error", "message"}`: `Ok(claims)` or
/// `Err("error: message")`.
#[allow(
    dead_code,
    reason = "crosscheck.rs compares verdicts; the emulator's interop tests read the answer whole"
)]
pub async fn verdict(cmd: Command) -> Result<Value, String> {
    let answer = run(cmd, &[]).await;
    match answer.get("claims") {
        Some(c) => Ok(c.clone()),
        None => Err(format!("{}: {}", answer["error"], answer["message"])),
    }
}

fn describe(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    parts.join(" ")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).expect("read the child's output file")
}
