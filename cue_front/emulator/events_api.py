"""The events API: ``POST /`` (where DataCue's own PHP client posts) and ``POST /events``.

An event is authenticated (API key, empty password), validated with the shared
``EVENT_ENVELOPE`` spec and recorded; the answer is the guide's: 204, or 200
with recommendations for home and product pageviews and searches.

A JSON array of envelopes is a batch (the official PHP client's
``events->batchTrack``, which the guide does not document): each is validated
(errors name the item, ``[2].event.type: ...``), then all are recorded in
order, or none is. Its answer is 204: recommendations answer one page being
shown, and a batch is history being sent.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Blueprint, Response, jsonify, request

from ..schema import EVENT_ENVELOPE
from .auth import authenticate_event
from .exchange import Exchange, current_exchange, emulator_state, read_batch, read_json, validated

__all__ = ["EVENT_PATHS", "blueprint", "note_what_was_sent"]

#: Where events are received.
EVENT_PATHS = ("/", "/events")

blueprint = Blueprint("emulator_events", __name__)


@blueprint.route("/", methods=["POST"], endpoint="receive_at_root")
@blueprint.route("/events", methods=["POST"])
def receive() -> Response:
    state = emulator_state()
    exchange = current_exchange()
    assert exchange is not None, "the app opens an exchange for every events request"
    authenticate_event(state)
    body = read_json(require_json_type=False)
    if isinstance(body, list):
        envelopes = read_batch(body).validated(EVENT_ENVELOPE)
        visitors = set(state.receive_events(envelopes, exchange.received_epoch))
        exchange.visitor = visitors.pop() if len(visitors) == 1 else None
        return Response(status=204)
    envelope = validated(EVENT_ENVELOPE, body)
    if envelope.get("timestamp"):
        exchange.details["timestamp"] = envelope["timestamp"]
    exchange.visitor, answer = state.receive_event(envelope, exchange.received_epoch)
    if answer is None:
        return Response(status=204)
    return jsonify(answer)


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return str(value)


def note_what_was_sent(exchange: Exchange) -> None:
    """Who sent which event from where, as far as the request says (valid or not), for the journal.

    Read before anything else, so that even a refused or faulted event is listed with its
    visitor and type.
    """
    exchange.details["ip"] = request.remote_addr
    exchange.details["user_agent"] = request.headers.get("User-Agent")
    exchange.details["timestamp"] = exchange.received_at
    try:
        envelope = json.loads(request.get_data(cache=True))
    except ValueError:
        return
    if isinstance(envelope, list):
        _note_batch(exchange, envelope)
        return
    if not isinstance(envelope, Mapping):
        return
    exchange.user_id, exchange.anonymous_id = _ids(envelope)
    event = envelope.get("event")
    if isinstance(event, Mapping):
        exchange.type = _text(event.get("type"))
        exchange.subtype = _text(event.get("subtype"))
    context = envelope.get("context")
    if isinstance(context, Mapping):
        exchange.details["ip"] = _text(context.get("ip")) or exchange.details.get("ip")
        exchange.details["user_agent"] = (
            _text(context.get("user_agent")) or exchange.details.get("user_agent")
        )
    timestamp = _text(envelope.get("timestamp"))
    if timestamp:
        exchange.details["timestamp"] = timestamp



def _ids(envelope: Any) -> tuple[str | None, str | None]:
    """The ``user_id`` and ``anonymous_id`` an envelope names, as far as it does."""
    user = envelope.get("user") if isinstance(envelope, Mapping) else None
    if not isinstance(user, Mapping):
        return None, None
    return _text(user.get("user_id")), _text(user.get("anonymous_id"))


def _note_batch(exchange: Exchange, envelopes: list[Any]) -> None:
    """A batch is journaled as one exchange of type ``batch`` (with ``events``, how many); it is
    listed under a visitor when all its events name the same one."""
    exchange.type = "batch"
    exchange.details["events"] = len(envelopes)
    senders = {_ids(envelope) for envelope in envelopes}
    if len(senders) == 1:
        exchange.user_id, exchange.anonymous_id = senders.pop()
