"""Warm verification throughput of google-auth, for docs/BENCHMARKS.md (bench/).

Works for Google RS256 tokens with the PEM certificates and for IAP ES256
assertions with IAP's PEM key map (`/iap/verify/public_key`).

Two ways a Python service verifies: `id_token.verify_token` (fetches the certs
on every call, as documented) and `jwt.decode` with certs fetched once.
Prints one JSON line: verifications per second and error counts.

With a fifth argument `crowd`: 64 threads x 100 `verify_token` calls at once
(the crowd the Rust verifiers face), printing failures and the first reason.
"""

import json
import sys
import time

import google.auth.jwt
import google.auth.transport.requests
import google.oauth2.id_token
import requests

token, audience, certs_url, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "rate"
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


def crowd():
    import concurrent.futures

    def worker(_):
        failed, why = 0, ""
        for _ in range(100):
            try:
                google.oauth2.id_token.verify_token(
                    token, request, audience=audience, certs_url=certs_url
                )
            except Exception as e:  # counted, reported
                failed += 1
                why = why or f"{type(e).__name__}: {e}"
        return failed, why

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        results = list(pool.map(worker, range(64)))
    failed = sum(f for f, _ in results)
    why = next((w for _, w in results if w), "")
    return {"failed": failed, "of": 6400, "why": why[:200]}


if mode == "crowd":
    print(json.dumps(crowd()))
    sys.exit(0)

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
