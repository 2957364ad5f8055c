"""Rate limits on what visitors make cue-front send, per visitor and per IP, touching no other route.

The counts live in the storage of the shop's own Flask-Limiter when it has one (found at the
first request, since a shop may create its ``Limiter`` after ``DataCue(app)``), else in one of
ours (``DATACUE_PROXY_RATE_LIMIT_STORAGE``). Without Flask-Limiter installed nothing is limited.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from flask import Flask

try:  # the ``limits`` extra: Flask-Limiter and the limits library it is built on
    from limits import RateLimitItem, parse, storage, strategies
except ImportError:  # pragma: no cover - exercised where the extra is not installed
    RateLimitItem = None  # type: ignore[assignment,misc]

__all__ = ["AVAILABLE", "RateLimits"]

logger = logging.getLogger(__name__)

#: Whether rate limits can be kept here (``pip install cue-front[limits]``).
AVAILABLE = RateLimitItem is not None

#: One IP may send this many visitors' worth of events (shoppers behind one carrier NAT).
_VISITORS_PER_IP = 5
_NAMESPACE = "datacue"


class RateLimits:
    """The limits of one app: ``hit(scope, key)`` counts a request and says whether it is over.

    Scopes: ``"visitor"`` and ``"ip"`` for the events endpoint, ``"page"`` for the page events
    the server sends for ``render_datacue``.
    """

    def __init__(self, app: Flask) -> None:
        config = app.config
        self._app = app  # its extensions hold the shop's Flask-Limiter, once it has made one
        self._lock = threading.Lock()
        self._strategy: Any = None
        self._storage_uri: str = config["DATACUE_PROXY_RATE_LIMIT_STORAGE"]
        self._limits: dict[str, Any] = {}
        if not AVAILABLE:
            return
        visitor = parse(config["DATACUE_PROXY_RATE_LIMIT"])
        ip_limit = config["DATACUE_PROXY_IP_RATE_LIMIT"]
        if ip_limit:
            per_ip = parse(ip_limit)
        else:  # derived: a few visitors' worth, in the same window
            per_ip = type(visitor)(visitor.amount * _VISITORS_PER_IP, visitor.multiples)
        page = parse(config["DATACUE_PAGE_EVENT_RATE_LIMIT"])
        self._limits = {"visitor": visitor, "ip": per_ip, "page": page}

    def describe(self, scope: str) -> str:
        """``120 per 1 minute``: the limit of ``scope``, for messages."""
        return str(self._limits.get(scope, "no limit"))

    def hit(self, scope: str, key: str) -> float | None:
        """Count one request of ``key`` in ``scope``; ``None`` if allowed, else seconds until it would be."""
        item = self._limits.get(scope)
        if item is None:
            return None
        strategy = self._strategy or self._resolve()
        if strategy.hit(item, _NAMESPACE, scope, key):
            return None
        reset_at: float = strategy.get_window_stats(item, _NAMESPACE, scope, key).reset_time
        return max(1.0, reset_at - time.time())

    def _resolve(self) -> Any:
        """The shop's Flask-Limiter's strategy (its storage, its choice of window), else our own."""
        with self._lock:
            if self._strategy is None:
                shop_limiters = self._app.extensions.get("limiter") or ()
                for limiter in shop_limiters:
                    self._strategy = limiter.limiter
                    break
                else:
                    store = storage.storage_from_string(self._storage_uri)
                    self._strategy = strategies.FixedWindowRateLimiter(store)
            return self._strategy
