//! [`Credentials::flow_description`]: how tokens will be minted, in words,
//! for `idtoken doctor` and logs.

use super::{Credentials, Flow, endpoint};

impl Credentials {
    /// The endpoints these credentials send secrets to (refresh tokens,
    /// signed assertions, access and subject tokens) that are not Google's:
    /// outside `googleapis.com` and the file's `universe_domain`. Each as
    /// the field that names it and its URL; the metadata server is not
    /// listed; a `universe_domain` other than `googleapis.com` is listed
    /// too, as it vouches for endpoints under it. A credentials file from
    /// someone else can name any endpoint,
    /// as with Google's own libraries: `idtoken doctor` warns about these.
    ///
    /// ```
    /// let json = br#"{"type": "authorized_user", "client_id": "c", "client_secret": "s",
    ///     "refresh_token": "r", "token_uri": "https://collector.example/token"}"#;
    /// let creds = idtoken::Credentials::from_json(json, "test").unwrap();
    /// assert_eq!(creds.endpoints_outside_google(),
    ///     [("token_uri", "https://collector.example/token".to_owned())]);
    /// ```
    pub fn endpoints_outside_google(&self) -> Vec<(&'static str, String)> {
        let mut all: Vec<(&'static str, &str)> = match &self.inner.flow {
            Flow::ServiceAccount(sa) => vec![("token_uri", sa.token_uri())],
            Flow::AuthorizedUser(user) => vec![("token_uri", user.token_uri())],
            Flow::ExternalAccount(ea) => ea.endpoints(),
            Flow::ExternalAuthorizedUser(u) => vec![("token_url", u.token_url())],
            Flow::Metadata(_) => Vec::new(),
        };
        if let Some(imp) = &self.inner.impersonation {
            all.push(("IAM endpoint", imp.how.endpoint()));
        }
        let universe = self.inner.universe_domain.as_deref();
        let mut outside: Vec<(&'static str, String)> = all
            .into_iter()
            .filter(|(_, url)| !endpoint::is_google(url, universe))
            .map(|(field, url)| (field, url.to_owned()))
            .collect();
        // The same file names the universe: one that is not Google's own
        // is worth a look in itself, since it hides its endpoints above.
        if let Some(domain) = universe
            && !domain.eq_ignore_ascii_case("googleapis.com")
        {
            outside.insert(0, ("universe_domain", domain.to_owned()));
        }
        outside
    }

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
                "external account of {} ({}): subject token, then STS token exchange",
                ea.audience(),
                ea.source_description()
            ),
            Flow::ExternalAuthorizedUser(u) if u.audience().is_empty() => {
                "workforce user credentials: STS refresh grant".to_owned()
            }
            Flow::ExternalAuthorizedUser(u) => {
                format!("workforce user of {}: STS refresh grant", u.audience())
            }
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
            (None, Flow::ExternalAuthorizedUser(_)) => {
                format!("{base}; no ID token possible without --impersonate-service-account")
            }
        }
    }
}
