//! `idtoken curl`'s flags in two steps: clap reads them into [`Args`], then
//! [`resolve`] checks and resolves them into a [`CurlConfig`], with no clap
//! types, before any file is read or any token fetched.

use std::path::PathBuf;
use std::time::Duration;

use idtoken::TokenHeader;
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderMap, HeaderName, HeaderValue};

use crate::Failure;
use crate::cmd::CredsConfig;
use crate::token_cache::Cache;

/// Arguments of `idtoken curl`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The URL to request.
    url: String,
    /// HTTP method (default GET, or POST with --data).
    #[arg(short = 'X', long = "request", value_name = "METHOD")]
    method: Option<String>,
    /// Extra header, `Name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    headers: Vec<String>,
    /// Request body; `@FILE` reads a file, `@-` standard input.
    #[arg(short = 'd', long = "data", value_name = "DATA")]
    data: Option<String>,
    /// Token audience (default: the URL's origin; the function URL for Cloud Functions).
    #[arg(long)]
    audience: Option<String>,
    /// Print the status line and response headers before the body.
    #[arg(short = 'i', long = "include")]
    include: bool,
    /// Write the body to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<PathBuf>,
    /// Exit 22 without printing the body when the status is 400 or more.
    #[arg(short = 'f', long)]
    fail: bool,
    /// Follow redirects. The token is never sent to another origin: with
    /// `Authorization` it is dropped there, with `X-Serverless-Authorization`
    /// such a redirect is shown, not followed.
    #[arg(short = 'L', long)]
    location: bool,
    /// Give up after this many seconds in all (default: 60 s without data).
    #[arg(short = 'm', long = "max-time", value_name = "SECS")]
    max_time: Option<f64>,
    #[command(flatten)]
    creds: super::super::CredsArgs,
    #[command(flatten)]
    cache: super::super::CacheArgs,
}

/// The request `idtoken curl` was asked to make, checked. Its `Debug`
/// shows header names and the body's size only: values may be secrets.
pub(crate) struct CurlConfig {
    pub(super) url: String,
    pub(super) method: Method,
    /// The `-H` headers, plus a form `Content-Type` for a body without one.
    pub(super) headers: HeaderMap,
    pub(super) data: Option<Data>,
    pub(super) audience: String,
    /// Where the token goes: `X-Serverless-Authorization` when the caller
    /// sends its own `Authorization`.
    pub(super) token_header: TokenHeader,
    pub(super) include: bool,
    pub(super) output: Option<PathBuf>,
    pub(super) fail: bool,
    /// `-L`: follow redirects (never carrying the token to another origin).
    pub(super) follow: bool,
    pub(super) max_time: Option<Duration>,
    pub(super) creds: CredsConfig,
    /// The token cache, or why it is off.
    pub(super) cache: Cache,
}

impl std::fmt::Debug for CurlConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CurlConfig")
            .field("url", &self.url)
            .field("method", &self.method)
            .field("headers", &self.headers.keys().collect::<Vec<_>>())
            .field("data", &self.data)
            .field("audience", &self.audience)
            .field("token_header", &self.token_header)
            .field("include", &self.include)
            .field("output", &self.output)
            .field("fail", &self.fail)
            .field("follow", &self.follow)
            .field("max_time", &self.max_time)
            .field("creds", &self.creds)
            .field("cache", &self.cache)
            .finish()
    }
}

/// Where `--data` comes from; read when the request is made.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Data {
    Inline(Vec<u8>),
    /// `@FILE`, as given.
    File(String),
    /// `@-`.
    Stdin,
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Data::Inline(bytes) => write!(f, "Inline({} bytes)", bytes.len()),
            Data::File(path) => write!(f, "File({path:?})"),
            Data::Stdin => f.write_str("Stdin"),
        }
    }
}

/// Checks the flags and resolves them (time limit, audience, headers,
/// method, body source, token header, credential flags). Errors are usage
/// errors (exit 2), except an audience the library cannot derive from the
/// URL (exit 1, as everywhere).
pub(crate) fn resolve(args: Args) -> Result<CurlConfig, Failure> {
    // `Duration` panics on NaN, infinity and values past its range.
    let max_time = match args.max_time {
        None => None,
        Some(secs) => Some(
            Duration::try_from_secs_f64(secs.max(0.001))
                .ok()
                .filter(|_| secs.is_finite() && secs > 0.0)
                .ok_or_else(|| {
                    Failure::new(
                        crate::exit::USAGE,
                        format!("--max-time {secs}: want a positive number of seconds"),
                    )
                })?,
        ),
    };
    let audience = match &args.audience {
        Some(a) => a.clone(),
        None => idtoken::audience_for_url(&args.url)?,
    };
    let mut headers = HeaderMap::new();
    for h in &args.headers {
        let (name, value) = parse_header(h)?;
        headers.append(name, value);
    }
    let data = args.data.as_deref().map(|d| match d.strip_prefix('@') {
        Some("-") => Data::Stdin,
        Some(path) => Data::File(path.to_owned()),
        None => Data::Inline(d.as_bytes().to_vec()),
    });
    let method = match (&args.method, &data) {
        (Some(m), _) => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
            Failure::new(
                crate::exit::USAGE,
                format!("-X {m:?} is not an HTTP method"),
            )
        })?,
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    if data.is_some() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }
    // An application that uses `Authorization` itself gets the ID token in
    // the header Cloud Run checks and strips before the app sees it.
    let token_header = if headers.contains_key(AUTHORIZATION) {
        TokenHeader::XServerlessAuthorization
    } else {
        TokenHeader::Authorization
    };
    let creds = args.creds.resolve()?;
    Ok(CurlConfig {
        url: args.url,
        method,
        headers,
        data,
        audience,
        token_header,
        include: args.include,
        output: args.output,
        fail: args.fail,
        follow: args.location,
        max_time,
        creds,
        cache: args.cache.resolve(),
    })
}

fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let bad = || Failure::new(crate::exit::USAGE, format!("-H {h:?} is not `Name: value`"));
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// `idtoken curl ARGS...` as clap reads it.
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: Args,
    }

    fn resolved(argv: &[&str]) -> Result<CurlConfig, Failure> {
        let cli = Cli::try_parse_from(std::iter::once("curl").chain(argv.iter().copied()))
            .expect("clap accepts the flags");
        resolve(cli.args)
    }

    fn refused(argv: &[&str]) -> Failure {
        resolved(argv).expect_err("refused")
    }

    #[test]
    fn a_plain_get_has_the_url_origin_as_audience_and_the_token_in_authorization() {
        let c = resolved(&["https://svc-abc-uc.a.run.app/api/items?page=2"]).expect("resolves");
        assert_eq!(c.method, Method::GET);
        assert_eq!(c.audience, "https://svc-abc-uc.a.run.app");
        assert_eq!(c.token_header, TokenHeader::Authorization);
        assert!(c.headers.is_empty());
        assert_eq!(c.data, None);
        assert_eq!(c.max_time, None);
        assert!(!c.follow && !c.fail && !c.include);
    }

    #[test]
    fn data_makes_a_form_post_unless_told_otherwise() {
        let c = resolved(&["http://127.0.0.1:9/", "-d", "a=1"]).expect("resolves");
        assert_eq!(c.method, Method::POST);
        assert_eq!(c.data, Some(Data::Inline(b"a=1".to_vec())));
        assert_eq!(c.headers[CONTENT_TYPE], "application/x-www-form-urlencoded");
        let c = resolved(&[
            "http://127.0.0.1:9/",
            "-X",
            "put",
            "-H",
            "Content-Type: application/json",
            "-d",
            "@body.json",
        ])
        .expect("resolves");
        assert_eq!(c.method, Method::PUT);
        assert_eq!(c.data, Some(Data::File("body.json".into())));
        assert_eq!(c.headers[CONTENT_TYPE], "application/json");
        let c = resolved(&["http://127.0.0.1:9/", "-d", "@-"]).expect("resolves");
        assert_eq!(c.data, Some(Data::Stdin));
    }

    #[test]
    fn an_own_authorization_header_moves_the_token_to_x_serverless_authorization() {
        let c = resolved(&[
            "http://127.0.0.1:9/",
            "-H",
            "Authorization: Basic dXNlcjpwdw==",
        ])
        .expect("resolves");
        assert_eq!(c.token_header, TokenHeader::XServerlessAuthorization);
        assert_eq!(c.headers[AUTHORIZATION], "Basic dXNlcjpwdw==");
    }

    #[test]
    fn flags_reach_the_config() {
        let c = resolved(&[
            "http://127.0.0.1:9/",
            "--audience",
            "https://api.example",
            "-m",
            "2.5",
            "-L",
            "-f",
            "-i",
            "-o",
            "out.json",
            "--impersonate-service-account",
            "t@x",
        ])
        .expect("resolves");
        assert_eq!(c.audience, "https://api.example");
        assert_eq!(c.max_time, Some(Duration::from_millis(2500)));
        assert!(c.follow && c.fail && c.include);
        assert_eq!(c.output, Some(PathBuf::from("out.json")));
        assert_eq!(c.creds.impersonate.expect("impersonation").target(), "t@x");
    }

    #[test]
    fn absurd_max_times_are_usage_errors_not_panics() {
        for secs in ["inf", "1e20", "NaN", "-1", "0"] {
            let f = refused(&[&format!("--max-time={secs}"), "http://127.0.0.1:9/"]);
            assert_eq!(f.code, crate::exit::USAGE, "{secs}");
            assert!(f.message.contains("--max-time"), "{}", f.message);
        }
    }

    #[test]
    fn malformed_headers_and_methods_are_usage_errors() {
        for h in ["no colon", "bad name: x", "X-Ok: bad\u{7f}value"] {
            let f = refused(&["http://127.0.0.1:9/", "-H", h]);
            assert_eq!(f.code, crate::exit::USAGE, "{h}");
            assert!(f.message.contains("is not `Name: value`"), "{}", f.message);
        }
        let f = refused(&["http://127.0.0.1:9/", "-X", "GE T"]);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(f.message.contains("is not an HTTP method"), "{}", f.message);
    }

    #[test]
    fn a_url_without_a_derivable_audience_fails_with_the_librarys_reason() {
        let f = refused(&["not a url"]);
        assert_eq!(f.code, crate::exit::FAILURE);
        let library = idtoken::audience_for_url("not a url").expect_err("refused");
        assert_eq!(f.message, library.to_string());
    }

    #[test]
    fn debug_output_shows_no_header_value_or_body() {
        let c = resolved(&[
            "http://127.0.0.1:9/",
            "-H",
            "Authorization: Basic c2VjcmV0",
            "-d",
            "password=hunter2",
        ])
        .expect("resolves");
        let shown = format!("{c:?}");
        assert!(shown.contains("authorization"), "{shown}");
        assert!(
            !shown.contains("c2VjcmV0") && !shown.contains("hunter2"),
            "{shown}"
        );
    }

    #[test]
    fn include_email_without_impersonation_is_a_usage_error() {
        let f = refused(&["http://127.0.0.1:9/", "--include-email"]);
        assert_eq!(f.code, crate::exit::USAGE);
        assert!(
            f.message.contains("--impersonate-service-account"),
            "{}",
            f.message
        );
    }
}
