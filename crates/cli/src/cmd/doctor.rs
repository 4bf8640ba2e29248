//! `idtoken doctor`: explains, step by step, where credentials come from
//! and how a token will be minted, then mints one and shows its claims.
//! Never prints a token or a secret. Exit 1 when no token can be had.

use std::time::{Duration, Instant, SystemTime};

use idtoken::{Credentials, Discovery, Env, TokenOptions};
use serde_json::{Value, json};

use crate::Failure;
use crate::token_cache::{self, Cache};

/// The audience used when none is given.
const PLACEHOLDER_AUDIENCE: &str = "https://idtoken-doctor.example";

/// Environment variables that steer discovery, in the order they matter.
/// Arguments of `idtoken doctor`.
#[derive(clap::Args, Debug)]
pub(crate) struct Args {
    /// The audience to mint a test token for (default: a placeholder).
    #[arg(long, short = 'a')]
    audience: Option<String>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    creds: super::CredsArgs,
}

/// The URL `doctor` shows the forward proxy for: Google's token endpoint.
const PROXIED_EXAMPLE: &str = "https://oauth2.googleapis.com/";

/// The forward proxy the library's rule picks for Google's token endpoint
/// (and `idtoken proxy` for an https target): its address, and whether
/// credentials go with it, never the credentials.
fn forward_proxy() -> Value {
    let uri = http::Uri::from_static(PROXIED_EXAMPLE);
    let proxy = idtoken::egress_proxy(&uri);
    json!({
        "for": PROXIED_EXAMPLE,
        "proxy": proxy.as_ref().map(|p| p.uri().to_string()),
        "credentials": proxy.as_ref().is_some_and(|p| p.authorization().is_some()),
    })
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

pub(crate) async fn run(args: Args) -> Result<(), Failure> {
    let audience = args
        .audience
        .clone()
        .unwrap_or_else(|| PLACEHOLDER_AUDIENCE.to_owned());
    let env = Env::from_process();
    let mut report = json!({
        "environment": idtoken::Env::VARIABLES.iter().map(|v| (v.to_string(), json!(env.get(v)))).collect::<serde_json::Map<_, _>>(),
        // Decides METADATA_SERVER_DETECTION=bios-only, and residency when unset.
        "bios_vendor": env.bios_vendor(),
        "endpoint_overrides": super::ENDPOINT_OVERRIDES.iter().map(|(v, _)| {
            (v.to_string(), json!(std::env::var(v).ok().filter(|s| !s.is_empty())))
        }).collect::<serde_json::Map<_, _>>(),
        "forward_proxy": forward_proxy(),
    });
    let (found, discovery) = match &args.creds.credentials {
        Some(path) => {
            let found = Credentials::from_file(path);
            let step = json!({"place": "--credentials", "outcome": path.display().to_string(),
                              "elapsed_ms": 0, "chosen": found.is_ok()});
            (found, vec![step])
        }
        None => {
            let (found, d) = Credentials::discover_explained(&env).await;
            (found, steps(&d))
        }
    };
    report["discovery"] = json!(discovery);
    let result = match found {
        Err(e) => Err(e.to_string()),
        Ok(creds) => {
            let creds = match impersonated(&args, creds) {
                Ok(c) => c,
                Err(f) => return Err(f),
            };
            examine(&creds, &audience, &args, &mut report).await
        }
    };
    report["token_cache"] = cache_report(&Cache::locate(false), SystemTime::now());
    if let Err(why) = &result {
        report["error"] = json!(why);
    }
    if args.json {
        println!("{report:#}");
    } else {
        print_human(&report, &audience);
    }
    match result {
        Ok(()) => Ok(()),
        // The report already said why.
        Err(_) => Err(Failure::new(crate::exit::FAILURE, "")),
    }
}

fn impersonated(args: &Args, creds: Credentials) -> Result<Credentials, Failure> {
    let Some(chain) = &args.creds.impersonate_service_account else {
        return Ok(creds);
    };
    let how = super::impersonation(chain)?.iam_endpoint(&args.creds.iam_endpoint);
    Ok(creds.impersonate(how))
}

/// Where the token cache is, whether it can be used, and what each entry
/// is for and until when. Never a token.
fn cache_report(cache: &Cache, now: SystemTime) -> Value {
    let usable = cache.usable();
    let mut out = json!({
        "folder": cache.folder().map(|d| d.display().to_string()),
        "usable": usable.is_ok(),
        "note": usable.err(),
    });
    let Some(dir) = cache.folder() else {
        return out;
    };
    out["entries"] = match token_cache::list(dir, now) {
        Ok(entries) => entries
            .into_iter()
            .map(|l| match l.entry {
                Ok((facts, expires_at, fresh)) => json!({
                    "file": l.name,
                    "audience": facts.audience,
                    "kind": facts.kind,
                    "origin": facts.origin,
                    "impersonate": facts.impersonate,
                    "format": facts.format,
                    "expires_at": super::rfc3339(expires_at),
                    "fresh": fresh,
                }),
                Err(why) => json!({"file": l.name, "ignored": why.to_string()}),
            })
            .collect(),
        Err(token_cache::Refusal::Missing) => json!([]),
        Err(why) => {
            out["usable"] = json!(false);
            out["note"] = json!(format!("{} {why}: not used", dir.display()));
            json!([])
        }
    };
    out
}

fn steps(d: &Discovery) -> Vec<Value> {
    d.steps
        .iter()
        .map(|s| {
            json!({"place": s.place, "outcome": s.outcome,
                   "elapsed_ms": ms(s.elapsed), "chosen": s.chosen})
        })
        .collect()
}

/// Fills the credentials, flow, audience and token sections.
async fn examine(
    creds: &Credentials,
    audience: &str,
    args: &Args,
    report: &mut Value,
) -> Result<(), String> {
    let principal = match creds.source_principal() {
        Some(p) => Some(p.to_owned()),
        // The metadata server says which account it runs as.
        None if creds.kind() == idtoken::CredentialsKind::MetadataServer => {
            creds.source_email().await.ok()
        }
        None => None,
    };
    report["credentials"] = json!({
        "kind": creds.kind().to_string(),
        "origin": creds.origin(),
        "principal": principal,
        "impersonation": creds.impersonation().map(|i| json!({
            "target": i.target(), "delegates": i.delegate_emails(),
        })),
    });
    // An X.509 source: the certificate doctor can read, or why not.
    report["credentials"]["client_certificate"] = match creds.client_certificate() {
        Some(Ok(cert)) => json!({
            "subject": cert.subject,
            "not_after": super::rfc3339(cert.not_after),
            "expired": cert.not_after < SystemTime::now(),
            "file": cert.path.display().to_string(),
        }),
        Some(Err(e)) => json!({"problem": e.to_string()}),
        None => Value::Null,
    };
    report["flow"] = json!(creds.flow_description());
    // Google's libraries accept any endpoint a credentials file names; a
    // file from someone else can send your secrets anywhere.
    report["warnings"] = creds
        .endpoints_outside_google()
        .into_iter()
        .map(|(field, url)| {
            json!(format!(
                "{field} {url} is not a Google endpoint (outside googleapis.com and the file's universe_domain): secrets go there. Fine for the emulator; otherwise use credential files only from sources you trust"
            ))
        })
        .collect::<Vec<_>>()
        .into();
    let matches = !creds.audience_is_client_id();
    report["audience"] = json!({
        "requested": audience,
        "aud_will_match": matches,
        "note": if matches { "the token's aud will be the requested audience" } else {
            "gcloud user credentials: aud will be the OAuth client id; add --impersonate-service-account EMAIL for the requested audience"
        },
    });
    let options = TokenOptions::default().include_email(args.creds.include_email);
    let started = Instant::now();
    let minted = creds.fetch_id_token(audience, &options).await;
    let elapsed = ms(started.elapsed());
    match minted {
        Ok(token) => {
            report["token"] = json!({
                "elapsed_ms": elapsed,
                "expires_at": super::rfc3339(token.expires_at()),
                "audience_is_client_id": token.audience_is_client_id(),
                "claims": token.claims().to_json(),
            });
            Ok(())
        }
        Err(e) => {
            report["token"] = json!({"elapsed_ms": elapsed});
            Err(format!("minting failed: {e}"))
        }
    }
}

fn print_human(r: &Value, audience: &str) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    };
    println!("Environment");
    for k in idtoken::Env::VARIABLES {
        match r["environment"][k].as_str() {
            Some(v) => println!("  {k}={v}"),
            None => println!("  {k} (not set)"),
        }
    }
    match r["bios_vendor"].as_str() {
        Some(v) => println!("  BIOS vendor: {v}"),
        None => println!("  BIOS vendor: unknown"),
    }
    println!("\nEndpoint overrides");
    for (k, what) in super::ENDPOINT_OVERRIDES {
        match r["endpoint_overrides"][k].as_str() {
            Some(v) => println!("  {k}={v}: {what}"),
            None => println!("  {k} (not set): {what}"),
        }
    }
    println!(
        "\nForward proxy (HTTPS_PROXY, HTTP_PROXY, ALL_PROXY, NO_PROXY; never the metadata server)"
    );
    let p = &r["forward_proxy"];
    match p["proxy"].as_str() {
        Some(proxy) => {
            let auth = if p["credentials"] == true {
                ", with credentials"
            } else {
                ""
            };
            println!("  {} through {proxy}{auth}", s(&p["for"]));
        }
        None => println!("  {} directly", s(&p["for"])),
    }
    println!("\nApplication Default Credentials, in order");
    for (i, step) in r["discovery"].as_array().into_iter().flatten().enumerate() {
        let chosen = if step["chosen"] == true {
            "  <- used"
        } else {
            ""
        };
        let (place, outcome) = (s(&step["place"]), s(&step["outcome"]));
        // Metadata outcomes already name the server.
        let what = if outcome.starts_with(&place) {
            outcome
        } else {
            format!("{place}: {outcome}")
        };
        println!(
            "  {}. {} ({} ms){chosen}",
            i + 1,
            what.replace('\n', "\n     "),
            step["elapsed_ms"]
        );
    }
    if let Some(c) = r["credentials"].as_object() {
        println!("\nCredentials");
        println!("  type: {}", s(&c["kind"]));
        println!("  from: {}", s(&c["origin"]));
        if let Some(p) = c["principal"].as_str() {
            println!("  principal: {p}");
        }
        if let Some(i) = c["impersonation"].as_object() {
            println!("  impersonating: {}", s(&i["target"]));
            if let Some(d) = i["delegates"].as_array().filter(|d| !d.is_empty()) {
                let d: Vec<String> = d.iter().map(s).collect();
                println!("  delegates: {}", d.join(", "));
            }
        }
        if let Some(cert) = c["client_certificate"].as_object() {
            match cert.get("problem") {
                Some(p) => println!("  client certificate: unusable: {}", s(p)),
                None => println!(
                    "  client certificate: {} ({}), {} {}",
                    s(&cert["subject"]),
                    s(&cert["file"]),
                    if cert["expired"].as_bool() == Some(true) {
                        "EXPIRED at"
                    } else {
                        "expires"
                    },
                    s(&cert["not_after"])
                ),
            }
        }
        println!("\nFlow\n  {}", s(&r["flow"]));
        for w in r["warnings"].as_array().into_iter().flatten() {
            println!("  warning: {}", s(w));
        }
        println!("\nAudience\n  requested: {audience}");
        let yes = r["audience"]["aud_will_match"] == true;
        println!("  aud will equal it: {}", if yes { "yes" } else { "NO" });
        if !yes {
            println!("  {}", s(&r["audience"]["note"]));
        }
    }
    if let Some(t) = r["token"].as_object() {
        println!("\nToken");
        match t.get("claims") {
            Some(claims) => {
                println!(
                    "  minted in {} ms; expires {}",
                    t["elapsed_ms"],
                    s(&t["expires_at"])
                );
                let pretty = serde_json::to_string_pretty(claims).unwrap_or_default();
                for line in pretty.lines() {
                    println!("  {line}");
                }
            }
            None => println!("  not minted ({} ms)", t["elapsed_ms"]),
        }
    }
    print_cache(&r["token_cache"], &s);
    if let Some(e) = r["error"].as_str() {
        println!("\nProblem\n  {}", e.replace('\n', "\n  "));
    } else {
        println!("\nOK: a token can be had.");
    }
}

fn print_cache(c: &Value, s: &dyn Fn(&Value) -> String) {
    println!("\nToken cache (shared by token, curl and proxy)");
    match c["folder"].as_str() {
        Some(dir) => println!("  folder: {dir}"),
        None => println!("  folder: none"),
    }
    match c["note"].as_str() {
        Some(why) => println!("  not used: {why}"),
        None => println!("  usable: yes"),
    }
    let entries = c["entries"].as_array().map_or(&[][..], Vec::as_slice);
    if c["folder"].is_string() && c["note"].is_null() {
        println!("  entries: {}", entries.len());
    }
    for e in entries {
        if let Some(why) = e["ignored"].as_str() {
            println!(
                "  - {}…: ignored ({why})",
                &s(&e["file"]).get(..12).unwrap_or("")
            );
            continue;
        }
        let state = if e["fresh"] == true {
            "usable"
        } else {
            "due for refresh"
        };
        let mut line = format!(
            "  - {} [{}] expires {} ({state}); {}",
            s(&e["audience"]),
            s(&e["format"]),
            s(&e["expires_at"]),
            s(&e["kind"]),
        );
        if let Some(t) = e["impersonate"].as_str() {
            line.push_str(&format!(", impersonating {t}"));
        }
        println!("{line}\n      from {}", s(&e["origin"]));
    }
}
