//! Reading an ID token out of an endpoint's answer. The transport
//! (`http.rs`) returns bodies; the flows read tokens from them, here.

use crate::error::{EndpointProblem, Error, Result};
use crate::http::Answer;
use crate::token::IdToken;

/// The ID token in the string field `field` of a JSON answer from `step`
/// at `url`; `missing` says what its absence means.
pub(crate) fn id_token_in(
    answer: &Answer,
    field: &str,
    step: &'static str,
    url: &str,
    missing: &str,
) -> Result<IdToken> {
    let bad = |why: String| Error::endpoint(step, url, EndpointProblem::InvalidResponse(why));
    let body: serde_json::Map<String, serde_json::Value> = answer.json().map_err(bad)?;
    let raw = body
        .get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| bad(format!("the answer has no `{field}` field; {missing}")))?;
    IdToken::parse(raw).map_err(|e| bad(format!("`{field}` is unusable: {e}")))
}
