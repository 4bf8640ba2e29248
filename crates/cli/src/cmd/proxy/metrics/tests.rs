use std::collections::BTreeMap;

use super::*;

/// The samples of a rendering, `name{labels}` → value, checking that each
/// family's `# HELP` and `# TYPE` come once, before its samples.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let mut typed = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().expect("a name").to_owned();
            assert!(!typed.contains(&name), "{name} typed twice");
            typed.push(name);
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("name and value");
        let name = series.split('{').next().expect("a name");
        assert!(
            typed.iter().any(|t| name.starts_with(t.as_str())),
            "{name} has no # TYPE before it"
        );
        let value = value.parse().unwrap_or_else(|_| panic!("a number: {line}"));
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    out
}

fn registry(target: &str) -> (Registry, &'static ListenerMetrics) {
    let metrics = ListenerMetrics::new_static();
    let mut r = Registry::default();
    r.add(
        "127.0.0.1:8080".parse().expect("addr"),
        target,
        metrics,
        Err("no credentials".to_owned()),
    );
    (r, metrics)
}

const L: &str = r#"listener="127.0.0.1:8080",target="http://t""#;

#[test]
fn requests_count_by_method_and_status_class_and_unknown_ones_apart() {
    let (r, m) = registry("http://t");
    m.request_done(&Method::GET, StatusCode::OK, 10);
    m.request_done(&Method::GET, StatusCode::NO_CONTENT, 0);
    m.request_done(&Method::POST, StatusCode::BAD_GATEWAY, 5);
    let purge = Method::from_bytes(b"PURGE").expect("method");
    let odd = StatusCode::from_u16(799).expect("status");
    m.request_done(&purge, odd, 1);
    let s = samples(&r.render());
    let requests = |method: &str, code: &str| {
        s.get(&format!(
            "idtoken_proxy_requests_total{{{L},method=\"{method}\",code=\"{code}\"}}"
        ))
        .copied()
    };
    assert_eq!(requests("GET", "2xx"), Some(2.0));
    assert_eq!(requests("POST", "5xx"), Some(1.0));
    assert_eq!(requests("OTHER", "other"), Some(1.0));
    assert_eq!(requests("GET", "4xx"), None, "no series before a count");
    assert_eq!(
        s[&format!("idtoken_proxy_response_bytes_total{{{L}}}")],
        16.0
    );
}

#[test]
fn the_latency_histogram_is_cumulative_with_its_bounds_inclusive() {
    let (r, m) = registry("http://t");
    m.upstream_latency(Duration::from_millis(5)); // on the first bound
    m.upstream_latency(Duration::from_millis(30));
    m.upstream_latency(Duration::from_secs(60)); // past the last bound
    let s = samples(&r.render());
    let bucket =
        |le: &str| s[&format!("idtoken_proxy_upstream_duration_seconds_bucket{{{L},le=\"{le}\"}}")];
    assert_eq!(bucket("0.005"), 1.0);
    assert_eq!(bucket("0.025"), 1.0);
    assert_eq!(bucket("0.05"), 2.0);
    assert_eq!(bucket("10"), 2.0);
    assert_eq!(bucket("+Inf"), 3.0);
    assert_eq!(
        s[&format!("idtoken_proxy_upstream_duration_seconds_count{{{L}}}")],
        3.0
    );
    let sum = s[&format!("idtoken_proxy_upstream_duration_seconds_sum{{{L}}}")];
    assert!((sum - 60.035).abs() < 1e-9, "{sum}");
}

#[test]
fn connections_and_upgrades_are_gauges_while_open_and_counters_ever() {
    let (r, m) = registry("http://t");
    let a = m.connection();
    let b = m.connection();
    let u = m.upgrade();
    let s = samples(&r.render());
    assert_eq!(s[&format!("idtoken_proxy_connections_active{{{L}}}")], 2.0);
    assert_eq!(s[&format!("idtoken_proxy_upgrades_active{{{L}}}")], 1.0);
    drop((a, b, u));
    m.tunnelled(3, 4);
    let s = samples(&r.render());
    assert_eq!(s[&format!("idtoken_proxy_connections_active{{{L}}}")], 0.0);
    assert_eq!(s[&format!("idtoken_proxy_connections_total{{{L}}}")], 2.0);
    assert_eq!(s[&format!("idtoken_proxy_upgrades_active{{{L}}}")], 0.0);
    assert_eq!(s[&format!("idtoken_proxy_upgrades_total{{{L}}}")], 1.0);
    assert_eq!(s[&format!("idtoken_proxy_request_bytes_total{{{L}}}")], 3.0);
    assert_eq!(
        s[&format!("idtoken_proxy_response_bytes_total{{{L}}}")],
        4.0
    );
}

#[test]
fn listeners_share_one_rendering_each_under_its_own_labels_escaped() {
    let (mut r, first) = registry("http://t");
    let second = ListenerMetrics::new_static();
    r.add(
        "127.0.0.1:8081".parse().expect("addr"),
        "http://odd\"name\\",
        second,
        Err("none".to_owned()),
    );
    first.request_done(&Method::GET, StatusCode::OK, 1);
    second.request_done(&Method::GET, StatusCode::OK, 2);
    let text = r.render();
    let s = samples(&text);
    assert_eq!(
        s[&format!("idtoken_proxy_response_bytes_total{{{L}}}")],
        1.0
    );
    let other = r#"listener="127.0.0.1:8081",target="http://odd\"name\\""#;
    assert_eq!(
        s[&format!("idtoken_proxy_response_bytes_total{{{other}}}")],
        2.0
    );
    // Without a token source there are no token samples, only their
    // families' descriptions.
    assert!(text.contains("# TYPE idtoken_proxy_token_fetches_total counter"));
    assert!(!s.keys().any(|k| k.starts_with("idtoken_proxy_token_")));
}
