//! The token cache that `idtoken token`, `idtoken curl` and `idtoken proxy`
//! share across processes, as gcloud keeps its credential cache: one file
//! per credentials and request under `$XDG_CACHE_HOME/idtoken` (else
//! `~/.cache/idtoken`; `~/Library/Caches/idtoken` on macOS; off elsewhere).
//!
//! - [`Cache::locate`] finds the folder, or says why there is none
//!   (`--no-cache`, `IDTOKEN_NO_CACHE=1`, no home).
//! - [`Slot`] is one request's entry: the credentials' [`Source`] read
//!   once (a file's bytes, or the metadata host) and the key derived from
//!   it and the request (`key.rs`). [`Slot::lookup`] hands back a token
//!   with more than the refresh margin left; [`Slot::store`] writes one.
//! - `fs.rs` trusts the folder and the files only when they are the
//!   user's alone (0700, 0600, our uid, no symlinks) and writes atomically;
//!   `entry.rs` is the file's layout.
//! - [`list`] reads the entries' facts for `idtoken doctor`.
//!
//! Nothing here fails a command: a folder or entry that cannot be trusted
//! or read is skipped (and replaced on the next store), and a store that
//! fails is dropped; both are logged at debug level (`IDTOKEN_LOG=debug`).
//! No token is ever logged or printed from here.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use idtoken::{Credentials, IdToken};

pub(crate) use entry::{Entry, Facts, Refusal};
pub(crate) use key::{Request, Source, format_name};

mod entry;
#[cfg(unix)]
mod fs;
mod key;
#[cfg(all(test, unix))]
mod tests;

/// Elsewhere the cache is off ([`Cache::locate_with`]); these are never
/// reached.
#[cfg(not(unix))]
mod fs {
    use super::Refusal;
    use std::path::Path;
    const NO: Refusal = Refusal::Io(std::io::ErrorKind::Unsupported);
    pub(crate) fn check_folder(_: &Path) -> Result<(), Refusal> {
        Err(NO)
    }
    pub(crate) fn ensure_folder(_: &Path) -> Result<(), Refusal> {
        Err(NO)
    }
    pub(crate) fn read_private(_: &Path) -> Result<Vec<u8>, Refusal> {
        Err(NO)
    }
    pub(crate) fn write_private(_: &Path, _: &str, _: &[u8]) -> std::io::Result<()> {
        Err(std::io::ErrorKind::Unsupported.into())
    }
}

/// `IDTOKEN_NO_CACHE=1` turns the cache off, as `--no-cache` does.
pub(crate) const NO_CACHE_VAR: &str = "IDTOKEN_NO_CACHE";

/// When a token must no longer be handed out from the cache: where the
/// library's own caches start refreshing it (`IdToken::refresh_at`), so a
/// reused token always has a comfortable time left.
pub(crate) fn stale_at(token: &IdToken) -> SystemTime {
    token.refresh_at()
}

/// Where the cache is, or why it is not used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Cache {
    /// The folder (it may not exist yet).
    At(PathBuf),
    /// Turned off, or nowhere to put it; the reason.
    Off(&'static str),
}

impl Cache {
    /// The folder, from this process's environment, unless `no_cache`.
    pub(crate) fn locate(no_cache: bool) -> Cache {
        let var = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Cache::locate_with(no_cache, &var)
    }

    /// [`Cache::locate`] with the environment as a function.
    pub(crate) fn locate_with(
        no_cache: bool,
        var: &dyn Fn(&str) -> Option<std::ffi::OsString>,
    ) -> Cache {
        if no_cache {
            return Cache::Off("--no-cache");
        }
        if var(NO_CACHE_VAR).is_some_and(|v| v != "0" && v != "false") {
            return Cache::Off("IDTOKEN_NO_CACHE is set");
        }
        if !cfg!(unix) {
            return Cache::Off("not supported on this platform");
        }
        // XDG: a relative XDG_CACHE_HOME is to be ignored.
        if let Some(xdg) = var("XDG_CACHE_HOME").map(PathBuf::from)
            && xdg.is_absolute()
            && !cfg!(target_os = "macos")
        {
            return Cache::At(xdg.join("idtoken"));
        }
        match var("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() => Cache::At(if cfg!(target_os = "macos") {
                home.join("Library/Caches/idtoken")
            } else {
                home.join(".cache/idtoken")
            }),
            _ => Cache::Off("neither XDG_CACHE_HOME nor HOME is set"),
        }
    }

    pub(crate) fn folder(&self) -> Option<&Path> {
        match self {
            Cache::At(dir) => Some(dir),
            Cache::Off(_) => None,
        }
    }

    /// Whether the folder can be trusted (or made): `Ok` or why not.
    pub(crate) fn usable(&self) -> Result<(), String> {
        match self {
            Cache::Off(why) => Err((*why).to_owned()),
            Cache::At(dir) => match fs::check_folder(dir) {
                Ok(()) | Err(Refusal::Missing) => Ok(()),
                Err(r) => Err(format!("{} {r}: not used", dir.display())),
            },
        }
    }
}

/// One request's entry in the cache.
#[derive(Debug, Clone)]
pub(crate) struct Slot {
    dir: PathBuf,
    key: String,
    audience: String,
}

impl Slot {
    /// The entry for `request` with credentials from `source`; `None` when
    /// the cache is off.
    pub(crate) fn new(cache: &Cache, source: &Source, request: &Request<'_>) -> Option<Slot> {
        Some(Slot {
            dir: cache.folder()?.to_owned(),
            key: key::key(source, request),
            audience: request.audience.to_owned(),
        })
    }

    /// A token with more than the refresh margin left, if the entry holds
    /// one and can be trusted.
    pub(crate) fn lookup(&self, now: SystemTime) -> Option<Entry> {
        let found = fs::check_folder(&self.dir)
            .and_then(|()| fs::read_private(&self.dir.join(&self.key)))
            .and_then(|bytes| entry::decode(&bytes))
            .and_then(|entry| {
                if entry.facts.audience == self.audience {
                    Ok(entry)
                } else {
                    Err(Refusal::OtherRequest)
                }
            });
        match found {
            Ok(entry) if now < stale_at(&entry.token) => Some(entry),
            Ok(_) => {
                tracing::debug!(entry = %self.key, "token cache: entry is due for refresh");
                None
            }
            Err(Refusal::Missing) => None,
            Err(why) => {
                tracing::debug!(folder = %self.dir.display(), entry = %self.key, "token cache: not used: {why}");
                None
            }
        }
    }

    /// Stores `token` as minted by `creds`; failures are logged, never
    /// returned.
    pub(crate) fn store(&self, creds: &Credentials, token: &IdToken, format: &str) {
        let facts = Facts {
            audience: self.audience.clone(),
            kind: creds.kind().to_string(),
            origin: creds.origin().to_owned(),
            impersonate: creds.impersonation().map(|i| i.target().to_owned()),
            format: format.to_owned(),
            audience_is_client_id: token.audience_is_client_id(),
        };
        let stored = fs::ensure_folder(&self.dir)
            .map_err(|r| r.to_string())
            .and_then(|()| {
                fs::write_private(&self.dir, &self.key, &entry::encode(token, &facts))
                    .map_err(|e| e.kind().to_string())
            });
        if let Err(why) = stored {
            tracing::debug!(folder = %self.dir.display(), "token cache: not stored: {why}");
        }
    }
}

/// One entry as `idtoken doctor` shows it: its facts and expiry, or why
/// it is not used. Never the token.
#[derive(Debug)]
pub(crate) struct Listed {
    pub(crate) name: String,
    pub(crate) entry: Result<(Facts, SystemTime, bool), Refusal>,
}

/// The entries in the folder, sorted by name; `Err` when the folder
/// cannot be trusted or read.
pub(crate) fn list(dir: &Path, now: SystemTime) -> Result<Vec<Listed>, Refusal> {
    fs::check_folder(dir)?;
    let mut out = Vec::new();
    let read = std::fs::read_dir(dir).map_err(|e| Refusal::Io(e.kind()))?;
    for item in read.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        if !key::is_key(&name) {
            continue;
        }
        let entry = fs::read_private(&item.path())
            .and_then(|b| entry::decode(&b))
            .map(|e| {
                let fresh = now < stale_at(&e.token);
                (e.facts, e.token.expires_at(), fresh)
            });
        out.push(Listed { name, entry });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}
