//! External accounts built in code (`idtoken::external_account::Builder`)
//! with a subject token supplier: here one that reads the emulator's
//! subject-token URL over loopback HTTP, as a program would ask a sidecar.
//! They behave as files do: the same STS exchange, impersonation, caches.

use std::sync::{Arc, Mutex};

use idtoken::external_account::{
    Builder, SubjectTokenContext, SubjectTokenSupplier, SupplierFuture,
};
use idtoken::{Credentials, CredentialsKind, TokenOptions};
use idtoken_emulator::{Emulator, Endpoint};

use crate::common::*;

const AUD: &str = "https://svc-abc.a.run.app";

/// The `(audience, subject_token_type)` contexts a supplier was asked for.
type Asked = Arc<Mutex<Vec<(String, String)>>>;

/// Reads the subject token from a URL with one header, remembering the
/// contexts it was asked for.
struct Sidecar {
    url: String,
    header: (String, String),
    asked: Asked,
}

impl SubjectTokenSupplier for Sidecar {
    fn subject_token<'a>(&'a self, context: &'a SubjectTokenContext) -> SupplierFuture<'a> {
        Box::pin(async move {
            self.asked.lock().expect("lock").push((
                context.audience().to_owned(),
                context.subject_token_type().to_owned(),
            ));
            let answer = reqwest::Client::new()
                .get(&self.url)
                .header(&self.header.0, &self.header.1)
                .send()
                .await?
                .error_for_status()?;
            Ok(answer.text().await?)
        })
    }
}

/// A supplier that always fails, saying why.
struct Sealed;

impl SubjectTokenSupplier for Sealed {
    fn subject_token<'a>(&'a self, _: &'a SubjectTokenContext) -> SupplierFuture<'a> {
        Box::pin(async { Err("the vault is sealed".into()) })
    }
}

/// The emulator's URL-sourced file, as the builder's fields.
fn fields(emu: &Emulator) -> serde_json::Value {
    serde_json::from_str(&emu.external_account_json(None)).expect("json")
}

fn sidecar(emu: &Emulator) -> (Sidecar, Asked) {
    let doc = fields(emu);
    let (name, value) = doc["credential_source"]["headers"]
        .as_object()
        .and_then(|h| h.iter().next())
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .expect("the URL source names a header");
    let asked = Arc::new(Mutex::new(Vec::new()));
    let supplier = Sidecar {
        url: emu.subject_token_url(),
        header: (name, value),
        asked: asked.clone(),
    };
    (supplier, asked)
}

/// Credentials from the builder with the same fields as the emulator's file.
pub fn supplier_credentials(emu: &Emulator) -> Credentials {
    let doc = fields(emu);
    let (supplier, _) = sidecar(emu);
    builder(&doc)
        .subject_token_supplier(supplier)
        .build()
        .expect("builds")
}

fn builder(doc: &serde_json::Value) -> Builder {
    let s = |k: &str| doc[k].as_str().expect(k).to_owned();
    Builder::new(s("audience"), s("subject_token_type"))
        .token_url(s("token_url"))
        .service_account_impersonation_url(s("service_account_impersonation_url"))
}

#[tokio::test]
async fn supplier_credentials_exchange_at_sts_and_impersonate_like_a_file() {
    let emu = emulator().await;
    let doc = fields(&emu);
    let (supplier, asked) = sidecar(&emu);
    let creds = builder(&doc)
        .subject_token_supplier(supplier)
        .build()
        .expect("builds");
    assert_eq!(creds.kind(), CredentialsKind::ExternalAccount);
    assert_eq!(
        creds.principal(),
        Some(emu.target_service_account_email().as_str())
    );
    assert!(
        creds.flow_description().contains("subject token supplier"),
        "{}",
        creds.flow_description()
    );
    let token = creds
        .fetch_id_token(AUD, &TokenOptions::default().include_email(true))
        .await
        .expect("token");
    assert_eq!(token.claims().aud.as_deref(), Some(AUD));
    assert_eq!(
        token.claims().email.as_deref(),
        Some(emu.target_service_account_email().as_str())
    );
    let n = emu.counters();
    assert_eq!(n.get(Endpoint::SubjectToken), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::Sts), 1, "{n:?}");
    assert_eq!(n.get(Endpoint::IamGenerateIdToken), 1, "{n:?}");
    let asked = asked.lock().expect("lock").clone();
    assert_eq!(
        asked,
        [(
            doc["audience"].as_str().expect("audience").to_owned(),
            doc["subject_token_type"].as_str().expect("type").to_owned()
        )],
        "the supplier is told the pool provider and token type"
    );
}

#[tokio::test]
async fn supplier_failure_is_shown_with_the_step_and_nothing_reaches_sts() {
    let emu = emulator().await;
    let creds = builder(&fields(&emu))
        .subject_token_supplier(Sealed)
        .build()
        .expect("builds");
    let err = creds
        .fetch_id_token(AUD, &TokenOptions::default())
        .await
        .expect_err("the supplier fails")
        .to_string();
    assert!(err.contains("subject token supplier failed"), "{err}");
    assert!(err.contains("the vault is sealed"), "{err}");
    assert_eq!(emu.counters().get(Endpoint::Sts), 0);
}

#[tokio::test]
async fn builder_checks_urls_by_the_file_rules_and_wants_a_supplier() {
    let emu = emulator().await;
    let doc = fields(&emu);
    let plain = builder(&doc)
        .token_url("http://sts.example/v1/token")
        .subject_token_supplier(Sealed)
        .build()
        .expect_err("plain http to another host")
        .to_string();
    assert!(
        plain.contains("token_url") && plain.contains(idtoken::ALLOW_INSECURE_HTTP),
        "{plain}"
    );
    let not_iam = builder(&doc)
        .service_account_impersonation_url("https://iamcredentials.googleapis.com/v1/nothing")
        .subject_token_supplier(Sealed)
        .build()
        .expect_err("not an impersonation URL")
        .to_string();
    assert!(
        not_iam.contains("service_account_impersonation_url"),
        "{not_iam}"
    );
    let none = builder(&doc).build().expect_err("no supplier").to_string();
    assert!(none.contains("subject_token_supplier"), "{none}");
    let empty = Builder::new("", "urn:ietf:params:oauth:token-type:jwt")
        .subject_token_supplier(Sealed)
        .build()
        .expect_err("empty audience")
        .to_string();
    assert!(empty.contains("audience"), "{empty}");
}
