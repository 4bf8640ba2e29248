//! Calls a private Cloud Run service (or any URL) with an ID token, using
//! the reqwest middleware and Application Default Credentials.
//!
//! ```text
//! cargo run -p idtoken --features reqwest-middleware --example reqwest_client -- https://SERVICE-HASH-REGION.a.run.app/path
//! ```

use idtoken::attach::Rejection;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::args().nth(1).ok_or("usage: reqwest_client URL")?;
    // Go's idtoken.NewClient(ctx, audience): the audience is the URL's origin.
    let client =
        idtoken::integrations::reqwest_middleware::new_client(idtoken::audience_for_url(&url)?)
            .await?;
    let resp = client.get(&url).send().await?;
    if let Some(rejection) = Rejection::from_response(&resp) {
        return Err(rejection.into());
    }
    println!("{}", resp.text().await?);
    Ok(())
}
