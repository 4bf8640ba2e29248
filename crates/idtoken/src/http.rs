//! One shared HTTP client with timeouts, bounded jittered retries of
//! transient failures, and Google's error bodies turned into [`Error`]s;
//! with feature `x509`, clients that present a TLS client certificate
//! (`client_with_identity`), sent through the same bounds (`send_via`).
//!
//! Every call is bounded twice: each attempt by its own timeout, and all
//! attempts with their waits by one deadline, so a silent, trickling or
//! throttling endpoint costs a caller [`CALL_DEADLINE`] at most. A
//! `Retry-After` (429, 503) is honoured when it fits before the deadline;
//! when it does not, the call fails at once with that status. An answer
//! over the size cap is an invalid answer, not retried, and a redirect is
//! never followed. The deadline is per HTTP call: a token fetch chains up
//! to three (subject token, STS, IAM), each with its own.
//!
//! Which connections go through a forward proxy is decided here, once:
//! the metadata server never ([`Http::METADATA`]); everything else by the
//! environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY` and
//! their lower-case forms), as hyper-util's matcher reads it. reqwest's
//! clients for public endpoints use that matcher (`Matcher::from_system`),
//! and [`egress_proxy`] answers with the same one for connections made
//! outside reqwest (`idtoken proxy`'s to its target).

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes_limit::{Read, read_limited};
use hyper_util::client::proxy::matcher::{Intercept, Matcher};
use reqwest::header::HeaderValue;
use reqwest::{Client, RequestBuilder, StatusCode};
use serde::Deserialize;

use crate::error::{EndpointProblem, Error, Result};

/// How long to wait for a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one attempt may take, answer body included.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a call may take, all attempts and the waits between them.
pub(crate) const CALL_DEADLINE: Duration = Duration::from_secs(30);
/// Attempts for calls that may be retried (first try included).
const ATTEMPTS: u32 = 3;
/// Largest answer body read from an identity endpoint.
const MAX_BODY: usize = 1024 * 1024;

/// Timeouts and proxy choice for one kind of endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Http {
    /// Metadata servers are link-local and plain HTTP: never reached
    /// through a proxy, and no trust roots loaded.
    direct: bool,
    timeout: Duration,
}

impl Http {
    /// For Google's public endpoints: honours proxy settings.
    pub(crate) const PUBLIC: Http = Http {
        direct: false,
        timeout: ATTEMPT_TIMEOUT,
    };
    /// For the metadata server: no proxy.
    pub(crate) const METADATA: Http = Http {
        direct: true,
        timeout: ATTEMPT_TIMEOUT,
    };

    /// This kind with another per-attempt timeout.
    pub(crate) fn with_timeout(self, timeout: Duration) -> Http {
        Http { timeout, ..self }
    }

    pub(crate) fn client(&self) -> Result<&'static Client> {
        self.client_for(false)
    }

    /// The client for this kind of endpoint; `plain` for an `http://` URL
    /// (loopback endpoints, an emulator), which needs no trust roots.
    /// Building a client with roots reads the system's certificate store
    /// (about 150 files and 18 M instructions on Linux, most of a
    /// short-lived process's start-up), so that happens only when a flow
    /// first speaks TLS. The metadata server is always plain HTTP
    /// (`metadata_base`).
    fn client_for(&self, plain: bool) -> Result<&'static Client> {
        static PUBLIC: OnceLock<Result<Client, String>> = OnceLock::new();
        static PUBLIC_PLAIN: OnceLock<Result<Client, String>> = OnceLock::new();
        static DIRECT: OnceLock<Result<Client, String>> = OnceLock::new();
        let cell = match (self.direct, plain) {
            (true, _) => &DIRECT,
            (false, true) => &PUBLIC_PLAIN,
            (false, false) => &PUBLIC,
        };
        cell.get_or_init(|| {
            let mut b = base_builder();
            // Otherwise reqwest reads the proxy variables with the matcher
            // `egress_proxy` uses.
            if self.direct {
                b = b.no_proxy();
            }
            if self.direct || plain {
                b = b.tls_certs_only(std::iter::empty::<reqwest::Certificate>());
            }
            b.build().map_err(|e| e.to_string())
        })
        .as_ref()
        .map_err(|e| Error::InvalidArgument(format!("cannot build the HTTP client: {e}")))
    }

    /// A client for public endpoints, as this kind's, that presents
    /// `identity` as its TLS client certificate (mutual TLS, e.g. STS with
    /// an X.509 credential). Built per credential load: it reads the trust
    /// roots as the shared client does.
    #[cfg(feature = "x509")]
    pub(crate) fn client_with_identity(identity: reqwest::Identity) -> Result<Client> {
        base_builder()
            .identity(identity)
            .build()
            .map_err(|e| Error::InvalidArgument(format!("cannot build the mTLS HTTP client: {e}")))
    }

    /// Like [`Http::send`], through `client` (one with a client certificate)
    /// instead of the shared one: the same timeouts, deadline and retries.
    #[cfg(feature = "x509")]
    pub(crate) async fn send_via(
        &self,
        client: &Client,
        step: &'static str,
        url: &str,
        make: impl Fn(&Client) -> RequestBuilder,
        hint: fn(u16, Option<&str>) -> &'static str,
    ) -> Result<Answer> {
        self.send_on(client, step, url, make, hint).await
    }

    /// Sends a request, retrying transient failures a bounded number of
    /// times, and returns the body of a 2xx answer.
    ///
    /// `make` builds the request anew for each attempt; `hint` says what
    /// the user can do about an error status.
    pub(crate) async fn send(
        &self,
        step: &'static str,
        url: &str,
        make: impl Fn(&Client) -> RequestBuilder,
        hint: fn(u16, Option<&str>) -> &'static str,
    ) -> Result<Answer> {
        // Redirects are never followed, so an `http://` URL never leads
        // to TLS.
        let plain = url
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case("http://"));
        let client = self.client_for(plain)?;
        self.send_on(client, step, url, make, hint).await
    }

    async fn send_on(
        &self,
        client: &Client,
        step: &'static str,
        url: &str,
        make: impl Fn(&Client) -> RequestBuilder,
        hint: fn(u16, Option<&str>) -> &'static str,
    ) -> Result<Answer> {
        let started = Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            let left = CALL_DEADLINE.saturating_sub(started.elapsed());
            let result = self
                .send_once(client, step, url, &make, hint, self.timeout.min(left))
                .await;
            let shown_url = crate::error::strip_query(url);
            let logged_url: &str = &shown_url;
            if result.is_ok() {
                let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
                tracing::debug!(step, url = logged_url, attempt, elapsed_ms, "answered");
            }
            match result {
                Err((e, retry_after)) if e.is_transient() && attempt < ATTEMPTS => {
                    let wait =
                        retry_after.map_or_else(|| backoff(attempt), |ra| ra.max(backoff(attempt)));
                    let left = CALL_DEADLINE.saturating_sub(started.elapsed());
                    // Another attempt needs time of its own after the wait.
                    if wait.saturating_add(Duration::from_millis(100)) >= left {
                        tracing::debug!(step, url = logged_url, attempt, error = %e, "no time left to retry");
                        return Err(e);
                    }
                    tracing::debug!(step, url = logged_url, attempt, error = %e, "retrying in {wait:?}");
                    tokio::time::sleep(wait).await;
                }
                other => return other.map_err(|(e, _)| e),
            }
        }
    }

    async fn send_once(
        &self,
        client: &Client,
        step: &'static str,
        url: &str,
        make: &impl Fn(&Client) -> RequestBuilder,
        hint: fn(u16, Option<&str>) -> &'static str,
        timeout: Duration,
    ) -> std::result::Result<Answer, (Error, Option<Duration>)> {
        let fail = |p| Error::endpoint(step, url, p);
        let call = async {
            let resp = make(client).send().await.map_err(|e| fail(classify(&e)))?;
            let status = resp.status();
            let headers = resp.headers().clone();
            let body = read_limited(resp, MAX_BODY).await.map_err(|e| {
                fail(match e {
                    Read::TooLarge => EndpointProblem::InvalidResponse(format!(
                        "the answer is larger than {MAX_BODY} bytes"
                    )),
                    Read::Failed(why) => EndpointProblem::Connect(why),
                })
            })?;
            Ok::<_, Error>((status, headers, body))
        };
        let (status, headers, body) = match tokio::time::timeout(timeout, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => return Err((e, None)),
            Err(_) => return Err((fail(EndpointProblem::Timeout(timeout)), None)),
        };
        if status.is_success() {
            return Ok(Answer { headers, body });
        }
        if status.is_redirection() {
            let to = headers
                .get(reqwest::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| l.split('?').next().unwrap_or_default().to_owned())
                .unwrap_or_default();
            return Err((
                fail(EndpointProblem::InvalidResponse(format!(
                    "HTTP {} redirect to {to:?}, not followed (Google's endpoints do not redirect; check the URL)",
                    status.as_u16()
                ))),
                None,
            ));
        }
        Err((
            fail(status_problem(status, &body, hint)),
            retry_after(&headers),
        ))
    }
}

/// The forward proxy a connection to a public endpoint goes through, as
/// [`egress_proxy`] found it in the environment.
///
/// Its [`Debug`](std::fmt::Debug) shows the proxy's address only, never its
/// credentials.
#[derive(Clone)]
pub struct EgressProxy(Intercept);

impl EgressProxy {
    /// The proxy's URI (`http://host:port/`), without the credentials its
    /// variable may carry: safe to show.
    pub fn uri(&self) -> &::http::Uri {
        self.0.uri()
    }

    /// `Basic ...` for `Proxy-Authorization`, from `user:password@` in the
    /// proxy's URL; marked sensitive.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.0.basic_auth()
    }
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("uri", self.uri())
            .field("authorization", &self.authorization().map(|_| "<redacted>"))
            .finish()
    }
}

/// The forward proxy a connection to `dst`, a public endpoint or a
/// service, goes through: the same choice the library's own calls to
/// token endpoints make (`HTTPS_PROXY` for `https://`, `HTTP_PROXY` for
/// `http://`, `ALL_PROXY` for either, none for a host `NO_PROXY` names),
/// read from the environment once per process. `None`: connect directly.
///
/// The metadata server is never reached through a proxy; do not ask for
/// it.
pub fn egress_proxy(dst: &::http::Uri) -> Option<EgressProxy> {
    static ENV: OnceLock<Matcher> = OnceLock::new();
    ENV.get_or_init(Matcher::from_system)
        .intercept(dst)
        .map(EgressProxy)
}

/// The settings every client shares.
fn base_builder() -> reqwest::ClientBuilder {
    Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        // Google's identity endpoints never redirect, and a 307/308
        // would re-send a body carrying a signed assertion, a
        // refresh token or a subject token to wherever it points.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("idtoken/", env!("CARGO_PKG_VERSION")))
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Answer {
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    /// The body parsed as JSON of type `T`.
    pub(crate) fn json<T: for<'de> Deserialize<'de>>(&self) -> std::result::Result<T, String> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("answer is not the expected JSON: {e}"))
    }
}

/// `Retry-After` in seconds (the HTTP-date form is not used by Google).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs))
}

fn classify(e: &reqwest::Error) -> EndpointProblem {
    if e.is_timeout() {
        return EndpointProblem::Timeout(CONNECT_TIMEOUT);
    }
    // The innermost cause says most ("Connection refused", "dns error").
    let mut source: &dyn std::error::Error = e;
    while let Some(next) = source.source() {
        source = next;
    }
    EndpointProblem::Connect(source.to_string())
}

/// Google answers errors as OAuth2 `{"error","error_description"}` or as
/// `{"error":{"code","message","status"}}`.
#[derive(Deserialize)]
#[serde(untagged)]
enum ErrorBody {
    OAuth {
        error: String,
        error_description: Option<String>,
    },
    Google {
        error: GoogleError,
    },
}

#[derive(Deserialize)]
struct GoogleError {
    message: Option<String>,
    status: Option<String>,
}

fn status_problem(
    status: StatusCode,
    body: &[u8],
    hint: fn(u16, Option<&str>) -> &'static str,
) -> EndpointProblem {
    let (error, description) = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(ErrorBody::OAuth {
            error,
            error_description,
        }) => (Some(error), error_description),
        Ok(ErrorBody::Google { error }) => (error.status, error.message),
        // Plain-text answers (the metadata server's) are short reasons;
        // keep a bounded excerpt.
        Err(_) => (None, text_excerpt(body)),
    };
    let code = status.as_u16();
    EndpointProblem::Status {
        status: code,
        hint: hint(code, error.as_deref()),
        error,
        description,
    }
}

fn text_excerpt(body: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() || text.starts_with('<') {
        return None;
    }
    Some(text.chars().take(200).collect())
}

/// Exponential backoff with jitter: about 200 ms, 400 ms, ... capped.
pub(crate) fn backoff(attempt: u32) -> Duration {
    let base = 200u64.saturating_mul(1 << attempt.min(10)) / 2;
    let jitter = fastrand::u64(0..=base / 2);
    Duration::from_millis((base + jitter).min(30_000))
}

mod bytes_limit {
    /// Why a body could not be read.
    pub(super) enum Read {
        /// Over the cap: an invalid answer.
        TooLarge,
        /// The connection failed mid-body: transient.
        Failed(String),
    }

    /// Reads a body, refusing more than `limit` bytes.
    pub(super) async fn read_limited(
        mut resp: reqwest::Response,
        limit: usize,
    ) -> Result<Vec<u8>, Read> {
        if resp
            .content_length()
            .is_some_and(|n| usize::try_from(n).map_or(true, |n| n > limit))
        {
            return Err(Read::TooLarge);
        }
        let mut out = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| Read::Failed(innermost(&e)))?
        {
            if out.len().saturating_add(chunk.len()) > limit {
                return Err(Read::TooLarge);
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    fn innermost(e: &reqwest::Error) -> String {
        let mut source: &dyn std::error::Error = e;
        while let Some(next) = source.source() {
            source = next;
        }
        format!("the answer broke off: {source}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_egress_proxy_shows_its_address_and_never_its_credentials() {
        let proxy = Matcher::builder()
            .all("http://alice:s3cret-pw@127.0.0.1:3128")
            .build()
            .intercept(&::http::Uri::from_static("https://svc.example/"))
            .map(EgressProxy)
            .expect("intercepted");
        assert_eq!(proxy.uri(), "http://127.0.0.1:3128/");
        let auth = proxy.authorization().expect("credentials");
        assert!(auth.is_sensitive());
        let shown = format!("{proxy:?}");
        assert!(shown.contains("127.0.0.1:3128"), "{shown}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("YWxpY2"),
            "{shown}"
        );
    }
}
