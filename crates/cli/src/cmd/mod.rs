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
use std::time::SystemTime;

use idtoken::{Credentials, CredentialsKind, Env, IdToken, Impersonate, TokenOptions};

use crate::token_cache::{self, Cache, Slot, Source};

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

/// How an error names the setting it refuses: as a flag (`--listen`), or
/// as a key of a config file (`listen`: `idtoken proxy --config`, whose
/// keys are the flags' names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Naming {
    /// `--NAME`.
    Flags,
    /// `NAME`.
    Keys,
}

impl Naming {
    /// `name` (a flag's name without `--`) as the user wrote it.
    pub(crate) fn name(self, name: &str) -> String {
        match self {
            Naming::Flags => format!("--{name}"),
            Naming::Keys => name.to_owned(),
        }
    }
}

impl CredsArgs {
    /// Checks the flags and reads the impersonation chain, without reading
    /// any file or asking any server.
    pub(crate) fn resolve(&self) -> Result<CredsConfig, crate::Failure> {
        self.resolve_named(Naming::Flags)
    }

    /// [`resolve`](Self::resolve), its errors naming the settings as
    /// `naming` says (a config file's keys, or flags).
    pub(crate) fn resolve_named(&self, naming: Naming) -> Result<CredsConfig, crate::Failure> {
        let impersonate = match &self.impersonate_service_account {
            Some(chain) => {
                Some(impersonation_named(chain, naming)?.iam_endpoint(&self.iam_endpoint))
            }
            None if self.include_email => {
                return Err(crate::Failure::new(
                    crate::exit::USAGE,
                    format!(
                        "{} needs {} (other flows decide on email themselves)",
                        naming.name("include-email"),
                        naming.name("impersonate-service-account")
                    ),
                ));
            }
            None => None,
        };
        Ok(CredsConfig {
            file: self.credentials.clone(),
            impersonate,
            iam_endpoint: self.iam_endpoint.clone(),
            include_email: self.include_email,
        })
    }
}

/// [`CredsArgs`] resolved: where credentials come from and whom they
/// impersonate.
#[derive(Debug, Clone)]
pub(crate) struct CredsConfig {
    /// `--credentials`; `None` means Application Default Credentials.
    pub(crate) file: Option<PathBuf>,
    pub(crate) impersonate: Option<Impersonate>,
    /// `--iam-endpoint`, which the token cache keys on.
    pub(crate) iam_endpoint: String,
    pub(crate) include_email: bool,
}

impl CredsConfig {
    /// The credentials, impersonating when asked. Only I/O can fail here:
    /// the file, discovery. A file the token cache already read is parsed
    /// from those bytes (so the bytes keyed are the bytes that mint); the
    /// metadata server, and anything the cache could not read, go through
    /// the library's own loading and discovery.
    pub(crate) async fn load_from(
        &self,
        source: Option<&Source>,
    ) -> Result<Credentials, crate::Failure> {
        Ok(self.impersonating(self.load_base_from(source).await?))
    }

    /// [`load_from`](Self::load_from) without the impersonation: the
    /// credentials several token sources can share, each impersonating
    /// whom it asks ([`impersonating`](Self::impersonating)).
    pub(crate) async fn load_base_from(
        &self,
        source: Option<&Source>,
    ) -> Result<Credentials, crate::Failure> {
        Ok(match source {
            Some(Source::File { bytes, origin, .. }) => Credentials::from_json(bytes, origin)?,
            Some(Source::Metadata { .. }) | None => load_credentials(self.file.as_deref()).await?,
        })
    }

    /// `base` with this config's impersonation on top, if any.
    pub(crate) fn impersonating(&self, base: Credentials) -> Credentials {
        match &self.impersonate {
            Some(how) => base.impersonate(how.clone()),
            None => base,
        }
    }

    /// Where the credentials come from, as the token cache keys them;
    /// `None` when the cache is off or cannot tell without the network.
    pub(crate) fn source(&self, cache: &Cache) -> Option<Source> {
        cache.folder()?;
        match &self.file {
            Some(path) => Source::resolve(Some(path), &Env::empty()),
            None => Source::resolve(None, &Env::from_process()),
        }
    }

    /// This request's entry in the token cache.
    pub(crate) fn slot(
        &self,
        cache: &Cache,
        source: &Source,
        audience: &str,
        options: &TokenOptions,
    ) -> Option<Slot> {
        let request = token_cache::Request {
            audience,
            options,
            impersonate: self.impersonate.as_ref(),
            iam_endpoint: &self.iam_endpoint,
        };
        Slot::new(cache, source, &request)
    }

    /// A token for `audience`: from the token cache when it holds one
    /// with more than the refresh margin left, else minted (and stored).
    pub(crate) async fn token(
        &self,
        audience: &str,
        options: &TokenOptions,
        cache: &Cache,
    ) -> Result<Obtained, crate::Failure> {
        let source = self.source(cache);
        let slot = source
            .as_ref()
            .and_then(|s| self.slot(cache, s, audience, options));
        if let Some(entry) = slot.as_ref().and_then(|s| s.lookup(SystemTime::now())) {
            return Ok(Obtained {
                token: entry.token,
                origin: entry.facts.origin,
                audience_is_client_id: entry.facts.audience_is_client_id,
                from_cache: true,
            });
        }
        let creds = self.load_from(source.as_ref()).await?;
        let token = creds.fetch_id_token(audience, options).await?;
        // Discovery found something other than the metadata server the
        // key names (a gcloud file appeared): keep it out of that entry.
        let same_source = !matches!(source, Some(Source::Metadata { .. }))
            || creds.kind() == CredentialsKind::MetadataServer;
        if let Some(slot) = slot.filter(|_| same_source) {
            slot.store(&creds, &token, &token_cache::format_name(options.format));
        }
        Ok(Obtained {
            origin: creds.origin().to_owned(),
            audience_is_client_id: token.audience_is_client_id(),
            token,
            from_cache: false,
        })
    }

    /// Token options the flags ask for.
    pub(crate) fn token_options(&self) -> idtoken::TokenOptions {
        idtoken::TokenOptions::default().include_email(self.include_email)
    }
}

/// A token and what is known of where it came from.
pub(crate) struct Obtained {
    pub(crate) token: IdToken,
    /// `Credentials::origin`, from the credentials or the cache entry.
    pub(crate) origin: String,
    /// The token's `aud` is an OAuth client id (gcloud user credentials).
    pub(crate) audience_is_client_id: bool,
    pub(crate) from_cache: bool,
}

impl Obtained {
    /// Warns on stderr when the token's `aud` is an OAuth client id.
    pub(crate) fn warn_if_client_id_audience(&self, asked: &str) {
        if self.audience_is_client_id {
            warn_client_id_audience(&self.token, asked);
        }
    }
}

/// `--no-cache`, for the subcommands that use the token cache.
#[derive(clap::Args, Debug, Clone, Default)]
pub(crate) struct CacheArgs {
    /// Neither read nor write the token cache (also: IDTOKEN_NO_CACHE=1).
    #[arg(long)]
    pub no_cache: bool,
}

impl CacheArgs {
    /// Where the cache is, or why it is off.
    pub(crate) fn resolve(&self) -> Cache {
        Cache::locate(self.no_cache)
    }
}

/// Reads `a@x,b@x,target@x`: delegates then the target.
pub(crate) fn impersonation(chain: &str) -> Result<Impersonate, crate::Failure> {
    impersonation_named(chain, Naming::Flags)
}

fn impersonation_named(chain: &str, naming: Naming) -> Result<Impersonate, crate::Failure> {
    let mut emails: Vec<&str> = chain.split(',').map(str::trim).collect();
    if emails.iter().any(|e| !e.contains('@')) {
        return Err(crate::Failure::new(
            crate::exit::USAGE,
            format!(
                "{} {chain:?}: want service account emails, comma-separated",
                naming.name("impersonate-service-account")
            ),
        ));
    }
    let target = emails.pop().unwrap_or_default();
    Ok(Impersonate::new(target).delegates(emails))
}

/// Warns on stderr when the token's `aud` is an OAuth client id.
pub(crate) fn warn_if_client_id_audience(token: &IdToken, asked: &str) {
    if token.audience_is_client_id() {
        warn_client_id_audience(token, asked);
    }
}

/// The warning itself, for a token known to carry the client id (a token
/// read back from the cache no longer knows it).
pub(crate) fn warn_client_id_audience(token: &IdToken, asked: &str) {
    eprintln!(
        "idtoken: warning: gcloud user credentials give a token whose aud is the OAuth client id ({}), not {asked}; Cloud Run accepts it for users with the invoker role, IAP and services that check aud refuse it. Add --impersonate-service-account EMAIL for a token with the requested audience.",
        token.claims().aud.as_deref().unwrap_or("?")
    );
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
