//! [`Rejection`]: why a target refused a request's token, read from its
//! `401`/`403` answer and `WWW-Authenticate` header (RFC 6750 §3).
//!
//! The integrations do not turn a 401 into an error and never retry it: a
//! new token for the same audience and principal would be refused the same
//! way, and the response (its body included) belongs to the caller. This
//! type is how the caller asks why.

use std::fmt;

use ::reqwest::StatusCode;
use ::reqwest::header::{HeaderMap, WWW_AUTHENTICATE};

/// A target's refusal of a token: its status and the reason it gave.
///
/// ```
/// use idtoken::attach::Rejection;
/// use reqwest::{StatusCode, header::{HeaderMap, HeaderValue}};
/// let mut headers = HeaderMap::new();
/// headers.insert("www-authenticate", HeaderValue::from_static(
///     r#"Bearer error="invalid_token", error_description="The token has expired""#));
/// let r = Rejection::from_parts(StatusCode::UNAUTHORIZED, &headers).expect("a 401 is a rejection");
/// assert_eq!(r.error.as_deref(), Some("invalid_token"));
/// assert_eq!(r.to_string(), "the target answered 401 Unauthorized: invalid_token: The token has expired");
/// assert!(Rejection::from_parts(StatusCode::OK, &headers).is_none());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// 401 (the token was missing or not accepted) or 403 (the token was
    /// accepted but its principal may not call the target, e.g. it lacks
    /// the Cloud Run invoker role).
    pub status: StatusCode,
    /// The whole `WWW-Authenticate` header, when the target sent one.
    pub www_authenticate: Option<String>,
    /// Its `error` parameter, e.g. `invalid_token`.
    pub error: Option<String>,
    /// Its `error_description` parameter.
    pub error_description: Option<String>,
}

impl Rejection {
    /// The rejection in a response, if its status is 401 or 403.
    pub fn from_parts(status: StatusCode, headers: &HeaderMap) -> Option<Self> {
        if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
            return None;
        }
        let www_authenticate = headers
            .get(WWW_AUTHENTICATE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let param = |name| {
            www_authenticate
                .as_deref()
                .and_then(|h| auth_param(h, name))
        };
        Some(Self {
            status,
            error: param("error"),
            error_description: param("error_description"),
            www_authenticate,
        })
    }

    /// The rejection in a `reqwest` response, if its status is 401 or 403.
    pub fn from_response(response: &::reqwest::Response) -> Option<Self> {
        Self::from_parts(response.status(), response.headers())
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the target answered {}", self.status)?;
        match (&self.error, &self.error_description, &self.www_authenticate) {
            (Some(e), Some(d), _) => write!(f, ": {e}: {d}"),
            (Some(e), None, _) | (None, Some(e), _) => write!(f, ": {e}"),
            (None, None, Some(h)) => write!(f, " (WWW-Authenticate: {h})"),
            (None, None, None) => Ok(()),
        }
    }
}

impl std::error::Error for Rejection {}

/// The value of `name="..."` (or `name=token`) in a challenge.
fn auth_param(header: &str, name: &str) -> Option<String> {
    let mut rest = header;
    while let Some(at) = find_ignore_case(rest, name) {
        let before_ok = at == 0 || matches!(rest.as_bytes()[at - 1], b' ' | b',' | b'\t');
        let after = rest[at + name.len()..].trim_start();
        if before_ok && let Some(value) = after.strip_prefix('=') {
            let value = value.trim_start();
            return Some(match value.strip_prefix('"') {
                Some(quoted) => unquote(quoted),
                None => value
                    .split([',', ' '])
                    .next()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
        rest = &rest[at + name.len()..];
    }
    None
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

fn unquote(s: &str) -> String {
    let mut out = String::new();
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::auth_param;

    #[test]
    fn reads_quoted_and_bare_params_but_not_suffixes() {
        let h = r#"Bearer realm="x", error=invalid_token, error_description="say \"no\"""#;
        assert_eq!(auth_param(h, "error").as_deref(), Some("invalid_token"));
        assert_eq!(
            auth_param(h, "error_description").as_deref(),
            Some("say \"no\"")
        );
        assert_eq!(auth_param(h, "scope"), None);
    }
}
