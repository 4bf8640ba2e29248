//! `application/x-www-form-urlencoded` decoding, for query strings and token
//! request bodies alike, so both reject bad input the same way.

use std::collections::HashMap;
use std::collections::hash_map::Entry;

/// Decodes a query string `a=1&b=2`; later duplicates win. Bad percent
/// escapes or non-UTF-8 values are an error naming the offending pair.
pub(crate) fn parse(input: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in pairs(input) {
        let (k, v) = pair?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Decodes an OAuth 2.0 request body: like [`parse`], but a parameter that
/// appears twice is an error naming it (RFC 6749 section 3.1: "Request and
/// response parameters MUST NOT be included more than once").
pub(crate) fn parse_once(input: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in pairs(input) {
        let (k, v) = pair?;
        match out.entry(k) {
            Entry::Occupied(e) => {
                return Err(format!("Duplicate parameter: {}", e.key()));
            }
            Entry::Vacant(e) => {
                e.insert(v);
            }
        }
    }
    Ok(out)
}

fn pairs(input: &str) -> impl Iterator<Item = Result<(String, String), String>> + '_ {
    input.split('&').filter(|p| !p.is_empty()).map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k).ok_or_else(|| format!("malformed form field {pair:?}"))?;
        let v = decode(v).ok_or_else(|| format!("malformed form field {pair:?}"))?;
        Ok((k, v))
    })
}

fn decode(s: &str) -> Option<String> {
    let mut bytes = Vec::with_capacity(s.len());
    let mut it = s.bytes();
    while let Some(b) = it.next() {
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let hi = hex(it.next()?)?;
                let lo = hex(it.next()?)?;
                bytes.push(hi << 4 | lo);
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).ok()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, parse_once};

    #[test]
    fn decodes_plus_and_percent() -> Result<(), String> {
        let f = parse("audience=https%3A%2F%2Fx.run.app&scope=a+b&empty=&flag")?;
        assert_eq!(
            f.get("audience").map(String::as_str),
            Some("https://x.run.app")
        );
        assert_eq!(f.get("scope").map(String::as_str), Some("a b"));
        assert_eq!(f.get("empty").map(String::as_str), Some(""));
        assert_eq!(f.get("flag").map(String::as_str), Some(""));
        Ok(())
    }

    #[test]
    fn parse_once_names_a_repeated_parameter_even_when_spelled_otherwise() {
        assert_eq!(
            parse("a=1&a=2").ok().and_then(|f| f.get("a").cloned()),
            Some("2".into())
        );
        for body in ["a=1&a=2", "a=1&b=2&a=", "a&%61=1"] {
            assert_eq!(
                parse_once(body),
                Err("Duplicate parameter: a".into()),
                "{body}"
            );
        }
        assert!(parse_once("a=1&b=2").is_ok());
    }

    #[test]
    fn bad_escapes_are_errors() {
        for bad in ["a=%", "a=%4", "a=%zz", "a=%ff"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
