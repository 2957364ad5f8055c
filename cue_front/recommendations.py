"""Server-side recommendations: the page's event sent by the server, and DataCue's answer kept for widgets.

With ``DATACUE_SSR`` the server sends what DataCue's script would have (and the script is
left out); docs/architecture.md ("Server-side rendering") tells which events are sent at
once and how a slow DataCue falls back. A page never fails because of it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from flask import g, request

from . import events
from .encoding import encode_json
from .errors import DataCueError, ValidationError
from .identity import has_consent, mark_personal
from .schema import ANSWERED_EVENTS
from .state import DataCueState

logger = logging.getLogger(__name__)

__all__ = ["page_event", "page_recommendations", "send_page_event"]


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


def send_page_event(state: DataCueState, config: Mapping[str, Any]) -> None:
    """Send the page's event from the server (SSR mode); keep any recommendations on ``g``."""
    if getattr(g, "_datacue_ssr_sent", False):
        return
    g._datacue_ssr_sent = True
    if state.ssr_orders and config.get("order_details") is not None:
        _queue_order(state, config)  # the shop's business data: not a matter of consent
    event = page_event(config)
    if event is None or not has_consent(state):
        return
    try:
        envelope = events.build_envelope(event)
    except ValidationError as error:
        logger.warning("datacue: page event not sent: %s", error)
        return
    user = envelope["user"]
    visitor = str(user.get("user_id") or user.get("anonymous_id"))
    if (event.get("type"), event.get("subtype")) not in ANSWERED_EVENTS:
        if _within_page_limit(state, visitor):
            _deliver_quietly(state, envelope)
        return
    page = encode_json(event).decode()
    answer = state.recommendation_cache.get(visitor, page)
    if answer is None:
        if not _within_page_limit(state, visitor):
            return
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


def _within_page_limit(state: DataCueState, visitor: str) -> bool:
    """Whether this visitor's page event may be sent (``DATACUE_PAGE_EVENT_RATE_LIMIT``): one
    client reloading pages in a loop must not fill the outbox. Past it the page still renders."""
    for scope, key in (("page", visitor), ("page-ip", request.remote_addr or "unknown")):
        if state.rate_limits.hit(scope, key) is not None:
            logger.info("datacue: page event not sent: %s over %s", scope, state.rate_limits.describe(scope))
            return False
    return True


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
    if answer:
        mark_personal()  # the page shows this visitor's recommendations
    return answer
