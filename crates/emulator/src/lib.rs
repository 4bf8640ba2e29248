//! A local HTTP server that speaks Google's identity protocols, for testing
//! ID-token clients and verifiers without a Google account or network.
//!
//! One [`Emulator`] serves, on one loopback port, what Google serves at
//! several origins: the metadata server, the OAuth2 token endpoint, IAM
//! Credentials, STS, Google's and IAP's key sets, and test-control
//! endpoints under `/_emulator/`. [`ENDPOINTS`] lists every path, with its
//! method and the Google origin it stands for (`docs/EMULATOR.md` shows the
//! same table, kept in step by a test).
//!
//! Its Google keys are RSA 2048 and its IAP keys P-256, made at start and never written anywhere except the
//! key file a test asks for ([`Emulator::write_credentials`]). Tests steer it
//! with [`Emulator::inject_fault`], [`Emulator::hold`],
//! [`Emulator::set_delay`] and [`Emulator::rotate_keys`], and observe it with [`Emulator::counters`].
//!
//! Point clients at it with `GCE_METADATA_HOST` ([`Emulator::metadata_host`])
//! or a key file whose `token_uri` is [`Emulator::token_uri`], and verify
//! against [`Emulator::jwks_url`] (IAP: [`Emulator::iap_token`],
//! [`Emulator::iap_jwks_url`]). Verifier tests forge tokens with
//! [`Emulator::sign_google`] and [`Emulator::sign_iap`].
//!
//! # Example
//!
//! ```
//! use idtoken_emulator::{Emulator, Endpoint};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let emu = Emulator::start().await?;
//! println!("emulator at {}", emu.url());
//!
//! let token = reqwest::Client::new()
//!     .get(format!(
//!         "{}/computeMetadata/v1/instance/service-accounts/default/identity?audience=https://example.com",
//!         emu.url()
//!     ))
//!     .header("Metadata-Flavor", "Google")
//!     .send()
//!     .await?
//!     .error_for_status()?
//!     .text()
//!     .await?;
//! assert_eq!(token.split('.').count(), 3);
//! assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
//! emu.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod actions_oidc;
mod app;
mod aws_account;
mod aws_imds;
mod certs;
mod control;
mod emulator;
mod endpoints;
mod files;
mod form;
mod github;
mod iam;
mod jwt;
mod keys;
mod metadata;
mod mtls;
mod mtls_listener;
mod oauth2;
mod reply;
mod router;
mod state;
mod sts;
mod sts_aws;
mod wire;
mod workforce;

pub use emulator::{Builder, Emulator};
pub use endpoints::{ENDPOINTS, EndpointInfo};
pub use files::CredentialFiles;
pub use state::{Counters, Endpoint, Fault, Hold};

/// Why the emulator could not start (or make a key).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A key, signature or certificate could not be made.
    #[error("emulator key error: {0}")]
    Key(String),
}
