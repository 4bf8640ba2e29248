//! X.509 certificate sources of `external_account` files
//! (`credential_source.certificate`, docs/PROTOCOL.md, "X.509 certificate
//! source"): the workload's certificate and key, named by a certificate
//! configuration (`cert_configs.workload.cert_path` and `key_path`); the
//! subject token is the JSON array of the base64 DER certificates, leaf
//! first, then those of `trust_chain_path`; STS is called over mutual TLS
//! with that certificate.
//!
//! Everything is read again at each exchange (about hourly), so a renewed
//! certificate is picked up, as Google's libraries do.
//!
//! Parsing: `x509-parser` for the subject and validity (`doctor` shows
//! them; an expired certificate is refused before any request), rustls for
//! the key check (`CertifiedKey::from_der` compares the key's public half
//! with the certificate's), `rustls-pki-types` for PEM. All three are only
//! in builds with the `x509` feature.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use base64::Engine;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::Deserialize;

use crate::error::{CredentialsProblem, Error, Result};

/// The variable that names the certificate configuration, as in Google's
/// libraries, when the file says `use_default_certificate_config`.
pub(crate) const CONFIG_ENV: &str = "GOOGLE_API_CERTIFICATE_CONFIG";
/// Where gcloud writes it otherwise, under the home directory.
const DEFAULT_CONFIG: &str = ".config/gcloud/certificate_config.json";
/// Largest certificate, key or configuration file read.
use crate::credentials::file::MAX_SMALL_FILE;

/// `credential_source.certificate` as the file gives it.
#[derive(Deserialize)]
pub(super) struct CertificateSource {
    certificate_config_location: Option<String>,
    use_default_certificate_config: Option<bool>,
    trust_chain_path: Option<String>,
}

/// Where the certificate configuration is, and the trust chain.
#[derive(Clone, Debug)]
pub(crate) struct Certificate {
    config: Option<PathBuf>,
    trust_chain: Option<PathBuf>,
}

/// What one exchange needs: the subject token, and the TLS identity (it
/// holds the private key; reqwest's type prints none of it) for the mTLS
/// client.
pub(crate) struct Loaded {
    pub(crate) subject_token: String,
    pub(crate) identity: reqwest::Identity,
}

/// The client certificate of an X.509 external account, for people
/// ([`Credentials::client_certificate`](crate::Credentials::client_certificate)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientCertificate {
    /// The certificate's subject, e.g. `CN=workload, O=Example`.
    pub subject: String,
    /// When it stops being valid (`notAfter`).
    pub not_after: SystemTime,
    /// The certificate file (`cert_configs.workload.cert_path`).
    pub path: PathBuf,
}

impl Certificate {
    pub(super) fn from_source(s: CertificateSource) -> Result<Self, CredentialsProblem> {
        let location = s.certificate_config_location.filter(|l| !l.is_empty());
        let use_default = s.use_default_certificate_config.unwrap_or(false);
        let invalid = |reason: &str| CredentialsProblem::InvalidField {
            field: "credential_source.certificate",
            reason: reason.to_owned(),
        };
        let config = match (location, use_default) {
            (Some(_), true) => {
                return Err(invalid(
                    "has both `certificate_config_location` and `use_default_certificate_config: true`; keep one",
                ));
            }
            (None, false) => {
                return Err(invalid(
                    "names no certificate configuration: set `certificate_config_location`, or `use_default_certificate_config: true`",
                ));
            }
            (Some(path), false) => Some(PathBuf::from(path)),
            (None, true) => None,
        };
        Ok(Self {
            config,
            trust_chain: s
                .trust_chain_path
                .filter(|p| !p.is_empty())
                .map(PathBuf::from),
        })
    }

    /// The certificate configuration's path: the file's, else
    /// `GOOGLE_API_CERTIFICATE_CONFIG`, else gcloud's.
    fn config_path(&self) -> std::result::Result<(PathBuf, &'static str), String> {
        if let Some(path) = &self.config {
            return Ok((
                path.clone(),
                "credential_source.certificate.certificate_config_location",
            ));
        }
        if let Some(path) = std::env::var_os(CONFIG_ENV).filter(|p| !p.is_empty()) {
            return Ok((PathBuf::from(path), CONFIG_ENV));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .ok_or_else(|| {
                format!(
                    "`use_default_certificate_config` is set, but neither {CONFIG_ENV} nor HOME is"
                )
            })?;
        Ok((
            Path::new(&home).join(DEFAULT_CONFIG),
            "gcloud's certificate_config.json (use_default_certificate_config)",
        ))
    }

    /// Reads the configuration, certificate, key and trust chain, and
    /// checks them at `now`.
    pub(crate) fn load(&self, now: SystemTime) -> Result<Loaded> {
        self.load_inner(now).map_err(|why| {
            Error::credentials(
                "external account X.509 certificate (credential_source.certificate)",
                CredentialsProblem::ClientCertificate(why),
            )
        })
    }

    /// The certificate's subject and expiry, without the key or the chain.
    pub(crate) fn describe(&self) -> Result<ClientCertificate> {
        let describe = || {
            let (cert_path, _) = self.key_and_cert_paths()?;
            let (_, info) = read_certificate(&cert_path)?;
            Ok(info)
        };
        describe().map_err(|why| {
            Error::credentials(
                "external account X.509 certificate (credential_source.certificate)",
                CredentialsProblem::ClientCertificate(why),
            )
        })
    }

    fn key_and_cert_paths(&self) -> std::result::Result<(PathBuf, PathBuf), String> {
        let (config, from) = self.config_path()?;
        let bytes = read_small(&config).map_err(|e| {
            format!(
                "the certificate configuration {} ({from}) {e}",
                config.display()
            )
        })?;
        #[derive(Deserialize)]
        struct Config {
            cert_configs: Option<CertConfigs>,
        }
        #[derive(Deserialize)]
        struct CertConfigs {
            workload: Option<Workload>,
        }
        #[derive(Deserialize)]
        struct Workload {
            cert_path: Option<String>,
            key_path: Option<String>,
        }
        let bad = |what: &str| format!("the certificate configuration {} {what}", config.display());
        let parsed: Config = serde_json::from_slice(&bytes).map_err(|e| {
            bad(&format!(
                "is not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ))
        })?;
        let workload = parsed
            .cert_configs
            .ok_or_else(|| bad("has no `cert_configs`"))?
            .workload
            .ok_or_else(|| bad("has no `cert_configs.workload`"))?;
        let cert = workload
            .cert_path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("has no `cert_configs.workload.cert_path`"))?;
        let key = workload
            .key_path
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("has no `cert_configs.workload.key_path`"))?;
        Ok((PathBuf::from(cert), PathBuf::from(key)))
    }

    fn load_inner(&self, now: SystemTime) -> std::result::Result<Loaded, String> {
        let (cert_path, key_path) = self.key_and_cert_paths()?;
        let (leaf, info) = read_certificate(&cert_path)?;
        if now > info.not_after {
            return Err(format!(
                "the certificate {} (cert_path) expired at {} (Unix time); renew it",
                cert_path.display(),
                crate::clock::unix_seconds(info.not_after)
            ));
        }
        let key_file = read_small(&key_path)
            .map_err(|e| format!("the private key {} (key_path) {e}", key_path.display()))?;
        let key = PrivateKeyDer::from_pem_slice(&key_file).map_err(|_| {
            format!(
                "the private key {} (key_path) holds no unencrypted PEM private key (PKCS#8, PKCS#1 or SEC1)",
                key_path.display()
            )
        })?;
        // Re-encoded from what was parsed: a key file may hold other PEM
        // sections (`openssl ecparam -genkey` writes `EC PARAMETERS` first).
        let key_pem = match &key {
            PrivateKeyDer::Pkcs8(k) => to_pem("PRIVATE KEY", k.secret_pkcs8_der()),
            PrivateKeyDer::Pkcs1(k) => to_pem("RSA PRIVATE KEY", k.secret_pkcs1_der()),
            PrivateKeyDer::Sec1(k) => to_pem("EC PRIVATE KEY", k.secret_sec1_der()),
            _ => {
                return Err(format!(
                    "the private key {} (key_path) is of a kind this version cannot use",
                    key_path.display()
                ));
            }
        };
        let provider = rustls::crypto::aws_lc_rs::default_provider();
        rustls::sign::CertifiedKey::from_der(vec![leaf.clone()], key, &provider).map_err(|e| {
            match e {
                rustls::Error::InconsistentKeys(_) => format!(
                    "the private key {} (key_path) does not match the certificate {} (cert_path)",
                    key_path.display(),
                    cert_path.display()
                ),
                other => format!(
                    "the private key {} (key_path) cannot be used: {other}",
                    key_path.display()
                ),
            }
        })?;
        let chain = match &self.trust_chain {
            Some(path) => read_chain(path)?,
            None => Vec::new(),
        };
        let subject_token = subject_token(&leaf, &chain)?;
        // The TLS identity: the leaf, the chain's intermediates (not the
        // leaf again), then the key, as PEM for reqwest.
        let mut pem = to_pem("CERTIFICATE", &leaf);
        for cert in chain.iter().filter(|c| **c != leaf) {
            pem.push_str(&to_pem("CERTIFICATE", cert));
        }
        pem.push_str(&key_pem);
        let identity = reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
            format!(
                "the certificate {} and key {} cannot be used as a TLS client identity",
                cert_path.display(),
                key_path.display()
            )
        })?;
        Ok(Loaded {
            subject_token,
            identity,
        })
    }
}

/// The subject token: base64 DER certificates as a JSON array, the leaf
/// first; a chain that starts with the leaf does not repeat it, and the
/// leaf anywhere else in the chain is refused (as Google's libraries do).
fn subject_token(
    leaf: &CertificateDer<'static>,
    chain: &[CertificateDer<'static>],
) -> std::result::Result<String, String> {
    let b64 = |c: &CertificateDer<'_>| base64::engine::general_purpose::STANDARD.encode(c);
    let mut out = vec![b64(leaf)];
    for (i, cert) in chain.iter().enumerate() {
        if cert == leaf {
            if i == 0 {
                continue;
            }
            return Err(
                "the leaf certificate is in the trust chain file (trust_chain_path) but not first; put it at the top or leave it out".into(),
            );
        }
        out.push(b64(cert));
    }
    serde_json::to_string(&out).map_err(|e| format!("cannot build the subject token: {e}"))
}

/// One certificate from a PEM file, with its subject and validity.
fn read_certificate(
    path: &Path,
) -> std::result::Result<(CertificateDer<'static>, ClientCertificate), String> {
    let pem = read_small(path)
        .map_err(|e| format!("the certificate {} (cert_path) {e}", path.display()))?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            format!(
                "the certificate {} (cert_path) is not valid PEM",
                path.display()
            )
        })?;
    let [leaf] = <[CertificateDer<'static>; 1]>::try_from(certs).map_err(|certs| {
        format!(
            "the certificate {} (cert_path) holds {} PEM certificates; it must hold exactly one",
            path.display(),
            certs.len()
        )
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(&leaf).map_err(|_| {
        format!(
            "the certificate {} (cert_path) is not an X.509 certificate",
            path.display()
        )
    })?;
    // Before 1970 reads as 1970: long expired either way.
    let seconds = parsed.validity().not_after.timestamp();
    let not_after = crate::clock::unix_time(u64::try_from(seconds).unwrap_or(0));
    let info = ClientCertificate {
        subject: parsed.subject().to_string(),
        not_after,
        path: path.to_owned(),
    };
    Ok((leaf, info))
}

/// Every certificate of the trust chain file.
fn read_chain(path: &Path) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    let pem = read_small(path).map_err(|e| {
        format!(
            "the trust chain file {} (trust_chain_path) {e}",
            path.display()
        )
    })?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
        .collect::<std::result::Result<_, _>>()
        .map_err(|_| {
            format!(
                "the trust chain file {} (trust_chain_path) is not valid PEM",
                path.display()
            )
        })?;
    if certs.is_empty() {
        return Err(format!(
            "the trust chain file {} (trust_chain_path) holds no PEM certificate",
            path.display()
        ));
    }
    Ok(certs)
}

/// A small local file; the error says what is wrong with it (to follow
/// "the FILE (field) ...").
fn read_small(path: &Path) -> std::result::Result<Vec<u8>, String> {
    crate::credentials::file::read_small(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => "does not exist".to_owned(),
        std::io::ErrorKind::InvalidData => {
            format!("is larger than {MAX_SMALL_FILE} bytes")
        }
        _ => format!("cannot be read: {e}"),
    })
}

fn to_pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}
