//! The `idtoken` binary, run as a user would, against an in-process
//! emulator and local services over loopback: one test binary, one module
//! per subcommand. The fault matrix is a binary of its own (`faults.rs`),
//! so its load never overlaps these tests' timing-sensitive ones.
//!
//! To add a test: put it in its subcommand's file, start the binary with
//! `support::idtoken` (a clean environment, a temporary HOME) and a
//! credential source from the emulator (`GCE_METADATA_HOST`, or the files
//! `Emulator::write_credentials` makes). Proxy tests start with
//! `proxy::ProxyFixture::builder()`.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use idtoken::{Credentials, TokenOptions};
use idtoken_emulator::Emulator;
use serde_json::json;

#[path = "../support/mod.rs"]
mod support;

mod aws;
mod curl;
mod curl_redirects;
mod decode;
mod demo;
mod doctor;
mod egress;
mod emulator;
mod executable;
mod help;
mod logging;
mod proxy;
mod recipes;
mod shell;
mod tls;
mod token;
mod token_cache;
mod verify;

/// The audience of the tokens `verify` and `decode` are given.
const AUD: &str = "https://svc.example";

/// A Google-signed token from the emulator's metadata server.
async fn google_token(emu: &Emulator, aud: &str) -> String {
    Credentials::metadata_server(&emu.metadata_host())
        .fetch_id_token(aud, &TokenOptions::default())
        .await
        .expect("token")
        .as_str()
        .to_owned()
}

/// A service that answers every request with what it received, as JSON
/// (the token's claims instead of the token). `/status/N` answers N.
async fn echo_service() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new().fallback(|method: Method, uri: Uri, headers: HeaderMap, body: Bytes| async move {
        let claims = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .and_then(|t| idtoken::IdToken::parse(t).ok())
                .map(|t| t.claims().to_json())
        };
        let status = uri
            .path()
            .strip_prefix("/status/")
            .and_then(|s| s.parse().ok())
            .and_then(|s| StatusCode::from_u16(s).ok())
            .unwrap_or(StatusCode::OK);
        let seen = json!({
            "method": method.as_str(),
            "path": uri.path(),
            "query": uri.query(),
            "authorization": claims("authorization"),
            "x_serverless_authorization": claims("x-serverless-authorization"),
            "raw_authorization": headers.get("authorization").and_then(|v| v.to_str().ok()).filter(|v| !v.starts_with("Bearer ey")),
            "x_custom": headers.get("x-custom").and_then(|v| v.to_str().ok()),
            "content_type": headers.get("content-type").and_then(|v| v.to_str().ok()),
            "body": String::from_utf8_lossy(&body),
        });
        (status, [("www-authenticate", "Bearer error=\"invalid_token\"")], axum::Json(seen))
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}
