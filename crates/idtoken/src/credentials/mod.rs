//! [`Credentials`]: a parsed credential (key file or metadata server) that
//! can mint ID tokens. The JSON `type` field picks the flow; each flow lives
//! in its own module.

mod metadata;
mod service_account;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::Deserialize;

use crate::cache::IdTokenSource;
use crate::clock::{Clock, SystemClock};
use crate::error::{CredentialsProblem, Error, Result, file_error, file_origin};
use crate::token::IdToken;

pub(crate) use metadata::Metadata;
use service_account::ServiceAccount;

/// Credentials that can mint Google ID tokens.
///
/// Find them the way every Google library does with
/// [`Credentials::discover`], or load them explicitly. Cheap to clone.
///
/// ```no_run
/// # async fn run() -> Result<(), idtoken::Error> {
/// let creds = idtoken::Credentials::discover().await?;
/// let source = creds.token_source("https://my-service-abc123-uc.a.run.app");
/// let token = source.token().await?;
/// println!("expires at {:?}", token.expires_at());
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Credentials {
    inner: Arc<Inner>,
}

struct Inner {
    flow: Flow,
    origin: String,
    clock: Arc<dyn Clock>,
}

#[derive(Clone)]
enum Flow {
    ServiceAccount(ServiceAccount),
    Metadata(Metadata),
}

/// Which kind of credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialsKind {
    /// A service account key file (`"type": "service_account"`).
    ServiceAccount,
    /// The metadata server of a Google runtime (Compute Engine, Cloud Run, GKE...).
    MetadataServer,
}

impl fmt::Display for CredentialsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ServiceAccount => "service account key",
            Self::MetadataServer => "metadata server",
        })
    }
}

/// The metadata server's `format` parameter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Format {
    /// Standard claims only (the metadata server's default).
    #[default]
    Standard,
    /// Adds `email`, `email_verified` and Compute Engine instance claims.
    Full,
}

/// Options for minting a token, as gcloud's flags set them.
///
/// ```
/// use idtoken::{Format, TokenOptions};
/// let opts = TokenOptions::default().format(Format::Full).licenses(true);
/// assert_eq!(opts.format, Format::Full);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenOptions {
    /// Metadata server `format`; service account tokens always carry `email`.
    pub format: Format,
    /// Metadata server `licenses=TRUE` (with [`Format::Full`] only).
    pub licenses: bool,
}

impl TokenOptions {
    /// Sets the metadata server `format`.
    pub fn format(mut self, format: Format) -> Self {
        self.format = format;
        self
    }

    /// Asks for license claims (metadata server, `format=full`).
    pub fn licenses(mut self, licenses: bool) -> Self {
        self.licenses = licenses;
        self
    }
}

impl Credentials {
    /// Finds Application Default Credentials from this process's
    /// environment: `GOOGLE_APPLICATION_CREDENTIALS`, then gcloud's file,
    /// then the metadata server.
    pub async fn discover() -> Result<Self> {
        Self::discover_with(&crate::Env::from_process()).await
    }

    /// Like [`Credentials::discover`], reading the given environment snapshot.
    pub async fn discover_with(env: &crate::Env) -> Result<Self> {
        crate::adc::discover(env).await
    }

    /// Loads a credentials JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_via(path.as_ref(), "given explicitly")
    }

    pub(crate) fn from_file_via(path: &Path, via: &str) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| file_error(path.to_owned(), via, &e))?;
        Self::from_json(&bytes, &file_origin(path, via))
    }

    /// Parses credentials JSON; `origin` names where it came from in errors.
    pub fn from_json(json: &[u8], origin: &str) -> Result<Self> {
        #[derive(Deserialize)]
        struct TypeOnly {
            #[serde(rename = "type")]
            ty: Option<String>,
        }
        let bad = |p| Error::credentials(origin, p);
        let head: TypeOnly = serde_json::from_slice(json).map_err(|e| bad(json_problem(&e)))?;
        let flow = match head.ty.as_deref() {
            Some("service_account") => {
                Flow::ServiceAccount(ServiceAccount::from_json(json).map_err(bad)?)
            }
            Some(
                ty @ ("authorized_user"
                | "impersonated_service_account"
                | "external_account"
                | "external_account_authorized_user"
                | "gdch_service_account"),
            ) => return Err(bad(CredentialsProblem::UnsupportedType(ty.to_owned()))),
            Some("") | None => return Err(bad(CredentialsProblem::MissingField("type"))),
            Some(other) => return Err(bad(CredentialsProblem::UnknownType(other.to_owned()))),
        };
        Ok(Self::new(flow, origin.to_owned()))
    }

    /// The metadata server at `host` (`host:port`, no scheme), without probing it.
    ///
    /// ```
    /// let creds = idtoken::Credentials::metadata_server("127.0.0.1:8080");
    /// assert_eq!(creds.kind(), idtoken::CredentialsKind::MetadataServer);
    /// ```
    pub fn metadata_server(host: &str) -> Self {
        Self::new(
            Flow::Metadata(Metadata::new(host)),
            format!("metadata server at http://{host}"),
        )
    }

    fn new(flow: Flow, origin: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                flow,
                origin,
                clock: Arc::new(SystemClock),
            }),
        }
    }

    /// These credentials reading time from `clock` (for tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        Self {
            inner: Arc::new(Inner {
                flow: self.inner.flow.clone(),
                origin: self.inner.origin.clone(),
                clock,
            }),
        }
    }

    /// Which kind of credential this is.
    pub fn kind(&self) -> CredentialsKind {
        match &self.inner.flow {
            Flow::ServiceAccount(_) => CredentialsKind::ServiceAccount,
            Flow::Metadata(_) => CredentialsKind::MetadataServer,
        }
    }

    /// Where these credentials came from, for people.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The principal's email when the credential names it (key files).
    pub fn principal(&self) -> Option<&str> {
        match &self.inner.flow {
            Flow::ServiceAccount(sa) => Some(sa.client_email()),
            Flow::Metadata(_) => None,
        }
    }

    /// The principal's email: from the key file, or asked of the
    /// metadata server.
    pub async fn email(&self) -> Result<String> {
        match &self.inner.flow {
            Flow::ServiceAccount(sa) => Ok(sa.client_email().to_owned()),
            Flow::Metadata(md) => md.email().await,
        }
    }

    pub(crate) fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// Mints one new ID token for `audience`, bypassing any cache.
    ///
    /// Most callers want [`Credentials::token_source`], which caches.
    pub async fn fetch_id_token(&self, audience: &str, options: &TokenOptions) -> Result<IdToken> {
        if audience.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "the audience is empty; pass the URL of the service you call (e.g. https://SERVICE-HASH-REGION.a.run.app)".into(),
            ));
        }
        let now = self.inner.clock.now();
        match &self.inner.flow {
            Flow::ServiceAccount(sa) => sa.fetch_id_token(audience, now).await,
            Flow::Metadata(md) => md.fetch_id_token(audience, options).await,
        }
    }

    /// A cached source of tokens for `audience`.
    pub fn token_source(&self, audience: impl Into<String>) -> IdTokenSource {
        IdTokenSource::new(self.clone(), audience.into(), TokenOptions::default())
    }

    /// A cached source of tokens for `audience`, minted with `options`.
    pub fn token_source_with(
        &self,
        audience: impl Into<String>,
        options: TokenOptions,
    ) -> IdTokenSource {
        IdTokenSource::new(self.clone(), audience.into(), options)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("kind", &self.kind())
            .field("origin", &self.inner.origin)
            .field("principal", &self.principal())
            .finish_non_exhaustive()
    }
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

/// Probes a metadata server; `Ok` when it answered like one.
pub(crate) async fn metadata_probe(host: &str) -> std::result::Result<Credentials, String> {
    let md = metadata::probe(host).await?;
    let origin = format!("metadata server at {}", md.base_url());
    Ok(Credentials::new(Flow::Metadata(md), origin))
}
