//! `idtoken verify`: check a token as a receiving service would and print
//! its claims; exit 1 with the reason when it is refused.

use std::time::Duration;

use idtoken::Verifier;

use crate::Failure;

/// Arguments of `idtoken verify`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The token (a leading `Bearer ` is ignored); `-` or nothing reads stdin.
    token: Option<String>,
    /// An audience to accept (repeat for several): your service's URL, or
    /// for IAP `/projects/NUM/global/backendServices/ID` or `/projects/NUM/apps/PROJECT`.
    #[arg(long, short = 'a', required = true)]
    audience: Vec<String>,
    /// Verify an IAP assertion (ES256, IAP's key set) instead of a Google ID token.
    #[arg(long)]
    iap: bool,
    /// An issuer to accept instead of the defaults (repeat for several).
    #[arg(long)]
    issuer: Vec<String>,
    /// Accept only this email (repeat for several); `@domain` accepts a domain.
    #[arg(long)]
    email: Vec<String>,
    /// The key set URL [default: $IDTOKEN_JWKS_URL (--iap: $IDTOKEN_IAP_JWKS_URL), else Google's].
    #[arg(long, value_name = "URL")]
    jwks_url: Option<String>,
    /// Allowed clock skew, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    skew: u64,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let token = super::read_token(args.token.as_deref()).await?;
    let mut b = if args.iap {
        Verifier::iap()
    } else {
        Verifier::builder()
    };
    for a in args.audience {
        b = b.audience(a);
    }
    if !args.issuer.is_empty() {
        b = b.issuers(args.issuer);
    }
    for e in args.email {
        b = match e.strip_prefix('@') {
            Some(domain) => b.allow_email_domain(domain),
            None => b.allow_email(e),
        };
    }
    let env_name = if args.iap {
        super::IAP_JWKS_URL_OVERRIDE
    } else {
        super::JWKS_URL_OVERRIDE
    };
    if let Some(url) = args
        .jwks_url
        .or_else(|| std::env::var(env_name).ok().filter(|u| !u.is_empty()))
    {
        b = b.jwks_url(url);
    }
    let verifier = b.skew(Duration::from_secs(args.skew)).build()?;
    let claims = verifier
        .verify(&token)
        .await
        .map_err(|e| Failure::new(crate::exit::FAILURE, format!("token refused: {e}")))?;
    let text = serde_json::to_string_pretty(&claims.to_json()).map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot print the claims: {e}"),
        )
    })?;
    println!("{text}");
    Ok(())
}
