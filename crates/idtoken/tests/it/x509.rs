//! X.509 certificate sources (`credential_source.certificate`): every bad
//! input is refused before any request, naming the file and the field;
//! the exchange itself goes over TLS to STS's mTLS listener. (The whole
//! flow, with the emulator's CA trusted through `SSL_CERT_FILE`, is in the
//! CLI's tests: `certificate_source_exchanges_at_sts_over_mutual_tls_...`.)

use std::path::{Path, PathBuf};

use idtoken::{Credentials, Error, TokenOptions};
use idtoken_emulator::{Emulator, Endpoint};

use crate::common::*;

const AUD: &str = "https://svc-abc.a.run.app";

fn write(dir: &Path, name: &str, body: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, body).expect("write");
    path
}

/// Credentials whose configuration names `cert` and `key`, with `chain`.
fn creds(emu: &Emulator, dir: &Path, cert: &Path, key: &Path, chain: Option<&Path>) -> Credentials {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let config = write(
        dir,
        &format!("config-{n}.json"),
        &Emulator::certificate_config_json(cert, key),
    );
    let json = emu.external_account_certificate_json(Some(&config), chain);
    Credentials::from_json(json.as_bytes(), "x509 test").expect("the file loads")
}

async fn fail(creds: &Credentials) -> Error {
    creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect_err("refused")
}

fn self_signed(not_after: (i32, u8, u8)) -> (String, String) {
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    params.not_before = rcgen::date_time_ymd(1999, 1, 1);
    params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
    let cert = params.self_signed(&key).expect("certificate");
    (cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn each_bad_certificate_input_is_refused_before_any_request_naming_file_and_field() {
    let emu = emulator().await;
    let (dir, files) = all_files(&emu);
    let d = dir.path();
    let cert = files.workload_certificate.clone();
    let key = files.workload_key.clone();
    let chain = files.workload_trust_chain.clone();
    let other_key = write(d, "other_key.pem", &self_signed((2999, 1, 1)).1);
    let (old_cert, old_key) = self_signed((2001, 1, 1));
    let expired = write(d, "expired.pem", &old_cert);
    let expired_key = write(d, "expired_key.pem", &old_key);
    let garbage = write(d, "garbage.pem", "not a key\n");
    let leaf_last = write(
        d,
        "leaf_last.pem",
        &format!(
            "{}{}",
            emu.workload_trust_anchor_pem(),
            emu.workload_certificate_pem()
        ),
    );
    let two_certs = write(
        d,
        "two.pem",
        &format!(
            "{}{}",
            emu.workload_certificate_pem(),
            emu.workload_trust_anchor_pem()
        ),
    );
    let missing = d.join("missing.pem");
    let cases: Vec<(&str, Credentials, &[&str])> = vec![
        (
            "certificate missing",
            creds(&emu, d, &missing, &key, None),
            &["missing.pem", "(cert_path)", "does not exist"],
        ),
        (
            "two certificates in cert_path",
            creds(&emu, d, &two_certs, &key, None),
            &["two.pem", "(cert_path)", "exactly one"],
        ),
        (
            "key missing",
            creds(&emu, d, &cert, &missing, None),
            &["missing.pem", "(key_path)", "does not exist"],
        ),
        (
            "key unreadable (a folder)",
            creds(&emu, d, &cert, d, None),
            &["(key_path)", "cannot be read"],
        ),
        (
            "key not PEM",
            creds(&emu, d, &cert, &garbage, None),
            &["garbage.pem", "(key_path)", "PEM private key"],
        ),
        (
            "key of another certificate",
            creds(&emu, d, &cert, &other_key, None),
            &[
                "other_key.pem",
                "does not match the certificate",
                "(cert_path)",
            ],
        ),
        (
            "expired certificate",
            creds(&emu, d, &expired, &expired_key, None),
            &[
                "expired.pem",
                "(cert_path)",
                "expired at 978307200",
                "renew",
            ],
        ),
        (
            "trust chain missing",
            creds(&emu, d, &cert, &key, Some(&missing)),
            &["missing.pem", "(trust_chain_path)", "does not exist"],
        ),
        (
            "leaf in the chain but not first",
            creds(&emu, d, &cert, &key, Some(&leaf_last)),
            &["trust_chain_path", "not first"],
        ),
        (
            "configuration missing",
            Credentials::from_json(
                emu.external_account_certificate_json(Some(&missing), Some(&chain))
                    .as_bytes(),
                "x509 test",
            )
            .expect("loads"),
            &[
                "missing.pem",
                "certificate_config_location",
                "does not exist",
            ],
        ),
        (
            "configuration without key_path",
            Credentials::from_json(
                emu.external_account_certificate_json(
                    Some(&write(
                        d,
                        "no_key.json",
                        r#"{"cert_configs":{"workload":{"cert_path":"/x"}}}"#,
                    )),
                    None,
                )
                .as_bytes(),
                "x509 test",
            )
            .expect("loads"),
            &["no_key.json", "cert_configs.workload.key_path"],
        ),
    ];
    for (case, creds, wanted) in cases {
        let err = fail(&creds).await.to_string();
        for w in wanted {
            assert!(err.contains(w), "{case}: {w:?} not in {err}");
        }
        assert!(
            err.contains("credential_source.certificate"),
            "{case}: {err}"
        );
        assert!(!err.contains("PRIVATE KEY"), "{case}: {err}");
    }
    assert_eq!(emu.counters().total(), 0, "nothing was sent anywhere");
}

#[test]
fn a_certificate_source_with_both_or_neither_configuration_is_refused_naming_the_field() {
    let base = r#"{"type":"external_account","audience":"//iam.googleapis.com/x","subject_token_type":"urn:ietf:params:oauth:token-type:mtls","token_url":"https://sts.mtls.googleapis.com/v1/token","credential_source":{"certificate":CERT}}"#;
    for cert in [
        r#"{"certificate_config_location":"/c.json","use_default_certificate_config":true}"#,
        r#"{}"#,
        r#"{"use_default_certificate_config":false}"#,
    ] {
        let err = Credentials::from_json(base.replace("CERT", cert).as_bytes(), "x509 test")
            .expect_err(cert)
            .to_string();
        assert!(err.contains("credential_source.certificate"), "{err}");
    }
}

#[tokio::test]
async fn the_exchange_goes_over_tls_to_the_mtls_listener_and_the_certificate_is_described() {
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    let creds = Credentials::from_file(&files.external_account_certificate).expect("loads");
    let cert = creds
        .client_certificate()
        .expect("a certificate source")
        .expect("readable");
    assert!(
        cert.subject.contains("CN=emulator-workload"),
        "{}",
        cert.subject
    );
    assert!(cert.not_after > std::time::SystemTime::now());
    assert_eq!(cert.path, files.workload_certificate);
    assert!(creds.flow_description().contains("X.509 certificate"));
    // This process trusts only the system's roots, not the emulator's CA:
    // the exchange fails at the TLS handshake, so it was TLS, and it never
    // reached STS.
    let err = fail(&creds).await.to_string();
    assert!(err.contains("STS token exchange"), "{err}");
    assert!(err.contains(&emu.mtls_url()), "{err}");
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
    assert!(
        Credentials::from_file(&files.service_account)
            .expect("key")
            .client_certificate()
            .is_none()
    );
}

#[tokio::test]
async fn a_key_file_with_other_pem_sections_first_is_used() {
    let emu = emulator().await;
    let (dir, files) = all_files(&emu);
    // `openssl ecparam -genkey` writes the curve's parameters first.
    let key = write(
        dir.path(),
        "with_params.pem",
        &format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            emu.workload_key_pem()
        ),
    );
    let creds = creds(&emu, dir.path(), &files.workload_certificate, &key, None);
    // Past every local check: it fails only at the TLS handshake, whose
    // server this process does not trust (see the test below).
    let err = fail(&creds).await.to_string();
    assert!(err.contains("STS token exchange"), "{err}");
    assert!(!err.contains("key_path"), "{err}");
}

/// Set in the child process of the test below: where to write the
/// emulator's CA, which is also the child's `SSL_CERT_FILE`.
const CHILD_CA: &str = "IDTOKEN_TEST_X509_CA";

/// The whole flow in process, with its request counts (docs/BENCHMARKS.md,
/// "HTTP requests per flow"). This process trusts the system's roots only
/// and cannot change its own environment (`set_var` is unsafe), so the
/// test runs itself again in a child whose `SSL_CERT_FILE` names a file
/// the child fills with the emulator's CA before its first TLS connection
/// (the mTLS client and its roots are made at each certificate load).
#[tokio::test]
async fn certificate_source_makes_requests_for_its_first_token_only() {
    let Some(ca) = std::env::var_os(CHILD_CA) else {
        let dir = tempfile::tempdir().expect("dir");
        let ca = dir.path().join("ca.pem");
        let mut child = std::process::Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "x509::certificate_source_makes_requests_for_its_first_token_only",
                "--nocapture",
            ])
            .env(CHILD_CA, &ca)
            .env("SSL_CERT_FILE", &ca)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("the child starts");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60); // time: bounded (a test's own wait)
        while child.try_wait().expect("wait").is_none() {
            if std::time::Instant::now() > deadline {
                child.kill().expect("kill");
                panic!("the child test did not finish in 60 s");
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let out = child.wait_with_output().expect("output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains(
                "| external_account (X.509 certificate) | 2 | iam_generate_id_token 1, sts 1 | 0 |"
            ),
            "{text}"
        );
        return;
    };
    let emu = emulator().await;
    let (_dir, files) = all_files(&emu);
    std::fs::write(&ca, emu.tls_ca_pem()).expect("write the CA");
    let creds = Credentials::from_file(&files.external_account_certificate).expect("loads");
    let source = creds.token_source(AUD);
    let token = source.token().await.expect("first token");
    assert_eq!(token.claims().aud.as_deref(), Some(AUD));
    let first = emu.counters();
    for _ in 0..100 {
        source.token().await.expect("cached token");
    }
    let warm = emu.counters().total() - first.total();
    let which: Vec<String> = Endpoint::ALL
        .iter()
        .filter(|e| first.get(**e) > 0)
        .map(|e| format!("{e} {}", first.get(*e)))
        .collect();
    // The parent checks the row: STS once (over mTLS), IAM once, then nothing.
    println!(
        "| external_account (X.509 certificate) | {} | {} | {warm} |",
        first.total(),
        which.join(", ")
    );
}
