//! The metadata server of Google runtimes: the identity endpoint
//! (docs/PROTOCOL.md, "Metadata server") and the access token impersonation
//! starts from. Whether one is there is discovery's question (`adc.rs`).

use crate::adc::{FLAVOR, has_flavor, metadata_base};
use crate::credentials::{Format, TokenOptions};
use crate::error::{EndpointProblem, Error, Result};
use crate::http::Http;
use crate::token::IdToken;

const IDENTITY: &str = "/computeMetadata/v1/instance/service-accounts/default/identity";
const EMAIL: &str = "/computeMetadata/v1/instance/service-accounts/default/email";
const TOKEN: &str = "/computeMetadata/v1/instance/service-accounts/default/token";

/// A metadata server at one host.
#[derive(Clone, Debug)]
pub(crate) struct Metadata {
    base: String,
}

impl Metadata {
    pub(crate) fn new(host: &str) -> Self {
        Self {
            base: metadata_base(host),
        }
    }

    /// Asks the identity endpoint for a token.
    pub(crate) async fn fetch_id_token(
        &self,
        audience: &str,
        options: &TokenOptions,
    ) -> Result<IdToken> {
        let step = "metadata server identity";
        let url = format!("{}{IDENTITY}", self.base);
        let format = match options.format {
            Format::Standard => "standard",
            Format::Full => "full",
        };
        let mut query = vec![("audience", audience), ("format", format)];
        // Google's metadata server reads `licenses` with `format=full` only.
        if options.licenses && matches!(options.format, Format::Full) {
            query.push(("licenses", "TRUE"));
        }
        let answer = Http::METADATA
            .send(
                step,
                &url,
                |c| c.get(&url).header(FLAVOR, "Google").query(&query),
                hint,
            )
            .await?;
        let bad = |why: String| Error::endpoint(step, &url, EndpointProblem::InvalidResponse(why));
        if !has_flavor(&answer.headers) {
            return Err(bad(
                "the answer lacks the `Metadata-Flavor: Google` header, so this is not a metadata server; check GCE_METADATA_HOST".into(),
            ));
        }
        let text = std::str::from_utf8(&answer.body).map_err(|_| {
            bad(format!(
                "the {}-byte answer is not text, so not an ID token",
                answer.body.len()
            ))
        })?;
        IdToken::parse(text).map_err(|e| {
            bad(format!(
                "the {}-byte answer is not an ID token ({e}); check that GCE_METADATA_HOST points at a metadata server",
                text.len()
            ))
        })
    }

    /// The default service account's email.
    pub(crate) async fn email(&self) -> Result<String> {
        let step = "metadata server email";
        let url = format!("{}{EMAIL}", self.base);
        let answer = Http::METADATA
            .send(step, &url, |c| c.get(&url).header(FLAVOR, "Google"), hint)
            .await?;
        let bad =
            |why: &str| Error::endpoint(step, &url, EndpointProblem::InvalidResponse(why.into()));
        let email = String::from_utf8(answer.body).map_err(|_| bad("not text"))?;
        let email = email.trim();
        // One address, nothing else: a proxy's HTML page or a truncated
        // answer is not an email.
        let plausible = email.len() <= 320
            && email.split('@').count() == 2
            && email
                .bytes()
                .all(|b| b.is_ascii_graphic() && !b"<>\"'(),;:[]\\{}".contains(&b));
        if !plausible {
            return Err(bad("the answer is not an email address"));
        }
        Ok(email.to_owned())
    }

    /// The default service account's access token (the source of an
    /// impersonation).
    pub(crate) async fn fetch_access_token(
        &self,
        now: std::time::SystemTime,
    ) -> Result<super::access::AccessToken> {
        let step = "source credentials: metadata server access token";
        let url = format!("{}{TOKEN}", self.base);
        let answer = Http::METADATA
            .send(step, &url, |c| c.get(&url).header(FLAVOR, "Google"), hint)
            .await?;
        super::access::AccessToken::from_answer(&answer, step, &url, now)
    }

    pub(crate) fn base_url(&self) -> &str {
        &self.base
    }
}

fn hint(status: u16, _error: Option<&str>) -> &'static str {
    match status {
        400 => "the metadata server rejected the request; check the audience",
        403 => "the metadata server refused the request",
        404 => {
            "this instance has no service account attached; attach one, or use a key file via GOOGLE_APPLICATION_CREDENTIALS"
        }
        500..=599 => "the metadata server failed; try again",
        _ => "",
    }
}
