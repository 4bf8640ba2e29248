//! Attaching ID tokens to outgoing requests: the policy every client
//! integration shares, independent of any HTTP framework. The mirror of
//! [`verify`](crate::verify) on the sending side.
//!
//! - [`Tokens`]: credentials, which audience to mint for ([`Audience`]),
//!   which header to set ([`TokenHeader`]) and whether
//!   to replace a header the request already has. One cached
//!   [`IdTokenSource`] per audience. Cheap to clone; clones share the
//!   caches.
//! - [`Rejection`]: why the target refused the token, read from its
//!   `WWW-Authenticate` header. The integrations never retry a 401: the
//!   response comes back as it is, and [`Rejection::from_response`] says why.
//! - [`redirect_policy`]: a reqwest redirect policy that never carries a
//!   token to another origin.
//!
//! The integrations built on [`Tokens`] live in
//! `idtoken::integrations`, one feature each: the reqwest
//! middleware and `new_client` (`reqwest-middleware`), the tower layer
//! `AddIdTokenLayer` for hyper clients and tonic channels (`tower`).
//!
//! On the hot path (token cached) a request costs an atomic load of the
//! audience map, a hash lookup (the audience key is built on the stack), a
//! clock read, an atomic load of the cached token and the clone of its
//! header value (a reference count): no lock, no allocation, no system call
//! but the clock. `tests/alloc.rs` checks this for the tower layer. Two
//! costs belong to the frameworks, not to this module: inserting into an
//! empty `HeaderMap` allocates its table, and `reqwest-middleware` boxes
//! every middleware's future (its trait is an `async_trait`).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use idtoken::TokenHeader;
//! use idtoken::attach::{Audience, Tokens};
//! let creds = idtoken::Credentials::discover().await?;
//! // One audience per origin, the token in the header Cloud Run strips.
//! let tokens = Tokens::new(creds, Audience::FromUrl)
//!     .header(TokenHeader::XServerlessAuthorization);
//! # let _ = tokens;
//! # Ok(()) }
//! ```

mod audiences;
mod redirect;
mod rejection;

use std::sync::Arc;

use ::reqwest::header::HeaderName;

use crate::credentials::IdTokenSource;
use crate::credentials::{Credentials, TokenOptions};
use crate::error::Result;
use crate::header::TokenHeader;
use audiences::AudienceMap;

pub(crate) use audiences::OriginKey;
pub use redirect::redirect_policy;
pub use rejection::Rejection;

/// Which audience tokens are minted for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Audience {
    /// The same audience for every request: a Cloud Run service URL or a
    /// custom audience. Needed for tonic channels, whose request URIs carry
    /// only a path.
    Fixed(String),
    /// Worked out from each request's URL by
    /// [`audience_for_url`](crate::audience_for_url): its origin, or the
    /// function URL for Cloud Functions. Each audience gets its own cache.
    FromUrl,
}

/// The policy for adding ID tokens to outgoing requests, with one token
/// cache per audience. Shared by the reqwest middleware and the tower layer
/// (`idtoken::integrations`).
///
/// Clones share the caches; the setters ([`Tokens::header`],
/// [`Tokens::replace_existing`], [`Tokens::options`]) return a policy with
/// fresh caches, so configure before sharing.
///
/// ```
/// use idtoken::TokenHeader;
/// use idtoken::attach::{Audience, Tokens};
/// let creds = idtoken::Credentials::metadata_server("127.0.0.1:8080");
/// let tokens = Tokens::new(creds, Audience::Fixed("https://hello-abc123-uc.a.run.app".into()))
///     .header(TokenHeader::Authorization)
///     .replace_existing(false);
/// assert_eq!(tokens.header_name(), "authorization");
/// ```
#[derive(Clone, Debug)]
pub struct Tokens {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    creds: Credentials,
    options: TokenOptions,
    header: TokenHeader,
    header_name: HeaderName,
    replace_existing: bool,
    fixed: Option<IdTokenSource>,
    by_origin: AudienceMap,
}

impl Tokens {
    /// Tokens from `creds` for `audience`, sent as `Authorization: Bearer`,
    /// leaving alone a request that already has that header.
    pub fn new(creds: Credentials, audience: Audience) -> Self {
        Self::build(
            creds,
            audience,
            TokenOptions::default(),
            TokenHeader::Authorization,
            false,
        )
    }

    fn build(
        creds: Credentials,
        audience: Audience,
        options: TokenOptions,
        header: TokenHeader,
        replace_existing: bool,
    ) -> Self {
        let fixed = match audience {
            Audience::Fixed(aud) => Some(creds.token_source_with(aud, options.clone())),
            Audience::FromUrl => None,
        };
        Self {
            inner: Arc::new(Inner {
                creds,
                options,
                header,
                header_name: header.header_name(),
                replace_existing,
                fixed,
                by_origin: AudienceMap::default(),
            }),
        }
    }

    fn rebuild(&self, f: impl FnOnce(&mut TokenOptions, &mut TokenHeader, &mut bool)) -> Self {
        let i = &self.inner;
        let (mut options, mut header, mut replace) =
            (i.options.clone(), i.header, i.replace_existing);
        f(&mut options, &mut header, &mut replace);
        let audience = match &i.fixed {
            Some(src) => Audience::Fixed(src.audience().to_owned()),
            None => Audience::FromUrl,
        };
        Self::build(i.creds.clone(), audience, options, header, replace)
    }

    /// Sends the token in `header` instead of `Authorization`.
    pub fn header(self, header: TokenHeader) -> Self {
        self.rebuild(|_, h, _| *h = header)
    }

    /// Whether to overwrite the token header when the request already has
    /// one (default: no, the request goes as it is).
    pub fn replace_existing(self, replace: bool) -> Self {
        self.rebuild(|_, _, r| *r = replace)
    }

    /// Mints tokens with `options` (metadata server `format`, licenses).
    pub fn options(self, options: TokenOptions) -> Self {
        self.rebuild(|o, _, _| *o = options)
    }

    /// The name of the header that carries the token.
    pub fn header_name(&self) -> &HeaderName {
        &self.inner.header_name
    }

    /// Which header carries the token.
    pub fn token_header(&self) -> TokenHeader {
        self.inner.header
    }

    /// Whether a request that has `headers` should get a token.
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    pub(crate) fn wants_token(&self, headers: &::reqwest::header::HeaderMap) -> bool {
        self.inner.replace_existing || !headers.contains_key(&self.inner.header_name)
    }

    /// The token source for a request to `origin` (ignored with a fixed audience).
    #[cfg_attr(
        not(any(feature = "reqwest-middleware", feature = "tower")),
        allow(dead_code)
    )]
    pub(crate) fn source(
        &self,
        origin: impl FnOnce() -> Result<OriginKey>,
    ) -> Result<IdTokenSource> {
        if let Some(fixed) = &self.inner.fixed {
            return Ok(fixed.clone());
        }
        let key = origin()?;
        Ok(self.inner.by_origin.get_or_insert(key.as_str(), |aud| {
            self.inner
                .creds
                .token_source_with(aud, self.inner.options.clone())
        }))
    }
}
