//! AWS keys from the program itself ([`AwsSecurityCredentialsSupplier`],
//! given to [`Builder::aws_security_credentials_supplier`]), so a program
//! can federate from AWS without the instance metadata service or `AWS_*`
//! variables (an SDK's credential chain, a secret store, ECS or EKS
//! credentials), as Google's Go, Python and Node libraries allow.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use super::super::Source;
use super::super::supplier::{
    Builder, SubjectTokenContext, SupplierError, SupplierFuture, bounded,
};
use super::Aws;
use crate::error::{CredentialsProblem, Error, Result};

/// Where credentials built with an AWS supplier come from, in errors and
/// `Credentials::origin`.
pub(crate) const ORIGIN: &str =
    "external account built in code (aws_security_credentials_supplier)";

/// AWS security credentials: an access key id, its secret access key, and
/// for temporary credentials a session token. `Debug` shows the key id
/// only.
///
/// ```
/// let creds = idtoken::external_account::AwsSecurityCredentials::new("ASIAEXAMPLE", "wJalrXUtnFEMI")
///     .with_session_token("IQoJb3JpZ2lu");
/// assert_eq!(creds.access_key_id(), "ASIAEXAMPLE");
/// let shown = format!("{creds:?}");
/// assert!(!shown.contains("wJalrXUtnFEMI") && !shown.contains("IQoJb3JpZ2lu"));
/// ```
#[derive(Clone)]
pub struct AwsSecurityCredentials {
    pub(crate) access_key_id: String,
    pub(crate) secret_access_key: String,
    pub(crate) session_token: Option<String>,
}

impl AwsSecurityCredentials {
    /// Long-term credentials: an access key id and its secret.
    pub fn new(access_key_id: impl Into<String>, secret_access_key: impl Into<String>) -> Self {
        Self {
            access_key_id: access_key_id.into(),
            secret_access_key: secret_access_key.into(),
            session_token: None,
        }
    }

    /// Temporary credentials: these with their session token.
    pub fn with_session_token(mut self, session_token: impl Into<String>) -> Self {
        self.session_token = Some(session_token.into());
        self
    }

    /// The access key id (not a secret).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }
}

impl fmt::Debug for AwsSecurityCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsSecurityCredentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"[redacted]")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "[redacted]"),
            )
            .finish()
    }
}

/// The future an [`AwsSecurityCredentialsSupplier`] returns for keys.
pub type AwsCredentialsFuture<'a> =
    Pin<Box<dyn Future<Output = Result<AwsSecurityCredentials, SupplierError>> + Send + 'a>>;

/// Gives the AWS region and keys that sign the subject token (a signed
/// AWS STS `GetCallerIdentity` request, for `https://sts.{region}.amazonaws.com`).
/// The region is asked once per credentials; the keys at each token
/// fetch, so cache them in the supplier if asking is costly. An error is
/// shown to the user after the step that failed (so it must not hold
/// secrets); each call is bounded (60 s).
///
/// ```
/// use idtoken::external_account::{
///     AwsCredentialsFuture, AwsSecurityCredentials, AwsSecurityCredentialsSupplier,
///     SubjectTokenContext, SupplierFuture,
/// };
///
/// /// Keys from wherever the program keeps them.
/// struct FromVault;
///
/// impl AwsSecurityCredentialsSupplier for FromVault {
///     fn aws_region<'a>(&'a self, _: &'a SubjectTokenContext) -> SupplierFuture<'a> {
///         Box::pin(async { Ok("us-east-2".to_owned()) })
///     }
///     fn aws_security_credentials<'a>(&'a self, _: &'a SubjectTokenContext) -> AwsCredentialsFuture<'a> {
///         Box::pin(async { Ok(AwsSecurityCredentials::new("AKIAEXAMPLE", "secret")) })
///     }
/// }
///
/// let creds = idtoken::external_account::Builder::new(
///     "//iam.googleapis.com/projects/123/locations/global/workloadIdentityPools/pool/providers/aws",
///     "urn:ietf:params:aws:token-type:aws4_request",
/// )
/// .service_account_impersonation_url(
///     "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/runner@p.iam.gserviceaccount.com:generateAccessToken",
/// )
/// .aws_security_credentials_supplier(FromVault)
/// .build()?;
/// assert!(creds.flow_description().contains("AwsSecurityCredentialsSupplier"));
/// # Ok::<(), idtoken::Error>(())
/// ```
pub trait AwsSecurityCredentialsSupplier: Send + Sync + 'static {
    /// The AWS region, e.g. `us-east-1`.
    fn aws_region<'a>(&'a self, context: &'a SubjectTokenContext) -> SupplierFuture<'a>;

    /// The AWS keys to sign with.
    fn aws_security_credentials<'a>(
        &'a self,
        context: &'a SubjectTokenContext,
    ) -> AwsCredentialsFuture<'a>;
}

impl Builder {
    /// Where the AWS region and keys come from: the subject token is then
    /// a signed AWS request, as for an AWS-sourced file (`subject_token_type`
    /// `urn:ietf:params:aws:token-type:aws4_request`). Replaces a
    /// [`subject_token_supplier`](Builder::subject_token_supplier).
    pub fn aws_security_credentials_supplier(
        mut self,
        supplier: impl AwsSecurityCredentialsSupplier,
    ) -> Self {
        self.source = Some(Source::Aws(Aws::from_supplier(Arc::new(supplier))));
        self
    }
}

/// The context a supplier is asked in.
pub(super) fn context(audience: &str) -> SubjectTokenContext {
    SubjectTokenContext {
        audience: audience.to_owned(),
        subject_token_type: "urn:ietf:params:aws:token-type:aws4_request".to_owned(),
    }
}

fn failed(step: &str, why: String) -> Error {
    Error::credentials(
        ORIGIN,
        CredentialsProblem::SubjectTokenSupplier(format!("{step}: {why}")),
    )
}

/// The supplier's region, bounded in time.
pub(super) async fn region(
    supplier: &dyn AwsSecurityCredentialsSupplier,
    context: &SubjectTokenContext,
) -> Result<String> {
    let step = "AwsSecurityCredentialsSupplier::aws_region";
    match bounded(supplier.aws_region(context)).await {
        Err(why) => Err(failed(step, why)),
        Ok(region) => Ok(region.trim().to_owned()),
    }
}

/// The supplier's keys, bounded in time; both the id and the secret needed.
pub(super) async fn credentials(
    supplier: &dyn AwsSecurityCredentialsSupplier,
    context: &SubjectTokenContext,
) -> Result<AwsSecurityCredentials> {
    let step = "AwsSecurityCredentialsSupplier::aws_security_credentials";
    match bounded(supplier.aws_security_credentials(context)).await {
        Err(why) => Err(failed(step, why)),
        Ok(creds) if creds.access_key_id.is_empty() || creds.secret_access_key.is_empty() => {
            Err(failed(
                step,
                "it returned an empty access key id or secret access key".into(),
            ))
        }
        Ok(mut creds) => {
            creds.session_token = creds.session_token.filter(|t| !t.is_empty());
            Ok(creds)
        }
    }
}
