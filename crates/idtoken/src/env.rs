//! [`Env`]: a snapshot of the environment variables that decide where
//! credentials come from, so discovery can be tested without touching the
//! process environment.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The environment variables that credential discovery reads, and the
/// endpoint rule's opt-in.
const KNOWN: &[&str] = &[
    "GOOGLE_APPLICATION_CREDENTIALS",
    "CLOUDSDK_CONFIG",
    "HOME",
    "APPDATA",
    "GCE_METADATA_HOST",
    "GCE_METADATA_IP",
    "METADATA_SERVER_DETECTION",
    "NO_GCE_CHECK",
    "K_SERVICE",
    "FUNCTION_NAME",
    "CLOUD_RUN_JOB",
    ALLOW_INSECURE_HTTP,
    // Read when an executable-sourced external account runs its command
    // (credentials/external_account/executable.rs); listed for `doctor`.
    "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
];

/// Set to `1` (or `true`) to allow plain `http://` endpoints that are not
/// on this machine, e.g. an emulator reached by name in a container
/// network (`credentials/endpoint.rs` has the rule).
pub const ALLOW_INSECURE_HTTP: &str = "IDTOKEN_ALLOW_INSECURE_HTTP";

/// A snapshot of the environment variables credential discovery reads.
///
/// ```
/// use idtoken::Env;
///
/// let env = Env::empty().with("GCE_METADATA_HOST", "127.0.0.1:8080");
/// assert_eq!(env.get("GCE_METADATA_HOST"), Some("127.0.0.1:8080"));
/// assert_eq!(env.get("HOME"), None);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Env {
    vars: BTreeMap<String, String>,
    /// The firmware vendor (Linux: `/sys/class/dmi/id/bios_vendor`), which
    /// says "Google" on Compute Engine hardware.
    bios_vendor: Option<String>,
}

impl Env {
    /// The names of the variables a snapshot takes, for reports such as
    /// `idtoken doctor`.
    pub const VARIABLES: &'static [&'static str] = KNOWN;

    /// The variables of this process that discovery reads.
    pub fn from_process() -> Self {
        let vars = KNOWN
            .iter()
            .filter_map(|k| std::env::var(k).ok().map(|v| ((*k).to_owned(), v)))
            .collect();
        // Missing on other systems and in many containers: then unknown.
        let bios_vendor = std::fs::read_to_string("/sys/class/dmi/id/bios_vendor")
            .ok()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        Self { vars, bios_vendor }
    }

    /// No variables at all.
    pub fn empty() -> Self {
        Self::default()
    }

    /// This snapshot with `key` set to `value`.
    pub fn with(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(key.into(), value.into());
        self
    }

    /// This snapshot with the firmware vendor set to `vendor`.
    ///
    /// ```
    /// use idtoken::Env;
    ///
    /// let env = Env::empty().with_bios_vendor("Google");
    /// assert_eq!(env.bios_vendor(), Some("Google"));
    /// ```
    pub fn with_bios_vendor(mut self, vendor: impl Into<String>) -> Self {
        self.bios_vendor = Some(vendor.into());
        self
    }

    /// The firmware vendor, when the system tells it ("Google" on Compute
    /// Engine VMs); `METADATA_SERVER_DETECTION=bios-only` decides by it.
    pub fn bios_vendor(&self) -> Option<&str> {
        self.bios_vendor.as_deref()
    }

    /// A variable's value; empty values count as unset.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars
            .get(key)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    /// The variables that are set, for `idtoken doctor`-style reports.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Where gcloud keeps `application_default_credentials.json`.
    pub fn gcloud_adc_file(&self) -> Option<PathBuf> {
        let dir = if let Some(dir) = self.get("CLOUDSDK_CONFIG") {
            PathBuf::from(dir)
        } else if cfg!(windows) {
            PathBuf::from(self.get("APPDATA")?).join("gcloud")
        } else {
            PathBuf::from(self.get("HOME")?)
                .join(".config")
                .join("gcloud")
        };
        Some(dir.join("application_default_credentials.json"))
    }
}
