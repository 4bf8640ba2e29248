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
//! - **Attach** tokens to outgoing requests ([`attach::Tokens`]): fixed or
//!   per-URL audiences with one cache each, `Authorization` or
//!   `X-Serverless-Authorization` ([`TokenHeader`]), and
//!   [`attach::Rejection`] for a target's 401.
//!
//! Tokens ([`IdToken`]) and private keys never print themselves.
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
//! Cargo features (none by default), one per framework; each adds one
//! folder of [`integrations`]:
//!
//! | feature | adds |
//! |---|---|
//! | `tower` | `integrations::tower`: `AddIdTokenLayer`, a tower `Layer` that adds tokens to any `http::Request` service (hyper clients, tonic channels); `VerifyLayer`, which verifies bearer tokens, puts the claims into request extensions, and answers 401/503 with `WWW-Authenticate` |
//! | `axum` | `integrations::axum::VerifiedClaims`, an extractor for those claims (implies `tower`) |
//! | `reqwest-middleware` | `integrations::reqwest_middleware`: `IdTokenMiddleware` for `reqwest-middleware`, `client_with`, and `new_client`, the one-call client of Go's `idtoken.NewClient` |
//!
//! And one per credential source that needs more than the rest: `x509`,
//! X.509 certificate sources of `external_account` files (mutual TLS to
//! STS; [`Credentials::client_certificate`]), which adds `x509-parser`.
//!
//! (One more, `fuzzing`, opens crate-private parsers to `fuzz/`: unstable
//! and hidden from these docs.)
//!
//! Supported credentials: service account key files, the metadata server,
//! gcloud user logins (`authorized_user`; their tokens carry the OAuth
//! client id as `aud` and say so, [`IdToken::audience_is_client_id`]),
//! impersonation files (`impersonated_service_account`), workload identity
//! federation (`external_account` with a file, URL or executable subject
//! token, an X.509 certificate with `x509`, from AWS (`AWS_*` variables or
//! the EC2 instance metadata service), or built in code with a subject
//! token or AWS keys supplier: [`external_account`]), workforce identity
//! federation users (`external_account_authorized_user`, through
//! impersonation), and impersonation on request from any of them
//! ([`Credentials::impersonate`]).

#![cfg_attr(docsrs, feature(doc_cfg))]

// The README's Rust examples, compiled as doctests (the README is the
// package's own, a link to the repository's front page).
#[cfg(all(doctest, feature = "reqwest-middleware"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

mod adc;
pub mod attach;
mod audience;
mod cache;
mod clock;
mod credentials;
mod env;
mod error;
pub mod external_account {
    //! Workload identity federation built in code: [`Builder`] takes the
    //! fields of an `external_account` file and a [`SubjectTokenSupplier`],
    //! so a program can federate from anything (a secret manager, a
    //! sidecar) without a file, as Google's Go, Python and Node libraries
    //! allow; or an [`AwsSecurityCredentialsSupplier`] to federate from AWS
    //! with keys the program has, without the instance metadata service. The credentials it builds behave as a file's do: the same STS
    //! exchange, impersonation and caches.
    pub use crate::credentials::external_account::aws::supplier::{
        AwsCredentialsFuture, AwsSecurityCredentials, AwsSecurityCredentialsSupplier,
    };
    pub use crate::credentials::external_account::supplier::{
        Builder, SubjectTokenContext, SubjectTokenSupplier, SupplierError, SupplierFuture,
    };
}
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

pub use adc::{AdcSource, Discovery, DiscoveryStep, adc_source};
pub use audience::audience_for_url;
pub use clock::{Clock, ManualClock, SystemClock, unix_time, unix_time_checked};
#[cfg(feature = "x509")]
#[cfg_attr(docsrs, doc(cfg(feature = "x509")))]
pub use credentials::ClientCertificate;
pub use credentials::{
    Credentials, CredentialsKind, DEFAULT_IAM_ENDPOINT, Format, IdTokenSource, Impersonate,
    TokenOptions, TokenSourceStats,
};
pub use env::{ALLOW_INSECURE_HTTP, Env};
pub use error::{CredentialsProblem, EndpointProblem, Error, Result};
pub use header::TokenHeader;
pub use http::{EgressProxy, egress_proxy};
pub use jws::{DecodeError, UnverifiedToken, decode_unverified};
pub use token::{Claims, IdToken, TokenError};
pub use verify::{Kind, Verifier, VerifierBuilder, VerifierStats, VerifyError};
