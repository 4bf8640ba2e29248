"""Refreshes google-auth's identity_pool credentials with an X.509 certificate source.

The external account file in GOOGLE_APPLICATION_CREDENTIALS names a
certificate configuration; google-auth builds the subject token (base64 DER
certificates, leaf first) and sends the STS exchange with the certificate
as the TLS client certificate (requests' `cert=`), trusting the emulator's
CA through REQUESTS_CA_BUNDLE; then it impersonates the target account
(generateAccessToken). Prints the access token's length and expiry.
"""

import json
import os

import google.auth.transport.requests
from google.auth import identity_pool

# Not google.auth.load_credentials_from_file: for external accounts it also
# asks Cloud Resource Manager for the project, which is not emulated.
credentials = identity_pool.Credentials.from_file(
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"],
    scopes=["https://www.googleapis.com/auth/cloud-platform"],
)
credentials.refresh(google.auth.transport.requests.Request())
print(
    json.dumps(
        {
            "type": type(credentials).__module__,
            "token_length": len(credentials.token),
            "expiry": credentials.expiry.isoformat() if credentials.expiry else None,
        }
    )
)
