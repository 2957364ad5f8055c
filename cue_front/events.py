"""Storefront events sent by the server on behalf of the browser: ``track()``.

An event is wrapped in its envelope (the visitor's identity, the request's context,
the time of the call), validated, encoded and handed to delivery: the durable outbox,
sent at once (``"sync"``), or dropped after validation (``"off"``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urljoin

from flask import current_app, g, has_request_context, request

from . import schema, signals
from .encoding import check_body_size, encode_json
from .errors import DataCueError, FieldError, PayloadTooLargeError, ValidationError
from .identity import UNSET, has_consent, request_anonymous_id, request_profile, request_user_id
from .links import as_browsers_read, is_path_on_this_site, origin
from .outbox import Droppable, OutboxFullError
from .state import DataCueState, get_state
from .transport import Reply

logger = logging.getLogger(__name__)

__all__ = ["build_envelope", "check_own_links", "deliver", "send_event_now", "track", "visitor_key"]


def visitor_key(visitor: str) -> str:
    """The ordering key of a visitor's events (by user id, else anonymous id): never reordered.

    An event that carries both ids also shares its anonymous id's key (see :func:`deliver`), so
    the events a browser sent before its login stay ahead of the ones after it.
    """
    return f"visitor:{visitor}"


def build_envelope(
    event: Mapping[str, Any],
    *,
    user_id: Any = UNSET,
    anonymous_id: Any = UNSET,
    profile: Any = UNSET,
    context: Mapping[str, Any] | None = None,
    timestamp: datetime | str | None = None,
) -> dict[str, Any]:
    """The validated events-API body for ``event``; raises :class:`ValidationError`."""
    return _envelope(None, event, user_id, anonymous_id, profile, context, timestamp)


def _envelope(
    state: DataCueState | None,
    event: Mapping[str, Any],
    user_id: Any,
    anonymous_id: Any,
    profile: Any,
    context: Mapping[str, Any] | None,
    timestamp: datetime | str | None,
) -> dict[str, Any]:
    """:func:`build_envelope`, for a caller that holds the app's state already (``track()``)."""
    if has_request_context():
        # g and request are context-local lookups: made once here, not once per
        # identity (this runs on every track()).
        request_namespace = vars(g._get_current_object())
        current_request = request._get_current_object()  # type: ignore[attr-defined]
        if user_id is UNSET or anonymous_id is UNSET or profile is UNSET:
            state = state or get_state()
            if user_id is UNSET:
                # A login changes who is logged in during this very request: ask the loader again.
                user_id = request_user_id(state, request_namespace, fresh=event.get("type") == "login")
            if anonymous_id is UNSET:
                anonymous_id = request_anonymous_id(state, request_namespace, current_request)
            if profile is UNSET:
                profile = request_profile(state, request_namespace)
        if context is None:
            environ = current_request.environ
            context = {}
            if environ.get("REMOTE_ADDR"):  # ProxyFix, when used, has already rewritten it
                context["ip"] = environ["REMOTE_ADDR"]
            if environ.get("HTTP_USER_AGENT"):
                context["user_agent"] = environ["HTTP_USER_AGENT"]
    else:  # jobs and scripts: only what the caller passed
        if user_id is UNSET:
            user_id = None
        if anonymous_id is UNSET:
            anonymous_id = None
        if profile is UNSET:
            profile = None
    user: dict[str, Any] = {}
    if user_id is not None:
        user["user_id"] = user_id
    if anonymous_id is not None:
        user["anonymous_id"] = anonymous_id
    if profile is not None:
        user["profile"] = profile
    envelope: dict[str, Any] = {"user": user, "event": event}
    if context:
        envelope["context"] = context
    # Formatted here, in normal form already, so validation takes its fast path.
    envelope["timestamp"] = schema.timestamp_now() if timestamp is None else timestamp
    validated: dict[str, Any] = schema.validate(schema.EVENT_ENVELOPE, envelope)
    cart_link = validated["event"].get("cart_link")
    if cart_link is not None:
        validated = _with_own_cart_link(validated, cart_link, state)
    return validated


def _with_own_cart_link(
    envelope: dict[str, Any], cart_link: str, state: DataCueState | None
) -> dict[str, Any]:
    """The envelope with a relative ``cart_link`` made absolute on the shop's own address.

    The shop's address is ``DATACUE_SHOP_URL`` (or ``SERVER_NAME``), never a request's ``Host``
    header, which a client chooses; with neither set, a relative link stays relative.
    """
    shop_url = (state or get_state()).shop_url
    if shop_url is None or not is_path_on_this_site(cart_link):
        return envelope
    scheme, netloc = origin(shop_url) or ("", "")
    own_link = urljoin(f"{scheme}://{netloc}/", as_browsers_read(cart_link))
    return {**envelope, "event": {**envelope["event"], "cart_link": own_link}}


def check_own_links(envelope: Mapping[str, Any]) -> None:
    """Refuse an event whose ``cart_link`` leads off the shop's site (the first-party endpoint:
    DataCue puts the link in emails to the shopper). The site is ``DATACUE_SHOP_URL`` (or
    ``SERVER_NAME``), else the one the request came to; a relative link is the shop's."""
    cart_link = envelope["event"].get("cart_link")
    if cart_link is None or is_path_on_this_site(cart_link):
        return
    own_site = get_state().shop_url or request.host_url
    found = origin(cart_link)
    if found is None or found != origin(own_site):
        raise ValidationError([FieldError("event.cart_link", f"must link to this shop ({own_site})")])


def track(
    event: Mapping[str, Any],
    *,
    user_id: Any = UNSET,
    anonymous_id: Any = UNSET,
    profile: Any = UNSET,
    context: Mapping[str, Any] | None = None,
    timestamp: datetime | str | None = None,
) -> bool:
    """Send a storefront event to DataCue on behalf of the visitor; ``True`` once it is accepted.

    Accepted means durably queued (``"outbox"``), sent (``"sync"``) or validated
    (``"off"``). Invalid events (and events over DataCue's 5 MiB) raise in strict mode;
    otherwise they are logged with their field paths and ``False`` is returned. Without
    the visitor's consent nothing is sent and ``False`` is returned.
    ``user_id=None`` / ``anonymous_id=None`` explicitly leave an identity out.
    """
    state = get_state()
    if not has_consent(state):
        return False  # nothing is sent, queued or set in a cookie for this visitor
    try:
        envelope = _envelope(state, event, user_id, anonymous_id, profile, context, timestamp)
        return deliver(state, envelope)  # encoding there refuses text that is not valid Unicode
    except (ValidationError, PayloadTooLargeError) as error:
        if state.strict:
            raise
        logger.error("datacue: event not sent: %s", error)
        return False


def deliver(state: DataCueState, envelope: Mapping[str, Any], body: bytes | None = None) -> bool:
    """Hand a built envelope (and its encoding, if made already) to delivery; ``True`` once accepted.

    An event DataCue would refuse for its size raises :class:`PayloadTooLargeError` at once,
    whatever the delivery mode: it would only become a dead letter later.
    """
    if body is None:
        body = encode_json(envelope)
    check_body_size(body)
    user = envelope["user"]
    # Whatever this visitor just did may change what DataCue recommends to them.
    state.recommendation_cache.forget(user.get("user_id"), user.get("anonymous_id"))
    if state.delivery_mode == "off":
        return True
    if state.delivery_mode == "sync":
        state.client.transport.send_event(body)
        return True
    try:
        event = envelope["event"]
        user_id, anonymous_id = user.get("user_id"), user.get("anonymous_id")
        if user_id and anonymous_id:
            key, shared_key = visitor_key(user_id), visitor_key(anonymous_id)
        else:
            key, shared_key = visitor_key(user_id or anonymous_id), None
        row_id = state.outbox.put_event(
            body, key, droppable=_droppable(event), shared_key=shared_key
        )
    except OutboxFullError as error:
        refused_since_last_log = state.count_refusal()
        if refused_since_last_log:  # loud, but one line a minute, not one per event in an outage
            logger.error(
                "datacue: outbox full, %d event(s) refused since the last report (now %s): %s",
                refused_since_last_log,
                envelope["event"].get("type"),
                error,
            )
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.outbox_full.send(app, kind="event", error=str(error))
        return False
    state.delivery.notify()
    if signals.queued.receivers:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        signals.queued.send(app, row_id=row_id, kind="event", method="POST", path="")
    return True


#: How far each kind of event may go when its visitor holds more than their share of the outbox.
_DROPPABLE_TYPES = {"pageview": Droppable.YES, "search": Droppable.YES, "click": Droppable.YES,
                    "wishlist": Droppable.YES, "cart": Droppable.SUPERSEDED}


def _droppable(event: Mapping[str, Any]) -> Droppable:
    return _DROPPABLE_TYPES.get(event.get("type"), Droppable.NEVER)  # type: ignore[arg-type]


def send_event_now(envelope: Mapping[str, Any], *, timeout: float, body: bytes | None = None) -> Reply:
    """POST a built envelope at once, one attempt within ``timeout`` seconds (recommendations).

    Raises a :class:`DataCueError` on any failure; the caller decides the fallback.
    """
    state = get_state()
    if body is None:
        body = encode_json(envelope)
    if state.delivery_mode == "off":
        raise DataCueError("DATACUE_DELIVERY is 'off': nothing is sent to DataCue")
    return state.quick_transport(timeout).send_event(body, retry=False)
