//! What a caller can ask of a token and learn of credentials:
//! [`CredentialsKind`], [`Format`] and [`TokenOptions`].

use std::fmt;

/// Which kind of credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CredentialsKind {
    /// A service account key file (`"type": "service_account"`).
    ServiceAccount,
    /// The metadata server of a Google runtime (Compute Engine, Cloud Run, GKE...).
    MetadataServer,
    /// A gcloud user login (`"type": "authorized_user"`).
    AuthorizedUser,
    /// An impersonation file (`"type": "impersonated_service_account"`).
    ImpersonatedServiceAccount,
    /// Workload identity federation (`"type": "external_account"`).
    ExternalAccount,
    /// Workforce identity federation, a user signed in through a workforce
    /// pool (`"type": "external_account_authorized_user"`).
    ExternalAuthorizedUser,
}

impl fmt::Display for CredentialsKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ServiceAccount => "service account key",
            Self::MetadataServer => "metadata server",
            Self::AuthorizedUser => "gcloud user credentials (authorized_user)",
            Self::ImpersonatedServiceAccount => "service account impersonation",
            Self::ExternalAccount => "workload identity federation (external_account)",
            Self::ExternalAuthorizedUser => {
                "workforce identity federation user (external_account_authorized_user)"
            }
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
    /// Impersonation: ask IAM to put `email` and `email_verified` in the
    /// token (`includeEmail`), as gcloud's `--include-email` does.
    pub include_email: bool,
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

    /// Asks IAM for `email` claims when impersonating.
    pub fn include_email(mut self, include_email: bool) -> Self {
        self.include_email = include_email;
        self
    }
}
