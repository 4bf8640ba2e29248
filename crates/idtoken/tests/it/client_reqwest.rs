//! The reqwest middleware over loopback: tokens per audience, the header
//! policy, redirects that never carry the token away, 401s not retried.

use idtoken::Credentials;
use idtoken::TokenHeader;
use idtoken::attach::{Audience, Rejection, Tokens};
use idtoken::integrations::reqwest_middleware::{IdTokenMiddleware, client_with};
use idtoken_emulator::Endpoint;
use reqwest::StatusCode;

use crate::common::*;
use crate::upstream::Upstream;

fn metadata(emu: &idtoken_emulator::Emulator) -> Credentials {
    Credentials::metadata_server(&emu.metadata_host())
}

#[tokio::test]
async fn fixed_audience_token_verifies_at_the_upstream_and_is_fetched_once() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let client =
        client_with(Tokens::new(metadata(&emu), Audience::Fixed(up.url.clone()))).expect("client");
    for _ in 0..5 {
        let resp = client
            .get(format!("{}/hello", up.url))
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status(), StatusCode::OK);
    }
    let seen = up.seen();
    assert_eq!(seen.len(), 5);
    assert!(seen.iter().all(|s| s.verified == Some(true)), "{seen:?}");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn audiences_derived_from_urls_get_their_own_cached_tokens() {
    let emu = emulator().await;
    let (a, b) = (Upstream::start(&emu).await, Upstream::start(&emu).await);
    let client = reqwest_middleware::ClientBuilder::new(reqwest::Client::new())
        .with(IdTokenMiddleware::new(Tokens::new(
            metadata(&emu),
            Audience::FromUrl,
        )))
        .build();
    for _ in 0..3 {
        for up in [&a, &b] {
            let resp = client
                .get(format!("{}/x?q=1", up.url))
                .send()
                .await
                .expect("sent");
            assert_eq!(resp.status(), StatusCode::OK, "{}", up.url);
        }
    }
    // Each upstream verified its tokens against its own origin.
    for up in [&a, &b] {
        assert!(up.seen().iter().all(|s| s.verified == Some(true)));
    }
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 2);
}

#[tokio::test]
async fn a_request_that_has_the_header_is_left_alone_unless_told_otherwise() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let tokens = Tokens::new(metadata(&emu), Audience::FromUrl);
    let keep = client_with(tokens.clone()).expect("client");
    let resp = keep
        .get(&up.url)
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(up.seen()[0].headers["authorization"], "Basic dXNlcjpwdw==");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 0);

    let replace = client_with(tokens.replace_existing(true)).expect("client");
    replace
        .get(&up.url)
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .expect("sent");
    assert_eq!(up.seen()[1].verified, Some(true));
}

#[tokio::test]
async fn x_serverless_mode_sends_the_token_beside_the_apps_own_authorization() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let tokens = Tokens::new(metadata(&emu), Audience::FromUrl)
        .header(TokenHeader::XServerlessAuthorization);
    let client = client_with(tokens).expect("client");
    let resp = client
        .get(&up.url)
        .header("authorization", "Basic dXNlcjpwdw==")
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = &up.seen()[0];
    assert_eq!(seen.headers["authorization"], "Basic dXNlcjpwdw==");
    assert!(seen.headers.contains_key("x-serverless-authorization"));
    assert_eq!(seen.verified, Some(true));
}

#[tokio::test]
async fn one_token_header_type_serves_sending_verifying_and_the_cli() {
    // The client's type is the crate's: an IAP-style header carries the
    // bare token, as IAP itself sends it.
    let header: idtoken::TokenHeader = TokenHeader::IapAssertion;
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let tokens = Tokens::new(metadata(&emu), Audience::FromUrl).header(header);
    let client = client_with(tokens).expect("client");
    client.get(&up.url).send().await.expect("sent");
    let seen = &up.seen()[0];
    let value = seen.headers["x-goog-iap-jwt-assertion"]
        .to_str()
        .expect("ascii");
    assert!(
        value.starts_with("eyJ") && !value.starts_with("Bearer"),
        "{value}"
    );
    assert!(!seen.headers.contains_key("authorization"));
}

#[tokio::test]
async fn a_redirect_to_another_host_never_carries_the_token() {
    let emu = emulator().await;
    let home = Upstream::start(&emu).await;
    let away = Upstream::start_on(&emu, "127.0.0.2").await;
    let client = client_with(Tokens::new(metadata(&emu), Audience::FromUrl)).expect("client");
    let resp = client
        .get(format!("{}/redirect?to={}/landed", home.url, away.url))
        .send()
        .await
        .expect("sent");
    assert_eq!(resp.status(), StatusCode::OK, "the redirect was followed");
    assert_eq!(home.seen()[0].verified, Some(true));
    let landed = &away.seen()[0];
    assert_eq!(landed.path, "/landed");
    assert!(!landed.headers.contains_key("authorization"), "{landed:?}");
    assert!(!landed.headers.contains_key("x-serverless-authorization"));
    // One token, for the home origin only.
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn an_x_serverless_token_stops_at_a_redirect_to_another_host() {
    let emu = emulator().await;
    let home = Upstream::start(&emu).await;
    let away = Upstream::start_on(&emu, "127.0.0.2").await;
    let tokens = Tokens::new(metadata(&emu), Audience::FromUrl)
        .header(TokenHeader::XServerlessAuthorization);
    let client = client_with(tokens).expect("client");
    let resp = client
        .get(format!("{}/redirect?to={}/landed", home.url, away.url))
        .send()
        .await
        .expect("sent");
    // reqwest would carry X-Serverless-Authorization along: the redirect
    // comes back to the caller instead.
    assert_eq!(resp.status(), StatusCode::TEMPORARY_REDIRECT);
    assert!(away.seen().is_empty());
}

#[tokio::test]
async fn a_401_is_not_retried_and_its_reason_is_exposed() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    let client = client_with(Tokens::new(metadata(&emu), Audience::FromUrl)).expect("client");
    let resp = client
        .get(format!("{}/reject", up.url))
        .send()
        .await
        .expect("sent");
    let rejection = Rejection::from_response(&resp).expect("a 401 is a rejection");
    assert_eq!(rejection.status, StatusCode::UNAUTHORIZED);
    assert_eq!(rejection.error.as_deref(), Some("invalid_token"));
    assert_eq!(
        rejection.error_description.as_deref(),
        Some("The access token could not be verified")
    );
    assert_eq!(up.seen().len(), 1, "one request, no retry");
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn a_mint_failure_is_a_middleware_error_holding_the_idtoken_error() {
    let emu = emulator().await;
    let up = Upstream::start(&emu).await;
    emu.inject_fault(
        Endpoint::MetadataIdentity,
        idtoken_emulator::Fault::Status(403),
        10,
    );
    let client = client_with(Tokens::new(metadata(&emu), Audience::FromUrl)).expect("client");
    let err = client
        .get(&up.url)
        .send()
        .await
        .expect_err("no token, no request");
    let reqwest_middleware::Error::Middleware(err) = err else {
        panic!("expected a middleware error, got {err:?}");
    };
    let err = err
        .downcast_ref::<idtoken::Error>()
        .expect("an idtoken::Error");
    assert!(matches!(err, idtoken::Error::Endpoint { .. }), "{err:?}");
    assert!(up.seen().is_empty(), "nothing was sent without a token");
}
