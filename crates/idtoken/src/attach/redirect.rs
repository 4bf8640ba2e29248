//! [`redirect_policy`]: tokens never cross origins on a redirect.
//!
//! reqwest follows redirects inside the client, below any middleware, and
//! drops `Authorization` on a hop to another origin but not
//! `X-Serverless-Authorization`. This rule belongs to attaching tokens, not
//! to one integration: any reqwest client that sends tokens (the
//! middleware's, `idtoken curl`'s) needs it.

use reqwest::redirect::{Action, Attempt, Policy};

use crate::header::TokenHeader;

/// A redirect policy that never carries the token to another origin:
/// with [`TokenHeader::Authorization`] it follows up to 10 redirects
/// (reqwest drops `Authorization` when the scheme, host or port changes);
/// with [`TokenHeader::XServerlessAuthorization`], which reqwest does not
/// drop, it follows only same-origin redirects and hands a redirect to
/// another origin back to the caller as the 3xx response.
///
/// ```
/// let client = reqwest::Client::builder()
///     .redirect(idtoken::attach::redirect_policy(idtoken::TokenHeader::XServerlessAuthorization))
///     .build()
///     .expect("a client");
/// # let _ = client;
/// ```
pub fn redirect_policy(header: TokenHeader) -> Policy {
    match header {
        TokenHeader::Authorization => Policy::limited(10),
        TokenHeader::XServerlessAuthorization | TokenHeader::IapAssertion => {
            Policy::custom(same_origin_only)
        }
    }
}

fn same_origin_only(attempt: Attempt<'_>) -> Action {
    let next = attempt.url().origin();
    let same = attempt
        .previous()
        .last()
        .is_some_and(|p| p.origin() == next);
    if attempt.previous().len() > 10 {
        attempt.error("too many redirects")
    } else if same {
        attempt.follow()
    } else {
        attempt.stop()
    }
}
