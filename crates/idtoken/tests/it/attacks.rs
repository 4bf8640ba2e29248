//! The attack suite: forged, broken and mis-addressed tokens, each refused
//! with the right [`VerifyError`] kind. Table-driven; every token is signed
//! by the emulator's real keys (or deliberately not) and checked over
//! loopback HTTP against its key sets.

use std::sync::Arc;
use std::time::UNIX_EPOCH;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use idtoken::{Clock as _, ManualClock, Verifier, VerifyError};
use idtoken_emulator::{Emulator, Endpoint};
use serde_json::{Value, json};

use crate::common::*;

const AUD: &str = "https://svc.example";
const IAP_AUD: &str = "/projects/123456789012/global/backendServices/42";

fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Which verifier a case is checked by.
#[derive(Clone, Copy, Debug)]
enum At {
    Google,
    Iap,
    /// Google, allowing only emails in `example.com`.
    Email,
    /// Google, requiring `hd` `example.com`.
    Hd,
}

type Check = fn(&VerifyError) -> bool;

struct Forge<'a> {
    emu: &'a Emulator,
    now: u64,
}

impl Forge<'_> {
    fn claims(&self, changes: Value) -> Value {
        let mut c = json!({
            "iss": "https://accounts.google.com", "aud": AUD, "azp": "1234",
            "sub": "1234", "email": "alice@example.com", "email_verified": true,
            "hd": "example.com", "iat": self.now, "exp": self.now + 3600,
        });
        merge(&mut c, changes);
        c
    }

    fn header(&self, changes: Value) -> Value {
        let mut h = json!({"alg": "RS256", "kid": self.emu.google_kid(), "typ": "JWT"});
        merge(&mut h, changes);
        h
    }

    /// Signed RS256 with the emulator's current Google key.
    fn google(&self, header: Value, claims: Value) -> String {
        self.emu
            .sign_google(&header.to_string(), &claims.to_string())
            .expect("emulator signs")
    }

    /// A valid Google token with these claim changes.
    fn with(&self, changes: Value) -> String {
        self.google(self.header(json!({})), self.claims(changes))
    }

    fn raw(&self, header: &str, claims: &str) -> String {
        self.emu
            .sign_google(header, claims)
            .expect("emulator signs")
    }

    fn iap_claims(&self) -> Value {
        json!({"iss": "https://cloud.google.com/iap", "aud": IAP_AUD,
            "sub": "accounts.google.com:1", "email": "alice@example.com",
            "iat": self.now, "exp": self.now + 600})
    }

    fn iap_header(&self) -> Value {
        json!({"alg": "ES256", "kid": self.emu.iap_kid(), "typ": "JWT"})
    }
}

/// Sets each member of `changes` in `base`; `null` removes it.
fn merge(base: &mut Value, changes: Value) {
    if let (Value::Object(b), Value::Object(c)) = (base, changes) {
        for (k, v) in c {
            if v.is_null() {
                b.remove(&k);
            } else {
                b.insert(k, v);
            }
        }
    }
}

fn hs256(key: &[u8], header: &Value, claims: &Value) -> String {
    let input = format!("{}.{}", b64(header.to_string()), b64(claims.to_string()));
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key);
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag))
}

/// Replaces the signature of `token`.
fn resign(token: &str, sig: &[u8]) -> String {
    let (input, _) = token.rsplit_once('.').expect("three segments");
    format!("{input}.{}", b64(sig))
}

fn sig_of(token: &str) -> Vec<u8> {
    let (_, s) = token.rsplit_once('.').expect("three segments");
    URL_SAFE_NO_PAD.decode(s).expect("base64 signature")
}

#[rustfmt::skip]
async fn cases(f: &Forge<'_>, other: &Emulator) -> Vec<(&'static str, At, String, Check)> {
    use VerifyError as E;
    let good = f.with(json!({}));
    let jwks: Value = reqwest::get(f.emu.jwks_url())
        .await
        .expect("key set")
        .json()
        .await
        .expect("key set JSON");
    let n = URL_SAFE_NO_PAD
        .decode(jwks["keys"][0]["n"].as_str().expect("modulus"))
        .expect("modulus base64");
    let (h, p) = {
        let mut it = good.split('.');
        (
            it.next().expect("header").to_owned(),
            it.next().expect("payload").to_owned(),
        )
    };
    let iap = f
        .emu
        .sign_iap(&f.iap_header().to_string(), &f.iap_claims().to_string())
        .expect("IAP token");
    let iap_sig = sig_of(&iap);
    let forged_elsewhere = other
        .sign_google(
            &f.header(json!({})).to_string(),
            &f.claims(json!({})).to_string(),
        )
        .expect("other emulator signs");
    let claims = f.claims(json!({})).to_string();
    let kid = f.emu.google_kid();
    vec![
        ("alg none, no signature", At::Google, format!("{}.{p}.", b64(r#"{"alg":"none","typ":"JWT"}"#)), |e| matches!(e, E::Algorithm { found, .. } if found == "none")),
        ("alg none, signed", At::Google, f.google(f.header(json!({"alg": "none"})), f.claims(json!({}))), |e| matches!(e, E::Algorithm { .. })),
        ("HS256 keyed with the public modulus", At::Google, hs256(&n, &f.header(json!({"alg": "HS256"})), &f.claims(json!({}))), |e| matches!(e, E::Algorithm { found, .. } if found == "HS256")),
        ("HS256 keyed with the JWK set text", At::Google, hs256(jwks.to_string().as_bytes(), &f.header(json!({"alg": "HS256"})), &f.claims(json!({}))), |e| matches!(e, E::Algorithm { .. })),
        ("alg RS384", At::Google, f.google(f.header(json!({"alg": "RS384"})), f.claims(json!({}))), |e| matches!(e, E::Algorithm { .. })),
        ("alg rs256 in lower case", At::Google, f.google(f.header(json!({"alg": "rs256"})), f.claims(json!({}))), |e| matches!(e, E::Algorithm { .. })),
        ("ES256 token at the Google verifier", At::Google, iap.clone(), |e| matches!(e, E::Algorithm { found, expected: "RS256" } if found == "ES256")),
        ("alg missing", At::Google, f.google(f.header(json!({"alg": null})), f.claims(json!({}))), |e| matches!(e, E::MissingClaim { claim: "alg" })),
        ("alg not a string", At::Google, f.google(f.header(json!({"alg": 256})), f.claims(json!({}))), |e| matches!(e, E::MissingClaim { claim: "alg" })),
        ("header and claims swapped", At::Google, format!("{p}.{h}.{}", b64(sig_of(&good))), |e| matches!(e, E::MissingClaim { claim: "alg" })),
        ("signature from another key, same kid", At::Google, forged_elsewhere, |e| matches!(e, E::BadSignature)),
        ("signature stripped", At::Google, format!("{h}.{p}."), |e| { matches!(e, E::BadSignature) }), ("claims changed after signing", At::Google, format!("{h}.{}.{}", b64(f.claims(json!({"email": "root@example.com"})).to_string()), b64(sig_of(&good))), |e| matches!(e, E::BadSignature)),
        ("signature one byte short", At::Google, resign(&good, &sig_of(&good)[1..]), |e| matches!(e, E::BadSignature)),
        ("unknown kid", At::Google, f.google(f.header(json!({"kid": "0000"})), f.claims(json!({}))), |e| matches!(e, E::UnknownKey { kid } if kid == "0000")),
        ("kid missing", At::Google, f.google(f.header(json!({"kid": null})), f.claims(json!({}))), |e| matches!(e, E::MissingClaim { claim: "kid" })),
        ("crit extension", At::Google, f.google(f.header(json!({"crit": ["exp"], "exp": 1})), f.claims(json!({}))), |e| matches!(e, E::CriticalExtension)),
        ("duplicate alg in header", At::Google, f.raw(&format!(r#"{{"alg":"none","alg":"RS256","kid":"{kid}"}}"#), &claims), |e| matches!(e, E::Malformed { .. })),
        ("duplicate aud in claims", At::Google, f.raw(&f.header(json!({})).to_string(), &format!(r#"{{"aud":"https://evil.example",{}"#, &claims[1..])), |e| matches!(e, E::Malformed { .. })),
        ("expired beyond the skew", At::Google, f.with(json!({"iat": f.now - 3700, "exp": f.now - 31})), |e| matches!(e, E::Expired { .. })),
        ("iat in the future", At::Google, f.with(json!({"iat": f.now + 120, "exp": f.now + 3720})), |e| matches!(e, E::NotYetValid { claim: "iat", .. })),
        ("nbf in the future", At::Google, f.with(json!({"nbf": f.now + 120})), |e| matches!(e, E::NotYetValid { claim: "nbf", .. })),
        ("lifetime of two days", At::Google, f.with(json!({"exp": f.now + 2 * 86_400})), |e| matches!(e, E::LifetimeTooLong { .. })),
        ("exp missing", At::Google, f.with(json!({"exp": null})), |e| matches!(e, E::MissingClaim { claim: "exp" })),
        ("exp a string", At::Google, f.with(json!({"exp": "tomorrow"})), |e| matches!(e, E::ClaimType { .. })),
        ("wrong issuer", At::Google, f.with(json!({"iss": "https://evil.example"})), |e| matches!(e, E::WrongIssuer { seen } if seen == "https://evil.example")),
        ("issuer missing", At::Google, f.with(json!({"iss": null})), |e| matches!(e, E::MissingClaim { claim: "iss" })),
        ("IAP issuer at the Google verifier", At::Google, f.with(json!({"iss": "https://cloud.google.com/iap"})), |e| matches!(e, E::WrongIssuer { .. })),
        ("wrong audience", At::Google, f.with(json!({"aud": "https://other.example"})), |e| matches!(e, E::WrongAudience { seen, .. } if seen == "https://other.example")),
        ("audience array holding ours", At::Google, f.with(json!({"aud": [AUD, "https://other.example"]})), |e| matches!(e, E::MultipleAudiences)),
        ("audience missing", At::Google, f.with(json!({"aud": null})), |e| matches!(e, E::MissingClaim { claim: "aud" })),
        ("oversized (20 KiB)", At::Google, f.with(json!({"pad": "x".repeat(20 * 1024)})), |e| matches!(e, E::Malformed { .. })),
        ("truncated to two segments", At::Google, format!("{h}.{p}"), |e| matches!(e, E::Malformed { .. })),
        ("four segments", At::Google, format!("{good}.{p}"), |e| { matches!(e, E::Malformed { .. }) }), ("empty", At::Google, String::new(), |e| { matches!(e, E::Malformed { .. }) }), ("Bearer prefix left on", At::Google, format!("Bearer {good}"), |e| matches!(e, E::Malformed { .. })),
        ("bad base64 in header", At::Google, format!("!!{h}.{p}.{}", b64(sig_of(&good))), |e| matches!(e, E::Malformed { .. })),
        ("padded base64", At::Google, format!("{h}=.{p}.{}", b64(sig_of(&good))), |e| matches!(e, E::Malformed { .. })),
        ("claims not UTF-8", At::Google, format!("{h}.{}.", b64(b"{\"aud\":\"\xff\"}")), |e| matches!(e, E::Malformed { .. })),
        ("header a JSON array", At::Google, f.raw("[1,2]", &claims), |e| matches!(e, E::Malformed { .. })),
        ("claims not JSON", At::Google, f.raw(&f.header(json!({})).to_string(), "{not json"), |e| matches!(e, E::Malformed { .. })),
        ("RS256 token at the IAP verifier", At::Iap, good.clone(), |e| matches!(e, E::Algorithm { found, expected: "ES256" } if found == "RS256")),
        ("ES256 signature of 63 bytes", At::Iap, resign(&iap, &iap_sig[1..]), |e| matches!(e, E::SignatureLength { .. })),
        ("ES256 signature DER-encoded length (72 bytes)", At::Iap, resign(&iap, &[iap_sig.as_slice(), &[0u8; 8]].concat()), |e| matches!(e, E::SignatureLength { .. })),
        ("ES256 signature zeroed", At::Iap, resign(&iap, &[0u8; 64]), |e| matches!(e, E::BadSignature)),
        ("IAP assertion for another backend", At::Iap, f.emu .iap_token("/projects/1/apps/other", "alice@example.com") .expect("IAP token"), |e| matches!(e, E::WrongAudience { .. })),
        ("email not verified", At::Email, f.with(json!({"email_verified": false})), |e| matches!(e, E::EmailNotVerified { .. })),
        ("email in another domain", At::Email, f.with(json!({"email": "mallory@evil.example"})), |e| matches!(e, E::EmailNotAllowed { .. })),
        ("email domain look-alike", At::Email, f.with(json!({"email": "mallory@example.com.evil.example"})), |e| matches!(e, E::EmailNotAllowed { .. })),
        ("email missing", At::Email, f.with(json!({"email": null})), |e| matches!(e, E::MissingEmail)),
        ("hosted domain differs", At::Hd, f.with(json!({"hd": "evil.example"})), |e| matches!(e, E::WrongHostedDomain { .. })),
    ]
}

struct Verifiers {
    google: Verifier,
    iap: Verifier,
    email: Verifier,
    hd: Verifier,
}

impl Verifiers {
    fn new(emu: &Emulator, clock: &ManualClock) -> Self {
        let base = || {
            Verifier::builder()
                .audience(AUD)
                .jwks_url(emu.jwks_url())
                .clock(Arc::new(clock.clone()))
        };
        Self {
            google: base().build().expect("verifier"),
            iap: Verifier::iap()
                .audience(IAP_AUD)
                .jwks_url(emu.iap_jwks_url())
                .clock(Arc::new(clock.clone()))
                .build()
                .expect("IAP verifier"),
            email: base()
                .allow_email_domain("example.com")
                .build()
                .expect("verifier"),
            hd: base()
                .hosted_domain("example.com")
                .build()
                .expect("verifier"),
        }
    }

    fn at(&self, at: At) -> &Verifier {
        match at {
            At::Google => &self.google,
            At::Iap => &self.iap,
            At::Email => &self.email,
            At::Hd => &self.hd,
        }
    }
}

#[tokio::test]
async fn every_forged_or_broken_token_is_refused_with_the_right_kind() {
    let clock = manual_clock();
    let (emu, other) = tokio::join!(emulator_on(&clock), emulator());
    let now = clock
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let f = Forge { emu: &emu, now };
    let v = Verifiers::new(&emu, &clock);
    // The genuine articles pass each verifier, so refusals below are real.
    for at in [At::Google, At::Email, At::Hd] {
        v.at(at)
            .verify(&f.with(json!({})))
            .await
            .expect("genuine token");
    }
    let iap = emu
        .iap_token(IAP_AUD, "alice@example.com")
        .expect("IAP token");
    v.iap.verify(&iap).await.expect("genuine IAP assertion");
    v.google
        .verify(&f.with(json!({"iat": now - 3629, "exp": now - 29})))
        .await
        .expect("expired within the skew is accepted");

    let cases = cases(&f, &other).await;
    assert!(cases.len() >= 30, "{} cases", cases.len());
    let mut wrong = Vec::new();
    for (name, at, token, check) in &cases {
        match v.at(*at).verify(token).await {
            Ok(_) => wrong.push(format!("{name}: ACCEPTED")),
            Err(e) if check(&e) => {
                let shown = e.to_string();
                assert!(
                    token.len() < 40 || !shown.contains(token.as_str()),
                    "{name}: error quotes the token"
                );
            }
            Err(e) => wrong.push(format!("{name}: wrong kind {e:?}")),
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
    // One cold fetch per Google verifier (three), one refetch for the
    // unknown kid, and the suite's own read of the key set: no more.
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 5);
    assert_eq!(emu.counters().get(Endpoint::IapJwk), 1);
}

#[tokio::test]
async fn malformed_tokens_cause_no_key_fetch() {
    let emu = emulator().await;
    let v = Verifier::builder()
        .audience(AUD)
        .jwks_url(emu.jwks_url())
        .build()
        .expect("verifier");
    for bad in [
        "",
        "a.b",
        "a.b.c",
        "e30.e30.",
        "e30.e30.e30.e30",
        &"x".repeat(40_000),
    ] {
        let err = v.verify(bad).await.expect_err("malformed");
        assert!(!err.is_unavailable(), "{err:?}");
    }
    assert_eq!(emu.counters().get(Endpoint::JwksV3), 0);
}

#[tokio::test]
async fn single_character_mutations_never_verify_and_never_panic() {
    const ALPHABET: &[u8] =
        b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ ";
    let clock = manual_clock();
    let emu = emulator_on(&clock).await;
    let now = clock
        .now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let good = Forge { emu: &emu, now }.with(json!({}));
    let v = Verifiers::new(&emu, &clock).google;
    v.verify(&good).await.expect("genuine token");
    let mut rng = fastrand::Rng::with_seed(4);
    for _ in 0..3000 {
        let mut bytes = good.clone().into_bytes();
        let at = rng.usize(..bytes.len());
        let new = ALPHABET[rng.usize(..ALPHABET.len())];
        if bytes[at] == new {
            continue;
        }
        bytes[at] = new;
        let token = String::from_utf8(bytes).expect("ASCII");
        assert!(
            v.verify(&token).await.is_err(),
            "mutation at {at} to {:?} verified",
            new as char
        );
    }
    assert!(
        emu.counters().get(Endpoint::JwksV3) <= 2,
        "{:?}",
        emu.counters()
    );
}
