//! External accounts built in code ([`Builder`]) whose subject token comes
//! from the program itself ([`SubjectTokenSupplier`]): a secret manager, a
//! sidecar, anything a credentials file cannot name. Google's Go, Python
//! and Node libraries offer the same door (a "subject token supplier").
//! Once built, such credentials are an external account like one read
//! from a file: the same STS exchange, impersonation and caches.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::{DEFAULT_STS, ExternalAccount, Source};
use crate::credentials::{Credentials, CredentialsKind, Flow, Impersonate, endpoint};
use crate::error::{CredentialsProblem, Error, Result};

/// How long a supplier may take before the fetch gives up: every step of a
/// token fetch is bounded, the caller's code too.
pub(super) const SUPPLIER_TIMEOUT: Duration = Duration::from_secs(60);

/// Where these credentials come from, in errors and `Credentials::origin`.
const ORIGIN: &str = "external account built in code (subject_token_supplier)";

/// The error a [`SubjectTokenSupplier`] returns: any error, shown to the
/// user after the step that failed (so it must not hold secrets).
pub type SupplierError = Box<dyn std::error::Error + Send + Sync>;

/// The future a [`SubjectTokenSupplier`] returns: the subject token.
pub type SupplierFuture<'a> =
    Pin<Box<dyn Future<Output = Result<String, SupplierError>> + Send + 'a>>;

/// What a subject token is asked for: the workload identity pool provider
/// that will receive it, and the token type it takes.
#[derive(Debug, Clone)]
pub struct SubjectTokenContext {
    pub(super) audience: String,
    pub(super) subject_token_type: String,
}

impl SubjectTokenContext {
    /// The workload identity pool provider (the STS `audience`), e.g.
    /// `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The subject token's type, e.g. `urn:ietf:params:oauth:token-type:jwt`.
    pub fn subject_token_type(&self) -> &str {
        &self.subject_token_type
    }
}

/// Gives the subject token (an OIDC ID token, a SAML assertion...) that STS
/// exchanges for a Google access token. Called when the cached tokens run
/// out, at most once at a time per credentials; it may read anything.
///
/// ```
/// use idtoken::external_account::{SubjectTokenContext, SubjectTokenSupplier, SupplierFuture};
///
/// /// Reads the token a sidecar keeps in a file.
/// struct SidecarFile(std::path::PathBuf);
///
/// impl SubjectTokenSupplier for SidecarFile {
///     fn subject_token<'a>(&'a self, _context: &'a SubjectTokenContext) -> SupplierFuture<'a> {
///         Box::pin(async move {
///             // A small local file; a real supplier may await a network call here.
///             let text = std::fs::read_to_string(&self.0)?;
///             Ok(text.trim().to_owned())
///         })
///     }
/// }
/// ```
pub trait SubjectTokenSupplier: Send + Sync + 'static {
    /// The subject token for `context`. An error is shown to the user, named
    /// as this step's, and fails the fetch (the cache retries later).
    fn subject_token<'a>(&'a self, context: &'a SubjectTokenContext) -> SupplierFuture<'a>;
}

/// Builds external account [`Credentials`] in code: the fields of an
/// `external_account` file, checked by the same rules, with a subject
/// token from a [`SubjectTokenSupplier`].
///
/// ```
/// # use idtoken::external_account::{SubjectTokenContext, SubjectTokenSupplier, SupplierFuture};
/// # struct Vault;
/// # impl SubjectTokenSupplier for Vault {
/// #     fn subject_token<'a>(&'a self, _: &'a SubjectTokenContext) -> SupplierFuture<'a> {
/// #         Box::pin(async { Ok("token".to_owned()) })
/// #     }
/// # }
/// let creds = idtoken::external_account::Builder::new(
///     "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/oidc",
///     "urn:ietf:params:oauth:token-type:jwt",
/// )
/// .service_account_impersonation_url(
///     "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/runner@p.iam.gserviceaccount.com:generateAccessToken",
/// )
/// .subject_token_supplier(Vault)
/// .build()?;
/// assert_eq!(creds.principal(), Some("runner@p.iam.gserviceaccount.com"));
/// # Ok::<(), idtoken::Error>(())
/// ```
#[must_use]
pub struct Builder {
    audience: String,
    subject_token_type: String,
    token_url: Option<String>,
    impersonation_url: Option<String>,
    pub(super) source: Option<Source>,
}

impl Builder {
    /// External account credentials for the workload identity pool
    /// provider `audience`, whose subject tokens are of `subject_token_type`.
    pub fn new(audience: impl Into<String>, subject_token_type: impl Into<String>) -> Self {
        Self {
            audience: audience.into(),
            subject_token_type: subject_token_type.into(),
            token_url: None,
            impersonation_url: None,
            source: None,
        }
    }

    /// The STS token exchange endpoint (default
    /// `https://sts.googleapis.com/v1/token`).
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// The IAM `generateAccessToken` URL of the service account to
    /// impersonate; needed for ID tokens, as in a file.
    pub fn service_account_impersonation_url(mut self, url: impl Into<String>) -> Self {
        self.impersonation_url = Some(url.into());
        self
    }

    /// Where subject tokens come from.
    pub fn subject_token_supplier(mut self, supplier: impl SubjectTokenSupplier) -> Self {
        self.source = Some(Source::Supplier(Supplier(Arc::new(supplier))));
        self
    }

    /// The credentials, once every field passes the checks a file's do
    /// (`endpoint` rules for the URLs; no supplier is an error).
    pub fn build(self) -> Result<Credentials> {
        let nonempty = |value: String, field: &'static str| {
            if value.trim().is_empty() {
                Err(bad(CredentialsProblem::MissingField(field)))
            } else {
                Ok(value)
            }
        };
        let audience = nonempty(self.audience, "audience")?;
        let subject_token_type = nonempty(self.subject_token_type, "subject_token_type")?;
        let source = self.source.ok_or_else(|| {
            Error::InvalidArgument(
                "external_account::Builder has no subject token source; call subject_token_supplier(...) or aws_security_credentials_supplier(...)"
                    .into(),
            )
        })?;
        let token_url = self
            .token_url
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| DEFAULT_STS.to_owned());
        endpoint::check("token_url", &token_url).map_err(bad)?;
        let impersonation_url = self.impersonation_url.filter(|s| !s.is_empty());
        let how = impersonation_url
            .as_deref()
            .map(Impersonate::from_url)
            .transpose()
            .map_err(bad)?;
        let account = ExternalAccount {
            audience,
            subject_token_type,
            token_url,
            source,
            impersonation_url,
        };
        let origin = match &account.source {
            Source::Aws(_) => super::aws::supplier::ORIGIN,
            _ => ORIGIN,
        };
        Ok(Credentials::assemble(
            Flow::ExternalAccount(account),
            CredentialsKind::ExternalAccount,
            how,
            origin.to_owned(),
            None,
        ))
    }
}

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("audience", &self.audience)
            .field("subject_token_type", &self.subject_token_type)
            .field("token_url", &self.token_url)
            .field("impersonation_url", &self.impersonation_url)
            .finish_non_exhaustive()
    }
}

/// A supplier, shared by the clones of its credentials.
#[derive(Clone)]
pub(super) struct Supplier(Arc<dyn SubjectTokenSupplier>);

impl Supplier {
    /// Asks the supplier, bounded by [`SUPPLIER_TIMEOUT`]; its error keeps
    /// its message and causes, named as this step's.
    pub(super) async fn subject_token(&self, audience: &str, token_type: &str) -> Result<String> {
        let context = SubjectTokenContext {
            audience: audience.to_owned(),
            subject_token_type: token_type.to_owned(),
        };
        let failed =
            |why: String| Error::credentials(ORIGIN, CredentialsProblem::SubjectTokenSupplier(why));
        let token = bounded(self.0.subject_token(&context))
            .await
            .map_err(failed)?;
        if token.trim().is_empty() {
            return Err(failed("it returned an empty token".into()));
        }
        Ok(token)
    }
}

/// A field the caller gave that the file rules refuse, as the caller's
/// mistake (the file-oriented advice does not apply).
fn bad(problem: CredentialsProblem) -> Error {
    let why = match problem {
        CredentialsProblem::MissingField(field) => format!("`{field}` is empty"),
        CredentialsProblem::InvalidField { field, reason } => {
            format!("`{field}` is invalid: {reason}")
        }
        other => other.to_string(),
    };
    Error::InvalidArgument(format!("external_account::Builder: {why}"))
}

/// An error and its causes, `outer: inner: ...`.
/// A supplier's answer, bounded by [`SUPPLIER_TIMEOUT`]; a failure is
/// why, as text (the error's message and causes).
pub(super) async fn bounded<T>(
    call: impl Future<Output = Result<T, SupplierError>>,
) -> Result<T, String> {
    match tokio::time::timeout(SUPPLIER_TIMEOUT, call).await {
        Err(_) => Err(format!(
            "it gave no answer within {} s",
            SUPPLIER_TIMEOUT.as_secs()
        )),
        Ok(Err(e)) => Err(chain(e.as_ref())),
        Ok(Ok(answer)) => Ok(answer),
    }
}

pub(super) fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_supplier_that_never_answers_is_cut_off_naming_the_limit() {
        let never = std::future::pending::<Result<String, SupplierError>>();
        let why = bounded(never).await.expect_err("cut off");
        assert_eq!(why, "it gave no answer within 60 s");
    }

    #[tokio::test]
    async fn a_supplier_failure_is_told_with_its_causes() {
        let cause = std::io::Error::other("vault sealed");
        let failing = async { Err::<String, SupplierError>(Box::new(cause)) };
        assert_eq!(bounded(failing).await.expect_err("failed"), "vault sealed");
        let answering = async { Ok::<_, SupplierError>("token".to_owned()) };
        assert_eq!(bounded(answering).await.expect("answered"), "token");
    }
}
