//! Which URLs may receive credentials: the one rule for every endpoint a
//! credentials file or a caller names (`token_uri`, `token_url`,
//! `service_account_impersonation_url`, `credential_source.url`, the IAM
//! endpoint). Refresh tokens, signed assertions, access tokens and subject
//! tokens travel to them, so:
//!
//! - `https://` anywhere;
//! - plain `http://` only to this machine (`localhost`, 127.0.0.0/8,
//!   `[::1]`): the emulator;
//! - plain `http://` elsewhere only with [`ALLOW_INSECURE_HTTP`] set, for
//!   an emulator reached by name (a container network); `idtoken emulator`
//!   prints that line when it listens beyond loopback.
//!
//! The metadata server is not named here: it is plain HTTP on Google's
//! side too, and link-local. AWS's instance metadata service has its own
//! rule ([`check_aws_metadata`]).
//!
//! Google's libraries dropped their endpoint allow-lists in 2023 (a file
//! may name any https endpoint); `idtoken doctor` warns about endpoints
//! outside Google's domain instead ([`is_google`]).

use std::net::IpAddr;

use reqwest::Url;

use crate::error::CredentialsProblem;

pub(crate) use crate::env::ALLOW_INSECURE_HTTP;

/// Checks `url`, named by `field`, under the rule above.
pub(crate) fn check(field: &'static str, url: &str) -> Result<(), CredentialsProblem> {
    let invalid = |reason: String| CredentialsProblem::InvalidField { field, reason };
    let parsed = Url::parse(url).map_err(|e| invalid(format!("not a URL ({e})")))?;
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if on_this_machine(&parsed) || insecure_allowed() => Ok(()),
        "http" => Err(invalid(format!(
            "plain http:// to {} would send credentials in clear text; use https://, or for an emulator reached by name set {ALLOW_INSECURE_HTTP}=1",
            parsed.host_str().unwrap_or("?")
        ))),
        other => Err(invalid(format!("not an http(s) URL (scheme {other:?})"))),
    }
}

/// Checks an AWS instance metadata URL (`region_url`, `url`,
/// `imdsv2_session_token_url` of an AWS-sourced external account), named
/// by `field`: the rule above, or plain `http://` to the metadata
/// service's own link-local addresses, `169.254.169.254` and
/// `[fd00:ec2::254]`, as AWS serves it.
///
/// These URLs hand out AWS credentials and receive at most an IMDSv2
/// session token, which works only from the instance; no Google secret
/// goes there. Google's clients accept any URL here (they checked for
/// those two addresses once, and dropped it): plain `http://` to any
/// other host stays refused, as a man in the middle could hand out
/// credentials of its choosing.
pub(crate) fn check_aws_metadata(field: &'static str, url: &str) -> Result<(), CredentialsProblem> {
    let imds = Url::parse(url).is_ok_and(|u| {
        u.scheme() == "http" && matches!(u.host_str(), Some("169.254.169.254" | "[fd00:ec2::254]"))
    });
    if imds { Ok(()) } else { check(field, url) }
}

/// Whether `url` names this machine: `localhost` or a loopback address.
fn on_this_machine(url: &Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    match bare.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => host.eq_ignore_ascii_case("localhost"),
    }
}

fn insecure_allowed() -> bool {
    std::env::var(ALLOW_INSECURE_HTTP).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Whether `url` is one of Google's endpoints: a host under
/// `googleapis.com`, or under `universe_domain` when the file names one.
pub(crate) fn is_google(url: &str, universe_domain: Option<&str>) -> bool {
    let Some(host) = Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_ascii_lowercase))
    else {
        return false;
    };
    let under = |domain: &str| {
        let domain = domain.trim_matches('.').to_ascii_lowercase();
        host == domain || host.ends_with(&format!(".{domain}"))
    };
    under("googleapis.com") || universe_domain.is_some_and(under)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_anywhere_and_http_only_to_this_machine() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "https://sts.example/v1/token",
            "http://127.0.0.1:8080/token",
            "http://127.9.9.9/token",
            "http://localhost:1/token",
            "http://LOCALHOST/token",
            "http://[::1]:8080/token",
        ] {
            assert!(check("token_uri", ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://oauth2.googleapis.com/token",
            "http://emulator:8080/token",
            "http://10.0.0.5/token",
            "http://[::ffff:127.0.0.1]/token",
            "http://localhost.evil.example/token",
        ] {
            let e = check("token_uri", bad).expect_err(bad).to_string();
            assert!(
                e.contains("token_uri") && e.contains(ALLOW_INSECURE_HTTP),
                "{e}"
            );
        }
        for bad in ["ftp://x/token", "oauth2.googleapis.com/token", ""] {
            assert!(check("token_uri", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn aws_metadata_urls_are_the_link_local_service_or_what_check_allows() {
        for ok in [
            "http://169.254.169.254/latest/meta-data/iam/security-credentials",
            "http://[fd00:ec2::254]/latest/api/token",
            "http://127.0.0.1:8080/latest/meta-data/placement/availability-zone",
            "https://imds.example/latest",
        ] {
            assert!(
                check_aws_metadata("credential_source.url", ok).is_ok(),
                "{ok}"
            );
        }
        for bad in [
            "http://169.254.169.253/latest",
            "http://imds.example/latest",
            "http://169.254.169.254.evil.example/latest",
            "file:///etc/passwd",
        ] {
            let e = check_aws_metadata("credential_source.url", bad)
                .expect_err(bad)
                .to_string();
            assert!(e.contains("credential_source.url"), "{e}");
        }
    }

    #[test]
    fn google_endpoints_are_under_googleapis_com_or_the_universe_domain() {
        assert!(is_google("https://oauth2.googleapis.com/token", None));
        assert!(is_google("https://sts.googleapis.com/v1/token", None));
        assert!(!is_google(
            "https://oauth2.googleapis.com.evil.example/token",
            None
        ));
        assert!(!is_google("https://evilgoogleapis.com/token", None));
        assert!(!is_google("http://127.0.0.1:8080/token", None));
        assert!(is_google(
            "https://sts.example-universe.test/v1/token",
            Some("example-universe.test")
        ));
    }
}
