"""Fetches an ID token with google-auth's fetch_id_token, wherever the environment points (key file or metadata server)."""

import json
import sys

import google.auth.transport.requests
import google.oauth2.id_token

audience = sys.argv[1]
request = google.auth.transport.requests.Request()
token = google.oauth2.id_token.fetch_id_token(request, audience)
print(json.dumps({"token": token}))
