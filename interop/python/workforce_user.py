"""Refreshes google-auth's external_account_authorized_user credentials.

The file in GOOGLE_APPLICATION_CREDENTIALS is a workforce user's (gcloud's
`--login-config` login); google-auth refreshes at its token_url with the
OAuth client as HTTP Basic. Prints the access token's length.
"""

import json
import os

import google.auth.transport.requests
from google.auth import external_account_authorized_user

credentials = external_account_authorized_user.Credentials.from_file(
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"]
)
credentials.refresh(google.auth.transport.requests.Request())
print(json.dumps({"token_length": len(credentials.token)}))
