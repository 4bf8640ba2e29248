//! The endpoint table: every path the emulator answers, in one place. The
//! families route their paths from it ([`routes`]), [`Emulator`]'s URL
//! methods build on it, and tests keep `docs/EMULATOR.md`'s table and the
//! router in step with it.
//!
//! [`Emulator`]: crate::Emulator

use axum::Router;
use axum::routing::MethodRouter;

use crate::state::Endpoint;

/// One endpoint of the emulator: how to call it, and what it answers like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// A stable snake_case name: for counted endpoints, the [`Endpoint`]
    /// name ([`Endpoint::as_str`]) used by the counters, `--delay` and
    /// `--fail`.
    pub name: &'static str,
    /// The family, as `docs/EMULATOR.md` groups them.
    pub family: &'static str,
    /// The HTTP method clients use.
    pub method: &'static str,
    /// The path, with `{account}` (`default` or an email) and `{email}`
    /// placeholders; the same path as at Google.
    pub path: &'static str,
    /// Other spellings of the same path that clients use.
    pub aliases: &'static [&'static str],
    /// The origin that serves `path` for real (Google's; for the AWS
    /// instance metadata family, AWS's link-local service), or `None` for
    /// the emulator's own endpoints.
    pub google: Option<&'static str>,
}

impl EndpointInfo {
    /// The counter this endpoint's requests are counted on, if any.
    pub fn counter(&self) -> Option<Endpoint> {
        Endpoint::from_name(self.name)
    }
}

const METADATA: Option<&str> = Some("http://metadata.google.internal");
const GOOGLEAPIS: Option<&str> = Some("https://www.googleapis.com");
const GSTATIC: Option<&str> = Some("https://www.gstatic.com");
const AWS_IMDS: Option<&str> = Some("http://169.254.169.254");

const fn get(
    name: &'static str,
    family: &'static str,
    path: &'static str,
    google: Option<&'static str>,
) -> EndpointInfo {
    EndpointInfo {
        name,
        family,
        method: "GET",
        path,
        aliases: &[],
        google,
    }
}

const fn post(
    name: &'static str,
    family: &'static str,
    path: &'static str,
    google: Option<&'static str>,
) -> EndpointInfo {
    EndpointInfo {
        method: "POST",
        ..get(name, family, path, google)
    }
}

pub(crate) const METADATA_PING: EndpointInfo = EndpointInfo {
    // Python pings `/`, Node probes `instance` to detect the server.
    aliases: &[
        "/",
        "/computeMetadata/v1",
        "/computeMetadata/v1/instance",
        "/computeMetadata/v1/instance/",
    ],
    ..get(
        "metadata_ping",
        "metadata ping",
        "/computeMetadata/v1/",
        METADATA,
    )
};
pub(crate) const METADATA_IDENTITY: EndpointInfo = get(
    "metadata_identity",
    "metadata identity",
    "/computeMetadata/v1/instance/service-accounts/{account}/identity",
    METADATA,
);
pub(crate) const METADATA_EMAIL: EndpointInfo = get(
    "metadata_email",
    "metadata email",
    "/computeMetadata/v1/instance/service-accounts/{account}/email",
    METADATA,
);
pub(crate) const METADATA_SERVICE_ACCOUNT: EndpointInfo = EndpointInfo {
    aliases: &["/computeMetadata/v1/instance/service-accounts/{account}"],
    ..get(
        "metadata_service_account",
        "metadata account",
        "/computeMetadata/v1/instance/service-accounts/{account}/",
        METADATA,
    )
};
pub(crate) const METADATA_TOKEN: EndpointInfo = get(
    "metadata_token",
    "metadata access token",
    "/computeMetadata/v1/instance/service-accounts/{account}/token",
    METADATA,
);
pub(crate) const PROJECT_ID: EndpointInfo = get(
    "project_id",
    "project",
    "/computeMetadata/v1/project/project-id",
    METADATA,
);
pub(crate) const NUMERIC_PROJECT_ID: EndpointInfo = get(
    "numeric_project_id",
    "project",
    "/computeMetadata/v1/project/numeric-project-id",
    METADATA,
);
pub(crate) const TOKEN: EndpointInfo = post(
    "token",
    "OAuth2 token",
    "/token",
    Some("https://oauth2.googleapis.com"),
);
pub(crate) const IAM_GENERATE_ID_TOKEN: EndpointInfo = post(
    "iam_generate_id_token",
    "IAM Credentials",
    "/v1/projects/-/serviceAccounts/{email}:generateIdToken",
    Some("https://iamcredentials.googleapis.com"),
);
pub(crate) const IAM_GENERATE_ACCESS_TOKEN: EndpointInfo = post(
    "iam_generate_access_token",
    "IAM Credentials",
    "/v1/projects/-/serviceAccounts/{email}:generateAccessToken",
    Some("https://iamcredentials.googleapis.com"),
);
pub(crate) const STS: EndpointInfo = post(
    "sts",
    "STS",
    "/v1/token",
    Some("https://sts.googleapis.com"),
);
pub(crate) const STS_OAUTHTOKEN: EndpointInfo = EndpointInfo {
    // gcloud writes `/v1/oauthtoken`; Python's docs spell it `/v1/oauth/token`.
    aliases: &["/v1/oauth/token"],
    ..post(
        "sts_oauthtoken",
        "STS",
        "/v1/oauthtoken",
        Some("https://sts.googleapis.com"),
    )
};
pub(crate) const SUBJECT_TOKEN: EndpointInfo = get(
    "subject_token",
    "subject token URL",
    "/_emulator/subject-token",
    None,
);
pub(crate) const GITHUB_ID_TOKEN: EndpointInfo = get(
    "github_id_token",
    "GitHub Actions OIDC",
    "/_emulator/github/idtoken",
    None,
);
pub(crate) const AWS_IMDS_TOKEN: EndpointInfo = EndpointInfo {
    method: "PUT",
    ..get(
        "aws_imds_token",
        "AWS instance metadata",
        "/latest/api/token",
        AWS_IMDS,
    )
};
pub(crate) const AWS_ZONE: EndpointInfo = get(
    "aws_zone",
    "AWS instance metadata",
    "/latest/meta-data/placement/availability-zone",
    AWS_IMDS,
);
pub(crate) const AWS_ROLE: EndpointInfo = EndpointInfo {
    aliases: &["/latest/meta-data/iam/security-credentials/"],
    ..get(
        "aws_role",
        "AWS instance metadata",
        "/latest/meta-data/iam/security-credentials",
        AWS_IMDS,
    )
};
pub(crate) const AWS_ROLE_CREDENTIALS: EndpointInfo = get(
    "aws_role_credentials",
    "AWS instance metadata",
    "/latest/meta-data/iam/security-credentials/{role}",
    AWS_IMDS,
);
pub(crate) const JWKS_V3: EndpointInfo = get("jwks_v3", "key sets", "/oauth2/v3/certs", GOOGLEAPIS);
pub(crate) const CERTS_V1: EndpointInfo =
    get("certs_v1", "key sets", "/oauth2/v1/certs", GOOGLEAPIS);
pub(crate) const IAP_JWK: EndpointInfo = get(
    "iap_jwk",
    "IAP key sets",
    "/iap/verify/public_key-jwk",
    GSTATIC,
);
pub(crate) const IAP_PEM: EndpointInfo =
    get("iap_pem", "IAP key sets", "/iap/verify/public_key", GSTATIC);
pub(crate) const COUNTERS: EndpointInfo =
    get("counters", "test control", "/_emulator/counters", None);
pub(crate) const IAP_TOKEN: EndpointInfo =
    post("iap_token", "test control", "/_emulator/iap_token", None);

/// Every endpoint the emulator answers, in `docs/EMULATOR.md`'s order.
pub const ENDPOINTS: &[EndpointInfo] = &[
    METADATA_PING,
    METADATA_IDENTITY,
    METADATA_EMAIL,
    METADATA_SERVICE_ACCOUNT,
    METADATA_TOKEN,
    PROJECT_ID,
    NUMERIC_PROJECT_ID,
    TOKEN,
    IAM_GENERATE_ID_TOKEN,
    IAM_GENERATE_ACCESS_TOKEN,
    STS,
    STS_OAUTHTOKEN,
    SUBJECT_TOKEN,
    GITHUB_ID_TOKEN,
    AWS_IMDS_TOKEN,
    AWS_ZONE,
    AWS_ROLE,
    AWS_ROLE_CREDENTIALS,
    JWKS_V3,
    CERTS_V1,
    IAP_JWK,
    IAP_PEM,
    COUNTERS,
    IAP_TOKEN,
];

/// A router that sends each endpoint's path and aliases to its handler.
pub(crate) fn routes<S: Clone + Send + Sync + 'static>(
    handlers: impl IntoIterator<Item = (EndpointInfo, MethodRouter<S>)>,
) -> Router<S> {
    handlers
        .into_iter()
        .fold(Router::new(), |router, (info, handler)| {
            info.aliases
                .iter()
                .fold(router.route(info.path, handler.clone()), |r, alias| {
                    r.route(alias, handler.clone())
                })
        })
}
