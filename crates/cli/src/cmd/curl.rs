//! `idtoken curl`: one HTTP request carrying an ID token, the request that
//! Google's samples show in four languages. The body streams to stdout.

use std::path::PathBuf;
use std::time::Duration;

use idtoken::TokenHeader;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use reqwest::{Method, redirect};
use tokio::io::AsyncWriteExt;

use crate::Failure;

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
    creds: super::CredsArgs,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    // Checked before anything is fetched: `Duration` panics on NaN,
    // infinity and values past its range.
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
    let mut headers = reqwest::header::HeaderMap::new();
    for h in &args.headers {
        let (name, value) = parse_header(h)?;
        headers.append(name, value);
    }
    let body = match &args.data {
        None => None,
        Some(d) => Some(read_data(d).await?),
    };
    let method = match (&args.method, &body) {
        (Some(m), _) => Method::from_bytes(m.to_ascii_uppercase().as_bytes()).map_err(|_| {
            Failure::new(
                crate::exit::USAGE,
                format!("-X {m:?} is not an HTTP method"),
            )
        })?,
        (None, Some(_)) => Method::POST,
        (None, None) => Method::GET,
    };
    if body.is_some() && !headers.contains_key(CONTENT_TYPE) {
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
    }

    let creds = args.creds.load().await?;
    let options = idtoken::TokenOptions::default().include_email(args.creds.include_email);
    let token = creds
        .token_source_with(audience.clone(), options)
        .token()
        .await?;
    super::warn_if_client_id_audience(&token, &audience);
    // An application that uses `Authorization` itself gets the ID token in
    // the header Cloud Run checks and strips before the app sees it.
    let token_header = if headers.contains_key(AUTHORIZATION) {
        TokenHeader::XServerlessAuthorization
    } else {
        TokenHeader::Authorization
    };
    headers.insert(token_header.header_name(), token_header.value(&token));

    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        // The library's rule, for both headers: the token never follows a
        // redirect to another origin.
        .redirect(if args.location {
            idtoken::attach::redirect_policy(token_header)
        } else {
            redirect::Policy::none()
        })
        .build()
        .map_err(|e| {
            Failure::new(
                crate::exit::FAILURE,
                format!("cannot build the HTTP client: {e}"),
            )
        })?;
    let mut request = client.request(method, &args.url).headers(headers);
    if let Some(limit) = max_time {
        request = request.timeout(limit);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let mut resp = request
        .send()
        .await
        .map_err(|e| request_failure(&args.url, &e))?;

    let status = resp.status();
    if args.fail && status.as_u16() >= 400 {
        let why = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" ({v})"))
            .unwrap_or_default();
        return Err(Failure::new(
            crate::exit::HTTP_ERROR,
            format!("the server answered {status}{why}"),
        ));
    }
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &args.output {
        Some(path) => Box::new(tokio::fs::File::create(path).await.map_err(|e| {
            Failure::new(
                crate::exit::WRITE,
                format!("cannot create {}: {e}", path.display()),
            )
        })?),
        None => Box::new(tokio::io::stdout()),
    };
    let write_err =
        |e: std::io::Error| Failure::new(crate::exit::WRITE, format!("cannot write the body: {e}"));
    if args.include {
        let mut head = format!("{:?} {}\r\n", resp.version(), status);
        for (name, value) in resp.headers() {
            head.push_str(&format!(
                "{name}: {}\r\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        head.push_str("\r\n");
        out.write_all(head.as_bytes()).await.map_err(write_err)?;
    }
    while let Some(chunk) = resp
        .chunk()
        .await
        .map_err(|e| request_failure(&args.url, &e))?
    {
        if let Err(e) = out.write_all(&chunk).await {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                return Ok(()); // the reader went away (`| head`): not an error
            }
            return Err(write_err(e));
        }
    }
    out.flush().await.map_err(write_err)?;
    Ok(())
}

fn parse_header(h: &str) -> Result<(HeaderName, HeaderValue), Failure> {
    let bad = || Failure::new(crate::exit::USAGE, format!("-H {h:?} is not `Name: value`"));
    let (name, value) = h.split_once(':').ok_or_else(bad)?;
    let name = HeaderName::from_bytes(name.trim().as_bytes()).map_err(|_| bad())?;
    let value = HeaderValue::from_str(value.trim()).map_err(|_| bad())?;
    Ok((name, value))
}

async fn read_data(d: &str) -> Result<Vec<u8>, Failure> {
    match d.strip_prefix('@') {
        Some("-") => {
            let mut buf = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut tokio::io::stdin(), &mut buf)
                .await
                .map_err(|e| {
                    Failure::new(
                        crate::exit::READ,
                        format!("cannot read standard input: {e}"),
                    )
                })?;
            Ok(buf)
        }
        Some(path) => tokio::fs::read(path).await.map_err(|e| {
            Failure::new(
                crate::exit::READ,
                format!("cannot read --data file {path}: {e}"),
            )
        }),
        None => Ok(d.as_bytes().to_vec()),
    }
}

fn request_failure(url: &str, e: &reqwest::Error) -> Failure {
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    // curl's exit codes: 28 for timeouts, 7 for connection failures.
    let code = if e.is_timeout() {
        crate::exit::TIMEOUT
    } else if e.is_connect() {
        crate::exit::CONNECT
    } else {
        crate::exit::RECEIVE
    };
    Failure::new(code, format!("request to {url} failed: {source}"))
}
