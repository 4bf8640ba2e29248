"""Refreshes the executable-sourced external account credentials in
GOOGLE_APPLICATION_CREDENTIALS with google-auth's pluggable.Credentials: the
executable's subject token, the STS exchange, then impersonation's
generateAccessToken. (`google.auth.load_credentials_from_file` would also
ask Cloud Resource Manager for the project, which the emulator is not.)
Prints the credentials' class and the access token.
"""

import json
import os

import google.auth.transport.requests
from google.auth import pluggable

creds = pluggable.Credentials.from_file(
    os.environ["GOOGLE_APPLICATION_CREDENTIALS"],
    scopes=["https://www.googleapis.com/auth/cloud-platform"],
)
creds.refresh(google.auth.transport.requests.Request())
kind = type(creds).__module__ + "." + type(creds).__name__
print(json.dumps({"class": kind, "token": creds.token}))
