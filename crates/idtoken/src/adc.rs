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
use std::time::{Duration, Instant};

use crate::credentials::{Credentials, metadata_probe};
use crate::env::Env;
use crate::error::{Error, Result};

const DEFAULT_METADATA_IP: &str = "169.254.169.254";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// What Application Default Credentials looked at, in order, and what each
/// place gave: the report behind `idtoken doctor`.
///
/// Made by [`Credentials::discover_explained`]. Holds no secrets (paths,
/// hosts and outcomes only).
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Discovery {
    /// Each place looked at, in order.
    pub steps: Vec<DiscoveryStep>,
}

/// One place discovery looked at.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DiscoveryStep {
    /// The place: `GOOGLE_APPLICATION_CREDENTIALS`, `gcloud credentials file`
    /// or `metadata server`.
    pub place: &'static str,
    /// What was found, for people (a path, a host, or why nothing).
    pub outcome: String,
    /// How long looking took (the metadata probe's round trips).
    pub elapsed: Duration,
    /// True for the step whose credentials were chosen.
    pub chosen: bool,
}

impl Discovery {
    fn push(&mut self, place: &'static str, outcome: String, started: Instant, chosen: bool) {
        self.steps.push(DiscoveryStep {
            place,
            outcome,
            elapsed: started.elapsed(),
            chosen,
        });
    }

    fn tried(&self) -> Vec<String> {
        self.steps
            .iter()
            .map(|s| {
                if s.place == "metadata server" {
                    s.outcome.clone()
                } else {
                    format!("{}: {}", s.place, s.outcome)
                }
            })
            .collect()
    }
}

const GAC: &str = "GOOGLE_APPLICATION_CREDENTIALS";
const GCLOUD: &str = "gcloud credentials file";
const METADATA: &str = "metadata server";

pub(crate) async fn discover(env: &Env) -> (Result<Credentials>, Discovery) {
    let mut report = Discovery::default();
    let result = discover_into(env, &mut report).await;
    (result, report)
}

async fn discover_into(env: &Env, report: &mut Discovery) -> Result<Credentials> {
    let started = Instant::now();
    if let Some(path) = env.get(GAC) {
        let found = Credentials::from_file_via(Path::new(path), GAC);
        let outcome = match &found {
            Ok(c) => format!("{path}: {}", c.kind()),
            Err(e) => format!("{path}: unusable ({e})"),
        };
        report.push(GAC, outcome, started, found.is_ok());
        return found;
    }
    report.push(GAC, "not set".into(), started, false);

    let started = Instant::now();
    match env.gcloud_adc_file() {
        Some(path) if path.exists() => {
            let found = Credentials::from_file_via(&path, "gcloud application-default credentials");
            let outcome = match &found {
                Ok(c) => format!("{}: {}", path.display(), c.kind()),
                Err(e) => format!("{}: unusable ({e})", path.display()),
            };
            report.push(GCLOUD, outcome, started, found.is_ok());
            return found;
        }
        Some(path) => report.push(
            GCLOUD,
            format!("{}: not found", path.display()),
            started,
            false,
        ),
        None => report.push(
            GCLOUD,
            "neither CLOUDSDK_CONFIG nor HOME is set".into(),
            started,
            false,
        ),
    }

    let started = Instant::now();
    let detection = env.get("METADATA_SERVER_DETECTION").unwrap_or("");
    let explicit = env.get("GCE_METADATA_HOST");
    match detection {
        "none" => {
            report.push(
                METADATA,
                "metadata server: skipped (METADATA_SERVER_DETECTION=none)".into(),
                started,
                false,
            );
            return Err(Error::NoCredentials {
                tried: report.tried(),
            });
        }
        "assume-present" => {
            let host = explicit.unwrap_or(DEFAULT_METADATA_HOST);
            report.push(
                METADATA,
                format!("metadata server at http://{host}: assumed present (METADATA_SERVER_DETECTION=assume-present), not probed"),
                started,
                true,
            );
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
        Ok(creds) => {
            report.push(
                METADATA,
                format!("{}: answered", creds.origin()),
                started,
                true,
            );
            Ok(creds)
        }
        Err(why) => {
            report.push(METADATA, why, started, false);
            Err(Error::NoCredentials {
                tried: report.tried(),
            })
        }
    }
}
