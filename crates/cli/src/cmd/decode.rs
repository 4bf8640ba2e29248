//! `idtoken decode`: show a token's header and claims WITHOUT verifying
//! anything, with `iat`/`exp` as dates and the time left.

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::Failure;

/// The last second RFC 3339 can print (9999-12-31T23:59:59Z).
const LATEST_RFC3339: u64 = 253_402_300_799;

/// Arguments of `idtoken decode`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The token (a leading `Bearer ` is ignored); `-` or nothing reads stdin.
    token: Option<String>,
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let token = super::read_token(args.token.as_deref()).await?;
    let mut segments = token.split('.');
    let (Some(h), Some(p), Some(_), None) = (
        segments.next(),
        segments.next(),
        segments.next(),
        segments.next(),
    ) else {
        return Err(Failure::new(
            1,
            "not a JWT: expected three dot-separated segments",
        ));
    };
    let header = segment(h, "header")?;
    let claims = segment(p, "claims")?;
    println!("# NOT VERIFIED: decoded only; neither the signature nor any claim was checked.");
    println!("# Use `idtoken verify --audience A` to verify.");
    println!("# header");
    println!("{}", pretty(&header));
    println!("# claims");
    println!("{}", pretty(&claims));
    let now = SystemTime::now();
    for (name, label) in [
        ("iat", "issued "),
        ("nbf", "not before"),
        ("exp", "expires"),
    ] {
        if let Some(secs) = claims.get(name).and_then(Value::as_u64) {
            if secs > LATEST_RFC3339 {
                println!("# {label:<10} after the year 9999 ({secs})");
                continue;
            }
            let at = idtoken::unix_time(secs);
            println!(
                "# {label:<10} {} ({})",
                super::rfc3339(at),
                relative(at, now)
            );
        }
    }
    Ok(())
}

fn segment(b64: &str, name: &str) -> Result<Value, Failure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| Failure::new(1, format!("not a JWT: the {name} is not base64url")))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Failure::new(1, format!("not a JWT: the {name} is not JSON: {e}")))
}

fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// "in 59m 58s" or "1h 2m ago", to the second.
fn relative(at: SystemTime, now: SystemTime) -> String {
    let secs = |d: Duration| humantime::format_duration(Duration::from_secs(d.as_secs()));
    match at.duration_since(now) {
        Ok(left) => format!("in {}", secs(left)),
        Err(e) => format!("{} ago", secs(e.duration())),
    }
}
