//! `external_account` files (workload identity federation): a subject
//! token from a file or a URL, exchanged at STS for a federated access
//! token (docs/PROTOCOL.md, "Workload identity federation"). That token cannot mint ID tokens itself: the
//! file's `service_account_impersonation_url` (or an impersonation asked
//! for) turns it into one through IAM `generateIdToken`.
//!
//! AWS-sourced files sign an STS `GetCallerIdentity` request instead
//! (`external_account/aws.rs`); executable-sourced files run the program
//! they name (`external_account/executable.rs`); code can supply subject
//! tokens itself (`external_account/supplier.rs`), or AWS keys
//! (`aws/supplier.rs`). An X.509 certificate source
//! (`credential_source.certificate`, feature `x509`) lives in
//! `external_account/certificate.rs`: its subject token is the certificate
//! chain, and STS is called over mutual TLS with it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::Value;

use super::file::required;
use crate::error::{CredentialsProblem, Error, Result};
use crate::http::Http;

use super::Impersonate;
use super::access::{AccessToken, CLOUD_PLATFORM};

pub(crate) mod aws;
#[cfg(feature = "x509")]
mod certificate;
mod executable;
pub(crate) mod supplier;

#[cfg(feature = "x509")]
pub use certificate::ClientCertificate;

const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
const DEFAULT_STS: &str = "https://sts.googleapis.com/v1/token";
/// How long the subject-token URL may take.
const URL_TIMEOUT: Duration = Duration::from_secs(10);

/// A parsed `"type": "external_account"` file. Not `Debug`: URL sources
/// may carry credentials in their headers.
#[derive(Clone)]
pub(crate) struct ExternalAccount {
    audience: String,
    subject_token_type: String,
    token_url: String,
    source: Source,
    /// `service_account_impersonation_url`, when present.
    pub(crate) impersonation_url: Option<String>,
}

/// Where the subject token comes from, and in which format.
#[derive(Clone)]
enum Source {
    File {
        path: PathBuf,
        json_field: Option<String>,
    },
    Url {
        url: String,
        headers: BTreeMap<String, String>,
        json_field: Option<String>,
    },
    /// `environment_id` `aws1`: a signed AWS request.
    Aws(aws::Aws),
    /// `credential_source.executable`: a program's answer.
    Executable(executable::Executable),
    /// A [`supplier::SubjectTokenSupplier`] given to [`supplier::Builder`].
    Supplier(supplier::Supplier),
    /// An X.509 certificate, presented to STS over mutual TLS.
    #[cfg(feature = "x509")]
    Certificate(certificate::Certificate),
}

#[derive(Deserialize)]
struct AccountFile {
    audience: Option<String>,
    subject_token_type: Option<String>,
    token_url: Option<String>,
    service_account_impersonation_url: Option<String>,
    credential_source: Option<CredentialSource>,
}

#[derive(Deserialize)]
struct CredentialSource {
    file: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    format: Option<SourceFormat>,
    executable: Option<Value>,
    environment_id: Option<String>,
    region_url: Option<String>,
    regional_cred_verification_url: Option<String>,
    imdsv2_session_token_url: Option<String>,
    certificate: Option<Value>,
}

#[derive(Deserialize)]
struct SourceFormat {
    #[serde(rename = "type")]
    ty: Option<String>,
    subject_token_field_name: Option<String>,
}

impl ExternalAccount {
    pub(crate) fn from_json(json: &[u8]) -> Result<Self, CredentialsProblem> {
        let f: AccountFile = serde_json::from_slice(json).map_err(|e| super::json_problem(&e))?;
        let mut cs = f
            .credential_source
            .ok_or(CredentialsProblem::MissingField("credential_source"))?;
        // As Google's clients decide: an `environment_id` starting with
        // `aws`, then `executable`, then `certificate`, then a file or URL
        // (another `environment_id` is ignored).
        let aws = cs
            .environment_id
            .as_deref()
            .filter(|e| e.starts_with("aws"))
            .map(str::to_owned);
        let source = match (aws, &cs.executable, cs.certificate.take()) {
            (Some(id), _, _) => Source::Aws(aws::Aws::from_source(&id, &cs)?),
            (None, Some(exe), None) => Source::Executable(executable::Executable::from_json(exe)?),
            (None, None, Some(cert)) => {
                if cs.file.is_some() || cs.url.is_some() {
                    return Err(CredentialsProblem::InvalidField {
                        field: "credential_source",
                        reason: "has `certificate` and `file` or `url`; keep one".into(),
                    });
                }
                certificate_source(cert)?
            }
            (None, Some(_), Some(_)) => {
                return Err(CredentialsProblem::InvalidField {
                    field: "credential_source",
                    reason: "has both `executable` and `certificate`; keep one".into(),
                });
            }
            (None, None, None) => Self::file_or_url(cs)?,
        };
        let token_url = f
            .token_url
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_STS.to_owned());
        super::endpoint::check("token_url", &token_url)?;
        let impersonation_url = f
            .service_account_impersonation_url
            .filter(|s| !s.is_empty());
        if let Some(url) = &impersonation_url {
            super::endpoint::check("service_account_impersonation_url", url)?;
        }
        Ok(Self {
            audience: required(f.audience, "audience")?,
            subject_token_type: required(f.subject_token_type, "subject_token_type")?,
            token_url,
            source,
            impersonation_url,
        })
    }

    /// A file- or URL-sourced `credential_source`.
    fn file_or_url(cs: CredentialSource) -> Result<Source, CredentialsProblem> {
        let json_field = match cs.format {
            Some(SourceFormat {
                ty: Some(ty),
                subject_token_field_name,
            }) if ty == "json" => Some(subject_token_field_name.filter(|n| !n.is_empty()).ok_or(
                CredentialsProblem::MissingField(
                    "credential_source.format.subject_token_field_name",
                ),
            )?),
            _ => None,
        };
        let source = match (
            cs.file.filter(|s| !s.is_empty()),
            cs.url.filter(|s| !s.is_empty()),
        ) {
            (Some(path), None) => Source::File {
                path: PathBuf::from(path),
                json_field,
            },
            (None, Some(url)) => Source::Url {
                url: {
                    super::endpoint::check("credential_source.url", &url)?;
                    url
                },
                headers: cs.headers,
                json_field,
            },
            (Some(_), Some(_)) => {
                return Err(CredentialsProblem::InvalidField {
                    field: "credential_source",
                    reason: "has both `file` and `url`; keep one".into(),
                });
            }
            (None, None) => {
                return Err(CredentialsProblem::InvalidField {
                    field: "credential_source",
                    reason: "has neither `file` nor `url`".into(),
                });
            }
        };
        Ok(source)
    }

    /// Where its secrets go: the STS endpoint, and the subject-token URL.
    pub(crate) fn endpoints(&self) -> Vec<(&'static str, &str)> {
        let mut out = vec![("token_url", self.token_url.as_str())];
        if let Source::Url { url, .. } = &self.source {
            out.push(("credential_source.url", url));
        }
        out
    }

    /// The workload identity pool provider (`audience`), for people.
    pub(crate) fn audience(&self) -> &str {
        &self.audience
    }

    /// Where the subject token comes from, for people (no secrets).
    pub(crate) fn source_description(&self) -> String {
        match &self.source {
            Source::File { path, .. } => format!("subject token file {}", path.display()),
            Source::Url { url, .. } => {
                format!("subject token URL {}", crate::error::strip_query(url))
            }
            Source::Aws(aws) => aws.describe(),
            Source::Executable(exe) => exe.describe(),
            Source::Supplier(_) => "subject token supplier in code".to_owned(),
            #[cfg(feature = "x509")]
            Source::Certificate(_) => "X.509 certificate (mutual TLS)".to_owned(),
        }
    }

    /// The X.509 client certificate's subject and expiry, for a
    /// certificate source.
    #[cfg(feature = "x509")]
    pub(crate) fn client_certificate(&self) -> Option<Result<ClientCertificate>> {
        match &self.source {
            Source::Certificate(c) => Some(c.describe()),
            _ => None,
        }
    }

    /// Reads the subject token, then exchanges it at STS (over mutual TLS
    /// with a certificate source).
    pub(crate) async fn fetch_access_token(&self, now: SystemTime) -> Result<AccessToken> {
        let step = "external account: STS token exchange";
        let url = self.token_url.as_str();
        #[cfg(feature = "x509")]
        if let Source::Certificate(cert) = &self.source {
            let loaded = cert.load(now)?;
            let client = Http::client_with_identity(loaded.identity)?;
            let subject = loaded.subject_token;
            let answer = Http::PUBLIC
                .send_via(&client, step, url, |c| self.exchange(c, &subject), sts_hint)
                .await?;
            return AccessToken::from_answer(&answer, step, url, now);
        }
        let subject = self.subject_token(now).await?;
        let answer = Http::PUBLIC
            .send(
                step,
                url,
                |c| self.exchange(c, &subject),
                match self.source {
                    Source::Aws(_) => aws::sts_hint,
                    _ => sts_hint,
                },
            )
            .await?;
        AccessToken::from_answer(&answer, step, url, now)
    }

    fn exchange(&self, c: &reqwest::Client, subject: &str) -> reqwest::RequestBuilder {
        c.post(&self.token_url).form(&[
            ("grant_type", TOKEN_EXCHANGE),
            ("audience", self.audience.as_str()),
            ("scope", CLOUD_PLATFORM),
            ("requested_token_type", ACCESS_TOKEN_TYPE),
            ("subject_token", subject),
            ("subject_token_type", self.subject_token_type.as_str()),
        ])
    }

    async fn subject_token(&self, now: SystemTime) -> Result<String> {
        match &self.source {
            // Exchanged over mTLS in `fetch_access_token`; read alike here.
            #[cfg(feature = "x509")]
            Source::Certificate(cert) => cert.load(now).map(|loaded| loaded.subject_token),
            Source::File { path, json_field } => {
                let origin = format!(
                    "subject token file {} (credential_source.file)",
                    path.display()
                );
                let bad = |why: String| {
                    Error::credentials(&origin, CredentialsProblem::SubjectToken(why))
                };
                let bytes = super::file::read_small(path).map_err(|e| {
                    bad(match e.kind() {
                        std::io::ErrorKind::NotFound => "the file does not exist".into(),
                        std::io::ErrorKind::InvalidData => e.to_string(),
                        _ => format!("cannot read it: {e}"),
                    })
                })?;
                extract(&bytes, json_field.as_deref()).map_err(bad)
            }
            Source::Url {
                url,
                headers,
                json_field,
            } => {
                let step = "external account: subject token URL";
                let answer = Http::PUBLIC
                    .with_timeout(URL_TIMEOUT)
                    .send(
                        step,
                        url,
                        |c| {
                            let mut req = c.get(url);
                            for (k, v) in headers {
                                req = req.header(k, v);
                            }
                            req
                        },
                        url_hint,
                    )
                    .await?;
                extract(&answer.body, json_field.as_deref()).map_err(|why| {
                    Error::credentials(
                        format!(
                            "subject token from {} (credential_source.url)",
                            crate::error::strip_query(url)
                        ),
                        CredentialsProblem::SubjectToken(why),
                    )
                })
            }
            Source::Aws(aws) => aws.subject_token(&self.audience, now).await,
            Source::Executable(exe) => {
                let email = self
                    .impersonation_url
                    .as_deref()
                    .and_then(|url| Impersonate::from_url(url).ok());
                let req = executable::Request {
                    audience: &self.audience,
                    subject_token_type: &self.subject_token_type,
                    impersonated_email: email.as_ref().map(Impersonate::target),
                };
                exe.subject_token(&req, now).await
            }
            Source::Supplier(supplier) => {
                supplier
                    .subject_token(&self.audience, &self.subject_token_type)
                    .await
            }
        }
    }
}

/// A `credential_source.certificate` object.
fn certificate_source(value: Value) -> Result<Source, CredentialsProblem> {
    #[cfg(feature = "x509")]
    {
        let parsed: certificate::CertificateSource =
            serde_json::from_value(value).map_err(|_| CredentialsProblem::InvalidField {
                field: "credential_source.certificate",
                reason: "is not an object of `certificate_config_location`, `use_default_certificate_config` and `trust_chain_path`".into(),
            })?;
        Ok(Source::Certificate(certificate::Certificate::from_source(
            parsed,
        )?))
    }
    #[cfg(not(feature = "x509"))]
    {
        drop(value);
        Err(CredentialsProblem::InvalidField {
            field: "credential_source.certificate",
            reason: "X.509 certificate sources need idtoken's `x509` feature, which this build lacks (the idtoken CLI has it)".into(),
        })
    }
}

/// The token in a text or JSON subject-token document. Never quotes it.
fn extract(bytes: &[u8], json_field: Option<&str>) -> Result<String, String> {
    let token = match json_field {
        None => std::str::from_utf8(bytes)
            .map_err(|_| "it is not text".to_owned())?
            .trim()
            .to_owned(),
        Some(field) => {
            let doc: Value = serde_json::from_slice(bytes).map_err(|_| {
                "it is not JSON, but credential_source.format.type is \"json\"".to_owned()
            })?;
            doc.get(field)
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!("the JSON has no string field {field:?} (subject_token_field_name)")
                })?
        }
    };
    if token.is_empty() {
        return Err(
            "it is empty; the identity provider (CI system or cloud) has not written a token yet"
                .into(),
        );
    }
    Ok(token)
}

fn sts_hint(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (400, Some("invalid_grant")) => {
            "STS rejected the subject token: it may be expired, or not trusted by the workload identity provider (check the provider's issuer, allowed audiences and attribute condition)"
        }
        (400, Some("invalid_target")) => {
            "the workload identity pool or provider in `audience` does not exist or is disabled; check `audience` in the credentials file"
        }
        (400, _) => {
            "STS rejected the exchange; check `audience` and `subject_token_type` in the credentials file"
        }
        (500..=599, _) => "STS failed; try again later",
        _ => "",
    }
}

fn url_hint(status: u16, _error: Option<&str>) -> &'static str {
    match status {
        400..=499 => {
            "the subject token URL refused the request; check credential_source.url and its headers"
        }
        500..=599 => "the subject token URL failed; try again later",
        _ => "",
    }
}
