//! Executable-sourced external accounts through the CLI (the child gets
//! `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES` or not): `token` runs the
//! emulator's sample executable and mints for the target; `doctor` names
//! the source and whether it may run; each way the executable can fail is
//! a clear error naming the step, never showing the token.

use std::path::{Path, PathBuf};

use idtoken_emulator::{Emulator, Endpoint};
use serde_json::{Value, json};

use crate::support::{idtoken, run, stderr, stdout};

const ALLOW: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";
const AUD: &str = "https://svc.example";

struct Setup {
    emu: Emulator,
    home: tempfile::TempDir,
    files: idtoken_emulator::CredentialFiles,
}

impl Setup {
    async fn new() -> Setup {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let files = emu.write_credentials(home.path()).expect("files");
        Setup { emu, home, files }
    }

    /// `idtoken ARGS` with the executable file as ADC, allowed or not.
    async fn idtoken(&self, creds: &Path, allowed: bool, args: &[&str]) -> std::process::Output {
        let mut cmd = idtoken(self.home.path());
        cmd.env("GOOGLE_APPLICATION_CREDENTIALS", creds).args(args);
        if allowed {
            cmd.env(ALLOW, "1");
        }
        run(&mut cmd).await
    }

    /// An executable file running `body` under `/bin/sh` (so this process
    /// never executes a file it just wrote), with `output_file` and
    /// `timeout_millis`.
    fn file_running(
        &self,
        name: &str,
        body: &str,
        output_file: Option<&Path>,
        timeout_ms: u64,
    ) -> PathBuf {
        let script = self.home.path().join(format!("{name}.sh"));
        std::fs::write(&script, format!("{body}\n")).expect("write the script");
        let mut doc: Value = serde_json::from_str(&self.emu.executable_external_account_json(
            &format!("/bin/sh {}", script.display()),
            output_file,
        ))
        .expect("json");
        doc["credential_source"]["executable"]["timeout_millis"] = json!(timeout_ms);
        let path = self.home.path().join(format!("{name}.json"));
        std::fs::write(&path, doc.to_string()).expect("write the file");
        path
    }
}

#[tokio::test]
async fn token_runs_the_sample_executable_once_and_mints_for_the_target() {
    let s = Setup::new().await;
    let creds = s.files.external_account_executable.clone();
    let out = s
        .idtoken(&creds, true, &["token", "--audience", AUD, "--json"])
        .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["claims"]["aud"], AUD);
    assert_eq!(
        v["claims"]["sub"],
        Value::from(s.emu.target_service_account_id())
    );
    let n = s.emu.counters();
    assert_eq!(n.get(Endpoint::Sts), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
    // The sample cached its answer in the file's output_file.
    let cache = s.home.path().join("executable_output.json");
    let cached: Value =
        serde_json::from_slice(&std::fs::read(&cache).expect("the executable wrote its cache"))
            .expect("JSON");
    assert_eq!(cached["success"], true);
}

#[tokio::test]
async fn without_permission_token_fails_naming_the_variable_and_nothing_is_sent() {
    let s = Setup::new().await;
    let out = s
        .idtoken(
            &s.files.external_account_executable,
            false,
            &["token", "--audience", AUD],
        )
        .await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1")
            && err.contains("credential_source.executable"),
        "{err}"
    );
    assert!(
        !s.home.path().join("executable_output.json").exists(),
        "it ran"
    );
    assert_eq!(s.emu.counters().get(Endpoint::Sts), 0);
}

#[tokio::test]
async fn doctor_names_the_executable_and_whether_it_may_run() {
    let s = Setup::new().await;
    let creds = s.files.external_account_executable.clone();
    let script = s.files.subject_token_executable.display().to_string();
    let refused = s
        .idtoken(&creds, false, &["doctor", "--audience", AUD])
        .await;
    let text = stdout(&refused);
    assert!(
        text.contains(&format!("executable {script}")) && text.contains("not allowed to run"),
        "{text}\n{}",
        stderr(&refused)
    );
    let allowed = s
        .idtoken(&creds, true, &["doctor", "--audience", AUD])
        .await;
    assert!(allowed.status.success(), "{}", stderr(&allowed));
    let text = stdout(&allowed);
    assert!(
        text.contains(&format!("executable {script}"))
            && text.contains(&format!("allowed: {ALLOW}=1"))
            && text.contains("OK: a token can be had."),
        "{text}"
    );
    assert!(
        !text.contains(&s.emu.subject_token()),
        "the subject token was shown"
    );
}

#[tokio::test]
async fn each_executable_failure_is_a_clear_error_without_the_token() {
    let s = Setup::new().await;
    let secret = s.emu.subject_token();
    let expired = json!({"version": 1, "success": true,
        "token_type": "urn:ietf:params:oauth:token-type:jwt", "id_token": secret,
        "expiration_time": 1})
    .to_string();
    let cases: Vec<(&str, String, Option<PathBuf>, u64, &str)> = vec![
        (
            "timeout",
            "exec sleep 60".into(),
            None,
            5000,
            "did not finish within timeout_millis (5000 ms)",
        ),
        (
            "nonzero",
            format!(
                "echo {secret} >&2\necho '{{\"version\":1,\"success\":false,\"code\":\"E42\",\"message\":\"no login\"}}'\nexit 7"
            ),
            None,
            5000,
            "exited with exit status: 7; it reported: code \"E42\", message \"no login\"",
        ),
        (
            "malformed",
            format!("echo 'token: {secret}'"),
            None,
            5000,
            "its response is not a valid executable response: it is not JSON",
        ),
        (
            "expired",
            format!("echo '{expired}'"),
            None,
            5000,
            "expiration_time has passed",
        ),
        (
            "badcache",
            "echo unused".into(),
            Some(s.home.path().join("bad-cache.json")),
            5000,
            "bad-cache.json is not a valid executable response: it has no `version` field",
        ),
        (
            "hugecache",
            "echo unused".into(),
            Some(s.home.path().join("huge-cache.json")),
            5000,
            "huge-cache.json is larger than 1024 KiB",
        ),
    ];
    std::fs::write(
        s.home.path().join("bad-cache.json"),
        format!("{{\"token\":\"{secret}\"}}"),
    )
    .expect("write");
    // Valid JSON cut at 1 MiB would read as malformed: refused by its size.
    let mut huge = String::from("{\"version\":1,\"pad\":\"");
    huge.push_str(&"x".repeat(1024 * 1024));
    huge.push_str("\"}");
    std::fs::write(s.home.path().join("huge-cache.json"), huge).expect("write");
    for (name, body, output_file, timeout, want) in cases {
        let creds = s.file_running(name, &body, output_file.as_deref(), timeout);
        let out = s.idtoken(&creds, true, &["token", "--audience", AUD]).await;
        assert!(!out.status.success(), "{name}");
        let err = stderr(&out);
        assert!(err.contains(want), "{name}: {err}");
        assert!(
            err.contains("credential_source.executable"),
            "{name}: {err}"
        );
        assert!(!err.contains(&secret), "{name}: the token leaked: {err}");
    }
    assert_eq!(s.emu.counters().get(Endpoint::Sts), 0);
}

/// docs/BENCHMARKS.md: through `idtoken proxy` (no disk cache), the first
/// request costs one run of the executable, one STS exchange and one
/// generateIdToken; 100 further requests cost nothing. `curl` works too.
#[tokio::test]
async fn proxy_runs_the_executable_for_its_first_token_only_and_curl_works() {
    let s = Setup::new().await;
    let runs = s.home.path().join("runs");
    let creds = s.file_running(
        "counted",
        &format!(
            "echo run >> {}\nexec /bin/sh {}",
            runs.display(),
            s.files.subject_token_executable.display()
        ),
        None,
        10_000,
    );
    let count = || std::fs::read_to_string(&runs).map_or(0, |t| t.lines().count());
    let svc = crate::echo_service().await;
    let target = format!("http://{svc}");
    let env = [
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            creds.display().to_string(),
        ),
        (ALLOW, "1".to_owned()),
    ];
    let proxy = crate::support::start_proxy(
        s.home.path(),
        &env,
        &["--target", &target, "--audience", AUD, "--no-cache"],
    )
    .await;
    let client = reqwest::Client::new();
    let get = || async {
        let seen: Value = client
            .get(format!("{}/x", proxy.url))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("echo JSON");
        assert_eq!(seen["authorization"]["aud"], AUD, "{seen}");
    };
    get().await;
    let first = s.emu.counters();
    assert_eq!(first.total(), 2, "{first:?}");
    assert_eq!(first.get(Endpoint::Sts), 1, "{first:?}");
    assert_eq!(first.get(Endpoint::IamGenerateIdToken), 1, "{first:?}");
    assert_eq!(count(), 1, "one run of the executable");
    for _ in 0..100 {
        get().await;
    }
    assert_eq!(
        s.emu.counters().total(),
        first.total(),
        "warm requests made requests"
    );
    assert_eq!(count(), 1, "warm requests ran the executable");

    let out = run(idtoken(s.home.path())
        .env("GOOGLE_APPLICATION_CREDENTIALS", &creds)
        .env(ALLOW, "1")
        .args([
            "curl",
            "--audience",
            AUD,
            "--no-cache",
            &format!("{target}/y"),
        ]))
    .await;
    assert!(out.status.success(), "{}", stderr(&out));
    let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
    assert_eq!(seen["authorization"]["aud"], AUD, "{seen}");
    assert_eq!(count(), 2, "curl ran it once more");
}
