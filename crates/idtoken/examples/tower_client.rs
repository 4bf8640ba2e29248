//! Calls a private Cloud Run service (or any http:// URL) through a
//! hyper-util client wrapped in the tower layer. The same layer wraps a
//! tonic `Channel` (with `Audience::Fixed`, since tonic sends paths only).
//!
//! ```text
//! cargo run -p idtoken --features tower --example tower_client -- http://127.0.0.1:8080/path
//! ```

use std::future::poll_fn;

use http_body_util::{BodyExt as _, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use idtoken::attach::{Audience, Tokens};
use idtoken::integrations::tower::AddIdTokenLayer;
use tower_layer::Layer as _;
use tower_service::Service as _;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let url = std::env::args().nth(1).ok_or("usage: tower_client URL")?;
    let creds = idtoken::Credentials::discover().await?;
    // Plain-HTTP connector to keep the example small; use hyper-rustls for https.
    let http = Client::builder(TokioExecutor::new()).build_http::<Empty<bytes::Bytes>>();
    let mut client = AddIdTokenLayer::new(Tokens::new(creds, Audience::FromUrl)).layer(http);
    poll_fn(|cx| client.poll_ready(cx)).await?;
    let resp = client
        .call(http::Request::get(url).body(Empty::new())?)
        .await?;
    println!("{}", resp.status());
    let body = resp.into_body().collect().await?.to_bytes();
    println!("{}", String::from_utf8_lossy(&body));
    Ok(())
}
