//! The running server and its builder: bind, spawn, steer, shut down.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::json;
use tokio::task::JoinHandle;

use crate::Error;
use crate::app::{App, Clock, Config, IAP_ISSUER, ISSUER, PROJECT_ID};
use crate::endpoints;
use crate::state::{Counters, Endpoint, Fault, Hold};

/// How long [`Emulator::shutdown`] lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A running emulator, listening on loopback.
///
/// Dropping it shuts the server down; [`Emulator::shutdown`] does the same
/// and waits until the server has stopped.
pub struct Emulator {
    addr: SocketAddr,
    /// The mTLS listener's address (STS over mutual TLS).
    mtls_addr: SocketAddr,
    pub(crate) app: Arc<App>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Settings for an [`Emulator`]; made by [`Emulator::builder`].
pub struct Builder {
    listen: SocketAddr,
    token_lifetime: Duration,
    jwks_max_age: Duration,
    clock: Clock,
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("listen", &self.listen)
            .field("token_lifetime", &self.token_lifetime)
            .field("jwks_max_age", &self.jwks_max_age)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            token_lifetime: Duration::from_secs(3600),
            jwks_max_age: Duration::from_secs(6 * 3600),
            clock: Arc::new(SystemTime::now),
        }
    }
}

impl Builder {
    /// Where to listen; default `127.0.0.1:0` (a free port).
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }

    /// Lifetime of issued ID and access tokens; default one hour.
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = lifetime;
        self
    }

    /// `max-age` announced on the key set endpoints; default six hours.
    pub fn jwks_max_age(mut self, max_age: Duration) -> Self {
        self.jwks_max_age = max_age;
        self
    }

    /// The clock for `iat`/`exp` and assertion checks; default the system clock.
    pub fn clock(mut self, clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }

    /// Makes the keys, binds, and starts serving; the URL works on return.
    ///
    /// Must be called inside a Tokio runtime (it spawns the server task).
    pub async fn start(self) -> Result<Emulator, Error> {
        let config = Config {
            token_lifetime: self.token_lifetime,
            jwks_max_age: self.jwks_max_age,
            clock: self.clock,
        };
        // RSA key generation blocks for a moment; keep it off the runtime's
        // worker so other tasks (a test's other servers) keep running.
        let app = tokio::task::spawn_blocking(move || App::new(config))
            .await
            .map_err(|e| Error::Key(format!("key generation task failed: {e}")))??;
        let app = Arc::new(app);
        let bind_err = |source| Error::Bind {
            addr: self.listen,
            source,
        };
        let listener = tokio::net::TcpListener::bind(self.listen)
            .await
            .map_err(bind_err)?;
        let addr = listener.local_addr().map_err(bind_err)?;
        let router = crate::router::router(Arc::clone(&app));
        let mtls_listener = tokio::net::TcpListener::bind((self.listen.ip(), 0))
            .await
            .map_err(bind_err)?;
        let mtls_addr = mtls_listener.local_addr().map_err(bind_err)?;
        tokio::spawn(crate::mtls_listener::serve(
            mtls_listener,
            router.clone(),
            Arc::clone(&app.pki.server_config),
            Arc::clone(&app.control),
        ));
        let control = Arc::clone(&app.control);
        let task = tokio::spawn(async move {
            let stop = async move { control.shutting_down().await };
            if let Err(e) = axum::serve(listener, router)
                .with_graceful_shutdown(stop)
                .await
            {
                tracing::error!(error = %e, "emulator server failed");
            }
        });
        tracing::debug!(%addr, "emulator listening");
        Ok(Emulator {
            addr,
            mtls_addr,
            app,
            task: Some(task),
        })
    }
}

impl Emulator {
    /// Starts an emulator with the default settings.
    pub async fn start() -> Result<Emulator, Error> {
        Self::builder().start().await
    }

    /// Settings to start an emulator with.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Base URL, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The mTLS listener's base URL (`https://127.0.0.1:PORT`): the same
    /// endpoints over TLS with optional client certificates, as
    /// `sts.mtls.googleapis.com`. Clients trust it through
    /// [`Emulator::tls_ca_pem`].
    pub fn mtls_url(&self) -> String {
        format!("https://{}", self.mtls_addr)
    }

    /// `host:port` to put in `GCE_METADATA_HOST`.
    pub fn metadata_host(&self) -> String {
        self.addr.to_string()
    }

    /// The OAuth2 token endpoint, as in the key file's `token_uri`.
    pub fn token_uri(&self) -> String {
        format!("{}{}", self.url(), endpoints::TOKEN.path)
    }

    /// Google's JWK set endpoint.
    pub fn jwks_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::JWKS_V3.path)
    }

    /// Google's PEM certificate endpoint.
    pub fn pem_certs_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::CERTS_V1.path)
    }

    /// IAP's ES256 JWK set endpoint (`/iap/verify/public_key-jwk`).
    pub fn iap_jwks_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::IAP_JWK.path)
    }

    /// IAP's ES256 keys as a map of `kid` to PEM public key
    /// (`/iap/verify/public_key`), the form Google's Python IAP sample
    /// passes to `id_token.verify_token(..., certs_url=...)`.
    pub fn iap_pem_keys_url(&self) -> String {
        format!("{}{}", self.url(), endpoints::IAP_PEM.path)
    }

    /// The `iss` of every ID token it signs: `https://accounts.google.com`.
    pub fn issuer(&self) -> &str {
        ISSUER
    }

    /// The `iss` of its IAP assertions: `https://cloud.google.com/iap`.
    pub fn iap_issuer(&self) -> &str {
        IAP_ISSUER
    }

    /// An IAP assertion (ES256, as in `x-goog-iap-jwt-assertion`) for
    /// `audience` (`/projects/NUM/global/backendServices/ID` or
    /// `/projects/NUM/apps/PROJECT`) and the user `email`; it lives 10
    /// minutes. Also served as `POST /_emulator/iap_token?audience=&email=`.
    pub fn iap_token(&self, audience: &str, email: &str) -> Result<String, Error> {
        self.app.mint_iap(audience, email)
    }

    /// The `kid` of the current Google signing key.
    pub fn google_kid(&self) -> String {
        self.app.google_key().kid().to_owned()
    }

    /// The `kid` of the current IAP signing key.
    pub fn iap_kid(&self) -> String {
        self.app
            .iap_keys()
            .first()
            .map(|k| k.kid().to_owned())
            .unwrap_or_default()
    }

    /// For tests of verifiers: `header` and `claims` encoded exactly as given
    /// (any bytes, even invalid JSON) and signed RS256 with the current
    /// Google key. Nothing is added: put `kid` in the header yourself.
    pub fn sign_google(&self, header: &str, claims: &str) -> Result<String, Error> {
        let key = self.app.google_key();
        crate::jwt::sign_raw(header, claims, |m| key.sign(m))
    }

    /// Like [`sign_google`](Self::sign_google), signed ES256 with the
    /// current IAP key.
    pub fn sign_iap(&self, header: &str, claims: &str) -> Result<String, Error> {
        let keys = self.app.iap_keys();
        let key = keys
            .first()
            .ok_or_else(|| Error::Key("no IAP key".into()))?;
        crate::jwt::sign_raw(header, claims, |m| key.sign(m))
    }

    /// The default service account's email (the instance's, and the key file's).
    pub fn service_account_email(&self) -> String {
        self.app.default_account().email.clone()
    }

    /// The default service account's numeric id (the `sub` of its tokens).
    pub fn service_account_id(&self) -> String {
        self.app.default_account().unique_id.clone()
    }

    /// A `service_account` key file (JSON) whose `token_uri` points here.
    pub fn service_account_json(&self) -> String {
        let sa = self.app.default_account();
        let body = json!({
            "type": "service_account",
            "project_id": PROJECT_ID,
            "private_key_id": sa.key.kid(),
            "private_key": sa.key.pkcs8_pem(),
            "client_email": sa.email,
            "client_id": sa.unique_id,
            "auth_uri": "https://accounts.google.com/o/oauth2/auth",
            "token_uri": self.token_uri(),
            "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
            "client_x509_cert_url": format!(
                "https://www.googleapis.com/robot/v1/metadata/x509/{}",
                sa.email.replace('@', "%40")
            ),
            "universe_domain": "googleapis.com",
        });
        // A Value always serializes; pretty output is what gcloud writes.
        serde_json::to_string_pretty(&body).unwrap_or_else(|_| body.to_string())
    }

    /// How many requests each endpoint has received so far.
    pub fn counters(&self) -> Counters {
        self.app.control.counters()
    }

    /// Makes new Google and IAP signing keys current; the key sets then list
    /// each new key and the one it replaced (older ones are dropped).
    pub fn rotate_keys(&self) {
        if let Err(e) = self.app.rotate() {
            tracing::error!(error = %e, "key rotation failed; keeping the current key");
        }
    }

    /// Makes the next `times` requests to `endpoint` answer `fault`. Faults
    /// queue: a second call takes effect after the first is used up.
    pub fn inject_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        self.app.control.inject_fault(endpoint, fault, times);
    }

    /// Holds requests to `endpoint` (counted on arrival) until the returned
    /// [`Hold`] is released or dropped.
    pub fn hold(&self, endpoint: Endpoint) -> Hold {
        self.app.control.hold(endpoint)
    }

    /// Makes every later answer of `endpoint` wait `delay` after it
    /// arrives (and after any hold), as a slow Google endpoint would;
    /// `Duration::ZERO` ends it. Requests are counted on arrival.
    pub fn set_delay(&self, endpoint: Endpoint, delay: Duration) {
        self.app.control.set_delay(endpoint, delay);
    }

    /// Stops serving, releasing held and hanging requests, and waits (a few
    /// seconds at most) for the server to finish.
    pub async fn shutdown(mut self) {
        self.app.control.begin_shutdown();
        if let Some(mut task) = self.task.take()
            && tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
                .await
                .is_err()
        {
            task.abort();
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        // The signal also closes open connections gracefully, even once the
        // accept loop is aborted.
        self.app.control.begin_shutdown();
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        options.mode(0o600);
        let mut file = options.open(path)?;
        // `mode` applies only to new files; tighten an existing one too.
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)
    }
    #[cfg(not(unix))]
    {
        options.open(path)?.write_all(bytes)
    }
}
