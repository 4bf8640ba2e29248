"""Refreshes google-auth's compute_engine.IDTokenCredentials against the metadata identity endpoint."""

import calendar
import json
import sys

import google.auth.transport.requests
from google.auth import compute_engine

audience = sys.argv[1]
request = google.auth.transport.requests.Request()
credentials = compute_engine.IDTokenCredentials(
    request, target_audience=audience, use_metadata_identity_endpoint=True
)
credentials.refresh(request)
print(
    json.dumps(
        {
            "token": credentials.token,
            # google-auth keeps expiry as a naive UTC datetime.
            "expiry": calendar.timegm(credentials.expiry.utctimetuple()),
            "valid": credentials.valid,
            "service_account_email": credentials.service_account_email,
        }
    )
)
