//! Impersonation (docs/PROTOCOL.md, "Impersonation"): source credentials get an access
//! token (cached like ID tokens), then IAM Credentials `generateIdToken`
//! mints an ID token for the target service account, through an optional
//! chain of `delegates`.
//!
//! Used for `impersonated_service_account` files (what
//! `gcloud auth application-default login --impersonate-service-account`
//! writes), for `external_account` files with a
//! `service_account_impersonation_url`, and on request for any credentials
//! ([`Credentials::impersonate`](crate::Credentials::impersonate)).

use std::sync::Arc;

use serde_json::json;

use super::answer::id_token_in;
use crate::cache::Cache;
use crate::clock::Clock;
use crate::error::{CredentialsProblem, Error, Result};
use crate::http::Http;
use crate::token::IdToken;

use super::Flow;
use super::access::SourceAccess;

/// Google's IAM Credentials endpoint.
pub const DEFAULT_IAM_ENDPOINT: &str = "https://iamcredentials.googleapis.com";

/// Whom to impersonate, and how.
///
/// ```
/// use idtoken::Impersonate;
/// let how = Impersonate::new("runner@my-project.iam.gserviceaccount.com")
///     .delegates(["hop@my-project.iam.gserviceaccount.com"]);
/// assert_eq!(how.target(), "runner@my-project.iam.gserviceaccount.com");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Impersonate {
    target: String,
    delegates: Vec<String>,
    iam_endpoint: String,
}

impl Impersonate {
    /// Impersonates the service account `target` (an email).
    pub fn new(target: impl Into<String>) -> Self {
        Self {
            target: target.into(),
            delegates: Vec::new(),
            iam_endpoint: DEFAULT_IAM_ENDPOINT.to_owned(),
        }
    }

    /// Service accounts between the caller and the target, in order (emails
    /// or `projects/-/serviceAccounts/EMAIL`).
    pub fn delegates<S: Into<String>>(mut self, delegates: impl IntoIterator<Item = S>) -> Self {
        self.delegates = delegates.into_iter().map(Into::into).collect();
        self
    }

    /// Another IAM Credentials endpoint (scheme and host), e.g. an emulator.
    pub fn iam_endpoint(mut self, url: impl Into<String>) -> Self {
        self.iam_endpoint = url.into().trim_end_matches('/').to_owned();
        self
    }

    /// The target service account's email.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The IAM Credentials endpoint (scheme and host).
    pub(crate) fn endpoint(&self) -> &str {
        &self.iam_endpoint
    }

    /// The delegates' emails.
    pub fn delegate_emails(&self) -> &[String] {
        &self.delegates
    }

    /// Reads `service_account_impersonation_url`: the endpoint and the
    /// target, the last path segment cut at the first `:`.
    pub(crate) fn from_url(url: &str) -> Result<Self, CredentialsProblem> {
        let invalid = |reason: &str| CredentialsProblem::InvalidField {
            field: "service_account_impersonation_url",
            reason: format!(
                "{reason}; want https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/EMAIL:generateAccessToken"
            ),
        };
        if !(url.starts_with("https://") || url.starts_with("http://")) {
            return Err(invalid("not an http(s) URL"));
        }
        super::endpoint::check("service_account_impersonation_url", url)?;
        let (endpoint, rest) = url
            .split_once("/v1/projects/")
            .ok_or_else(|| invalid("no /v1/projects/ path"))?;
        let (_, name) = rest
            .split_once("/serviceAccounts/")
            .ok_or_else(|| invalid("no /serviceAccounts/ segment"))?;
        let (email, method) = name
            .split_once(':')
            .ok_or_else(|| invalid("no :generateAccessToken method after the email"))?;
        if email.is_empty() || !email.contains('@') || email.contains('/') {
            return Err(invalid(
                "the segment after /serviceAccounts/ is not an email",
            ));
        }
        if !matches!(method, "generateAccessToken" | "generateIdToken") {
            return Err(invalid("the method is not generateAccessToken"));
        }
        Ok(Self::new(email).iam_endpoint(endpoint))
    }

    /// Impersonating `then` through this impersonation: this target joins
    /// the delegates.
    pub(crate) fn then(&self, then: Impersonate) -> Impersonate {
        let mut delegates = self.delegates.clone();
        delegates.push(self.target.clone());
        delegates.extend(then.delegates);
        Impersonate {
            target: then.target,
            delegates,
            iam_endpoint: then.iam_endpoint,
        }
    }
}

/// An impersonation with its source's cached access tokens.
#[derive(Clone)]
pub(crate) struct Impersonation {
    pub(crate) how: Impersonate,
    access: Cache<SourceAccess>,
}

impl Impersonation {
    pub(crate) fn new(how: Impersonate, flow: Flow, clock: Arc<dyn Clock>) -> Self {
        Self {
            how,
            access: Cache::new(SourceAccess { flow, clock }),
        }
    }

    /// The source's access token (cached), then `generateIdToken`.
    pub(crate) async fn fetch_id_token(
        &self,
        audience: &str,
        include_email: bool,
    ) -> Result<IdToken> {
        let step = "IAM generateIdToken (impersonation)";
        let url = format!(
            "{}/v1/projects/-/serviceAccounts/{}:generateIdToken",
            self.how.iam_endpoint, self.how.target
        );
        // Before the source's access token is fetched: it goes there.
        super::endpoint::check("iam_endpoint", &url).map_err(|problem| Error::Credentials {
            origin: "impersonation (--iam-endpoint, Impersonate::iam_endpoint)".into(),
            problem,
        })?;
        let access = self.access.get().await?;
        let delegates: Vec<String> = self
            .how
            .delegates
            .iter()
            .map(|d| {
                if d.starts_with("projects/") {
                    d.clone()
                } else {
                    format!("projects/-/serviceAccounts/{d}")
                }
            })
            .collect();
        let mut body = json!({"audience": audience, "includeEmail": include_email});
        if !delegates.is_empty() {
            body["delegates"] = json!(delegates);
        }
        let answer = Http::PUBLIC
            .send(
                step,
                &url,
                |c| c.post(&url).bearer_auth(access.secret()).json(&body),
                hint,
            )
            .await?;
        id_token_in(
            &answer,
            "token",
            step,
            &url,
            "check that the IAM endpoint is Google's (or the emulator)",
        )
    }
}

fn hint(status: u16, _error: Option<&str>) -> &'static str {
    match status {
        400 => {
            "IAM rejected the request; check the target email and `delegates` (each projects/-/serviceAccounts/EMAIL)"
        }
        401 => {
            "IAM did not accept the source credentials' access token; check the source credentials (e.g. `gcloud auth application-default login` again)"
        }
        403 => {
            "the caller needs roles/iam.serviceAccountTokenCreator on the target service account (and on each delegate), and the target must exist: `gcloud iam service-accounts add-iam-policy-binding TARGET --member=CALLER --role=roles/iam.serviceAccountTokenCreator`"
        }
        404 => "the target service account does not exist; check its email",
        500..=599 => "IAM Credentials failed; try again later",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::Impersonate;

    #[test]
    fn impersonation_url_gives_endpoint_and_target() {
        let how = Impersonate::from_url(
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
        )
        .expect("a good URL parses");
        assert_eq!(how.target(), "sa@p.iam.gserviceaccount.com");
        assert_eq!(how.iam_endpoint, "https://iamcredentials.googleapis.com");
    }

    #[test]
    fn malformed_impersonation_urls_are_refused() {
        for bad in [
            "iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@b:generateAccessToken",
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@b",
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/:generateAccessToken",
            "https://iamcredentials.googleapis.com/v1/projects/-/serviceAccounts/a@b:sign",
            "https://example.com/token",
        ] {
            assert!(Impersonate::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn chaining_puts_the_first_target_among_the_delegates() {
        let first = Impersonate::new("a@x").delegates(["d@x"]);
        let chained = first.then(Impersonate::new("b@x"));
        assert_eq!(chained.target(), "b@x");
        assert_eq!(chained.delegate_emails(), ["d@x", "a@x"]);
    }
}
