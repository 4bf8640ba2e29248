//! The audience a Google service expects for a URL: what `idtoken curl`
//! and the HTTP integrations use when no audience is given.

use reqwest::Url;

use crate::error::{Error, Result};

/// The audience Cloud Run or Cloud Functions expects for a request to `url`.
///
/// Cloud Run accepts the service URL, so this is the URL's origin; 1st-gen
/// Cloud Functions (`*.cloudfunctions.net`) want the function URL, the origin
/// plus the first path segment. Query strings and fragments are never part
/// of an audience.
///
/// ```
/// use idtoken::audience_for_url;
/// assert_eq!(
///     audience_for_url("https://hello-abc123-uc.a.run.app/api/items?x=1").unwrap(),
///     "https://hello-abc123-uc.a.run.app"
/// );
/// assert_eq!(
///     audience_for_url("https://us-central1-proj.cloudfunctions.net/fn/sub?x=1").unwrap(),
///     "https://us-central1-proj.cloudfunctions.net/fn"
/// );
/// assert_eq!(audience_for_url("http://127.0.0.1:8080/x").unwrap(), "http://127.0.0.1:8080");
/// ```
pub fn audience_for_url(url: &str) -> Result<String> {
    let parsed = Url::parse(url).map_err(|e| {
        Error::InvalidArgument(format!(
            "{url:?} is not a URL ({e}); give a full URL such as https://SERVICE.run.app/path"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
        return Err(Error::InvalidArgument(format!(
            "{url:?} is not an http(s) URL with a host"
        )));
    }
    let origin = parsed.origin().ascii_serialization();
    let is_function = parsed
        .host_str()
        .is_some_and(|h| h.ends_with(".cloudfunctions.net"));
    if is_function
        && let Some(first) = parsed
            .path_segments()
            .and_then(|mut s| s.next())
            .filter(|s| !s.is_empty())
    {
        return Ok(format!("{origin}/{first}"));
    }
    Ok(origin)
}
