//! Which entry a request maps to: [`Source`] (where credentials come
//! from, read once, so that the bytes keyed are the bytes that mint) and
//! [`key`], a SHA-256 over a canonical, length-prefixed description of
//! everything that changes the token.

use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use idtoken::{AdcSource, Env, Format, Impersonate, TokenOptions};

/// Bumped whenever the key's description or the file's layout changes:
/// old entries then stop matching and age out.
pub(crate) const VERSION: u64 = 1;

/// The largest credentials file read for the key (the library reads any
/// size, but no credentials file is near this).
const MAX_CREDENTIALS_FILE: u64 = 1024 * 1024;

/// Where the credentials come from, as far as the cache can tell without
/// asking any server.
#[derive(Clone)]
pub(crate) enum Source {
    /// A credentials file: `--credentials`, `GOOGLE_APPLICATION_CREDENTIALS`
    /// or gcloud's, read once; the same bytes are keyed and parsed.
    File {
        /// As given, for messages.
        shown: PathBuf,
        /// Absolute, for the key.
        absolute: PathBuf,
        bytes: Vec<u8>,
        /// Where it came from, in the library's words (`AdcSource::origin`).
        origin: String,
    },
    /// The metadata server ADC discovery would use. Discovery is not run
    /// for the key: a cached token skips its probe.
    Metadata { host: String },
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File { shown, bytes, .. } => {
                write!(f, "File({}, {} bytes)", shown.display(), bytes.len())
            }
            Source::Metadata { host } => write!(f, "Metadata({host})"),
        }
    }
}

impl Source {
    /// `--credentials`, or where Application Default Credentials will look
    /// (the library's `adc_source`: its order, without probing). `None`
    /// when the cache cannot be used safely: a file that cannot be read
    /// (the library then says why), or no metadata server to use
    /// (discovery then fails and says why).
    pub(crate) fn resolve(file: Option<&Path>, env: &Env) -> Option<Source> {
        let adc = match file {
            Some(path) => AdcSource::file(path),
            None => idtoken::adc_source(env)?,
        };
        let origin = adc.origin();
        match adc {
            AdcSource::File { path, .. } => Source::file(&path, origin),
            AdcSource::MetadataServer { host } => Some(Source::Metadata { host }),
            // A kind of source this CLI does not know: no cache.
            _ => None,
        }
    }

    fn file(path: &Path, origin: String) -> Option<Source> {
        use std::io::Read as _;
        let absolute = std::path::absolute(path).ok()?;
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .ok()?
            .take(MAX_CREDENTIALS_FILE)
            .read_to_end(&mut bytes)
            .ok()?;
        Some(Source::File {
            shown: path.to_owned(),
            absolute,
            bytes,
            origin,
        })
    }
}

/// What, besides the credentials, decides the token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request<'a> {
    pub(crate) audience: &'a str,
    pub(crate) options: &'a TokenOptions,
    pub(crate) impersonate: Option<&'a Impersonate>,
    /// The IAM endpoint, when impersonating.
    pub(crate) iam_endpoint: &'a str,
}

/// The entry's key, as 64 hex digits: also its file name.
pub(crate) fn key(source: &Source, request: &Request<'_>) -> String {
    let mut d = Description::default();
    d.field("version", VERSION.to_string().as_bytes());
    match source {
        Source::File {
            absolute, bytes, ..
        } => {
            d.field("source", b"file");
            d.field("path", absolute.as_os_str().as_encoded_bytes());
            d.field(
                "content-sha256",
                digest::digest(&digest::SHA256, bytes).as_ref(),
            );
        }
        Source::Metadata { host } => {
            d.field("source", b"metadata");
            d.field("host", host.as_bytes());
        }
    }
    match request.impersonate {
        Some(how) => {
            d.field("impersonate", how.target().as_bytes());
            for delegate in how.delegate_emails() {
                d.field("delegate", delegate.as_bytes());
            }
            d.field("iam-endpoint", request.iam_endpoint.as_bytes());
        }
        None => d.field("impersonate", b""),
    }
    d.field("format", format_name(request.options.format).as_bytes());
    d.field("licenses", bool_bytes(request.options.licenses));
    d.field("include-email", bool_bytes(request.options.include_email));
    d.field("audience", request.audience.as_bytes());
    hex(digest::digest(&digest::SHA256, &d.0).as_ref())
}

/// The token format's name, as the metadata server spells it.
pub(crate) fn format_name(format: Format) -> String {
    match format {
        Format::Standard => "standard".to_owned(),
        Format::Full => "full".to_owned(),
        // A variant added later keys apart from these two.
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

fn bool_bytes(b: bool) -> &'static [u8] {
    if b { b"1" } else { b"0" }
}

/// Name and value, each preceded by its length, so no two descriptions
/// run together into the same bytes.
#[derive(Default)]
struct Description(Vec<u8>);

impl Description {
    fn field(&mut self, name: &str, value: &[u8]) {
        for part in [name.as_bytes(), value] {
            self.0.extend_from_slice(&(part.len() as u64).to_be_bytes());
            self.0.extend_from_slice(part);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0xf)]));
    }
    s
}

/// Whether a file name is a key: 64 lowercase hex digits.
pub(crate) fn is_key(name: &str) -> bool {
    name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}
