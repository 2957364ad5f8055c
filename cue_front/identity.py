"""Who the visitor is, as the server decides it: user id, anonymous id and profile.

The user id and profile come from the shop's loaders, once per request; an anonymous
visitor's random id is kept in a signed cookie. Whatever the browser claims about
identity is ignored (docs/architecture.md, "Identity").
"""

from __future__ import annotations

import functools
import hashlib
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Request, Response, g, has_request_context, request
from itsdangerous import BadSignature, Signer

from .errors import ConfigurationError
from .state import DataCueState, get_state

__all__ = ["UNSET", "current_anonymous_id", "current_profile", "current_user_id"]

#: "Not given": the default of identity arguments (``user_id=UNSET``), so that ``None`` can
#: mean "leave it out" while the default means "ask the shop's loader".
UNSET: Any = object()
_SALT = "cue-front.anonymous-id"
#: How long a browser keeps its anonymous id: a year, like DataCue's own scripts.
ANONYMOUS_COOKIE_MAX_AGE = 365 * 24 * 3600


def current_user_id(state: DataCueState | None = None, *, fresh: bool = False) -> str | None:
    """The logged-in user's id from the shop's loader, or ``None`` when anonymous.

    ``fresh=True`` asks the loader again (after a login in this same request).
    """
    if not has_request_context():
        return None
    return request_user_id(state, vars(g._get_current_object()), fresh=fresh)


def current_profile() -> Mapping[str, Any] | None:
    """The visitor's profile (``sex``, ``segment``, ``location``...) from the shop's loader."""
    if not has_request_context():
        return None
    return request_profile(None, vars(g._get_current_object()))


def current_anonymous_id() -> str | None:
    """This browser's anonymous id: from its signed cookie, or new (and set on the response).

    ``None`` outside a request: jobs and scripts pass identities explicitly.
    """
    if not has_request_context():
        return None
    return request_anonymous_id(
        None,
        vars(g._get_current_object()),
        request._get_current_object(),  # type: ignore[attr-defined]
    )


# The request_* forms are what the current_* functions do once they know they are in a
# request, for a caller that holds the request's objects already (build_envelope, on
# every track(): each use of ``g`` or ``request`` is a context-local lookup). They take
# ``g``'s attributes as its ``__dict__``: g's own attribute methods are Python code, and
# a missing attribute costs it an exception.


def request_user_id(
    state: DataCueState | None, request_namespace: dict[str, Any], *, fresh: bool = False
) -> str | None:
    """:func:`current_user_id` in the request whose ``vars(g)`` is ``request_namespace``."""
    cached = request_namespace.get("_datacue_user_id", UNSET)
    if cached is not UNSET and not fresh:
        return cached  # type: ignore[no-any-return]
    loader = (state or get_state()).extension.user_id_loader_callback
    user_id = loader() if loader is not None else None
    if user_id is not None and not isinstance(user_id, str):
        user_id = str(user_id)
    request_namespace["_datacue_user_id"] = user_id
    return user_id


def request_profile(
    state: DataCueState | None, request_namespace: dict[str, Any]
) -> Mapping[str, Any] | None:
    """:func:`current_profile` in the request whose ``vars(g)`` is ``request_namespace``."""
    cached = request_namespace.get("_datacue_profile", UNSET)
    if cached is not UNSET:
        return cached  # type: ignore[no-any-return]
    loader = (state or get_state()).extension.profile_loader_callback
    profile = loader() if loader is not None else None
    request_namespace["_datacue_profile"] = profile
    return profile


def request_anonymous_id(
    state: DataCueState | None, request_namespace: dict[str, Any], current_request: Request
) -> str:
    """:func:`current_anonymous_id` in ``current_request``, whose ``vars(g)`` is ``request_namespace``."""
    cached: str | None = request_namespace.get("_datacue_anonymous_id")
    if cached is not None:
        return cached
    state = state or get_state()
    signer = _signer(state.app)
    cookie = current_request.cookies.get(state.anonymous_cookie)
    anonymous_id = signer.unsign(cookie) if cookie else None  # None: forged or tampered
    if anonymous_id is None:
        anonymous_id = str(uuid.uuid4())
        request_namespace["_datacue_new_anonymous_cookie"] = signer.sign(anonymous_id)
    request_namespace["_datacue_anonymous_id"] = anonymous_id
    return anonymous_id


class _AnonymousIdSigner:
    """Signs and verifies anonymous ids exactly as ``Signer(secret_key, salt=_SALT)`` does, faster.

    Verifying runs on every request of a returning visitor, and a plain ``Signer``
    derives its key again (a SHA-1 of salt and secret) each time, then computes the
    HMAC through a Python digest callable, which takes ``hmac``'s pure-Python path.
    Here the key is derived once by that very ``Signer`` and handed to a second one
    with ``key_derivation="none"`` and ``hashlib.sha1`` itself (OpenSSL's HMAC): the
    same signatures, with itsdangerous's own parsing and constant-time comparison.
    Cookies made before stay valid; the tests compare the two signers.
    """

    def __init__(self, secret_key: str | bytes) -> None:
        derived = Signer(secret_key, salt=_SALT).derive_key()
        self.signer = Signer(derived, salt=_SALT, key_derivation="none", digest_method=hashlib.sha1)

    def sign(self, anonymous_id: str) -> str:
        return self.signer.sign(anonymous_id).decode("ascii")

    def unsign(self, cookie: str) -> str | None:
        """The anonymous id in ``cookie``; ``None`` when it is forged, tampered or malformed."""
        try:
            return self.signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None


def _signer(app: Flask) -> _AnonymousIdSigner:
    if not app.secret_key:
        raise ConfigurationError(
            "cue-front signs anonymous visitor ids with the app's SECRET_KEY, which is not set"
        )
    return _signer_for(app.secret_key)


@functools.lru_cache(maxsize=8)
def _signer_for(secret_key: str | bytes) -> _AnonymousIdSigner:
    """The signer for one ``SECRET_KEY``, built once rather than on every request.

    Keyed by the secret itself: an app whose ``SECRET_KEY`` changes gets a new one.
    """
    return _AnonymousIdSigner(secret_key)


def set_anonymous_cookie(response: Response) -> Response:
    """``after_request``: send the anonymous id cookie if this request created one."""
    cookie = g.get("_datacue_new_anonymous_cookie")
    if cookie is not None:
        response.set_cookie(
            get_state().anonymous_cookie,
            cookie,
            max_age=ANONYMOUS_COOKIE_MAX_AGE,
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
    return response
