"""Mints an ID token with google-auth's impersonated_credentials.IDTokenCredentials.

Source: the service account key file in GOOGLE_APPLICATION_CREDENTIALS (its
token_uri points at the emulator). google-auth has no endpoint override for
generateIdToken, so the IAM endpoint constant is pointed at the emulator.
Args: AUDIENCE TARGET_EMAIL IAM_BASE_URL
"""

import json
import os
import sys

import google.auth.iam
import google.auth.transport.requests
from google.auth import impersonated_credentials
from google.oauth2 import service_account

audience, target, iam_base = sys.argv[1:4]
google.auth.iam._IAM_IDTOKEN_ENDPOINT = (
    iam_base + "/v1/projects/-/serviceAccounts/{}:generateIdToken"
)
source = service_account.Credentials.from_service_account_file(
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"],
    scopes=["https://www.googleapis.com/auth/cloud-platform"],
)
target_credentials = impersonated_credentials.Credentials(
    source_credentials=source,
    target_principal=target,
    target_scopes=["https://www.googleapis.com/auth/cloud-platform"],
    iam_endpoint_override=iam_base
    + "/v1/projects/-/serviceAccounts/{}:generateAccessToken".format(target),
)
id_creds = impersonated_credentials.IDTokenCredentials(
    target_credentials, target_audience=audience, include_email=True
)
id_creds.refresh(google.auth.transport.requests.Request())
print(json.dumps({"token": id_creds.token}))
