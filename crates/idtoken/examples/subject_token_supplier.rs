//! Workload identity federation without a credentials file: the subject
//! token comes from the program (here a file a sidecar keeps fresh; a
//! secret manager or an HTTP call works the same way).
//!
//! ```text
//! cargo run -p idtoken --example subject_token_supplier -- \
//!     AUDIENCE_URL POOL_PROVIDER SERVICE_ACCOUNT_EMAIL TOKEN_FILE
//! ```
//!
//! POOL_PROVIDER is `//iam.googleapis.com/projects/NUMBER/locations/global/workloadIdentityPools/POOL/providers/PROVIDER`.
//! Against the emulator, set `IDTOKEN_STS_URL` and `IDTOKEN_IAM_URL` to its
//! base URL (`idtoken emulator` prints it).

use std::path::PathBuf;

use idtoken::external_account::{
    Builder, SubjectTokenContext, SubjectTokenSupplier, SupplierFuture,
};

/// The subject token a sidecar writes to a file.
struct SidecarFile(PathBuf);

impl SubjectTokenSupplier for SidecarFile {
    fn subject_token<'a>(&'a self, _context: &'a SubjectTokenContext) -> SupplierFuture<'a> {
        Box::pin(async move {
            let text = std::fs::read_to_string(&self.0)
                .map_err(|e| format!("reading {}: {e}", self.0.display()))?;
            Ok(text.trim().to_owned())
        })
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [audience, provider, email, token_file] = args.as_slice() else {
        return Err("usage: subject_token_supplier AUDIENCE_URL POOL_PROVIDER SERVICE_ACCOUNT_EMAIL TOKEN_FILE".into());
    };
    let sts = std::env::var("IDTOKEN_STS_URL")
        .map(|base| format!("{base}/v1/token"))
        .unwrap_or_else(|_| "https://sts.googleapis.com/v1/token".into());
    let iam = std::env::var("IDTOKEN_IAM_URL")
        .unwrap_or_else(|_| "https://iamcredentials.googleapis.com".into());
    let creds = Builder::new(provider.as_str(), "urn:ietf:params:oauth:token-type:jwt")
        .token_url(sts)
        .service_account_impersonation_url(format!(
            "{iam}/v1/projects/-/serviceAccounts/{email}:generateAccessToken"
        ))
        .subject_token_supplier(SidecarFile(PathBuf::from(token_file)))
        .build()?;
    let token = creds.token_source(audience.as_str()).token().await?;
    println!("{}", token.as_str());
    Ok(())
}
