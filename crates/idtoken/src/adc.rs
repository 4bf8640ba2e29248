//! Application Default Credentials: where credentials come from, in the
//! order every Google library uses (PROTOCOL.md, "ADC").
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS` (a missing file is an error, not a
//!    fall-through);
//! 2. gcloud's `application_default_credentials.json`;
//! 3. the metadata server (`GCE_METADATA_HOST`, else the link-local address
//!    and `metadata.google.internal`), detected with a short bounded probe.
//!    `METADATA_SERVER_DETECTION=none` skips it, `assume-present` trusts it
//!    without probing.

use std::path::Path;

use crate::credentials::{Credentials, metadata_probe};
use crate::env::Env;
use crate::error::{Error, Result};

const DEFAULT_METADATA_IP: &str = "169.254.169.254";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

pub(crate) async fn discover(env: &Env) -> Result<Credentials> {
    let mut tried = Vec::new();
    if let Some(path) = env.get("GOOGLE_APPLICATION_CREDENTIALS") {
        return Credentials::from_file_via(Path::new(path), "GOOGLE_APPLICATION_CREDENTIALS");
    }
    tried.push("GOOGLE_APPLICATION_CREDENTIALS: not set".to_owned());

    match env.gcloud_adc_file() {
        Some(path) if path.exists() => {
            return Credentials::from_file_via(&path, "gcloud application-default credentials");
        }
        Some(path) => tried.push(format!(
            "gcloud credentials file {}: not found",
            path.display()
        )),
        None => {
            tried.push("gcloud credentials file: neither CLOUDSDK_CONFIG nor HOME is set".into())
        }
    }

    let detection = env.get("METADATA_SERVER_DETECTION").unwrap_or("");
    let explicit = env.get("GCE_METADATA_HOST");
    match detection {
        "none" => {
            tried.push("metadata server: skipped (METADATA_SERVER_DETECTION=none)".into());
            return Err(Error::NoCredentials { tried });
        }
        "assume-present" => {
            let host = explicit.unwrap_or(DEFAULT_METADATA_HOST);
            return Ok(Credentials::metadata_server(host));
        }
        _ => {}
    }

    let found = if let Some(host) = explicit {
        metadata_probe(host).await
    } else {
        let ip = env.get("GCE_METADATA_IP").unwrap_or(DEFAULT_METADATA_IP);
        // Probe the address and the DNS name side by side, as Go does: off
        // Google Cloud both fail, and waiting for one after the other
        // doubles the time to the error.
        match tokio::join!(metadata_probe(ip), metadata_probe(DEFAULT_METADATA_HOST)) {
            (Ok(creds), _) | (_, Ok(creds)) => Ok(creds),
            (Err(a), Err(b)) => Err(format!("{a}\n  - {b}")),
        }
    };
    match found {
        Ok(creds) => Ok(creds),
        Err(why) => {
            tried.push(why);
            Err(Error::NoCredentials { tried })
        }
    }
}
