//! Receiving Pub/Sub push messages and Cloud Scheduler jobs: each route
//! accepts only Google ID tokens minted for this service's URL and signed
//! for the one service account its sender uses
//! (docs/recipes/pubsub-push-and-scheduler.md).
//!
//! ```sh
//! AUDIENCE=https://receiver-abc123-uc.a.run.app \
//! PUSH_SERVICE_ACCOUNT=pubsub-push@PROJECT_ID.iam.gserviceaccount.com \
//! SCHEDULER_SERVICE_ACCOUNT=scheduler@PROJECT_ID.iam.gserviceaccount.com \
//!   cargo run -p idtoken --example push_receiver --features axum
//! ```
//!
//! With the emulator, also `IDTOKEN_JWKS_URL` (from `idtoken emulator`'s
//! export lines). Listens on `PORT` (8080), on every interface on Cloud
//! Run (`K_SERVICE` set) and on 127.0.0.1 elsewhere.

use std::net::{Ipv4Addr, SocketAddr};

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;
use base64::Engine as _;
use idtoken::Verifier;
use idtoken::integrations::axum::VerifiedClaims;
use idtoken::integrations::tower::VerifyLayer;
use idtoken::verify::BuildError;

/// Who may call which route.
pub struct Config {
    /// This service's URL: the audience Pub/Sub and Cloud Scheduler are
    /// told to put in their tokens (by default, the URL they call).
    pub audience: String,
    /// The service account of the push subscription
    /// (`--push-auth-service-account`).
    pub push_service_account: String,
    /// The service account of the Cloud Scheduler job
    /// (`--oidc-service-account-email`).
    pub scheduler_service_account: String,
    /// The key set to trust instead of Google's (an emulator's).
    pub jwks_url: Option<String>,
}

/// The parts of a push request's JSON body used here.
#[derive(serde::Deserialize)]
struct PushRequest {
    message: PushMessage,
    subscription: String,
}

#[derive(serde::Deserialize)]
struct PushMessage {
    #[serde(default)]
    data: String,
    #[serde(rename = "messageId")]
    message_id: String,
}

/// A push delivery: any 2xx acknowledges the message; other statuses make
/// Pub/Sub deliver it again later.
async fn pubsub(
    VerifiedClaims(claims): VerifiedClaims,
    axum::Json(push): axum::Json<PushRequest>,
) -> (StatusCode, String) {
    let Ok(data) = base64::engine::general_purpose::STANDARD.decode(&push.message.data) else {
        return (
            StatusCode::BAD_REQUEST,
            "message data is not base64\n".into(),
        );
    };
    let sender = claims.email.as_deref().unwrap_or_default();
    let text = String::from_utf8_lossy(&data);
    let id = &push.message.message_id;
    let subscription = &push.subscription;
    println!("message {id} from {subscription} (pushed as {sender}): {text}");
    (StatusCode::OK, format!("acknowledged {id}\n"))
}

/// A Cloud Scheduler job's HTTP call, with the job's body.
async fn scheduler(VerifiedClaims(claims): VerifiedClaims, body: String) -> String {
    let sender = claims.email.as_deref().unwrap_or_default();
    println!("scheduled job run by {sender}: {body}");
    "ran\n".into()
}

/// The receiver: `POST /pubsub` for the push subscription, `POST
/// /scheduler` for the job, each behind a verifier that wants this
/// service's audience and its sender's service account (and, as Google's
/// tokens carry it, `email_verified: true`).
pub fn router(config: &Config) -> Result<Router, BuildError> {
    let verifier = |email: &str| {
        let mut builder = Verifier::builder()
            .audience(config.audience.clone())
            .allow_email(email);
        if let Some(url) = &config.jwks_url {
            builder = builder.jwks_url(url.clone());
        }
        builder.build().map(VerifyLayer::new)
    };
    Ok(Router::new()
        .route(
            "/pubsub",
            post(pubsub).layer(verifier(&config.push_service_account)?),
        )
        .route(
            "/scheduler",
            post(scheduler).layer(verifier(&config.scheduler_service_account)?),
        ))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let var = |name: &str| std::env::var(name).map_err(|_| format!("set {name}"));
    let config = Config {
        audience: var("AUDIENCE")?,
        push_service_account: var("PUSH_SERVICE_ACCOUNT")?,
        scheduler_service_account: var("SCHEDULER_SERVICE_ACCOUNT")?,
        jwks_url: std::env::var("IDTOKEN_JWKS_URL").ok(),
    };
    let port: u16 = std::env::var("PORT").map_or(Ok(8080), |p| p.parse())?;
    // Cloud Run sends requests to the container's interface, not loopback.
    let ip = if std::env::var_os("K_SERVICE").is_some() {
        Ipv4Addr::UNSPECIFIED
    } else {
        Ipv4Addr::LOCALHOST
    };
    let listener = tokio::net::TcpListener::bind(SocketAddr::from((ip, port))).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, router(&config)?).await?;
    Ok(())
}
