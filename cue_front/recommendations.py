"""Server-side recommendations: the page's pageview sent by the server, and DataCue's answer kept for widgets.

With ``DATACUE_SSR = True``, ``render_datacue`` sends the page's own event from
the server instead of leaving it to DataCue's script (which is then not
included, so the pageview is never sent twice):

- home and product pageviews and searches, which DataCue answers with
  recommendations, are sent at once within ``DATACUE_SSR_TIMEOUT``; the answer is
  kept on ``g`` for every widget of the page (one DataCue call per page however
  many widgets ask), and for a few seconds per visitor, so a reload storm does not
  multiply calls;
- a category pageview, which DataCue answers with nothing, is queued like any
  other event;
- an order confirmation's ``order_details`` (the guide's "frontend" way of sending
  orders, which DataCue's script would do) become a queued ``orders.create``,
  unless ``DATACUE_SSR_ORDERS`` is off because the backend sends orders itself.

If DataCue is slow, down or refuses, the event is queued instead (nothing is
lost), the failure is logged once for the page, and the widgets fall back to
their client-side placeholders. A page never fails because of it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from flask import g

from . import events
from .errors import DataCueError, ValidationError
from .extension import DataCueState
from .transport import encode_json

logger = logging.getLogger("cue_front")

__all__ = ["RecommendationCache", "page_event", "page_recommendations", "send_page_event"]

#: Events whose answer carries recommendations (the guide's "Response JSON fields").
ANSWERED = frozenset({("pageview", "home"), ("pageview", "product"), ("search", None)})


def page_event(config: Mapping[str, Any]) -> dict[str, Any] | None:
    """The storefront event a page's config stands for, or ``None`` (cart, 404, order confirmation)."""
    page_type = config.get("page_type")
    if page_type == "home":
        return {"type": "pageview", "subtype": "home"}
    if page_type == "product" and "product_id" in config:
        return {"type": "pageview", "subtype": "product", "product_id": config["product_id"]}
    if page_type == "category" and "category_id" in config:
        update = config.get("category_update") or {}
        name = update.get("name") or config["category_id"]
        return {"type": "pageview", "subtype": "category", "category_name": name}
    if page_type == "search" and "term" in config:
        return {"type": "search", "term": config["term"]}
    return None


class RecommendationCache:
    """The last page answer per visitor, for a few seconds: a reload storm makes one call.

    One entry per visitor, for the page they last loaded: the same page again
    within ``ttl`` reuses it; any other page, and any event tracked for the
    visitor (:meth:`forget`), means their recommendations may have changed.
    """

    def __init__(self, ttl: float = 5.0, max_entries: int = 10_000) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._answers: dict[str, tuple[str, float, dict[str, Any]]] = {}
        self._lock = threading.Lock()

    def get(self, visitor: str, page: str) -> dict[str, Any] | None:
        entry = self._answers.get(visitor)
        if entry is None or entry[0] != page or entry[1] < time.monotonic():
            return None
        return entry[2]

    def put(self, visitor: str, page: str, answer: dict[str, Any]) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._answers) >= self.max_entries:
                self._answers = {k: v for k, v in self._answers.items() if v[1] >= now}
                if len(self._answers) >= self.max_entries:
                    self._answers.clear()
            self._answers[visitor] = (page, now + self.ttl, answer)

    def forget(self, *visitors: str | None) -> None:
        for visitor in visitors:
            if visitor is not None:
                self._answers.pop(visitor, None)


def send_page_event(state: DataCueState, config: Mapping[str, Any]) -> None:
    """Send the page's event from the server (SSR mode); keep any recommendations on ``g``."""
    if getattr(g, "_datacue_ssr_sent", False):
        return
    g._datacue_ssr_sent = True
    if state.ssr_orders and config.get("order_details") is not None:
        _queue_order(state, config)
    event = page_event(config)
    if event is None:
        return
    try:
        envelope = events.build_envelope(event)
    except ValidationError as error:
        logger.warning("datacue: page event not sent: %s", error)
        return
    if (event.get("type"), event.get("subtype")) not in ANSWERED:
        _deliver_quietly(state, envelope)
        return
    user = envelope["user"]
    visitor, page = str(user.get("user_id") or user.get("anonymous_id")), encode_json(event).decode()
    answer = state.recommendation_cache.get(visitor, page)
    if answer is None:
        try:
            reply = events.send_event_now(envelope, timeout=state.ssr_timeout)
            answer = reply.json() or {}
        except (DataCueError, ValueError) as error:
            logger.warning("datacue: server-side recommendations unavailable (%s); event queued", error)
            _deliver_quietly(state, envelope)
            return
        if not isinstance(answer, dict):
            return
        state.recommendation_cache.put(visitor, page, answer)
    g._datacue_recommendations = answer


def _queue_order(state: DataCueState, config: Mapping[str, Any]) -> None:
    """An order confirmation's ``order_details``, which DataCue's script would have sent: queued."""
    order = {"order_id": config.get("order_id"), "user_id": config.get("user_id"), **config["order_details"]}
    try:
        state.queued.orders.create(order)
    except DataCueError as error:
        logger.error("datacue: the order of this confirmation page was not sent: %s", error)


def _deliver_quietly(state: DataCueState, envelope: Mapping[str, Any]) -> None:
    """Hand the page's event to delivery; with synchronous delivery a failure is logged, not raised."""
    try:
        events.deliver(state, envelope)
    except DataCueError as error:
        logger.warning("datacue: page event not delivered: %s", error)


def page_recommendations(state: DataCueState) -> dict[str, Any] | None:
    """DataCue's answer for this page, fetched at most once per request; ``None`` on fallback.

    Normally ``render_datacue`` has sent the page's event already (SSR mode); a
    widget asking for server-side rendering on a page rendered without SSR sends
    it now.
    """
    config = g.get("_datacue_config")
    if config is None:
        return None
    send_page_event(state, config)
    answer: dict[str, Any] | None = g.get("_datacue_recommendations")
    return answer
