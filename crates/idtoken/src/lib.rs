//! Google-signed OIDC ID tokens for Rust.
//!
//! The tokens that callers send as `Authorization: Bearer` to Cloud Run,
//! Cloud Functions and IAP-protected services, and that those services check.
//!
//! - **Find credentials** the way every Google library does
//!   ([`Credentials::discover`]): `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's
//!   file, then the metadata server.
//! - **Mint and cache** tokens per audience ([`IdTokenSource`]): lock-free
//!   reads, one fetch however many callers wait, refresh ahead of expiry in
//!   the background so no caller waits while the cached token is valid.
//! - **Verify** incoming tokens ([`Verifier`]).
//!
//! Tokens ([`IdToken`]) and private keys never print themselves.
//!
//! Cargo features (none by default):
//!
//! - `reqwest-middleware`: `idtoken::client::IdTokenMiddleware` for
//!   `reqwest-middleware`, and `idtoken::client::new_client`, the one-call client
//!   of Go's `idtoken.NewClient`.
//! - `tower-client`: `idtoken::client::AddIdTokenLayer`, a tower `Layer` that adds
//!   tokens to any `http::Request` service (hyper clients, tonic channels).
//!
//! Both share `idtoken::client::Tokens`: fixed or per-URL audiences with one cache
//! each, `Authorization` or `X-Serverless-Authorization`, and
//! `idtoken::client::Rejection` for a target's 401.
//!
//! ```no_run
//! # async fn run() -> Result<(), idtoken::Error> {
//! let url = "https://hello-abc123-uc.a.run.app/items";
//! let creds = idtoken::Credentials::discover().await?;
//! let source = creds.token_source(idtoken::audience_for_url(url)?);
//! let token = source.token().await?;
//! let resp = reqwest::Client::new()
//!     .get(url)
//!     .header("authorization", token.authorization_header())
//!     .send()
//!     .await;
//! # Ok(()) }
//! ```
//!
//! Supported credentials: service account key files and the metadata
//! server; other types (`authorized_user`, `impersonated_service_account`,
//! `external_account`) are recognised and refused with a clear error for
//! now.

mod adc;
mod audience;
mod cache;
#[cfg(any(feature = "reqwest-middleware", feature = "tower-client"))]
pub mod client;
mod clock;
mod credentials;
mod env;
mod error;
mod http;
mod jws;
mod token;
pub mod verify;

pub use audience::audience_for_url;
pub use cache::{IdTokenSource, MAX_REFRESH_AHEAD, MIN_REMAINING};
pub use clock::{Clock, ManualClock, SystemClock};
pub use credentials::{Credentials, CredentialsKind, Format, TokenOptions};
pub use env::Env;
pub use error::{CredentialsProblem, EndpointProblem, Error, Result};
pub use token::{Claims, IdToken};
pub use verify::{Verifier, VerifierBuilder, VerifyError};
