//! Verification throughput, side by side in one run: idtoken's `Verifier`,
//! google-cloud-auth's `idtoken::verifier`, and Python google-auth, all
//! pointed at one in-process emulator's key sets.
//!
//! ```sh
//! cd bench && cargo run --release -- [SECONDS] [PYTHON]
//! # PYTHON: the interpreter with google-auth (../.venv-interop/bin/python)
//! ```
//!
//! Warm-cache figures are loops on one thread (verifications per second
//! per core; the median of five rounds) and on two threads; rows of raw
//! aws-lc-rs RSA-2048 and P-256 verifications in the same run are the
//! ceiling every other row is a ratio of (the median of the five rounds'
//! ratios, each round running every row in turn). The load figures run 64
//! tasks x 100 verifications on a cold cache and count failures. Prints
//! Markdown for docs/BENCHMARKS.md.

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
    // The verified-token cache rows: 1, 100 and 10,000 distinct tokens
    // repeated; the first 2,000 are also the unique-token rows' tokens.
    let pool = |n: usize| -> Result<Vec<String>, BoxError> {
        (0..n)
            .map(|i| {
                let claims = json!({"iss": "https://accounts.google.com", "aud": AUD,
                    "sub": i.to_string(), "azp": "1",
                    "email": "svc@example.iam.gserviceaccount.com", "email_verified": true,
                    "iat": now, "exp": now + 3600});
                Ok(emu.sign_google(&header.to_string(), &claims.to_string())?)
            })
            .collect()
    };
    let many = pool(10_000)?;
    let unique: Arc<[String]> = many[..2000].into();
    let raw = raw_keys(&rs256, &unique)?;
    let raw_rsa = {
        let r = Arc::clone(&raw);
        move || {
            let r = Arc::clone(&r);
            async move { r.rsa_parsed() }
        }
    };
    let raw_rsa_unparsed = {
        let r = Arc::clone(&raw);
        move || {
            let r = Arc::clone(&r);
            async move { r.rsa_unparsed() }
        }
    };
    let raw_rsa_each = {
        let r = Arc::clone(&raw);
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        move || {
            let (r, next) = (Arc::clone(&r), Arc::clone(&next));
            async move { r.rsa_each(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) }
        }
    };
    let raw_p256 = {
        let r = Arc::clone(&raw);
        move || {
            let r = Arc::clone(&r);
            async move { r.p256_parsed() }
        }
    };
    let two = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let mut calls: Vec<(String, String, Call)> = Vec::new();
    macro_rules! measure {
        ($who:expr, $what:expr, $call:expr) => {{
            calls.push(($who.to_owned(), $what.to_owned(), boxed($call)));
        }};
    }
    measure!(
        "aws-lc-rs, raw",
        "RSA-2048 PKCS#1 SHA-256, key parsed once",
        raw_rsa
    );
    measure!(
        "aws-lc-rs, raw",
        "RSA-2048, key parsed per call",
        raw_rsa_unparsed
    );
    measure!(
        "aws-lc-rs, raw",
        "RSA-2048, key parsed once, the 2,000 unique tokens' signing inputs in turn",
        raw_rsa_each
    );
    measure!(
        "aws-lc-rs, raw",
        "P-256 ECDSA SHA-256, key parsed once",
        raw_p256
    );

    for n in [1usize, 100, 10_000] {
        let tokens: Arc<[String]> = many[..n].into();
        measure!(
            "idtoken",
            &format!("RS256, {n} distinct token(s) repeated"),
            cycle(&ours_rs, &tokens)
        );
    }
    // Unique tokens: a cache too small to hold any of 2,000 tokens
    // cycled, so every verification misses, checks and inserts.
    let tiny = Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .verified_cache_capacity(4 * 1024)
        .build()?;
    measure!(
        "idtoken",
        "RS256, every token new (cache misses)",
        cycle(&tiny, &unique)
    );
    let off = Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .verified_cache_capacity(0)
        .build()?;
    measure!("idtoken", "RS256, cache off", ours(&off, &rs256));
    measure!(
        "idtoken",
        "ES256 (IAP), 1 token repeated",
        ours(&ours_es, &es256)
    );
    let off_es = Verifier::iap()
        .audience(IAP_AUD)
        .jwks_url(emu.iap_jwks_url())
        .verified_cache_capacity(0)
        .build()?;
    measure!("idtoken", "ES256 (IAP), cache off", ours(&off_es, &es256));
    measure!("google-cloud-auth", "RS256", gca(&gca_rs, &rs256));
    measure!("google-cloud-auth", "ES256 (IAP)", gca(&gca_es, &es256));

    // Rounds interleave the rows, so a change in the machine's load (it is
    // shared) falls on every row alike; each row's figure is its median.
    let budget = Duration::from_secs_f64(secs / 5.0);
    let mut rounds: Vec<Vec<f64>> = vec![Vec::new(); calls.len()];
    let mut failed: Vec<Option<String>> = vec![None; calls.len()];
    for (i, (_, _, call)) in calls.iter().enumerate() {
        if let Err(e) = local.block_on(warm_up(call)) {
            failed[i] = Some(e);
        }
    }
    for _ in 0..5 {
        for (i, (_, _, call)) in calls.iter().enumerate() {
            if failed[i].is_none() {
                match local.block_on(round(budget, call)) {
                    Ok(rate) => rounds[i].push(rate),
                    Err(e) => failed[i] = Some(e),
                }
            }
        }
    }
    // A row's ratio to its ceiling is the median of the rounds' ratios
    // (its rate over the ceiling's in the same round), as
    // scripts/bench-proxy reckons its ratios: a slow second of the shared
    // machine then weighs on both sides of a ratio, not on one of them.
    let ceiling = |label: &str| {
        calls
            .iter()
            .position(|(_, what, _)| what.starts_with(label))
            .filter(|&c| failed[c].is_none())
    };
    let (rsa_ceiling, ec_ceiling) = (ceiling("RSA-2048 PKCS#1"), ceiling("P-256"));
    let ratios: Vec<Option<f64>> = calls
        .iter()
        .enumerate()
        .map(|(i, (_, what, _))| {
            let c = if what.contains("ES256") || what.contains("P-256") {
                ec_ceiling
            } else {
                rsa_ceiling
            }?;
            if failed[i].is_some() || rounds[i].len() != rounds[c].len() {
                return None;
            }
            let mut each: Vec<f64> = rounds[i]
                .iter()
                .zip(&rounds[c])
                .map(|(row, raw)| row / raw)
                .collect();
            Some(median(&mut each))
        })
        .collect();
    let mut rows = Vec::new();
    for (i, (who, what, call)) in calls.iter().enumerate() {
        let one = match &failed[i] {
            Some(e) => Err(e.clone()),
            None => Ok(median(&mut rounds[i])),
        };
        let both = two.block_on(warm_parallel(secs / 2.0, 2, Arc::clone(call)));
        rows.push((who.clone(), what.clone(), one, both, ratios[i]));
    }

    println!(
        "| verifier | token | warm verifications/s, 1 thread (median of 5 rounds) | x raw (same algorithm; median of the rounds' ratios) | 2 threads: verifications/s | 2 threads: failed |"
    );
    println!("|---|---|---:|---:|---:|---|");
    for (who, what, one, (both, errors), ratio) in &rows {
        let errors = match errors {
            (0, _) => "0".to_owned(),
            (n, why) => format!("{n}: {why}"),
        };
        match one {
            Ok(one) => {
                let ratio = ratio.map_or("-".to_owned(), |r| format!("{r:.2}"));
                println!("| {who} | {what} | {one:.0} | {ratio} | {both:.0} | {errors} |");
            }
            Err(e) => {
                println!("| {who} | {what} | - (every call: {e}) | - | {both:.0} | {errors} |")
            }
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
                            "| Python google-auth, {label} | {what} | {:.0} | - | - | {} |",
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

/// A call that verifies each of `tokens` in turn.
fn cycle(v: &Verifier, tokens: &Arc<[String]>) -> impl Fn() -> BoxFuture + Send + Sync + 'static {
    let (v, tokens) = (v.clone(), Arc::clone(tokens));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    move || {
        let (v, tokens, next) = (v.clone(), Arc::clone(&tokens), Arc::clone(&next));
        Box::pin(async move {
            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % tokens.len();
            v.verify(&tokens[i])
                .await
                .map(|_| ())
                .map_err(|e| e.to_string())
        })
    }
}

type BoxFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
/// One row's work: one verification per call.
type Call = Arc<dyn Fn() -> BoxFuture + Send + Sync>;

fn boxed<F, Fut>(call: F) -> Call
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move || Box::pin(call()) as BoxFuture)
}

async fn warm_up(call: &Call) -> Result<(), String> {
    for _ in 0..100 {
        call().await?;
    }
    Ok(())
}

/// Verifications per second of `call` in a loop for `budget`; the first
/// error ends it.
async fn round(budget: Duration, call: &Call) -> Result<f64, String> {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        for _ in 0..256 {
            call().await?;
        }
        n += 256;
    }
    Ok(n as f64 / start.elapsed().as_secs_f64())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Calls per second of `tasks` loops of `call` together, on the current
/// multi-thread runtime, for `secs`; failures are counted, not fatal.
async fn warm_parallel(secs: f64, tasks: usize, call: Call) -> (f64, (u64, String)) {
    let budget = Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let call = Arc::clone(&call);
        set.spawn(async move {
            let (mut n, mut failed, mut why) = (0u64, 0u64, String::new());
            while start.elapsed() < budget {
                for _ in 0..256 {
                    if let Err(e) = call().await {
                        failed += 1;
                        why = e;
                    }
                }
                n += 256;
            }
            (n, failed, why)
        });
    }
    let (mut total, mut failed, mut why) = (0, 0, String::new());
    while let Some(r) = set.join_next().await {
        let (n, f, w) = r.unwrap_or((0, 1, "task panicked".into()));
        total += n;
        failed += f;
        if why.is_empty() {
            why = w;
        }
    }
    (total as f64 / start.elapsed().as_secs_f64(), (failed, why))
}

/// Keys and signatures for the raw rows: a message as long as a real
/// token's signing input, signed by fresh RSA-2048 and P-256 keys; and
/// the signing inputs of the unique-token row's tokens, each signed by
/// the same RSA key, for a raw row that reads as much memory as that one.
struct RawKeys {
    message: Vec<u8>,
    each: Vec<(Vec<u8>, Vec<u8>)>,
    rsa_der: Vec<u8>,
    rsa: aws_lc_rs::signature::ParsedPublicKey,
    rsa_sig: Vec<u8>,
    p256: aws_lc_rs::signature::ParsedPublicKey,
    p256_sig: Vec<u8>,
}

fn raw_keys(token: &str, unique: &[String]) -> Result<Arc<RawKeys>, BoxError> {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair, KeySize};
    use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, ParsedPublicKey};
    let message = token
        .rsplit_once('.')
        .map(|(m, _)| m.as_bytes().to_vec())
        .ok_or("token has no signature")?;
    let rng = SystemRandom::new();
    let rsa = KeyPair::generate(KeySize::Rsa2048)?;
    let mut rsa_sig = vec![0; rsa.public_modulus_len()];
    rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut rsa_sig)?;
    let rsa_der = rsa.public_key().as_ref().to_vec();
    let each = unique
        .iter()
        .map(|t| {
            let m = t.rsplit_once('.').ok_or("token has no signature")?.0;
            let mut sig = vec![0; rsa.public_modulus_len()];
            rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, m.as_bytes(), &mut sig)?;
            Ok((m.as_bytes().to_vec(), sig))
        })
        .collect::<Result<Vec<_>, BoxError>>()?;
    let ec = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?;
    let p256_sig = ec.sign(&rng, &message)?.as_ref().to_vec();
    Ok(Arc::new(RawKeys {
        rsa: ParsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, &rsa_der)?,
        p256: ParsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            ec.public_key().as_ref(),
        )?,
        message,
        each,
        rsa_der,
        rsa_sig,
        p256_sig,
    }))
}

impl RawKeys {
    fn rsa_parsed(&self) -> Result<(), String> {
        self.rsa
            .verify_sig(&self.message, &self.rsa_sig)
            .map_err(|_| "bad RSA signature".to_owned())
    }

    fn rsa_each(&self, i: usize) -> Result<(), String> {
        let (message, sig) = &self.each[i % self.each.len()];
        self.rsa
            .verify_sig(message, sig)
            .map_err(|_| "bad RSA signature".to_owned())
    }

    fn rsa_unparsed(&self) -> Result<(), String> {
        aws_lc_rs::signature::UnparsedPublicKey::new(
            &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA256,
            &self.rsa_der,
        )
        .verify(&self.message, &self.rsa_sig)
        .map_err(|_| "bad RSA signature".to_owned())
    }

    fn p256_parsed(&self) -> Result<(), String> {
        self.p256
            .verify_sig(&self.message, &self.p256_sig)
            .map_err(|_| "bad P-256 signature".to_owned())
    }
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
