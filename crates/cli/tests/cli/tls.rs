//! A test CA and TLS servers with its certificates, for the proxy's
//! https targets and `curl -L`'s scheme-changing redirects. The binary
//! trusts the CA through `SSL_CERT_FILE` (on Linux,
//! rustls-platform-verifier loads its roots with rustls-native-certs, which
//! reads that variable instead of the system store).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use tokio_rustls::rustls;

pub type Ca = CertifiedIssuer<'static, KeyPair>;

pub fn test_ca(name: &str) -> Ca {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("CA")
}

/// Writes a CA's certificate (`Ca::pem`) where `SSL_CERT_FILE` can name it.
pub fn write_ca(dir: &Path, pem: &str) -> PathBuf {
    let path = dir.join("ca.pem");
    std::fs::write(&path, pem).expect("write the CA");
    path
}

/// A TLS acceptor with a certificate from `ca` for `localhost` and
/// `127.0.0.1`, offering h2 and http/1.1 by ALPN.
pub fn tls_acceptor(ca: &Ca) -> tokio_rustls::TlsAcceptor {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, ca)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        )
        .expect("server config");
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
