"""Drives google-auth's AWS external account credentials (google.auth.aws).

The file's region_url, url and imdsv2_session_token_url point at the
emulator's AWS instance metadata service and its token_url at the emulator's
STS; its service_account_impersonation_url at the emulator's IAM.
Args: MODE FILE
  MODE "access": refresh (STS exchange, then generateAccessToken) and print
  {"token": access token}; MODE "subject": print {"subject_token": ...},
  the serialized signed request, without any exchange.
"""

import json
import sys

import google.auth.transport.requests
from google.auth import aws

mode, path = sys.argv[1:3]
with open(path) as f:
    info = json.load(f)
creds = aws.Credentials.from_info(
    info, scopes=["https://www.googleapis.com/auth/cloud-platform"]
)
request = google.auth.transport.requests.Request()
if mode == "subject":
    print(json.dumps({"subject_token": creds.retrieve_subject_token(request)}))
else:
    creds.refresh(request)
    print(json.dumps({"token": creds.token}))
