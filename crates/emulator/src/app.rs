//! The server's shared state, [`App`]: keys, accounts, grants, caches and
//! issued tokens, and the minting of ID tokens and IAP assertions. Every
//! endpoint module reads it; it knows none of them (the routes are in
//! `router.rs`).

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::aws_account::AwsAccount;
use crate::keys::{EcKey, RsaKey, random_hex};
use crate::state::Control;
use crate::{Error, jwt};

/// The issuer of every ID token the emulator signs.
pub(crate) const ISSUER: &str = "https://accounts.google.com";
/// The issuer of IAP assertions.
pub(crate) const IAP_ISSUER: &str = "https://cloud.google.com/iap";
/// The project the emulated instance and service account live in.
pub(crate) const PROJECT_ID: &str = "idtoken-emulator";
/// Its number, as the metadata server and `google` claims give it.
pub(crate) const PROJECT_NUMBER: u64 = 123_456_789_012;
/// Local part of the default service account's email.
const DEFAULT_ACCOUNT: &str = "emulator";
/// Local part of the second service account's email: the one other
/// principals impersonate.
const TARGET_ACCOUNT: &str = "target";
/// The emulated gcloud user (an `authorized_user` credential).
pub(crate) const USER_EMAIL: &str = "user@example.com";
/// The OAuth client id gcloud's user credentials carry; the `aud` of the
/// user's ID tokens.
pub(crate) const USER_CLIENT_ID: &str = "764086051850-emulator.apps.googleusercontent.com";

/// Where the time comes from; tests pass a settable one.
pub(crate) type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Settings fixed at start.
pub(crate) struct Config {
    pub token_lifetime: Duration,
    pub jwks_max_age: Duration,
    pub clock: Clock,
}

/// A service account: its email, numeric id and key-file key.
#[derive(Debug)]
pub(crate) struct ServiceAccount {
    pub email: String,
    pub unique_id: String,
    pub key: RsaKey,
}

impl ServiceAccount {
    fn generate(local: &str) -> Result<Self, Error> {
        let email = format!("{local}@{PROJECT_ID}.iam.gserviceaccount.com");
        Ok(Self {
            unique_id: numeric_id(&email),
            key: RsaKey::generate(&email)?,
            email,
        })
    }
}

/// Google's signing keys: the current one and the one it replaced, both
/// published so tokens signed just before a rotation still verify.
pub(crate) struct GoogleKeys {
    pub current: Arc<RsaKey>,
    pub previous: Option<Arc<RsaKey>>,
}

/// An access token handed out by the token endpoint (JWT-bearer grant with
/// `scope`, refresh grant), by STS or by IAM `generateAccessToken`.
#[derive(Debug, Clone)]
pub(crate) struct AccessToken {
    pub email: String,
    pub scope: String,
    pub expires_at: i64,
}

/// Which identity token the metadata server caches:
/// (account email, audience, full format, licenses).
pub(crate) type IdentityKey = (String, String, bool, bool);

/// Everything the handlers share.
pub(crate) struct App {
    pub control: Arc<Control>,
    pub config: Config,
    google: Mutex<GoogleKeys>,
    iap: Mutex<(Arc<EcKey>, Option<Arc<EcKey>>)>,
    account: ServiceAccount,
    target: ServiceAccount,
    /// The authorized user's secrets and whether its refresh token works.
    pub user: User,
    /// The workload identity pool STS answers for.
    pub federation: Federation,
    /// The workforce pool user STS's refresh grant answers for.
    pub workforce: Workforce,
    /// The certificates of X.509 federation and the mTLS listener.
    pub pki: crate::mtls::Pki,
    /// The AWS account of AWS-sourced federation: keys, role, IMDSv2 sessions.
    pub aws: AwsAccount,
    /// Who may impersonate whom, as `(caller, target)`; a pair not here is
    /// refused, as Google refuses a principal without the Token Creator
    /// role on the target (itself included).
    pub grants: Mutex<HashSet<(String, String)>>,
    pub identity_cache: Mutex<HashMap<IdentityKey, (String, i64)>>,
    pub access_tokens: Mutex<HashMap<String, AccessToken>>,
}

/// The grants the credential files need (`files.rs`): the key file's
/// account, the gcloud user and the pool's federated principal may each
/// impersonate the target account. Nothing else, not even an account itself.
fn file_grants(account: &ServiceAccount, target: &ServiceAccount) -> HashSet<(String, String)> {
    [
        account.email.as_str(),
        USER_EMAIL,
        Federation::PRINCIPAL,
        Workforce::PRINCIPAL,
        crate::mtls::PRINCIPAL,
    ]
    .into_iter()
    .map(|caller| (caller.to_owned(), target.email.clone()))
    .collect()
}

/// The certificate subject Google uses for its OIDC signing keys.
const GOOGLE_CERT_CN: &str = "federated-signon.system.gserviceaccount.com";

impl App {
    pub(crate) fn new(config: Config) -> Result<Self, Error> {
        // RSA key generation dominates start-up; make both keys at once.
        let (google, account, target) = std::thread::scope(|s| {
            let panicked = || Error::Key("key generation thread panicked".into());
            let google = s.spawn(|| RsaKey::generate(GOOGLE_CERT_CN));
            let target = s.spawn(|| ServiceAccount::generate(TARGET_ACCOUNT));
            let account = ServiceAccount::generate(DEFAULT_ACCOUNT);
            let google = google.join().unwrap_or_else(|_| Err(panicked()));
            let target = target.join().unwrap_or_else(|_| Err(panicked()));
            (google, account, target)
        });
        let (account, target) = (account?, target?);
        let grants = Mutex::new(file_grants(&account, &target));
        Ok(Self {
            control: Arc::new(Control::new()),
            config,
            google: Mutex::new(GoogleKeys {
                current: Arc::new(google?),
                previous: None,
            }),
            iap: Mutex::new((Arc::new(EcKey::generate()?), None)),
            account,
            target,
            user: User::generate()?,
            federation: Federation::generate()?,
            workforce: Workforce::generate()?,
            pki: crate::mtls::Pki::generate()?,
            aws: AwsAccount::generate()?,
            grants,
            identity_cache: Mutex::new(HashMap::new()),
            access_tokens: Mutex::new(HashMap::new()),
        })
    }

    /// Now, in whole seconds since the epoch, from the configured clock.
    pub(crate) fn now(&self) -> i64 {
        match (self.config.clock)().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }

    /// Now, in milliseconds since the epoch, for comparisons that whole
    /// seconds would make up to a second wrong (short-lived test tokens).
    pub(crate) fn now_millis(&self) -> i64 {
        match (self.config.clock)().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Token lifetime in seconds.
    pub(crate) fn lifetime(&self) -> i64 {
        i64::try_from(self.config.token_lifetime.as_secs()).unwrap_or(i64::MAX)
    }

    /// The default service account (the instance's, and the key file's).
    pub(crate) fn default_account(&self) -> &ServiceAccount {
        &self.account
    }

    /// The account with this email, or `"default"` for the default one.
    pub(crate) fn account(&self, name: &str) -> Option<&ServiceAccount> {
        // One account for now; the lookup is by name so more can join.
        let account = self.default_account();
        (name == "default" || name == account.email).then_some(account)
    }

    /// The account whose `client_email` this is (never an alias).
    pub(crate) fn account_by_email(&self, email: &str) -> Option<&ServiceAccount> {
        [&self.account, &self.target]
            .into_iter()
            .find(|sa| sa.email == email)
    }

    /// The second service account, the usual impersonation target.
    pub(crate) fn target_account(&self) -> &ServiceAccount {
        &self.target
    }

    /// Whether `caller` may impersonate `target` (the grant table).
    pub(crate) fn may_impersonate(&self, caller: &str, target: &str) -> bool {
        let grants = self.grants.lock().unwrap_or_else(|e| e.into_inner());
        grants.contains(&(caller.to_owned(), target.to_owned()))
    }

    /// Issues an access token for `email` and remembers it.
    pub(crate) fn issue_access_token(&self, email: &str, scope: &str) -> Result<String, Error> {
        let token = format!("ya29.emulator-{}", random_hex(32)?);
        let now = self.now();
        let expires_at = now.saturating_add(self.lifetime());
        let mut tokens = self.access_tokens.lock().unwrap_or_else(|e| e.into_inner());
        // Forget expired tokens so a long test run does not grow without bound.
        tokens.retain(|_, t| t.expires_at > now);
        tokens.insert(
            token.clone(),
            AccessToken {
                email: email.to_owned(),
                scope: scope.to_owned(),
                expires_at,
            },
        );
        Ok(token)
    }

    /// The principal behind a valid (known, unexpired) access token.
    pub(crate) fn access_token_owner(&self, token: &str) -> Option<AccessToken> {
        let tokens = self.access_tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(token)
            .filter(|t| t.expires_at > self.now())
            .cloned()
    }

    /// Current signing key, then the previous one if any.
    pub(crate) fn google_keys(&self) -> Vec<Arc<RsaKey>> {
        let keys = self.google.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![Arc::clone(&keys.current)];
        out.extend(keys.previous.clone());
        out
    }

    /// IAP's current signing key, then the previous one if any.
    pub(crate) fn iap_keys(&self) -> Vec<Arc<EcKey>> {
        let keys = self.iap.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = vec![Arc::clone(&keys.0)];
        out.extend(keys.1.clone());
        out
    }

    /// The current Google signing key.
    pub(crate) fn google_key(&self) -> Arc<RsaKey> {
        Arc::clone(
            &self
                .google
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .current,
        )
    }

    /// Makes new current keys (Google's and IAP's); the old current ones
    /// become previous.
    pub(crate) fn rotate(&self) -> Result<(), Error> {
        let fresh_iap = Arc::new(EcKey::generate()?);
        {
            let mut iap = self.iap.lock().unwrap_or_else(|e| e.into_inner());
            let old = std::mem::replace(&mut iap.0, fresh_iap);
            iap.1 = Some(old);
        }
        // Generate outside the lock: it takes a while.
        let fresh = Arc::new(RsaKey::generate(GOOGLE_CERT_CN)?);
        let mut keys = self.google.lock().unwrap_or_else(|e| e.into_inner());
        let old = std::mem::replace(&mut keys.current, fresh);
        keys.previous = Some(old);
        drop(keys);
        // Cached identity tokens name the retired key; real caches survive a
        // rotation too, but fresh tokens make rotation tests meaningful.
        self.identity_cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Signs an ID token: `extra` claims plus iss, iat and exp.
    pub(crate) fn mint(
        &self,
        mut claims: serde_json::Map<String, Value>,
    ) -> Result<(String, i64), Error> {
        let iat = self.now();
        let exp = iat.saturating_add(self.lifetime());
        claims.insert("iss".into(), json!(ISSUER));
        claims.insert("iat".into(), json!(iat));
        claims.insert("exp".into(), json!(exp));
        let key = self.google_key();
        Ok((jwt::sign(&key, &Value::Object(claims))?, exp))
    }

    /// Signs an IAP assertion for `audience` and `email`, as IAP puts in
    /// `x-goog-iap-jwt-assertion`.
    pub(crate) fn mint_iap(&self, audience: &str, email: &str) -> Result<String, Error> {
        let iat = self.now();
        // IAP assertions live 10 minutes.
        let exp = iat.saturating_add(600);
        let claims = json!({
            "iss": IAP_ISSUER,
            "aud": audience,
            "sub": format!("accounts.google.com:{}", numeric_id(email)),
            "email": email,
            "iat": iat,
            "exp": exp,
            "google": {"access_levels": []},
        });
        let key = Arc::clone(&self.iap.lock().unwrap_or_else(|e| e.into_inner()).0);
        jwt::sign_es256(&key, &claims)
    }
}

/// The emulated workload identity pool: the STS audience and the one
/// subject token STS accepts for it.
pub(crate) struct Federation {
    pub subject_token: String,
    /// The bearer the emulated GitHub token endpoint wants (`github.rs`).
    pub github_request_token: String,
}

impl Federation {
    /// The pool provider, as an `external_account` file's `audience`.
    pub(crate) const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/emulator-pool/providers/emulator-provider";
    /// The subject token type the provider takes.
    pub(crate) const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
    /// The federated principal STS's access tokens stand for.
    pub(crate) const PRINCIPAL: &str = "principal://iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/emulator-pool/subject/ci-runner";
    /// The header the subject-token URL wants, with its value.
    pub(crate) const URL_HEADER: (&str, &str) = ("x-emulator-subject", "please");

    fn generate() -> Result<Self, Error> {
        Ok(Self {
            subject_token: format!("subject-{}", random_hex(24)?),
            github_request_token: random_hex(24)?,
        })
    }
}

/// The emulated workforce pool user (an `external_account_authorized_user`
/// credential): its pool, OAuth client and refresh token.
pub(crate) struct Workforce {
    pub client_secret: String,
    pub refresh_token: String,
    pub revoked: std::sync::atomic::AtomicBool,
}

impl Workforce {
    /// The workforce pool provider, as the file's `audience`.
    pub(crate) const AUDIENCE: &str = "//iam.googleapis.com/locations/global/workforcePools/emulator-workforce/providers/emulator-idp";
    /// The OAuth client gcloud's workforce login uses.
    pub(crate) const CLIENT_ID: &str = "emulator-workforce-client";
    /// The principal its access tokens stand for.
    pub(crate) const PRINCIPAL: &str = "principal://iam.googleapis.com/locations/global/workforcePools/emulator-workforce/subject/user@example.com";

    fn generate() -> Result<Self, Error> {
        Ok(Self {
            client_secret: format!("wf-secret-{}", random_hex(12)?),
            refresh_token: format!("wf-refresh-{}", random_hex(24)?),
            revoked: std::sync::atomic::AtomicBool::new(false),
        })
    }
}

/// The emulated gcloud user: OAuth client and refresh token.
pub(crate) struct User {
    pub client_secret: String,
    pub refresh_token: String,
    pub revoked: std::sync::atomic::AtomicBool,
}

impl User {
    fn generate() -> Result<Self, Error> {
        Ok(Self {
            client_secret: format!("GOCSPX-{}", random_hex(12)?),
            refresh_token: format!("1//emulator-{}", random_hex(24)?),
            revoked: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The user's stable numeric id (the `sub` of its tokens).
    pub(crate) fn unique_id(&self) -> String {
        numeric_id(USER_EMAIL)
    }
}

/// A stable 21-digit id for an email, like Google's service account ids.
fn numeric_id(email: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, email.as_bytes());
    let digits: String = digest
        .as_ref()
        .iter()
        .take(20)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    format!("1{digits}")
}

#[cfg(test)]
mod tests {
    use super::numeric_id;

    #[test]
    fn numeric_id_is_stable_and_21_digits() {
        let a = numeric_id("a@b.iam.gserviceaccount.com");
        assert_eq!(a, numeric_id("a@b.iam.gserviceaccount.com"));
        assert_eq!(a.len(), 21);
        assert!(a.bytes().all(|b| b.is_ascii_digit()));
    }
}
