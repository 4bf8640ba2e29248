//! AWS-sourced external accounts (`credential_source.environment_id`
//! `aws1`): the subject token is a signed, never-sent AWS STS
//! `GetCallerIdentity` request (docs/PROTOCOL.md, "AWS"), as Google's
//! Python (`google/auth/aws.py`) and Node clients make it.
//!
//! - Region: `AWS_REGION`, then `AWS_DEFAULT_REGION`, then
//!   `credential_source.region_url` (an availability zone such as
//!   `us-east-1b`; the region is the zone minus its last letter). Kept
//!   once known, as Google's clients do.
//! - Credentials: `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (and
//!   `AWS_SESSION_TOKEN`), read at each use; else the role named at
//!   `credential_source.url` and its keys at `url/<role>`, kept until
//!   five minutes before their `Expiration` (Google's clients ask again
//!   every time).
//! - IMDSv2: when the file names `imdsv2_session_token_url`, one `PUT`
//!   there per fetch that needs the instance metadata service, and its
//!   token in `X-aws-ec2-metadata-token` on the `GET`s.
//!
//! Built in code instead ([`supplier`]), the region and keys come from the
//! program's [`AwsSecurityCredentialsSupplier`]: the region asked once, the
//! keys at each fetch (the supplier caches them if it wants), as in Google's
//! clients; neither the environment nor the metadata service is read.
//!
//! The secret access key, the session token and the signed request never
//! print: [`AwsSecurityCredentials`] redacts them in `Debug`, and errors
//! name variables, fields and URLs only.

mod sign;
pub(crate) mod supplier;

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use serde::Deserialize;

use super::CredentialSource;
use crate::clock::earlier;
use crate::credentials::endpoint;
use crate::error::{CredentialsProblem, EndpointProblem, Error, Result};
use crate::http::Http;
pub(crate) use supplier::{AwsSecurityCredentials, AwsSecurityCredentialsSupplier};

/// The regional URL Google's clients sign for suppliers.
const DEFAULT_VERIFICATION_URL: &str =
    "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
const IMDSV2_TOKEN_HEADER: &str = "X-aws-ec2-metadata-token";
const IMDSV2_TTL_HEADER: &str = "X-aws-ec2-metadata-token-ttl-seconds";
/// What Google's clients ask for: the token lives five minutes.
const IMDSV2_TTL_SECONDS: &str = "300";
/// Role credentials are used until this long before their `Expiration`:
/// EC2 offers new ones at least five minutes before.
const ROLE_CREDENTIALS_MARGIN: Duration = Duration::from_secs(300);
/// Where subject-token errors say they came from.
const ORIGIN: &str = "AWS subject token (credential_source.environment_id aws1)";

/// An AWS credential source: as a file describes it, or a supplier.
#[derive(Clone)]
pub(super) struct Aws {
    from: KeysFrom,
    /// `regional_cred_verification_url`, with `{region}` to fill in.
    verification_url: String,
    /// The region once known, and role credentials until they expire;
    /// shared by clones (the impersonation's copy of the flow).
    known: Arc<Mutex<Known>>,
}

/// Where the region and keys come from.
#[derive(Clone)]
enum KeysFrom {
    /// The environment, then the instance metadata service at the file's
    /// URLs.
    Metadata {
        region_url: Option<String>,
        url: Option<String>,
        imdsv2_url: Option<String>,
    },
    /// The program's supplier.
    Supplier(Arc<dyn AwsSecurityCredentialsSupplier>),
}

#[derive(Default)]
struct Known {
    region: Option<String>,
    role: Option<(AwsSecurityCredentials, SystemTime)>,
}

/// The instance metadata service's answer at `url/<role>`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RoleCredentials {
    access_key_id: Option<String>,
    secret_access_key: Option<String>,
    token: Option<String>,
    expiration: Option<String>,
}

impl Aws {
    /// Reads an AWS `credential_source` (an `environment_id` starting with
    /// `aws`, as Google's clients tell AWS sources apart).
    pub(super) fn from_source(
        environment_id: &str,
        cs: &CredentialSource,
    ) -> Result<Self, CredentialsProblem> {
        let field = "credential_source.environment_id";
        let version = environment_id.strip_prefix("aws").unwrap_or(environment_id);
        if version != "1" {
            return Err(CredentialsProblem::InvalidField {
                field,
                reason: format!(
                    "AWS version {version:?} is not supported; idtoken knows \"aws1\", as Google's clients do"
                ),
            });
        }
        let verification_url = cs
            .regional_cred_verification_url
            .clone()
            .filter(|u| !u.is_empty())
            .ok_or(CredentialsProblem::MissingField(
                "credential_source.regional_cred_verification_url",
            ))?;
        check_verification_url(&verification_url)?;
        let aws_url = |field: &'static str, url: &Option<String>| {
            url.clone()
                .filter(|u| !u.is_empty())
                .map(|u| endpoint::check_aws_metadata(field, &u).map(|()| u))
                .transpose()
        };
        Ok(Self {
            from: KeysFrom::Metadata {
                region_url: aws_url("credential_source.region_url", &cs.region_url)?,
                url: aws_url("credential_source.url", &cs.url)?,
                imdsv2_url: aws_url(
                    "credential_source.imdsv2_session_token_url",
                    &cs.imdsv2_session_token_url,
                )?,
            },
            verification_url,
            known: Arc::default(),
        })
    }

    /// A source whose region and keys come from `supplier`, signing for
    /// AWS's regional STS URL, as Google's clients do for suppliers.
    pub(super) fn from_supplier(supplier: Arc<dyn AwsSecurityCredentialsSupplier>) -> Self {
        Self {
            from: KeysFrom::Supplier(supplier),
            verification_url: DEFAULT_VERIFICATION_URL.to_owned(),
            known: Arc::default(),
        }
    }

    /// Where the region and the credentials will come from, for people
    /// (`idtoken doctor`): variable names and URLs, never values of secrets.
    pub(super) fn describe(&self) -> String {
        let (region_url, url, imdsv2_url) = match &self.from {
            KeysFrom::Metadata {
                region_url,
                url,
                imdsv2_url,
            } => (region_url, url, imdsv2_url),
            KeysFrom::Supplier(_) => {
                return "AWS: region and credentials from an AwsSecurityCredentialsSupplier in code; signed GetCallerIdentity".to_owned();
            }
        };
        let region = match (env("AWS_REGION"), env("AWS_DEFAULT_REGION"), region_url) {
            (Some(r), _, _) => format!("region {r} from AWS_REGION"),
            (None, Some(r), _) => format!("region {r} from AWS_DEFAULT_REGION"),
            (None, None, Some(url)) => format!("region from {url} (region_url)"),
            (None, None, None) => {
                "no region (set AWS_REGION, or region_url in the file)".to_owned()
            }
        };
        let keys = match (env_credentials(), url) {
            (Some(c), _) if c.session_token.is_some() => {
                "credentials from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN"
                    .to_owned()
            }
            (Some(_), _) => {
                "credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY".to_owned()
            }
            (None, Some(url)) => format!("credentials of the instance role at {url} (url)"),
            (None, None) => {
                "no credentials (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or url in the file)"
                    .to_owned()
            }
        };
        let imds = if imdsv2_url.is_some() {
            ", IMDSv2 session"
        } else {
            ""
        };
        format!("AWS (aws1): {region}, {keys}{imds}; signed GetCallerIdentity")
    }

    /// The subject token for `audience` at `now`: the signed request,
    /// URL-encoded. A secret.
    pub(super) async fn subject_token(&self, audience: &str, now: SystemTime) -> Result<String> {
        let (region, creds) = match &self.from {
            KeysFrom::Metadata {
                region_url,
                url,
                imdsv2_url,
            } => {
                let mut imds = Imds {
                    session_url: imdsv2_url.as_deref(),
                    session: None,
                };
                let region = self.region(region_url.as_deref(), &mut imds).await?;
                let creds = self.credentials(url.as_deref(), &mut imds, now).await?;
                (region, creds)
            }
            KeysFrom::Supplier(supplier) => {
                let context = supplier::context(audience);
                let known = self.lock().region.clone();
                let region = match known {
                    Some(region) => region,
                    None => {
                        let region = supplier::region(supplier.as_ref(), &context).await?;
                        self.checked_region(region, "AwsSecurityCredentialsSupplier::aws_region")?
                    }
                };
                let creds = supplier::credentials(supplier.as_ref(), &context).await?;
                (region, creds)
            }
        };
        let url = self.verification_url.replace("{region}", &region);
        sign::subject_token(&url, &region, &creds, audience, now)
            .map_err(|why| Error::credentials(ORIGIN, CredentialsProblem::SubjectToken(why)))
    }

    async fn region(&self, region_url: Option<&str>, imds: &mut Imds<'_>) -> Result<String> {
        if let Some(region) = self.lock().region.clone() {
            return Ok(region);
        }
        let bad = |why: String| Error::credentials(ORIGIN, CredentialsProblem::SubjectToken(why));
        let (region, from) = if let Some(r) = env("AWS_REGION") {
            (r, "AWS_REGION")
        } else if let Some(r) = env("AWS_DEFAULT_REGION") {
            (r, "AWS_DEFAULT_REGION")
        } else if let Some(url) = region_url {
            let step = "external account (AWS): availability zone at credential_source.region_url";
            let zone = imds.get(step, url).await?;
            let zone = String::from_utf8(zone).map_err(|_| {
                Error::endpoint(
                    step,
                    url,
                    EndpointProblem::InvalidResponse("the zone is not text".into()),
                )
            })?;
            // `us-east-1b` is in `us-east-1`.
            let zone = zone.trim();
            let mut region = zone.to_owned();
            region.pop();
            (region, "credential_source.region_url")
        } else {
            return Err(bad(
                "no AWS region: AWS_REGION and AWS_DEFAULT_REGION are not set and the file has no credential_source.region_url".into(),
            ));
        };
        self.checked_region(region, from)
    }

    /// `region` (from `from`), kept once it passes: a region name, since it
    /// goes into a URL and the signature's scope.
    fn checked_region(&self, region: String, from: &str) -> Result<String> {
        let plausible = !region.is_empty()
            && region.len() <= 32
            && region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !plausible {
            return Err(Error::credentials(
                ORIGIN,
                CredentialsProblem::SubjectToken(format!(
                    "the AWS region from {from} ({:?}) is not a region name such as us-east-1",
                    region.chars().take(40).collect::<String>()
                )),
            ));
        }
        self.lock().region = Some(region.clone());
        Ok(region)
    }

    async fn credentials(
        &self,
        url: Option<&str>,
        imds: &mut Imds<'_>,
        now: SystemTime,
    ) -> Result<AwsSecurityCredentials> {
        if let Some(creds) = env_credentials() {
            return Ok(creds);
        }
        if let Some((creds, until)) = &self.lock().role
            && now < *until
        {
            return Ok(creds.clone());
        }
        let Some(url) = url else {
            return Err(Error::credentials(
                ORIGIN,
                CredentialsProblem::SubjectToken(
                    "no AWS credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not set and the file has no credential_source.url (the instance metadata service's security-credentials URL)".into(),
                ),
            ));
        };
        let step = "external account (AWS): role name at credential_source.url";
        let role = imds.get(step, url).await?;
        let role = std::str::from_utf8(&role).unwrap_or_default().trim();
        // IAM role names: letters, digits and `+=,.@_-`; nothing that
        // could step out of the URL's path.
        let valid = !role.is_empty()
            && role.len() <= 64
            && role
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b));
        if !valid {
            return Err(Error::endpoint(
                step,
                url,
                EndpointProblem::InvalidResponse(
                    "the answer is not an IAM role name; is an instance profile attached to this instance?".into(),
                ),
            ));
        }
        let role_url = format!("{}/{role}", url.trim_end_matches('/'));
        let step = "external account (AWS): role credentials at credential_source.url/<role>";
        let body = imds.get(step, &role_url).await?;
        let bad = |why: &str| {
            Error::endpoint(
                step,
                &role_url,
                EndpointProblem::InvalidResponse(why.to_owned()),
            )
        };
        let answer: RoleCredentials = serde_json::from_slice(&body)
            .map_err(|_| bad("not the JSON of AWS role credentials"))?;
        let (Some(access_key_id), Some(secret_access_key)) = (
            answer.access_key_id.filter(|s| !s.is_empty()),
            answer.secret_access_key.filter(|s| !s.is_empty()),
        ) else {
            return Err(bad("the answer has no AccessKeyId or SecretAccessKey"));
        };
        let creds = AwsSecurityCredentials {
            access_key_id,
            secret_access_key,
            session_token: answer.token.filter(|s| !s.is_empty()),
        };
        // Without a readable `Expiration`, ask again next time.
        if let Some(expires) = answer
            .expiration
            .as_deref()
            .and_then(|e| humantime::parse_rfc3339_weak(e).ok())
        {
            self.lock().role = Some((creds.clone(), earlier(expires, ROLE_CREDENTIALS_MARGIN)));
        }
        Ok(creds)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Known> {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The instance metadata service for one fetch: the IMDSv2 session token
/// is asked for once, when the first `GET` needs it.
struct Imds<'a> {
    session_url: Option<&'a str>,
    session: Option<String>,
}

impl Imds<'_> {
    async fn get(&mut self, step: &'static str, url: &str) -> Result<Vec<u8>> {
        if let (Some(session_url), None) = (self.session_url, &self.session) {
            let session_step = "external account (AWS): IMDSv2 session token at credential_source.imdsv2_session_token_url";
            let answer = http_for(session_url)
                .send(
                    session_step,
                    session_url,
                    |c| {
                        c.put(session_url)
                            .header(IMDSV2_TTL_HEADER, IMDSV2_TTL_SECONDS)
                    },
                    imds_hint,
                )
                .await?;
            let token = String::from_utf8(answer.body)
                .ok()
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty() && reqwest::header::HeaderValue::from_str(t).is_ok())
                .ok_or_else(|| {
                    Error::endpoint(
                        session_step,
                        session_url,
                        EndpointProblem::InvalidResponse(
                            "the answer is not a session token".into(),
                        ),
                    )
                })?;
            self.session = Some(token);
        }
        let session = self.session.as_deref();
        let answer = http_for(url)
            .send(
                step,
                url,
                |c| {
                    let req = c.get(url);
                    match session {
                        Some(token) => req.header(IMDSV2_TOKEN_HEADER, token),
                        None => req,
                    }
                },
                imds_hint,
            )
            .await?;
        Ok(answer.body)
    }
}

/// The metadata service is plain HTTP on a link-local address: no proxy,
/// no trust roots. An `https://` URL (a file pointing elsewhere) takes the
/// public client.
fn http_for(url: &str) -> Http {
    if url
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("https://"))
    {
        Http::PUBLIC
    } else {
        Http::METADATA
    }
}

/// What to do when STS refuses an AWS subject token (AWS checked it
/// behind STS).
pub(super) fn sts_hint(status: u16, error: Option<&str>) -> &'static str {
    match (status, error) {
        (400, Some("invalid_grant")) => {
            "STS (through AWS) refused the signed AWS request: check the AWS keys (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or the instance role), AWS_SESSION_TOKEN for temporary keys, this machine's clock (AWS allows 15 minutes), the region, and that the provider's AWS account ID is this account's"
        }
        (400, Some("invalid_target")) => {
            "the workload identity pool or provider in `audience` does not exist or is disabled; check `audience` in the credentials file"
        }
        (400, _) => {
            "STS rejected the exchange; check `audience` and `subject_token_type` (urn:ietf:params:aws:token-type:aws4_request) in the credentials file"
        }
        (500..=599, _) => "STS failed; try again later",
        _ => "",
    }
}

fn imds_hint(status: u16, _error: Option<&str>) -> &'static str {
    match status {
        401 => {
            "the instance metadata service wants an IMDSv2 session token; add imdsv2_session_token_url (http://169.254.169.254/latest/api/token) to credential_source"
        }
        404 => {
            "the instance metadata service has no such entry; is an IAM role (instance profile) attached to this instance?"
        }
        400..=499 => "the instance metadata service refused the request",
        500..=599 => "the instance metadata service failed; try again later",
        _ => "",
    }
}

/// A non-empty environment variable (Node's rule: empty counts as unset).
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// Credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (both
/// needed) and `AWS_SESSION_TOKEN`.
fn env_credentials() -> Option<AwsSecurityCredentials> {
    Some(AwsSecurityCredentials {
        access_key_id: env("AWS_ACCESS_KEY_ID")?,
        secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
        session_token: env("AWS_SESSION_TOKEN"),
    })
}

/// `regional_cred_verification_url` must be an `https://` URL once
/// `{region}` is filled in, as Google's clients require; it is only
/// signed, never called.
fn check_verification_url(url: &str) -> Result<(), CredentialsProblem> {
    let field = "credential_source.regional_cred_verification_url";
    let filled = url.replace("{region}", "us-east-1");
    match reqwest::Url::parse(&filled) {
        Ok(u) if u.scheme() == "https" && u.host_str().is_some() => Ok(()),
        Ok(_) => Err(CredentialsProblem::InvalidField {
            field,
            reason: "not an https:// URL with a host (normally https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15)".into(),
        }),
        Err(e) => Err(CredentialsProblem::InvalidField {
            field,
            reason: format!("not a URL ({e})"),
        }),
    }
}
