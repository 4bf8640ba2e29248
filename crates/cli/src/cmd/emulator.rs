//! `idtoken emulator`: run the local Google identity emulator until Ctrl-C,
//! printing the `export` lines that point clients at it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use idtoken_emulator::{Emulator, Endpoint, Fault};

use crate::Failure;

/// Arguments of `idtoken emulator`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Address to listen on (port 0 picks a free one).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Where to write the credential files it can serve (default: a new temporary folder).
    #[arg(long, value_name = "DIR")]
    credentials_dir: Option<PathBuf>,
    /// Lifetime of the tokens it issues, in seconds.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    token_lifetime: u64,
    /// Make every answer of one endpoint wait SECS after it arrives, as a
    /// slow Google endpoint would (repeatable; endpoint names as in
    /// /_emulator/counters, e.g. `metadata_identity=1.5`).
    #[arg(long, value_name = "ENDPOINT=SECS", value_parser = parse_delay)]
    delay: Vec<(Endpoint, Duration)>,
    /// Make the next TIMES answers (default 1) of one endpoint an HTTP
    /// error STATUS (400-599), then answer normally again (repeatable;
    /// several for one endpoint queue up in order; e.g.
    /// `metadata_identity=503x3`).
    #[arg(long, value_name = "ENDPOINT=STATUS[xTIMES]", value_parser = parse_fail)]
    fail: Vec<(Endpoint, u16, u32)>,
}

fn endpoint_named(name: &str) -> Result<Endpoint, String> {
    Endpoint::from_name(name).ok_or_else(|| {
        let names: Vec<&str> = Endpoint::ALL.iter().map(|e| e.as_str()).collect();
        format!("unknown endpoint {name:?}; one of {}", names.join(", "))
    })
}

fn parse_delay(s: &str) -> Result<(Endpoint, Duration), String> {
    let (name, secs) = s
        .split_once('=')
        .ok_or_else(|| format!("want ENDPOINT=SECS, got {s:?}"))?;
    let endpoint = endpoint_named(name)?;
    let delay = secs
        .parse::<f64>()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .ok_or_else(|| format!("want a number of seconds, got {secs:?}"))?;
    Ok((endpoint, delay))
}

fn parse_fail(s: &str) -> Result<(Endpoint, u16, u32), String> {
    let (name, what) = s
        .split_once('=')
        .ok_or_else(|| format!("want ENDPOINT=STATUS[xTIMES], got {s:?}"))?;
    let endpoint = endpoint_named(name)?;
    let (status, times) = what.split_once('x').unwrap_or((what, "1"));
    let status = status
        .parse::<u16>()
        .ok()
        .filter(|s| (400..=599).contains(s))
        .ok_or_else(|| format!("want an HTTP error status (400-599), got {status:?}"))?;
    let times = times
        .parse::<u32>()
        .ok()
        .filter(|t| *t > 0)
        .ok_or_else(|| format!("want a number of answers (at least 1) after x, got {times:?}"))?;
    Ok((endpoint, status, times))
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    if args.token_lifetime == 0 {
        return Err(Failure::new(
            crate::exit::USAGE,
            "--token-lifetime must be at least 1 second",
        ));
    }
    if !args.listen.ip().is_loopback() {
        eprintln!(
            "warning: listening on {}, not loopback: anyone who can reach it can mint tokens the emulator's key set accepts",
            args.listen
        );
    }
    let emu = Emulator::builder()
        .listen(args.listen)
        .token_lifetime(Duration::from_secs(args.token_lifetime))
        .start()
        .await
        .map_err(|e| {
            Failure::new(
                crate::exit::FAILURE,
                format!("cannot start the emulator: {e}"),
            )
        })?;
    for (endpoint, delay) in &args.delay {
        emu.set_delay(*endpoint, *delay);
        eprintln!("# {endpoint} answers wait {delay:?}");
    }
    for (endpoint, status, times) in &args.fail {
        emu.inject_fault(*endpoint, Fault::Status(*status), *times);
        eprintln!("# {endpoint}: the next {times} answer(s) fail with {status}");
    }
    let dir = match args.credentials_dir {
        Some(dir) => dir,
        None => std::env::temp_dir().join(format!("idtoken-emulator-{}", emu.addr().port())),
    };
    std::fs::create_dir_all(&dir).map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot create {}: {e}", dir.display()),
        )
    })?;
    let files = emu.write_credentials(&dir).map_err(|e| {
        Failure::new(
            crate::exit::FAILURE,
            format!("cannot write credentials to {}: {e}", dir.display()),
        )
    })?;

    eprintln!("# idtoken emulator on {} (Ctrl-C to stop)", emu.url());
    eprintln!("# service account: {}", emu.service_account_email());
    eprintln!(
        "# unset GOOGLE_APPLICATION_CREDENTIALS to use the metadata server instead of the key file"
    );
    eprintln!(
        "# other credentials (point GOOGLE_APPLICATION_CREDENTIALS at one): {}, {}, {}, {}, {}, {}, {}",
        files.authorized_user.display(),
        files.impersonated_from_service_account.display(),
        files.impersonated_from_user.display(),
        files.external_account_file.display(),
        files.external_account_url.display(),
        files.external_account_authorized_user.display(),
        files.impersonated_from_workforce_user.display(),
    );
    eprintln!(
        "# X.509 certificate source (STS over mutual TLS at {}): {}; trust the emulator's CA with SSL_CERT_FILE={}",
        emu.mtls_url(),
        files.external_account_certificate.display(),
        files.tls_ca.display(),
    );
    eprintln!(
        "# executable-sourced: {} (runs {} when GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1)",
        files.external_account_executable.display(),
        files.subject_token_executable.display(),
    );
    eprintln!(
        "# AWS-sourced (its instance metadata service is here too; unset AWS_* variables): {}",
        files.external_account_aws.display(),
    );
    eprintln!(
        "# a GitHub Actions job's OIDC variables (for an external_account file as google-github-actions/auth writes it): {}",
        files.github_actions_env.display(),
    );
    eprintln!(
        "# impersonate on request with --impersonate-service-account {} (the IAM endpoint is exported below)",
        emu.target_service_account_email(),
    );
    let host = emu.metadata_host();
    println!("export GCE_METADATA_HOST={host}");
    println!("export GCE_METADATA_IP={host}");
    println!(
        "export GOOGLE_APPLICATION_CREDENTIALS={}",
        files.service_account.display()
    );
    println!("export {}={}", super::JWKS_URL_OVERRIDE, emu.jwks_url());
    println!(
        "export {}={}",
        super::IAP_JWKS_URL_OVERRIDE,
        emu.iap_jwks_url()
    );
    // gcloud's form: a base URL ending in `/` (gcloud itself then sends
    // its IAM Credentials calls here too).
    println!("export {}={}/", super::IAM_ENDPOINT_OVERRIDE, emu.url());
    if !emu.addr().ip().is_loopback() {
        // Reached by name (a container network): its endpoints are plain
        // HTTP off this machine, which idtoken refuses unless told.
        println!("export {}=1", idtoken::ALLOW_INSECURE_HTTP);
    }

    tokio::signal::ctrl_c()
        .await
        .map_err(|e| Failure::new(crate::exit::FAILURE, format!("cannot wait for Ctrl-C: {e}")))?;
    eprintln!("# stopping");
    emu.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_names_an_endpoint_and_seconds() {
        assert_eq!(
            parse_delay("metadata_identity=1.5").expect("parses"),
            (Endpoint::MetadataIdentity, Duration::from_millis(1500))
        );
        let unknown = parse_delay("nope=1").expect_err("unknown endpoint");
        assert!(unknown.contains("metadata_identity"), "{unknown}");
        assert!(parse_delay("token").is_err());
        assert!(parse_delay("token=-1").is_err());
    }

    #[test]
    fn fail_names_an_endpoint_an_error_status_and_a_count() {
        assert_eq!(
            parse_fail("metadata_identity=503x3").expect("parses"),
            (Endpoint::MetadataIdentity, 503, 3)
        );
        assert_eq!(
            parse_fail("token=429").expect("parses"),
            (Endpoint::Token, 429, 1)
        );
        let unknown = parse_fail("nope=503").expect_err("unknown endpoint");
        assert!(unknown.contains("metadata_identity"), "{unknown}");
        for bad in [
            "token",
            "token=200",
            "token=600",
            "token=503x0",
            "token=503x",
            "token=x3",
        ] {
            assert!(parse_fail(bad).is_err(), "{bad}");
        }
    }
}
