//! `--admin-listen`: `/healthz`, `/readyz` and `/metrics` on a port of
//! their own, which forwards nothing and shows no token; and
//! `--log-format json`.

use std::time::Duration;

use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::Value;

use super::client::{client, get_json, shout_through};
use super::fixture::ProxyFixture;

/// A proxy to the echo service with an admin port on 127.0.0.1:0.
async fn with_admin(builder: super::fixture::Builder) -> (ProxyFixture, String) {
    let fx = builder
        .arg("--admin-listen")
        .arg("127.0.0.1:0")
        .start()
        .await;
    let admin = admin_url(&fx).await;
    (fx, admin)
}

/// The admin server's URL, from the line the proxy writes at start.
async fn admin_url(fx: &ProxyFixture) -> String {
    fx.proxy.log_says("(/healthz, /readyz, /metrics)").await;
    let log = fx.log();
    let line = log
        .lines()
        .find(|l| l.starts_with("idtoken: proxy: admin http://"))
        .expect("the admin line");
    line.trim_start_matches("idtoken: proxy: admin ")
        .split(' ')
        .next()
        .expect("a URL")
        .to_owned()
}

/// GETs `url`: status and body, within 20 s.
async fn get(url: &str) -> (u16, String) {
    let resp = tokio::time::timeout(Duration::from_secs(20), client().get(url).send())
        .await
        .expect("answered in time")
        .expect("request");
    let status = resp.status().as_u16();
    (status, resp.text().await.expect("body"))
}

/// The value of the sample of `name` whose labels include each of
/// `labels` (`method="GET"`), if there is one.
fn sample(metrics: &str, name: &str, labels: &[&str]) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let rest = series.strip_prefix(name)?;
        let matches =
            (rest.is_empty() || rest.starts_with('{')) && labels.iter().all(|l| rest.contains(l));
        matches.then(|| value.parse().expect("a number"))
    })
}

/// Scrapes `/metrics` until `done` holds for it (the access log and its
/// counts land when a response body has been sent, just after the client
/// has it), and returns that scrape.
async fn metrics_once(admin: &str, what: &str, done: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    for _ in 0..500 {
        let (status, body) = get(&format!("{admin}/metrics")).await;
        assert_eq!(status, 200, "{body}");
        if done(&body) {
            return body;
        }
        last = body;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the metrics never showed {what}:\n{last}");
}

#[tokio::test]
async fn the_admin_port_reports_health_readiness_and_request_metrics_and_forwards_nothing() {
    let (fx, admin) = with_admin(ProxyFixture::builder()).await;
    let (status, body) = get(&format!("{admin}/healthz")).await;
    assert_eq!((status, body.as_str()), (200, "ok\n"));
    let head = client()
        .head(format!("{admin}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(head.status(), 200);
    assert!(
        head.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        head.headers()
    );
    let (status, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.starts_with("ready\n") && body.contains("an ID token valid for"),
        "{body}"
    );
    assert!(
        body.contains(&fx.origin),
        "names the listener's target: {body}"
    );

    get_json(&format!("{}/items", fx.url())).await;
    let echoed = client()
        .post(format!("{}/stream-back", fx.url()))
        .body("hello")
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    assert_eq!(echoed, "hello");
    let refused = client()
        .get(format!("{}/items", fx.url()))
        .header("sec-fetch-site", "cross-site")
        .header("sec-fetch-mode", "cors")
        .send()
        .await
        .expect("request");
    assert_eq!(refused.status(), 403);

    let m = metrics_once(&admin, "three requests", |m| {
        sample(
            m,
            "idtoken_proxy_requests_total",
            &["method=\"GET\"", "code=\"4xx\""],
        ) == Some(1.0)
            && sample(m, "idtoken_proxy_requests_total", &["method=\"POST\""]).is_some()
    })
    .await;
    let labels = [format!("target=\"{}\"", fx.origin)];
    let labels = [labels[0].as_str()];
    assert_eq!(
        sample(
            &m,
            "idtoken_proxy_requests_total",
            &["method=\"GET\"", "code=\"2xx\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &m,
            "idtoken_proxy_requests_total",
            &["method=\"POST\"", "code=\"2xx\""]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "idtoken_proxy_request_bytes_total", &labels),
        Some(5.0),
        "{m}"
    );
    let response_bytes = sample(&m, "idtoken_proxy_response_bytes_total", &labels);
    assert!(response_bytes.is_some_and(|b| b > 5.0), "{m}");
    // The refused request never reached the target: two timed, not three.
    assert_eq!(
        sample(&m, "idtoken_proxy_upstream_duration_seconds_count", &labels),
        Some(2.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "idtoken_proxy_upstream_duration_seconds_bucket",
            &["le=\"+Inf\""]
        ),
        Some(2.0)
    );
    assert!(sample(&m, "idtoken_proxy_connections_total", &labels).is_some_and(|n| n >= 1.0));
    assert_eq!(
        sample(&m, "idtoken_proxy_token_fetches_total", &labels),
        Some(1.0)
    );
    assert_eq!(
        sample(&m, "idtoken_proxy_token_fetch_failures_total", &labels),
        Some(0.0)
    );
    assert_eq!(
        sample(&m, "idtoken_proxy_token_refreshes_in_flight", &labels),
        Some(0.0)
    );
    let left = sample(&m, "idtoken_proxy_token_expires_in_seconds", &labels);
    assert!(left.is_some_and(|s| s > 60.0 && s <= 3600.0), "{m}");

    // The admin port forwards nothing: the target sees no new request.
    let hits = fx.upstream().hits();
    let (status, body) = get(&format!("{admin}/items")).await;
    assert_eq!(status, 404, "{body}");
    let post = client()
        .post(format!("{admin}/metrics"))
        .send()
        .await
        .expect("request");
    assert_eq!(post.status(), 405);
    assert_eq!(post.headers()["allow"], "GET, HEAD");
    // A page that rebinds its name to 127.0.0.1 gets nothing either.
    let port = admin.rsplit(':').next().expect("port");
    let rebound = client()
        .get(format!("{admin}/metrics"))
        .header("host", format!("evil.example:{port}"))
        .send()
        .await
        .expect("request");
    assert_eq!(rebound.status(), 403);
    assert_eq!(fx.upstream().hits(), hits, "the admin port forwarded");

    let (_, metrics) = get(&format!("{admin}/metrics")).await;
    let (_, ready) = get(&format!("{admin}/readyz")).await;
    for (what, text) in [
        ("metrics", &metrics),
        ("readyz", &ready),
        ("log", &fx.log()),
    ] {
        assert!(!text.contains("eyJ"), "a token in the {what}: {text}");
    }
}

#[tokio::test]
async fn readyz_without_credentials_is_503_with_the_reason_and_healthz_is_200() {
    let (_fx, admin) = with_admin(ProxyFixture::builder().no_credentials()).await;
    let (status, body) = get(&format!("{admin}/healthz")).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.starts_with("not ready\n") && body.contains("no credentials: "),
        "{body}"
    );
    let (_, metrics) = get(&format!("{admin}/metrics")).await;
    assert_eq!(
        sample(&metrics, "idtoken_proxy_token_fetches_total", &[]),
        None,
        "no token source, no token samples: {metrics}"
    );
}

#[tokio::test]
async fn readyz_answers_503_naming_why_no_token_can_be_had_and_counts_the_failures() {
    let emu = Emulator::start().await.expect("emulator");
    // Every fetch fails: the one at start and the one a probe makes.
    emu.inject_fault(Endpoint::MetadataIdentity, Fault::Status(404), 100);
    let (_fx, admin) = with_admin(ProxyFixture::builder().emulator(emu)).await;
    let (status, body) = get(&format!("{admin}/readyz")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("not ready: cannot get an ID token: ") && body.contains("404"),
        "{body}"
    );
    let (_, m) = get(&format!("{admin}/metrics")).await;
    let fetches = sample(&m, "idtoken_proxy_token_fetches_total", &[]).expect("fetches");
    let failures = sample(&m, "idtoken_proxy_token_fetch_failures_total", &[]).expect("failures");
    assert!(fetches >= 1.0 && failures == fetches, "{m}");
    assert_eq!(
        sample(&m, "idtoken_proxy_token_expires_in_seconds", &[]),
        None,
        "no token yet: {m}"
    );
}

#[tokio::test]
async fn probes_during_a_fetch_join_it_and_a_held_token_answers_without_one() {
    let emu = Emulator::start().await.expect("emulator");
    // The proxy's first fetch (at start) waits here until released.
    let fetch = emu.hold(Endpoint::MetadataIdentity);
    let (fx, admin) = with_admin(ProxyFixture::builder().emulator(emu)).await;
    let emu = &fx.emu;
    let m = metrics_once(&admin, "the fetch in flight", |m| {
        sample(m, "idtoken_proxy_token_refreshes_in_flight", &[]) == Some(1.0)
    })
    .await;
    assert_eq!(
        sample(&m, "idtoken_proxy_token_fetches_total", &[]),
        Some(1.0)
    );
    let probes: Vec<_> = (0..5)
        .map(|_| {
            let url = format!("{admin}/readyz");
            tokio::spawn(async move { get(&url).await })
        })
        .collect();
    // The emulator counts requests as they arrive, held or not.
    assert_eq!(emu.counters().get(Endpoint::MetadataIdentity), 1);
    fetch.release();
    for p in probes {
        let (status, body) = p.await.expect("probe");
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..3 {
        let (status, body) = get(&format!("{admin}/readyz")).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(
        emu.counters().get(Endpoint::MetadataIdentity),
        1,
        "probes joined the one fetch, then found its token"
    );
}

#[tokio::test]
async fn an_upgrade_counts_while_open_and_its_bytes_both_ways_once_closed() {
    let (fx, admin) = with_admin(ProxyFixture::builder()).await;
    shout_through(fx.url()).await;
    let m = metrics_once(&admin, "the tunnel closed", |m| {
        sample(m, "idtoken_proxy_upgrades_total", &[]) == Some(1.0)
            && sample(m, "idtoken_proxy_upgrades_active", &[]) == Some(0.0)
    })
    .await;
    // "hello" and "again" each way, in the tunnel; the 101 has no body.
    assert_eq!(
        sample(&m, "idtoken_proxy_request_bytes_total", &[]),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        sample(&m, "idtoken_proxy_response_bytes_total", &[]),
        Some(10.0),
        "{m}"
    );
    assert_eq!(
        sample(
            &m,
            "idtoken_proxy_requests_total",
            &["method=\"GET\"", "code=\"1xx\""]
        ),
        Some(1.0),
        "{m}"
    );
}

#[tokio::test]
async fn the_json_access_log_is_one_object_per_request_without_any_credential() {
    let fx = ProxyFixture::builder()
        .arg("--log-format")
        .arg("json")
        .start()
        .await;
    let seen: Value = client()
        .get(format!("{}/items?x=1", fx.url()))
        .header("authorization", "Basic YXBwOnNlY3JldA==")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("JSON");
    assert!(seen["authorization"]["aud"].is_string(), "{seen}");
    fx.proxy.log_says("\"path\":\"/items?x=1\"").await;
    let log = fx.log();
    let lines: Vec<Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = &lines[0];
    assert_eq!(
        line["listener"].as_str().map(|l| fx.url().ends_with(l)),
        Some(true),
        "the listener's address: {line}"
    );
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/items?x=1");
    assert_eq!(line["status"], 200);
    assert_eq!(line["outcome"], "complete");
    assert!(line["bytes"].as_u64().is_some_and(|b| b > 0), "{line}");
    assert!(line["duration_ms"].is_f64(), "{line}");
    assert!(
        !log.contains("eyJ") && !log.contains("YXBwOnNlY3JldA"),
        "no token or Authorization value in the log: {log}"
    );
}

#[tokio::test]
async fn a_client_gone_during_its_request_holds_its_connection_only_until_the_answer() {
    use tokio::io::AsyncWriteExt as _;
    let (fx, admin) = with_admin(ProxyFixture::builder()).await;
    let addr = fx.url().trim_start_matches("http://").to_owned();
    let mut conn = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    conn.write_all(format!("GET /held HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    fx.upstream().held_request_arrived().await;
    drop(conn);
    // Once the answer is written to the closed socket, the connection
    // goes; the target's work was not cut short (its 200 is logged).
    fx.upstream().release_held();
    let active = |m: &str| sample(m, "idtoken_proxy_connections_active", &[]);
    let m = metrics_once(&admin, "no open connection", |m| active(m) == Some(0.0)).await;
    assert_eq!(active(&m), Some(0.0));
    fx.proxy.log_says("GET /held 200").await;
}
