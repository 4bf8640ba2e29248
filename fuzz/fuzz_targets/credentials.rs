//! Credentials JSON of every type (`service_account`, `authorized_user`,
//! `impersonated_service_account`, `external_account`, unknown ones)
//! through `Credentials::from_json` and what describes the result. Secrets
//! (`private_key`, `client_secret`, `refresh_token`) never show in its
//! `Debug`, its description, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;

use idtoken::Credentials;

const SECRETS: [&str; 3] = ["private_key", "client_secret", "refresh_token"];

/// Secret values, and every other string in the document (keys included).
fn strings(v: &Value, secret: bool, secrets: &mut Vec<String>, others: &mut Vec<String>) {
    match v {
        Value::String(s) if secret => secrets.push(s.clone()),
        Value::String(s) => others.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, false, secrets, others)),
        Value::Object(m) => {
            for (k, x) in m {
                others.push(k.clone());
                strings(x, SECRETS.contains(&k.as_str()), secrets, others);
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let shown = match Credentials::from_json(data, "fuzz.json") {
        Ok(creds) => {
            let _ = (creds.kind(), creds.audience_is_client_id(), creds.origin());
            let _ = (
                creds.principal(),
                creds.source_principal(),
                creds.impersonation(),
            );
            format!(
                "{creds:?} {} {:?}",
                creds.flow_description(),
                creds.endpoints_outside_google()
            )
        }
        Err(e) => format!("{e} {e:?}"),
    };
    let Ok(doc) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let (mut secrets, mut others) = (Vec::new(), Vec::new());
    strings(&doc, false, &mut secrets, &mut others);
    for s in secrets {
        // Short or shared values can show for other reasons.
        if s.len() >= 8
            && !others
                .iter()
                .any(|o| o.contains(&s) || s.contains(o.as_str()))
        {
            assert!(!shown.contains(&s), "a secret shows: {shown}");
        }
    }
});
