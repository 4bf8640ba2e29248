//! `application/x-www-form-urlencoded` decoding, for query strings and token
//! request bodies alike, so both reject bad input the same way.

use std::collections::HashMap;

/// Decodes `a=1&b=2`; later duplicates win. Bad percent escapes or non-UTF-8
/// values are an error naming the offending pair.
pub(crate) fn parse(input: &str) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in input.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = decode(k).ok_or_else(|| format!("malformed form field {pair:?}"))?;
        let v = decode(v).ok_or_else(|| format!("malformed form field {pair:?}"))?;
        out.insert(k, v);
    }
    Ok(out)
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
    use super::parse;

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
    fn bad_escapes_are_errors() {
        for bad in ["a=%", "a=%4", "a=%zz", "a=%ff"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
