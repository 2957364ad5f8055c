"""The first-party events endpoint: ``POST <DATACUE_URL_PREFIX>/events`` from the shop's own pages.

The browser posts one documented storefront event; the server decides everything the
browser could lie about (identity, context, time), checks origin, size and schema, and
forwards it (docs/architecture.md, "The events endpoint").
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

from flask import Response, jsonify, request
from werkzeug.exceptions import (
    BadRequest,
    Forbidden,
    HTTPException,
    RequestEntityTooLarge,
    TooManyRequests,
    UnsupportedMediaType,
)

from . import events
from .encoding import encode_json
from .errors import DataCueError, ValidationError
from .identity import current_anonymous_id, current_user_id, has_consent, mark_personal
from .links import origin
from .schema import ANSWERED_EVENTS
from .state import DataCueState, get_state

logger = logging.getLogger(__name__)

__all__ = ["EventRejected", "receive_event"]

#: Members of the posted body that the server fills in itself; the browser's are ignored.
SERVER_OWNED_MEMBERS = frozenset({"user", "context", "timestamp"})


class EventRejected(BadRequest):
    """400: the posted body is not one documented storefront event; the message says why."""


class CrossOriginEvent(Forbidden):
    """403: the event was posted from another site's page."""


class EventTooLarge(RequestEntityTooLarge):
    """413: the body is over ``DATACUE_PROXY_MAX_BYTES``."""


class NotJSON(UnsupportedMediaType):
    """415: the body is not ``application/json``."""


class TooManyEvents(TooManyRequests):
    """429: this visitor or IP sent more events than its rate limit; ``Retry-After`` says when."""


def _check_same_origin() -> None:
    claimed = request.headers.get("Origin") or request.headers.get("Referer")
    # The usual case, an Origin exactly this site's, without building and parsing two URLs
    # (profiled: a seventh of the view's own time); anything else is judged below, as before.
    # request.scheme and request.host honour ProxyFix's X-Forwarded-Proto/Host.
    if claimed is not None and claimed.lower() == f"{request.scheme}://{request.host}".lower():
        return
    # request.host_url honours ProxyFix's X-Forwarded-Proto/Host when the shop uses it.
    own = origin(request.host_url, as_written=True)
    if not claimed or claimed == "null" or own is None or origin(claimed, as_written=True) != own:
        raise CrossOriginEvent("events are only accepted from this site's own pages")


def _read_body(limit: int) -> Any:
    if request.mimetype != "application/json":
        raise NotJSON("send the event as application/json")
    if request.content_length is not None and request.content_length > limit:
        raise EventTooLarge(f"the body is over {limit} bytes")
    try:
        raw = request.stream.read(limit + 1)
    except (OSError, ValueError) as error:  # a malformed chunked body ("zz" for a chunk size)
        raise EventRejected(f"malformed body: {error}") from None
    if len(raw) > limit:
        raise EventTooLarge(f"the body is over {limit} bytes")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as error:
        raise EventRejected(f"malformed JSON: {error}") from None
    except RecursionError:  # [[[[...]]]]: fits in the size cap, too deep for the parser
        raise EventRejected("malformed JSON: nested too deeply") from None


def _event_from(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise EventRejected('expected a JSON object like {"event": {...}}')
    ignored = SERVER_OWNED_MEMBERS.intersection(body)
    if ignored:
        claimed_user = body.get("user")
        if isinstance(claimed_user, dict) and claimed_user.get("user_id") is not None:
            logger.warning(
                "datacue: a browser claimed user_id %r; ignored, identity is the server's",
                str(claimed_user.get("user_id"))[:64],
            )
    unknown = set(body) - SERVER_OWNED_MEMBERS - {"event"}
    if unknown:
        raise EventRejected(f"unknown member(s): {', '.join(sorted(map(str, unknown)))}")
    if "event" not in body:
        raise EventRejected("event: required field missing")
    event = body["event"]
    if not isinstance(event, dict):
        raise EventRejected("event: expected an object")
    return event


def _check_rate(state: DataCueState, scope: str, key: str) -> None:
    wait = state.rate_limits.hit(scope, key)
    if wait is not None:
        raise TooManyEvents(
            f"too many events from this {scope}: at most {state.rate_limits.describe(scope)}",
            retry_after=math.ceil(wait),
        )


def receive_event() -> Response:
    """The view behind ``POST <prefix>/events``."""
    state = get_state()
    _check_same_origin()
    _check_rate(state, "ip", request.remote_addr or "unknown")
    event = _event_from(_read_body(state.proxy_max_bytes))
    if not has_consent(state):
        return Response(status=204)  # taken, and forwarded nowhere: the visitor said no
    _check_rate(state, "visitor", current_user_id(state) or current_anonymous_id() or "")
    try:
        envelope = events.build_envelope(event)
        events.check_own_links(envelope)
        body = encode_json(envelope)  # refuses text that is not valid Unicode, before anything is sent
    except ValidationError as error:
        # Field paths are named from the envelope: report them as the browser sent them.
        raise EventRejected(str(error)) from None
    if (event.get("type"), event.get("subtype")) in ANSWERED_EVENTS and state.delivery_mode != "off":
        try:
            reply = events.send_event_now(envelope, timeout=state.proxy_timeout)
        except DataCueError as error:
            logger.warning("datacue: recommendations unavailable, event queued instead: %s", error)
        else:
            if reply.status == 200 and reply.body:
                mark_personal()  # this visitor's recommendations
                return Response(reply.body, status=200, mimetype="application/json")
            return Response(status=204)
    if not events.deliver(state, envelope, body):
        response = jsonify(error="the event could not be queued")
        response.status_code = 503
        return response
    return Response(status=204)


def error_as_json(error: HTTPException) -> Response:
    """The endpoint's errors, as JSON a script can read: ``{"error": "..."}``."""
    response = jsonify(error=error.description)
    response.status_code = error.code or 400
    for name, value in error.get_headers():  # Retry-After on a 429, Allow on a 405
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
