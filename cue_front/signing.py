"""DataCue's request signatures: the one place that knows how a request is signed and checked.

REST calls authenticate with HTTP Basic: the username is the API key and the
password is ``hex(HMAC-SHA256(secret, body))`` over the exact body bytes sent
(the empty string for GET and body-less DELETE). Events from browsers send the
API key with an empty password. ``transport`` signs; the emulator verifies.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from typing import NamedTuple

__all__ = [
    "BasicCredentials",
    "events_authorization",
    "parse_basic",
    "rest_authorization",
    "sign",
    "verify",
]


def _bytes(text: str | bytes) -> bytes:
    return text.encode("utf-8") if isinstance(text, str) else text


def sign(body: bytes, secret: str | bytes) -> str:
    """The hex HMAC-SHA256 of ``body`` keyed with the API secret."""
    return hmac.new(_bytes(secret), body, hashlib.sha256).hexdigest()


def _basic(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def rest_authorization(api_key: str, secret: str | bytes, body: bytes) -> str:
    """The ``Authorization`` header value of a REST call whose body is ``body``."""
    return _basic(api_key, sign(body, secret))


def events_authorization(api_key: str) -> str:
    """The ``Authorization`` header value of an events API call: the key, no password."""
    return _basic(api_key, "")


class BasicCredentials(NamedTuple):
    username: str
    password: str


def parse_basic(header: str | None) -> BasicCredentials | None:
    """Decode a ``Basic`` Authorization header; ``None`` if it is absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    username, colon, password = decoded.partition(":")
    if not colon:
        return None
    return BasicCredentials(username, password)


def verify(body: bytes, secret: str | bytes, signature: str) -> bool:
    """True when ``signature`` is the body's signature, compared in constant time."""
    return hmac.compare_digest(sign(body, secret).encode("ascii"), signature.encode("utf-8"))
