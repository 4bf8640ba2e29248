//! Errors: one enum for everything that can go wrong while finding
//! credentials or minting a token, with the file, field, endpoint and next
//! step in every message. Nothing secret is ever part of an error.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What went wrong while finding credentials or minting an ID token.
///
/// Every message names where the problem is (a file and field, or an
/// endpoint) and what to do next. Errors are `Clone` so that one failed fetch
/// can be reported to every caller that waited for it, and compare by value
/// (every cause is plain data).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A credentials file (or JSON document) could not be used.
    #[error("credentials {origin}: {problem}")]
    Credentials {
        /// Where the JSON came from, e.g. `file /path/key.json (GOOGLE_APPLICATION_CREDENTIALS)`.
        origin: String,
        /// What is wrong with it.
        problem: CredentialsProblem,
    },
    /// Application Default Credentials found nothing usable.
    #[error("no Google credentials found; tried:\n{}\nnext: run `gcloud auth application-default login`, set GOOGLE_APPLICATION_CREDENTIALS to a key file, or run on Google Cloud", format_tried(.tried))]
    NoCredentials {
        /// Each place that was looked at, and what was found there.
        tried: Vec<String>,
    },
    /// An HTTP call to a Google endpoint (or the emulator) failed.
    #[error("{step} at {url}: {problem}")]
    Endpoint {
        /// Which step of the flow made the call, e.g. `metadata server identity`.
        step: &'static str,
        /// The URL called (tokens are never part of a URL).
        url: String,
        /// What went wrong.
        problem: EndpointProblem,
    },
    /// A token arrived already expired (or about to): the clocks disagree.
    #[error(
        "the new token expires at {exp} (seconds since the epoch) but this machine's clock says {now}; check the system clock"
    )]
    StaleToken {
        /// The token's `exp`.
        exp: u64,
        /// This machine's time.
        now: u64,
    },
    /// An environment variable that steers discovery has a value it cannot
    /// take.
    #[error("environment variable {variable}={value:?} is not one of {expected}; {next}")]
    InvalidEnvironment {
        /// The variable, e.g. `METADATA_SERVER_DETECTION`.
        variable: &'static str,
        /// Its value.
        value: String,
        /// The values it can take.
        expected: &'static str,
        /// What to do.
        next: &'static str,
    },
    /// The caller asked for something that cannot work.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
}

impl Error {
    /// True when trying again later may succeed: connection failures,
    /// timeouts, and HTTP 5xx, 408 and 429 answers.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::Endpoint { problem, .. } => problem.is_transient(),
            _ => false,
        }
    }

    pub(crate) fn credentials(origin: impl Into<String>, problem: CredentialsProblem) -> Self {
        Error::Credentials {
            origin: origin.into(),
            problem,
        }
    }

    pub(crate) fn endpoint(step: &'static str, url: &str, problem: EndpointProblem) -> Self {
        Error::Endpoint {
            step,
            url: strip_query(url).into_owned(),
            problem,
        }
    }
}

/// Why a credentials file or JSON document could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialsProblem {
    /// The file does not exist.
    NotFound,
    /// The file exists but could not be read.
    Unreadable(String),
    /// The content is not valid JSON.
    InvalidJson {
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser's message (it never quotes the content).
        message: String,
    },
    /// A required field is missing or empty.
    MissingField(&'static str),
    /// A field is present but its value cannot be used.
    InvalidField {
        /// The field's name.
        field: &'static str,
        /// Why it cannot be used.
        reason: String,
    },
    /// The `type` field names a credential type this crate does not know.
    UnknownType(String),
    /// The `type` is known but not supported yet.
    UnsupportedType(String),
    /// An external account's subject token could not be had.
    SubjectToken(String),
    /// The program's [`SubjectTokenSupplier`](crate::external_account::SubjectTokenSupplier)
    /// failed; its message.
    SubjectTokenSupplier(String),
    /// An `external_account` without `service_account_impersonation_url`:
    /// federated principals cannot hold ID tokens.
    FederatedPrincipalCannotMintIdTokens,
    /// An `external_account_authorized_user` (a workforce identity
    /// federation user) without impersonation: such users cannot hold ID
    /// tokens.
    WorkforceUserCannotMintIdTokens,
    /// An X.509 certificate source's certificate, key, configuration or
    /// trust chain cannot be used; the text names the file and the field.
    ClientCertificate(String),
    /// The credentials cannot be impersonated from (e.g. already only an
    /// ID-token source).
    CannotImpersonate(&'static str),
}

impl fmt::Display for CredentialsProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotFound => write!(
                f,
                "file not found; check the path, or unset GOOGLE_APPLICATION_CREDENTIALS to fall back to gcloud or the metadata server"
            ),
            Self::Unreadable(why) => write!(f, "cannot read the file: {why}"),
            Self::InvalidJson {
                line,
                column,
                message,
            } => write!(
                f,
                "not valid JSON at line {line}, column {column}: {message}; download the key file again"
            ),
            Self::MissingField(field) => write!(
                f,
                "field `{field}` is missing or empty; the file is incomplete, download or regenerate it"
            ),
            Self::InvalidField { field, reason } => write!(
                f,
                "field `{field}` is invalid: {reason}; download or regenerate the file"
            ),
            Self::UnknownType(ty) => write!(
                f,
                "unknown credential `type` {ty:?}; expected one of service_account, authorized_user, impersonated_service_account, external_account, external_account_authorized_user"
            ),
            Self::UnsupportedType(ty) => write!(
                f,
                "credential type {ty:?} is not supported yet by this version of idtoken; use a service account key file, gcloud credentials or the metadata server"
            ),
            Self::SubjectToken(why) => write!(
                f,
                "cannot get the subject token: {why}; check `credential_source` in the external account file"
            ),
            Self::SubjectTokenSupplier(why) => {
                write!(f, "the subject token supplier failed: {why}")
            }
            Self::FederatedPrincipalCannotMintIdTokens => write!(
                f,
                "a federated principal (workload identity pool) cannot hold ID tokens; add `service_account_impersonation_url` (https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken) to the file, e.g. with `gcloud iam workload-identity-pools create-cred-config --service-account=EMAIL`, or impersonate a service account explicitly, and grant the pool roles/iam.serviceAccountTokenCreator on it"
            ),
            Self::WorkforceUserCannotMintIdTokens => write!(
                f,
                "a workforce identity federation user (external_account_authorized_user) cannot hold ID tokens; impersonate a service account: add `--impersonate-service-account=EMAIL` (idtoken token, curl, proxy) or call `Credentials::impersonate`, and grant the user roles/iam.serviceAccountTokenCreator on that account"
            ),
            Self::ClientCertificate(why) => write!(
                f,
                "{why}; check `credential_source.certificate` and the certificate configuration (`gcloud iam workload-identity-pools create-cred-config --credential-cert-path=... --credential-cert-private-key-path=...` writes both)"
            ),
            Self::CannotImpersonate(why) => {
                write!(f, "cannot impersonate from these credentials: {why}")
            }
        }
    }
}

/// Why a call to an endpoint failed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EndpointProblem {
    /// No connection could be made.
    Connect(String),
    /// No complete answer within the timeout.
    Timeout(Duration),
    /// The endpoint answered with an error status.
    Status {
        /// HTTP status code.
        status: u16,
        /// OAuth2 `error` code, when the body had one.
        error: Option<String>,
        /// OAuth2 `error_description` (or Google's `error.message`), when present.
        description: Option<String>,
        /// What the caller can do about it.
        hint: &'static str,
    },
    /// The endpoint answered 200 but the answer cannot be used.
    InvalidResponse(String),
}

impl EndpointProblem {
    fn is_transient(&self) -> bool {
        match self {
            Self::Connect(_) | Self::Timeout(_) => true,
            Self::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            Self::InvalidResponse(_) => false,
        }
    }
}

impl fmt::Display for EndpointProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connect(why) => write!(f, "cannot connect: {why}"),
            Self::Timeout(d) => write!(f, "no answer within {:.1} s", d.as_secs_f64()),
            Self::Status {
                status,
                error,
                description,
                hint,
            } => {
                write!(f, "HTTP {status}")?;
                if let Some(e) = error {
                    write!(f, " {e}")?;
                }
                if let Some(d) = description {
                    write!(f, ": {d}")?;
                }
                if !hint.is_empty() {
                    write!(f, "; {hint}")?;
                }
                Ok(())
            }
            Self::InvalidResponse(why) => write!(f, "unusable answer: {why}"),
        }
    }
}

fn format_tried(tried: &[String]) -> String {
    tried
        .iter()
        .map(|t| format!("  - {t}"))
        .collect::<Vec<_>>()
        .join("\n")
}

pub(crate) fn strip_query(url: &str) -> std::borrow::Cow<'_, str> {
    // Audiences are not secret, but keep URLs in messages and logs short
    // and stable: a query (where some identity providers take a token)
    // and a `user:password@` never reach a message or a log.
    let base = url.split_once('?').map_or(url, |(base, _)| base);
    let (scheme, rest) = base.split_once("://").unwrap_or(("", base));
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest.get(..authority_end).and_then(|a| a.rfind('@')) {
        Some(at) => format!(
            "{scheme}://{}",
            rest.get(at.saturating_add(1)..).unwrap_or_default()
        )
        .into(),
        None => base.into(),
    }
}

/// Shorthand for results in this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a credentials document came from, for messages.
pub(crate) fn file_origin(path: &std::path::Path, via: &str) -> String {
    format!("file {} ({via})", path.display())
}

/// Turns an I/O error on a credentials file into an [`Error`].
pub(crate) fn file_error(path: PathBuf, via: &str, err: &std::io::Error) -> Error {
    let problem = if err.kind() == std::io::ErrorKind::NotFound {
        CredentialsProblem::NotFound
    } else {
        CredentialsProblem::Unreadable(err.to_string())
    };
    Error::credentials(file_origin(&path, via), problem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_error_shows_neither_the_urls_credentials_nor_its_query() {
        let e = Error::endpoint(
            "subject token URL",
            "https://user:pa55word@idp.example/token?access_token=s3cret",
            EndpointProblem::Connect("refused".into()),
        );
        let shown = e.to_string();
        assert!(shown.contains("https://idp.example/token"), "{shown}");
        assert!(
            !shown.contains("pa55word") && !shown.contains("user"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret"), "{shown}");
    }
}
