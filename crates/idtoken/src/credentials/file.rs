//! Reading credentials documents: the `type` field, the base flows it
//! names, the parts of an `impersonated_service_account` file, and JSON
//! errors described by position without quoting content.

use serde::Deserialize;

use crate::error::CredentialsProblem;

use super::authorized_user::AuthorizedUser;
use super::endpoint;
use super::external_account::ExternalAccount;
use super::external_authorized_user::ExternalAuthorizedUser;
use super::service_account::ServiceAccount;
use super::{Flow, Impersonate};

/// The most a small local file (a credentials file, a subject token, a
/// certificate or key) may hold: far more than any real one, and a bound
/// on what a path to a log or a device can make us read.
pub(crate) const MAX_SMALL_FILE: u64 = 1024 * 1024;

/// Reads a small local file whole, refusing one over [`MAX_SMALL_FILE`]
/// (an `InvalidData` error saying so) after reading at most one byte more.
pub(crate) fn read_small(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_SMALL_FILE.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if u64::try_from(bytes.len()).unwrap_or(u64::MAX) > MAX_SMALL_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("it is larger than {MAX_SMALL_FILE} bytes"),
        ));
    }
    Ok(bytes)
}

/// Google's OAuth2 token endpoint, when a file names none.
const DEFAULT_TOKEN_URI: &str = "https://oauth2.googleapis.com/token";

/// A required string field: present and not empty.
pub(super) fn required(
    value: Option<String>,
    field: &'static str,
) -> Result<String, CredentialsProblem> {
    value
        .filter(|s| !s.is_empty())
        .ok_or(CredentialsProblem::MissingField(field))
}

/// The `token_uri` field: Google's endpoint when absent, else a URL that
/// may receive credentials ([`endpoint::check`]).
pub(super) fn token_uri(value: Option<String>) -> Result<String, CredentialsProblem> {
    let uri = value
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| DEFAULT_TOKEN_URI.to_owned());
    endpoint::check("token_uri", &uri)?;
    Ok(uri)
}

/// The `type` field of a credentials document.
pub(super) fn type_of(json: &[u8]) -> Result<String, CredentialsProblem> {
    #[derive(Deserialize)]
    struct TypeOnly {
        #[serde(rename = "type")]
        ty: Option<String>,
    }
    let head: TypeOnly = serde_json::from_slice(json).map_err(|e| json_problem(&e))?;
    head.ty
        .filter(|t| !t.is_empty())
        .ok_or(CredentialsProblem::MissingField("type"))
}

/// A base flow from a credentials document; `field` names where its type
/// was read, for the error when it cannot be a base.
pub(super) fn base_flow(json: &[u8], field: &'static str) -> Result<Flow, CredentialsProblem> {
    match type_of(json)?.as_str() {
        "service_account" => Ok(Flow::ServiceAccount(ServiceAccount::from_json(json)?)),
        "authorized_user" => Ok(Flow::AuthorizedUser(AuthorizedUser::from_json(json)?)),
        "external_account" => Ok(Flow::ExternalAccount(ExternalAccount::from_json(json)?)),
        "external_account_authorized_user" => Ok(Flow::ExternalAuthorizedUser(
            ExternalAuthorizedUser::from_json(json)?,
        )),
        "impersonated_service_account" => Err(CredentialsProblem::InvalidField {
            field,
            reason: "an impersonation cannot be the source of another; list the middle accounts in `delegates`".into(),
        }),
        ty @ "gdch_service_account" => Err(CredentialsProblem::UnsupportedType(ty.to_owned())),
        other => Err(CredentialsProblem::UnknownType(other.to_owned())),
    }
}

/// The source credentials and the impersonation of an
/// `impersonated_service_account` document.
pub(super) fn impersonated_file(json: &[u8]) -> Result<(Vec<u8>, Impersonate), CredentialsProblem> {
    #[derive(Deserialize)]
    struct File {
        service_account_impersonation_url: Option<String>,
        source_credentials: Option<serde_json::Value>,
        #[serde(default)]
        delegates: Vec<String>,
    }
    let f: File = serde_json::from_slice(json).map_err(|e| json_problem(&e))?;
    let url = f
        .service_account_impersonation_url
        .filter(|u| !u.is_empty())
        .ok_or(CredentialsProblem::MissingField(
            "service_account_impersonation_url",
        ))?;
    let source = f
        .source_credentials
        .filter(serde_json::Value::is_object)
        .ok_or(CredentialsProblem::MissingField("source_credentials"))?;
    let how = Impersonate::from_url(&url)?.delegates(f.delegates);
    Ok((source.to_string().into_bytes(), how))
}

/// Describes a JSON error by position, never quoting the content (it may
/// hold a private key).
pub(crate) fn json_problem(e: &serde_json::Error) -> CredentialsProblem {
    let message = match e.classify() {
        serde_json::error::Category::Eof => "unexpected end of input".to_owned(),
        serde_json::error::Category::Syntax => "syntax error".to_owned(),
        serde_json::error::Category::Data => "wrong kind of value".to_owned(),
        serde_json::error::Category::Io => "read error".to_owned(),
    };
    CredentialsProblem::InvalidJson {
        line: e.line(),
        column: e.column(),
        message,
    }
}
