//! Google's own client libraries, unchanged, against the emulator: Python
//! `google-auth` and Node `google-auth-library`, pinned in `interop/`.
//!
//! Each test starts its own emulator, runs one small script from `interop/`
//! with a controlled environment (only `PATH`, a fresh empty `HOME` and the
//! variables under test), and checks both what the script got and what the
//! emulator saw. They are ignored by plain `cargo test` because they need the
//! clients that `scripts/setup-interop` installs; `scripts/test` runs them,
//! and when run without the clients they fail, never pass silently.

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

/// Running the interop scripts: locate the interpreters, spawn with a clean
/// environment and a timeout, parse the one JSON line a script prints.
mod harness {
    use std::fs::File;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::Value;

    /// How long a script may run before it is killed and the test fails.
    const TIMEOUT: Duration = Duration::from_secs(60);
    /// What to do when the clients are missing.
    const SETUP: &str = "run scripts/setup-interop first (scripts/test does), \
        then pass IDTOKEN_INTEROP_PYTHON and IDTOKEN_INTEROP_NODE_DIR as scripts/test does";

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
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
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

    fn describe(cmd: &Command) -> String {
        let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
        parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
        parts.join(" ")
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read the child's output file")
    }

    /// A string field of a script's JSON answer.
    pub fn field<'a>(answer: &'a Value, name: &str) -> &'a str {
        answer[name]
            .as_str()
            .unwrap_or_else(|| panic!("the script's answer lacks string {name:?}: {answer}"))
    }

    /// The claims of a compact JWT, decoded without verification.
    pub fn claims(jwt: &str) -> Value {
        let mut parts = jwt.split('.');
        let payload = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(_), Some(payload), Some(_), None) => payload,
            _ => panic!("not a compact JWT: {jwt:?}"),
        };
        let bytes = URL_SAFE_NO_PAD
            .decode(payload)
            .expect("the JWT payload is base64url");
        serde_json::from_slice(&bytes).expect("the JWT payload is JSON")
    }

    /// Now, in seconds since the epoch.
    pub fn now() -> i64 {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("the clock is after 1970")
            .as_secs();
        i64::try_from(secs).expect("seconds fit i64")
    }
}

use harness::{claims, field};

async fn start() -> Emulator {
    Emulator::start().await.expect("start the emulator")
}

/// Asserts the claims every emulator ID token for `audience` carries.
fn assert_id_token(emu: &Emulator, claims: &Value, audience: &str) {
    assert_eq!(claims["aud"], audience, "aud, in {claims}");
    assert_eq!(claims["iss"], emu.issuer(), "iss, in {claims}");
    let exp = claims["exp"].as_i64().expect("exp is a number");
    let iat = claims["iat"].as_i64().expect("iat is a number");
    assert_eq!(exp - iat, 3600, "one hour lifetime, in {claims}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_fetch_id_token_uses_metadata_server_with_full_format() {
    let emu = start().await;
    let audience = "https://python-metadata.example.run.app";
    let host = emu.metadata_host();
    let answer = harness::run(
        harness::python("fetch_id_token.py", &[audience]),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    // Only format=full tokens carry the email.
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    assert_eq!(c["email_verified"], true, "in {c}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataPing), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::Token), 0, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_fetch_id_token_uses_service_account_key_file_token_uri() {
    let emu = start().await;
    let audience = "https://python-key-file.example.run.app";
    let dir = tempfile::tempdir().expect("a temp dir for the key file");
    let files = emu
        .write_credentials(dir.path())
        .expect("write the key file");
    let key_file = files.service_account.to_str().expect("a UTF-8 temp path");
    let answer = harness::run(
        harness::python("fetch_id_token.py", &[audience]),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::Token), 1, "{n:?}");
    assert_eq!(n.total(), 1, "nothing but the token endpoint: {n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_compute_id_token_credentials_refresh_gives_token_and_expiry() {
    let emu = start().await;
    let audience = "https://python-compute.example.run.app";
    let host = emu.metadata_host();
    let before = harness::now();
    let answer = harness::run(
        harness::python("compute_id_token_credentials.py", &[audience]),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;
    let after = harness::now();

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    let expiry = answer["expiry"].as_i64().expect("expiry is epoch seconds");
    assert_eq!(Some(expiry), c["exp"].as_i64(), "expiry is the token's exp");
    assert!(
        (before + 3600 - 5..=after + 3600 + 5).contains(&expiry),
        "expiry {expiry} is not about an hour after {before}..{after}"
    );
    assert_eq!(answer["valid"], true, "{answer}");
    // The constructor asks the metadata server which account it is.
    assert_eq!(
        field(&answer, "service_account_email"),
        emu.service_account_email()
    );
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::MetadataServiceAccount), 1, "{n:?}");
}

/// A token straight from the emulator's metadata identity endpoint.
async fn metadata_token(emu: &Emulator, audience: &str) -> String {
    reqwest::Client::new()
        .get(format!(
            "{}/computeMetadata/v1/instance/service-accounts/default/identity",
            emu.url()
        ))
        .query(&[("audience", audience)])
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .expect("reach the identity endpoint")
        .error_for_status()
        .expect("the identity endpoint answers 200")
        .text()
        .await
        .expect("read the token")
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_verify_token_accepts_emulator_token_with_pem_certs() {
    let emu = start().await;
    let audience = "https://python-verify.example.run.app";
    let token = metadata_token(&emu, audience).await;
    let answer = harness::run(
        harness::python("verify_token.py", &[&token, audience, &emu.pem_certs_url()]),
        &[],
    )
    .await;

    let c = &answer["claims"];
    assert!(c.is_object(), "verification failed: {answer}");
    assert_id_token(&emu, c, audience);
    assert_eq!(c["sub"], emu.service_account_id(), "in {c}");
    assert_eq!(emu.counters().get(Endpoint::CertsV1), 1);
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_verify_token_rejects_wrong_audience() {
    let emu = start().await;
    let token = metadata_token(&emu, "https://python-verify.example.run.app").await;
    let answer = harness::run(
        harness::python(
            "verify_token.py",
            &[
                &token,
                "https://someone-else.example.run.app",
                &emu.pem_certs_url(),
            ],
        ),
        &[],
    )
    .await;

    assert!(answer.get("claims").is_none(), "accepted: {answer}");
    assert!(!field(&answer, "error").is_empty(), "{answer}");
    let message = field(&answer, "message");
    assert!(
        message.contains("wrong audience"),
        "rejected, but not for the audience: {answer}"
    );
    // The signature was checked with the emulator's certificates first.
    assert_eq!(emu.counters().get(Endpoint::CertsV1), 1);
}

/// Detection is left on (no `METADATA_SERVER_DETECTION`), so the library's
/// real ping of `/computeMetadata/v1/instance` decides it is on GCE.
#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_id_token_client_sends_metadata_token_as_bearer_and_caches_it() {
    let emu = start().await;
    let audience = "https://node-metadata.example.run.app";
    let host = emu.metadata_host();
    let answer = harness::run(
        harness::node(
            "id_token_client.mjs",
            &[audience, &format!("{audience}/hello")],
        ),
        // gcp-metadata prefers GCE_METADATA_IP over GCE_METADATA_HOST.
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let header = field(&answer, "authorization");
    let jwt = header
        .strip_prefix("Bearer ")
        .unwrap_or_else(|| panic!("not a Bearer header: {header:?}"));
    let c = claims(jwt);
    assert_id_token(&emu, &c, audience);
    // Node asks for format=full.
    assert_eq!(c["email"], emu.service_account_email(), "in {c}");
    assert_eq!(
        field(&answer, "second_authorization"),
        header,
        "the second call reuses the token"
    );
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::MetadataIdentity), 1, "{n:?}");
    // On Google hardware the library trusts the BIOS and skips the ping.
    let pings = if answer["gcp_residency"] == true {
        0
    } else {
        1
    };
    assert_eq!(n.get(Endpoint::MetadataPing), pings, "{n:?}");
    assert_eq!(n.get(Endpoint::Token), 0, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn python_impersonated_id_token_credentials_mint_for_the_target() {
    let emu = start().await;
    let audience = "https://python-impersonated.example.run.app";
    let dir = tempfile::tempdir().expect("a temp dir for the key file");
    let files = emu
        .write_credentials(dir.path())
        .expect("write the key file");
    let key_file = files.service_account.to_str().expect("a UTF-8 temp path");
    let target = emu.target_service_account_email();
    let answer = harness::run(
        harness::python("impersonated_id_token.py", &[audience, &target, &emu.url()]),
        &[("GOOGLE_APPLICATION_CREDENTIALS", key_file)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], target.as_str(), "includeEmail, in {c}");
    assert_eq!(c["sub"], emu.target_service_account_id(), "in {c}");
    let n = emu.counters();
    assert_eq!(
        n.get(Endpoint::Token),
        1,
        "the source's access token: {n:?}"
    );
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
}

#[tokio::test]
#[ignore = "needs the Python/Node clients: run scripts/test"]
async fn node_impersonated_fetch_id_token_mints_for_the_target() {
    let emu = start().await;
    let audience = "https://node-impersonated.example.run.app";
    let host = emu.metadata_host();
    let target = emu.target_service_account_email();
    let answer = harness::run(
        harness::node(
            "impersonated_id_token.mjs",
            &[audience, &target, &emu.url()],
        ),
        &[("GCE_METADATA_HOST", &host), ("GCE_METADATA_IP", &host)],
    )
    .await;

    let c = claims(field(&answer, "token"));
    assert_id_token(&emu, &c, audience);
    assert_eq!(c["email"], target.as_str(), "includeEmail, in {c}");
    let n = emu.counters();
    assert_eq!(
        n.get(Endpoint::MetadataToken),
        1,
        "the source's access token: {n:?}"
    );
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
}
