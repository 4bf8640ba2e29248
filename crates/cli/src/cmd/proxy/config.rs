//! `idtoken proxy`'s flags in two steps: clap reads them into [`Args`],
//! then [`resolve`] checks and resolves them into one [`ProxyConfig`] per
//! listener, with no clap types, before anything binds a socket or
//! fetches a token. The flags describe one listener; `--config` reads
//! several from a file (`config_file`), each through the same
//! [`resolve_listener`], so every rule (loopback, target, audience,
//! timeout, impersonation) is applied in one place.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::Uri;
use http::uri::{Authority, Scheme};
use idtoken::TokenHeader;

use super::config_file;
use super::log::LogFormat;
use crate::Failure;
use crate::cmd::{CredsArgs, CredsConfig, Naming};
use crate::token_cache::Cache;

/// The flags that describe one listener, which `--config` replaces (clap
/// ids: the fields' names). `--allow-non-loopback` stays, for
/// `--admin-listen` (each listener has its own key).
const PER_LISTENER: [&str; 10] = [
    "target",
    "listen",
    "allow_host",
    "audience",
    "header",
    "upstream_timeout",
    "header_timeout",
    "http2",
    "impersonate_service_account",
    "include_email",
];

/// `--listen` unless given.
const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// `--upstream-timeout` unless given, in seconds.
const DEFAULT_UPSTREAM_TIMEOUT: f64 = 60.0;
/// `--header-timeout` unless given, in seconds: nginx's
/// `client_header_timeout` default.
const DEFAULT_HEADER_TIMEOUT: f64 = 60.0;

/// Arguments of `idtoken proxy`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// Several listeners, each with its target, from a TOML file (one
    /// [[listener]] table each; see docs/PROXY.md) instead of --target and
    /// the flags that describe one listener. --credentials, --iam-endpoint,
    /// --no-cache, --log-format and --admin-listen still apply, to all of
    /// them; --allow-non-loopback then applies to --admin-listen only.
    #[arg(long, value_name = "FILE", conflicts_with_all = PER_LISTENER)]
    config: Option<PathBuf>,
    /// The service to forward to (`https://SERVICE.run.app`).
    #[arg(long, value_name = "URL", required_unless_present = "config")]
    target: Option<String>,
    /// Address to listen on; port 0 picks a free one.
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
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
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_UPSTREAM_TIMEOUT)]
    upstream_timeout: f64,
    /// Close a client's HTTP/1.1 connection when its request line and
    /// headers are not all in within SECS of the proxy being ready for
    /// them, idle time between keep-alive requests included, so that
    /// clients that connect and send nothing, or a byte at a time, cannot
    /// hold connections for ever. (With --http2, SECS also bounds the wait
    /// for the bytes that tell HTTP/2 from HTTP/1.1, and an HTTP/2
    /// connection with no request in progress for SECS to twice SECS is
    /// closed, with GOAWAY.)
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_HEADER_TIMEOUT)]
    header_timeout: f64,
    /// Also serve HTTP/2 without TLS (h2c, prior knowledge) to local
    /// clients, and speak HTTP/2 to the target (ALPN for https, prior
    /// knowledge for http): for gRPC.
    #[arg(long)]
    http2: bool,
    #[command(flatten)]
    creds: CredsArgs,
    #[command(flatten)]
    cache: super::super::CacheArgs,
}

/// One listener's settings as given, before any check: the flags, or one
/// `[[listener]]` of a config file.
#[derive(Debug, Clone, PartialEq)]
struct Listener {
    target: String,
    listen: SocketAddr,
    allow_non_loopback: bool,
    allow_host: Vec<String>,
    audience: Option<String>,
    header: TokenHeader,
    upstream_timeout: f64,
    header_timeout: f64,
    http2: bool,
    /// The impersonation chain, as `--impersonate-service-account` takes it.
    impersonate_service_account: Option<String>,
    include_email: bool,
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

/// One listener, checked: its target and how it reaches it.
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
    /// How long a client connection may take to send a request head,
    /// idle keep-alive time included.
    pub(super) header_timeout: Duration,
    pub(super) http2: bool,
    pub(super) creds: CredsConfig,
    /// The token cache: read once at start, written with the first token.
    pub(super) cache: Cache,
}

/// Everything `idtoken proxy` was asked to do, checked: its listeners,
/// and what they share.
#[derive(Debug)]
pub(crate) struct Proxies {
    /// One or more, in the order given.
    pub(super) listeners: Vec<ProxyConfig>,
    /// The admin server, with `--admin-listen`: one for all listeners.
    pub(super) admin: Option<AdminConfig>,
    pub(super) log_format: LogFormat,
}

/// Where the admin server listens and the names its guard accepts.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct AdminConfig {
    /// Loopback unless `--allow-non-loopback`.
    pub(super) listen: SocketAddr,
    /// As [`ProxyConfig::allowed_hosts`], for the admin address: every
    /// listener's `--allow-host` names.
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

/// Checks the flags (or the file `--config` names) and resolves them:
/// one [`ProxyConfig`] per listener, and what they share. Errors are usage
/// errors (exit 2), except an audience the library cannot derive from the
/// target (exit 1, as everywhere).
pub(crate) fn resolve(args: Args) -> Result<Proxies, Failure> {
    let (listeners, names) = listeners(&args)?;
    let admin = match args.admin_listen {
        Some(listen) => {
            may_listen(
                "--admin-listen",
                listen,
                args.allow_non_loopback,
                Naming::Flags,
                "anyone who can reach it would read the proxy's metrics and readiness",
            )?;
            Some(AdminConfig {
                listen,
                allowed_hosts: allowed_hosts(&names, listen),
            })
        }
        None => None,
    };
    Ok(Proxies {
        listeners,
        admin,
        log_format: args.log_format,
    })
}

/// The listeners the flags or the file describe, resolved, and every
/// `allow-host` name they were given (the admin server's guard accepts
/// them too: a scraper names the machine as a client does).
fn listeners(args: &Args) -> Result<(Vec<ProxyConfig>, Vec<String>), Failure> {
    let Some(path) = &args.config else {
        let listener = Listener {
            // clap requires --target without --config.
            target: args.target.clone().unwrap_or_default(),
            listen: args.listen,
            allow_non_loopback: args.allow_non_loopback,
            allow_host: args.allow_host.clone(),
            audience: args.audience.clone(),
            header: args.header,
            upstream_timeout: args.upstream_timeout,
            header_timeout: args.header_timeout,
            http2: args.http2,
            impersonate_service_account: args.creds.impersonate_service_account.clone(),
            include_email: args.creds.include_email,
        };
        let names = listener.allow_host.clone();
        return Ok((
            vec![resolve_listener(listener, args, Naming::Flags)?],
            names,
        ));
    };
    let entries = config_file::read(path)?;
    let mut configs: Vec<ProxyConfig> = Vec::with_capacity(entries.len());
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let config = listener(entry.entry)
            .map_err(|why| Failure::new(crate::exit::USAGE, why))
            .and_then(|l| {
                for name in &l.allow_host {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
                resolve_listener(l, args, Naming::Keys)
            })
            .map_err(|f| entry.place.refuse(f))?;
        // Port 0 picks a free port each time: never the same address.
        if config.listen.port() != 0
            && let Some(i) = configs.iter().position(|c| c.listen == config.listen)
        {
            return Err(entry.place.refuse(Failure::new(
                crate::exit::USAGE,
                format!("listen: {} is also listener #{}'s", config.listen, i + 1),
            )));
        }
        configs.push(config);
    }
    Ok((configs, names))
}

/// A config file's listener with the flags' defaults; the error names
/// the key at fault.
fn listener(entry: config_file::Entry) -> Result<Listener, String> {
    let listen = entry
        .listen
        .ok_or("listen: missing (the address to listen on, such as \"127.0.0.1:8081\")")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| format!("listen {listen:?}: {e} (want IP:PORT)"))?;
    let target = entry
        .target
        .ok_or("target: missing (the service to forward to)")?;
    let header = match entry.header {
        Some(h) => parse_header(&h).map_err(|e| format!("header: {e}"))?,
        None => TokenHeader::Authorization,
    };
    Ok(Listener {
        target,
        listen,
        allow_non_loopback: entry.allow_non_loopback.unwrap_or(false),
        allow_host: entry.allow_host.unwrap_or_default(),
        audience: entry.audience,
        header,
        upstream_timeout: entry.upstream_timeout.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT),
        header_timeout: entry.header_timeout.unwrap_or(DEFAULT_HEADER_TIMEOUT),
        http2: entry.http2.unwrap_or(false),
        impersonate_service_account: entry.impersonate_service_account,
        include_email: entry.include_email.unwrap_or(false),
    })
}

/// Checks one listener's settings and resolves them (target, audience,
/// timeout, impersonation); errors name the settings as `naming` says.
/// The credentials file, IAM endpoint and token cache are the flags',
/// shared by every listener.
fn resolve_listener(l: Listener, args: &Args, naming: Naming) -> Result<ProxyConfig, Failure> {
    let name = |key| naming.name(key);
    may_listen(
        &name("listen"),
        l.listen,
        l.allow_non_loopback,
        naming,
        "anyone who can reach it would act with your identity",
    )?;
    let target = target(&l.target, &name("target"))?;
    let upstream_timeout = seconds(l.upstream_timeout, &name("upstream-timeout"))?;
    let header_timeout = seconds(l.header_timeout, &name("header-timeout"))?;
    let audience = match &l.audience {
        Some(a) => a.clone(),
        None => idtoken::audience_for_url(&l.target)?,
    };
    let creds = CredsArgs {
        impersonate_service_account: l.impersonate_service_account.clone(),
        include_email: l.include_email,
        ..args.creds.clone()
    }
    .resolve_named(naming)?;
    Ok(ProxyConfig {
        allowed_hosts: allowed_hosts(&l.allow_host, l.listen),
        target,
        audience,
        header: l.header,
        listen: l.listen,
        upstream_timeout,
        header_timeout,
        http2: l.http2,
        creds,
        cache: args.cache.resolve(),
    })
}

/// The longest timeout taken: a day. `Duration` itself would take up to
/// 584 billion years, and `Instant + Duration` (hyper's deadlines) panics
/// long before that.
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// A timeout's seconds as given (`named` in the error): positive and at
/// most [`MAX_TIMEOUT_SECS`] (`Duration` panics on NaN and infinity).
fn seconds(secs: f64, named: &str) -> Result<Duration, Failure> {
    Duration::try_from_secs_f64(secs)
        .ok()
        .filter(|_| secs > 0.0 && secs <= MAX_TIMEOUT_SECS)
        .ok_or_else(|| {
            Failure::new(
                crate::exit::USAGE,
                format!("{named} wants a positive number of seconds, at most 86400 (a day)"),
            )
        })
}

/// The rule for every address the proxy binds: loopback, unless
/// `--allow-non-loopback` (`allow-non-loopback = true` in a config file).
/// `named` names the address in the error, `risk` says what listening
/// elsewhere would expose.
fn may_listen(
    named: &str,
    addr: SocketAddr,
    allow: bool,
    naming: Naming,
    risk: &str,
) -> Result<(), Failure> {
    if addr.ip().is_loopback() || allow {
        return Ok(());
    }
    let how = match naming {
        Naming::Flags => "pass --allow-non-loopback",
        Naming::Keys => "set allow-non-loopback = true",
    };
    Err(Failure::new(
        crate::exit::USAGE,
        format!("refusing to listen on {addr} ({named}): {risk}; {how} to do it anyway"),
    ))
}

/// `url`, the value of the setting `named`, in the parts the proxy uses.
fn target(url: &str, named: &str) -> Result<Target, Failure> {
    // Credentials in the authority would be shown wherever the target is
    // (the start-up line, 502/504 texts, metrics labels), and the proxy
    // never sends them upstream: refuse them, without echoing the URL.
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if rest
        .split(['/', '?', '#'])
        .next()
        .is_some_and(|a| a.contains('@'))
    {
        return Err(Failure::new(
            crate::exit::USAGE,
            format!(
                "{named} with credentials (user:password@host) is refused: the proxy does not send them, and they would show in its messages; give the target without them"
            ),
        ));
    }
    let uri: Uri = url
        .parse()
        .map_err(|e| Failure::new(crate::exit::USAGE, format!("{named} {url:?}: {e}")))?;
    let not_http = || {
        Failure::new(
            crate::exit::USAGE,
            format!("{named} {url:?}: want an http(s) URL"),
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

    fn resolved_all(argv: &[&str]) -> Result<Proxies, Failure> {
        let cli = Cli::try_parse_from(std::iter::once("proxy").chain(argv.iter().copied()))
            .expect("clap accepts the flags");
        resolve(cli.args)
    }

    fn resolved(argv: &[&str]) -> Result<ProxyConfig, Failure> {
        let mut configs = resolved_all(argv)?.listeners;
        assert_eq!(configs.len(), 1, "the flags describe one listener");
        Ok(configs.remove(0))
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
        assert_eq!(c.header_timeout, Duration::from_secs(60));
        assert!(!c.http2);
        assert!(c.creds.impersonate.is_none() && c.creds.file.is_none());
        let p =
            resolved_all(&["--target", "https://svc-abc-uc.a.run.app/base/"]).expect("resolves");
        assert_eq!(p.admin, None);
        assert_eq!(p.log_format, LogFormat::Text);
    }

    #[test]
    fn the_admin_address_follows_the_same_loopback_rule_as_the_listen_address() {
        let c = resolved_all(&[
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
        let c = resolved_all(&[
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
            c.listeners[0].allowed_hosts.is_empty(),
            "the proxy's own guard is unchanged"
        );
    }

    #[test]
    fn the_log_format_is_text_or_json() {
        let c = resolved_all(&["--target", "http://x", "--log-format", "JSON"]).expect("resolves");
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
            "--header-timeout",
            "2.5",
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
        assert_eq!(c.header_timeout, Duration::from_millis(2500));
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
    fn a_target_with_credentials_is_refused_without_showing_them() {
        // They would go into the start-up line, every 502/504 text, the
        // metrics' `target` label and /readyz, and never upstream.
        for bad in [
            "https://user:s3cret@svc.example",
            "http://s3cret@127.0.0.1:9/x",
        ] {
            let f = refused(&["--target", bad]);
            assert_eq!(f.code, crate::exit::USAGE, "{bad}: {}", f.message);
            assert!(f.message.starts_with("--target "), "{}", f.message);
            assert!(!f.message.contains("s3cret"), "{}", f.message);
        }
    }

    #[test]
    fn absurd_timeouts_are_usage_errors_not_panics() {
        // 1e19 s fits a `Duration` but not an `Instant` plus it: hyper's
        // header deadline would panic in every connection.
        for flag in ["--upstream-timeout", "--header-timeout"] {
            for secs in ["0", "-1", "NaN", "inf", "1e20", "1e19", "86400.5"] {
                let arg = format!("{flag}={secs}");
                let f = refused(&["--target", "http://127.0.0.1:9", &arg]);
                assert_eq!(f.code, crate::exit::USAGE, "{arg}");
                assert!(f.message.contains(flag), "{}", f.message);
            }
            let arg = format!("{flag}=86400");
            resolved(&["--target", "http://127.0.0.1:9", &arg]).expect("a day is taken");
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

    /// What `--config` with a file holding `text` resolves to.
    fn from_file(text: &str, more: &[&str]) -> Result<Vec<ProxyConfig>, Failure> {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("proxy.toml");
        std::fs::write(&path, text).expect("write");
        let path = path.display().to_string();
        let argv = ["proxy", "--config", &path]
            .into_iter()
            .chain(more.iter().copied());
        let cli = Cli::try_parse_from(argv).expect("clap accepts the flags");
        resolve(cli.args).map(|p| p.listeners)
    }

    fn file_refused(text: &str) -> String {
        let f = from_file(text, &[]).expect_err("refused");
        assert_eq!(f.code, crate::exit::USAGE, "{}", f.message);
        assert!(
            f.message.contains("proxy.toml: listener #"),
            "{}",
            f.message
        );
        f.message
    }

    #[test]
    fn config_with_a_flag_that_describes_one_listener_is_refused_naming_both() {
        for flag in [
            &["--target", "http://127.0.0.1:9"][..],
            &["--listen", "127.0.0.1:1"],
            &["--http2"],
            &["--impersonate-service-account", "t@x"],
        ] {
            let argv = ["proxy", "--config", "proxy.toml"].iter().chain(flag);
            let e = Cli::try_parse_from(argv).err().expect("refused");
            assert_eq!(e.kind(), clap::error::ErrorKind::ArgumentConflict);
            let text = e.to_string();
            assert!(
                text.contains("--config") && text.contains(flag[0]),
                "{text}"
            );
        }
        let e = Cli::try_parse_from(["proxy"]).err().expect("refused");
        assert!(e.to_string().contains("--target"), "{e}");
    }

    #[test]
    fn each_listener_of_a_file_resolves_with_the_shared_credential_flags() {
        let c = from_file(
            r#"
            [[listener]]
            listen = "127.0.0.1:8081"
            target = "https://a-abc-uc.a.run.app/base/"

            [[listener]]
            listen = "127.0.0.1:8082"
            target = "http://127.0.0.1:9"
            audience = "https://b.example"
            impersonate-service-account = "d@x,t@x"
            include-email = true
            header-timeout = 15
            "#,
            &[
                "--credentials",
                "key.json",
                "--iam-endpoint",
                "http://127.0.0.1:7",
            ],
        )
        .expect("resolves");
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].audience, "https://a-abc-uc.a.run.app");
        assert_eq!(c[0].target.prefix, "/base");
        assert_eq!(c[0].upstream_timeout, Duration::from_secs(60));
        assert_eq!(c[0].header_timeout, Duration::from_secs(60));
        assert!(c[0].creds.impersonate.is_none() && !c[0].creds.include_email);
        assert_eq!(c[1].audience, "https://b.example");
        assert_eq!(c[1].header_timeout, Duration::from_secs(15));
        assert_eq!(c[1].listen, "127.0.0.1:8082".parse().expect("addr"));
        let how = c[1].creds.impersonate.as_ref().expect("impersonation");
        assert_eq!(how.target(), "t@x");
        assert!(c[1].creds.include_email);
        for config in &c {
            assert_eq!(
                config.creds.file.as_deref(),
                Some(std::path::Path::new("key.json"))
            );
            assert_eq!(config.creds.iam_endpoint, "http://127.0.0.1:7");
        }
    }

    #[test]
    fn a_file_listener_meets_the_flags_rules_its_errors_naming_it_and_the_key() {
        let first = "[[listener]]\nlisten = \"127.0.0.1:8081\"\ntarget = \"https://a.example\"\n";
        let m = file_refused(&format!(
            "{first}[[listener]]\nlisten = \"192.0.2.7:8082\"\ntarget = \"https://b.example\"\n"
        ));
        assert!(
            m.contains("proxy.toml: listener #2 (listen 192.0.2.7:8082): refusing to listen"),
            "{m}"
        );
        assert!(m.contains("allow-non-loopback = true"), "{m}");
        let m = file_refused("[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"ftp://a\"\n");
        assert!(
            m.ends_with("(listen 127.0.0.1:1): target \"ftp://a\": want an http(s) URL"),
            "{m}"
        );
        let m = file_refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nupstream-timeout = 0\n",
        );
        assert!(
            m.ends_with(
                "): upstream-timeout wants a positive number of seconds, at most 86400 (a day)"
            ),
            "{m}"
        );
        let m = file_refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nheader-timeout = 1e19\n",
        );
        assert!(
            m.ends_with(
                "): header-timeout wants a positive number of seconds, at most 86400 (a day)"
            ),
            "{m}"
        );
        let m = file_refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\ninclude-email = true\n",
        );
        assert!(
            m.contains("): include-email needs impersonate-service-account"),
            "{m}"
        );
        let m = file_refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nimpersonate-service-account = \"nobody\"\n",
        );
        assert!(
            m.contains("): impersonate-service-account \"nobody\""),
            "{m}"
        );
        let m = file_refused(&format!("{first}{first}"));
        assert!(
            m.contains("proxy.toml: listener #2 (listen 127.0.0.1:8081): listen: 127.0.0.1:8081 is also listener #1's"),
            "{m}"
        );
        // Port 0 picks a free port for each.
        let zero = "[[listener]]\nlisten = \"127.0.0.1:0\"\ntarget = \"https://a.example\"\n";
        assert_eq!(
            from_file(&format!("{zero}{zero}"), &[])
                .expect("resolves")
                .len(),
            2
        );
    }

    #[test]
    fn an_unreadable_config_file_is_a_usage_error_naming_it() {
        let cli = Cli::try_parse_from(["proxy", "--config", "/nonexistent/proxy.toml"])
            .expect("clap accepts the flags");
        let f = resolve(cli.args).expect_err("refused");
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message
                .starts_with("--config /nonexistent/proxy.toml: cannot read it"),
            "{}",
            f.message
        );
    }

    #[test]
    fn the_example_in_docs_proxy_md_resolves_as_it_says() {
        let doc = include_str!("../../../../../docs/PROXY.md");
        let example = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("\n```").next())
            .expect("docs/PROXY.md has a toml example");
        let c = from_file(example, &[]).expect("the example resolves");
        assert_eq!(c.len(), 3);
        assert_eq!(c[0].audience, "https://web-abc123-uc.a.run.app");
        assert_eq!(c[1].audience, "https://api.example.com");
        assert_eq!(c[1].target.prefix, "/v1");
        assert_eq!(c[1].header, TokenHeader::XServerlessAuthorization);
        assert_eq!(c[1].upstream_timeout, Duration::from_secs(10));
        assert!(c[1].creds.impersonate.is_some() && c[1].creds.include_email);
        assert!(c[2].http2);
        assert_eq!(c[2].allowed_hosts, ["dev.internal"]);
    }

    #[test]
    fn missing_or_malformed_listen_target_and_header_are_named() {
        let m = file_refused("[[listener]]\ntarget = \"https://a.example\"\n");
        assert!(
            m.contains("proxy.toml: listener #1 (listen ?): listen: missing"),
            "{m}"
        );
        let m = file_refused("[[listener]]\nlisten = \"127.0.0.1:8081\"\n");
        assert!(
            m.contains("(listen 127.0.0.1:8081): target: missing"),
            "{m}"
        );
        let m = file_refused("[[listener]]\nlisten = \"localhost\"\ntarget = \"https://a\"\n");
        assert!(
            m.contains("(listen localhost): listen \"localhost\""),
            "{m}"
        );
        let m = file_refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nheader = \"cookie\"\n",
        );
        assert!(m.contains("): header: "), "{m}");
        assert!(m.contains("x-serverless-authorization"), "{m}");
    }

    #[test]
    fn with_a_config_file_the_admin_server_takes_the_global_flags_and_every_allow_host() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("proxy.toml");
        std::fs::write(
            &path,
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nallow-host = [\"a.internal\"]\n\
             [[listener]]\nlisten = \"127.0.0.1:2\"\ntarget = \"https://b\"\nallow-host = [\"b.internal\", \"a.internal\"]\n",
        )
        .expect("write");
        let path = path.display().to_string();
        let p = resolved_all(&[
            "--config",
            &path,
            "--admin-listen",
            "192.0.2.7:9100",
            "--allow-non-loopback",
            "--log-format",
            "json",
        ])
        .expect("resolves");
        assert_eq!(p.listeners.len(), 2);
        assert_eq!(p.log_format, LogFormat::Json);
        let admin = p.admin.expect("admin");
        assert_eq!(
            admin.allowed_hosts,
            ["a.internal", "b.internal", "192.0.2.7"]
        );
        // --allow-non-loopback is the admin address's: a listener needs its key.
        std::fs::write(
            &path,
            "[[listener]]\nlisten = \"192.0.2.7:1\"\ntarget = \"https://a\"\n",
        )
        .expect("write");
        let f = resolved_all(&["--config", &path, "--allow-non-loopback"]).expect_err("refused");
        assert!(
            f.message.contains("set allow-non-loopback = true"),
            "{}",
            f.message
        );
    }
}
