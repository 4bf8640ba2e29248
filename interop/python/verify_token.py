"""Verifies an ID token with google-auth's id_token.verify_token against a certs URL; reports claims or the error."""

import json
import sys

import google.auth.transport.requests
import google.oauth2.id_token

token, audience, certs_url = sys.argv[1:4]
request = google.auth.transport.requests.Request()
try:
    claims = google.oauth2.id_token.verify_token(
        token, request, audience=audience, certs_url=certs_url
    )
except Exception as e:  # the test asserts on which error, so report any
    print(json.dumps({"error": type(e).__name__, "message": str(e)}))
else:
    print(json.dumps({"claims": claims}))
