//! The recipes in `docs/recipes/`, run as written: the text and the test
//! cannot drift because the test reads the page.
//!
//! On a page, a fenced block whose info string is `sh test` is run; plain
//! `sh` blocks (Google's real endpoints, `gcloud` set-up) are shown only.
//! A page's tested blocks run in order as one `bash -euo pipefail` script
//! in a fresh folder, with the built `idtoken` first on `PATH`, a fresh
//! `HOME`, and, unless the page starts its own, an `idtoken emulator
//! --credentials-dir emulator` running with its `export` lines in the
//! environment (what each page tells its reader to do). `sh test python`
//! blocks also need Google's Python client: they run when
//! `IDTOKEN_INTEROP_PYTHON` names the interop venv's interpreter (its
//! folder goes first on `PATH`), and are left out otherwise.
//!
//! `<!-- include: PATH -->` just before a fenced block says the block is
//! the file at PATH (from the repository root), byte for byte;
//! `IDTOKEN_UPDATE_RECIPES=1` rewrites the blocks from the files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::{idtoken, stderr, stdout};

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A recipe page's text, by file name.
pub(crate) fn page(name: &str) -> String {
    let path = root().join("docs/recipes").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One fenced block: its info string, its body, and the line before it.
#[derive(Debug)]
pub(crate) struct Block {
    pub info: String,
    pub body: String,
    pub before: String,
}

/// Every fenced (```) block of `text`, in order.
pub(crate) fn blocks(text: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    let mut previous = "";
    while let Some(line) = lines.next() {
        if let Some(info) = line.strip_prefix("```") {
            let mut body = String::new();
            for inner in lines.by_ref() {
                if inner == "```" {
                    break;
                }
                body.push_str(inner);
                body.push('\n');
            }
            out.push(Block {
                info: info.trim().to_owned(),
                body,
                before: previous.to_owned(),
            });
            previous = "";
        } else if !line.trim().is_empty() {
            previous = line;
        }
    }
    out
}

/// The bodies of the blocks whose info string is `info`.
pub(crate) fn blocks_marked(text: &str, info: &str) -> Vec<String> {
    blocks(text)
        .into_iter()
        .filter(|b| b.info == info)
        .map(|b| b.body)
        .collect()
}

/// What a page's tested blocks did.
pub(crate) struct Ran {
    pub out: String,
    pub err: String,
    /// The folder they ran in (files they wrote are still there).
    pub dir: tempfile::TempDir,
}

/// The `export NAME=value` lines `idtoken emulator` printed, once all are out.
async fn start_emulator(home: &Path, dir: &Path) -> (tokio::process::Child, Vec<(String, String)>) {
    let mut child = idtoken(home)
        .args(["emulator", "--credentials-dir"])
        .arg(dir.join("emulator"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("idtoken emulator starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut exports = Vec::new();
    // The IAM override is the last line it always prints.
    while !exports
        .iter()
        .any(|(k, _): &(String, String)| k == "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS")
    {
        let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
            .await
            .expect("export lines in time")
            .expect("stdout reads")
            .expect("the emulator printed its export lines");
        let (k, v) = line
            .strip_prefix("export ")
            .and_then(|l| l.split_once('='))
            .unwrap_or_else(|| panic!("not an export line: {line}"));
        exports.push((k.to_owned(), v.to_owned()));
    }
    (child, exports)
}

/// Runs `name`'s tested blocks; with `emulator`, next to a running
/// `idtoken emulator` whose export lines are in the environment. Panics
/// with the script's output when it fails.
pub(crate) async fn run_page(name: &str, emulator: bool) -> Ran {
    let text = page(name);
    let python = std::env::var_os("IDTOKEN_INTEROP_PYTHON").map(PathBuf::from);
    let mut script = String::new();
    for block in blocks(&text) {
        match block.info.as_str() {
            "sh test" => script.push_str(&block.body),
            "sh test python" if python.is_some() => script.push_str(&block.body),
            "sh test python" => {
                eprintln!("{name}: a Python block left out (IDTOKEN_INTEROP_PYTHON unset)");
            }
            _ => {}
        }
    }
    assert!(!script.is_empty(), "{name} has no `sh test` block");
    let dir = tempfile::tempdir().expect("work folder");
    let home = dir.path().join("home");
    std::fs::create_dir(&home).expect("home");
    let (_emulator, exports) = if emulator {
        let (child, exports) = start_emulator(&home, dir.path()).await;
        (Some(child), exports)
    } else {
        (None, Vec::new())
    };
    let bin = Path::new(env!("CARGO_BIN_EXE_idtoken"))
        .parent()
        .expect("the binary's folder")
        .to_owned();
    let mut path = vec![bin];
    if let Some(py) = &python {
        path.extend(py.parent().map(Path::to_owned));
    }
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let mut cmd = tokio::process::Command::new("bash");
    cmd.env_clear()
        .env("PATH", std::env::join_paths(path).expect("PATH"))
        .env("HOME", &home)
        .envs(exports)
        .current_dir(dir.path())
        .args(["-euo", "pipefail", "-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // A group of its own, so a timeout ends what the blocks started too.
        .process_group(0)
        .kill_on_drop(true);
    let child = cmd.spawn().expect("bash runs");
    let group = child.id().expect("a running child");
    let Ok(output) = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output()).await
    else {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{group}")])
            .status();
        panic!("{name}'s blocks did not finish in 120 s");
    };
    let output = output.expect("bash's output");
    let ran = Ran {
        out: stdout(&output),
        err: stderr(&output),
        dir,
    };
    assert!(
        output.status.success(),
        "{name}'s tested blocks failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        ran.out,
        ran.err
    );
    ran
}

/// The pages in `docs/recipes/` other than the index.
fn recipe_pages() -> BTreeSet<String> {
    std::fs::read_dir(root().join("docs/recipes"))
        .expect("docs/recipes")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".md") && n != "README.md")
        .collect()
}

/// The pages a test in this file runs, by the literal `run_page("...")`.
fn pages_run_here() -> BTreeSet<String> {
    let me = include_str!("recipes.rs");
    me.split("run_page(\"")
        .skip(1)
        .filter_map(|rest| rest.split_once('"').map(|(name, _)| name.to_owned()))
        .filter(|name| name.ends_with(".md"))
        .collect()
}

#[test]
fn every_recipe_page_is_run_and_listed_in_the_index() {
    let pages = recipe_pages();
    assert!(!pages.is_empty());
    let tested: BTreeSet<String> = pages
        .iter()
        .filter(|name| {
            blocks(&page(name))
                .iter()
                .any(|b| b.info.starts_with("sh test"))
        })
        .cloned()
        .collect();
    assert_eq!(
        tested,
        pages_run_here(),
        "pages with `sh test` blocks vs. run_page calls here"
    );
    let index = page("README.md");
    for name in &pages {
        assert!(
            index.contains(&format!("]({name})")),
            "docs/recipes/README.md links {name}"
        );
        // A page without shell blocks to run shows an example's code,
        // which a library test runs.
        assert!(
            tested.contains(name) || page(name).contains("<!-- include: "),
            "{name} has tested blocks or an included example"
        );
    }
    let readme = std::fs::read_to_string(root().join("README.md")).expect("README.md");
    assert!(
        readme.contains("docs/recipes/"),
        "README.md links the recipes"
    );
}

#[test]
fn included_code_blocks_are_their_files_byte_for_byte() {
    let update = std::env::var_os("IDTOKEN_UPDATE_RECIPES").is_some();
    let mut seen = 0;
    for name in recipe_pages() {
        let mut text = page(&name);
        for block in blocks(&text) {
            let Some(file) = block
                .before
                .trim()
                .strip_prefix("<!-- include: ")
                .and_then(|r| r.strip_suffix(" -->"))
            else {
                continue;
            };
            seen += 1;
            let path = root().join(file);
            let source =
                std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{name}: {file}: {e}"));
            if block.body == source {
                continue;
            }
            assert!(
                update,
                "{name}: the block after `include: {file}` differs from the file; \
                 IDTOKEN_UPDATE_RECIPES=1 rewrites it"
            );
            let fence = format!("```{}\n", block.info);
            let old = format!("{}\n{fence}{}```", block.before, block.body);
            let new = format!("{}\n{fence}{source}```", block.before);
            assert!(text.contains(&old), "{name}: block found again");
            text = text.replacen(&old, &new, 1);
            std::fs::write(root().join("docs/recipes").join(&name), &text).expect("write page");
        }
    }
    assert!(seen > 0, "some page includes a file");
}

/// The first JSON value in `text` (what `idtoken verify` prints first).
fn first_json(text: &str) -> Value {
    let start = text
        .find('{')
        .unwrap_or_else(|| panic!("no JSON in:\n{text}"));
    serde_json::Deserializer::from_str(&text[start..])
        .into_iter::<Value>()
        .next()
        .and_then(Result::ok)
        .unwrap_or_else(|| panic!("no JSON in:\n{text}"))
}

/// `v` with every leaf replaced by `null`: the keys, nested.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        _ => Value::Null,
    }
}

#[tokio::test]
async fn github_actions_job_mints_through_the_file_the_auth_action_writes() {
    let ran = run_page("github-actions.md", true).await;
    let claims = first_json(&ran.out);
    assert_eq!(claims["aud"], "https://my-service.example");
    // The target service account's id (the same in every emulator).
    let emu = idtoken_emulator::Emulator::start().await.expect("emulator");
    assert_eq!(claims["sub"], emu.target_service_account_id());
    assert_eq!(claims["iss"], "https://accounts.google.com");
    // The foreign request token: GitHub's 401, named, and the header not shown.
    assert!(ran.out.contains("401"), "{}", ran.out);
    assert!(!ran.out.contains("another-jobs-token"), "{}", ran.out);

    // The file the tested blocks wrote has the shape the page shows.
    let written: Value = serde_json::from_str(
        &std::fs::read_to_string(ran.dir.path().join("gha-creds-emulator.json")).expect("file"),
    )
    .expect("JSON");
    let shown = blocks_marked(&page("github-actions.md"), "json");
    assert_eq!(shown.len(), 1, "one credentials file on the page");
    let shown: Value = serde_json::from_str(&shown[0]).expect("the page's JSON");
    assert_eq!(shape(&written), shape(&shown));
    let emulators: Value =
        serde_json::from_str(&emu.github_actions_credentials_json()).expect("JSON");
    assert_eq!(
        shape(&emulators),
        shape(&shown),
        "Emulator::github_actions_credentials_json"
    );
    for fixed in ["/type", "/subject_token_type", "/credential_source/format"] {
        assert_eq!(written.pointer(fixed), shown.pointer(fixed), "{fixed}");
    }
    let url = |v: &Value| {
        v.pointer("/credential_source/url")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    let (written_url, shown_url) = (url(&written).expect("url"), url(&shown).expect("url"));
    assert!(
        written_url
            .contains("?api-version=2.0&audience=https%3A%2F%2Fiam.googleapis.com%2Fprojects%2F"),
        "{written_url}"
    );
    assert!(
        shown_url
            .contains("?api-version=2.0&audience=https%3A%2F%2Fiam.googleapis.com%2Fprojects%2F"),
        "{shown_url}"
    );
}

#[tokio::test]
async fn gke_pod_mints_from_the_metadata_server_with_no_credentials_file() {
    let ran = run_page("gke-pod.md", true).await;
    let emu = idtoken_emulator::Emulator::start().await.expect("emulator");
    let claims = first_json(&ran.out[ran.out.find('{').expect("claims")..]);
    assert_eq!(claims["aud"], "https://my-service.example");
    assert_eq!(
        claims["sub"],
        emu.service_account_id(),
        "the instance's account"
    );
    let by_curl: Value = serde_json::from_str(
        &std::fs::read_to_string(ran.dir.path().join("curl-claims.json")).expect("claims file"),
    )
    .expect("JSON");
    assert_eq!(by_curl["aud"], "https://my-service.example");
    assert_eq!(by_curl["sub"], claims["sub"]);
    assert!(ran.out.contains("without the header: 403"), "{}", ran.out);
}

#[tokio::test]
async fn laptop_user_mints_for_a_service_only_through_impersonation() {
    let ran = run_page("laptop.md", true).await;
    let emu = idtoken_emulator::Emulator::start().await.expect("emulator");
    // The user's own token: the OAuth client id as aud, and the warning.
    let user = idtoken::IdToken::parse(
        std::fs::read_to_string(ran.dir.path().join("user-token.txt"))
            .expect("user token")
            .trim(),
    )
    .expect("a token");
    assert_eq!(user.claims().to_json()["aud"], emu.user_client_id());
    assert!(
        ran.err.contains("--impersonate-service-account"),
        "{}",
        ran.err
    );
    // Impersonated: the service's audience, the target's email.
    let claims = first_json(&ran.out);
    assert_eq!(claims["aud"], "https://my-service.example");
    assert_eq!(claims["email"], emu.target_service_account_email());
    // No grant: 403 and the role to ask for.
    assert!(ran.out.contains("403"), "{}", ran.out);
    assert!(
        ran.out.contains("roles/iam.serviceAccountTokenCreator"),
        "{}",
        ran.out
    );
    // The impersonated_service_account file: the same account, no flag.
    let from_file: Value = serde_json::from_str(
        &std::fs::read_to_string(ran.dir.path().join("file-claims.json")).expect("claims"),
    )
    .expect("JSON");
    assert_eq!(from_file["aud"], "https://my-service.example");
    assert_eq!(from_file["sub"], emu.target_service_account_id());
}

#[tokio::test]
async fn pubsub_push_tokens_pass_the_receivers_rule_only_for_the_push_account() {
    let ran = run_page("pubsub-push-and-scheduler.md", true).await;
    let claims = first_json(&ran.out);
    assert_eq!(claims["aud"], "https://receiver.example");
    assert_eq!(
        claims["email"],
        "target@idtoken-emulator.iam.gserviceaccount.com"
    );
    assert_eq!(claims["email_verified"], true);
    let refused = std::fs::read_to_string(ran.dir.path().join("refused.txt")).expect("refusal");
    assert!(
        refused
            .contains("email \"emulator@idtoken-emulator.iam.gserviceaccount.com\" is not allowed"),
        "{refused}"
    );
}

#[tokio::test]
async fn another_projects_ci_starts_the_emulator_mints_and_stops_it_cleanly() {
    let ran = run_page("emulator-in-ci.md", false).await;
    let emu = idtoken_emulator::Emulator::start().await.expect("emulator");
    let claims = first_json(&ran.out);
    assert_eq!(claims["aud"], "https://my-service.example");
    assert_eq!(claims["email"], emu.service_account_email());
    assert!(ran.out.contains("emulator stopped: 0"), "{}", ran.out);
    if std::env::var_os("IDTOKEN_INTEROP_PYTHON").is_some() {
        let python: Value = serde_json::from_str(
            &std::fs::read_to_string(ran.dir.path().join("python-claims.json")).expect("claims"),
        )
        .expect("JSON");
        assert_eq!(python["aud"], "https://my-service.example");
        assert_eq!(python["email"], emu.service_account_email());
    }
}
