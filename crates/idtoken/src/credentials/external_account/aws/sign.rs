//! AWS Signature Version 4 for the one request an AWS-sourced external
//! account needs: `POST` to STS `GetCallerIdentity`, never sent, but
//! serialized as Google's STS reads it (docs/PROTOCOL.md, "AWS").
//!
//! Written here over aws-lc-rs's HMAC-SHA256 and SHA-256 (already the
//! crate's cryptography) rather than with the `aws-sigv4` crate: that
//! crate brings about thirty crates (the smithy runtime, a proc macro,
//! `time`, and a second SHA-2/HMAC stack) for what is, for one fixed
//! request with no body, about sixty lines. It is checked against the
//! example of AWS's own documentation (tests below), against the
//! emulator's independent verifier, and through it against Google's
//! Python and Node clients' signatures.

use std::fmt::Write as _;
use std::time::SystemTime;

use aws_lc_rs::{digest, hmac};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use reqwest::Url;
use serde::Serialize;

use super::AwsSecurityCredentials;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// SigV4's unreserved characters: everything else is `%XX` in canonical
/// query strings.
const AWS_UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// What Google's Python client leaves unescaped when it URL-encodes the
/// serialized request (`urllib.parse.quote`): the unreserved set and `/`.
const SUBJECT_TOKEN_SAFE: &AsciiSet = &AWS_UNRESERVED.remove(b'/');

/// The serialized request, the subject token's JSON before URL-encoding;
/// fields in sorted order, as Google's Python client writes them.
#[derive(Serialize)]
struct SignedRequest<'a> {
    headers: Vec<Header<'a>>,
    method: &'static str,
    url: &'a str,
}

#[derive(Serialize)]
struct Header<'a> {
    key: &'static str,
    value: &'a str,
}

/// The subject token: `url` (the regional `GetCallerIdentity` URL) signed
/// with `creds` for `region` at `now`, with `x-goog-cloud-target-resource`
/// set to `audience` (added after signing, as Google's clients do), as
/// URL-encoded JSON. A secret: it carries the session token.
pub(super) fn subject_token(
    url: &str,
    region: &str,
    creds: &AwsSecurityCredentials,
    audience: &str,
    now: SystemTime,
) -> Result<String, String> {
    let parsed = Url::parse(url).map_err(|e| format!("not a URL ({e})"))?;
    let host = match (parsed.host_str(), parsed.port()) {
        (Some(h), None) => h.to_owned(),
        (Some(h), Some(p)) => format!("{h}:{p}"),
        (None, _) => return Err("the URL has no host".into()),
    };
    let (amz_date, date) = amz_date(now)?;
    let signed = sign(&Request {
        method: "POST",
        host: &host,
        path: parsed.path(),
        query: parsed.query().unwrap_or_default(),
        region,
        amz_date: &amz_date,
        date: &date,
        access_key_id: &creds.access_key_id,
        secret_access_key: &creds.secret_access_key,
        session_token: creds.session_token.as_deref(),
    });
    let mut headers = vec![
        Header {
            key: "Authorization",
            value: &signed,
        },
        Header {
            key: "host",
            value: &host,
        },
        Header {
            key: "x-amz-date",
            value: &amz_date,
        },
    ];
    if let Some(token) = &creds.session_token {
        headers.push(Header {
            key: "x-amz-security-token",
            value: token,
        });
    }
    headers.push(Header {
        key: "x-goog-cloud-target-resource",
        value: audience,
    });
    let json = serde_json::to_string(&SignedRequest {
        headers,
        method: "POST",
        url,
    })
    .map_err(|e| format!("cannot serialize the signed request: {e}"))?;
    Ok(utf8_percent_encode(&json, SUBJECT_TOKEN_SAFE).to_string())
}

/// `x-amz-date` (`20261130T190500Z`) and the date stamp (`20261130`).
fn amz_date(now: SystemTime) -> Result<(String, String), String> {
    // humantime panics on times before 1970 and cannot write years after 9999.
    let plausible = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .is_ok_and(|d| crate::clock::unix_time_checked(d.as_secs()).is_some());
    if !plausible {
        return Err("this machine's clock is not a plausible date; check the system clock".into());
    }
    let rfc3339 = humantime::format_rfc3339_seconds(now).to_string();
    let compact: String = rfc3339.chars().filter(|c| *c != '-' && *c != ':').collect();
    let date = compact.get(..8).unwrap_or_default().to_owned();
    Ok((compact, date))
}

/// What a SigV4 signature covers here.
struct Request<'a> {
    method: &'a str,
    host: &'a str,
    path: &'a str,
    query: &'a str,
    region: &'a str,
    amz_date: &'a str,
    date: &'a str,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: Option<&'a str>,
}

/// The `Authorization` header value for `r`: signed headers `host`,
/// `x-amz-date` and, with a session token, `x-amz-security-token`; an
/// empty payload.
fn sign(r: &Request<'_>) -> String {
    // The service is the host's first label (`sts`), as in Google's clients.
    let service = r.host.split('.').next().unwrap_or_default();
    let mut headers = vec![("host", r.host), ("x-amz-date", r.amz_date)];
    if let Some(token) = r.session_token {
        headers.push(("x-amz-security-token", token));
    }
    let canonical_headers: String = headers.iter().fold(String::new(), |mut s, (k, v)| {
        let _ = writeln!(s, "{k}:{}", v.trim());
        s
    });
    let signed_headers = headers
        .iter()
        .map(|(k, _)| *k)
        .collect::<Vec<_>>()
        .join(";");
    let path = if r.path.is_empty() { "/" } else { r.path };
    let canonical_request = format!(
        "{}\n{path}\n{}\n{canonical_headers}\n{signed_headers}\n{}",
        r.method,
        canonical_query(r.query),
        hex(digest::digest(&digest::SHA256, b"").as_ref()),
    );
    let scope = format!("{}/{}/{service}/aws4_request", r.date, r.region);
    let string_to_sign = format!(
        "{ALGORITHM}\n{}\n{scope}\n{}",
        r.amz_date,
        hex(digest::digest(&digest::SHA256, canonical_request.as_bytes()).as_ref())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", r.secret_access_key).as_bytes(),
        r.date.as_bytes(),
    );
    for part in [r.region, service, "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let signature = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    format!(
        "{ALGORITHM} Credential={}/{scope}, SignedHeaders={signed_headers}, Signature={signature}",
        r.access_key_id
    )
}

/// The query's pairs, decoded, AWS-encoded and sorted by name, then value.
fn canonical_query(query: &str) -> String {
    let mut pairs: Vec<(String, String)> = form_pairs(query)
        .map(|(k, v)| {
            (
                utf8_percent_encode(&k, AWS_UNRESERVED).to_string(),
                utf8_percent_encode(&v, AWS_UNRESERVED).to_string(),
            )
        })
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

fn form_pairs(query: &str) -> impl Iterator<Item = (String, String)> + '_ {
    query.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(&s.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        };
        (decode(k), decode(v))
    })
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> Vec<u8> {
    hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, key), data)
        .as_ref()
        .to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of AWS's SigV4 documentation ("Examples of the
    /// complete Signature Version 4 signing process"): IAM `ListUsers`,
    /// `GET` with `content-type` among the signed headers. Our request
    /// signs fewer headers, so this checks the key derivation and the
    /// string to sign through the signing key and final HMAC.
    #[test]
    fn signing_key_and_signature_match_the_aws_documentation_example() {
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        let mut key = hmac_sha256(format!("AWS4{secret}").as_bytes(), b"20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        assert_eq!(
            hex(&key),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
        let string_to_sign = "AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59";
        assert_eq!(
            hex(&hmac_sha256(&key, string_to_sign.as_bytes())),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }

    #[test]
    fn canonical_query_is_encoded_and_sorted() {
        assert_eq!(
            canonical_query("Version=2011-06-15&Action=GetCallerIdentity"),
            "Action=GetCallerIdentity&Version=2011-06-15"
        );
        assert_eq!(canonical_query("b=a%20b&a=x~y*"), "a=x~y%2A&b=a%20b");
        assert_eq!(canonical_query(""), "");
    }

    #[test]
    fn amz_date_is_compact_utc() {
        let t = crate::clock::unix_time(1_440_938_160);
        assert_eq!(
            amz_date(t).expect("a date"),
            ("20150830T123600Z".to_owned(), "20150830".to_owned())
        );
    }

    #[test]
    fn subject_token_is_url_encoded_json_with_the_signed_headers() {
        let creds = AwsSecurityCredentials {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: "secret".into(),
            session_token: Some("session/token+".into()),
        };
        let t = crate::clock::unix_time(1_440_938_160);
        let url = "https://sts.us-east-1.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15";
        let token =
            subject_token(url, "us-east-1", &creds, "//iam.googleapis.com/x", t).expect("signs");
        assert!(!token.contains('{') && !token.contains('"'), "{token}");
        let json = percent_encoding::percent_decode_str(&token)
            .decode_utf8()
            .expect("UTF-8");
        let doc: serde_json::Value = serde_json::from_str(&json).expect("JSON");
        assert_eq!(doc["method"], "POST");
        assert_eq!(doc["url"], url);
        let keys: Vec<&str> = doc["headers"]
            .as_array()
            .expect("headers")
            .iter()
            .map(|h| h["key"].as_str().expect("key"))
            .collect();
        assert_eq!(
            keys,
            [
                "Authorization",
                "host",
                "x-amz-date",
                "x-amz-security-token",
                "x-goog-cloud-target-resource"
            ]
        );
        let auth = doc["headers"][0]["value"].as_str().expect("auth");
        assert!(
            auth.starts_with("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date;x-amz-security-token, Signature="),
            "{auth}"
        );
        assert_eq!(doc["headers"][1]["value"], "sts.us-east-1.amazonaws.com");
        assert_eq!(doc["headers"][4]["value"], "//iam.googleapis.com/x");
    }
}
