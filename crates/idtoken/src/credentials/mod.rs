//! [`Credentials`]: a parsed credential (key file, gcloud user, impersonation
//! or external account file, or metadata server) that can mint ID tokens.
//! The JSON `type` field picks the flow; each flow lives in its own module,
//! and impersonation ([`Impersonate`]) can sit on top of any of them.

pub(crate) mod access;
pub(crate) mod answer;
mod authorized_user;
mod describe;
pub(crate) mod endpoint;
pub(crate) mod external_account;
mod external_authorized_user;
mod file;
mod impersonated;
mod metadata;
mod options;
mod service_account;
mod source;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use crate::adc::Found;
use crate::clock::{Clock, SystemClock};
use crate::error::{CredentialsProblem, Error, Result, file_error, file_origin};
use crate::token::IdToken;

use authorized_user::AuthorizedUser;
#[cfg(feature = "x509")]
pub use external_account::ClientCertificate;
use external_account::ExternalAccount;
use external_authorized_user::ExternalAuthorizedUser;
pub(crate) use file::json_problem;
use file::{base_flow, impersonated_file, type_of};
use impersonated::Impersonation;
pub use impersonated::{DEFAULT_IAM_ENDPOINT, Impersonate};
pub(crate) use metadata::Metadata;
pub use options::{CredentialsKind, Format, TokenOptions};
use service_account::ServiceAccount;
pub use source::{IdTokenSource, TokenSourceStats};

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
    kind: CredentialsKind,
    origin: String,
    clock: Arc<dyn Clock>,
    impersonation: Option<Impersonation>,
    /// The file's `universe_domain`, when it names one.
    universe_domain: Option<String>,
}

/// The base flows: what mints an ID token (or the access token that
/// impersonation starts from).
#[derive(Clone)]
pub(crate) enum Flow {
    ServiceAccount(ServiceAccount),
    Metadata(Metadata),
    AuthorizedUser(AuthorizedUser),
    ExternalAccount(ExternalAccount),
    ExternalAuthorizedUser(ExternalAuthorizedUser),
}

impl Flow {
    /// An access token of the flow's own principal.
    pub(crate) async fn fetch_access_token(
        &self,
        now: std::time::SystemTime,
    ) -> Result<access::AccessToken> {
        match self {
            Flow::ServiceAccount(sa) => sa.fetch_access_token(now).await,
            Flow::AuthorizedUser(u) => u.fetch_access_token(now).await,
            Flow::ExternalAccount(ea) => ea.fetch_access_token(now).await,
            Flow::ExternalAuthorizedUser(u) => u.fetch_access_token(now).await,
            Flow::Metadata(md) => md.fetch_access_token(now).await,
        }
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
        Self::discover_explained(env).await.0
    }

    /// Like [`Credentials::discover_with`], and also says what each place
    /// looked at gave, and how long it took.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let env = idtoken::Env::empty().with("METADATA_SERVER_DETECTION", "none");
    /// let (found, report) = idtoken::Credentials::discover_explained(&env).await;
    /// assert!(found.is_err());
    /// assert_eq!(report.steps[0].place, "GOOGLE_APPLICATION_CREDENTIALS");
    /// assert!(report.steps.iter().all(|s| !s.chosen));
    /// # }
    /// ```
    pub async fn discover_explained(env: &crate::Env) -> (Result<Self>, crate::Discovery) {
        let (found, mut report) = crate::adc::discover(env).await;
        let creds = match found {
            Ok(Found::File { path, via }) => {
                let loaded = Self::from_file_via(&path, via);
                let outcome = match &loaded {
                    Ok(c) => format!("{}: {}", path.display(), c.kind()),
                    Err(e) => format!("{}: unusable ({e})", path.display()),
                };
                report.settle(outcome, loaded.is_ok());
                loaded
            }
            Ok(Found::MetadataServer(host)) => Ok(Self::metadata_server(&host)),
            Err(e) => Err(e),
        };
        (creds, report)
    }

    /// Loads a credentials JSON file.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self> {
        Self::from_file_via(path.as_ref(), crate::adc::EXPLICIT_VIA)
    }

    pub(crate) fn from_file_via(path: &Path, via: &str) -> Result<Self> {
        let bytes = file::read_small(path).map_err(|e| file_error(path.to_owned(), via, &e))?;
        Self::from_json(&bytes, &file_origin(path, via))
    }

    /// Parses credentials JSON; `origin` names where it came from in errors.
    pub fn from_json(json: &[u8], origin: &str) -> Result<Self> {
        let bad = |p| Error::credentials(origin, p);
        let (flow, kind, how) = match type_of(json).map_err(bad)?.as_str() {
            "impersonated_service_account" => {
                let (source, how) = impersonated_file(json).map_err(bad)?;
                let flow = base_flow(&source, "source_credentials")
                    .map_err(|p| Error::credentials(format!("{origin}, source_credentials"), p))?;
                (flow, CredentialsKind::ImpersonatedServiceAccount, Some(how))
            }
            _ => {
                let flow = base_flow(json, "type").map_err(bad)?;
                let how = match &flow {
                    Flow::ExternalAccount(ea) => ea
                        .impersonation_url
                        .as_deref()
                        .map(Impersonate::from_url)
                        .transpose()
                        .map_err(bad)?,
                    _ => None,
                };
                let kind = match &flow {
                    Flow::ServiceAccount(_) => CredentialsKind::ServiceAccount,
                    Flow::AuthorizedUser(_) => CredentialsKind::AuthorizedUser,
                    Flow::ExternalAccount(_) => CredentialsKind::ExternalAccount,
                    Flow::ExternalAuthorizedUser(_) => CredentialsKind::ExternalAuthorizedUser,
                    Flow::Metadata(_) => CredentialsKind::MetadataServer,
                };
                (flow, kind, how)
            }
        };
        #[derive(serde::Deserialize)]
        struct Universe {
            universe_domain: Option<String>,
        }
        let universe_domain = serde_json::from_slice::<Universe>(json)
            .ok()
            .and_then(|u| u.universe_domain)
            .filter(|d| !d.is_empty());
        Ok(Self::assemble(
            flow,
            kind,
            how,
            origin.to_owned(),
            universe_domain,
        ))
    }

    /// Credentials around a base flow, with the impersonation its file (or
    /// builder) asks for, on the system clock.
    pub(crate) fn assemble(
        flow: Flow,
        kind: CredentialsKind,
        how: Option<Impersonate>,
        origin: String,
        universe_domain: Option<String>,
    ) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let impersonation = how.map(|how| Impersonation::new(how, flow.clone(), clock.clone()));
        Self {
            inner: Arc::new(Inner {
                flow,
                kind,
                origin,
                clock,
                impersonation,
                universe_domain,
            }),
        }
    }

    /// These credentials impersonating a service account: the current
    /// principal's access token calls IAM `generateIdToken` for the target,
    /// so tokens carry the requested audience whatever the source.
    /// Impersonating from an impersonation makes its target a delegate.
    ///
    /// ```
    /// use idtoken::{Credentials, CredentialsKind, Impersonate};
    /// let creds = Credentials::metadata_server("127.0.0.1:8080")
    ///     .impersonate(Impersonate::new("runner@p.iam.gserviceaccount.com"));
    /// assert_eq!(creds.kind(), CredentialsKind::MetadataServer);
    /// assert_eq!(creds.principal(), Some("runner@p.iam.gserviceaccount.com"));
    /// ```
    pub fn impersonate(&self, how: Impersonate) -> Self {
        let how = match &self.inner.impersonation {
            Some(existing) => existing.how.then(how),
            None => how,
        };
        let flow = self.inner.flow.clone();
        let clock = self.inner.clock.clone();
        Self {
            inner: Arc::new(Inner {
                impersonation: Some(Impersonation::new(how, flow.clone(), clock.clone())),
                flow,
                kind: self.inner.kind,
                origin: self.inner.origin.clone(),
                clock,
                universe_domain: self.inner.universe_domain.clone(),
            }),
        }
    }

    /// The impersonation in effect, if any: from the file, or asked for.
    pub fn impersonation(&self) -> Option<&Impersonate> {
        self.inner.impersonation.as_ref().map(|i| &i.how)
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
            crate::adc::metadata_origin(host),
        )
    }

    fn new(flow: Flow, origin: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                flow,
                kind: CredentialsKind::MetadataServer,
                origin,
                clock: Arc::new(SystemClock),
                impersonation: None,
                universe_domain: None,
            }),
        }
    }

    /// These credentials reading time from `clock` (for tests).
    pub fn with_clock(self, clock: Arc<dyn Clock>) -> Self {
        let flow = self.inner.flow.clone();
        Self {
            inner: Arc::new(Inner {
                impersonation: self
                    .inner
                    .impersonation
                    .as_ref()
                    .map(|i| Impersonation::new(i.how.clone(), flow.clone(), clock.clone())),
                flow,
                kind: self.inner.kind,
                origin: self.inner.origin.clone(),
                clock,
                universe_domain: self.inner.universe_domain.clone(),
            }),
        }
    }

    /// Which kind of credential this is (what the file's `type` said).
    pub fn kind(&self) -> CredentialsKind {
        self.inner.kind
    }

    /// True when tokens will carry the OAuth client id as `aud` instead of
    /// the requested audience: gcloud user credentials without
    /// impersonation. See [`IdToken::audience_is_client_id`].
    pub fn audience_is_client_id(&self) -> bool {
        self.inner.impersonation.is_none() && matches!(self.inner.flow, Flow::AuthorizedUser(_))
    }

    /// Where these credentials came from, for people.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The email tokens will be for, when the credentials name it: the
    /// impersonated service account, or a key file's `client_email`.
    pub fn principal(&self) -> Option<&str> {
        if let Some(imp) = &self.inner.impersonation {
            return Some(imp.how.target());
        }
        self.source_principal()
    }

    /// The email of the source principal (before any impersonation), when
    /// the credentials name it.
    pub fn source_principal(&self) -> Option<&str> {
        match &self.inner.flow {
            Flow::ServiceAccount(sa) => Some(sa.client_email()),
            Flow::AuthorizedUser(_)
            | Flow::Metadata(_)
            | Flow::ExternalAccount(_)
            | Flow::ExternalAuthorizedUser(_) => None,
        }
    }

    /// The principal's email: the impersonated account, the key file's,
    /// or asked of the metadata server.
    pub async fn email(&self) -> Result<String> {
        match self.principal() {
            Some(p) => Ok(p.to_owned()),
            None => self.source_email().await,
        }
    }

    /// The source principal's email (before any impersonation): the key
    /// file's, or asked of the metadata server.
    pub async fn source_email(&self) -> Result<String> {
        match &self.inner.flow {
            Flow::Metadata(md) => md.email().await,
            Flow::AuthorizedUser(_) => Err(Error::InvalidArgument(
                "gcloud user credentials do not name the user; `gcloud auth list` shows it".into(),
            )),
            Flow::ExternalAccount(ea) => Err(Error::InvalidArgument(format!(
                "a federated principal of {} has no email",
                ea.audience()
            ))),
            Flow::ExternalAuthorizedUser(_) => Err(Error::InvalidArgument(
                "workforce user credentials do not name the user; `gcloud auth list` shows it"
                    .into(),
            )),
            Flow::ServiceAccount(sa) => Ok(sa.client_email().to_owned()),
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
        if let Some(imp) = &self.inner.impersonation {
            return imp.fetch_id_token(audience, options.include_email).await;
        }
        let now = self.inner.clock.now();
        match &self.inner.flow {
            Flow::ServiceAccount(sa) => sa.fetch_id_token(audience, now).await,
            Flow::Metadata(md) => md.fetch_id_token(audience, options).await,
            Flow::AuthorizedUser(u) => u.fetch_id_token().await,
            Flow::ExternalAccount(_) => Err(Error::credentials(
                &self.inner.origin,
                CredentialsProblem::FederatedPrincipalCannotMintIdTokens,
            )),
            Flow::ExternalAuthorizedUser(_) => Err(Error::credentials(
                &self.inner.origin,
                CredentialsProblem::WorkforceUserCannotMintIdTokens,
            )),
        }
    }

    /// The X.509 client certificate of an external account with a
    /// certificate source (`credential_source.certificate`): its subject
    /// and expiry, read now from the certificate configuration; `None` for
    /// other credentials. What `idtoken doctor` shows.
    #[cfg(feature = "x509")]
    pub fn client_certificate(&self) -> Option<Result<ClientCertificate>> {
        match &self.inner.flow {
            Flow::ExternalAccount(ea) => ea.client_certificate(),
            _ => None,
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
            .field("impersonation", &self.impersonation())
            .finish_non_exhaustive()
    }
}
