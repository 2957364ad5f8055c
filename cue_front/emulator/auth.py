"""Who may call: the events API takes the API key with an empty password, REST a signed body.

Both use HTTP Basic; decoding the header and checking the HMAC belong to
:mod:`cue_front.signing`, the one place that knows how DataCue requests are
signed. This room only turns a failure into a 401 that says what is wrong.
"""

from __future__ import annotations

import hmac

from flask import request

from ..signing import BasicCredentials, parse_basic, verify
from .exchange import fail
from .state import EmulatorState

__all__ = ["authenticate_event", "authenticate_rest"]


def _credentials(expected: str) -> BasicCredentials:
    header = request.headers.get("Authorization")
    if not header:
        fail(401, f"missing Authorization header: expected Basic auth with {expected}")
    credentials = parse_basic(header)
    if credentials is None:
        scheme = header.partition(" ")[0]
        if scheme.lower() != "basic":
            fail(401, f"Authorization scheme must be Basic, got {scheme[:20]!r}")
        fail(401, f"malformed Basic credentials: expected base64 of {expected}")
    return credentials


def _known_key(credentials: BasicCredentials, state: EmulatorState) -> None:
    if not hmac.compare_digest(credentials.username.encode(), state.api_key.encode()):
        fail(401, "unknown API key")


def authenticate_event(state: EmulatorState) -> None:
    """401 unless the request carries the API key and an empty password."""
    credentials = _credentials("'api_key:' (the API key and an empty password)")
    _known_key(credentials, state)
    if credentials.password:
        fail(401, "events take the API key with an empty password; the secret signs REST calls only")


def authenticate_rest(state: EmulatorState) -> None:
    """401 unless the password is the HMAC-SHA256 of the exact body bytes with the API secret."""
    credentials = _credentials("'api_key:hex(HMAC-SHA256(api_secret, body))'")
    _known_key(credentials, state)
    body = request.get_data(cache=True)
    if not verify(body, state.api_secret, credentials.password):
        what = "the empty body" if not body else f"the {len(body)}-byte body"
        fail(
            401,
            f"bad checksum: the password is not hex(HMAC-SHA256(api_secret, body)) of {what}"
            " (sign the exact bytes sent, and the empty string for GET and body-less DELETE)",
        )
