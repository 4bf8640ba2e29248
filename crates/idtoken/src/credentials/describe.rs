//! [`Credentials::flow_description`]: how tokens will be minted, in words,
//! for `idtoken doctor` and logs.

use super::{Credentials, Flow};

impl Credentials {
    /// How tokens will be minted, step by step, for people (no secrets).
    ///
    /// ```
    /// let creds = idtoken::Credentials::metadata_server("127.0.0.1:8080");
    /// assert!(creds.flow_description().contains("identity"));
    /// ```
    pub fn flow_description(&self) -> String {
        let base = match &self.inner.flow {
            Flow::ServiceAccount(sa) => format!(
                "service account key for {}: JWT-bearer grant",
                sa.client_email()
            ),
            Flow::Metadata(md) => format!("metadata server at {}", md.base_url()),
            Flow::AuthorizedUser(_) => "gcloud user credentials: refresh grant".to_owned(),
            Flow::ExternalAccount(ea) => format!(
                "external account of {}: subject token, then STS token exchange",
                ea.audience()
            ),
        };
        match (&self.inner.impersonation, &self.inner.flow) {
            (Some(imp), _) => {
                let how = &imp.how;
                let via = if how.delegate_emails().is_empty() {
                    String::new()
                } else {
                    format!(" via delegates {}", how.delegate_emails().join(", "))
                };
                format!(
                    "{base} for an access token (scope cloud-platform), then IAM generateIdToken for {}{via}",
                    how.target()
                )
            }
            (None, Flow::ServiceAccount(_)) => format!("{base} with target_audience"),
            (None, Flow::Metadata(_)) => format!("{base}: identity endpoint"),
            (None, Flow::AuthorizedUser(_)) => {
                format!("{base}, whose id_token has the OAuth client id as aud")
            }
            (None, Flow::ExternalAccount(_)) => {
                format!("{base}; no ID token possible without service_account_impersonation_url")
            }
        }
    }
}
