//! `idtoken token`: print an ID token, like `gcloud auth print-identity-token`.

use std::time::SystemTime;

use clap::ValueEnum;
use idtoken::{Format, TokenOptions};
use serde_json::json;

use crate::Failure;

/// Arguments of `idtoken token`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The audience: the URL of the service the token is for.
    #[arg(long, short = 'a')]
    audience: Option<String>,
    /// Token format (metadata server): `full` adds email and instance claims.
    #[arg(long, value_enum, default_value_t = FormatArg::Standard)]
    format: FormatArg,
    /// Include license claims (metadata server, with `--format full`).
    #[arg(long)]
    licenses: bool,
    #[command(flatten)]
    creds: super::CredsArgs,
    #[command(flatten)]
    cache: super::CacheArgs,
    /// Print the token, its expiry and its claims as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum FormatArg {
    Standard,
    Full,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let audience = args.audience.ok_or_else(|| {
        Failure::new(
            crate::exit::USAGE,
            "--audience is required: the URL of the service you will call (e.g. https://SERVICE-HASH-REGION.a.run.app)",
        )
    })?;
    if args.licenses && matches!(args.format, FormatArg::Standard) {
        return Err(Failure::new(
            crate::exit::USAGE,
            "--licenses needs --format full",
        ));
    }
    let creds = args.creds.resolve()?;
    let options = TokenOptions::default()
        .format(match args.format {
            FormatArg::Standard => Format::Standard,
            FormatArg::Full => Format::Full,
        })
        .licenses(args.licenses)
        .include_email(args.creds.include_email);
    let got = creds
        .token(&audience, &options, &args.cache.resolve())
        .await?;
    got.warn_if_client_id_audience(&audience);
    let token = &got.token;
    if args.json {
        let expires_in = token
            .expires_at()
            .duration_since(SystemTime::now())
            .map_or(0, |d| d.as_secs());
        let out = json!({
            "token": token.as_str(),
            "expires_at": super::rfc3339(token.expires_at()),
            "expires_in": expires_in,
            "credentials": got.origin,
            "audience_is_client_id": got.audience_is_client_id,
            "from_cache": got.from_cache,
            "claims": token.claims().to_json(),
        });
        println!("{out:#}");
    } else {
        println!("{}", token.as_str());
    }
    Ok(())
}
