"""Rate limits on what visitors make cue-front send, per visitor and per IP, touching no other route.

The counts live in the storage of the shop's own Flask-Limiter when it has one (found at the
first request, since a shop may create its ``Limiter`` after ``DataCue(app)``), else in one of
ours (``DATACUE_PROXY_RATE_LIMIT_STORAGE``; by default the Redis every host shares, when
``DATACUE_OUTBOX_URL`` names one). While that storage fails, the counts are kept in the process.
Without Flask-Limiter installed nothing is limited.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from flask import Flask

from .redis_store import RetryPause, namespace

if TYPE_CHECKING:
    from redis import Redis

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
#: Seconds between two log lines about a rate-limit storage that fails.
_FAILURE_REPORT_INTERVAL = 60.0
#: Seconds a failed storage is left alone (limits counted in the process) before it is tried again.
_STORAGE_RETRY_SECONDS = 5.0


class RateLimits:
    """The limits of one app: ``hit(scope, key)`` counts a request and says whether it is over.

    Scopes: ``"visitor"`` and ``"ip"`` for the events endpoint, ``"page"`` and ``"page-ip"`` for
    the page events the server sends for ``render_datacue``.
    """

    def __init__(self, app: Flask, shared_redis: Redis | None = None) -> None:
        config = app.config
        self._app = app  # its extensions hold the shop's Flask-Limiter, once it has made one
        self._lock = threading.Lock()
        self._source: Any = None  # the shop's Limiter, or our own strategy
        self._storage_uri: str = config["DATACUE_PROXY_RATE_LIMIT_STORAGE"]  # init_app's default
        # The storage URI names the shared Redis: count there through its one client.
        self._shared_redis = shared_redis if self._storage_uri == config["DATACUE_OUTBOX_URL"] else None
        # Several shops (or a shop's staging) may count in one Redis: each in its own namespace.
        self._namespace = namespace(config["DATACUE_API_KEY"]).rstrip(":")
        self._limits: dict[str, Any] = {}
        self._failures_reported_at = -_FAILURE_REPORT_INTERVAL
        self._storage_pause = RetryPause(_STORAGE_RETRY_SECONDS)
        self._in_process: Any = None
        if not AVAILABLE:
            return
        self._in_process = strategies.FixedWindowRateLimiter(storage.MemoryStorage())
        visitor = parse(config["DATACUE_PROXY_RATE_LIMIT"])
        ip_limit = config["DATACUE_PROXY_IP_RATE_LIMIT"]
        page = parse(config["DATACUE_PAGE_EVENT_RATE_LIMIT"])
        self._limits = {
            "visitor": visitor,
            "ip": parse(ip_limit) if ip_limit else _times(visitor, _VISITORS_PER_IP),
            "page": page,
            # A client that drops its cookie is a new visitor on every page: its IP is not.
            "page-ip": _times(page, _VISITORS_PER_IP),
        }

    def describe(self, scope: str) -> str:
        """``120 per 1 minute``: the limit of ``scope``, for messages."""
        return str(self._limits.get(scope, "no limit"))

    def hit(self, scope: str, key: str) -> float | None:
        """Count one request of ``key`` in ``scope``; ``None`` if allowed, else seconds until it would be.

        While the storage fails (Redis is down) requests are counted in this process, and the
        storage is tried again every few seconds; the failure is logged once a minute. A request
        is never refused, nor slowed down for more than one timeout, because the storage fails.
        """
        item = self._limits.get(scope)
        if item is None:
            return None
        if not self._storage_pause.active():
            try:
                return self._count(self._strategy(), item, scope, key)
            except Exception as error:  # whatever the storage raises: ConnectionError, a redis error...
                self._storage_pause.start()
                self._report_failure(error)
        return self._count(self._in_process, item, scope, key)

    def _count(self, strategy: Any, item: Any, scope: str, key: str) -> float | None:
        if strategy.hit(item, self._namespace, scope, key):
            return None
        reset_at: float = strategy.get_window_stats(item, self._namespace, scope, key).reset_time
        return max(1.0, reset_at - time.time())

    def _strategy(self) -> Any:
        """The shop's Flask-Limiter's strategy, read on every use so that its fallback to memory
        is followed when its storage dies; else our own, made once."""
        source = self._source or self._resolve()
        return source.limiter if hasattr(source, "limiter") else source

    def _resolve(self) -> Any:
        with self._lock:
            if self._source is None:
                shop_limiters = self._app.extensions.get("limiter") or ()
                for limiter in shop_limiters:
                    self._source = limiter
                    break
                else:
                    self._source = strategies.FixedWindowRateLimiter(self._own_storage())
            return self._source

    def _own_storage(self) -> Any:
        if self._shared_redis is not None:  # Flask-Limiter's Redis storage, on the shared client's pool
            return storage.RedisStorage("redis://", connection_pool=self._shared_redis.connection_pool)
        return storage.storage_from_string(self._storage_uri)

    def _report_failure(self, error: Exception) -> None:
        now = time.monotonic()
        if now - self._failures_reported_at >= _FAILURE_REPORT_INTERVAL:
            self._failures_reported_at = now
            logger.warning(
                "datacue: rate limits cannot be counted in their storage, counted in this process"
                " meanwhile: %r",
                error,
            )


def _times(item: Any, factor: int) -> Any:
    """``item``'s limit ``factor`` times over, in the same window."""
    return type(item)(item.amount * factor, item.multiples)
