//! The fault matrix: every outbound call idtoken makes, against every way
//! an endpoint can fail, each injected through the emulator (or a closed
//! port, or a name that does not resolve). For each cell it checks that
//! the call ends (no hang), does not panic, says which step and endpoint
//! failed without a secret in the message, retries only what may succeed
//! on retry (counted at the emulator), and that a warm cache keeps serving
//! its valid token meanwhile; for the proxy, what its client sees.
//!
//! The cells run side by side, so the whole matrix takes about one call
//! deadline (30 s). It is a test binary of its own: cargo runs binaries one
//! after another, so its minute of load never slows the CLI tests that
//! count requests against short timeouts. With `IDTOKEN_UPDATE_RELIABILITY=1` the run writes its
//! table into docs/RELIABILITY.md; the table there is this test's output.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use idtoken::{Clock as _, Credentials, Env, Impersonate, ManualClock, Verifier};
use idtoken_emulator::{Emulator, Endpoint, Fault};
use serde_json::{Value, json};

mod support;
use support::start_proxy;

const AUD: &str = "https://svc.example";
/// Longer than any call may take (30 s deadline): past it, a cell hung.
const HANG: Duration = Duration::from_secs(60);

/// The columns: how an endpoint fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Refused,
    Silence,
    Trickle,
    Reset,
    S500,
    S503,
    Throttled,
    Garbage,
    Oversized,
    Truncated,
    Redirect,
    NoSuchName,
}

impl Kind {
    const ALL: [Kind; 12] = [
        Kind::Refused,
        Kind::Silence,
        Kind::Trickle,
        Kind::Reset,
        Kind::S500,
        Kind::S503,
        Kind::Throttled,
        Kind::Garbage,
        Kind::Oversized,
        Kind::Truncated,
        Kind::Redirect,
        Kind::NoSuchName,
    ];

    fn label(self) -> &'static str {
        match self {
            Kind::Refused => "connection refused",
            Kind::Silence => "accept, then silence",
            Kind::Trickle => "body trickles",
            Kind::Reset => "reset mid-body",
            Kind::S500 => "500",
            Kind::S503 => "503",
            Kind::Throttled => "429, Retry-After: 1",
            Kind::Garbage => "200, garbage",
            Kind::Oversized => "200, body over the cap",
            Kind::Truncated => "200, truncated JSON",
            Kind::Redirect => "307 to another origin",
            Kind::NoSuchName => "name does not resolve",
        }
    }

    /// The emulator fault, for the kinds the emulator serves.
    fn fault(self) -> Option<Fault> {
        Some(match self {
            Kind::Silence => Fault::Hang,
            Kind::Trickle => Fault::Trickle,
            Kind::Reset => Fault::ResetMidBody,
            Kind::S500 => Fault::Status(500),
            Kind::S503 => Fault::Status(503),
            Kind::Throttled => Fault::RetryAfter {
                status: 429,
                secs: 1,
            },
            Kind::Garbage => Fault::Body("<html>not what you asked for</html>".into()),
            Kind::Oversized => Fault::Oversized(2 * 1024 * 1024),
            Kind::Truncated => Fault::Body(r#"{"token": "eyJhbGciOiJSUzI1NiIsImtpZCI6"#.into()),
            Kind::Redirect => Fault::Redirect(format!("{}/collect", elsewhere().0)),
            Kind::Refused | Kind::NoSuchName => return None,
        })
    }

    /// Whether another try may succeed, so the client should retry.
    fn transient(self) -> bool {
        !matches!(
            self,
            Kind::Garbage | Kind::Oversized | Kind::Truncated | Kind::Redirect
        )
    }
}

/// Another origin that counts the connections it gets (and drops them): a
/// redirect must never carry a request, with its secrets, there.
fn elsewhere() -> &'static (String, std::sync::atomic::AtomicUsize) {
    static ELSEWHERE: std::sync::OnceLock<(String, std::sync::atomic::AtomicUsize)> =
        std::sync::OnceLock::new();
    ELSEWHERE.get_or_init(|| {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if conn.is_ok() {
                    elsewhere()
                        .1
                        .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
            }
        });
        (url, std::sync::atomic::AtomicUsize::new(0))
    })
}

/// Where a cell's call goes: the emulator, a closed port, or a name that
/// does not resolve.
#[derive(Clone)]
struct Target {
    /// `http://127.0.0.1:PORT` of the emulator or of a closed port.
    base: String,
    /// `host:port` for the metadata server.
    host: String,
}

impl Target {
    fn for_kind(emu: &Emulator, kind: Kind, closed: u16) -> Target {
        match kind {
            Kind::Refused => Target {
                base: format!("http://127.0.0.1:{closed}"),
                host: format!("127.0.0.1:{closed}"),
            },
            // https: plain http off this machine is refused before any
            // lookup, which is not the fault under test.
            Kind::NoSuchName => Target {
                base: "https://idtoken-fault.invalid".into(),
                host: "idtoken-fault.invalid".into(),
            },
            _ => Target {
                base: emu.url(),
                host: emu.metadata_host(),
            },
        }
    }
}

/// What one cell found.
struct Cell {
    call: &'static str,
    kind: Kind,
    outcome: String,
    attempts: Option<u64>,
    elapsed: Duration,
    warm: &'static str,
    problems: Vec<String>,
    /// Run a second time, alone, after failing among the others.
    alone: bool,
}

type Run = Pin<Box<dyn Future<Output = Result<String, String>> + Send>>;
type Home = Arc<tempfile::TempDir>;
/// The call with a warm cache, the fault already chosen.
type Warm = fn(Arc<Emulator>, ManualClock, Home, Kind) -> Run;

/// A row: one outbound call.
struct Row {
    call: &'static str,
    endpoint: Option<Endpoint>,
    /// The call, cold, against `target`; Ok(summary) or Err(error text).
    cold: fn(Arc<Emulator>, Target, Home) -> Run,
    /// With a warm cache: does it keep serving while the endpoint fails?
    warm: Option<Warm>,
}

fn key_file(emu: &Emulator, dir: &Path, token_uri: Option<&str>) -> std::path::PathBuf {
    let mut doc: Value = serde_json::from_str(&emu.service_account_json()).expect("json");
    if let Some(uri) = token_uri {
        doc["token_uri"] = json!(uri);
    }
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = dir.join(format!("key-{n}.json"));
    std::fs::write(&path, doc.to_string()).expect("write");
    path
}

fn external(emu: &Emulator, dir: &Path, edit: impl FnOnce(&mut Value)) -> Credentials {
    let files = emu.write_credentials(dir).expect("files");
    let path = files.external_account_url.clone();
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    edit(&mut doc);
    Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads")
}

/// The emulator's AWS-sourced file (IMDSv1: the faults under test are the
/// metadata service's answers), edited.
fn aws(emu: &Emulator, dir: &Path, edit: impl FnOnce(&mut Value)) -> Credentials {
    let files = emu.write_credentials(dir).expect("files");
    let mut doc: Value =
        serde_json::from_str(&std::fs::read_to_string(&files.external_account_aws).expect("read"))
            .expect("json");
    if let Some(source) = doc["credential_source"].as_object_mut() {
        source.remove("imdsv2_session_token_url");
    }
    edit(&mut doc);
    Credentials::from_json(doc.to_string().as_bytes(), "test").expect("loads")
}

/// The workforce user's file, edited, impersonating the target account.
fn workforce(emu: &Emulator, edit: impl FnOnce(&mut Value)) -> Credentials {
    let mut doc: Value =
        serde_json::from_str(&emu.external_account_authorized_user_json()).expect("json");
    edit(&mut doc);
    Credentials::from_json(doc.to_string().as_bytes(), "test")
        .expect("loads")
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(emu.url()))
}

/// The metadata server at `host` impersonating the emulator's target
/// account through the IAM endpoint `iam`.
fn impersonating(emu: &Emulator, host: &str, iam: &str) -> Credentials {
    Credentials::metadata_server(host)
        .impersonate(Impersonate::new(emu.target_service_account_email()).iam_endpoint(iam))
}

fn short(e: impl std::fmt::Display) -> String {
    e.to_string()
}

async fn mint(creds: Credentials) -> Result<String, String> {
    creds
        .token_source(AUD)
        .token()
        .await
        .map(|t| format!("token for {}", t.claims().aud.as_deref().unwrap_or("?")))
        .map_err(short)
}

/// A verifier of Google tokens (or of IAP assertions) reading keys from
/// `url`, and a token it accepts, issued at `now`.
fn verifier_and_token(
    emu: &Emulator,
    url: String,
    iap: bool,
    now: SystemTime,
) -> (idtoken::VerifierBuilder, String) {
    if iap {
        return (
            Verifier::iap().audience(AUD).jwks_url(url),
            emu.iap_token(AUD, "alice@example.com").expect("iap token"),
        );
    }
    let now = now
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
        "iat": now, "exp": now + 3600});
    (
        Verifier::builder().audience(AUD).jwks_url(url),
        emu.sign_google(&header.to_string(), &claims.to_string())
            .expect("signs"),
    )
}

async fn verify(emu: &Emulator, url: String, iap: bool) -> Result<String, String> {
    let (builder, token) = verifier_and_token(emu, url, iap, SystemTime::now());
    let v = builder.build().expect("verifier");
    v.verify(&token)
        .await
        .map(|_| "verified".into())
        .map_err(short)
}

/// A warm token source: first token minted, then the clock moved into the
/// refresh window with the endpoint failing; the cached token must come
/// back at once.
async fn warm_token(
    emu: &Emulator,
    clock: &ManualClock,
    creds: Credentials,
    endpoint: Endpoint,
    kind: Kind,
) -> Result<String, String> {
    let source = creds.with_clock(Arc::new(clock.clone())).token_source(AUD);
    let old = source.token().await.map_err(short)?;
    if let Some(fault) = kind.fault() {
        emu.inject_fault(endpoint, fault, 1000);
    }
    clock.set(old.expires_at() - Duration::from_secs(200));
    let got = tokio::time::timeout(Duration::from_secs(5), source.token())
        .await
        .map_err(|_| "blocked while the refresh fails".to_owned())?
        .map_err(short)?;
    if got.as_str() == old.as_str() {
        Ok("serves".into())
    } else {
        Err("handed out another token".into())
    }
}

fn rows() -> Vec<Row> {
    vec![
        Row {
            call: "metadata probe (discovery)",
            endpoint: Some(Endpoint::MetadataPing),
            cold: |_, t, home| {
                Box::pin(async move {
                    let env = Env::empty()
                        .with("GCE_METADATA_HOST", t.host)
                        .with("HOME", home.path().display().to_string());
                    Credentials::discover_with(&env)
                        .await
                        .map(|c| format!("found: {}", c.kind()))
                        .map_err(short)
                })
            },
            warm: None,
        },
        Row {
            call: "metadata identity (ID token)",
            endpoint: Some(Endpoint::MetadataIdentity),
            cold: |_, t, _| Box::pin(mint(Credentials::metadata_server(&t.host))),
            warm: Some(|emu, clock, _, kind| {
                Box::pin(async move {
                    let creds = Credentials::metadata_server(&emu.metadata_host());
                    warm_token(&emu, &clock, creds, Endpoint::MetadataIdentity, kind).await
                })
            }),
        },
        Row {
            call: "metadata token (access token, impersonation source)",
            endpoint: Some(Endpoint::MetadataToken),
            cold: |emu, t, _| Box::pin(mint(impersonating(&emu, &t.host, &emu.url()))),
            warm: Some(|emu, clock, _, kind| {
                Box::pin(async move {
                    let creds = impersonating(&emu, &emu.metadata_host(), &emu.url());
                    warm_token(&emu, &clock, creds, Endpoint::MetadataToken, kind).await
                })
            }),
        },
        Row {
            call: "metadata email",
            endpoint: Some(Endpoint::MetadataEmail),
            cold: |_, t, _| {
                Box::pin(async move {
                    Credentials::metadata_server(&t.host)
                        .source_email()
                        .await
                        .map_err(short)
                })
            },
            warm: None,
        },
        Row {
            call: "OAuth token (key file, JWT-bearer)",
            endpoint: Some(Endpoint::Token),
            cold: |emu, t, home| {
                let key = key_file(&emu, home.path(), Some(&format!("{}/token", t.base)));
                Box::pin(async move { mint(Credentials::from_file(&key).map_err(short)?).await })
            },
            warm: Some(|emu, clock, home, kind| {
                let key = key_file(&emu, home.path(), None);
                Box::pin(async move {
                    let creds = Credentials::from_file(&key).map_err(short)?;
                    warm_token(&emu, &clock, creds, Endpoint::Token, kind).await
                })
            }),
        },
        Row {
            call: "IAM generateIdToken",
            endpoint: Some(Endpoint::IamGenerateIdToken),
            cold: |emu, t, _| Box::pin(mint(impersonating(&emu, &emu.metadata_host(), &t.base))),
            warm: Some(|emu, clock, _, kind| {
                Box::pin(async move {
                    let creds = impersonating(&emu, &emu.metadata_host(), &emu.url());
                    warm_token(&emu, &clock, creds, Endpoint::IamGenerateIdToken, kind).await
                })
            }),
        },
        Row {
            call: "STS token exchange",
            endpoint: Some(Endpoint::Sts),
            cold: |emu, t, home| {
                let creds = external(&emu, home.path(), |d| {
                    d["token_url"] = json!(format!("{}/v1/token", t.base));
                });
                Box::pin(mint(creds))
            },
            warm: Some(|emu, clock, home, kind| {
                let creds = external(&emu, home.path(), |_| {});
                Box::pin(async move { warm_token(&emu, &clock, creds, Endpoint::Sts, kind).await })
            }),
        },
        Row {
            call: "STS refresh grant (workforce user)",
            endpoint: Some(Endpoint::StsOauthToken),
            cold: |emu, t, _| {
                let creds = workforce(&emu, |d| {
                    d["token_url"] = json!(format!("{}/v1/oauthtoken", t.base));
                });
                Box::pin(mint(creds))
            },
            warm: Some(|emu, clock, _, kind| {
                let creds = workforce(&emu, |_| {});
                Box::pin(async move {
                    warm_token(&emu, &clock, creds, Endpoint::StsOauthToken, kind).await
                })
            }),
        },
        Row {
            call: "subject-token URL",
            endpoint: Some(Endpoint::SubjectToken),
            cold: |emu, t, home| {
                let creds = external(&emu, home.path(), |d| {
                    d["credential_source"]["url"] =
                        json!(format!("{}/_emulator/subject-token", t.base));
                });
                Box::pin(mint(creds))
            },
            warm: Some(|emu, clock, home, kind| {
                let creds = external(&emu, home.path(), |_| {});
                Box::pin(async move {
                    warm_token(&emu, &clock, creds, Endpoint::SubjectToken, kind).await
                })
            }),
        },
        Row {
            call: "AWS role keys (instance metadata)",
            endpoint: Some(Endpoint::AwsRoleCredentials),
            cold: |emu, t, home| {
                let creds = aws(&emu, home.path(), |d| {
                    d["credential_source"]["url"] = json!(format!(
                        "{}/latest/meta-data/iam/security-credentials",
                        t.base
                    ));
                });
                Box::pin(mint(creds))
            },
            warm: Some(|emu, clock, home, kind| {
                let creds = aws(&emu, home.path(), |_| {});
                Box::pin(async move {
                    warm_token(&emu, &clock, creds, Endpoint::AwsRoleCredentials, kind).await
                })
            }),
        },
        Row {
            call: "Google key set (JWK)",
            endpoint: Some(Endpoint::JwksV3),
            cold: |emu, t, _| {
                Box::pin(
                    async move { verify(&emu, format!("{}/oauth2/v3/certs", t.base), false).await },
                )
            },
            warm: Some(|emu, clock, _, kind| {
                Box::pin(async move { warm_keys(&emu, &clock, false, kind).await })
            }),
        },
        Row {
            call: "IAP key set (JWK)",
            endpoint: Some(Endpoint::IapJwk),
            cold: |emu, t, _| {
                Box::pin(async move {
                    verify(&emu, format!("{}/iap/verify/public_key-jwk", t.base), true).await
                })
            },
            warm: Some(|emu, clock, _, kind| {
                Box::pin(async move { warm_keys(&emu, &clock, true, kind).await })
            }),
        },
    ]
}

/// A warm key cache: keys fetched, then past their max-age with the key
/// endpoint failing; verifications must keep succeeding at once.
async fn warm_keys(
    emu: &Emulator,
    clock: &ManualClock,
    iap: bool,
    kind: Kind,
) -> Result<String, String> {
    let (url, endpoint) = if iap {
        (emu.iap_jwks_url(), Endpoint::IapJwk)
    } else {
        (emu.jwks_url(), Endpoint::JwksV3)
    };
    let (builder, token) = verifier_and_token(emu, url, iap, clock.now());
    let v = builder
        .clock(Arc::new(clock.clone()))
        .build()
        .expect("verifier");
    v.verify(&token).await.map_err(short)?;
    if let Some(fault) = kind.fault() {
        emu.inject_fault(endpoint, fault, 1000);
    }
    // Past the key set's max-age (60 s here), well within the tokens'.
    clock.advance(Duration::from_secs(120));
    tokio::time::timeout(Duration::from_secs(5), v.verify(&token))
        .await
        .map_err(|_| "blocked while the refresh fails".to_owned())?
        .map(|_| "serves".into())
        .map_err(short)
}

/// A port that refuses connections, held (bound, never listening) so that
/// no other cell's server can take it while this cell runs.
fn closed_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.1:0".parse().expect("addr"))
        .expect("bind");
    let port = socket.local_addr().expect("addr").port();
    (socket, port)
}

/// Emulators started before any cell runs (`prestart`): each start makes
/// RSA keys, and a few hundred of them made while cells run starve the
/// cells' own requests on this 2-core machine, so that an attempt timed
/// out under load and was counted as a second attempt.
static STARTED: Mutex<Vec<Arc<Emulator>>> = Mutex::new(Vec::new());

async fn start_emulator() -> Arc<Emulator> {
    Arc::new(
        Emulator::builder()
            .jwks_max_age(Duration::from_secs(60))
            .start()
            .await
            .expect("emulator"),
    )
}

/// Starts `n` emulators for the cells to take.
async fn prestart(n: usize) {
    let mut starting = tokio::task::JoinSet::new();
    for _ in 0..n {
        starting.spawn(start_emulator());
    }
    while let Some(emu) = starting.join_next().await {
        let emu = emu.expect("emulator start task");
        STARTED.lock().expect("emulators").push(emu);
    }
}

/// A fresh emulator: one started beforehand, or a new one.
async fn emulator() -> Arc<Emulator> {
    let ready = STARTED.lock().expect("emulators").pop();
    match ready {
        Some(emu) => emu,
        None => start_emulator().await,
    }
}

/// Secrets that must never appear in an error: tokens (JWTs, access
/// tokens), private keys, the user's refresh token and client secret.
fn secrets_in(text: &str, emu: &Emulator) -> Vec<&'static str> {
    let mut found = Vec::new();
    if text.contains("eyJ") {
        found.push("a JWT");
    }
    if text.contains("ya29.") {
        found.push("an access token");
    }
    if text.contains("PRIVATE KEY") {
        found.push("a private key");
    }
    if text.contains(&emu.user_refresh_token()) {
        found.push("the refresh token");
    }
    let (_, aws_secret, aws_session) = emu.aws_role_key();
    if text.contains(&aws_secret) || text.contains(&aws_session) {
        found.push("an AWS secret key or session token");
    }
    found
}

async fn library_cell(row: &Row, kind: Kind) -> Cell {
    let emu = emulator().await;
    let home = Arc::new(tempfile::tempdir().expect("home"));
    let (_closed, port) = closed_port();
    let target = Target::for_kind(&emu, kind, port);
    if let (Some(endpoint), Some(fault)) = (row.endpoint, kind.fault()) {
        emu.inject_fault(endpoint, fault, 1000);
    }
    let started = Instant::now();
    let outcome = tokio::spawn((row.cold)(emu.clone(), target.clone(), home.clone()));
    let outcome = tokio::time::timeout(HANG, outcome).await;
    let elapsed = started.elapsed();
    let mut problems = Vec::new();
    let outcome = match outcome {
        Err(_) => {
            problems.push(format!("no end within {HANG:?}: it hangs"));
            "hang".to_owned()
        }
        Ok(Err(join)) => {
            problems.push(format!("panicked: {join}"));
            "panic".to_owned()
        }
        Ok(Ok(Ok(summary))) => summary,
        Ok(Ok(Err(error))) => {
            for secret in secrets_in(&error, &emu) {
                problems.push(format!("the error shows {secret}"));
            }
            let host = target.host.split(':').next().unwrap_or_default().to_owned();
            if !error.contains(&host) && !error.contains(&target.base) {
                problems.push(format!("the error does not name the endpoint {host}"));
            }
            format!("error: {error}")
        }
    };
    let probe = row.call == "metadata probe (discovery)";
    // The probe reads only the headers; every other call must refuse an
    // answer it cannot use rather than pass it on.
    if !kind.transient() && !probe && !outcome.starts_with("error") {
        problems.push("a bad answer was taken as a good one".into());
    }
    let attempts = row.endpoint.map(|e| emu.counters().get(e));
    if let Some(n) = attempts {
        let reached = !matches!(kind, Kind::Refused | Kind::NoSuchName);
        let want_retries = reached && kind.transient() && row.call != "metadata probe (discovery)";
        if !reached && n != 0 {
            problems.push(format!("{n} requests reached the emulator, expected none"));
        }
        if reached && !kind.transient() && n != 1 && outcome.starts_with("error") && !probe {
            problems.push(format!(
                "{n} attempts for an answer that cannot improve, expected 1"
            ));
        }
        if want_retries && outcome.starts_with("error") && !(2..=3).contains(&n) {
            problems.push(format!(
                "{n} attempts for a transient failure, expected 2 or 3"
            ));
        }
    }
    let warm = match row.warm {
        None => "n/a",
        Some(warm) => {
            let emu = emulator().await;
            let clock = ManualClock::new(SystemTime::now());
            // `home` holds the files the warm call reads: keep it alive.
            let run = warm(emu, clock, Arc::clone(&home), kind);
            match tokio::time::timeout(HANG, tokio::spawn(run)).await {
                Ok(Ok(Ok(_))) => "serves the valid token",
                Ok(Ok(Err(e))) => {
                    problems.push(format!("warm cache: {e}"));
                    "FAILS"
                }
                Ok(Err(join)) => {
                    problems.push(format!("warm cache panicked: {join}"));
                    "panic"
                }
                Err(_) => {
                    problems.push("warm cache hangs".into());
                    "hang"
                }
            }
        }
    };
    Cell {
        call: row.call,
        kind,
        outcome,
        attempts,
        elapsed,
        warm,
        problems,
        alone: false,
    }
}

/// The proxy's target failing: what the proxy's client sees.
async fn proxy_cell(kind: Kind) -> Cell {
    let emu = emulator().await;
    let home = tempfile::tempdir().expect("home");
    let (_closed, port) = closed_port();
    let target = Target::for_kind(&emu, kind, port);
    if let Some(fault) = kind.fault() {
        emu.inject_fault(Endpoint::SubjectToken, fault, 1000);
    }
    // A key file, not the metadata server: discovery's 1.5 s probe is not
    // what this row is about.
    let key = key_file(&emu, home.path(), None);
    let env = [("GOOGLE_APPLICATION_CREDENTIALS", key.display().to_string())];
    let proxy = start_proxy(
        home.path(),
        &env,
        &["--target", &target.base, "--upstream-timeout", "5"],
    )
    .await;
    let started = Instant::now();
    let fetch = async {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| e.to_string())?;
        let resp = client
            .get(format!("{}/_emulator/subject-token", proxy.url))
            .send()
            .await
            .map_err(|e| format!("request failed: {e}"))?;
        let status = resp.status().as_u16();
        // Read the body for a few seconds at most: a trickle streams on.
        let body = tokio::time::timeout(Duration::from_secs(3), resp.bytes()).await;
        let body = match body {
            Err(_) => "body still streaming after 3 s".to_owned(),
            Ok(Err(_)) => "body broke off".to_owned(),
            Ok(Ok(b)) => format!("{} body bytes", b.len()),
        };
        Ok::<_, String>(format!("{status}, {body}"))
    };
    let outcome = tokio::time::timeout(HANG, fetch).await;
    let elapsed = started.elapsed();
    let mut problems = Vec::new();
    let outcome = match outcome {
        Err(_) => {
            problems.push("the proxy's client waited for ever".into());
            "hang".to_owned()
        }
        Ok(Ok(o)) | Ok(Err(o)) => o,
    };
    let want = match kind {
        Kind::Refused | Kind::NoSuchName => Some("502"),
        Kind::Silence => Some("504"),
        _ => None,
    };
    if let Some(want) = want
        && !outcome.starts_with(want)
    {
        problems.push(format!("expected {want}"));
    }
    let log = proxy.log();
    if log.contains("eyJ") {
        problems.push("the proxy logged a token".into());
    }
    Cell {
        call: "idtoken proxy's target",
        kind,
        outcome,
        attempts: (!matches!(kind, Kind::Refused | Kind::NoSuchName))
            .then(|| emu.counters().get(Endpoint::SubjectToken)),
        elapsed,
        warm: "n/a",
        problems,
        alone: false,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_outbound_call_under_every_fault() {
    let rows = Arc::new(rows());
    // One emulator per cell, and one more per warm-cache check.
    let per_kind: usize = rows.iter().map(|r| 1 + usize::from(r.warm.is_some())).sum();
    prestart((per_kind + 1) * Kind::ALL.len()).await;
    let mut all = Vec::new();
    // The probe first, on its own: its 1.5 s tries are meant for an idle
    // link-local server, not for a machine running a hundred cells.
    let mut cells = tokio::task::JoinSet::new();
    for kind in Kind::ALL {
        let rows = Arc::clone(&rows);
        cells.spawn(async move { library_cell(&rows[0], kind).await });
    }
    while let Some(cell) = cells.join_next().await {
        all.push(cell.expect("cell task"));
    }
    let mut cells = tokio::task::JoinSet::new();
    for r in 1..rows.len() {
        for kind in Kind::ALL {
            let rows = Arc::clone(&rows);
            cells.spawn(async move { library_cell(&rows[r], kind).await });
        }
    }
    for kind in Kind::ALL {
        cells.spawn(proxy_cell(kind));
    }
    while let Some(cell) = cells.join_next().await {
        all.push(cell.expect("cell task"));
    }
    let order = |c: &Cell| {
        let row = rows
            .iter()
            .position(|r| r.call == c.call)
            .unwrap_or(rows.len());
        let col = Kind::ALL.iter().position(|k| *k == c.kind).unwrap_or(0);
        (row, col)
    };
    all.sort_by_key(order);
    // A cell that failed among the others runs again, alone. With every
    // cell side by side on 2 cores, an attempt can outlast its 10 s
    // timeout, and the client rightly retries it: a second attempt where
    // the cell expects one, which is the machine's load, not the client's
    // fault. A defect fails alone as well; what the first run found is
    // printed, and the table marks the cells run again.
    for cell in all.iter_mut().filter(|c| !c.problems.is_empty()) {
        eprintln!(
            "{} / {}: run again alone after: {}",
            cell.call,
            cell.kind.label(),
            cell.problems.join("; ")
        );
        let mut again = match rows.iter().find(|r| r.call == cell.call) {
            Some(row) => library_cell(row, cell.kind).await,
            None => proxy_cell(cell.kind).await,
        };
        again.alone = true;
        *cell = again;
    }
    let table = render(&all);
    if std::env::var_os("IDTOKEN_UPDATE_RELIABILITY").is_some() {
        write_reliability(&table);
    }
    let followed = elsewhere().1.load(std::sync::atomic::Ordering::SeqCst);
    let mut failures: Vec<String> = all
        .iter()
        .flat_map(|c| {
            c.problems
                .iter()
                .map(move |p| format!("{} / {}: {p} ({})", c.call, c.kind.label(), c.outcome))
        })
        .collect();
    if followed > 0 {
        failures.push(format!(
            "{followed} connections followed a redirect to another origin"
        ));
    }
    assert!(failures.is_empty(), "{}\n\n{table}", failures.join("\n"));
}

fn render(cells: &[Cell]) -> String {
    let mut out = String::from(
        "| call | fault | outcome | requests at the emulator | took | warm cache |\n|---|---|---|---|---|---|\n",
    );
    for c in cells {
        let outcome = excerpt(&c.outcome.replace('|', "\\|"));
        // Ports and temp paths change each run.
        let outcome = scrub(&outcome);
        out.push_str(&format!(
            "| {} | {} | {} | {} | {:.1} s{} | {} |\n",
            c.call,
            c.kind.label(),
            outcome,
            c.attempts.map_or("-".into(), |n| n.to_string()),
            c.elapsed.as_secs_f64(),
            if c.alone { " (run alone)" } else { "" },
            c.warm,
        ));
    }
    out.push_str("| IAM generateAccessToken | (all) | not called: idtoken reaches a delegate chain through generateIdToken's `delegates` | - | - | - |\n");
    out
}

/// The outcome on one line; a long one keeps its start and its end (where
/// discovery says what the last place gave).
fn excerpt(text: &str) -> String {
    let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
    let chars: Vec<char> = flat.chars().collect();
    if chars.len() <= 200 {
        return flat;
    }
    let head: String = chars[..60].iter().collect();
    let tail: String = chars[chars.len() - 130..].iter().collect();
    format!("{head} … {tail}")
}

/// Replaces loopback ports with `PORT`.
fn scrub(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find("127.0.0.1:") {
        out.push_str(&rest[..i + "127.0.0.1:".len()]);
        rest = &rest[i + "127.0.0.1:".len()..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        out.push_str(if digits > 0 { "PORT" } else { "" });
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

fn write_reliability(table: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/RELIABILITY.md");
    let doc = std::fs::read_to_string(&path).unwrap_or_else(|_| "# Reliability\n".into());
    let (begin, end) = ("<!-- fault-matrix:begin -->", "<!-- fault-matrix:end -->");
    let generated = format!("{begin}\n{table}{end}");
    let doc = match (doc.find(begin), doc.find(end)) {
        (Some(b), Some(e)) if b < e => format!("{}{generated}{}", &doc[..b], &doc[e + end.len()..]),
        _ => format!("{doc}\n{generated}\n"),
    };
    std::fs::write(&path, doc).expect("write docs/RELIABILITY.md");
}
