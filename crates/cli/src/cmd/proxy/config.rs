//! `idtoken proxy`'s flags in two steps: clap reads them into [`Args`],
//! then [`resolve`] checks and resolves them into a [`ProxyConfig`], with
//! no clap types, before anything binds a socket or fetches a token.

use std::net::SocketAddr;
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use idtoken::TokenHeader;

use super::log::LogFormat;
use crate::Failure;
use crate::cmd::CredsConfig;
use crate::token_cache::Cache;

/// Arguments of `idtoken proxy`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The service to forward to (`https://SERVICE.run.app`).
    #[arg(long, value_name = "URL")]
    target: String,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Allow listening on a non-loopback address (--listen, --admin-listen):
    /// anyone who can reach it acts with your identity.
    #[arg(long)]
    allow_non_loopback: bool,
    /// Also serve /healthz, /readyz and /metrics (Prometheus) on this
    /// address, loopback unless --allow-non-loopback; port 0 picks a free
    /// one. It never forwards a request and never shows a token.
    #[arg(long, value_name = "ADDR")]
    admin_listen: Option<SocketAddr>,
    /// Access-log lines as text, or as one JSON object per line (json).
    #[arg(long, value_name = "FORMAT", value_parser = parse_log_format, default_value = "text")]
    log_format: LogFormat,
    /// Also accept requests naming this host or address (repeatable). By
    /// default only loopback addresses, localhost names and a non-loopback
    /// --listen address are accepted, so that a web page cannot reach the
    /// proxy through DNS rebinding, or through addresses (0.0.0.0, a LAN
    /// address) to which browsers send no Fetch Metadata.
    #[arg(long, value_name = "NAME")]
    allow_host: Vec<String>,
    /// Token audience (default: the target's origin; the function URL for Cloud Functions).
    #[arg(long)]
    audience: Option<String>,
    /// Header that carries the token: authorization or
    /// x-serverless-authorization. A client's own header of that name is
    /// replaced (use x-serverless-authorization to keep `Authorization`).
    #[arg(long, value_name = "HEADER", value_parser = parse_header, default_value = "authorization")]
    header: TokenHeader,
    /// Answer 504 when the target sends no response headers within SECS.
    #[arg(long, value_name = "SECS", default_value_t = 60.0)]
    upstream_timeout: f64,
    /// Also serve HTTP/2 without TLS (h2c, prior knowledge) to local
    /// clients, and speak HTTP/2 to the target (ALPN for https, prior
    /// knowledge for http): for gRPC.
    #[arg(long)]
    http2: bool,
    #[command(flatten)]
    creds: super::super::CredsArgs,
    #[command(flatten)]
    cache: super::super::CacheArgs,
}

/// `--header`: the library's [`TokenHeader`], the two a proxy may set.
fn parse_header(value: &str) -> Result<TokenHeader, String> {
    match value.to_ascii_lowercase().as_str() {
        "authorization" => Ok(TokenHeader::Authorization),
        "x-serverless-authorization" => Ok(TokenHeader::XServerlessAuthorization),
        other => Err(format!(
            "{other:?}: want authorization or x-serverless-authorization"
        )),
    }
}

/// `--log-format`: text or json.
fn parse_log_format(value: &str) -> Result<LogFormat, String> {
    match value.to_ascii_lowercase().as_str() {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        other => Err(format!("{other:?}: want text or json")),
    }
}

/// Everything `idtoken proxy` was asked to do, checked.
#[derive(Debug)]
pub(crate) struct ProxyConfig {
    pub(super) target: Target,
    /// The audience tokens are minted for.
    pub(super) audience: String,
    pub(super) header: TokenHeader,
    /// Where to listen; loopback unless `--allow-non-loopback`.
    pub(super) listen: SocketAddr,
    /// Names the guard accepts besides loopback and localhost.
    pub(super) allowed_hosts: Vec<String>,
    pub(super) upstream_timeout: Duration,
    pub(super) http2: bool,
    pub(super) creds: CredsConfig,
    /// The token cache: read once at start, written with the first token.
    pub(super) cache: Cache,
    /// The admin server, with `--admin-listen`.
    pub(super) admin: Option<AdminConfig>,
    pub(super) log_format: LogFormat,
}

/// Where the admin server listens and the names its guard accepts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AdminConfig {
    /// Loopback unless `--allow-non-loopback`.
    pub(super) listen: SocketAddr,
    /// As [`ProxyConfig::allowed_hosts`], for the admin address.
    pub(super) allowed_hosts: Vec<String>,
}

/// The target URL in the parts the proxy uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    pub(super) scheme: Scheme,
    pub(super) authority: Authority,
    /// The target's path without a trailing `/`, prefixed to every request.
    pub(super) prefix: String,
    /// `scheme://authority` of the target, as `Location` headers show it.
    pub(super) origin: String,
}

/// Checks the flags and resolves them (target, audience, timeout,
/// credential flags). Errors are usage errors (exit 2), except an audience
/// the library cannot derive from the target (exit 1, as everywhere).
pub(crate) fn resolve(args: Args) -> Result<ProxyConfig, Failure> {
    may_listen(
        "--listen",
        args.listen,
        args.allow_non_loopback,
        "anyone who can reach it would act with your identity",
    )?;
    if let Some(admin) = args.admin_listen {
        may_listen(
            "--admin-listen",
            admin,
            args.allow_non_loopback,
            "anyone who can reach it would read the proxy's metrics and readiness",
        )?;
    }
    let target = target(&args.target)?;
    // `Duration` panics on NaN, infinity and values past its range.
    let upstream_timeout = Duration::try_from_secs_f64(args.upstream_timeout)
        .ok()
        .filter(|_| args.upstream_timeout > 0.0)
        .ok_or_else(|| {
            Failure::new(
                crate::exit::USAGE,
                "--upstream-timeout wants a positive number of seconds",
            )
        })?;
    let audience = match &args.audience {
        Some(a) => a.clone(),
        None => idtoken::audience_for_url(&args.target)?,
    };
    let creds = args.creds.resolve()?;
    Ok(ProxyConfig {
        allowed_hosts: allowed_hosts(&args.allow_host, args.listen),
        admin: args.admin_listen.map(|listen| AdminConfig {
            listen,
            allowed_hosts: allowed_hosts(&args.allow_host, listen),
        }),
        log_format: args.log_format,
        target,
        audience,
        header: args.header,
        listen: args.listen,
        upstream_timeout,
        http2: args.http2,
        creds,
        cache: args.cache.resolve(),
    })
}

/// The rule for every address the proxy binds: loopback, unless
/// `--allow-non-loopback`. `flag` names the address in the error, `risk`
/// says what listening elsewhere would expose.
fn may_listen(flag: &str, addr: SocketAddr, allow: bool, risk: &str) -> Result<(), Failure> {
    if addr.ip().is_loopback() || allow {
        return Ok(());
    }
    Err(Failure::new(
        crate::exit::USAGE,
        format!(
            "refusing to listen on {addr} ({flag}): {risk}; pass --allow-non-loopback to do it anyway"
        ),
    ))
}

fn target(url: &str) -> Result<Target, Failure> {
    let uri: Uri = url
        .parse()
        .map_err(|e| Failure::new(crate::exit::USAGE, format!("--target {url:?}: {e}")))?;
    let not_http = || {
        Failure::new(
            crate::exit::USAGE,
            format!("--target {url:?}: want an http(s) URL"),
        )
    };
    let (Some(scheme), Some(authority)) = (uri.scheme().cloned(), uri.authority().cloned()) else {
        return Err(not_http());
    };
    if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
        return Err(not_http());
    }
    Ok(Target {
        origin: format!("{scheme}://{authority}"),
        prefix: uri.path().trim_end_matches('/').to_owned(),
        scheme,
        authority,
    })
}

/// The names a guard accepts besides loopback and localhost: the
/// `--allow-host` names, and the address it was told to listen on when
/// that is a particular non-loopback one (clients elsewhere name it).
fn allowed_hosts(allow_host: &[String], listen: SocketAddr) -> Vec<String> {
    let mut hosts = allow_host.to_vec();
    let ip = listen.ip();
    if !ip.is_loopback() && !ip.is_unspecified() {
        hosts.push(ip.to_string());
    }
    hosts
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `idtoken proxy ARGS...` as clap reads it.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn resolved(argv: &[&str]) -> Result<ProxyConfig, Failure> {
        let cli = Cli::try_parse_from(std::iter::once("proxy").chain(argv.iter().copied()))
            .expect("clap accepts the flags");
        resolve(cli.args)
    }

    fn refused(argv: &[&str]) -> Failure {
        resolved(argv).expect_err("refused")
    }

    #[test]
    fn a_cloud_run_target_resolves_to_its_origin_as_audience_and_the_defaults() {
        let c = resolved(&["--target", "https://svc-abc-uc.a.run.app/base/"]).expect("resolves");
        assert_eq!(c.target.origin, "https://svc-abc-uc.a.run.app");
        assert_eq!(c.target.prefix, "/base");
        assert_eq!(c.target.scheme, Scheme::HTTPS);
        assert_eq!(c.audience, "https://svc-abc-uc.a.run.app");
        assert_eq!(c.header, TokenHeader::Authorization);
        assert_eq!(c.listen, "127.0.0.1:8080".parse().expect("addr"));
        assert!(c.allowed_hosts.is_empty());
        assert_eq!(c.upstream_timeout, Duration::from_secs(60));
        assert!(!c.http2);
        assert!(c.creds.impersonate.is_none() && c.creds.file.is_none());
        assert_eq!(c.admin, None);
        assert_eq!(c.log_format, LogFormat::Text);
    }

    #[test]
    fn the_admin_address_follows_the_same_loopback_rule_as_the_listen_address() {
        let c = resolved(&[
            "--target",
            "http://127.0.0.1:9",
            "--admin-listen",
            "127.0.0.1:0",
            "--allow-host",
            "dev.internal",
        ])
        .expect("resolves");
        let admin = c.admin.expect("admin");
        assert_eq!(admin.listen, "127.0.0.1:0".parse().expect("addr"));
        assert_eq!(admin.allowed_hosts, ["dev.internal"]);

        let f = refused(&[
            "--target",
            "http://127.0.0.1:9",
            "--admin-listen",
            "192.0.2.7:9100",
        ]);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message.contains("--admin-listen") && f.message.contains("--allow-non-loopback"),
            "{}",
            f.message
        );
        let c = resolved(&[
            "--target",
            "http://127.0.0.1:9",
            "--admin-listen",
            "192.0.2.7:9100",
            "--allow-non-loopback",
        ])
        .expect("resolves");
        let admin = c.admin.expect("admin");
        assert_eq!(admin.allowed_hosts, ["192.0.2.7"], "scrapers name it");
        assert!(
            c.allowed_hosts.is_empty(),
            "the proxy's own guard is unchanged"
        );
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let c = resolved(&["--target", "http://x", "--log-format", "JSON"]).expect("resolves");
        assert_eq!(c.log_format, LogFormat::Json);
        assert_eq!(parse_log_format("text"), Ok(LogFormat::Text));
        let err = parse_log_format("logfmt").expect_err("refused");
        assert!(err.contains("text or json"), "{err}");
    }

    #[test]
    fn flags_reach_the_config() {
        let c = resolved(&[
            "--target",
            "http://127.0.0.1:9",
            "--audience",
            "https://api.example",
            "--header",
            "X-Serverless-Authorization",
            "--upstream-timeout",
            "0.5",
            "--http2",
            "--allow-host",
            "dev.internal",
            "--impersonate-service-account",
            "a@x,t@x",
            "--include-email",
        ])
        .expect("resolves");
        assert_eq!(c.audience, "https://api.example");
        assert_eq!(c.header, TokenHeader::XServerlessAuthorization);
        assert_eq!(c.upstream_timeout, Duration::from_millis(500));
        assert!(c.http2);
        assert_eq!(c.allowed_hosts, ["dev.internal"]);
        let how = c.creds.impersonate.expect("impersonation");
        assert_eq!(how.target(), "t@x");
        assert_eq!(how.delegate_emails(), ["a@x"]);
        assert!(c.creds.include_email);
    }

    #[test]
    fn a_cloud_functions_target_gets_the_function_url_from_the_library() {
        let url = "https://us-central1-p.cloudfunctions.net/hello/x";
        let c = resolved(&["--target", url]).expect("resolves");
        assert_eq!(
            c.audience,
            idtoken::audience_for_url(url).expect("audience")
        );
    }

    #[test]
    fn non_loopback_listening_needs_the_flag_and_a_particular_address_is_allowed_as_host() {
        let f = refused(&["--target", "http://127.0.0.1:9", "--listen", "0.0.0.0:0"]);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("--allow-non-loopback"), "{}", f.message);
        let c = resolved(&[
            "--target",
            "http://127.0.0.1:9",
            "--listen",
            "192.0.2.7:0",
            "--allow-non-loopback",
        ])
        .expect("resolves");
        assert_eq!(c.allowed_hosts, ["192.0.2.7"]);
        // The unspecified address, as a user who asks for every interface
        // would write it (parsed only: nothing binds in this test).
        let every_interface = format!("{}:0", std::net::Ipv4Addr::UNSPECIFIED);
        let c = resolved(&[
            "--target",
            "http://127.0.0.1:9",
            "--listen",
            &every_interface,
            "--allow-non-loopback",
        ])
        .expect("resolves");
        assert!(
            c.allowed_hosts.is_empty(),
            "the unspecified address is no name to accept"
        );
    }

    #[test]
    fn targets_that_are_not_http_urls_are_usage_errors() {
        for bad in ["ftp://example.com", "/just/a/path", "https://exa mple.com"] {
            let f = refused(&["--target", bad]);
            assert_eq!(f.code, crate::exit::USAGE, "{bad}: {}", f.message);
            assert!(f.message.starts_with("--target "), "{}", f.message);
        }
    }

    #[test]
    fn absurd_upstream_timeouts_are_usage_errors_not_panics() {
        for secs in ["0", "-1", "NaN", "inf", "1e20"] {
            let flag = format!("--upstream-timeout={secs}");
            let f = refused(&["--target", "http://127.0.0.1:9", &flag]);
            assert_eq!(f.code, crate::exit::USAGE, "{secs}");
            assert!(f.message.contains("--upstream-timeout"), "{}", f.message);
        }
    }

    #[test]
    fn bad_credential_flags_are_usage_errors_before_any_credentials_are_read() {
        let f = refused(&["--target", "http://127.0.0.1:9", "--include-email"]);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message.contains("--impersonate-service-account"),
            "{}",
            f.message
        );
        let f = refused(&[
            "--target",
            "http://127.0.0.1:9",
            "--impersonate-service-account",
            "not-an-email",
        ]);
        assert_eq!(f.code, crate::exit::USAGE);
    }

    #[test]
    fn the_header_flag_takes_the_two_bearer_headers_only() {
        assert_eq!(
            parse_header("authorization"),
            Ok(TokenHeader::Authorization)
        );
        let err = parse_header("x-goog-iap-jwt-assertion").expect_err("refused");
        assert!(err.contains("x-serverless-authorization"), "{err}");
        assert!(
            Cli::try_parse_from(["proxy", "--target", "http://x", "--header", "cookie"]).is_err()
        );
    }
}
