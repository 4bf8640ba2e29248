//! `idtoken curl`: one HTTP request carrying an ID token, the request that
//! Google's samples show in four languages. The body streams to stdout.
//!
//! [`resolve`] (in `config`) turns the flags into a [`CurlConfig`];
//! [`run`] reads the body, fetches the token and makes the request.

use std::time::Duration;

use reqwest::redirect;
use tokio::io::AsyncWriteExt;

use crate::Failure;
use config::Data;
pub(crate) use config::{Args, CurlConfig, resolve};

mod config;

/// Makes the request `config` describes and writes the answer.
pub(crate) async fn run(config: CurlConfig) -> Result<(), Failure> {
    let CurlConfig {
        url,
        method,
        mut headers,
        data,
        audience,
        token_header,
        include,
        output,
        fail,
        follow,
        max_time,
        creds,
        cache,
    } = config;
    let body = match &data {
        None => None,
        Some(d) => Some(read_data(d).await?),
    };
    let got = creds
        .token(&audience, &creds.token_options(), &cache)
        .await?;
    got.warn_if_client_id_audience(&audience);
    headers.insert(token_header.header_name(), token_header.value(&got.token));

    let client = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .read_timeout(Duration::from_secs(60))
        // The library's rule, for both headers: the token never follows a
        // redirect to another origin.
        .redirect(if follow {
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
    let mut request = client.request(method, &url).headers(headers);
    if let Some(limit) = max_time {
        request = request.timeout(limit);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let mut resp = request
        .send()
        .await
        .map_err(|e| request_failure(&url, &e))?;

    let status = resp.status();
    if fail && status.as_u16() >= 400 {
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
    let mut out: Box<dyn tokio::io::AsyncWrite + Unpin + Send> = match &output {
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
    if include {
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
    while let Some(chunk) = resp.chunk().await.map_err(|e| request_failure(&url, &e))? {
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

async fn read_data(d: &Data) -> Result<Vec<u8>, Failure> {
    match d {
        Data::Stdin => {
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
        Data::File(path) => tokio::fs::read(path).await.map_err(|e| {
            Failure::new(
                crate::exit::READ,
                format!("cannot read --data file {path}: {e}"),
            )
        }),
        Data::Inline(bytes) => Ok(bytes.clone()),
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
