//! `credential_source.executable`: the subject token from a program the
//! file names (Google's "pluggable auth"), the way Google's Go, Python and
//! Node libraries run it (docs/PROTOCOL.md, "Executable-sourced
//! credentials"):
//!
//! - it runs only when `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1` is in
//!   this process's environment, checked before anything else;
//! - `command` is split on whitespace, no shell; a double quote is refused,
//!   since Google's libraries disagree about it;
//! - `timeout_millis`, 5 s to 120 s (30 s when absent); past it the child
//!   is killed;
//! - the child gets this process's environment and
//!   `GOOGLE_EXTERNAL_ACCOUNT_{AUDIENCE,TOKEN_TYPE,INTERACTIVE,IMPERSONATED_EMAIL,OUTPUT_FILE}`;
//!   interactive mode is never asked for (`INTERACTIVE=0`);
//! - its stdout is the executable response (JSON, `version` 1), read up to
//!   [`OUTPUT_LIMIT`]; stdin and stderr are not connected: its stderr is
//!   never shown, as it may hold anything;
//! - `output_file`, when named, is a cache the executable writes: read
//!   first, used while unexpired; an expired or failed entry runs the
//!   executable again, a malformed one is an error.
//!
//! Tokens never appear in errors: a response is described, never quoted;
//! only a failure's `code` and `message` are shown, as they are meant for
//! the user.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::io::AsyncReadExt;

use crate::clock::unix_seconds;
use crate::error::{CredentialsProblem, Error, Result};

/// The variable that lets executables run.
pub(crate) const ALLOW_EXECUTABLES: &str = "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES";
/// The most of an executable's stdout (or output file) read: an OIDC token
/// is a few KiB, a SAML response tens.
const OUTPUT_LIMIT: u64 = 1024 * 1024;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_TIMEOUT_MILLIS: u64 = 5_000;
const MAX_TIMEOUT_MILLIS: u64 = 120_000;
/// The only executable-response version there is.
const VERSION: i64 = 1;

const JWT: &str = "urn:ietf:params:oauth:token-type:jwt";
const ID_TOKEN: &str = "urn:ietf:params:oauth:token-type:id_token";
const SAML2: &str = "urn:ietf:params:oauth:token-type:saml2";

/// A parsed `credential_source.executable`. Not `Debug`: its arguments
/// may hold anything.
#[derive(Clone)]
pub(super) struct Executable {
    program: String,
    args: Vec<String>,
    timeout: Duration,
    output_file: Option<PathBuf>,
}

/// What the executable is told about the token wanted.
pub(super) struct Request<'a> {
    pub audience: &'a str,
    pub subject_token_type: &'a str,
    pub impersonated_email: Option<&'a str>,
}

/// Why a response (stdout or the output file) gave no token.
#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    /// Its `expiration_time` has passed.
    Expired,
    /// `success: false`, with the executable's code and message.
    Failed(String),
    /// Not an executable response: why, without quoting it.
    Malformed(String),
}

impl Executable {
    /// Reads `credential_source.executable`.
    pub(super) fn from_json(v: &Value) -> Result<Self, CredentialsProblem> {
        const COMMAND: &str = "credential_source.executable.command";
        const TIMEOUT: &str = "credential_source.executable.timeout_millis";
        const OUTPUT: &str = "credential_source.executable.output_file";
        let invalid = |field, reason: &str| CredentialsProblem::InvalidField {
            field,
            reason: reason.to_owned(),
        };
        let Some(obj) = v.as_object() else {
            return Err(invalid("credential_source.executable", "not an object"));
        };
        let command = match obj.get("command") {
            None | Some(Value::Null) => return Err(CredentialsProblem::MissingField(COMMAND)),
            Some(Value::String(s)) => s,
            Some(_) => return Err(invalid(COMMAND, "not a string")),
        };
        if command.contains('"') {
            return Err(invalid(
                COMMAND,
                "it holds a double quote, which Google's libraries treat differently (Python and Go split on whitespace and keep quotes, Node removes them); name a script whose path has no spaces instead",
            ));
        }
        let mut words = command.split_whitespace().map(str::to_owned);
        let program = words
            .next()
            .ok_or(CredentialsProblem::MissingField(COMMAND))?;
        let timeout = match obj.get("timeout_millis") {
            None | Some(Value::Null) => DEFAULT_TIMEOUT,
            Some(t) => match t.as_u64() {
                Some(ms) if (MIN_TIMEOUT_MILLIS..=MAX_TIMEOUT_MILLIS).contains(&ms) => {
                    Duration::from_millis(ms)
                }
                _ => {
                    return Err(invalid(
                        TIMEOUT,
                        "must be a whole number of milliseconds from 5000 to 120000 (30000 when absent)",
                    ));
                }
            },
        };
        let output_file = match obj.get("output_file") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(PathBuf::from(s)),
            Some(_) => return Err(invalid(OUTPUT, "not a string")),
        };
        Ok(Self {
            program,
            args: words.collect(),
            timeout,
            output_file,
        })
    }

    /// Whether this process may run executables.
    pub(super) fn allowed() -> bool {
        std::env::var(ALLOW_EXECUTABLES).is_ok_and(|v| v == "1")
    }

    /// The program, its cache, and whether it may run, for people.
    pub(super) fn describe(&self) -> String {
        let cache = match &self.output_file {
            Some(path) => format!(", output_file {}", path.display()),
            None => String::new(),
        };
        let allowed = if Self::allowed() {
            format!("allowed: {ALLOW_EXECUTABLES}=1")
        } else {
            format!("not allowed to run: {ALLOW_EXECUTABLES} is not 1")
        };
        format!(
            "subject token from executable {} (timeout {} ms{cache}; {allowed})",
            self.program,
            self.timeout.as_millis()
        )
    }

    /// The subject token, from the output file while it is fresh, else
    /// from a run of the executable.
    pub(super) async fn subject_token(&self, req: &Request<'_>, now: SystemTime) -> Result<String> {
        self.fetch(req, Self::allowed(), now).await.map_err(|why| {
            Error::credentials(
                format!("executable {} (credential_source.executable)", self.program),
                CredentialsProblem::SubjectToken(why),
            )
        })
    }

    async fn fetch(
        &self,
        req: &Request<'_>,
        allowed: bool,
        now: SystemTime,
    ) -> Result<String, String> {
        if !allowed {
            return Err(format!(
                "executables run only when {ALLOW_EXECUTABLES}=1 is set in the environment, and it is not; set it if you trust the command in this file"
            ));
        }
        let now = unix_seconds(now);
        if let Some(token) = self.cached(now)? {
            return Ok(token);
        }
        let stdout = self.run(req).await?;
        if stdout.iter().all(u8::is_ascii_whitespace) {
            // Python's library then reads the output file the executable wrote.
            return match &self.output_file {
                Some(path) => match read_bounded(path) {
                    Ok(Some(bytes)) => self
                        .parse(&bytes, now)
                        .map_err(|r| self.explain(r, &format!("output_file {}", path.display()))),
                    _ => Err(format!(
                        "it printed nothing on stdout and wrote nothing to output_file {}",
                        path.display()
                    )),
                },
                None => Err("it printed nothing on stdout; it must print the executable response (JSON, version 1)".into()),
            };
        }
        self.parse(&stdout, now)
            .map_err(|r| self.explain(r, "its response"))
    }

    /// A fresh token from the output file: `None` when there is no file,
    /// nothing in it, or an expired or failed entry (run the executable).
    fn cached(&self, now: u64) -> Result<Option<String>, String> {
        let Some(path) = &self.output_file else {
            return Ok(None);
        };
        let bytes = match read_bounded(path) {
            // Read whole, it would be parsed cut short, as if malformed.
            Ok(Some(bytes)) if bytes.len() as u64 > OUTPUT_LIMIT => {
                return Err(format!(
                    "output_file {} is larger than {} KiB, more than any executable response; delete it or check what writes it",
                    path.display(),
                    OUTPUT_LIMIT / 1024
                ));
            }
            Ok(Some(bytes)) if !bytes.iter().all(u8::is_ascii_whitespace) => bytes,
            // Absent, unreadable or empty: not written yet.
            _ => return Ok(None),
        };
        match self.parse(&bytes, now) {
            Ok(token) => Ok(Some(token)),
            Err(Refusal::Expired | Refusal::Failed(_)) => Ok(None),
            Err(r @ Refusal::Malformed(_)) => {
                Err(self.explain(r, &format!("output_file {}", path.display())))
            }
        }
    }

    fn explain(&self, refusal: Refusal, what: &str) -> String {
        match refusal {
            Refusal::Expired => format!(
                "{what} holds a token whose expiration_time has passed; the executable must print a fresh one"
            ),
            Refusal::Failed(why) => format!("the executable reported a failure: {why}"),
            Refusal::Malformed(why) => format!("{what} is not a valid executable response: {why}"),
        }
    }

    /// Runs the command once, bounded by the timeout; its stdout.
    async fn run(&self, req: &Request<'_>) -> Result<Vec<u8>, String> {
        let mut cmd = tokio::process::Command::new(&self.program);
        cmd.args(&self.args)
            .env("GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE", req.audience)
            .env("GOOGLE_EXTERNAL_ACCOUNT_TOKEN_TYPE", req.subject_token_type)
            .env("GOOGLE_EXTERNAL_ACCOUNT_INTERACTIVE", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            // Never shown (it may print anything), so never read.
            .stderr(Stdio::null())
            .kill_on_drop(true);
        match req.impersonated_email {
            Some(email) => cmd.env("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL", email),
            None => cmd.env_remove("GOOGLE_EXTERNAL_ACCOUNT_IMPERSONATED_EMAIL"),
        };
        match &self.output_file {
            Some(path) => cmd.env("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE", path),
            None => cmd.env_remove("GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE"),
        };
        let mut child = cmd.spawn().map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => format!(
                "the command {} was not found (credential_source.executable.command)",
                self.program
            ),
            std::io::ErrorKind::PermissionDenied => format!(
                "the command {} may not be run (is it executable?)",
                self.program
            ),
            _ => format!("cannot start {}: {e}", self.program),
        })?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| "its stdout could not be read".to_owned())?;
        let work = async {
            let mut out = Vec::new();
            (&mut stdout)
                .take(OUTPUT_LIMIT + 1)
                .read_to_end(&mut out)
                .await
                .map_err(|e| format!("reading its stdout failed: {e}"))?;
            if out.len() as u64 > OUTPUT_LIMIT {
                return Err(format!(
                    "it printed more than {} KiB on stdout",
                    OUTPUT_LIMIT / 1024
                ));
            }
            let status = child
                .wait()
                .await
                .map_err(|e| format!("waiting for it failed: {e}"))?;
            Ok((status, out))
        };
        let outcome = tokio::time::timeout(self.timeout, work).await;
        let (status, out) = match outcome {
            Ok(Ok(done)) => done,
            Ok(Err(why)) => {
                let _ = child.start_kill();
                return Err(why);
            }
            Err(_) => {
                // SIGKILL, then reap; the kill may race a natural exit.
                let _ = child.start_kill();
                let _ = child.wait().await;
                return Err(format!(
                    "it did not finish within timeout_millis ({} ms) and was killed",
                    self.timeout.as_millis()
                ));
            }
        };
        if !status.success() {
            // A failure response on stdout says why, in the executable's words.
            let why = match parse(&out, 0, false) {
                Err(Refusal::Failed(why)) => format!("; it reported: {why}"),
                _ => String::new(),
            };
            return Err(format!("it exited with {status}{why}"));
        }
        Ok(out)
    }

    fn parse(&self, bytes: &[u8], now: u64) -> Result<String, Refusal> {
        parse(bytes, now, self.output_file.is_some())
    }
}

/// A file's bytes, up to one more than [`OUTPUT_LIMIT`] (so a larger file
/// shows as one); `None` when it does not exist.
fn read_bounded(path: &std::path::Path) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    file.take(OUTPUT_LIMIT + 1).read_to_end(&mut out)?;
    Ok(Some(out))
}

/// The subject token in an executable response, checked as Google's
/// libraries check it. `expiration_time` is required when the
/// configuration names an output file (the cache needs it).
fn parse(bytes: &[u8], now: u64, needs_expiry: bool) -> Result<String, Refusal> {
    let bad = |why: &str| Refusal::Malformed(why.to_owned());
    let doc: Value = serde_json::from_slice(bytes).map_err(|_| bad("it is not JSON"))?;
    let Some(doc) = doc.as_object() else {
        return Err(bad("it is not a JSON object"));
    };
    match doc.get("version").map(Value::as_i64) {
        None => return Err(bad("it has no `version` field")),
        Some(Some(VERSION)) => {}
        Some(_) => return Err(bad("its `version` is not 1, the only version there is")),
    }
    let success = match doc.get("success") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad("its `success` field is not true or false")),
        None => return Err(bad("it has no `success` field")),
    };
    let text = |name: &str| {
        doc.get(name)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    if !success {
        return match (text("code"), text("message")) {
            (Some(code), Some(message)) => Err(Refusal::Failed(format!(
                "code {:?}, message {:?}",
                shorten(code),
                shorten(message)
            ))),
            _ => Err(bad(
                "it says `success: false` without both `code` and `message`",
            )),
        };
    }
    let Some(token_type) = text("token_type") else {
        return Err(bad("it has no `token_type` field"));
    };
    match doc.get("expiration_time") {
        None | Some(Value::Null) if needs_expiry => {
            return Err(bad(
                "it has no `expiration_time`, which is required when output_file is set",
            ));
        }
        None | Some(Value::Null) => {}
        Some(t) => match t.as_i64() {
            // Signed: a time before 1970 is simply expired.
            Some(exp) if u64::try_from(exp).is_ok_and(|exp| exp > now) => {}
            Some(_) => return Err(Refusal::Expired),
            None => {
                return Err(bad(
                    "its `expiration_time` is not whole seconds since the epoch",
                ));
            }
        },
    }
    let field = match token_type {
        JWT | ID_TOKEN => "id_token",
        SAML2 => "saml_response",
        _ => {
            return Err(bad(
                "its `token_type` is not one of urn:ietf:params:oauth:token-type:jwt, urn:ietf:params:oauth:token-type:id_token, urn:ietf:params:oauth:token-type:saml2",
            ));
        }
    };
    match text(field) {
        Some(token) => Ok(token.to_owned()),
        None => Err(Refusal::Malformed(format!(
            "it has no `{field}` for its token_type"
        ))),
    }
}

/// A failure's code or message as shown: at most 300 characters.
fn shorten(s: &str) -> String {
    const MAX: usize = 300;
    match s.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests;
