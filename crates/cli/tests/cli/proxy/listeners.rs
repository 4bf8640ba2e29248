//! `idtoken proxy --config FILE`: several listeners in one process, each
//! to its own target with its own audience, header and impersonation, the
//! credentials shared; Ctrl-C drains them all.

use std::time::Duration;

use idtoken_emulator::Emulator;
use serde_json::Value;

use super::client::{client, get_json};
use super::upstream;
use crate::support::{idtoken, run, start_listeners, stderr};

#[tokio::test]
async fn two_listeners_send_each_upstream_a_token_for_its_own_audience() {
    let emu = Emulator::start().await.expect("emulator");
    let (a, b) = (upstream::echo(&emu).await, upstream::echo(&emu).await);
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("proxy.toml");
    let target_sa = emu.target_service_account_email();
    std::fs::write(
        &config,
        format!(
            r#"
            [[listener]]
            listen = "127.0.0.1:0"
            target = "{}"

            [[listener]]
            listen = "127.0.0.1:0"
            target = "{}"
            header = "x-serverless-authorization"
            impersonate-service-account = "{target_sa}"
            include-email = true
            "#,
            a.origin, b.origin
        ),
    )
    .expect("write");
    let config = config.display().to_string();
    let iam = emu.url();
    let proxy = start_listeners(
        home.path(),
        &[("GCE_METADATA_HOST", emu.metadata_host())],
        &["--config", &config, "--iam-endpoint", &iam],
        2,
    )
    .await;
    let seen_a = get_json(&format!("{}/a", proxy.urls[0])).await;
    assert_eq!(seen_a["path"], "/a");
    assert_eq!(
        seen_a["authorization"]["aud"],
        Value::from(a.origin.clone()),
        "{seen_a}"
    );
    assert_ne!(
        seen_a["authorization"]["email"],
        Value::from(target_sa.clone())
    );
    assert!(seen_a["x_serverless_authorization"].is_null(), "{seen_a}");
    let seen_b = get_json(&format!("{}/b", proxy.urls[1])).await;
    assert_eq!(seen_b["path"], "/b");
    let claims_b = &seen_b["x_serverless_authorization"];
    assert_eq!(claims_b["aud"], Value::from(b.origin.clone()), "{seen_b}");
    assert_eq!(claims_b["email"], Value::from(target_sa), "{seen_b}");
    assert!(seen_b["authorization"].is_null(), "{seen_b}");
    assert_eq!((a.hits(), b.hits()), (1, 1));
    // With several listeners, each access line names the one it came to.
    for (path, url) in [("/a", &proxy.urls[0]), ("/b", &proxy.urls[1])] {
        let listener = url.trim_start_matches("http://");
        proxy.log_says(&format!("GET {path} 200 ")).await;
        let log = proxy.log();
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("GET {path} 200 ")))
            .expect("the access line");
        assert!(line.ends_with(&format!(" listener={listener}")), "{line}");
    }
    let log = proxy.log();
    assert!(
        log.contains(&format!("-> {} (audience {}", a.origin, a.origin)),
        "{log}"
    );
    assert!(
        log.contains(&format!("-> {} (audience {}", b.origin, b.origin)),
        "{log}"
    );
    assert!(!log.contains("eyJ"), "the token is never logged: {log}");
}

#[tokio::test]
async fn ctrl_c_lets_the_requests_in_flight_on_every_listener_finish() {
    let emu = Emulator::start().await.expect("emulator");
    let (a, b) = (upstream::echo(&emu).await, upstream::echo(&emu).await);
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("proxy.toml");
    let entry =
        |target: &str| format!("[[listener]]\nlisten = \"127.0.0.1:0\"\ntarget = \"{target}\"\n");
    std::fs::write(&config, entry(&a.origin) + &entry(&b.origin)).expect("write");
    let config = config.display().to_string();
    let mut proxy = start_listeners(
        home.path(),
        &[("GCE_METADATA_HOST", emu.metadata_host())],
        &["--config", &config],
        2,
    )
    .await;
    let held_a = tokio::spawn(client().get(format!("{}/held", proxy.urls[0])).send());
    let held_b = tokio::spawn(client().get(format!("{}/held", proxy.urls[1])).send());
    a.held_request_arrived().await;
    b.held_request_arrived().await;
    let pid = proxy.child.id().expect("pid").to_string();
    let kill = std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()
        .expect("kill runs");
    assert!(kill.success());
    proxy.log_says("shutting down").await;
    a.release_held();
    b.release_held();
    for held in [held_a, held_b] {
        let resp = held
            .await
            .expect("task")
            .expect("the request in flight finished");
        assert_eq!(resp.status(), 200);
    }
    let status = tokio::time::timeout(Duration::from_secs(15), proxy.child.wait())
        .await
        .expect("the proxy exits")
        .expect("wait");
    assert!(status.success(), "{}", proxy.log());
}

#[tokio::test]
async fn a_bad_config_file_exits_2_naming_the_listener_and_the_key() {
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("proxy.toml");
    std::fs::write(
        &config,
        "[[listener]]\nlisten = \"127.0.0.1:0\"\ntarget = \"http://127.0.0.1:9\"\nheaders = \"authorization\"\n",
    )
    .expect("write");
    let config = config.display().to_string();
    let out = run(idtoken(home.path()).args(["proxy", "--config", &config])).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("proxy.toml: listener #1 (listen 127.0.0.1:0): headers: unknown field"),
        "{err}"
    );
    let out = run(idtoken(home.path()).args([
        "proxy",
        "--config",
        &config,
        "--target",
        "http://127.0.0.1:9",
    ]))
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("--config") && err.contains("--target"),
        "{err}"
    );
}

#[tokio::test]
async fn one_admin_port_reports_every_listener_of_a_config_file() {
    let emu = Emulator::start().await.expect("emulator");
    let (a, b) = (upstream::echo(&emu).await, upstream::echo(&emu).await);
    let home = tempfile::tempdir().expect("home");
    let config = home.path().join("proxy.toml");
    let entry =
        |target: &str| format!("[[listener]]\nlisten = \"127.0.0.1:0\"\ntarget = \"{target}\"\n");
    std::fs::write(&config, entry(&a.origin) + &entry(&b.origin)).expect("write");
    let config = config.display().to_string();
    let proxy = start_listeners(
        home.path(),
        &[("GCE_METADATA_HOST", emu.metadata_host())],
        &["--config", &config, "--admin-listen", "127.0.0.1:0"],
        2,
    )
    .await;
    for url in &proxy.urls {
        get_json(url).await;
    }
    proxy.log_says("(/healthz, /readyz, /metrics)").await;
    let log = proxy.log();
    let admin = log
        .lines()
        .find_map(|l| l.strip_prefix("idtoken: proxy: admin "))
        .and_then(|rest| rest.split(' ').next())
        .expect("the admin line")
        .to_owned();
    let metrics = client()
        .get(format!("{admin}/metrics"))
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("body");
    for (url, up) in proxy.urls.iter().zip([&a, &b]) {
        let labels = format!(
            "listener=\"{}\",target=\"{}\"",
            url.trim_start_matches("http://"),
            up.origin
        );
        assert!(metrics.contains(&labels), "{labels} in {metrics}");
    }
    let ready = client()
        .get(format!("{admin}/readyz"))
        .send()
        .await
        .expect("request");
    assert_eq!(ready.status(), 200);
}
