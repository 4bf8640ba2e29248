//! The credential files the emulator can serve, as JSON and written to a
//! directory ([`Emulator::write_credentials`]), and the principals and
//! switches they involve: the second service account, the gcloud user,
//! the workload identity pool, the impersonation grant table.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use serde_json::{Value, json};

use crate::Emulator;
use crate::app::{Federation, USER_CLIENT_ID, USER_EMAIL, Workforce};
use crate::aws_account::AwsAccount;
use crate::emulator::write_private;
use crate::endpoints;

/// Files written by [`Emulator::write_credentials`], one per credential
/// type the emulator serves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CredentialFiles {
    /// A `service_account` key file for the default service account.
    pub service_account: PathBuf,
    /// An `authorized_user` file for the emulated gcloud user.
    pub authorized_user: PathBuf,
    /// An `impersonated_service_account` file: the default service account
    /// impersonates the target account.
    pub impersonated_from_service_account: PathBuf,
    /// An `impersonated_service_account` file: the gcloud user impersonates
    /// the target account.
    pub impersonated_from_user: PathBuf,
    /// An `external_account` file whose subject token is read from
    /// [`CredentialFiles::subject_token`].
    pub external_account_file: PathBuf,
    /// An `external_account` file whose subject token comes from the
    /// emulator's subject-token URL.
    pub external_account_url: PathBuf,
    /// The subject token, as a text file.
    pub subject_token: PathBuf,
    /// An `external_account_authorized_user` file for the emulated
    /// workforce pool user (no impersonation: it cannot mint alone).
    pub external_account_authorized_user: PathBuf,
    /// An `impersonated_service_account` file: the workforce user
    /// impersonates the target account.
    pub impersonated_from_workforce_user: PathBuf,
    /// An `external_account` file with an X.509 certificate source
    /// (`credential_source.certificate`), naming
    /// [`CredentialFiles::certificate_config`]; its `token_url` is the mTLS
    /// listener, so the client must trust [`CredentialFiles::tls_ca`].
    pub external_account_certificate: PathBuf,
    /// The certificate configuration (`cert_configs.workload.cert_path`,
    /// `key_path`), as gcloud writes `certificate_config.json`.
    pub certificate_config: PathBuf,
    /// The workload's client certificate (PEM).
    pub workload_certificate: PathBuf,
    /// The workload's private key (PKCS#8 PEM).
    pub workload_key: PathBuf,
    /// The trust chain file: the pool's trust anchor (PEM).
    pub workload_trust_chain: PathBuf,
    /// The authority of the mTLS listener's server certificate (PEM), for
    /// `SSL_CERT_FILE`.
    pub tls_ca: PathBuf,
    /// An executable-sourced `external_account` file: it runs
    /// [`CredentialFiles::subject_token_executable`] (when
    /// `GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1`) and caches its
    /// answer in `executable_output.json` next to it.
    pub external_account_executable: PathBuf,
    /// A sample executable (POSIX sh, mode 0700) printing the executable
    /// response with the subject token.
    pub subject_token_executable: PathBuf,
    /// `github_actions.env`: the two variables a GitHub Actions job gets
    /// for OIDC tokens ([`Emulator::github_actions_env`]).
    pub github_actions_env: PathBuf,
    /// An AWS-sourced `external_account` file (`environment_id` `aws1`)
    /// whose region, role and keys come from the emulator's AWS instance
    /// metadata service, with an IMDSv2 session.
    pub external_account_aws: PathBuf,
}

fn pretty(v: &Value) -> String {
    // A Value always serializes; pretty output is what gcloud writes.
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

impl Emulator {
    /// The second service account's email: the impersonation target in the
    /// credential files.
    pub fn target_service_account_email(&self) -> String {
        self.app.target_account().email.clone()
    }

    /// The target service account's numeric id (the `sub` of its tokens).
    pub fn target_service_account_id(&self) -> String {
        self.app.target_account().unique_id.clone()
    }

    /// The emulated gcloud user's email.
    pub fn user_email(&self) -> &'static str {
        USER_EMAIL
    }

    /// The OAuth client id of the user's credentials; the `aud` of the ID
    /// tokens its refresh grant returns.
    pub fn user_client_id(&self) -> &'static str {
        USER_CLIENT_ID
    }

    /// The user's refresh token (a secret: tests check it never leaks).
    pub fn user_refresh_token(&self) -> String {
        self.app.user.refresh_token.clone()
    }

    /// Makes the user's refresh token fail with `invalid_grant`, as after
    /// `gcloud auth application-default revoke`.
    pub fn revoke_refresh_token(&self) {
        self.app.user.revoked.store(true, Ordering::Release);
    }

    /// The one subject token STS accepts (a secret).
    pub fn subject_token(&self) -> String {
        self.app.federation.subject_token.clone()
    }

    /// STS token exchange endpoint, an `external_account`'s `token_url`.
    pub fn sts_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::STS.path)
    }

    /// The URL that serves the subject token (with the header it wants).
    pub fn subject_token_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::SUBJECT_TOKEN.path)
    }

    /// IAM Credentials URL of `method` (`generateIdToken`,
    /// `generateAccessToken`) for the account `email`.
    pub fn iam_url(&self, email: &str, method: &str) -> String {
        format!(
            "{}/v1/projects/-/serviceAccounts/{email}:{method}",
            self.url()
        )
    }

    /// Only these `(caller, target)` pairs may impersonate from now on;
    /// others get 403. A caller is a service account email, the user's
    /// email, or the federated principal. By default the pairs are those the
    /// credential files need: the default service account, the user and
    /// the federated principal may each impersonate the target account.
    pub fn restrict_impersonation<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) {
        let set: HashSet<(String, String)> = pairs
            .into_iter()
            .map(|(a, b)| (a.to_owned(), b.to_owned()))
            .collect();
        *self.app.grants.lock().unwrap_or_else(|e| e.into_inner()) = set;
    }

    /// Lets `caller` impersonate `target` too (IAM's Service Account Token
    /// Creator role for `caller` on `target`); each hop of a `delegates`
    /// chain needs its own grant.
    pub fn grant_impersonation(&self, caller: &str, target: &str) {
        self.app
            .grants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((caller.to_owned(), target.to_owned()));
    }

    /// An `authorized_user` file (JSON) whose `token_uri` points here.
    pub fn authorized_user_json(&self) -> String {
        pretty(&self.authorized_user_value())
    }

    fn authorized_user_value(&self) -> Value {
        json!({
            "type": "authorized_user",
            "client_id": USER_CLIENT_ID,
            "client_secret": self.app.user.client_secret,
            "refresh_token": self.app.user.refresh_token,
            "token_uri": self.token_uri(),
            "universe_domain": "googleapis.com",
        })
    }

    /// The workforce pool user's refresh token (a secret).
    pub fn workforce_refresh_token(&self) -> String {
        self.app.workforce.refresh_token.clone()
    }

    /// Makes the workforce user's refresh token fail with `invalid_grant`.
    pub fn revoke_workforce_refresh_token(&self) {
        self.app.workforce.revoked.store(true, Ordering::Release);
    }

    /// The workforce user's principal, as IAM's grants name it.
    pub fn workforce_principal(&self) -> &'static str {
        Workforce::PRINCIPAL
    }

    /// STS's OAuth refresh endpoint, an `external_account_authorized_user`'s
    /// `token_url`.
    pub fn sts_oauthtoken_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::STS_OAUTHTOKEN.path)
    }

    /// An `external_account_authorized_user` file (JSON), as gcloud's
    /// `auth application-default login --login-config` writes it, whose
    /// `token_url` points here.
    pub fn external_account_authorized_user_json(&self) -> String {
        pretty(&self.external_account_authorized_user_value())
    }

    fn external_account_authorized_user_value(&self) -> Value {
        json!({
            "type": "external_account_authorized_user",
            "audience": Workforce::AUDIENCE,
            "client_id": Workforce::CLIENT_ID,
            "client_secret": self.app.workforce.client_secret,
            "refresh_token": self.app.workforce.refresh_token,
            "token_url": self.sts_oauthtoken_url(),
            "token_info_url": format!("{}/v1/introspect", self.url()),
            "universe_domain": "googleapis.com",
        })
    }

    /// An `impersonated_service_account` file for the target account, with
    /// the default service account (`from_user` false) or the gcloud user
    /// as source.
    pub fn impersonated_json(&self, from_user: bool) -> String {
        let source = if from_user {
            self.authorized_user_value()
        } else {
            serde_json::from_str(&self.service_account_json()).unwrap_or(Value::Null)
        };
        self.impersonated_from(source)
    }

    /// An `impersonated_service_account` file for the target account whose
    /// source is the workforce user.
    pub fn impersonated_from_workforce_json(&self) -> String {
        self.impersonated_from(self.external_account_authorized_user_value())
    }

    fn impersonated_from(&self, source: Value) -> String {
        let target = self.target_service_account_email();
        pretty(&json!({
            "type": "impersonated_service_account",
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
            "delegates": [],
            "source_credentials": source,
        }))
    }

    /// An `external_account` file reading its subject token from `file`,
    /// or from the subject-token URL when `file` is `None`; it impersonates
    /// the target account.
    pub fn external_account_json(&self, file: Option<&Path>) -> String {
        let source = match file {
            Some(path) => json!({"file": path.display().to_string()}),
            None => {
                let (name, value) = Federation::URL_HEADER;
                json!({
                    "url": self.subject_token_url(),
                    "headers": {name: value},
                    "format": {"type": "text"},
                })
            }
        };
        let target = self.target_service_account_email();
        pretty(&json!({
            "type": "external_account",
            "audience": Federation::AUDIENCE,
            "subject_token_type": Federation::SUBJECT_TOKEN_TYPE,
            "token_url": self.sts_url(),
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
            "credential_source": source,
            "universe_domain": "googleapis.com",
        }))
    }

    /// An executable-sourced `external_account` file (Google's "pluggable
    /// auth") running `command` (split on whitespace, so a path with
    /// spaces cannot be named), with `output_file` as its cache; it
    /// impersonates the target account.
    pub fn executable_external_account_json(
        &self,
        command: &str,
        output_file: Option<&Path>,
    ) -> String {
        let mut executable = json!({"command": command, "timeout_millis": 10000});
        if let Some(path) = output_file {
            executable["output_file"] = json!(path.display().to_string());
        }
        let target = self.target_service_account_email();
        pretty(&json!({
            "type": "external_account",
            "audience": Federation::AUDIENCE,
            "subject_token_type": Federation::SUBJECT_TOKEN_TYPE,
            "token_url": self.sts_url(),
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
            "credential_source": {"executable": executable},
            "universe_domain": "googleapis.com",
        }))
    }

    /// A sample executable for [`Emulator::executable_external_account_json`]
    /// (POSIX sh): prints a version-1 executable response holding the
    /// subject token read from `token_file`, valid for an hour, and writes
    /// it to `GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE` when that is set.
    pub fn subject_token_script(&self, token_file: &Path) -> String {
        // Single-quoted for sh: a quote inside becomes '\''.
        let quoted = format!(
            "'{}'",
            token_file.display().to_string().replace('\'', "'\\''")
        );
        format!(
            r#"#!/bin/sh
# A sample executable for an executable-sourced external account
# (credential_source.executable), written by the idtoken emulator. Google's
# libraries and idtoken run it when GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES=1,
# with GOOGLE_EXTERNAL_ACCOUNT_AUDIENCE, _TOKEN_TYPE, _INTERACTIVE,
# _IMPERSONATED_EMAIL and _OUTPUT_FILE set, and read the JSON it prints.
# A real one gets the token from an identity provider; this one reads the
# emulator's subject token from a file.
set -eu
token=$(cat {quoted})
expires=$(( $(date +%s) + 3600 ))
response=$(printf '{{"version":1,"success":true,"token_type":"{token_type}","id_token":"%s","expiration_time":%s}}' "$token" "$expires")
# With output_file configured, the answer is cached there for later runs.
if [ -n "${{GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE:-}}" ]; then
  (umask 077 && printf '%s
' "$response" > "$GOOGLE_EXTERNAL_ACCOUNT_OUTPUT_FILE")
fi
printf '%s
' "$response"
"#,
            token_type = Federation::SUBJECT_TOKEN_TYPE,
        )
    }

    /// The authority of the mTLS listener's server certificate (PEM).
    pub fn tls_ca_pem(&self) -> &str {
        &self.app.pki.server_ca_pem
    }

    /// The pool's trust anchor (PEM): the issuer of the workload certificate.
    pub fn workload_trust_anchor_pem(&self) -> &str {
        &self.app.pki.pool_ca_pem
    }

    /// The workload's client certificate (PEM), trusted by the pool.
    pub fn workload_certificate_pem(&self) -> &str {
        &self.app.pki.workload_cert_pem
    }

    /// The workload certificate's private key (PKCS#8 PEM; a secret).
    pub fn workload_key_pem(&self) -> &str {
        &self.app.pki.workload_key_pem
    }

    /// The federated principal of the workload certificate.
    pub fn workload_principal(&self) -> &'static str {
        crate::mtls::PRINCIPAL
    }

    /// STS's token exchange on the mTLS listener, an X.509
    /// `external_account`'s `token_url`.
    pub fn sts_mtls_url(&self) -> String {
        format!("{}{}", self.mtls_url(), endpoints::STS.path)
    }

    /// A certificate configuration (JSON) naming `cert` and `key`.
    pub fn certificate_config_json(cert: &Path, key: &Path) -> String {
        pretty(&json!({
            "cert_configs": {
                "workload": {
                    "cert_path": cert.display().to_string(),
                    "key_path": key.display().to_string(),
                }
            }
        }))
    }

    /// An `external_account` file with an X.509 certificate source, as
    /// `gcloud iam workload-identity-pools create-cred-config
    /// --credential-cert-path` writes it: the certificate configuration at
    /// `config` (or, when `None`, `use_default_certificate_config`), the
    /// optional trust chain file; it impersonates the target account.
    pub fn external_account_certificate_json(
        &self,
        config: Option<&Path>,
        trust_chain: Option<&Path>,
    ) -> String {
        let mut certificate = match config {
            Some(path) => json!({"certificate_config_location": path.display().to_string()}),
            None => json!({"use_default_certificate_config": true}),
        };
        if let Some(chain) = trust_chain {
            certificate["trust_chain_path"] = json!(chain.display().to_string());
        }
        let target = self.target_service_account_email();
        pretty(&json!({
            "type": "external_account",
            "audience": crate::mtls::AUDIENCE,
            "subject_token_type": crate::mtls::SUBJECT_TOKEN_TYPE,
            "token_url": self.sts_mtls_url(),
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
            "credential_source": {"certificate": certificate},
            "universe_domain": "googleapis.com",
        }))
    }

    /// An AWS-sourced `external_account` file (`environment_id` `aws1`)
    /// for the pool's AWS provider: `region_url` and `url` at the
    /// emulator's AWS instance metadata service, and with `imdsv2` its
    /// `imdsv2_session_token_url`; the regional verification URL is AWS's
    /// own (only signed, never called). It impersonates the target account.
    pub fn aws_external_account_json(&self, imdsv2: bool) -> String {
        let base = self.url();
        let mut source = json!({
            "environment_id": "aws1",
            "region_url": format!("{base}{}", endpoints::AWS_ZONE.path),
            "url": format!("{base}{}", endpoints::AWS_ROLE.path),
            "regional_cred_verification_url": "https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15",
        });
        if imdsv2 {
            source["imdsv2_session_token_url"] =
                json!(format!("{base}{}", endpoints::AWS_IMDS_TOKEN.path));
        }
        let target = self.target_service_account_email();
        pretty(&json!({
            "type": "external_account",
            "audience": AwsAccount::AUDIENCE,
            "subject_token_type": AwsAccount::SUBJECT_TOKEN_TYPE,
            "token_url": self.sts_url(),
            "service_account_impersonation_url": self.iam_url(&target, "generateAccessToken"),
            "credential_source": source,
            "universe_domain": "googleapis.com",
        }))
    }

    /// The emulated AWS instance's region (its zone is `us-east-2b`).
    pub fn aws_region(&self) -> &'static str {
        "us-east-2"
    }

    /// The AWS account's long-term access key, as
    /// `(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY)`; the secret is one.
    pub fn aws_access_key(&self) -> (String, String) {
        let k = &self.app.aws.user;
        (k.access_key_id.clone(), k.secret_access_key.clone())
    }

    /// The instance role's temporary key, as `(AccessKeyId,
    /// SecretAccessKey, Token)`, what the instance metadata service hands
    /// out; the last two are secrets (tests check they never leak).
    pub fn aws_role_key(&self) -> (String, String, String) {
        let k = &self.app.aws.role;
        (
            k.access_key_id.clone(),
            k.secret_access_key.clone(),
            k.session_token.clone().unwrap_or_default(),
        )
    }

    /// Makes the AWS instance metadata service answer `GET`s only with an
    /// IMDSv2 session token (`HttpTokens=required`), or (`false`) with or
    /// without one, the default.
    pub fn require_imdsv2(&self, required: bool) {
        self.app
            .aws
            .imdsv2_required
            .store(required, Ordering::Release);
    }

    /// Writes every credential file into `dir` (mode 0600 on Unix).
    pub fn write_credentials(&self, dir: &Path) -> std::io::Result<CredentialFiles> {
        let write = |name: &str, body: String| {
            let path = dir.join(name);
            write_private(&path, body.as_bytes()).map(|()| path)
        };
        let subject_token = write("subject_token.txt", self.subject_token())?;
        let workload_certificate = write(
            "workload_cert.pem",
            self.workload_certificate_pem().to_owned(),
        )?;
        let workload_key = write("workload_key.pem", self.workload_key_pem().to_owned())?;
        let workload_trust_chain = write(
            "workload_trust_chain.pem",
            self.workload_trust_anchor_pem().to_owned(),
        )?;
        let certificate_config = write(
            "certificate_config.json",
            Self::certificate_config_json(&workload_certificate, &workload_key),
        )?;
        let script = write(
            "subject_token_executable.sh",
            self.subject_token_script(&subject_token),
        )?;
        make_executable(&script)?;
        Ok(CredentialFiles {
            service_account: write("service_account.json", self.service_account_json())?,
            authorized_user: write("authorized_user.json", self.authorized_user_json())?,
            impersonated_from_service_account: write(
                "impersonated_service_account.json",
                self.impersonated_json(false),
            )?,
            impersonated_from_user: write("impersonated_user.json", self.impersonated_json(true))?,
            external_account_file: write(
                "external_account_file.json",
                self.external_account_json(Some(&subject_token)),
            )?,
            external_account_authorized_user: write(
                "external_account_authorized_user.json",
                self.external_account_authorized_user_json(),
            )?,
            impersonated_from_workforce_user: write(
                "impersonated_workforce_user.json",
                self.impersonated_from_workforce_json(),
            )?,
            external_account_certificate: write(
                "external_account_certificate.json",
                self.external_account_certificate_json(
                    Some(&certificate_config),
                    Some(&workload_trust_chain),
                ),
            )?,
            certificate_config,
            workload_certificate,
            workload_key,
            workload_trust_chain,
            tls_ca: write("emulator_ca.pem", self.tls_ca_pem().to_owned())?,
            external_account_url: write(
                "external_account_url.json",
                self.external_account_json(None),
            )?,
            external_account_executable: write(
                "external_account_executable.json",
                self.executable_external_account_json(
                    &script.display().to_string(),
                    Some(&dir.join("executable_output.json")),
                ),
            )?,
            subject_token_executable: script,
            subject_token,
            github_actions_env: write("github_actions.env", self.github_actions_env())?,
            external_account_aws: write(
                "external_account_aws.json",
                self.aws_external_account_json(true),
            )?,
        })
    }
}

/// Makes `path` executable by its owner only (it was written 0600).
fn make_executable(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
