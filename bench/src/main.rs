//! Verification throughput, side by side in one run: idtoken's `Verifier`,
//! google-cloud-auth's `idtoken::verifier`, and Python google-auth, all
//! pointed at one in-process emulator's key sets.
//!
//! ```sh
//! cd bench && cargo run --release -- [SECONDS] [PYTHON]
//! # PYTHON: the interpreter with google-auth (../.venv-interop/bin/python)
//! ```
//!
//! Warm-cache figures are single-threaded loops (verifications per second
//! per core); the load figures run 64 tasks x 100 verifications on a cold
//! cache and count failures. Prints Markdown for docs/BENCHMARKS.md.

use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use google_cloud_auth::credentials::idtoken::verifier::Builder as GcaBuilder;
use idtoken::Verifier;
use idtoken_emulator::Emulator;
use serde_json::{Value, json};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const AUD: &str = "https://svc.example";
const IAP_AUD: &str = "/projects/123456789012/global/backendServices/42";

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let python = args.next();
    // The emulator serves from its own runtime thread; measurements run on
    // a separate single-threaded runtime on this thread.
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let emu = server.block_on(Emulator::start())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
        "azp": "1", "email": "svc@example.iam.gserviceaccount.com", "email_verified": true,
        "iat": now, "exp": now + 3600});
    let rs256 = emu.sign_google(&header.to_string(), &claims.to_string())?;
    let es256 = emu.iap_token(IAP_AUD, "alice@example.com")?;

    let ours_rs = Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .build()?;
    let ours_es = Verifier::iap()
        .audience(IAP_AUD)
        .jwks_url(emu.iap_jwks_url())
        .build()?;
    let gca_rs = GcaBuilder::new([AUD]).with_jwks_url(emu.jwks_url()).build();
    let gca_es = GcaBuilder::new([IAP_AUD])
        .with_jwks_url(emu.iap_jwks_url())
        .build();

    let local = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut rows = Vec::new();
    let ours = |v: &Verifier, t: &str| {
        let (v, t) = (v.clone(), t.to_owned());
        move || {
            let (v, t) = (v.clone(), t.clone());
            async move { v.verify(&t).await.map(|_| ()).map_err(|e| e.to_string()) }
        }
    };
    let gca_rs = Arc::new(gca_rs);
    let gca_es = Arc::new(gca_es);
    let gca = |v: &Arc<google_cloud_auth::credentials::idtoken::verifier::Verifier>, t: &str| {
        let (v, t) = (Arc::clone(v), t.to_owned());
        move || {
            let (v, t) = (Arc::clone(&v), t.clone());
            async move { v.verify(&t).await.map(|_| ()).map_err(|e| e.to_string()) }
        }
    };
    rows.push((
        "idtoken",
        "RS256",
        local.block_on(warm(secs, ours(&ours_rs, &rs256))),
    ));
    rows.push((
        "idtoken",
        "ES256 (IAP)",
        local.block_on(warm(secs, ours(&ours_es, &es256))),
    ));
    rows.push((
        "google-cloud-auth",
        "RS256",
        local.block_on(warm(secs, gca(&gca_rs, &rs256))),
    ));
    rows.push((
        "google-cloud-auth",
        "ES256 (IAP)",
        local.block_on(warm(secs, gca(&gca_es, &es256))),
    ));

    println!("| verifier | token | warm verifications/s (1 core) | errors |");
    println!("|---|---|---:|---|");
    for (who, what, r) in &rows {
        match r {
            Ok(per_s) => println!("| {who} | {what} | {per_s:.0} | 0 |"),
            Err(e) => println!("| {who} | {what} | - | every call: {e} |"),
        }
    }
    if let Some(py) = &python {
        let cases = [
            ("RS256", &rs256, AUD, emu.pem_certs_url()),
            ("ES256 (IAP)", &es256, IAP_AUD, emu.iap_pem_keys_url()),
        ];
        for (what, token, audience, certs_url) in cases {
            match python_rates(py, token, audience, &certs_url, secs) {
                Ok(v) => {
                    for (mode, label) in [
                        (
                            "verify_token",
                            "`id_token.verify_token` (keys fetched per call)",
                        ),
                        ("jwt_decode_cached_certs", "`jwt.decode`, keys fetched once"),
                    ] {
                        println!(
                            "| Python google-auth, {label} | {what} | {:.0} | {} |",
                            v[mode]["per_s"].as_f64().unwrap_or_default(),
                            v[mode]["errors"]
                        );
                    }
                }
                Err(e) => println!("| Python google-auth | {what} | - | did not run: {e} |"),
            }
        }
    }

    // The same crowd on a cold cache, many threads: failures counted.
    println!();
    println!(
        "| verifier | token | 64 tasks x 100 verifications, cold cache, 2 threads (Python: 64 threads): failed | a reason |"
    );
    println!("|---|---|---:|---|");
    let crowd = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (what, token, audience, jwks, pem, builder) in [
        (
            "RS256",
            &rs256,
            AUD,
            emu.jwks_url(),
            emu.pem_certs_url(),
            Verifier::builder(),
        ),
        (
            "ES256 (IAP)",
            &es256,
            IAP_AUD,
            emu.iap_jwks_url(),
            emu.iap_pem_keys_url(),
            Verifier::iap(),
        ),
    ] {
        // Fresh verifiers: the crowd arrives on a cold key cache.
        let fresh_ours = builder.audience(audience).jwks_url(jwks.clone()).build()?;
        let fresh_gca = Arc::new(GcaBuilder::new([audience]).with_jwks_url(jwks).build());
        let (f, why) = crowd.block_on(load(ours(&fresh_ours, token)));
        println!("| idtoken | {what} | {f} of 6400 | {why} |");
        let (f, why) = crowd.block_on(load(gca(&fresh_gca, token)));
        println!("| google-cloud-auth | {what} | {f} of 6400 | {why} |");
        if let Some(py) = &python {
            match python_crowd(py, token, audience, &pem) {
                Ok(v) => println!(
                    "| Python google-auth, `verify_token`, 64 threads x 100 | {what} | {} of 6400 | {} |",
                    v["failed"],
                    v["why"].as_str().unwrap_or_default()
                ),
                Err(e) => println!("| Python google-auth | {what} | - | did not run: {e} |"),
            }
        }
    }
    Ok(())
}

/// Verifications per second of `call` in a loop for `secs` after a warm-up;
/// the first error ends it.
async fn warm<F, Fut>(secs: f64, call: F) -> Result<f64, String>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    for _ in 0..100 {
        call().await?;
    }
    let start = Instant::now();
    let budget = Duration::from_secs_f64(secs);
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            call().await?;
        }
        n += 256;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

/// Failures among 64 x 100 concurrent verifications, and the first reason.
async fn load<F, Fut>(call: F) -> (usize, String)
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let call = call.clone();
        tasks.spawn(async move {
            let (mut failed, mut why) = (0, String::new());
            for _ in 0..100 {
                if let Err(e) = call().await {
                    failed += 1;
                    why = e;
                }
            }
            (failed, why)
        });
    }
    let (mut failed, mut why) = (0, String::new());
    while let Some(r) = tasks.join_next().await {
        let (f, w) = r.unwrap_or((100, "task panicked".into()));
        failed += f;
        if why.is_empty() {
            why = w;
        }
    }
    (failed, why)
}

fn python_rates(
    python: &str,
    token: &str,
    audience: &str,
    certs_url: &str,
    secs: f64,
) -> Result<Value, BoxError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/python/bench_verify.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args([token, audience, certs_url, &secs.to_string()])
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// Python's failures among 64 threads x 100 `verify_token` calls.
fn python_crowd(
    python: &str,
    token: &str,
    audience: &str,
    certs_url: &str,
) -> Result<Value, BoxError> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../interop/python/bench_verify.py");
    let out = std::process::Command::new(python)
        .arg(script)
        .args([token, audience, certs_url, "0", "crowd"])
        .output()?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned().into());
    }
    Ok(serde_json::from_slice(&out.stdout)?)
}
