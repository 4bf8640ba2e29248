//! One module per subcommand: its arguments and `run()`.

pub(crate) mod curl;
pub(crate) mod demo;
pub(crate) mod emulator;
pub(crate) mod token;

use std::path::Path;

use idtoken::{Credentials, Env};

/// Credentials from `--credentials FILE`, else Application Default Credentials.
pub(crate) async fn load_credentials(file: Option<&Path>) -> Result<Credentials, idtoken::Error> {
    match file {
        Some(path) => Credentials::from_file(path),
        None => Credentials::discover_with(&Env::from_process()).await,
    }
}

/// A time as RFC 3339 (UTC, seconds).
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
