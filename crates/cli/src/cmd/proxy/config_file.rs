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
//! This file only reads: each table becomes an [`Entry`], the values as
//! written; `config` applies the flags' defaults and checks it as it
//! checks the flags. Unknown keys are errors, and every error names the
//! file, the listener (its number and `listen` address) and the key.

use std::path::Path;

use serde::Deserialize;

use crate::Failure;

/// The file: `[[listener]]` tables and nothing else.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    listener: Vec<toml::Table>,
}

/// One `[[listener]]` as written, its keys the flags' names. Every key is
/// optional here, so that a table of one key reads alone (how an error
/// finds the key at fault); `config` requires `listen` and `target`.
#[derive(Deserialize, Debug, Default, PartialEq)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub(super) struct Entry {
    pub(super) listen: Option<String>,
    pub(super) target: Option<String>,
    pub(super) audience: Option<String>,
    pub(super) header: Option<String>,
    pub(super) impersonate_service_account: Option<String>,
    pub(super) include_email: Option<bool>,
    pub(super) upstream_timeout: Option<f64>,
    pub(super) header_timeout: Option<f64>,
    pub(super) http2: Option<bool>,
    pub(super) allow_host: Option<Vec<String>>,
    pub(super) allow_non_loopback: Option<bool>,
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
    pub(super) entry: Entry,
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

/// Parses `text`, the file `file`: one [`Entry`] per `[[listener]]`, in
/// order.
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
            let entry = entry(table).map_err(|why| place.refuse(usage(why)))?;
            Ok(Numbered { place, entry })
        })
        .collect()
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
    use super::*;

    fn refused(text: &str) -> String {
        let f = parse(text, "proxy.toml").expect_err("refused");
        assert_eq!(f.code, crate::exit::USAGE, "{}", f.message);
        f.message
    }

    #[test]
    fn each_listener_table_reads_in_order_as_written() {
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
            header-timeout = 15
            http2 = true
            allow-host = ["dev.internal"]
            allow-non-loopback = false
            "#,
            "proxy.toml",
        )
        .expect("parses");
        assert_eq!(read.len(), 2);
        assert_eq!(
            read[0].entry,
            Entry {
                listen: Some("127.0.0.1:8081".into()),
                target: Some("https://a.example".into()),
                ..Entry::default()
            }
        );
        assert_eq!(
            read[1].entry,
            Entry {
                listen: Some("127.0.0.1:8082".into()),
                target: Some("https://b.example/base".into()),
                audience: Some("https://b.example/aud".into()),
                header: Some("X-Serverless-Authorization".into()),
                impersonate_service_account: Some("d@x,t@x".into()),
                include_email: Some(true),
                upstream_timeout: Some(5.0),
                header_timeout: Some(15.0),
                http2: Some(true),
                allow_host: Some(vec!["dev.internal".into()]),
                allow_non_loopback: Some(false),
            }
        );
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
