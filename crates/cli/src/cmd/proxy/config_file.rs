//! `idtoken proxy --config FILE`: the TOML file that describes several
//! listeners, one `[[listener]]` table each, its keys the names of the
//! flags that describe one (docs/PROXY.md has a full example):
//!
//! ```toml
//! [[listener]]
//! listen = "127.0.0.1:8081"
//! target = "https://api-abc123-uc.a.run.app"
//! header = "x-serverless-authorization"
//! ```
//!
//! This file only reads: each table becomes a [`Listener`], unchecked,
//! with the flags' defaults; `config::resolve_listener` checks it as it
//! checks the flags. Unknown keys are errors, and every error names the
//! file, the listener (its number and `listen` address) and the key.

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::config::{DEFAULT_UPSTREAM_TIMEOUT, Listener, parse_header};
use crate::Failure;

/// The file: `[[listener]]` tables and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    listener: Vec<toml::Table>,
}

/// One `[[listener]]` as written. Every key is optional here, so that a
/// table of one key reads alone (how an error finds the key at fault);
/// `listen` and `target` are required by [`listener`].
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct Entry {
    listen: Option<String>,
    target: Option<String>,
    audience: Option<String>,
    header: Option<String>,
    impersonate_service_account: Option<String>,
    include_email: Option<bool>,
    upstream_timeout: Option<f64>,
    http2: Option<bool>,
    allow_host: Option<Vec<String>>,
    allow_non_loopback: Option<bool>,
}

/// Where a listener is in the file, for its errors.
#[derive(Debug, Clone)]
pub(super) struct Place {
    file: String,
    /// 1 for the first `[[listener]]`.
    number: usize,
    /// The `listen` value as written, or `?`.
    listen: String,
}

impl Place {
    /// `failure`, its message prefixed with the file and the listener.
    pub(super) fn refuse(&self, failure: Failure) -> Failure {
        Failure::new(
            failure.code,
            format!(
                "{}: listener #{} (listen {}): {}",
                self.file, self.number, self.listen, failure.message
            ),
        )
    }
}

/// One listener read from the file, and where it is.
#[derive(Debug)]
pub(super) struct Numbered {
    pub(super) place: Place,
    pub(super) listener: Listener,
}

/// Reads and parses the file at `path`.
pub(super) fn read(path: &Path) -> Result<Vec<Numbered>, Failure> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Failure::new(
            crate::exit::USAGE,
            format!("--config {}: cannot read it: {e}", path.display()),
        )
    })?;
    parse(&text, &path.display().to_string())
}

/// Parses `text`, the file `file`: one [`Listener`] per `[[listener]]`,
/// in order.
pub(super) fn parse(text: &str, file: &str) -> Result<Vec<Numbered>, Failure> {
    let usage = |message: String| Failure::new(crate::exit::USAGE, message);
    let parsed: File = toml::from_str(text).map_err(|e| usage(format!("{file}: {e}")))?;
    if parsed.listener.is_empty() {
        return Err(usage(format!(
            "{file}: no [[listener]] table: want one per target (docs/PROXY.md)"
        )));
    }
    parsed
        .listener
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let place = Place {
                file: file.to_owned(),
                number: i + 1,
                listen: table
                    .get("listen")
                    .and_then(toml::Value::as_str)
                    .unwrap_or("?")
                    .to_owned(),
            };
            let listener = listener(table).map_err(|why| place.refuse(usage(why)))?;
            Ok(Numbered { place, listener })
        })
        .collect()
}

/// One table as a [`Listener`] with the flags' defaults; the error names
/// the key at fault.
fn listener(table: toml::Table) -> Result<Listener, String> {
    let entry = entry(table)?;
    let listen = entry
        .listen
        .ok_or("listen: missing (the address to listen on, such as \"127.0.0.1:8081\")")?;
    let listen: SocketAddr = listen
        .parse()
        .map_err(|e| format!("listen {listen:?}: {e} (want IP:PORT)"))?;
    let target = entry
        .target
        .ok_or("target: missing (the service to forward to)")?;
    let header = match entry.header {
        Some(h) => parse_header(&h).map_err(|e| format!("header: {e}"))?,
        None => idtoken::TokenHeader::Authorization,
    };
    Ok(Listener {
        target,
        listen,
        allow_non_loopback: entry.allow_non_loopback.unwrap_or(false),
        allow_host: entry.allow_host.unwrap_or_default(),
        audience: entry.audience,
        header,
        upstream_timeout: entry.upstream_timeout.unwrap_or(DEFAULT_UPSTREAM_TIMEOUT),
        http2: entry.http2.unwrap_or(false),
        impersonate_service_account: entry.impersonate_service_account,
        include_email: entry.include_email.unwrap_or(false),
    })
}

/// The table as an [`Entry`]. serde's errors name an unknown key but not
/// the key whose value has the wrong type; each key is then read alone,
/// and the first that fails is the one named.
fn entry(table: toml::Table) -> Result<Entry, String> {
    let whole = toml::Value::Table(table.clone()).try_into::<Entry>();
    whole.map_err(|e| {
        table
            .into_iter()
            .find_map(|(key, value)| {
                let alone = toml::Table::from_iter([(key.clone(), value)]);
                let e = toml::Value::Table(alone).try_into::<Entry>().err()?;
                Some(format!("{key}: {}", e.message()))
            })
            .unwrap_or_else(|| e.message().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use idtoken::TokenHeader;

    use super::*;

    fn refused(text: &str) -> String {
        let f = parse(text, "proxy.toml").expect_err("refused");
        assert_eq!(f.code, crate::exit::USAGE, "{}", f.message);
        f.message
    }

    #[test]
    fn each_listener_table_reads_in_order_with_the_flags_defaults() {
        let read = parse(
            r#"
            [[listener]]
            listen = "127.0.0.1:8081"
            target = "https://a.example"

            [[listener]]
            listen = "127.0.0.1:8082"
            target = "https://b.example/base"
            audience = "https://b.example/aud"
            header = "X-Serverless-Authorization"
            impersonate-service-account = "d@x,t@x"
            include-email = true
            upstream-timeout = 5
            http2 = true
            allow-host = ["dev.internal"]
            "#,
            "proxy.toml",
        )
        .expect("parses");
        assert_eq!(read.len(), 2);
        let a = &read[0].listener;
        assert_eq!(a.listen, "127.0.0.1:8081".parse().expect("addr"));
        assert_eq!(a.target, "https://a.example");
        assert_eq!(a.header, TokenHeader::Authorization);
        assert_eq!(a.upstream_timeout, DEFAULT_UPSTREAM_TIMEOUT);
        assert!(a.audience.is_none() && !a.http2 && !a.include_email && !a.allow_non_loopback);
        let b = &read[1].listener;
        assert_eq!(b.audience.as_deref(), Some("https://b.example/aud"));
        assert_eq!(b.header, TokenHeader::XServerlessAuthorization);
        assert_eq!(b.impersonate_service_account.as_deref(), Some("d@x,t@x"));
        assert!(b.include_email && b.http2);
        assert_eq!(b.upstream_timeout, 5.0);
        assert_eq!(b.allow_host, ["dev.internal"]);
    }

    #[test]
    fn an_unknown_key_is_refused_naming_the_listener_and_the_key() {
        let m = refused(
            r#"
            [[listener]]
            listen = "127.0.0.1:8081"
            target = "https://a.example"

            [[listener]]
            listen = "127.0.0.1:8082"
            target = "https://b.example"
            audiance = "https://b.example"
            "#,
        );
        assert!(
            m.starts_with("proxy.toml: listener #2 (listen 127.0.0.1:8082): audiance: "),
            "{m}"
        );
        assert!(m.contains("unknown field"), "{m}");
    }

    #[test]
    fn a_value_of_the_wrong_type_is_refused_naming_its_key() {
        let m = refused(
            r#"
            [[listener]]
            listen = "127.0.0.1:8081"
            target = "https://a.example"
            http2 = "yes"
            "#,
        );
        assert!(
            m.starts_with("proxy.toml: listener #1 (listen 127.0.0.1:8081): http2: "),
            "{m}"
        );
    }

    #[test]
    fn missing_or_malformed_listen_target_and_header_are_named() {
        let m = refused("[[listener]]\ntarget = \"https://a.example\"\n");
        assert!(
            m.starts_with("proxy.toml: listener #1 (listen ?): listen: missing"),
            "{m}"
        );
        let m = refused("[[listener]]\nlisten = \"127.0.0.1:8081\"\n");
        assert!(
            m.contains("(listen 127.0.0.1:8081): target: missing"),
            "{m}"
        );
        let m = refused("[[listener]]\nlisten = \"localhost\"\ntarget = \"https://a\"\n");
        assert!(
            m.contains("(listen localhost): listen \"localhost\""),
            "{m}"
        );
        let m = refused(
            "[[listener]]\nlisten = \"127.0.0.1:1\"\ntarget = \"https://a\"\nheader = \"cookie\"\n",
        );
        assert!(m.contains("): header: "), "{m}");
        assert!(m.contains("x-serverless-authorization"), "{m}");
    }

    #[test]
    fn a_file_without_listeners_or_with_other_top_level_keys_is_refused() {
        let m = refused("");
        assert!(m.contains("no [[listener]]"), "{m}");
        let m = refused("target = \"https://a.example\"\n");
        assert!(m.starts_with("proxy.toml: "), "{m}");
        assert!(m.contains("unknown field `target`"), "{m}");
        let m = refused("[[listener]\n");
        assert!(m.starts_with("proxy.toml: "), "{m}");
    }
}
