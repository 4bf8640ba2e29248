//! `idtoken proxy`, run as a user would: the binary between a reqwest
//! client and a local upstream that checks every token with the
//! emulator's keys and echoes what it saw. Each test starts from a
//! [`ProxyFixture`]; https targets are in `tls.rs`, streams, upgrades and
//! h2c in `protocols.rs`.

use std::time::Duration;

use axum::body::Bytes;
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::Value;

use crate::support::{idtoken, run, stderr};
use client::{client, get_json};
use fixture::ProxyFixture;

mod admin;
mod client;
mod egress;
mod fixture;
mod listeners;
mod protocols;
mod slow_clients;
mod target_connections;
mod tls;
mod upstream;

#[tokio::test]
async fn forwards_with_a_valid_token_for_the_target_and_its_host() {
    let fx = ProxyFixture::builder().start().await;
    let up = fx.origin.clone();
    let seen = get_json(&format!("{}/items?x=1", fx.url())).await;
    assert_eq!(seen["path"], "/items?x=1");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(up.clone()),
        "{seen}"
    );
    let up_host = up.trim_start_matches("http://");
    assert_eq!(seen["headers"]["host"], up_host);
    // The access line follows the response (within the log's 10 ms).
    fx.proxy.log_says("GET /items?x=1 200 ").await;
    let log = fx.log();
    assert!(!log.contains("eyJ"), "the token is never logged: {log}");
}

#[tokio::test]
async fn pages_from_other_sites_and_rebound_names_are_refused_before_any_token() {
    let emu = Emulator::start().await.expect("emulator");
    // The proxy's token fetch waits here until released: a request that
    // needed a token would wait with it, so a refusal that comes back
    // meanwhile was decided before any token.
    let token_fetch = emu.hold(Endpoint::MetadataIdentity);
    let fx = ProxyFixture::builder()
        .emulator(emu)
        .arg("--allow-host")
        .arg("dev.internal")
        .start()
        .await;
    let up = fx.origin.clone();
    let port = fx.url().rsplit(':').next().expect("port").to_owned();
    let send = |method: reqwest::Method, headers: &[(&str, String)]| {
        let mut req = client().request(method, format!("{}/items", fx.url()));
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        async move {
            let resp = tokio::time::timeout(Duration::from_secs(20), req.send())
                .await
                .expect("answered without waiting for the held token")
                .expect("request");
            let status = resp.status().as_u16();
            (status, resp.text().await.expect("body"))
        }
    };
    // DNS rebinding: the page's own name now points at 127.0.0.1.
    let (status, body) = send(
        reqwest::Method::GET,
        &[("host", format!("evil.example:{port}"))],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("DNS rebinding") && body.contains("--allow-host evil.example"),
        "{body}"
    );
    // A form posted from another site, with and without Fetch Metadata.
    let (status, body) = send(
        reqwest::Method::POST,
        &[
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    // Another site framing the service (clickjacking): a navigation, but
    // not a top-level one.
    let (status, body) = send(
        reqwest::Method::GET,
        &[
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
            ("sec-fetch-dest", "iframe".into()),
        ],
    )
    .await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = send(
        reqwest::Method::POST,
        &[("origin", "https://evil.example".into())],
    )
    .await;
    assert_eq!(status, 403);
    fx.proxy.log_says("POST /items 403 ").await;
    assert_eq!(
        fx.upstream().hits(),
        0,
        "a refused request reached the target"
    );
    token_fetch.release();

    // What the user does: localhost names, allowed names, their own pages,
    // and following a link from elsewhere.
    for headers in [
        vec![("host", format!("localhost:{port}"))],
        vec![("host", format!("dev.internal:{port}"))],
        vec![
            ("origin", "http://localhost:3000".into()),
            ("sec-fetch-site", "same-site".into()),
        ],
        vec![
            ("sec-fetch-site", "cross-site".into()),
            ("sec-fetch-mode", "navigate".into()),
            ("sec-fetch-dest", "document".into()),
        ],
    ] {
        let (status, body) = send(reqwest::Method::GET, &headers).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
        let seen: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(seen["authorization"]["aud"], Value::from(up.clone()));
    }
    assert!(!fx.log().contains("eyJ"));
}

#[tokio::test]
async fn own_authorization_passes_untouched_with_x_serverless_authorization() {
    let fx = ProxyFixture::builder()
        .arg("--header")
        .arg("x-serverless-authorization")
        .start()
        .await;
    let seen: Value = client()
        .get(fx.url())
        .header("authorization", "Basic YXBwOnNlY3JldA==")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert_eq!(seen["headers"]["authorization"], "Basic YXBwOnNlY3JldA==");
    assert_eq!(
        seen["x_serverless_authorization"]["aud"],
        Value::from(fx.origin.clone())
    );
}

#[tokio::test]
async fn strips_hop_by_hop_headers_and_adds_x_forwarded() {
    let fx = ProxyFixture::builder().start().await;
    let seen: Value = client()
        .get(fx.url())
        .header("connection", "keep-alive, x-drop-me")
        .header("x-drop-me", "1")
        .header("keep-alive", "timeout=5")
        .header("proxy-authorization", "Basic c2VjcmV0")
        .header("te", "gzip")
        .header("x-keep-me", "1")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    let headers = &seen["headers"];
    for gone in ["x-drop-me", "keep-alive", "proxy-authorization", "te"] {
        assert!(headers.get(gone).is_none(), "{gone} forwarded: {headers}");
    }
    assert_eq!(headers["x-keep-me"], "1");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(headers["x-forwarded-proto"], "http");
    assert_eq!(
        headers["x-forwarded-host"],
        fx.url().trim_start_matches("http://")
    );
}

#[tokio::test]
async fn location_pointing_at_the_target_is_rewritten_to_the_proxy() {
    let fx = ProxyFixture::builder().start().await;
    let resp = client()
        .get(format!("{}/redirect", fx.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 302);
    assert_eq!(
        resp.headers()["location"],
        format!("{}/landed?x=1", fx.url()).as_str()
    );
    let resp = client()
        .get(format!("{}/elsewhere", fx.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.headers()["location"], "https://other.example/landed");
}

#[tokio::test]
async fn large_streamed_body_round_trips_intact() {
    let fx = ProxyFixture::builder().start().await;
    let data: Vec<u8> = (0..8 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let chunks: Vec<Result<Bytes, std::io::Error>> = data
        .chunks(64 * 1024)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let resp = client()
        .post(format!("{}/stream-back", fx.url()))
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 200);
    let back = resp.bytes().await.expect("body");
    assert_eq!(back.len(), data.len());
    assert!(back == data, "the body came back changed");
    fx.proxy.log_says("POST /stream-back 200 ").await;
    let log = fx.log();
    assert!(log.contains(&format!(" {}B", data.len())), "{log}");
}

#[tokio::test]
async fn target_down_is_a_502_with_the_reason() {
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let fx = ProxyFixture::builder()
        .target(format!("http://{closed}"))
        .start()
        .await;
    let resp = client().get(fx.url()).send().await.expect("request");
    assert_eq!(resp.status(), 502);
    let body = resp.text().await.expect("body");
    assert!(body.contains(&fx.origin), "{body}");
    assert!(body.to_lowercase().contains("connection refused"), "{body}");
}

#[tokio::test]
async fn no_response_headers_within_the_upstream_timeout_is_a_504() {
    let fx = ProxyFixture::builder()
        .arg("--upstream-timeout")
        .arg("0.3")
        .start()
        .await;
    // `/held` answers only when released, which this test never does.
    let resp = client()
        .get(format!("{}/held", fx.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status(), 504);
    let body = resp.text().await.expect("body");
    assert!(body.contains("--upstream-timeout"), "{body}");
}

/// Requests on one kept connection, each through `get` (a path to its
/// status, in at most 10 s): an old deadline that passed while the
/// connection was idle must not cut the next request short, and a later
/// request must still be cut off (an HTTP/1.1 connection keeps its timer
/// between requests, `timers.rs`).
async fn upstream_timeout_on_a_kept_connection<F, Fut>(get: F)
where
    F: Fn(&'static str) -> Fut,
    Fut: std::future::Future<Output = u16>,
{
    let get = |path| {
        let answer = get(path);
        async move {
            tokio::time::timeout(Duration::from_secs(10), answer)
                .await
                .expect("an answer in time")
        }
    };
    assert_eq!(get("/").await, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(get("/").await, 200);
    assert_eq!(get("/").await, 200);
    assert_eq!(get("/held").await, 504);
    assert_eq!(get("/").await, 200);
}

#[tokio::test]
async fn the_upstream_timeout_holds_for_each_request_of_a_kept_connection() {
    let fx = ProxyFixture::builder()
        .arg("--upstream-timeout")
        .arg("0.3")
        .start()
        .await;
    let client = client(); // one connection, kept between requests
    upstream_timeout_on_a_kept_connection(|path| {
        let req = client.get(format!("{}{path}", fx.url()));
        async move { req.send().await.expect("request").status().as_u16() }
    })
    .await;
}

#[tokio::test]
async fn the_upstream_timeout_holds_for_each_stream_of_an_http2_connection() {
    use http_body_util::Empty;
    let fx = ProxyFixture::builder()
        .h2c()
        .arg("--http2")
        .arg("--upstream-timeout")
        .arg("0.3")
        .start()
        .await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<Empty<Bytes>>();
    upstream_timeout_on_a_kept_connection(|path| {
        let req = client.get(format!("{}{path}", fx.url()).parse().expect("URL"));
        async move { req.await.expect("response").status().as_u16() }
    })
    .await;
}

#[tokio::test]
async fn no_credentials_is_a_500_naming_what_to_run() {
    let fx = ProxyFixture::builder()
        .no_credentials()
        .target("http://127.0.0.1:9")
        .start()
        .await;
    let resp = client().get(fx.url()).send().await.expect("request");
    assert_eq!(resp.status(), 500);
    let body = resp.text().await.expect("body");
    assert!(
        body.contains("gcloud auth application-default login"),
        "{body}"
    );
    assert!(body.contains("idtoken doctor"), "{body}");
}

#[tokio::test]
async fn non_loopback_listen_without_the_flag_is_refused() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).args([
        "proxy",
        "--target",
        "http://127.0.0.1:9",
        "--listen",
        "0.0.0.0:0", // refused: it needs --allow-non-loopback
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--allow-non-loopback"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn absurd_upstream_timeouts_are_usage_errors_not_panics() {
    let emu = Emulator::start().await.expect("emulator");
    let svc = crate::echo_service().await;
    let home = tempfile::tempdir().expect("home");
    for secs in ["1e20", "inf"] {
        let out = run(idtoken(home.path())
            .env("GCE_METADATA_HOST", emu.metadata_host())
            .args([
                "proxy",
                "--target",
                &format!("http://{svc}"),
                "--upstream-timeout",
                secs,
            ]))
        .await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "--upstream-timeout {secs}: {}",
            stderr(&out)
        );
    }
}

#[tokio::test]
async fn many_requests_share_one_token_fetch() {
    let fx = ProxyFixture::builder().start().await;
    let url = format!("{}/n", fx.url());
    let gets = (0..32).map(|_| get_json(&url));
    for seen in futures_util::future::join_all(gets).await {
        assert_eq!(seen["authorization"]["aud"], Value::from(fx.origin.clone()));
    }
    assert_eq!(fx.emu.counters().get(Endpoint::MetadataIdentity), 1);
}

#[tokio::test]
async fn ctrl_c_lets_in_flight_requests_finish() {
    stopping_lets_in_flight_requests_finish("-INT").await;
}

#[tokio::test]
async fn sigterm_stops_as_gracefully_as_ctrl_c() {
    // What `docker stop`, systemd and `kill` send.
    stopping_lets_in_flight_requests_finish("-TERM").await;
}

/// Sends `signal` to a proxy with a request in flight: the request
/// finishes, its access line is written, and the proxy exits with 0.
async fn stopping_lets_in_flight_requests_finish(signal: &str) {
    let mut fx = ProxyFixture::builder().start().await;
    let in_flight = tokio::spawn(client().get(format!("{}/held", fx.url())).send());
    fx.upstream().held_request_arrived().await;
    let pid = fx.proxy.child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    // The request is still in flight when the proxy starts shutting down.
    fx.proxy.log_says("shutting down").await;
    fx.upstream().release_held();
    let resp = in_flight
        .await
        .expect("task")
        .expect("the request in flight finished");
    assert_eq!(resp.status(), 200);
    resp.bytes().await.expect("body");
    let status = tokio::time::timeout(Duration::from_secs(15), fx.proxy.child.wait())
        .await
        .expect("the proxy exits")
        .expect("wait");
    assert!(status.success(), "{}", fx.log());
    fx.proxy.log_says("GET /held 200 ").await;
}

#[tokio::test]
async fn short_lived_tokens_are_refreshed_and_never_sent_expired() {
    let emu = Emulator::builder()
        .token_lifetime(Duration::from_secs(8))
        .start()
        .await
        .expect("emulator");
    let fx = ProxyFixture::builder().emulator(emu).start().await;
    let up = fx.origin.clone();
    let started = std::time::SystemTime::now();
    let mut tokens = std::collections::BTreeSet::new();
    while started.elapsed().expect("clock") < Duration::from_secs(13) {
        let seen = get_json(fx.url()).await;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs_f64();
        let claims = &seen["authorization"];
        assert_eq!(claims["aud"], Value::from(up.clone()), "{seen}");
        let exp = claims["exp"].as_f64().expect("exp");
        assert!(exp > now, "a token expired at {exp} was sent at {now}");
        tokens.insert(claims["iat"].to_string());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let fetches = fx.emu.counters().get(Endpoint::MetadataIdentity);
    assert!(tokens.len() >= 2, "the token was refreshed: {tokens:?}");
    // Refreshes start 2 s (a quarter of the lifetime) before expiry.
    assert!(
        (2..=4).contains(&fetches),
        "{fetches} fetches in 13 s of 8 s tokens"
    );
}

#[tokio::test]
async fn target_path_is_prefixed_and_the_audience_stays_the_origin() {
    let fx = ProxyFixture::builder().path("/base/").start().await;
    let seen = get_json(&format!("{}/items?x=1", fx.url())).await;
    assert_eq!(seen["path"], "/base/items?x=1");
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
}

#[tokio::test]
async fn an_unknown_header_choice_is_a_usage_error_naming_the_two() {
    let home = tempfile::tempdir().expect("home");
    let out = run(idtoken(home.path()).args([
        "proxy",
        "--target",
        "http://127.0.0.1:9",
        "--header",
        "x-goog-iap-jwt-assertion",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("x-serverless-authorization"), "{err}");
}

#[tokio::test]
async fn a_workforce_user_file_forwards_the_impersonated_accounts_token() {
    let emu = Emulator::start().await.expect("emulator");
    let dir = tempfile::tempdir().expect("dir");
    let files = emu.write_credentials(dir.path()).expect("files");
    let target_id = emu.target_service_account_id();
    let fx = ProxyFixture::builder()
        .emulator(emu)
        .arg("--credentials")
        .arg(files.impersonated_from_workforce_user.display().to_string())
        .start()
        .await;
    let seen = get_json(&format!("{}/who", fx.url())).await;
    assert_eq!(
        seen["authorization"]["sub"],
        Value::from(target_id),
        "{seen}"
    );
    assert_eq!(
        seen["authorization"]["aud"],
        Value::from(fx.origin.clone()),
        "{seen}"
    );
}

#[tokio::test]
async fn requests_ending_together_each_get_one_whole_access_line_while_the_proxy_idles() {
    // The proxy writes the lines of requests that end close together in
    // one write: none may be lost, cut or left waiting once the proxy is
    // idle.
    let fx = ProxyFixture::builder().start().await;
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..40 {
        let url = format!("{}/together/{i}", fx.url());
        // A client each: 40 connections, their requests at once.
        requests.spawn(async move { client().get(url).send().await.expect("request").status() });
    }
    while let Some(status) = requests.join_next().await {
        assert_eq!(status.expect("task"), 200);
    }
    fx.proxy.log_says("/together/").await;
    let lines = || {
        fx.log()
            .lines()
            .filter(|l| l.starts_with("GET /together/"))
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let all_written = async {
        while lines().len() < 40 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(20), all_written)
        .await
        .unwrap_or_else(|_| panic!("not every line was written: {}", fx.log()));
    let mut paths: Vec<String> = lines()
        .iter()
        .map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            assert_eq!(fields.len(), 5, "{l}");
            assert_eq!(fields[2], "200", "{l}");
            fields[1].to_owned()
        })
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths.len(), 40, "{}", fx.log());
}
