//! X.509 workload identity federation: the certificates the emulator
//! makes at start ([`Pki`]) and STS's check of a certificate exchange
//! ([`check_exchange`]), which the STS handler calls when the subject token
//! type is `urn:ietf:params:oauth:token-type:mtls`.
//!
//! Two authorities: one signs the server certificate of the mTLS listener
//! (clients trust it, e.g. through `SSL_CERT_FILE`), the other is the
//! pool's trust anchor, which signs the workload's client certificate. The
//! listener (`mtls_listener.rs`) refuses at the handshake a client
//! certificate that does not chain to the trust anchor, as a client-auth
//! TLS endpoint does; STS then wants the TLS client certificate to be the
//! subject token's leaf, and answers a precise `invalid_grant` otherwise.

use std::collections::HashMap;
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls;

use crate::Error;
use crate::reply::{invalid_request, oauth_error};

/// The subject token type of an X.509 exchange.
pub(crate) const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:mtls";
/// The pool provider that trusts the emulator's workload CA.
pub(crate) const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/emulator-pool/providers/emulator-x509";
/// The workload certificate's common name.
pub(crate) const WORKLOAD_CN: &str = "emulator-workload";
/// The federated principal of the workload certificate.
pub(crate) const PRINCIPAL: &str = "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/emulator-pool/subject/emulator-workload";

/// The client certificate of an mTLS connection (its DER), put in each
/// request's extensions by the mTLS listener.
#[derive(Clone)]
pub(crate) struct PeerCert(pub Vec<u8>);

/// The emulator's certificates and the mTLS listener's TLS settings.
pub(crate) struct Pki {
    /// The authority that signed the listener's server certificate (PEM).
    pub server_ca_pem: String,
    /// The pool's trust anchor (PEM), also the workload's trust chain file.
    pub pool_ca_pem: String,
    /// The workload's client certificate (PEM).
    pub workload_cert_pem: String,
    /// The workload's private key (PKCS#8 PEM): a secret.
    pub workload_key_pem: String,
    /// The listener's TLS settings: its certificate, client certificates
    /// verified against the pool's anchor, and optional.
    pub server_config: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// Makes both authorities, the server and workload certificates (P-256
    /// keys: quick to make, unlike the RSA signing keys).
    pub(crate) fn generate() -> Result<Self, Error> {
        let err = |what: &str, e: String| Error::Key(format!("{what}: {e}"));
        let rc = |what: &'static str| move |e: rcgen::Error| err(what, e.to_string());
        let ca = |name: &str| -> Result<CertifiedIssuer<'static, KeyPair>, Error> {
            let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc("CA"))?;
            params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            params.distinguished_name.push(DnType::CommonName, name);
            CertifiedIssuer::self_signed(params, KeyPair::generate().map_err(rc("CA key"))?)
                .map_err(rc("CA"))
        };
        let server_ca = ca("idtoken emulator TLS CA")?;
        let pool_ca = ca("idtoken emulator workload pool CA")?;

        let server_key = KeyPair::generate().map_err(rc("server key"))?;
        let server_cert =
            CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .map_err(rc("server certificate"))?
                .signed_by(&server_key, &server_ca)
                .map_err(rc("server certificate"))?;

        let workload_key = KeyPair::generate().map_err(rc("workload key"))?;
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(rc("workload"))?;
        params
            .distinguished_name
            .push(DnType::CommonName, WORKLOAD_CN);
        params
            .distinguished_name
            .push(DnType::OrganizationName, "idtoken emulator");
        let workload = params
            .signed_by(&workload_key, &pool_ca)
            .map_err(rc("workload certificate"))?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(pool_ca.der().clone())
            .map_err(|e| err("pool trust anchor", e.to_string()))?;
        let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            provider.clone(),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| err("client verifier", e.to_string()))?;
        let server_config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| err("TLS versions", e.to_string()))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                vec![server_cert.der().clone()],
                rustls::pki_types::PrivatePkcs8KeyDer::from(server_key.serialize_der()).into(),
            )
            .map_err(|e| err("server TLS settings", e.to_string()))?;
        Ok(Self {
            server_ca_pem: server_ca.pem(),
            pool_ca_pem: pool_ca.pem(),
            workload_cert_pem: workload.pem(),
            workload_key_pem: workload_key.serialize_pem(),
            server_config: Arc::new(server_config),
        })
    }
}

fn invalid_grant(description: impl Into<String>) -> Response {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", description)
}

/// STS's checks of an X.509 exchange after the common ones (grant type,
/// required fields, requested token type); `Ok` is the principal, `Err`
/// the refusal (a `Response`, as `sts.rs`'s `check` gives, once per call).
#[allow(clippy::result_large_err)]
pub(crate) fn check_exchange(
    params: &HashMap<String, String>,
    peer: Option<&PeerCert>,
) -> Result<&'static str, Response> {
    let get = |name: &str| params.get(name).map(String::as_str).unwrap_or_default();
    if get("audience") != AUDIENCE {
        return Err(oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "The target service indicated by the \"audience\" parameters is invalid. This might either be because the pool or provider is disabled or deleted or because it doesn't exist.",
        ));
    }
    let Some(PeerCert(peer)) = peer else {
        return Err(invalid_grant(
            "No client certificate: an X.509 subject token must be exchanged over mutual TLS (sts.mtls.googleapis.com) with its leaf certificate.",
        ));
    };
    let chain: Vec<String> = match serde_json::from_str(get("subject_token")) {
        Ok(chain) => chain,
        Err(_) => {
            return Err(invalid_request(
                "Invalid subject_token: an X.509 subject token is a JSON array of base64 DER certificates, leaf first.",
            ));
        }
    };
    let Some(leaf) = chain.first() else {
        return Err(invalid_grant("The subject token has no certificate."));
    };
    let engine = base64::engine::general_purpose::STANDARD;
    if engine.decode(leaf).ok().as_deref() != Some(peer.as_slice()) {
        return Err(invalid_grant(
            "The TLS client certificate is not the subject token's leaf certificate.",
        ));
    }
    if chain.iter().skip(1).any(|c| engine.decode(c).is_err()) {
        return Err(invalid_request(
            "Invalid subject_token: a certificate in the array is not base64.",
        ));
    }
    Ok(PRINCIPAL)
}
