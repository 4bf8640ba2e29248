//! The emulated AWS side of workload identity federation: one AWS account
//! with a long-term access key (for `AWS_ACCESS_KEY_ID` and
//! `AWS_SECRET_ACCESS_KEY`), an EC2 instance in `us-east-2b` whose
//! instance profile role hands out temporary keys with a session token,
//! and the IMDSv2 session tokens handed out so far. The secrets are made at
//! start; STS (`sts_aws.rs`) knows them to check SigV4 signatures, as AWS
//! does behind Google's STS.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use crate::Error;
use crate::keys::random_hex;

/// An AWS access key and its secret, with a session token for temporary
/// keys. Secrets: never logged.
pub(crate) struct AwsKeys {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: Option<String>,
}

pub(crate) struct AwsAccount {
    /// A user's long-term key (no session token).
    pub user: AwsKeys,
    /// The instance role's temporary key.
    pub role: AwsKeys,
    /// IMDSv2 session tokens handed out, each with the second (on the
    /// emulator's clock) its TTL ends; expired ones go as new ones come.
    pub sessions: Mutex<HashMap<String, i64>>,
    /// When set, metadata `GET`s without a valid session token get 401, as
    /// on an instance with `HttpTokens=required`.
    pub imdsv2_required: AtomicBool,
}

impl AwsAccount {
    /// The instance's availability zone; its region is `us-east-2`.
    pub(crate) const ZONE: &str = "us-east-2b";
    /// The instance profile's role name.
    pub(crate) const ROLE: &str = "idtoken-emulator-role";
    /// The workload identity pool's AWS provider, an AWS-sourced file's
    /// `audience`.
    pub(crate) const AUDIENCE: &str = "//iam.googleapis.com/projects/123456789012/locations/global/workloadIdentityPools/emulator-pool/providers/emulator-aws";
    /// The subject token type of AWS-sourced files.
    pub(crate) const SUBJECT_TOKEN_TYPE: &str = "urn:ietf:params:aws:token-type:aws4_request";
    /// How long the role's keys last from each fetch (`Expiration`); EC2
    /// hands out keys for about six hours.
    pub(crate) const ROLE_LIFETIME_SECS: i64 = 6 * 3600;

    pub(crate) fn generate() -> Result<Self, Error> {
        // AWS key ids are 20 upper-case characters, AKIA for long-term
        // keys and ASIA for temporary ones.
        let key_id = |prefix: &str| -> Result<String, Error> {
            Ok(format!("{prefix}{}", random_hex(8)?.to_ascii_uppercase()))
        };
        Ok(Self {
            user: AwsKeys {
                access_key_id: key_id("AKIA")?,
                secret_access_key: random_hex(20)?,
                session_token: None,
            },
            role: AwsKeys {
                access_key_id: key_id("ASIA")?,
                secret_access_key: random_hex(20)?,
                session_token: Some(format!("IQoJb3JpZ2luX2Vj{}", random_hex(48)?)),
            },
            sessions: Mutex::new(HashMap::new()),
            imdsv2_required: AtomicBool::new(false),
        })
    }

    /// The keys whose id is `access_key_id`, if the account has them.
    pub(crate) fn keys(&self, access_key_id: &str) -> Option<&AwsKeys> {
        [&self.user, &self.role]
            .into_iter()
            .find(|k| k.access_key_id == access_key_id)
    }
}
