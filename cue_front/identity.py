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

from flask import Flask, Request, Response, current_app, g, has_request_context, request
from itsdangerous import BadSignature, Signer

from .errors import ConfigurationError

try:  # Flask-Login is the shop's choice, not a dependency: used when the app has a LoginManager
    import flask_login
except ImportError:  # pragma: no cover - exercised where Flask-Login is not installed
    flask_login = None
from .state import DataCueState, get_state

__all__ = [
    "UNSET",
    "current_anonymous_id",
    "current_profile",
    "current_user_id",
    "end_visitor",
    "finish_response",
    "has_consent",
    "mark_personal",
]

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

    ``None`` outside a request (jobs and scripts pass identities explicitly), and for a
    visitor who has not consented (no cookie is set for them).
    """
    if not has_request_context() or not has_consent():
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
    state = state or get_state()
    loader = state.extension.user_id_loader_callback
    user_id = loader() if loader is not None else _flask_login_user_id(state.app)
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
    signers = _signers(state)
    # After end_visitor() the browser's cookie names the visitor who has gone.
    ended = request_namespace.get("_datacue_visitor_ended", False)
    cookie = None if ended else current_request.cookies.get(state.anonymous_cookie)
    anonymous_id = None
    for age, signer in enumerate(signers if cookie else ()):
        anonymous_id = signer.unsign(cookie)  # type: ignore[arg-type]
        if anonymous_id is not None:
            if age:  # signed with a key in SECRET_KEY_FALLBACKS: signed again with the current one
                request_namespace["_datacue_new_anonymous_cookie"] = signers[0].sign(anonymous_id)
            break
    if anonymous_id is None:  # no cookie, or a forged or tampered one
        anonymous_id = str(uuid.uuid4())
        request_namespace["_datacue_new_anonymous_cookie"] = signers[0].sign(anonymous_id)
    request_namespace["_datacue_anonymous_id"] = anonymous_id
    return anonymous_id


def has_consent(state: DataCueState | None = None) -> bool:
    """Whether this visitor may be tracked: the shop's ``@datacue.consent_loader`` (default: yes),
    and no ``Sec-GPC: 1`` header when ``DATACUE_HONOUR_GPC`` is on. ``True`` outside a request."""
    if not has_request_context():
        return True
    request_namespace = vars(g._get_current_object())
    cached: bool | None = request_namespace.get("_datacue_consent")
    if cached is None:
        state = state or get_state()
        if state.honour_gpc and request.headers.get("Sec-GPC", "").strip() == "1":
            cached = False
        else:
            loader = state.extension.consent_loader_callback
            cached = True if loader is None else bool(loader())
        request_namespace["_datacue_consent"] = cached
    return cached


def end_visitor() -> None:
    """End this browser's visitor (at logout): the next event, page or widget is a new visitor's.

    The anonymous id is replaced (its cookie rewritten on this response, or deleted when
    the visitor has not consented), and the identity this request had cached is forgotten,
    along with the recommendations kept for the visitor who is leaving.
    """
    if not has_request_context():
        return
    state = get_state()
    request_namespace = vars(g._get_current_object())
    leaving = [request_namespace.get("_datacue_user_id"), request_namespace.get("_datacue_anonymous_id")]
    cookie = request.cookies.get(state.anonymous_cookie)
    if cookie is not None:
        leaving.extend(signer.unsign(cookie) for signer in _signers(state))
    state.recommendation_cache.forget(*(visitor for visitor in leaving if isinstance(visitor, str)))
    for name in (
        "_datacue_user_id",
        "_datacue_profile",
        "_datacue_anonymous_id",
        "_datacue_new_anonymous_cookie",
        "_datacue_recommendations",
        "_datacue_ssr_sent",
        "_datacue_consent",  # the next visitor's own answer, not the last one's
    ):
        request_namespace.pop(name, None)
    request_namespace["_datacue_visitor_ended"] = True


def _flask_login_user_id(app: Flask) -> str | None:
    """The default user id: Flask-Login's ``current_user.get_id()``, when the app uses Flask-Login."""
    # vars(), not hasattr(): a missing attribute costs hasattr an exception, on every track().
    if flask_login is None or "login_manager" not in vars(app):
        return None
    user = flask_login.current_user
    if not user or not user.is_authenticated:
        return None
    user_id: str | None = user.get_id()
    return user_id


class _AnonymousIdSigner:
    """Signs and verifies anonymous ids exactly as ``Signer(secret_key, salt=_SALT)`` does, faster.

    Verifying runs on every request of a returning visitor, and a plain ``Signer``
    derives its key again (a SHA-1 of salt and secret) each time, then computes the
    HMAC through a Python digest callable, which takes ``hmac``'s pure-Python path.
    Here the key is derived once by that very ``Signer`` and handed to a second one
    with ``key_derivation="none"`` and ``hashlib.sha1`` itself (OpenSSL's HMAC): the
    same signatures, with itsdangerous's own parsing and constant-time comparison.
    Cookies made before stay valid; the tests compare the two signers.

    A cookie that verified is remembered (up to :data:`VERIFIED_COOKIES` of them): a returning
    visitor's next request finds it in a dict instead of parsing and verifying it again,
    which took 8 of the 14 us that identity cost each ``track()`` (benchmarks/REPORT.md).
    Only cookies this signer verified are kept, so a forged one is never found there.
    """

    def __init__(self, secret_key: str | bytes) -> None:
        derived = Signer(secret_key, salt=_SALT).derive_key()
        self.signer = Signer(derived, salt=_SALT, key_derivation="none", digest_method=hashlib.sha1)
        self._verified: dict[str, str] = {}

    def sign(self, anonymous_id: str) -> str:
        return self.signer.sign(anonymous_id).decode("ascii")

    def unsign(self, cookie: str) -> str | None:
        """The anonymous id in ``cookie``; ``None`` when it is forged, tampered or malformed."""
        known = self._verified.get(cookie)
        if known is not None:
            return known
        try:
            anonymous_id = self.signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            return None
        if len(self._verified) >= VERIFIED_COOKIES:
            self._verified = {}  # a new dict: a thread reading the old one meanwhile is unharmed
        self._verified[cookie] = anonymous_id
        return anonymous_id


#: Verified anonymous-id cookies remembered per secret key (about 150 bytes each).
VERIFIED_COOKIES = 20_000


def _signers(state: DataCueState) -> list[_AnonymousIdSigner]:
    """The signer of the current ``SECRET_KEY``, then one for each of ``SECRET_KEY_FALLBACKS``
    (newest last, as Flask lists them): cookies signed before a key rotation stay valid."""
    config = state.app.config
    secret_key = config.get("SECRET_KEY")
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or ()
    known_key, known_fallbacks, signers = state.anonymous_id_signers
    if signers and known_key is secret_key and known_fallbacks is fallbacks:
        return signers  # on every track(): two identity tests instead of building the list
    if not secret_key:
        raise ConfigurationError(
            "cue-front signs anonymous visitor ids with the app's SECRET_KEY, which is not set"
        )
    signers = [_signer_for(key) for key in (secret_key, *reversed(fallbacks))]
    state.anonymous_id_signers = (secret_key, fallbacks, signers)
    return signers


@functools.lru_cache(maxsize=8)
def _signer_for(secret_key: str | bytes) -> _AnonymousIdSigner:
    """The signer for one ``SECRET_KEY``, built once rather than on every request.

    Keyed by the secret itself: an app whose ``SECRET_KEY`` changes gets a new one.
    """
    return _AnonymousIdSigner(secret_key)


def mark_personal() -> None:
    """This response's body depends on who the visitor is (their recommendations, their ids):
    it is sent ``Cache-Control: private`` and ``Vary: Cookie`` (see :func:`finish_response`)."""
    if has_request_context():
        g._datacue_personal = True


def finish_response(response: Response) -> Response:
    """``after_request``: the anonymous id cookie if this request created one (or its deletion,
    when the visitor was ended and no new one was needed), and the caching headers of a
    personal response, so that no shared cache serves one visitor's page to the next."""
    cookie = g.get("_datacue_new_anonymous_cookie")
    ended = g.get("_datacue_visitor_ended")
    # A response that sets (or deletes) the visitor's id is theirs alone too: cached and shared,
    # it would give everyone one visitor's id.
    if g.get("_datacue_personal") or cookie is not None or ended:
        response.vary.add("Cookie")
        if "Cache-Control" not in response.headers:  # the shop's own choice stands
            response.cache_control.private = True
    if cookie is None and not ended:
        return response
    config = current_app.config
    # The app's https settings count too: behind a proxy that ends TLS, the request itself
    # may look like plain http. (A deletion carries the same flags, or a browser ignores it.)
    attributes: dict[str, Any] = {
        "secure": bool(
            request.is_secure
            or config.get("SESSION_COOKIE_SECURE")
            or config.get("PREFERRED_URL_SCHEME") == "https"
        ),
        "httponly": True,
        "samesite": "Lax",
    }
    name = get_state().anonymous_cookie
    if cookie is not None:
        response.set_cookie(name, cookie, max_age=ANONYMOUS_COOKIE_MAX_AGE, **attributes)
    else:
        response.delete_cookie(name, **attributes)
    return response
