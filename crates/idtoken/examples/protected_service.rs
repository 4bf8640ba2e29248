//! A service that accepts only Google ID tokens minted for it.
//!
//! ```sh
//! # against Google (the audience is your service's URL):
//! cargo run -p idtoken --example protected_service --features axum -- https://my-svc-abc-uc.a.run.app
//! # against the emulator (`idtoken emulator` prints IDTOKEN_JWKS_URL):
//! IDTOKEN_JWKS_URL=http://127.0.0.1:PORT/oauth2/v3/certs \
//!   cargo run -p idtoken --example protected_service --features axum -- http://127.0.0.1:8080
//! ```
//!
//! Listens on 127.0.0.1:8080 (or `PORT`); `GET /` answers who called.

use axum::Router;
use axum::routing::get;
use idtoken::integrations::axum::VerifiedClaims;
use idtoken::integrations::tower::VerifyLayer;

async fn hello(VerifiedClaims(claims): VerifiedClaims) -> String {
    format!(
        "hello {} (sub {})\n",
        claims.email.as_deref().unwrap_or("(no email)"),
        claims.sub.as_deref().unwrap_or("?")
    )
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let audience = std::env::args()
        .nth(1)
        .ok_or("usage: protected_service AUDIENCE")?;
    let mut verifier = idtoken::Verifier::builder().audience(audience);
    if let Ok(url) = std::env::var("IDTOKEN_JWKS_URL") {
        verifier = verifier.jwks_url(url);
    }
    let app = Router::new()
        .route("/", get(hello))
        .layer(VerifyLayer::new(verifier.build()?));
    let port = std::env::var("PORT").unwrap_or_else(|_| "8080".into());
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
