//! The executable source with real child processes (`/bin/sh` running a
//! script written by each test, so no file is executed while this process
//! may still hold it open for writing). Whether executables are allowed is
//! passed in: the process environment is not changed by tests. The whole
//! flow against the emulator is tested through the CLI (which sets
//! `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES` for its child) and the
//! interop tests.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::json;

use super::*;

const SECRET: &str = "eyJhbGciOiJSUzI1NiJ9.c2VjcmV0LXN1YmplY3Q.c2ln";
const REQ: Request<'static> = Request {
    audience: "//iam.googleapis.com/projects/1/locations/global/workloadIdentityPools/p/providers/q",
    subject_token_type: JWT,
    impersonated_email: Some("runner@p.iam.gserviceaccount.com"),
};

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs(),
    )
    .expect("fits")
}

/// A successful response for `token`, valid for an hour.
fn fresh(token: &str) -> String {
    json!({"version": 1, "success": true, "token_type": JWT, "id_token": token,
        "expiration_time": now_secs() + 3600})
    .to_string()
}

struct Setup {
    dir: tempfile::TempDir,
}

impl Setup {
    fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An executable running `body` under `/bin/sh`, with `output_file`.
    fn exe(&self, body: &str, output_file: Option<PathBuf>) -> Executable {
        let script = self.path("exe.sh");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).expect("write the script");
        Executable {
            program: "/bin/sh".into(),
            args: vec![script.display().to_string()],
            timeout: Duration::from_secs(20),
            output_file,
        }
    }

    /// An executable that notes each run in `runs` and prints `response`.
    fn printing(&self, response: &str, output_file: Option<PathBuf>) -> Executable {
        let answer = self.path("answer.json");
        std::fs::write(&answer, response).expect("write the answer");
        let body = format!(
            "echo run >> {}\ncat {}",
            self.path("runs").display(),
            answer.display()
        );
        self.exe(&body, output_file)
    }

    fn runs(&self) -> usize {
        std::fs::read_to_string(self.path("runs")).map_or(0, |s| s.lines().count())
    }
}

async fn fetch(exe: &Executable) -> Result<String, String> {
    exe.fetch(&REQ, true, SystemTime::now()).await
}

fn config(executable: serde_json::Value) -> Result<Executable, String> {
    Executable::from_json(&executable).map_err(|e| e.to_string())
}

#[test]
fn command_is_split_on_whitespace_and_timeout_defaults_to_30_seconds() {
    let exe = config(json!({"command": "  /opt/get-token  --aud=x\t--v  "})).expect("parses");
    assert_eq!(exe.program, "/opt/get-token");
    assert_eq!(exe.args, ["--aud=x", "--v"]);
    assert_eq!(exe.timeout, Duration::from_secs(30));
    assert!(exe.output_file.is_none());
}

#[test]
fn bad_configurations_name_the_field() {
    let cases = [
        (json!({}), "credential_source.executable.command"),
        (
            json!({"command": "  "}),
            "credential_source.executable.command",
        ),
        (
            json!({"command": 3}),
            "credential_source.executable.command",
        ),
        (json!({"command": "\"/opt/my tool\" x"}), "double quote"),
        (
            json!({"command": "/x", "timeout_millis": 4999}),
            "credential_source.executable.timeout_millis",
        ),
        (
            json!({"command": "/x", "timeout_millis": 120_001}),
            "credential_source.executable.timeout_millis",
        ),
        (
            json!({"command": "/x", "timeout_millis": 0}),
            "credential_source.executable.timeout_millis",
        ),
        (
            json!({"command": "/x", "timeout_millis": "5000"}),
            "credential_source.executable.timeout_millis",
        ),
        (
            json!({"command": "/x", "output_file": 1}),
            "credential_source.executable.output_file",
        ),
        (json!("/x"), "credential_source.executable"),
    ];
    for (value, field) in cases {
        let err = config(value.clone())
            .err()
            .unwrap_or_else(|| panic!("{value} parsed"));
        assert!(err.contains(field), "{value}: {err}");
    }
    for ms in [5_000, 120_000] {
        let exe = config(json!({"command": "/x", "timeout_millis": ms})).expect("in range");
        assert_eq!(exe.timeout, Duration::from_millis(ms));
    }
}

#[tokio::test]
async fn not_allowed_is_refused_before_the_output_file_or_the_command() {
    let s = Setup::new();
    let cache = s.path("cache.json");
    std::fs::write(&cache, fresh(SECRET)).expect("write the cache");
    let exe = s.printing(&fresh(SECRET), Some(cache));
    let err = exe
        .fetch(&REQ, false, SystemTime::now())
        .await
        .expect_err("not allowed");
    assert!(err.contains(ALLOW_EXECUTABLES), "{err}");
    assert_eq!(s.runs(), 0, "the command must not run");
}

#[tokio::test]
async fn the_command_runs_without_a_shell_and_gets_the_google_variables() {
    let s = Setup::new();
    let cache = s.path("cache.json");
    // The arguments reach the program as written: no expansion, no `;`.
    let exe = s.exe(
        r#"printf '{"version":1,"success":true,"token_type":"urn:ietf:params:oauth:token-type:jwt","id_token":"%s|%s|%s|%s|%s|%s|%s|%s","expiration_time":%s}' \
  "$1" "$2" "$GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE" "$GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE" \
  "$GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE" "$GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL" \
  "$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE" "$(cat; echo stdin-closed)" "$(( $(date +%s) + 600 ))""#,
        Some(cache.clone()),
    );
    let mut exe = exe;
    exe.args.extend(["$HOME".to_owned(), "a;b".to_owned()]);
    let token = fetch(&exe).await.expect("token");
    let expected = [
        "$HOME",
        "a;b",
        REQ.audience,
        JWT,
        "0",
        "runner@p.iam.gserviceaccount.com",
        &cache.display().to_string(),
        "stdin-closed",
    ]
    .join("|");
    assert_eq!(token, expected);
}

#[tokio::test]
async fn saml_responses_give_the_saml_response() {
    let s = Setup::new();
    let exe = s.printing(
        &json!({"version": 1, "success": true, "token_type": SAML2, "saml_response": "PHNhbWw+"})
            .to_string(),
        None,
    );
    assert_eq!(fetch(&exe).await.expect("token"), "PHNhbWw+");
}

#[tokio::test]
async fn timeout_kills_the_child_and_says_so() {
    let s = Setup::new();
    let pid_file = s.path("pid");
    let mut exe = s.exe(
        &format!("echo $$ > {}\nexec sleep 60", pid_file.display()),
        None,
    );
    exe.timeout = Duration::from_millis(300);
    let err = fetch(&exe).await.expect_err("times out");
    assert!(
        err.contains("timeout_millis (300 ms)") && err.contains("killed"),
        "{err}"
    );
    let pid = std::fs::read_to_string(&pid_file).expect("the script ran");
    #[cfg(target_os = "linux")]
    assert!(
        !Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "the child {pid} is still there"
    );
}

#[tokio::test]
async fn non_zero_exit_names_the_status_and_what_it_reported_but_never_its_output() {
    let s = Setup::new();
    let failure =
        json!({"version": 1, "success": false, "code": "401", "message": "login required"});
    let exe = s.exe(&format!("echo '{failure}'\nexit 3"), None);
    let err = fetch(&exe).await.expect_err("exit 3");
    assert!(err.contains("exit status: 3"), "{err}");
    assert!(
        err.contains("\"401\"") && err.contains("login required"),
        "{err}"
    );

    let exe = s.exe(
        &format!("echo '{}'\necho {SECRET} >&2\nexit 1", fresh(SECRET)),
        None,
    );
    let err = fetch(&exe).await.expect_err("exit 1");
    assert!(err.contains("exit status: 1"), "{err}");
    assert!(!err.contains(SECRET), "the token leaked: {err}");
}

#[tokio::test]
async fn a_failure_response_shows_its_code_and_message() {
    let s = Setup::new();
    let exe = s.printing(
        &json!({"version": 1, "success": false, "code": "UNAUTHENTICATED", "message": "run `login` first"})
            .to_string(),
        None,
    );
    let err = fetch(&exe).await.expect_err("failure");
    assert!(
        err.contains("reported a failure")
            && err.contains("UNAUTHENTICATED")
            && err.contains("run `login` first"),
        "{err}"
    );
}

#[tokio::test]
async fn malformed_or_expired_responses_say_what_is_wrong_and_never_quote_the_token() {
    let s = Setup::new();
    let exp = now_secs() + 3600;
    let cases = [
        (format!("not json {SECRET}"), "not JSON"),
        (json!([SECRET]).to_string(), "not a JSON object"),
        (json!({"success": true, "token_type": JWT, "id_token": SECRET}).to_string(), "`version`"),
        (json!({"version": 2, "success": true, "token_type": JWT, "id_token": SECRET}).to_string(), "`version` is not 1"),
        (json!({"version": 1, "token_type": JWT, "id_token": SECRET}).to_string(), "`success`"),
        (json!({"version": 1, "success": "yes", "id_token": SECRET}).to_string(), "`success`"),
        (json!({"version": 1, "success": false, "message": SECRET}).to_string(), "`code` and `message`"),
        (json!({"version": 1, "success": true, "id_token": SECRET}).to_string(), "`token_type`"),
        (json!({"version": 1, "success": true, "token_type": "urn:x", "id_token": SECRET}).to_string(), "`token_type` is not one of"),
        (json!({"version": 1, "success": true, "token_type": JWT, "saml_response": SECRET}).to_string(), "`id_token`"),
        (json!({"version": 1, "success": true, "token_type": SAML2, "id_token": SECRET}).to_string(), "`saml_response`"),
        (json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET, "expiration_time": "soon"}).to_string(), "`expiration_time`"),
        (json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET, "expiration_time": now_secs() - 1}).to_string(), "expiration_time has passed"),
        (json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET, "expiration_time": -5}).to_string(), "expiration_time has passed"),
        (json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET, "expiration_time": exp}).to_string()
            .replace(SECRET, ""), "`id_token`"),
        (String::new(), "printed nothing"),
    ];
    for (response, expected) in cases {
        let exe = s.printing(&response, None);
        let err = fetch(&exe).await.expect_err(&response);
        assert!(err.contains(expected), "{response}: {err}");
        assert!(!err.contains(SECRET), "{response}: the token leaked: {err}");
    }
}

#[tokio::test]
async fn output_file_is_used_while_fresh_and_refreshed_by_a_run_when_expired_or_failed() {
    let s = Setup::new();
    let cache = s.path("cache.json");
    let exe = s.printing(&fresh("from-the-executable"), Some(cache.clone()));

    std::fs::write(&cache, fresh("from-the-cache")).expect("write");
    assert_eq!(fetch(&exe).await.expect("cached"), "from-the-cache");
    assert_eq!(s.runs(), 0, "a fresh cache entry spares the run");

    let stale = [
        json!({"version": 1, "success": true, "token_type": JWT, "id_token": "old",
            "expiration_time": now_secs() - 10})
        .to_string(),
        json!({"version": 1, "success": false, "code": "1", "message": "earlier failure"})
            .to_string(),
        String::new(),
    ];
    for (i, entry) in stale.iter().enumerate() {
        std::fs::write(&cache, entry).expect("write");
        assert_eq!(
            fetch(&exe).await.expect("ran"),
            "from-the-executable",
            "{entry}"
        );
        assert_eq!(s.runs(), i + 1, "{entry}");
    }
    std::fs::remove_file(&cache).expect("remove");
    assert_eq!(fetch(&exe).await.expect("ran"), "from-the-executable");
    assert_eq!(s.runs(), stale.len() + 1);
}

#[tokio::test]
async fn a_malformed_output_file_is_an_error_naming_it() {
    let s = Setup::new();
    let cache = s.path("cache.json");
    let exe = s.printing(&fresh("from-the-executable"), Some(cache.clone()));
    for entry in [
        format!("{{{SECRET}"),
        json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET}).to_string(),
    ] {
        std::fs::write(&cache, &entry).expect("write");
        let err = fetch(&exe).await.expect_err(&entry);
        assert!(
            err.contains(&format!("output_file {}", cache.display())),
            "{err}"
        );
        assert!(!err.contains(SECRET), "the token leaked: {err}");
    }
    assert_eq!(s.runs(), 0);
}

#[tokio::test]
async fn with_an_output_file_the_response_needs_an_expiration_time() {
    let s = Setup::new();
    let exe = s.printing(
        &json!({"version": 1, "success": true, "token_type": JWT, "id_token": SECRET}).to_string(),
        Some(s.path("cache.json")),
    );
    let err = fetch(&exe).await.expect_err("no expiry");
    assert!(
        err.contains("`expiration_time`") && err.contains("output_file"),
        "{err}"
    );
}

#[tokio::test]
async fn silent_executable_is_read_from_the_output_file_it_wrote() {
    let s = Setup::new();
    let cache = s.path("cache.json");
    let answer = s.path("answer.json");
    std::fs::write(&answer, fresh("written")).expect("write");
    let exe = s.exe(
        &format!(
            "cp {} \"$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE\"",
            answer.display()
        ),
        Some(cache),
    );
    assert_eq!(fetch(&exe).await.expect("token"), "written");
}

#[tokio::test]
async fn huge_output_is_refused() {
    let s = Setup::new();
    let exe = s.exe("head -c 3000000 /dev/zero", None);
    let err = fetch(&exe).await.expect_err("too big");
    assert!(err.contains("more than 1024 KiB"), "{err}");
}

#[tokio::test]
async fn a_missing_command_is_named() {
    let exe = Executable {
        program: "/nonexistent/get-token".into(),
        args: Vec::new(),
        timeout: Duration::from_secs(5),
        output_file: None,
    };
    let err = fetch(&exe).await.expect_err("not found");
    assert!(
        err.contains("/nonexistent/get-token") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn failure_texts_are_bounded() {
    let long = "x".repeat(1000);
    let err = parse(
        json!({"version": 1, "success": false, "code": "c", "message": long})
            .to_string()
            .as_bytes(),
        0,
        false,
    )
    .expect_err("failure");
    match err {
        Refusal::Failed(why) => assert!(why.len() < 400, "{why}"),
        other => panic!("{other:?}"),
    }
}
