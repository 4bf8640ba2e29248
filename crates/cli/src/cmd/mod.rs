//! One module per subcommand: its arguments and `run()`.

pub(crate) mod curl;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod doctor;
pub(crate) mod emulator;
pub(crate) mod proxy;
pub(crate) mod shell;
pub(crate) mod token;
pub(crate) mod verify;

use std::path::{Path, PathBuf};

use idtoken::{Credentials, Env, IdToken, Impersonate};

pub(crate) use decode::render::rfc3339;

/// Where credentials come from and whom they impersonate; shared by the
/// subcommands that mint tokens.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct CredsArgs {
    /// A credentials JSON file instead of Application Default Credentials.
    #[arg(long, value_name = "FILE")]
    pub credentials: Option<PathBuf>,
    /// Impersonate this service account (IAM generateIdToken), as gcloud's
    /// flag does: a comma-separated chain whose last email is the target and
    /// whose earlier emails are delegates, in order.
    #[arg(long, value_name = "EMAIL[,EMAIL...]")]
    pub impersonate_service_account: Option<String>,
    /// With impersonation: put `email` and `email_verified` in the token.
    #[arg(long)]
    pub include_email: bool,
    /// IAM Credentials endpoint for --impersonate-service-account (e.g. an
    /// emulator); gcloud's override variable sets it too.
    #[arg(long, value_name = "URL", env = IAM_ENDPOINT_OVERRIDE,
          default_value = idtoken::DEFAULT_IAM_ENDPOINT)]
    pub iam_endpoint: String,
}

/// gcloud's override of the IAM Credentials endpoint (its property
/// `api_endpoint_overrides/iamcredentials`): the default of
/// `--iam-endpoint`, and what `idtoken emulator` exports.
pub(crate) const IAM_ENDPOINT_OVERRIDE: &str = "CLOUDSDK_API_ENDPOINT_OVERRIDES_IAMCREDENTIALS";
/// The key set `idtoken verify` uses unless `--jwks-url` says otherwise.
pub(crate) const JWKS_URL_OVERRIDE: &str = "IDTOKEN_JWKS_URL";
/// The same for `idtoken verify --iap`.
pub(crate) const IAP_JWKS_URL_OVERRIDE: &str = "IDTOKEN_IAP_JWKS_URL";

/// The variables that point the CLI at other endpoints than Google's, and
/// what each changes, for `idtoken doctor` (the library's own, such as
/// `GCE_METADATA_HOST`, are in `idtoken::Env::VARIABLES`).
pub(crate) const ENDPOINT_OVERRIDES: &[(&str, &str)] = &[
    (
        IAM_ENDPOINT_OVERRIDE,
        "IAM Credentials endpoint for impersonation (--iam-endpoint)",
    ),
    (
        JWKS_URL_OVERRIDE,
        "key set for `idtoken verify` (--jwks-url)",
    ),
    (
        IAP_JWKS_URL_OVERRIDE,
        "key set for `idtoken verify --iap` (--jwks-url)",
    ),
];

impl CredsArgs {
    /// Checks the flags and reads the impersonation chain, without reading
    /// any file or asking any server.
    pub(crate) fn resolve(&self) -> Result<CredsConfig, crate::Failure> {
        let impersonate = match &self.impersonate_service_account {
            Some(chain) => Some(impersonation(chain)?.iam_endpoint(&self.iam_endpoint)),
            None if self.include_email => {
                return Err(crate::Failure::new(
                    crate::exit::USAGE,
                    "--include-email needs --impersonate-service-account (other flows decide on email themselves)",
                ));
            }
            None => None,
        };
        Ok(CredsConfig {
            file: self.credentials.clone(),
            impersonate,
            include_email: self.include_email,
        })
    }

    /// The credentials, impersonating when asked.
    pub(crate) async fn load(&self) -> Result<Credentials, crate::Failure> {
        self.resolve()?.load().await
    }
}

/// [`CredsArgs`] resolved: where credentials come from and whom they
/// impersonate.
#[derive(Debug, Clone)]
pub(crate) struct CredsConfig {
    /// `--credentials`; `None` means Application Default Credentials.
    pub(crate) file: Option<PathBuf>,
    pub(crate) impersonate: Option<Impersonate>,
    pub(crate) include_email: bool,
}

impl CredsConfig {
    /// The credentials, impersonating when asked. Only I/O can fail here:
    /// the file, discovery.
    pub(crate) async fn load(&self) -> Result<Credentials, crate::Failure> {
        let creds = load_credentials(self.file.as_deref()).await?;
        Ok(match &self.impersonate {
            Some(how) => creds.impersonate(how.clone()),
            None => creds,
        })
    }

    /// Token options the flags ask for.
    pub(crate) fn token_options(&self) -> idtoken::TokenOptions {
        idtoken::TokenOptions::default().include_email(self.include_email)
    }
}

/// Reads `a@x,b@x,target@x`: delegates then the target.
pub(crate) fn impersonation(chain: &str) -> Result<Impersonate, crate::Failure> {
    let mut emails: Vec<&str> = chain.split(',').map(str::trim).collect();
    if emails.iter().any(|e| !e.contains('@')) {
        return Err(crate::Failure::new(
            crate::exit::USAGE,
            format!(
                "--impersonate-service-account {chain:?}: want service account emails, comma-separated"
            ),
        ));
    }
    let target = emails.pop().unwrap_or_default();
    Ok(Impersonate::new(target).delegates(emails))
}

/// Warns on stderr when the token's `aud` is an OAuth client id.
pub(crate) fn warn_if_client_id_audience(token: &IdToken, asked: &str) {
    if token.audience_is_client_id() {
        eprintln!(
            "idtoken: warning: gcloud user credentials give a token whose aud is the OAuth client id ({}), not {asked}; Cloud Run accepts it for users with the invoker role, IAP and services that check aud refuse it. Add --impersonate-service-account EMAIL for a token with the requested audience.",
            token.claims().aud.as_deref().unwrap_or("?")
        );
    }
}

use crate::Failure;

/// The token from the argument, or from stdin when it is `-` or absent;
/// surrounding whitespace and a leading `Bearer ` are dropped.
pub(crate) async fn read_token(arg: Option<&str>) -> Result<String, Failure> {
    use tokio::io::AsyncReadExt as _;
    let text = match arg {
        Some(t) if t != "-" => t.to_owned(),
        _ => {
            let mut buf = String::new();
            tokio::io::stdin()
                .take(1024 * 1024)
                .read_to_string(&mut buf)
                .await
                .map_err(|e| {
                    Failure::new(
                        crate::exit::FAILURE,
                        format!("cannot read the token from stdin: {e}"),
                    )
                })?;
            buf
        }
    };
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").unwrap_or(text).trim();
    if text.is_empty() {
        return Err(Failure::new(
            crate::exit::USAGE,
            "no token given (as an argument or on stdin)",
        ));
    }
    Ok(text.to_owned())
}

/// Credentials from `--credentials FILE`, else Application Default Credentials.
pub(crate) async fn load_credentials(file: Option<&Path>) -> Result<Credentials, idtoken::Error> {
    match file {
        Some(path) => Credentials::from_file(path),
        None => Credentials::discover_with(&Env::from_process()).await,
    }
}

#[cfg(test)]
mod tests {
    use super::impersonation;

    #[test]
    fn impersonation_chain_ends_with_the_target() {
        let how = impersonation("a@x, b@x,t@x").expect("parses");
        assert_eq!(how.target(), "t@x");
        assert_eq!(how.delegate_emails(), ["a@x", "b@x"]);
        assert!(impersonation("t@x,").is_err());
    }
}
