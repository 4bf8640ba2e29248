//! Application Default Credentials are found in the documented order.

use idtoken::{Credentials, CredentialsKind, Env};
use idtoken_emulator::Endpoint;

use crate::common::*;

#[tokio::test]
async fn environment_variable_wins_over_gcloud_file_and_metadata() {
    let emu = emulator().await;
    let (_dir, path) = key_file(&emu);
    let env = Env::empty()
        .with("GOOGLE_APPLICATION_CREDENTIALS", path.display().to_string())
        .with("GCE_METADATA_HOST", emu.metadata_host());
    let creds = Credentials::discover_with(&env).await.expect("found");
    assert_eq!(creds.kind(), CredentialsKind::ServiceAccount);
    assert!(creds.origin().contains("GOOGLE_APPLICATION_CREDENTIALS"));
    assert_eq!(
        emu.counters().get(Endpoint::MetadataPing),
        0,
        "no probe needed"
    );
}

#[tokio::test]
async fn gcloud_file_is_found_through_cloudsdk_config_and_home() {
    let emu = emulator().await;
    let config = tempfile::tempdir().expect("dir");
    std::fs::write(
        config.path().join("application_default_credentials.json"),
        emu.service_account_json(),
    )
    .expect("write");
    let env = Env::empty().with("CLOUDSDK_CONFIG", config.path().display().to_string());
    let creds = Credentials::discover_with(&env).await.expect("found");
    assert!(creds.origin().contains("gcloud"), "{}", creds.origin());

    let home = tempfile::tempdir().expect("home");
    let gcloud = home.path().join(".config/gcloud");
    std::fs::create_dir_all(&gcloud).expect("mkdir");
    std::fs::write(
        gcloud.join("application_default_credentials.json"),
        emu.service_account_json(),
    )
    .expect("write");
    let env = Env::empty().with("HOME", home.path().display().to_string());
    let creds = Credentials::discover_with(&env).await.expect("found");
    assert_eq!(creds.kind(), CredentialsKind::ServiceAccount);
}

#[tokio::test]
async fn metadata_server_is_probed_when_no_file_exists() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", emu.metadata_host());
    let creds = Credentials::discover_with(&env).await.expect("found");
    assert_eq!(creds.kind(), CredentialsKind::MetadataServer);
    assert_eq!(emu.counters().get(Endpoint::MetadataPing), 1);
}

#[tokio::test]
async fn detection_none_skips_the_metadata_server() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", emu.metadata_host())
        .with("METADATA_SERVER_DETECTION", "none");
    let err = Credentials::discover_with(&env).await.expect_err("skipped");
    assert!(
        err.to_string().contains("METADATA_SERVER_DETECTION=none"),
        "{err}"
    );
    assert_eq!(emu.counters().total(), 0);
}

/// An empty HOME (no gcloud file) and the emulator as metadata server.
fn metadata_env(emu: &idtoken_emulator::Emulator, home: &tempfile::TempDir) -> Env {
    Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", emu.metadata_host())
}

#[tokio::test]
async fn an_unknown_detection_value_is_an_error_naming_the_valid_ones_and_sends_nothing() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = metadata_env(&emu, &home).with("METADATA_SERVER_DETECTION", "yes-please");
    let err = Credentials::discover_with(&env).await.expect_err("refused");
    assert!(
        matches!(
            err,
            idtoken::Error::InvalidEnvironment {
                variable: "METADATA_SERVER_DETECTION",
                ..
            }
        ),
        "{err:?}"
    );
    let msg = err.to_string();
    for part in [
        "METADATA_SERVER_DETECTION",
        "yes-please",
        "assume-present",
        "ping-only",
    ] {
        assert!(msg.contains(part), "{part} missing from: {msg}");
    }
    assert_eq!(emu.counters().total(), 0);
}

#[tokio::test]
async fn no_gce_check_skips_the_metadata_server_as_python_does() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = metadata_env(&emu, &home).with("NO_GCE_CHECK", "True");
    let err = Credentials::discover_with(&env).await.expect_err("skipped");
    assert!(err.to_string().contains("NO_GCE_CHECK=true"), "{err}");
    assert_eq!(emu.counters().total(), 0);
}

#[tokio::test]
async fn serverless_runtimes_assume_the_metadata_server_without_probing() {
    // No GCE_METADATA_HOST: the default host is taken as present. Were it
    // probed, discovery would fail here (nothing answers at the probe
    // address, and metadata.google.internal only resolves on Google Cloud).
    let home = tempfile::tempdir().expect("home");
    for var in ["K_SERVICE", "FUNCTION_NAME", "CLOUD_RUN_JOB"] {
        let env = Env::empty()
            .with("HOME", home.path().display().to_string())
            // Were it probed, the probe would go here, never to 169.254.169.254.
            .with("GCE_METADATA_IP", "127.0.0.1:9")
            .with(var, "hello");
        let (found, report) = within("discovery", Credentials::discover_explained(&env)).await;
        let creds = found.expect("assumed present");
        assert_eq!(creds.kind(), CredentialsKind::MetadataServer);
        assert!(
            creds.origin().contains("metadata.google.internal"),
            "{}",
            creds.origin()
        );
        let step = report.steps.last().expect("a metadata step");
        assert!(step.chosen, "{}", step.outcome);
        assert!(
            step.outcome.contains(&format!("{var} is set")),
            "{}",
            step.outcome
        );
    }
}

#[tokio::test]
async fn a_named_metadata_host_is_probed_even_on_a_serverless_runtime_or_google_bios() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = metadata_env(&emu, &home)
        .with("K_SERVICE", "hello")
        .with_bios_vendor("Google");
    Credentials::discover_with(&env)
        .await
        .expect("probed and found");
    assert_eq!(emu.counters().get(Endpoint::MetadataPing), 1);
}

#[tokio::test]
async fn bios_only_trusts_a_google_bios_and_skips_any_other() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = metadata_env(&emu, &home).with("METADATA_SERVER_DETECTION", "bios-only");
    let google = env.clone().with_bios_vendor("Google");
    let creds = Credentials::discover_with(&google).await.expect("assumed");
    assert_eq!(creds.kind(), CredentialsKind::MetadataServer);

    let err = Credentials::discover_with(&env.clone().with_bios_vendor("SeaBIOS"))
        .await
        .expect_err("skipped");
    assert!(err.to_string().contains("SeaBIOS, not Google"), "{err}");
    let err = Credentials::discover_with(&env)
        .await
        .expect_err("unknown vendor");
    assert!(err.to_string().contains("unknown, not Google"), "{err}");
    assert_eq!(emu.counters().total(), 0, "bios-only never probes");
}

#[tokio::test]
async fn a_google_bios_assumes_the_server_and_ping_only_probes_it() {
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_IP", "127.0.0.1:9")
        .with_bios_vendor("Google");
    let (found, report) = within("discovery", Credentials::discover_explained(&env)).await;
    assert_eq!(
        found.expect("assumed").kind(),
        CredentialsKind::MetadataServer
    );
    let step = report.steps.last().expect("a metadata step");
    assert!(
        step.outcome.contains("BIOS vendor is Google"),
        "{}",
        step.outcome
    );

    let emu = emulator().await;
    let ping_only = metadata_env(&emu, &home)
        .with_bios_vendor("Google")
        .with("METADATA_SERVER_DETECTION", "ping-only");
    Credentials::discover_with(&ping_only)
        .await
        .expect("probed");
    assert_eq!(emu.counters().get(Endpoint::MetadataPing), 1);
}

#[tokio::test]
async fn a_server_without_the_flavor_header_is_not_taken_for_a_metadata_server() {
    // A plain HTTP server that answers 200 to anything.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut buf = [0u8; 1024];
            let _ = sock.read(&mut buf).await;
            let _ = sock
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok")
                .await;
        }
    });
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", addr.to_string());
    let err = Credentials::discover_with(&env)
        .await
        .expect_err("not a metadata server");
    assert!(err.to_string().contains("Metadata-Flavor"), "{err}");
}

#[tokio::test]
async fn gcloud_user_login_file_is_found_and_its_tokens_are_marked() {
    let emu = emulator().await;
    let config = tempfile::tempdir().expect("dir");
    std::fs::write(
        config.path().join("application_default_credentials.json"),
        emu.authorized_user_json(),
    )
    .expect("write");
    let env = Env::empty().with("CLOUDSDK_CONFIG", config.path().display().to_string());
    let (found, report) = Credentials::discover_explained(&env).await;
    let creds = found.expect("found");
    assert_eq!(creds.kind(), CredentialsKind::AuthorizedUser);
    let chosen: Vec<_> = report.steps.iter().filter(|s| s.chosen).collect();
    assert_eq!(chosen.len(), 1);
    assert_eq!(chosen[0].place, "gcloud credentials file");
    assert!(
        chosen[0].outcome.contains("authorized_user"),
        "{}",
        chosen[0].outcome
    );
    let token = creds
        .token_source("https://svc.example")
        .token()
        .await
        .expect("token");
    assert!(token.audience_is_client_id());
    assert!(!format!("{creds:?}").contains(&emu.user_refresh_token()));
}

#[tokio::test]
async fn discovery_report_times_the_metadata_probe_and_marks_it_chosen() {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let env = Env::empty()
        .with("HOME", home.path().display().to_string())
        .with("GCE_METADATA_HOST", emu.metadata_host());
    let (found, report) = Credentials::discover_explained(&env).await;
    assert_eq!(
        found.expect("found").kind(),
        CredentialsKind::MetadataServer
    );
    let places: Vec<_> = report.steps.iter().map(|s| s.place).collect();
    assert_eq!(
        places,
        [
            "GOOGLE_APPLICATION_CREDENTIALS",
            "gcloud credentials file",
            "metadata server"
        ]
    );
    let last = report.steps.last().expect("a metadata step");
    assert!(last.chosen && last.outcome.contains("answered"), "{last:?}");
    assert!(last.elapsed > std::time::Duration::ZERO);
}
