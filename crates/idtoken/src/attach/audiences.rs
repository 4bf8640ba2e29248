//! The per-audience map of token caches, and the audience of a request's
//! URL worked out without allocating.
//!
//! The map is an `ArcSwap<HashMap>`: a request for a known audience is an
//! atomic load and a hash lookup, never a lock. A new audience (rare: once
//! per origin the client talks to) copies the map under a mutex and swaps
//! the copy in, so readers never wait on writers. A `RwLock` would make
//! every read touch a shared counter, and a sharded map would be a new
//! dependency for a map that holds a handful of entries.

use std::collections::HashMap;
use std::fmt::{self, Write as _};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::credentials::IdTokenSource;
use crate::error::{Error, Result};

/// At most this many audiences are cached; one more clears the map, so a
/// client fed endless distinct hosts holds bounded memory.
const MAX_AUDIENCES: usize = 256;

/// Token sources by audience.
#[derive(Default)]
pub(crate) struct AudienceMap {
    map: ArcSwap<HashMap<Box<str>, IdTokenSource>>,
    grow: Mutex<()>,
}

impl AudienceMap {
    /// The source for `audience`, made by `make` the first time.
    pub(crate) fn get_or_insert(
        &self,
        audience: &str,
        make: impl FnOnce(&str) -> IdTokenSource,
    ) -> IdTokenSource {
        if let Some(src) = self.map.load().get(audience) {
            return src.clone();
        }
        let _grow = self.grow.lock().unwrap_or_else(|e| e.into_inner());
        let current = self.map.load_full();
        if let Some(src) = current.get(audience) {
            return src.clone(); // another caller added it while we queued
        }
        let mut next = if current.len() >= MAX_AUDIENCES {
            HashMap::new()
        } else {
            HashMap::clone(&current)
        };
        let src = make(audience);
        next.insert(audience.into(), src.clone());
        self.map.store(Arc::new(next));
        src
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.load().len()
    }
}

impl fmt::Debug for AudienceMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.map.load().keys()).finish()
    }
}

/// An audience as text, built on the stack; origins longer than the
/// buffer (rare) fall back to the heap.
pub(crate) struct OriginKey {
    buf: [u8; 192],
    len: usize,
    spill: Option<String>,
}

impl OriginKey {
    fn new() -> Self {
        Self {
            buf: [0; 192],
            len: 0,
            spill: None,
        }
    }

    pub(crate) fn as_str(&self) -> &str {
        match &self.spill {
            Some(s) => s,
            // Only whole `&str`s are pushed (ASCII-lowercased at most), so
            // the bytes are UTF-8; the fallback is unreachable.
            None => std::str::from_utf8(&self.buf[..self.len]).unwrap_or(""),
        }
    }

    fn push(&mut self, s: &str, lower: bool) {
        if let Some(spill) = &mut self.spill {
            spill.push_str(&if lower {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            });
            return;
        }
        let end = self.len + s.len();
        if end > self.buf.len() {
            let mut spill = self.as_str().to_owned();
            spill.push_str(&if lower {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            });
            self.spill = Some(spill);
            return;
        }
        self.buf[self.len..end].copy_from_slice(s.as_bytes());
        if lower {
            self.buf[self.len..end].make_ascii_lowercase();
        }
        self.len = end;
    }

    /// The audience for a URL made of these parts: `scheme://host[:port]`
    /// (default ports left out), plus the first path segment for Cloud
    /// Functions. Matches [`audience_for_url`](crate::audience_for_url).
    pub(crate) fn from_parts(
        scheme: &str,
        host: &str,
        port: Option<u16>,
        path: &str,
    ) -> Result<Self> {
        let default_port = if scheme.eq_ignore_ascii_case("http") {
            80
        } else if scheme.eq_ignore_ascii_case("https") {
            443
        } else {
            return Err(Error::InvalidArgument(format!(
                "cannot derive a token audience from a {scheme:?} URL; use http(s) or a fixed audience"
            )));
        };
        let mut key = Self::new();
        key.push(scheme, true);
        key.push("://", false);
        key.push(host, true);
        if let Some(port) = port.filter(|p| *p != default_port) {
            let mut digits = Digits::default();
            let _ = write!(digits, "{port}");
            key.push(digits.as_str(), false);
        }
        if ends_with_ignore_case(host, ".cloudfunctions.net")
            && let Some(first) = path
                .trim_start_matches('/')
                .split(['/', '?', '#'])
                .next()
                .filter(|s| !s.is_empty())
        {
            key.push("/", false);
            key.push(first, false);
        }
        Ok(key)
    }

    /// The audience for a `reqwest` URL.
    #[cfg_attr(not(feature = "reqwest-middleware"), allow(dead_code))]
    pub(crate) fn from_url(url: &::reqwest::Url) -> Result<Self> {
        let host = url.host_str().ok_or_else(|| {
            Error::InvalidArgument(format!(
                "cannot derive a token audience from {url}: it has no host"
            ))
        })?;
        Self::from_parts(url.scheme(), host, url.port(), url.path())
    }
}

fn ends_with_ignore_case(s: &str, suffix: &str) -> bool {
    s.len() >= suffix.len()
        && s.as_bytes()[s.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// `:port` on the stack.
#[derive(Default)]
struct Digits {
    buf: [u8; 6],
    len: usize,
}

impl Digits {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

impl fmt::Write for Digits {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.len == 0 {
            self.buf[0] = b':';
            self.len = 1;
        }
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_match_audience_for_url() {
        for url in [
            "https://hello-abc123-uc.a.run.app/items?x=1",
            "https://HELLO.a.run.app:443/",
            "http://127.0.0.1:8080/x",
            "http://[::1]:9/x",
            "https://svc.example:8443",
            "https://us-central1-proj.cloudfunctions.net/fn/sub?x=1",
            "https://us-central1-proj.cloudfunctions.net/",
            "https://us-central1-proj.cloudfunctions.net/fn?x=1",
        ] {
            let parsed = ::reqwest::Url::parse(url).expect("test URL parses");
            let key = OriginKey::from_url(&parsed).expect("http URL has a key");
            let want = crate::audience_for_url(url).expect("http URL has an audience");
            assert_eq!(key.as_str(), want, "{url}");
        }
    }

    #[test]
    fn long_origins_spill_to_the_heap_intact() {
        let host = format!("{}.example", "a".repeat(300));
        let key = OriginKey::from_parts("https", &host, Some(8443), "/").expect("key");
        assert_eq!(key.as_str(), format!("https://{host}:8443"));
    }

    #[test]
    fn non_http_schemes_have_no_audience() {
        assert!(OriginKey::from_parts("ftp", "h", None, "/").is_err());
    }

    #[test]
    fn the_map_is_bounded() {
        let creds = crate::Credentials::metadata_server("127.0.0.1:9");
        let map = AudienceMap::default();
        for i in 0..MAX_AUDIENCES + 1 {
            let aud = format!("https://h{i}.example");
            map.get_or_insert(&aud, |a| creds.token_source(a));
        }
        assert_eq!(map.len(), 1);
        let again = map.get_or_insert("https://h256.example", |_| unreachable!());
        assert_eq!(again.audience(), "https://h256.example");
    }
}
