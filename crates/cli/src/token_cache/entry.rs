//! An entry's layout: one JSON object with the token and the facts
//! `idtoken doctor` shows; and [`Refusal`], why a folder or an entry is
//! not used.

use std::time::SystemTime;

use idtoken::IdToken;
use serde_json::{Value, json};

/// The largest entry read: a token is a few kilobytes.
pub(crate) const MAX_ENTRY: u64 = 64 * 1024;

/// Why a folder or an entry is not used. Never holds file contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Symlink,
    NotRegular,
    NotFolder,
    Foreign { uid: u32 },
    Exposed { mode: u32 },
    TooBig,
    Unparsable(&'static str),
    OtherRequest,
    Io(std::io::ErrorKind),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Missing => f.write_str("does not exist"),
            Refusal::Symlink => f.write_str("is a symbolic link"),
            Refusal::NotRegular => f.write_str("is not a regular file"),
            Refusal::NotFolder => f.write_str("is not a folder"),
            Refusal::Foreign { uid } => write!(f, "belongs to uid {uid}, not to this user"),
            Refusal::Exposed { mode } => {
                write!(f, "mode {mode:04o} lets other users in (want 0700/0600)")
            }
            Refusal::TooBig => write!(f, "is larger than {MAX_ENTRY} bytes"),
            Refusal::Unparsable(why) => write!(f, "cannot be read as an entry: {why}"),
            Refusal::OtherRequest => f.write_str("was written for another request"),
            Refusal::Io(kind) => write!(f, "cannot be read: {kind}"),
        }
    }
}

/// What an entry holds: the token and the facts shown by `doctor`.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) token: IdToken,
    pub(crate) facts: Facts,
}

/// The non-secret facts about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Facts {
    pub(crate) audience: String,
    /// The credentials' kind, as the library names it.
    pub(crate) kind: String,
    /// Where the credentials came from (`Credentials::origin`).
    pub(crate) origin: String,
    pub(crate) impersonate: Option<String>,
    pub(crate) format: String,
    /// The token's `aud` is an OAuth client id (gcloud user credentials).
    pub(crate) audience_is_client_id: bool,
}

/// The entry's bytes: a JSON object.
pub(crate) fn encode(token: &IdToken, facts: &Facts) -> Vec<u8> {
    let expires = token
        .expires_at()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let v = json!({
        "version": super::key::VERSION,
        "audience": facts.audience,
        "kind": facts.kind,
        "origin": facts.origin,
        "impersonate": facts.impersonate,
        "format": facts.format,
        "audience_is_client_id": facts.audience_is_client_id,
        "expires_at": expires,
        "token": token.as_str(),
    });
    v.to_string().into_bytes()
}

/// Reads an entry back; the expiry comes from the token itself, not
/// from the file's copy of it.
pub(crate) fn decode(bytes: &[u8]) -> Result<Entry, Refusal> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| Refusal::Unparsable("not JSON"))?;
    if v.get("version").and_then(Value::as_u64) != Some(super::key::VERSION) {
        return Err(Refusal::Unparsable("another version"));
    }
    let text = |name: &'static str| {
        v.get(name)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or(Refusal::Unparsable(name))
    };
    let token = IdToken::parse(&text("token")?).map_err(|_| Refusal::Unparsable("token"))?;
    let facts = Facts {
        audience: text("audience")?,
        kind: text("kind")?,
        origin: text("origin")?,
        impersonate: v
            .get("impersonate")
            .and_then(Value::as_str)
            .map(str::to_owned),
        format: text("format")?,
        audience_is_client_id: v
            .get("audience_is_client_id")
            .and_then(Value::as_bool)
            .unwrap_or(false),
    };
    Ok(Entry { token, facts })
}
