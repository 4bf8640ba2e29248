//! One operation repeated COUNT times after its set-up, for
//! `scripts/bench-instructions`, which runs this under callgrind counting
//! only inside `measured` (`--toggle-collect`) and divides by COUNT:
//! instructions per operation, repeatable on a shared machine where wall
//! time is not. (Set-up is left out on purpose: key generation, here and
//! in the emulator, takes a random number of instructions.)
//!
//! ```sh
//! instructions OP COUNT
//! ```
//!
//! OP: `raw-rsa` (aws-lc-rs RSA-2048 PKCS#1 verify, key parsed once),
//! `raw-p256`, `verify-hit` (a token in the verified-token cache),
//! `verify-miss` (RS256 with the cache off: parse, claims, signature),
//! `verify-new` (RS256, cache on, each of 200 tokens new to it: a miss
//! plus an insert, as the wall-time bench's "every token new" row),
//! `verify-iap-miss` (ES256, cache off), `token-warm` (a cached ID token
//! from `IdTokenSource::token`).

use std::time::{SystemTime, UNIX_EPOCH};

use idtoken::{Credentials, Verifier};
use idtoken_emulator::Emulator;
use serde_json::json;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

const AUD: &str = "https://svc.example";
const IAP_AUD: &str = "/projects/123456789012/global/backendServices/42";

fn main() -> Result<(), BoxError> {
    let mut args = std::env::args().skip(1);
    let op = args.next().ok_or("usage: instructions OP COUNT")?;
    let count: u64 = args.next().ok_or("usage: instructions OP COUNT")?.parse()?;
    let server = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()?;
    let emu = server.block_on(Emulator::start())?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let header = json!({"alg": "RS256", "kid": emu.google_kid(), "typ": "JWT"});
    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD, "sub": "1",
        "azp": "1", "email": "svc@example.iam.gserviceaccount.com", "email_verified": true,
        "iat": now, "exp": now + 3600});
    let rs256 = emu.sign_google(&header.to_string(), &claims.to_string())?;
    let es256 = emu.iap_token(IAP_AUD, "alice@example.com")?;
    let message = rs256.rsplit_once('.').ok_or("no signature")?.0.as_bytes();

    match op.as_str() {
        "raw-rsa" | "raw-p256" => {
            use aws_lc_rs::rand::SystemRandom;
            use aws_lc_rs::signature::{self, EcdsaKeyPair, KeyPair as _, ParsedPublicKey};
            let rng = SystemRandom::new();
            let (key, sig) = if op == "raw-rsa" {
                let kp = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)?;
                let mut sig = vec![0; kp.public_modulus_len()];
                kp.sign(&signature::RSA_PKCS1_SHA256, &rng, message, &mut sig)?;
                let key = ParsedPublicKey::new(
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    kp.public_key().as_ref(),
                )?;
                (key, sig)
            } else {
                let kp = EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)?;
                let sig = kp.sign(&rng, message)?.as_ref().to_vec();
                let key =
                    ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, kp.public_key())?;
                (key, sig)
            };
            key.verify_sig(message, &sig).map_err(|_| "bad signature")?;
            measured(count, || {
                key.verify_sig(message, &sig)
                    .map_err(|_| BoxError::from("bad signature"))
            })?;
        }
        "verify-hit" | "verify-miss" | "verify-iap-miss" => {
            let (builder, token, jwks) = match op.as_str() {
                "verify-iap-miss" => (
                    Verifier::iap().audience(IAP_AUD),
                    &es256,
                    emu.iap_jwks_url(),
                ),
                _ => (Verifier::builder().audience(AUD), &rs256, emu.jwks_url()),
            };
            let cache = if op == "verify-hit" { 1 << 20 } else { 0 };
            let v = builder
                .jwks_url(jwks)
                .verified_cache_capacity(cache)
                .build()?;
            rt.block_on(v.verify(token))?;
            measured(count, || {
                rt.block_on(v.verify(token))?;
                Ok(())
            })?;
        }
        "verify-new" => {
            // 200 tokens through a cache that holds two: every call
            // misses, verifies and inserts (evicting an older entry).
            let tokens = (0..200)
                .map(|i| {
                    let claims = json!({"iss": "https://accounts.google.com", "aud": AUD,
                        "sub": format!("new-{i}"), "azp": "1",
                        "email": "svc@example.iam.gserviceaccount.com", "email_verified": true,
                        "iat": now, "exp": now + 3600});
                    emu.sign_google(&header.to_string(), &claims.to_string())
                })
                .collect::<Result<Vec<_>, _>>()?;
            let v = Verifier::builder()
                .audience(AUD)
                .jwks_url(emu.jwks_url())
                .verified_cache_capacity(4 * 1024)
                .build()?;
            rt.block_on(v.verify(&rs256))?;
            let mut next = tokens.iter().cycle();
            measured(count, || {
                let token = next.next().ok_or("no tokens")?;
                rt.block_on(v.verify(token))?;
                Ok(())
            })?;
            let checks = v.stats().signature_checks;
            if checks != count + 1 {
                return Err(format!("{checks} signature checks for {count} new tokens").into());
            }
        }
        "token-warm" => {
            let creds = Credentials::metadata_server(&emu.metadata_host());
            let source = creds.token_source(AUD);
            rt.block_on(source.token())?;
            measured(count, || {
                rt.block_on(source.token())?;
                Ok(())
            })?;
        }
        other => return Err(format!("unknown OP {other}").into()),
    }
    Ok(())
}

/// The repetitions callgrind counts (`--toggle-collect=*measured*`).
#[inline(never)]
fn measured(count: u64, mut op: impl FnMut() -> Result<(), BoxError>) -> Result<(), BoxError> {
    let start = std::time::Instant::now();
    for _ in 0..count {
        op()?;
    }
    // Wall time too, for a run outside callgrind (on stderr, which the
    // script reads only for callgrind's count).
    let ns = start.elapsed().as_nanos() / u128::from(count.max(1));
    eprintln!("{ns} ns per operation");
    Ok(())
}
