"""Store changes through the durable outbox: the REST client's resources, queued.

``datacue.queued.products.update("p1", "v1", {...})`` validates exactly as
``datacue.client`` does (a bad payload raises at once, naming the field path),
then writes the signed-to-be request to the outbox and returns: a shop's save
hook never fails or blocks because DataCue is slow or down. The delivery
worker sends it, retrying until DataCue accepts it or refuses it for good (a
visible dead letter).

With ``DATACUE_DELIVERY = "sync"`` the call is sent at once instead (and raises on
failure); with ``"off"`` it is validated and dropped, as every event is.

Changes to one entity share an ordering key (``products/p1``, ``orders/o1``), so
a create and a later cancel of the same order are never reordered.
"""

from __future__ import annotations

import json
import logging

from flask import current_app

from . import signals
from .client import Categories, Orders, Products, Users
from .extension import DataCueState
from .transport import Reply, check_body_size

logger = logging.getLogger("cue_front")

__all__ = ["OutboxSender", "QueuedClient", "ordering_key"]

#: The id member of each resource's create payload.
_ID_MEMBERS = {
    "products": "product_id",
    "categories": "category_id",
    "users": "user_id",
    "orders": "order_id",
}

#: What a queued call answers: accepted for delivery, nothing more is known yet.
QUEUED = Reply(status=202)


def ordering_key(method: str, path: str, body: bytes) -> str:
    """Which entity a REST call changes (``products/p1``), so its changes stay in order.

    Batch and delete-all calls touch many entities; they share one key per
    collection (``batch/products``) and so stay in order among themselves.
    """
    parts = [part for part in path.split("/") if part]
    if parts and parts[0] == "batch":
        return "/".join(parts[:2])
    if len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}"
    if parts and method == "POST" and body:
        member = _ID_MEMBERS.get(parts[0])
        if member is not None:
            entity = json.loads(body).get(member)
            return f"{parts[0]}/{entity}"
    return "/".join(parts)


class OutboxSender:
    """A :class:`~cue_front.client.Sender` that writes the request to the outbox instead."""

    def __init__(self, state: DataCueState) -> None:
        self._state = state

    def send(self, method: str, path: str, body: bytes = b"", *, retry: bool = True) -> Reply:
        check_body_size(body)
        state = self._state
        if state.delivery_mode == "sync":  # scripts and tests: send now, raise on failure
            return state.client.transport.send(method, path, body, retry=retry)
        if state.delivery_mode == "off":
            return QUEUED
        row_id = state.outbox.put("rest", method, path, body, ordering_key(method, path, body))
        state.delivery.notify()
        if signals.queued.receivers:
            app = current_app._get_current_object()  # type: ignore[attr-defined]
            signals.queued.send(app, row_id=row_id, kind="rest", method=method, path=path)
        return QUEUED


class QueuedClient:
    """``products``, ``categories``, ``users`` and ``orders``, as on :class:`~cue_front.client.Client`,
    delivered through the outbox. (No ``overview``: a read cannot be queued.)"""

    def __init__(self, state: DataCueState) -> None:
        sender = OutboxSender(state)
        self.products = Products(sender)
        self.categories = Categories(sender)
        self.users = Users(sender)
        self.orders = Orders(sender)
