//! What STS checks of an AWS subject token (a serialized, SigV4-signed
//! `GetCallerIdentity` request, docs/PROTOCOL.md, "AWS"): at Google, STS
//! sends the request to AWS and AWS checks the signature; here STS checks
//! what both would. An implementation of SigV4 of its own, independent of
//! the library's, over the same aws-lc-rs primitives:
//!
//! - the token is URL-encoded JSON `{url, method, headers: [{key, value}]}`;
//! - `url` is `https://sts.REGION.amazonaws.com` with
//!   `Action=GetCallerIdentity` and `Version=2011-06-15`, for a real AWS
//!   region; `method` is `POST`; the `host` header is the URL's host;
//! - `x-goog-cloud-target-resource` is the pool provider (`audience`);
//! - `Authorization` is `AWS4-HMAC-SHA256` with a credential scope of the
//!   date of `x-amz-date`, the URL's region and `sts`; `host`, `x-amz-date`
//!   and `x-amz-security-token` (with temporary keys) are signed;
//! - `x-amz-date` is within 15 minutes of now (AWS's limit);
//! - the key id is one of the account's, the session token is its own,
//!   and the signature is the one its secret key makes.
//!
//! Every refusal is `400 invalid_grant` with a description naming the
//! failed check, as Google relays AWS's refusals.

use std::fmt::Write as _;
use std::time::UNIX_EPOCH;

use aws_lc_rs::{digest, hmac};
use axum::http::StatusCode;
use axum::response::Response;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use serde::Deserialize;

use crate::app::App;
use crate::aws_account::AwsAccount;
use crate::reply::{invalid_request, oauth_error};

/// AWS's limit on the age (and future) of a signed request.
const MAX_SKEW_SECS: u64 = 15 * 60;
/// Regions where AWS STS answers (the commercial partition, as of 2025).
const REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
];
const UNRESERVED: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

#[derive(Deserialize)]
struct Serialized {
    url: String,
    method: String,
    headers: Vec<Header>,
}

#[derive(Deserialize)]
struct Header {
    key: String,
    value: String,
}

/// The exchange of an AWS subject token for the AWS provider; `Some` is
/// STS's refusal.
pub(crate) fn check(app: &App, subject_token_type: &str, subject_token: &str) -> Option<Response> {
    if subject_token_type != AwsAccount::SUBJECT_TOKEN_TYPE {
        return Some(invalid_request(format!(
            "Invalid subject_token_type: the AWS provider takes {}",
            AwsAccount::SUBJECT_TOKEN_TYPE
        )));
    }
    verify(app, subject_token).err().map(|why| {
        oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            format!("The AWS subject token was rejected: {why}"),
        )
    })
}

fn verify(app: &App, token: &str) -> Result<(), String> {
    let json = percent_decode_str(token)
        .decode_utf8()
        .map_err(|_| "it is not URL-encoded UTF-8".to_owned())?;
    let req: Serialized = serde_json::from_str(&json).map_err(|_| {
        "it is not a serialized AWS request (URL-encoded JSON with url, method and headers)"
            .to_owned()
    })?;
    if req.method != "POST" {
        return Err(format!(
            "method {:?}: GetCallerIdentity is signed as POST",
            req.method
        ));
    }
    // Header names are case-insensitive (Python writes `Authorization`,
    // Node `authorization`); each may appear once.
    let mut headers: Vec<(String, &str)> = Vec::new();
    for h in &req.headers {
        let name = h.key.to_ascii_lowercase();
        if headers.iter().any(|(n, _)| *n == name) {
            return Err(format!("header {name} appears twice"));
        }
        headers.push((name, h.value.as_str()));
    }
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| *v)
            .ok_or_else(|| format!("the signed request has no {name} header"))
    };
    let url = reqwest_free_url(&req.url)?;
    let region = url
        .host
        .strip_prefix("sts.")
        .and_then(|h| h.strip_suffix(".amazonaws.com"))
        .filter(|r| !r.contains('.'))
        .ok_or_else(|| {
            format!(
                "url host {:?} is not a regional AWS STS endpoint (sts.REGION.amazonaws.com)",
                url.host
            )
        })?;
    if !REGIONS.contains(&region) {
        return Err(format!(
            "region {region:?} (from the url) is not an AWS region"
        ));
    }
    let query = url.pairs();
    for (name, value) in [("Action", "GetCallerIdentity"), ("Version", "2011-06-15")] {
        if !query.iter().any(|(k, v)| k == name && v == value) {
            return Err(format!("the url's query lacks {name}={value}"));
        }
    }
    if header("host")? != url.host {
        return Err("the host header is not the url's host".into());
    }
    let target = header("x-goog-cloud-target-resource")?;
    if target != AwsAccount::AUDIENCE {
        return Err(format!(
            "x-goog-cloud-target-resource {target:?} is not the audience of the exchange, the pool's AWS provider"
        ));
    }
    let auth = Authorization::parse(header("authorization")?)?;
    let amz_date = header("x-amz-date")?;
    let signed_at = parse_amz_date(amz_date)?;
    if auth.date != amz_date.get(..8).unwrap_or_default() {
        return Err("the credential scope's date is not the date of x-amz-date".into());
    }
    if auth.region != region {
        return Err(format!(
            "the signature is for region {:?} but the url is in {region:?}",
            auth.region
        ));
    }
    if auth.service != "sts" {
        return Err(format!(
            "the signature is for service {:?}, not sts",
            auth.service
        ));
    }
    let now = u64::try_from(app.now()).unwrap_or(0);
    if now.abs_diff(signed_at) > MAX_SKEW_SECS {
        return Err(format!(
            "signature expired: x-amz-date {amz_date} is more than 15 minutes from the server's time"
        ));
    }
    let Some(keys) = app.aws.keys(&auth.key_id) else {
        return Err("InvalidClientTokenId: the access key id is not one of the account's".into());
    };
    let token = headers
        .iter()
        .find(|(n, _)| n == "x-amz-security-token")
        .map(|(_, v)| *v);
    if token != keys.session_token.as_deref() {
        return Err("InvalidClientTokenId: the x-amz-security-token is not the key's session token (or is missing)".into());
    }
    for needed in ["host", "x-amz-date"]
        .into_iter()
        .chain(token.map(|_| "x-amz-security-token"))
    {
        if !auth.signed_headers.iter().any(|h| h == needed) {
            return Err(format!("{needed} is not among the SignedHeaders"));
        }
    }
    let mut canonical_headers = String::new();
    for name in &auth.signed_headers {
        let value = header(name)?;
        let _ = writeln!(canonical_headers, "{name}:{}", value.trim());
    }
    let mut sorted_query: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| {
            (
                utf8_percent_encode(k, UNRESERVED).to_string(),
                utf8_percent_encode(v, UNRESERVED).to_string(),
            )
        })
        .collect();
    sorted_query.sort();
    let canonical_query = sorted_query
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let canonical_request = format!(
        "POST\n{}\n{canonical_query}\n{canonical_headers}\n{}\n{}",
        url.path,
        auth.signed_headers.join(";"),
        sha256_hex(b""),
    );
    let scope = format!(
        "{}/{}/{}/aws4_request",
        auth.date, auth.region, auth.service
    );
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    let mut key = hmac_sha256(
        format!("AWS4{}", keys.secret_access_key).as_bytes(),
        auth.date.as_bytes(),
    );
    for part in [auth.region.as_str(), auth.service.as_str(), "aws4_request"] {
        key = hmac_sha256(&key, part.as_bytes());
    }
    let expected = hex(&hmac_sha256(&key, string_to_sign.as_bytes()));
    if expected != auth.signature {
        return Err("SignatureDoesNotMatch: the request signature we calculated does not match the signature you provided; check the secret access key and the signing method".into());
    }
    Ok(())
}

/// An `Authorization: AWS4-HMAC-SHA256 Credential=..., SignedHeaders=...,
/// Signature=...` value.
struct Authorization {
    key_id: String,
    date: String,
    region: String,
    service: String,
    signed_headers: Vec<String>,
    signature: String,
}

impl Authorization {
    fn parse(value: &str) -> Result<Self, String> {
        let rest = value
            .strip_prefix("AWS4-HMAC-SHA256 ")
            .ok_or("the Authorization header is not AWS4-HMAC-SHA256")?;
        let mut credential = None;
        let mut signed = None;
        let mut signature = None;
        for part in rest.split(',').map(str::trim) {
            match part.split_once('=') {
                Some(("Credential", v)) => credential = Some(v),
                Some(("SignedHeaders", v)) => signed = Some(v),
                Some(("Signature", v)) => signature = Some(v),
                _ => {
                    return Err(format!(
                        "the Authorization header has an unknown part {part:?}"
                    ));
                }
            }
        }
        let (Some(credential), Some(signed), Some(signature)) = (credential, signed, signature)
        else {
            return Err(
                "the Authorization header lacks Credential, SignedHeaders or Signature".into(),
            );
        };
        let scope: Vec<&str> = credential.split('/').collect();
        let [key_id, date, region, service, "aws4_request"] = scope.as_slice() else {
            return Err("the Credential is not KEY/DATE/REGION/SERVICE/aws4_request".into());
        };
        let signed_headers: Vec<String> = signed.split(';').map(str::to_owned).collect();
        let mut sorted = signed_headers.clone();
        sorted.sort();
        sorted.dedup();
        if sorted != signed_headers
            || signed_headers
                .iter()
                .any(|h| h.is_empty() || *h != h.to_ascii_lowercase())
        {
            return Err("SignedHeaders are not lower-case, sorted and distinct".into());
        }
        Ok(Self {
            key_id: (*key_id).to_owned(),
            date: (*date).to_owned(),
            region: (*region).to_owned(),
            service: (*service).to_owned(),
            signed_headers,
            signature: signature.to_owned(),
        })
    }
}

/// `20261130T190500Z` as seconds since the epoch.
fn parse_amz_date(v: &str) -> Result<u64, String> {
    let bad = || format!("x-amz-date {v:?} is not YYYYMMDDTHHMMSSZ");
    if v.len() != 16 || !v.is_ascii() {
        return Err(bad());
    }
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &v[0..4],
        &v[4..6],
        &v[6..8],
        &v[9..11],
        &v[11..13],
        &v[13..15]
    );
    if v.as_bytes()[8] != b'T' || v.as_bytes()[15] != b'Z' {
        return Err(bad());
    }
    let at = humantime::parse_rfc3339(&rfc3339).map_err(|_| bad())?;
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .map_err(|_| bad())
}

/// The parts of an `https://` URL the check needs, without pulling a URL
/// parser into the emulator: host, path (`/` when empty) and the decoded
/// query pairs.
struct Parts {
    host: String,
    path: String,
    query: String,
}

impl Parts {
    fn pairs(&self) -> Vec<(String, String)> {
        self.query
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|pair| {
                let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                let decode = |s: &str| {
                    percent_decode_str(&s.replace('+', " "))
                        .decode_utf8_lossy()
                        .into_owned()
                };
                (decode(k), decode(v))
            })
            .collect()
    }
}

fn reqwest_free_url(url: &str) -> Result<Parts, String> {
    let rest = url
        .strip_prefix("https://")
        .ok_or_else(|| format!("url {url:?} is not https://"))?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = match before_query.find('/') {
        Some(i) => before_query.split_at(i),
        None => (before_query, "/"),
    };
    if host.is_empty() {
        return Err(format!("url {url:?} has no host"));
    }
    Ok(Parts {
        host: host.to_ascii_lowercase(),
        path: path.to_owned(),
        query: query.split('#').next().unwrap_or_default().to_owned(),
    })
}

fn sha256_hex(data: &[u8]) -> String {
    hex(digest::digest(&digest::SHA256, data).as_ref())
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

    #[test]
    fn amz_date_parses_and_refuses_other_shapes() {
        assert_eq!(parse_amz_date("20150830T123600Z"), Ok(1_440_938_160));
        for bad in [
            "2015-08-30T12:36:00Z",
            "20150830T123600",
            "20151330T123600Z",
            "ñ0150830T12360Z",
        ] {
            assert!(parse_amz_date(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn authorization_parses_scope_and_signed_headers() {
        let a = Authorization::parse("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders=host;x-amz-date, Signature=abc").expect("parses");
        assert_eq!(
            (
                a.key_id.as_str(),
                a.date.as_str(),
                a.region.as_str(),
                a.service.as_str()
            ),
            ("AKID", "20150830", "us-east-1", "sts")
        );
        assert_eq!(a.signed_headers, ["host", "x-amz-date"]);
        assert!(Authorization::parse("AWS4-HMAC-SHA256 Credential=AKID/20150830/us-east-1/sts/aws4_request, SignedHeaders=x-amz-date;host, Signature=abc").is_err());
        assert!(Authorization::parse("Bearer x").is_err());
    }

    /// AWS's documented example signing key and signature (see the
    /// library's signer for the same check): the derivation here is its own.
    #[test]
    fn signing_key_matches_the_aws_documentation_example() {
        let mut key = hmac_sha256(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20150830");
        for part in ["us-east-1", "iam", "aws4_request"] {
            key = hmac_sha256(&key, part.as_bytes());
        }
        assert_eq!(
            hex(&hmac_sha256(&key, b"AWS4-HMAC-SHA256\n20150830T123600Z\n20150830/us-east-1/iam/aws4_request\nf536975d06c0309214f805bb90ccff089219ecd68b2577efef23edd43b7e1a59")),
            "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"
        );
    }
}
