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
//!
//! Discovery says where credentials are ([`Found`]) and keeps the report;
//! the credentials module loads what it names (`Credentials::discover*`).
//! So data flows one way: this module imports nothing of `credentials`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::env::Env;
use crate::error::{Error, Result};
use crate::http::Http;

/// The header every metadata request carries and every metadata answer
/// has (`Metadata-Flavor: Google`).
pub(crate) const FLAVOR: &str = "Metadata-Flavor";

/// Whether an answer came from a metadata server.
pub(crate) fn has_flavor(headers: &reqwest::header::HeaderMap) -> bool {
    headers
        .get(FLAVOR)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"Google"))
}

/// `http://HOST` for a metadata host given as `HOST[:PORT]` (with or
/// without the scheme or a trailing slash).
pub(crate) fn metadata_base(host: &str) -> String {
    let host = host.trim_end_matches('/');
    let host = host.strip_prefix("http://").unwrap_or(host);
    format!("http://{host}")
}

/// How credentials from the metadata server at `host` name their origin.
pub(crate) fn metadata_origin(host: &str) -> String {
    format!("metadata server at http://{host}")
}

/// Where discovery found credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Found {
    /// A credentials file, and how it was named (for errors).
    File {
        /// The file.
        path: PathBuf,
        /// `GOOGLE_APPLICATION_CREDENTIALS` or gcloud's file.
        via: &'static str,
    },
    /// The metadata server at this host (`HOST[:PORT]`).
    MetadataServer(String),
}

const DEFAULT_METADATA_IP: &str = "169.254.169.254";
const DEFAULT_METADATA_HOST: &str = "metadata.google.internal";

/// What Application Default Credentials looked at, in order, and what each
/// place gave: the report behind `idtoken doctor`.
///
/// Made by [`Credentials::discover_explained`](crate::Credentials::discover_explained). Holds no secrets (paths,
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
    /// Says what the chosen place turned out to hold, once the credentials
    /// module has loaded it.
    pub(crate) fn settle(&mut self, outcome: String, chosen: bool) {
        if let Some(last) = self.steps.last_mut() {
            last.outcome = outcome;
            last.chosen = chosen;
        }
    }

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

/// Where Application Default Credentials will take credentials from,
/// decided from the environment alone: no file is read and no server is
/// asked (discovery probes the metadata server; this does not). Made by
/// [`adc_source`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdcSource {
    /// A credentials file: `GOOGLE_APPLICATION_CREDENTIALS`, or gcloud's
    /// `application_default_credentials.json`.
    File {
        /// The file, as named.
        path: PathBuf,
        /// How it was named: `GOOGLE_APPLICATION_CREDENTIALS` or
        /// `gcloud application-default credentials`.
        via: &'static str,
    },
    /// The metadata server: `GCE_METADATA_HOST`, else `GCE_METADATA_IP`,
    /// else `metadata.google.internal`.
    MetadataServer {
        /// `HOST[:PORT]`.
        host: String,
    },
}

impl AdcSource {
    /// A credentials file given explicitly (`--credentials`,
    /// [`Credentials::from_file`](crate::Credentials::from_file)), not found
    /// by discovery.
    pub fn file(path: impl Into<PathBuf>) -> Self {
        AdcSource::File {
            path: path.into(),
            via: EXPLICIT_VIA,
        }
    }

    /// Where the credentials come from, in the words errors and
    /// [`Credentials::origin`](crate::Credentials::origin) use; pass it to
    /// [`Credentials::from_json`](crate::Credentials::from_json) with the
    /// file's bytes.
    pub fn origin(&self) -> String {
        match self {
            AdcSource::File { path, via } => crate::error::file_origin(path, via),
            AdcSource::MetadataServer { host } => metadata_origin(host),
        }
    }
}

/// Where [`Credentials::discover_with`](crate::Credentials::discover_with)
/// will take credentials from, in the same order (a credentials file, then
/// gcloud's file, then the metadata server), without reading a file or
/// probing a server: for a cache keyed by credentials, such as the CLI's
/// token cache. `None` when discovery would not use a metadata server at
/// all (`METADATA_SERVER_DETECTION=none`, `NO_GCE_CHECK=true`, `bios-only`
/// off Google) or refuses the environment; discovery then says why.
pub fn adc_source(env: &Env) -> Option<AdcSource> {
    if let Some(path) = env.get(GAC) {
        return Some(AdcSource::File {
            path: PathBuf::from(path),
            via: GAC,
        });
    }
    if let Some(path) = env.gcloud_adc_file().filter(|p| p.exists()) {
        return Some(AdcSource::File {
            path,
            via: GCLOUD_VIA,
        });
    }
    match detection(env).ok()? {
        Detection::Skip(_) => None,
        Detection::Assume(_) | Detection::Probe => {
            let host = env
                .get("GCE_METADATA_HOST")
                .or_else(|| env.get("GCE_METADATA_IP"))
                .unwrap_or(DEFAULT_METADATA_HOST);
            Some(AdcSource::MetadataServer {
                host: host.to_owned(),
            })
        }
    }
}

const GAC: &str = "GOOGLE_APPLICATION_CREDENTIALS";
const GCLOUD_VIA: &str = "gcloud application-default credentials";
/// How a file given explicitly is named in messages.
pub(crate) const EXPLICIT_VIA: &str = "given explicitly";
const GCLOUD: &str = "gcloud credentials file";
const METADATA: &str = "metadata server";

pub(crate) async fn discover(env: &Env) -> (Result<Found>, Discovery) {
    let mut report = Discovery::default();
    let result = discover_into(env, &mut report).await;
    (result, report)
}

async fn discover_into(env: &Env, report: &mut Discovery) -> Result<Found> {
    let started = Instant::now();
    if let Some(path) = env.get(GAC) {
        report.push(GAC, path.to_owned(), started, true);
        return Ok(Found::File {
            path: PathBuf::from(path),
            via: GAC,
        });
    }
    report.push(GAC, "not set".into(), started, false);

    let started = Instant::now();
    match env.gcloud_adc_file() {
        Some(path) if path.exists() => {
            report.push(GCLOUD, path.display().to_string(), started, true);
            return Ok(Found::File {
                path,
                via: GCLOUD_VIA,
            });
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
            return Ok(Found::MetadataServer(host.to_owned()));
        }
        Detection::Probe => {}
    }

    let found = if let Some(host) = explicit {
        probe(host).await
    } else {
        let ip = env.get("GCE_METADATA_IP").unwrap_or(DEFAULT_METADATA_IP);
        // Probe the address and the DNS name side by side, as Go does: off
        // Google Cloud both fail, and waiting for one after the other
        // doubles the time to the error.
        match tokio::join!(probe(ip), probe(DEFAULT_METADATA_HOST)) {
            (Ok(host), _) | (_, Ok(host)) => Ok(host),
            (Err(a), Err(b)) => Err(format!("{a}\n  - {b}")),
        }
    };
    match found {
        Ok(host) => {
            report.push(
                METADATA,
                format!("metadata server at {}: answered", metadata_base(&host)),
                started,
                true,
            );
            Ok(Found::MetadataServer(host))
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

/// Timeout of one probe attempt: short, because off Google Cloud nothing
/// answers and discovery must fail within a few seconds.
const PROBE_TIMEOUT: Duration = Duration::from_millis(1500);
const PROBE_ATTEMPTS: u32 = 2;

/// Pings a metadata server: `GET /` with the flavor header, twice at most.
/// Returns the host when it answered like a metadata server, else a
/// one-line account of what happened.
async fn probe(host: &str) -> std::result::Result<String, String> {
    let url = format!("{}/", metadata_base(host));
    let started = Instant::now();
    let http = Http::METADATA.with_timeout(PROBE_TIMEOUT);
    let mut last = String::new();
    for attempt in 1..=PROBE_ATTEMPTS {
        let result = async {
            let client = http.client().map_err(|e| e.to_string())?;
            let resp = tokio::time::timeout(
                PROBE_TIMEOUT,
                client.get(&url).header(FLAVOR, "Google").timeout(PROBE_TIMEOUT).send(),
            )
            .await
            .map_err(|_| format!("no answer within {:.1} s", PROBE_TIMEOUT.as_secs_f64()))?
            .map_err(|e| innermost(&e))?;
            if !has_flavor(resp.headers()) {
                return Err(format!(
                    "answered HTTP {} without `Metadata-Flavor: Google`, so it is not a metadata server",
                    resp.status().as_u16()
                ));
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => return Ok(host.to_owned()),
            Err(e) => last = e,
        }
        if attempt < PROBE_ATTEMPTS {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Err(format!(
        "metadata server at {url}: {last} ({PROBE_ATTEMPTS} attempts in {:.1} s)",
        started.elapsed().as_secs_f64()
    ))
}

fn innermost(e: &reqwest::Error) -> String {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    source.to_string()
}
