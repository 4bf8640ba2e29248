//! Unit tests: every input moves the key; crafted files are refused
//! without a panic; the folder and files are private.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use idtoken::{Format, IdToken, Impersonate, TokenOptions};

use super::entry::{Facts, decode, encode};
use super::key::{Request, Source, is_key, key};
use super::{Cache, Refusal, fs};

fn file_source(path: &str, bytes: &[u8]) -> Source {
    Source::File {
        shown: PathBuf::from(path),
        absolute: PathBuf::from(path),
        bytes: bytes.to_vec(),
        origin: format!("file {path}"),
    }
}

fn request<'a>(
    audience: &'a str,
    options: &'a TokenOptions,
    impersonate: Option<&'a Impersonate>,
) -> Request<'a> {
    Request {
        audience,
        options,
        impersonate,
        iam_endpoint: idtoken::DEFAULT_IAM_ENDPOINT,
    }
}

#[test]
fn every_input_changes_the_key() {
    let plain = TokenOptions::default();
    let full = TokenOptions::default().format(Format::Full);
    let licenses = TokenOptions::default().format(Format::Full).licenses(true);
    let email = TokenOptions::default().include_email(true);
    let target = Impersonate::new("t@x");
    let chain = Impersonate::new("t@x").delegates(["d@x"]);
    let other_chain = Impersonate::new("t@x").delegates(["e@x"]);
    let two = Impersonate::new("t@x").delegates(["d@x", "e@x"]);
    let swapped = Impersonate::new("t@x").delegates(["e@x", "d@x"]);
    let key_a = file_source("/k.json", b"{\"a\":1}");
    let base = request("https://a.example", &plain, None);
    let keys = [
        key(&key_a, &base),
        key(&file_source("/k.json", b"{\"a\":2}"), &base),
        key(&file_source("/other.json", b"{\"a\":1}"), &base),
        key(
            &Source::Metadata {
                host: "127.0.0.1:1".into(),
            },
            &base,
        ),
        key(
            &Source::Metadata {
                host: "127.0.0.1:2".into(),
            },
            &base,
        ),
        key(&key_a, &request("https://b.example", &plain, None)),
        key(&key_a, &request("https://a.example", &full, None)),
        key(&key_a, &request("https://a.example", &licenses, None)),
        key(&key_a, &request("https://a.example", &email, None)),
        key(&key_a, &request("https://a.example", &plain, Some(&target))),
        key(&key_a, &request("https://a.example", &plain, Some(&chain))),
        key(
            &key_a,
            &request("https://a.example", &plain, Some(&other_chain)),
        ),
        key(&key_a, &request("https://a.example", &plain, Some(&two))),
        key(
            &key_a,
            &request("https://a.example", &plain, Some(&swapped)),
        ),
        key(
            &key_a,
            &Request {
                iam_endpoint: "http://127.0.0.1:9",
                ..request("https://a.example", &plain, Some(&target))
            },
        ),
    ];
    for (i, a) in keys.iter().enumerate() {
        assert!(is_key(a), "{a}");
        for b in &keys[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // And the same inputs give the same key.
    assert_eq!(keys[0], key(&key_a, &base));
}

#[test]
fn fields_do_not_run_together() {
    let plain = TokenOptions::default();
    let a = key(
        &Source::Metadata { host: "ab".into() },
        &request("c", &plain, None),
    );
    let b = key(
        &Source::Metadata { host: "a".into() },
        &request("bc", &plain, None),
    );
    assert_ne!(a, b);
}

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

fn token(exp: u64, iat: u64) -> IdToken {
    let raw = format!(
        "{}.{}.{}",
        b64(r#"{"alg":"RS256"}"#),
        b64(&format!(
            r#"{{"aud":"https://a.example","exp":{exp},"iat":{iat}}}"#
        )),
        b64("sig")
    );
    IdToken::parse(&raw).expect("token")
}

fn facts() -> Facts {
    Facts {
        audience: "https://a.example".into(),
        kind: "service account key".into(),
        origin: "file /k.json (given explicitly)".into(),
        impersonate: None,
        format: "standard".into(),
        audience_is_client_id: false,
    }
}

#[test]
fn entries_round_trip_and_odd_ones_are_refused_without_panic() {
    let t = token(2_000_000_000, 1_999_996_400);
    let entry = decode(&encode(&t, &facts())).expect("round trip");
    assert_eq!(entry.token.as_str(), t.as_str());
    assert_eq!(entry.facts, facts());

    let odd: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"garbage".to_vec(),
        vec![0xff; 100],
        b"{}".to_vec(),
        b"[]".to_vec(),
        b"null".to_vec(),
        br#"{"version":1}"#.to_vec(),
        br#"{"version":2,"token":"x"}"#.to_vec(),
        br#"{"version":-1}"#.to_vec(),
        br#"{"version":1e400}"#.to_vec(),
        br#"{"version":1,"audience":"a","kind":"k","origin":"o","format":"f","token":"not.a.jwt"}"#
            .to_vec(),
        format!(r#"{{"version":1,"token":"{}"}}"#, "a".repeat(100_000)).into_bytes(),
        // A token whose exp is far past any time.
        format!(
            r#"{{"version":1,"audience":"a","kind":"k","origin":"o","format":"f","token":"{}.{}.c2ln"}}"#,
            b64(r#"{"alg":"RS256"}"#),
            b64(r#"{"exp":1e300}"#)
        )
        .into_bytes(),
        "[".repeat(10_000).into_bytes(),
    ];
    for bytes in odd {
        // Refused or accepted, never a panic; none of these is whole.
        let _ = decode(&bytes);
    }
    assert!(matches!(decode(b"garbage"), Err(Refusal::Unparsable(_))));
}

#[test]
fn margin_is_the_librarys_refresh_ahead() {
    let margin = |t: &IdToken| {
        t.expires_at()
            .duration_since(super::stale_at(t))
            .expect("before expiry")
    };
    let hour = token(2_000_003_600, 2_000_000_000);
    assert_eq!(margin(&hour), Duration::from_secs(225));
    let short = token(2_000_000_100, 2_000_000_000);
    assert_eq!(margin(&short), Duration::from_secs(25));
    // No iat, or exp at the epoch: no panic.
    let _ = super::stale_at(&token(0, 0));
}

fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let pairs: Vec<(String, String)> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |k| {
        pairs
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| OsString::from(v))
    }
}

#[test]
fn location_follows_xdg_then_home_and_can_be_turned_off() {
    let at = |pairs: &[(&str, &str)], flag| Cache::locate_with(flag, &vars(pairs));
    if !cfg!(target_os = "macos") {
        assert_eq!(
            at(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/h")], false),
            Cache::At(PathBuf::from("/x/idtoken"))
        );
        assert_eq!(
            at(&[("XDG_CACHE_HOME", "rel"), ("HOME", "/h")], false),
            Cache::At(PathBuf::from("/h/.cache/idtoken"))
        );
    }
    assert!(matches!(at(&[("HOME", "/h")], true), Cache::Off(_)));
    assert!(matches!(
        at(&[("HOME", "/h"), ("IDTOKEN_NO_CACHE", "1")], false),
        Cache::Off(_)
    ));
    assert!(matches!(
        at(&[("HOME", "/h"), ("IDTOKEN_NO_CACHE", "0")], false),
        Cache::At(_)
    ));
    assert!(matches!(at(&[], false), Cache::Off(_)));
}

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[test]
fn files_are_written_0600_in_a_0700_folder_and_others_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("a/b/idtoken");
    fs::ensure_folder(&dir).expect("folder");
    assert_eq!(mode(&dir), 0o700);
    fs::write_private(&dir, "e", b"hello").expect("write");
    assert_eq!(mode(&dir.join("e")), 0o600);
    assert_eq!(fs::read_private(&dir.join("e")).expect("read"), b"hello");
    // Replaced atomically, no temporary files left.
    fs::write_private(&dir, "e", b"again").expect("write");
    let names: Vec<_> = std::fs::read_dir(&dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, [OsString::from("e")]);

    std::fs::set_permissions(dir.join("e"), std::fs::Permissions::from_mode(0o644)).expect("chmod");
    assert!(matches!(
        fs::read_private(&dir.join("e")),
        Err(Refusal::Exposed { .. })
    ));
    std::os::unix::fs::symlink(dir.join("e"), dir.join("link")).expect("symlink");
    assert_eq!(fs::read_private(&dir.join("link")), Err(Refusal::Symlink));
    std::fs::create_dir(dir.join("sub")).expect("mkdir");
    assert_eq!(fs::read_private(&dir.join("sub")), Err(Refusal::NotRegular));
    let big = dir.join("big");
    std::fs::write(&big, vec![b'x'; 70 * 1024]).expect("big");
    std::fs::set_permissions(&big, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    assert_eq!(fs::read_private(&big), Err(Refusal::TooBig));
    assert_eq!(fs::read_private(&dir.join("none")), Err(Refusal::Missing));

    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    assert!(matches!(
        fs::check_folder(&dir),
        Err(Refusal::Exposed { .. })
    ));
    assert!(fs::ensure_folder(&dir).is_err());
}

#[test]
fn an_entry_with_another_audience_is_not_handed_out() {
    let tmp = tempfile::tempdir().expect("tmp");
    let cache = Cache::At(tmp.path().join("idtoken"));
    let plain = TokenOptions::default();
    let source = file_source("/k.json", b"{}");
    let slot =
        super::Slot::new(&cache, &source, &request("https://a.example", &plain, None)).expect("on");
    let t = token(4_000_000_000, 3_999_996_400);
    let mut other = facts();
    other.audience = "https://b.example".into();
    let dir = tmp.path().join("idtoken");
    fs::ensure_folder(&dir).expect("folder");
    fs::write_private(&dir, &slot.key, &encode(&t, &other)).expect("write");
    assert!(slot.lookup(SystemTime::now()).is_none());
    fs::write_private(&dir, &slot.key, &encode(&t, &facts())).expect("write");
    assert!(slot.lookup(SystemTime::now()).is_some());
    // Past its refresh margin: not handed out.
    let late = SystemTime::UNIX_EPOCH
        .checked_add(Duration::from_secs(3_999_999_800))
        .expect("in range");
    assert!(slot.lookup(late).is_none());
}
