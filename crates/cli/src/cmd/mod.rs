//! One module per subcommand: its arguments and `run()`.

pub(crate) mod curl;
pub(crate) mod decode;
pub(crate) mod demo;
pub(crate) mod emulator;
pub(crate) mod token;
pub(crate) mod verify;

use std::path::Path;

use idtoken::{Credentials, Env};

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
                .map_err(|e| Failure::new(1, format!("cannot read the token from stdin: {e}")))?;
            buf
        }
    };
    let text = text.trim();
    let text = text.strip_prefix("Bearer ").unwrap_or(text).trim();
    if text.is_empty() {
        return Err(Failure::new(
            2,
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

/// A time as RFC 3339 (UTC, seconds).
pub(crate) fn rfc3339(t: std::time::SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}
