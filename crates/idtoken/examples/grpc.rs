//! gRPC both ways with tonic, in one process: a health service behind
//! `VerifyLayer`, called through a channel behind `AddIdTokenLayer`, then
//! once without a token to show the refusal a gRPC client gets.
//!
//! ```sh
//! # with the emulator: run `idtoken emulator` in another shell and paste
//! # its `export` lines here (IDTOKEN_JWKS_URL is the key set to trust).
//! cargo run -p idtoken --example grpc --features tower
//! ```
//!
//! The server's URL is the audience, as with a Cloud Run service. Prints:
//!
//! ```text
//! with a token: called by Some("emulator@idtoken-emulator.iam.gserviceaccount.com")
//! without: Unauthenticated: missing bearer token
//! ```

use std::time::Duration;

use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::tower::{AddIdTokenLayer, VerifyLayer};
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Server};
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tower_layer::Layer as _;

/// Answers `check` with the caller's verified email in the `x-caller` metadata.
struct WhoCalled;

#[tonic::async_trait]
impl Health for WhoCalled {
    async fn check(
        &self,
        req: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        // VerifyLayer put the claims there; without them it refuses first.
        let claims = req.extensions().get::<idtoken::Claims>();
        let email = claims
            .and_then(|c| c.email.as_deref())
            .unwrap_or("(no email)");
        let mut resp = Response::new(HealthCheckResponse {
            status: ServingStatus::Serving.into(),
        });
        if let Ok(value) = email.parse() {
            resp.metadata_mut().insert("x-caller", value);
        }
        Ok(resp)
    }

    type WatchStream = tonic::codegen::BoxStream<HealthCheckResponse>;

    async fn watch(
        &self,
        _: Request<HealthCheckRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        Err(Status::unimplemented("only check is served"))
    }
}

/// Serves the health service behind `VerifyLayer` on a free loopback
/// port (its URL is the audience it accepts), calls it with a token from
/// `credentials` and once without, and returns what each call got.
/// `jwks_url` replaces Google's key set (an emulator's).
pub async fn demo(
    credentials: idtoken::Credentials,
    jwks_url: Option<String>,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let mut verifier = idtoken::Verifier::builder().audience(url.clone());
    if let Some(jwks) = jwks_url {
        verifier = verifier.jwks_url(jwks);
    }
    let server = Server::builder()
        .layer(VerifyLayer::new(verifier.build()?))
        .serve_with_incoming(HealthServer::new(WhoCalled), TcpIncoming::from(listener));
    tokio::spawn(server);

    let channel = Channel::from_shared(url.clone())?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .connect()
        .await?;
    // tonic sends paths only, so the audience is fixed.
    let tokens = Tokens::new(credentials, Audience::Fixed(url));
    let mut client = HealthClient::new(AddIdTokenLayer::new(tokens).layer(channel.clone()));
    let resp = client.check(HealthCheckRequest::default()).await?;
    let mut lines = vec![format!(
        "with a token: called by {:?}",
        resp.metadata().get("x-caller")
    )];

    match HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await
    {
        Ok(_) => return Err("a call without a token was let through".into()),
        Err(refused) => lines.push(format!(
            "without: {:?}: {}",
            refused.code(),
            refused.message()
        )),
    }
    Ok(lines)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let credentials = idtoken::Credentials::discover().await?;
    for line in demo(credentials, std::env::var("IDTOKEN_JWKS_URL").ok()).await? {
        println!("{line}");
    }
    Ok(())
}
