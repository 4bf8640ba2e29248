//! The token cache `token`, `curl` and `proxy` share across processes
//! (`$XDG_CACHE_HOME/idtoken`): hits make no request, every difference in
//! the request mints anew, untrusted entries and folders are ignored (and
//! entries replaced), files are private, `doctor` lists entries without
//! their tokens.

use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::Output;

use idtoken_emulator::Emulator;
use serde_json::Value;

use crate::support::{idtoken, run, start_proxy, stderr, stdout};

/// A home, a cache folder, a key file and the emulator.
struct Setup {
    emu: Emulator,
    home: tempfile::TempDir,
    key: PathBuf,
}

impl Setup {
    async fn new() -> Setup {
        let emu = Emulator::start().await.expect("emulator");
        let home = tempfile::tempdir().expect("home");
        let key = emu
            .write_credentials(home.path())
            .expect("files")
            .service_account;
        Setup { emu, home, key }
    }

    fn xdg(&self) -> PathBuf {
        self.home.path().join("xdg")
    }

    fn folder(&self) -> PathBuf {
        self.xdg().join("idtoken")
    }

    /// `idtoken token --credentials KEY` and `extra` (with the audience
    /// `https://svc.example` unless `extra` names one).
    async fn token(&self, extra: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = idtoken(self.home.path());
        cmd.env("XDG_CACHE_HOME", self.xdg()).arg("token");
        for (k, v) in env {
            cmd.env(k, v);
        }
        if !extra.contains(&"--audience") {
            cmd.args(["--audience", "https://svc.example"]);
        }
        let out = run(cmd.arg("--credentials").arg(&self.key).args(extra)).await;
        assert!(out.status.success(), "{}", stderr(&out));
        out
    }

    fn minted(&self) -> u64 {
        self.emu.counters().total()
    }

    /// The one entry in the folder.
    fn entry(&self) -> PathBuf {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(self.folder())
            .expect("folder")
            .map(|e| e.expect("entry").path())
            .collect();
        assert_eq!(entries.len(), 1, "{entries:?}");
        entries.remove(0)
    }
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn a_second_run_makes_no_request_and_prints_the_same_token() {
    let s = Setup::new().await;
    let first = s.token(&[], &[]).await;
    assert_eq!(s.minted(), 1);
    let second = s.token(&[], &[]).await;
    assert_eq!(s.minted(), 1, "the second run asked the emulator");
    assert_eq!(stdout(&first), stdout(&second));
    let json = s.token(&["--json"], &[]).await;
    let v: Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(v["from_cache"], true);
    assert_eq!(v["token"].as_str(), Some(stdout(&first).trim()));
    assert!(
        v["credentials"]
            .as_str()
            .expect("origin")
            .contains("given explicitly")
    );
    // Files are the user's alone.
    assert_eq!(mode(&s.folder()), 0o700);
    assert_eq!(mode(&s.entry()), 0o600);
}

#[tokio::test]
async fn the_metadata_server_token_is_cached_without_a_probe() {
    let emu = Emulator::start().await.expect("emulator");
    let home = tempfile::tempdir().expect("home");
    let token = || async {
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args(["token", "--audience", "https://svc.example"]))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
    };
    let first = token().await;
    let asked = emu.counters().total();
    assert_eq!(first, token().await);
    assert_eq!(emu.counters().total(), asked, "no probe, no fetch");
    // Without XDG_CACHE_HOME: under HOME.
    assert!(home.path().join(".cache/idtoken").is_dir());
}

#[tokio::test]
async fn every_difference_in_the_request_mints_anew() {
    let s = Setup::new().await;
    s.token(&[], &[]).await;
    let mut expected = s.minted();
    let target = s.emu.target_service_account_email();
    let iam = s.emu.url();
    type Run<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)]);
    let runs: [Run<'_>; 4] = [
        (&["--audience", "https://other.example"], &[]),
        (
            &[
                "--impersonate-service-account",
                &target,
                "--iam-endpoint",
                &iam,
            ],
            &[],
        ),
        (&["--no-cache"], &[]),
        (&[], &[("IDTOKEN_NO_CACHE", "1")]),
    ];
    for (args, env) in runs {
        s.token(args, env).await;
        assert!(s.minted() > expected, "{args:?} {env:?} used the cache");
        expected = s.minted();
    }
    // The same key, its file rewritten with other bytes.
    let mut text = std::fs::read_to_string(&s.key).expect("key");
    text.push('\n');
    std::fs::write(&s.key, text).expect("rewrite");
    s.token(&[], &[]).await;
    assert!(s.minted() > expected, "an edited key file used the cache");
}

/// Runs once, spoils the entry with `spoil`, runs again: the second run
/// succeeds, mints, and leaves a private entry behind.
async fn spoiled_entry_is_replaced(spoil: impl FnOnce(&Setup, &Path)) {
    let s = Setup::new().await;
    s.token(&[], &[]).await;
    let entry = s.entry();
    spoil(&s, &entry);
    let before = s.minted();
    s.token(&[], &[]).await;
    assert_eq!(s.minted(), before + 1, "the spoiled entry was used");
    let md = std::fs::symlink_metadata(&entry).expect("replaced");
    assert!(md.file_type().is_file());
    assert_eq!(md.uid(), my_uid());
    assert_eq!(mode(&entry), 0o600);
    // And the replacement is used.
    s.token(&[], &[]).await;
    assert_eq!(s.minted(), before + 1);
}

fn my_uid() -> u32 {
    std::fs::metadata("/proc/self").map_or(0, |m| m.uid())
}

#[tokio::test]
async fn an_entry_readable_by_others_is_ignored_and_replaced() {
    spoiled_entry_is_replaced(|_, entry| {
        std::fs::set_permissions(entry, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    })
    .await;
}

#[tokio::test]
async fn an_entry_owned_by_another_user_is_ignored_and_replaced() {
    if my_uid() != 0 {
        eprintln!("skipped: chown needs root");
        return;
    }
    spoiled_entry_is_replaced(|_, entry| {
        std::os::unix::fs::chown(entry, Some(54321), Some(54321)).expect("chown");
    })
    .await;
}

#[tokio::test]
async fn a_symlinked_entry_is_ignored_and_replaced() {
    spoiled_entry_is_replaced(|s, entry| {
        let elsewhere = s.home.path().join("planted");
        std::fs::rename(entry, &elsewhere).expect("move");
        std::os::unix::fs::symlink(&elsewhere, entry).expect("symlink");
    })
    .await;
}

#[tokio::test]
async fn a_garbage_entry_is_ignored_and_replaced() {
    spoiled_entry_is_replaced(|_, entry| {
        std::fs::write(entry, b"\xff\x00 not an entry {").expect("write");
    })
    .await;
}

#[tokio::test]
async fn an_expired_entry_is_ignored_and_replaced() {
    spoiled_entry_is_replaced(|s, entry| {
        let mut v: Value =
            serde_json::from_slice(&std::fs::read(entry).expect("read")).expect("JSON");
        let expired = s
            .emu
            .sign_google(
                r#"{"alg":"RS256","typ":"JWT"}"#,
                r#"{"aud":"https://svc.example","iss":"https://accounts.google.com","iat":1000000000,"exp":1000003600}"#,
            )
            .expect("sign");
        v["token"] = Value::from(expired);
        std::fs::write(entry, v.to_string()).expect("write");
    })
    .await;
}

#[tokio::test]
async fn a_folder_open_to_others_is_not_used_and_the_command_succeeds() {
    let s = Setup::new().await;
    s.token(&[], &[]).await;
    std::fs::set_permissions(s.folder(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let before = s.minted();
    s.token(&[], &[]).await;
    s.token(&[], &[]).await;
    assert_eq!(s.minted(), before + 2, "a 0755 folder was used");
    assert_eq!(mode(&s.folder()), 0o755, "left as it was");
}

#[tokio::test]
async fn doctor_lists_the_entry_and_never_its_token() {
    let s = Setup::new().await;
    let token = stdout(&s.token(&[], &[]).await);
    let doctor = |json: bool| {
        let mut cmd = idtoken(s.home.path());
        cmd.env("XDG_CACHE_HOME", s.xdg())
            .args(["doctor", "--credentials"])
            .arg(&s.key);
        if json {
            cmd.arg("--json");
        }
        async move { run(&mut cmd).await }
    };
    let out = doctor(false).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for want in [
        "Token cache",
        &s.folder().display().to_string(),
        "usable: yes",
        "entries: 1",
        "https://svc.example [standard]",
        "(usable); service account key",
    ] {
        assert!(text.contains(want), "{want:?} missing in:\n{text}");
    }
    assert!(!text.contains(token.trim()));
    let out = doctor(true).await;
    let v: Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let entries = v["token_cache"]["entries"].as_array().expect("entries");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["audience"], "https://svc.example");
    assert_eq!(entries[0]["fresh"], true);
    assert!(!stdout(&out).contains(token.trim()));
}

#[tokio::test]
async fn curl_uses_and_fills_the_same_cache() {
    let s = Setup::new().await;
    let svc = crate::echo_service().await;
    let url = format!("http://{svc}/");
    let curl = || async {
        let out = run(idtoken(s.home.path())
            .env("XDG_CACHE_HOME", s.xdg())
            .args([
                "curl",
                &url,
                "--audience",
                "https://svc.example",
                "--credentials",
            ])
            .arg(&s.key))
        .await;
        assert!(out.status.success(), "{}", stderr(&out));
        let seen: Value = serde_json::from_str(&stdout(&out)).expect("echo JSON");
        assert_eq!(seen["authorization"]["aud"], "https://svc.example");
    };
    curl().await;
    assert_eq!(s.minted(), 1);
    curl().await;
    s.token(&[], &[]).await;
    assert_eq!(s.minted(), 1, "curl and token share the entry");
}

#[tokio::test]
async fn the_proxy_starts_from_a_cached_token() {
    let s = Setup::new().await;
    s.token(&[], &[]).await;
    let svc = crate::echo_service().await;
    let env = [
        ("XDG_CACHE_HOME", s.xdg().display().to_string()),
        (
            "GOOGLE_APPLICATION_CREDENTIALS",
            s.key.display().to_string(),
        ),
    ];
    let target = format!("http://{svc}");
    let proxy = start_proxy(
        s.home.path(),
        &env,
        &["--target", &target, "--audience", "https://svc.example"],
    )
    .await;
    let seen: Value = reqwest::get(format!("{}/x", proxy.url))
        .await
        .expect("request")
        .json()
        .await
        .expect("echo JSON");
    assert_eq!(seen["authorization"]["aud"], "https://svc.example");
    assert_eq!(s.minted(), 1, "the proxy minted instead of using the cache");
    // GOOGLE_APPLICATION_CREDENTIALS and --credentials name the same file
    // in the same way for the key: the proxy's entry is the token's.
    assert_eq!(std::fs::read_dir(s.folder()).expect("folder").count(), 1);
}

#[tokio::test]
async fn a_proxy_on_a_cold_cache_stores_its_first_token() {
    let s = Setup::new().await;
    let svc = crate::echo_service().await;
    let env = [("XDG_CACHE_HOME", s.xdg().display().to_string())];
    let target = format!("http://{svc}");
    let key = s.key.display().to_string();
    let _proxy = start_proxy(
        s.home.path(),
        &env,
        &[
            "--target",
            &target,
            "--audience",
            "https://svc.example",
            "--credentials",
            &key,
        ],
    )
    .await;
    for _ in 0..200 {
        let stored = std::fs::read_dir(s.folder())
            .is_ok_and(|mut d| d.any(|e| e.is_ok_and(|e| e.file_name().len() == 64)));
        if stored {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    assert_eq!(s.minted(), 1);
    s.token(&[], &[]).await;
    assert_eq!(s.minted(), 1, "the proxy's token was not stored");
}
