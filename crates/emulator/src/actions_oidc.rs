//! GitHub Actions' OIDC tokens, the emulated workload identity pool's
//! second kind of subject token: minted for the emulated GitHub token
//! endpoint (`github.rs`) and checked by STS (`sts.rs`) as Google checks a
//! token from an OIDC provider: issuer, signature, expiry, audience.
//!
//! They are signed with the emulator's Google key (the pool trusts it as
//! GitHub's key set); their claims have GitHub's shape.

use serde_json::json;

use crate::Error;
use crate::app::{App, Federation};
use crate::jwt::{self, Unverified};
use crate::keys::random_hex;

/// GitHub's OIDC issuer, which the pool's provider names.
pub(crate) const ISSUER: &str = "https://token.actions.githubusercontent.com";
/// The repository whose workflow the emulated job runs.
pub(crate) const REPOSITORY: &str = "octo-org/octo-repo";
/// How long GitHub's tokens live, in seconds (a few minutes: they are
/// exchanged at once).
const LIFETIME: i64 = 300;
/// What STS says of a subject token it does not take at all.
pub(crate) const REJECTED: &str = "The subject token was rejected by the identity provider.";

/// The audience a provider accepts when none is configured: its resource
/// name under `https://iam.googleapis.com/`, what `google-github-actions/auth`
/// asks GitHub for by default.
pub(crate) fn provider_audience() -> String {
    format!("https:{}", Federation::AUDIENCE)
}

/// The audience GitHub puts in a token asked for without one.
pub(crate) fn github_default_audience() -> String {
    let owner = REPOSITORY.split('/').next().unwrap_or(REPOSITORY);
    format!("https://github.com/{owner}")
}

/// A token as GitHub's endpoint hands it to a job, for `audience`.
pub(crate) fn mint(app: &App, audience: &str) -> Result<String, Error> {
    let iat = app.now();
    let exp = iat.saturating_add(LIFETIME);
    let owner = REPOSITORY.split('/').next().unwrap_or(REPOSITORY);
    let claims = json!({
        "jti": random_hex(16)?,
        "sub": format!("repo:{REPOSITORY}:ref:refs/heads/main"),
        "aud": audience,
        "ref": "refs/heads/main",
        "ref_type": "branch",
        "repository": REPOSITORY,
        "repository_owner": owner,
        "run_id": "1",
        "run_attempt": "1",
        "actor": "octocat",
        "workflow": "CI",
        "event_name": "push",
        "iss": ISSUER,
        "nbf": iat,
        "iat": iat,
        "exp": exp,
    });
    jwt::sign(&app.google_key(), &claims)
}

/// Why STS refuses `token` as a GitHub Actions subject token; `None` when
/// it takes it.
pub(crate) fn refusal(app: &App, token: &str) -> Option<String> {
    let Ok(jwt) = Unverified::parse(token) else {
        return Some(REJECTED.to_owned());
    };
    if jwt.claim_str("iss") != Some(ISSUER) {
        return Some(REJECTED.to_owned());
    }
    let kid = jwt.header_str("kid");
    let signed = app.google_keys().iter().any(|key| {
        Some(key.kid()) == kid && key.verify(jwt.signing_input.as_bytes(), &jwt.signature)
    });
    if jwt.header_str("alg") != Some("RS256") || !signed {
        return Some("The ID Token signature could not be verified.".to_owned());
    }
    if jwt.claim_time("exp").is_none_or(|exp| exp <= app.now()) {
        return Some("The ID Token has expired.".to_owned());
    }
    let expected = provider_audience();
    match jwt.claim_str("aud") {
        Some(aud) if aud == expected => None,
        aud => Some(format!(
            "The audience in ID Token [{}] does not match the expected audience [{expected}].",
            aud.unwrap_or_default()
        )),
    }
}
