//! What `idtoken decode` prints for a token, as a string: no I/O, no
//! clock (`now` is given), so the fuzz target `decode` can include this
//! file as it is.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde_json::Value;

/// The header and claims of `token`, pretty-printed, with `iat`/`nbf`/`exp`
/// as dates relative to `now`; the error says why it is not a JWT.
pub(crate) fn render(token: &str, now: SystemTime) -> Result<String, String> {
    // The library's decoder: the same strict parser the verifier uses.
    let decoded = idtoken::decode_unverified(token).map_err(|e| format!("not a JWT: {e}"))?;
    let header = Value::Object(decoded.header);
    let claims = Value::Object(decoded.claims);
    let mut out = String::new();
    out.push_str(
        "# NOT VERIFIED: decoded only; neither the signature nor any claim was checked.\n",
    );
    out.push_str("# Use `idtoken verify --audience A` to verify.\n");
    out.push_str("# header\n");
    out.push_str(&pretty(&header));
    out.push_str("\n# claims\n");
    out.push_str(&pretty(&claims));
    out.push('\n');
    for (name, label) in [
        ("iat", "issued "),
        ("nbf", "not before"),
        ("exp", "expires"),
    ] {
        if let Some(secs) = claims.get(name).and_then(Value::as_u64) {
            let Some(at) = idtoken::unix_time_checked(secs) else {
                let _ = writeln!(out, "# {label:<10} after the year 9999 ({secs})");
                continue;
            };
            let _ = writeln!(out, "# {label:<10} {} ({})", rfc3339(at), relative(at, now));
        }
    }
    Ok(out)
}

/// `t` as RFC 3339 to the second, or "(out of range)".
pub(crate) fn rfc3339(t: SystemTime) -> String {
    // humantime panics before 1970 and fails (which `to_string` turns into
    // a panic) after 9999; times from tokens can be either.
    let mut out = String::new();
    if t < std::time::UNIX_EPOCH || write!(out, "{}", humantime::format_rfc3339_seconds(t)).is_err()
    {
        return "(out of range)".to_owned();
    }
    out
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
