//! Keys made at start, each with a random `kid`: RSA keys in the forms Google
//! publishes them in (JWK, PKCS#8 PEM for key files, self-signed X.509 PEM),
//! and P-256 keys for IAP's ES256 key set (JWK).
//!
//! Keys live only in memory; nothing is written unless a caller asks for a
//! key file.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::Error;

/// An RSA 2048 key with its id and its public forms computed once.
pub(crate) struct RsaKey {
    kid: String,
    pair: KeyPair,
    pkcs8_pem: String,
    public: PublicKeyComponents<Vec<u8>>,
    cert_pem: String,
}

impl std::fmt::Debug for RsaKey {
    // Never print private material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RsaKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl RsaKey {
    /// Makes a fresh key; `cert_cn` names the subject of its X.509 form.
    pub(crate) fn generate(cert_cn: &str) -> Result<Self, Error> {
        let pair = KeyPair::generate(KeySize::Rsa2048)
            .map_err(|e| Error::Key(format!("RSA key generation failed: {e}")))?;
        let pkcs8 = pair
            .as_der()
            .map_err(|e| Error::Key(format!("PKCS#8 encoding failed: {e}")))?;
        let pkcs8 = pkcs8.as_ref().to_vec();
        let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
        let cert_pem = self_signed_cert(&pkcs8, cert_cn)?;
        Ok(Self {
            kid: random_hex(20)?,
            pkcs8_pem: pem("PRIVATE KEY", &pkcs8),
            pair,
            public,
            cert_pem,
        })
    }

    /// The key id (`kid` in JWT headers, `private_key_id` in key files).
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The private key as PKCS#8 PEM, as in a service account key file.
    pub(crate) fn pkcs8_pem(&self) -> &str {
        &self.pkcs8_pem
    }

    /// The self-signed certificate carrying the public key (`/oauth2/v1/certs`).
    pub(crate) fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The public key as a JWK, fields as `/oauth2/v3/certs` lists them.
    pub(crate) fn jwk(&self) -> Value {
        json!({
            "kty": "RSA",
            "alg": "RS256",
            "use": "sig",
            "kid": self.kid,
            "n": URL_SAFE_NO_PAD.encode(&self.public.n),
            "e": URL_SAFE_NO_PAD.encode(&self.public.e),
        })
    }

    /// RSASSA-PKCS1-v1_5 with SHA-256 (RS256) over `msg`.
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let mut sig = vec![0; self.pair.public_modulus_len()];
        let rng = aws_lc_rs::rand::SystemRandom::new();
        self.pair
            .sign(&RSA_PKCS1_SHA256, &rng, msg, &mut sig)
            .map_err(|e| Error::Key(format!("RS256 signing failed: {e}")))?;
        Ok(sig)
    }

    /// Whether `sig` is a valid RS256 signature of `msg` by this key.
    pub(crate) fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        self.public
            .verify(&RSA_PKCS1_2048_8192_SHA256, msg, sig)
            .is_ok()
    }
}

/// A P-256 key for ES256, as IAP signs its assertions.
pub(crate) struct EcKey {
    kid: String,
    pair: aws_lc_rs::signature::EcdsaKeyPair,
}

impl std::fmt::Debug for EcKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl EcKey {
    /// Makes a fresh key.
    pub(crate) fn generate() -> Result<Self, Error> {
        let pair = aws_lc_rs::signature::EcdsaKeyPair::generate(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        )
        .map_err(|e| Error::Key(format!("P-256 key generation failed: {e}")))?;
        Ok(Self {
            kid: random_hex(3)?,
            pair,
        })
    }

    /// The key id.
    pub(crate) fn kid(&self) -> &str {
        &self.kid
    }

    /// The public key as a JWK, as IAP's `public_key-jwk` lists it.
    pub(crate) fn jwk(&self) -> Value {
        // The uncompressed point: 0x04 || x (32 bytes) || y (32 bytes).
        let point = self.pair.public_key().as_ref();
        let (x, y) = point
            .get(1..65)
            .map_or((&[][..], &[][..]), |xy| xy.split_at(32));
        json!({
            "kty": "EC",
            "alg": "ES256",
            "use": "sig",
            "crv": "P-256",
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(x),
            "y": URL_SAFE_NO_PAD.encode(y),
        })
    }

    /// The public key as PEM `SubjectPublicKeyInfo`, as IAP's
    /// `/iap/verify/public_key` map lists it (the form Python's google-auth
    /// IAP sample verifies with).
    pub(crate) fn public_key_pem(&self) -> Result<String, Error> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|e| Error::Key(format!("P-256 public key encoding failed: {e}")))?;
        Ok(pem("PUBLIC KEY", der.as_ref()))
    }

    /// ECDSA P-256 SHA-256 over `msg`, as 64 bytes `r || s` (JWS form).
    pub(crate) fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, Error> {
        let rng = aws_lc_rs::rand::SystemRandom::new();
        let sig = self
            .pair
            .sign(&rng, msg)
            .map_err(|e| Error::Key(format!("ES256 signing failed: {e}")))?;
        Ok(sig.as_ref().to_vec())
    }
}

/// A self-signed certificate for the key, the form Python's google-auth reads.
fn self_signed_cert(pkcs8: &[u8], cn: &str) -> Result<String, Error> {
    let cert_err = |e: rcgen::Error| Error::Key(format!("certificate creation failed: {e}"));
    let key = rcgen::KeyPair::try_from(pkcs8).map_err(cert_err)?;
    let mut params = rcgen::CertificateParams::default();
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    let cert = params.self_signed(&key).map_err(cert_err)?;
    Ok(cert.pem())
}

/// PEM armour with 64-column lines, as OpenSSL writes it.
fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // base64 output is ASCII, so byte chunks are valid UTF-8.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// `bytes` random bytes as lowercase hex.
pub(crate) fn random_hex(bytes: usize) -> Result<String, Error> {
    let mut buf = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buf).map_err(|e| Error::Key(format!("no randomness: {e}")))?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_verifies_and_tampering_does_not() -> Result<(), Error> {
        let key = RsaKey::generate("test")?;
        let sig = key.sign(b"hello")?;
        assert!(key.verify(b"hello", &sig));
        assert!(!key.verify(b"hellO", &sig));
        assert_eq!(key.kid().len(), 40);
        assert!(key.pkcs8_pem().starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(key.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
        Ok(())
    }

    #[test]
    fn ec_signatures_are_64_bytes_and_verify_with_the_jwk_point() -> Result<(), Error> {
        let key = EcKey::generate()?;
        let sig = key.sign(b"hello")?;
        assert_eq!(sig.len(), 64);
        let jwk = key.jwk();
        let coord = |c: &str| {
            URL_SAFE_NO_PAD
                .decode(jwk[c].as_str().unwrap_or_default())
                .unwrap_or_default()
        };
        let mut point = vec![4u8];
        point.extend(coord("x"));
        point.extend(coord("y"));
        let public = aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::ECDSA_P256_SHA256_FIXED,
            &point,
        );
        assert!(public.verify(b"hello", &sig).is_ok());
        assert!(public.verify(b"hellO", &sig).is_err());
        Ok(())
    }
}
