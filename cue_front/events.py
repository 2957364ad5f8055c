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

from flask import current_app, g, has_request_context, request

from . import schema, signals
from .encoding import encode_json
from .errors import DataCueError, ValidationError
from .identity import UNSET, request_anonymous_id, request_profile, request_user_id
from .outbox import OutboxFullError
from .state import DataCueState, get_state
from .transport import Reply

logger = logging.getLogger(__name__)

__all__ = ["build_envelope", "deliver", "send_event_now", "track"]


def _visitor_key(user: Mapping[str, Any]) -> str:
    """The ordering key of a visitor's events: one visitor's events are never reordered."""
    return f"visitor:{user.get('user_id') or user.get('anonymous_id')}"


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
    if has_request_context():
        # g and request are context-local lookups: made once here, not once per
        # identity (this runs on every track()).
        request_namespace = vars(g._get_current_object())
        current_request = request._get_current_object()  # type: ignore[attr-defined]
        if user_id is UNSET or anonymous_id is UNSET or profile is UNSET:
            state = get_state()
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
    return validated


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
    (``"off"``). Invalid events raise :class:`ValidationError` in strict mode;
    otherwise they are logged with their field paths and ``False`` is returned.
    ``user_id=None`` / ``anonymous_id=None`` explicitly leave an identity out.
    """
    state = get_state()
    try:
        envelope = build_envelope(
            event,
            user_id=user_id,
            anonymous_id=anonymous_id,
            profile=profile,
            context=context,
            timestamp=timestamp,
        )
        return deliver(state, envelope)  # encoding there refuses text that is not valid Unicode
    except ValidationError as error:
        if state.strict:
            raise
        logger.error("datacue: event not sent: %s", error)
        return False


def deliver(state: DataCueState, envelope: Mapping[str, Any], body: bytes | None = None) -> bool:
    """Hand a built envelope (and its encoding, if made already) to delivery; ``True`` once accepted."""
    if body is None:
        body = encode_json(envelope)
    user = envelope["user"]
    # Whatever this visitor just did may change what DataCue recommends to them.
    state.recommendation_cache.forget(user.get("user_id"), user.get("anonymous_id"))
    if state.delivery_mode == "off":
        return True
    if state.delivery_mode == "sync":
        state.client.transport.send_event(body)
        return True
    try:
        row_id = state.outbox.put_event(body, _visitor_key(user))
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
