"""Who the visitor is, as the server decides it: user id, anonymous id and profile.

- ``user_id`` comes from the shop's ``@datacue.user_id_loader``, ``profile`` from
  an optional ``@datacue.profile_loader``; each is called at most once per
  request and cached on ``g``.
- An anonymous visitor gets a random id kept in a cookie signed with
  itsdangerous (keyed by the app's ``SECRET_KEY``): ``SameSite=Lax``,
  ``HttpOnly``, ``Secure`` on https, set on the response of the first request
  that needs it. A forged or tampered cookie is ignored and replaced.

The browser is never asked: whatever it claims about identity is ignored.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, Response, current_app, g, has_request_context, request
from itsdangerous import BadSignature, Signer

from .errors import ConfigurationError
from .extension import DataCueState, get_state

__all__ = ["current_anonymous_id", "current_profile", "current_user_id"]

_UNSET: Any = object()
_SALT = "cue-front.anonymous-id"
#: How long a browser keeps its anonymous id: a year, like DataCue's own scripts.
ANONYMOUS_COOKIE_MAX_AGE = 365 * 24 * 3600


def current_user_id(state: DataCueState | None = None, *, fresh: bool = False) -> str | None:
    """The logged-in user's id from the shop's loader, or ``None`` when anonymous.

    ``fresh=True`` asks the loader again (after a login in this same request).
    """
    if not has_request_context():
        return None
    request_globals = g._get_current_object()
    cached = getattr(request_globals, "_datacue_user_id", _UNSET)
    if cached is not _UNSET and not fresh:
        return cached  # type: ignore[no-any-return]
    loader = (state or get_state()).extension.user_id_loader_callback
    user_id = loader() if loader is not None else None
    if user_id is not None and not isinstance(user_id, str):
        user_id = str(user_id)
    request_globals._datacue_user_id = user_id
    return user_id


def current_profile() -> Mapping[str, Any] | None:
    """The visitor's profile (``sex``, ``segment``, ``location``...) from the shop's loader."""
    if not has_request_context():
        return None
    cached = g.get("_datacue_profile", _UNSET)
    if cached is not _UNSET:
        return cached  # type: ignore[no-any-return]
    loader = get_state().extension.profile_loader_callback
    profile = loader() if loader is not None else None
    g._datacue_profile = profile
    return profile


def _signer(app: Flask) -> Signer:
    if not app.secret_key:
        raise ConfigurationError(
            "cue-front signs anonymous visitor ids with the app's SECRET_KEY, which is not set"
        )
    return Signer(app.secret_key, salt=_SALT)


def current_anonymous_id() -> str | None:
    """This browser's anonymous id: from its signed cookie, or new (and set on the response).

    ``None`` outside a request: jobs and scripts pass identities explicitly.
    """
    if not has_request_context():
        return None
    cached: str | None = g.get("_datacue_anonymous_id")
    if cached is not None:
        return cached
    state = get_state()
    signer = _signer(current_app._get_current_object())  # type: ignore[attr-defined]
    cookie = request.cookies.get(state.anonymous_cookie)
    anonymous_id = None
    if cookie:
        try:
            anonymous_id = signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            anonymous_id = None  # forged or tampered: replaced below
    if anonymous_id is None:
        anonymous_id = str(uuid.uuid4())
        g._datacue_new_anonymous_cookie = signer.sign(anonymous_id).decode("ascii")
    g._datacue_anonymous_id = anonymous_id
    return anonymous_id


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
