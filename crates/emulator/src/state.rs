//! What the tests steer and observe: per-endpoint counters, queued faults,
//! holds and delays, and the shutdown signal that releases everything still
//! waiting.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, Serializer};
use tokio::sync::watch;

/// An endpoint family member the emulator counts, faults and holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Endpoint {
    /// Metadata ping: `GET /`, `GET /computeMetadata/v1/`, `GET /computeMetadata/v1/instance/`.
    MetadataPing,
    /// Metadata `.../service-accounts/{account}/identity` (ID tokens).
    MetadataIdentity,
    /// Metadata `.../service-accounts/{account}/email`.
    MetadataEmail,
    /// Metadata `.../service-accounts/{account}/?recursive=true`.
    MetadataServiceAccount,
    /// OAuth2 `POST /token`.
    Token,
    /// Google's JWK set, `GET /oauth2/v3/certs`.
    JwksV3,
    /// Google's PEM certificates, `GET /oauth2/v1/certs`.
    CertsV1,
    /// IAP's ES256 key set, `GET /iap/verify/public_key-jwk`.
    IapJwk,
    /// IAM Credentials `POST .../serviceAccounts/{email}:generateIdToken`.
    IamGenerateIdToken,
    /// IAM Credentials `POST .../serviceAccounts/{email}:generateAccessToken`.
    IamGenerateAccessToken,
    /// STS token exchange, `POST /v1/token`.
    Sts,
    /// The subject-token URL of URL-sourced external accounts,
    /// `GET /_emulator/subject-token`.
    SubjectToken,
    /// Metadata `.../service-accounts/{account}/token` (access tokens).
    MetadataToken,
    /// IAP's ES256 keys as a map of `kid` to PEM, `GET /iap/verify/public_key`.
    IapPem,
    /// STS's OAuth refresh grant for workforce users, `POST /v1/oauthtoken`.
    StsOauthToken,
    /// AWS instance metadata: IMDSv2 session token, `PUT /latest/api/token`.
    AwsImdsToken,
    /// AWS instance metadata: availability zone,
    /// `GET /latest/meta-data/placement/availability-zone`.
    AwsZone,
    /// AWS instance metadata: the instance profile's role name,
    /// `GET /latest/meta-data/iam/security-credentials`.
    AwsRole,
    /// AWS instance metadata: the role's temporary keys,
    /// `GET /latest/meta-data/iam/security-credentials/{role}`.
    AwsRoleCredentials,
    /// A GitHub Actions job's OIDC token request,
    /// `GET /_emulator/github/idtoken`.
    GithubIdToken,
}

impl Endpoint {
    /// Every endpoint, in counter order.
    pub const ALL: [Endpoint; 20] = [
        Endpoint::MetadataPing,
        Endpoint::MetadataIdentity,
        Endpoint::MetadataEmail,
        Endpoint::MetadataServiceAccount,
        Endpoint::Token,
        Endpoint::JwksV3,
        Endpoint::CertsV1,
        Endpoint::IapJwk,
        Endpoint::IamGenerateIdToken,
        Endpoint::IamGenerateAccessToken,
        Endpoint::Sts,
        Endpoint::SubjectToken,
        Endpoint::MetadataToken,
        Endpoint::IapPem,
        Endpoint::StsOauthToken,
        Endpoint::AwsImdsToken,
        Endpoint::AwsZone,
        Endpoint::AwsRole,
        Endpoint::AwsRoleCredentials,
        Endpoint::GithubIdToken,
    ];

    /// The endpoint named `name` ([`Endpoint::as_str`]).
    pub fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The stable snake_case name, as used in the counters JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Endpoint::MetadataPing => "metadata_ping",
            Endpoint::MetadataIdentity => "metadata_identity",
            Endpoint::MetadataEmail => "metadata_email",
            Endpoint::MetadataServiceAccount => "metadata_service_account",
            Endpoint::Token => "token",
            Endpoint::JwksV3 => "jwks_v3",
            Endpoint::CertsV1 => "certs_v1",
            Endpoint::IapJwk => "iap_jwk",
            Endpoint::IamGenerateIdToken => "iam_generate_id_token",
            Endpoint::IamGenerateAccessToken => "iam_generate_access_token",
            Endpoint::Sts => "sts",
            Endpoint::SubjectToken => "subject_token",
            Endpoint::MetadataToken => "metadata_token",
            Endpoint::IapPem => "iap_pem",
            Endpoint::StsOauthToken => "sts_oauthtoken",
            Endpoint::AwsImdsToken => "aws_imds_token",
            Endpoint::AwsZone => "aws_zone",
            Endpoint::AwsRole => "aws_role",
            Endpoint::AwsRoleCredentials => "aws_role_credentials",
            Endpoint::GithubIdToken => "github_id_token",
        }
    }

    fn index(self) -> usize {
        match self {
            Endpoint::MetadataPing => 0,
            Endpoint::MetadataIdentity => 1,
            Endpoint::MetadataEmail => 2,
            Endpoint::MetadataServiceAccount => 3,
            Endpoint::Token => 4,
            Endpoint::JwksV3 => 5,
            Endpoint::CertsV1 => 6,
            Endpoint::IapJwk => 7,
            Endpoint::IamGenerateIdToken => 8,
            Endpoint::IamGenerateAccessToken => 9,
            Endpoint::Sts => 10,
            Endpoint::SubjectToken => 11,
            Endpoint::MetadataToken => 12,
            Endpoint::IapPem => 13,
            Endpoint::StsOauthToken => 14,
            Endpoint::AwsImdsToken => 15,
            Endpoint::AwsZone => 16,
            Endpoint::AwsRole => 17,
            Endpoint::AwsRoleCredentials => 18,
            Endpoint::GithubIdToken => 19,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const N: usize = Endpoint::ALL.len();

/// A misbehaviour an endpoint shows instead of its normal answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Fault {
    /// Answer this HTTP status: a Google-shaped JSON error body, or plain text
    /// on the metadata server. A code outside 100..=999 answers 500.
    Status(u16),
    /// Answer 200 with this body, e.g. `"not-a-jwt"`.
    Body(String),
    /// Never answer (until shutdown), so client timeouts are exercised.
    Hang,
    /// Answer 200, then send the body one byte every 250 ms, for ever.
    Trickle,
    /// Answer 200 with `Content-Length: 4096`, send 64 bytes, then drop
    /// the connection.
    ResetMidBody,
    /// Answer 200 with a body of this many bytes (spaces).
    Oversized(usize),
    /// Answer `307 Temporary Redirect` with this `Location`.
    Redirect(String),
    /// Answer `status` with `Retry-After: secs`.
    RetryAfter {
        /// The status, e.g. 429 or 503.
        status: u16,
        /// The `Retry-After` value, in seconds.
        secs: u64,
    },
}

/// A snapshot of how many requests each endpoint received, rejected and
/// faulted ones included.
///
/// Serializes as a JSON object keyed by [`Endpoint::as_str`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    counts: [u64; N],
}

impl Counters {
    /// Requests received by `endpoint`.
    pub fn get(&self, endpoint: Endpoint) -> u64 {
        self.counts[endpoint.index()]
    }

    /// Requests received by all endpoints together.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }
}

impl Serialize for Counters {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(N))?;
        for e in Endpoint::ALL {
            map.serialize_entry(e.as_str(), &self.get(e))?;
        }
        map.end()
    }
}

/// Counters, faults, holds, delays and shutdown, shared by all handlers.
pub(crate) struct Control {
    counts: [AtomicU64; N],
    faults: Mutex<[VecDeque<(Fault, u32)>; N]>,
    holds: [watch::Sender<u32>; N],
    /// Microseconds each answer waits; 0 for none.
    delays: [AtomicU64; N],
    shutdown: watch::Sender<bool>,
}

impl Control {
    pub(crate) fn new() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            faults: Mutex::new(std::array::from_fn(|_| VecDeque::new())),
            holds: std::array::from_fn(|_| watch::Sender::new(0)),
            delays: std::array::from_fn(|_| AtomicU64::new(0)),
            shutdown: watch::Sender::new(false),
        }
    }

    pub(crate) fn counters(&self) -> Counters {
        Counters {
            counts: std::array::from_fn(|i| self.counts[i].load(Ordering::Relaxed)),
        }
    }

    pub(crate) fn inject_fault(&self, endpoint: Endpoint, fault: Fault, times: u32) {
        if times == 0 {
            return;
        }
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        faults[endpoint.index()].push_back((fault, times));
    }

    fn take_fault(&self, endpoint: Endpoint) -> Option<Fault> {
        let mut faults = self.faults.lock().unwrap_or_else(|e| e.into_inner());
        let queue = &mut faults[endpoint.index()];
        let (fault, left) = queue.front_mut()?;
        let fault = fault.clone();
        *left -= 1;
        if *left == 0 {
            queue.pop_front();
        }
        Some(fault)
    }

    /// Starts a hold; the count of active holds goes back down when the
    /// returned guard is dropped.
    pub(crate) fn hold(self: &Arc<Self>, endpoint: Endpoint) -> Hold {
        self.holds[endpoint.index()].send_modify(|n| *n += 1);
        Hold {
            control: Arc::clone(self),
            endpoint,
        }
    }

    pub(crate) fn set_delay(&self, endpoint: Endpoint, delay: Duration) {
        let micros = u64::try_from(delay.as_micros()).unwrap_or(u64::MAX);
        self.delays[endpoint.index()].store(micros, Ordering::Relaxed);
    }

    /// What every handler does first: count the request, wait out holds
    /// and the endpoint's delay, then take a queued fault if any. A hang is
    /// served here: it waits for shutdown and comes back as a 503, so
    /// handlers never see `Hang`.
    pub(crate) async fn arrive(&self, endpoint: Endpoint) -> Option<Fault> {
        self.counts[endpoint.index()].fetch_add(1, Ordering::Relaxed);
        let mut held = self.holds[endpoint.index()].subscribe();
        let mut down = self.shutdown.subscribe();
        let delay = Duration::from_micros(self.delays[endpoint.index()].load(Ordering::Relaxed));
        // watch::wait_for parks the task: no polling. Errors only mean the
        // sender is gone, which also ends the wait.
        tokio::select! {
            _ = async {
                let _ = held.wait_for(|n| *n == 0).await;
                tokio::time::sleep(delay).await;
            } => {}
            _ = down.wait_for(|s| *s) => {}
        }
        match self.take_fault(endpoint) {
            Some(Fault::Hang) => {
                self.shutting_down().await;
                Some(Fault::Status(503))
            }
            fault => fault,
        }
    }

    /// Resolves once shutdown has begun; what a hanging request waits for.
    pub(crate) async fn shutting_down(&self) {
        let mut down = self.shutdown.subscribe();
        let _ = down.wait_for(|s| *s).await;
    }

    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }
}

/// Keeps requests to one endpoint waiting while it lives.
///
/// Made by [`Emulator::hold`](crate::Emulator::hold). Requests are counted
/// when they arrive and answered when the last hold on their endpoint is
/// released (or dropped), or when the emulator shuts down.
#[must_use = "dropping a Hold releases it at once"]
pub struct Hold {
    control: Arc<Control>,
    endpoint: Endpoint,
}

impl Hold {
    /// Lets the waiting requests (and later ones) through.
    pub fn release(self) {
        drop(self);
    }
}

impl fmt::Debug for Hold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hold")
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        self.control.holds[self.endpoint.index()].send_modify(|n| *n = n.saturating_sub(1));
    }
}
