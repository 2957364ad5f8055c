"""Store changes through the durable outbox: the REST client's resources, queued.

``datacue.queued.products.update(...)`` validates exactly as ``datacue.client`` does,
then writes the request to the outbox and returns; the delivery worker sends it. Changes
to one entity share an ordering key, and a batch orders after and before the changes to
its collection's entities, so they are never reordered.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING
from urllib.parse import quote

from flask import current_app

from . import signals
from .client import Categories, Orders, Products, Users
from .encoding import check_body_size
from .outbox import OutboxFullError
from .schema import RESOURCES
from .transport import Reply

if TYPE_CHECKING:
    from .state import DataCueState

logger = logging.getLogger(__name__)

__all__ = ["OutboxSender", "QueuedClient", "ordering_key", "ordering_keys"]

#: What a queued call answers: accepted for delivery, nothing more is known yet.
QUEUED = Reply(status=202)


def ordering_keys(method: str, path: str, body: bytes) -> tuple[str, str | None]:
    """The ordering key of a REST call and the key it shares: which entity it changes, and its
    collection (``("products/p1", "products")``), so that its changes stay in order.

    A call that touches many entities of a collection (a batch, a delete of them all) takes
    the collection's own key (``products``): it waits for every earlier change to an entity
    of the collection, and every later one waits for it (docs/delivery.md, "Ordering").
    """
    parts = [part for part in path.split("/") if part]
    if parts and parts[0] == "batch":
        return "/".join(parts[1:2]) or "batch", None
    if len(parts) >= 2:
        return f"{parts[0]}/{parts[1]}", parts[0]
    if parts and method == "POST" and body:
        resource = RESOURCES.get(parts[0])
        if resource is not None:
            entity = json.loads(body).get(resource.id_field)
            # Spelled as in the entity's own URLs (quoted), so a create and a later update or
            # delete of one entity share their key.
            return f"{parts[0]}/{quote(str(entity), safe='')}", parts[0]
    return "/".join(parts), None


def ordering_key(method: str, path: str, body: bytes) -> str:
    """Which entity a REST call changes (``products/p1``), or its collection for a batch
    (``products``): the first of :func:`ordering_keys`."""
    return ordering_keys(method, path, body)[0]


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
        key, shared_key = ordering_keys(method, path, body)
        try:
            row_id = state.outbox.put("rest", method, path, body, key, shared_key=shared_key)
        except OutboxFullError as error:  # loud: the shop's data is refused, not dropped quietly
            logger.error("datacue: %s %s not queued: %s", method, path, error)
            signals.outbox_full.send(state.app, kind="rest", error=str(error))
            raise
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
