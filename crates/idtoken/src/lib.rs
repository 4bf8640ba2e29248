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
//! - **Verify** incoming tokens ([`Verifier`]): Google ID tokens (RS256)
//!   and IAP assertions (ES256), with a key cache that never makes a
//!   verification wait while its keys are valid.
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
//! Features (none by default):
//!
//! | feature | adds |
//! |---|---|
//! | `tower` | `integrations::tower::VerifyLayer`: verifies bearer tokens, claims into request extensions, 401/503 with `WWW-Authenticate` |
//! | `axum` | `integrations::axum::VerifiedClaims`, an extractor for those claims |
//!
//! Supported credentials: service account key files, the metadata server,
//! gcloud user logins (`authorized_user`; their tokens carry the OAuth
//! client id as `aud` and say so, [`IdToken::audience_is_client_id`]),
//! impersonation files (`impersonated_service_account`), workload identity
//! federation (`external_account` with a file or URL subject token), and
//! impersonation on request from any of them ([`Credentials::impersonate`]).

mod adc;
mod audience;
mod cache;
#[cfg(any(feature = "reqwest-middleware", feature = "tower-client"))]
pub mod client;
mod clock;
mod credentials;
mod env;
mod error;
mod flight;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod header;
mod http;
pub mod integrations;
mod jws;
mod token;
pub mod verify;

pub use adc::{Discovery, DiscoveryStep};
pub use audience::audience_for_url;
pub use clock::{Clock, ManualClock, SystemClock, unix_time, unix_time_checked};
pub use credentials::{
    Credentials, CredentialsKind, DEFAULT_IAM_ENDPOINT, Format, IdTokenSource, Impersonate,
    TokenOptions,
};
pub use env::{ALLOW_INSECURE_HTTP, Env};
pub use error::{CredentialsProblem, EndpointProblem, Error, Result};
pub use header::TokenHeader;
pub use jws::{DecodeError, UnverifiedToken, decode_unverified};
pub use token::{Claims, IdToken};
pub use verify::{Kind, Verifier, VerifierBuilder, VerifierStats, VerifyError};
