"""Warm verification throughput of google-auth, for docs/BENCHMARKS.md (bench/).

Works for Google RS256 tokens with the PEM certificates and for IAP ES256
assertions with IAP's PEM key map (`/iap/verify/public_key`).

Two ways a Python service verifies: `id_token.verify_token` (fetches the certs
on every call, as documented) and `jwt.decode` with certs fetched once.
Prints one JSON line: verifications per second and error counts.
"""

import json
import sys
import time

import google.auth.jwt
import google.auth.transport.requests
import google.oauth2.id_token
import requests

token, audience, certs_url, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
request = google.auth.transport.requests.Request()


def rate(fn):
    done = errors = 0
    end = time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < end:
        try:
            fn()
            done += 1
        except Exception:  # counted, reported
            errors += 1
    return {"per_s": done / (time.perf_counter() - start), "errors": errors}


certs = requests.get(certs_url, timeout=10).json()
out = {
    "verify_token": rate(
        lambda: google.oauth2.id_token.verify_token(
            token, request, audience=audience, certs_url=certs_url
        )
    ),
    "jwt_decode_cached_certs": rate(
        lambda: google.auth.jwt.decode(token, certs=certs, audience=audience)
    ),
}
print(json.dumps(out))
