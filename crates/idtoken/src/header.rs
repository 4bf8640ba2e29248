//! [`TokenHeader`]: which header carries an ID token, the same type both
//! ways: where the client integrations put a token, where the verifying
//! layer looks for one, and what `idtoken proxy` and `idtoken curl` set.

use reqwest::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::token::IdToken;

/// Which header carries an ID token.
///
/// ```
/// use idtoken::TokenHeader;
/// assert_eq!(TokenHeader::default(), TokenHeader::Authorization);
/// assert_eq!(TokenHeader::XServerlessAuthorization.name(), "x-serverless-authorization");
/// assert!(!TokenHeader::IapAssertion.is_bearer());
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenHeader {
    /// `Authorization: Bearer <token>`.
    #[default]
    Authorization,
    /// `X-Serverless-Authorization: Bearer <token>`, for applications that
    /// use `Authorization` themselves; Cloud Run checks it first.
    XServerlessAuthorization,
    /// IAP's `x-goog-iap-jwt-assertion: <token>` (no `Bearer`): what IAP
    /// sends to the application behind it, so where a verifier of IAP
    /// assertions reads.
    IapAssertion,
}

impl TokenHeader {
    /// The header's name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::Authorization => "authorization",
            Self::XServerlessAuthorization => "x-serverless-authorization",
            Self::IapAssertion => crate::verify::IAP_HEADER,
        }
    }

    /// The header's name as an `http` header name.
    pub fn header_name(self) -> HeaderName {
        match self {
            Self::Authorization => AUTHORIZATION,
            other => HeaderName::from_static(other.name()),
        }
    }

    /// Whether the value is `Bearer <token>` rather than the bare token.
    pub fn is_bearer(self) -> bool {
        self != Self::IapAssertion
    }

    /// The header's value for `token`, marked sensitive so HTTP stacks do
    /// not log it.
    pub fn value(self, token: &IdToken) -> HeaderValue {
        if self.is_bearer() {
            return token.authorization_header();
        }
        // A token that parsed as a JWT is base64url and dots: always a
        // valid header value.
        let mut value =
            HeaderValue::from_str(token.as_str()).unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}
