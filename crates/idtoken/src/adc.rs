//! Application Default Credentials: where credentials come from, in the
//! order every Google library uses (docs/PROTOCOL.md, "ADC").
//!
//! 1. `GOOGLE_APPLICATION_CREDENTIALS` (a missing file is an error, not a
//!    fall-through);
//! 2. gcloud's `application_default_credentials.json`;
//! 3. the metadata server (`GCE_METADATA_HOST`, else the link-local address
//!    and `metadata.google.internal`), detected with a short bounded probe.
//!    As Google's libraries do: `METADATA_SERVER_DETECTION=none` (or
//!    Python's and Java's `NO_GCE_CHECK=true`) skips it, `assume-present`
//!    trusts it without probing, `bios-only` trusts the firmware vendor,
//!    `ping-only` probes; any other value is an error. Unset, and without
//!    `GCE_METADATA_HOST`, a serverless runtime's variable (`K_SERVICE`,
//!    `FUNCTION_NAME`, `CLOUD_RUN_JOB`) or a Google BIOS means the server is
//!    there (as Node does); otherwise it is probed.

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
    let explicit = env.get("GCE_METADATA_HOST");
    match detection(env)? {
        Detection::Skip(why) => {
            report.push(
                METADATA,
                format!("metadata server: skipped ({why})"),
                started,
                false,
            );
            return Err(Error::NoCredentials {
                tried: report.tried(),
            });
        }
        Detection::Assume(why) => {
            let host = explicit.unwrap_or(DEFAULT_METADATA_HOST);
            report.push(
                METADATA,
                format!("metadata server at http://{host}: assumed present ({why}), not probed"),
                started,
                true,
            );
            return Ok(Credentials::metadata_server(host));
        }
        Detection::Probe => {}
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

/// How discovery decides whether a metadata server is there.
enum Detection {
    /// Not there; the reason, for the report.
    Skip(String),
    /// There, without probing; the reason.
    Assume(String),
    /// Probe it.
    Probe,
}

/// The variables of the same names in Google's libraries decide, in this
/// order: `METADATA_SERVER_DETECTION` (Node, Go), `NO_GCE_CHECK` (Python,
/// Java), a serverless runtime's variables and the BIOS vendor (Node).
fn detection(env: &Env) -> Result<Detection> {
    const VAR: &str = "METADATA_SERVER_DETECTION";
    let google_bios = env
        .bios_vendor()
        .is_some_and(|v| v.to_ascii_lowercase().contains("google"));
    match env.get(VAR) {
        Some("none") => return Ok(Detection::Skip(format!("{VAR}=none"))),
        Some("assume-present") => return Ok(Detection::Assume(format!("{VAR}=assume-present"))),
        Some("ping-only") => return Ok(Detection::Probe),
        Some("bios-only") if google_bios => {
            return Ok(Detection::Assume(format!(
                "{VAR}=bios-only and the BIOS vendor is Google"
            )));
        }
        Some("bios-only") => {
            let vendor = env.bios_vendor().unwrap_or("unknown");
            return Ok(Detection::Skip(format!(
                "{VAR}=bios-only and the BIOS vendor is {vendor}, not Google"
            )));
        }
        Some(other) => {
            return Err(Error::InvalidEnvironment {
                variable: VAR,
                value: other.to_owned(),
                expected: "none, assume-present, bios-only, ping-only",
                next: "unset it to probe for the metadata server",
            });
        }
        None => {}
    }
    if env
        .get("NO_GCE_CHECK")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
    {
        return Ok(Detection::Skip("NO_GCE_CHECK=true".into()));
    }
    // A host named in GCE_METADATA_HOST (an emulator, a proxy) is probed:
    // the machine's residency says nothing about it.
    if env.get("GCE_METADATA_HOST").is_some() {
        return Ok(Detection::Probe);
    }
    // Cloud Run, Cloud Functions and Cloud Run jobs always have one; a
    // probe there only adds start-up latency (and a spurious failure when
    // the server is slow to answer at a cold start).
    if let Some(var) = ["K_SERVICE", "FUNCTION_NAME", "CLOUD_RUN_JOB"]
        .into_iter()
        .find(|v| env.get(v).is_some())
    {
        return Ok(Detection::Assume(format!(
            "{var} is set: a serverless Google runtime"
        )));
    }
    if google_bios {
        return Ok(Detection::Assume(
            "the BIOS vendor is Google: a Compute Engine VM".into(),
        ));
    }
    Ok(Detection::Probe)
}
