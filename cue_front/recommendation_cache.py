"""The last recommendations DataCue gave each visitor, kept a few seconds so a reload storm makes one call.

In this process, or in the Redis every host shares (``DATACUE_OUTBOX_URL``), so that a visitor's
reloads hitting several hosts still make one call, and an event tracked on one host ends the
entry on all of them. While that Redis fails, the process keeps the entries.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from .encoding import encode_json
from .errors import ValidationError
from .redis_store import RetryPause, redis_errors

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RecommendationCache"]

logger = logging.getLogger(__name__)

#: One visitor's entry: the page it answers (its event, encoded) and DataCue's answer.
Entry = tuple[str, dict[str, Any]]
_Result = TypeVar("_Result")

#: Seconds a failed Redis is left alone (entries kept in the process) before it is tried again.
REDIS_RETRY_SECONDS = 5.0


class RecommendationCache:
    """The last page answer per visitor, for a few seconds: a reload storm makes one call.

    One entry per visitor, for the page they last loaded: the same page again
    within ``ttl`` reuses it; any other page, and any event tracked for the
    visitor (:meth:`forget`), means their recommendations may have changed.
    With ``redis`` the entries are shared by every host using it, under ``namespace``; after
    a failure of that Redis the process keeps them for ``redis_retry_seconds``, then Redis is
    tried again.
    """

    def __init__(
        self,
        ttl: float = 5.0,
        max_entries: int = 10_000,
        *,
        redis: Redis | None = None,
        namespace: str = "datacue:",
        redis_retry_seconds: float = REDIS_RETRY_SECONDS,
    ) -> None:
        self.ttl = ttl
        self._in_process = _ProcessStore(max_entries)
        self._shared = None if redis is None else _RedisStore(redis, f"{namespace}recommendations:")
        self._redis_pause = RetryPause(redis_retry_seconds)

    def get(self, visitor: str, page: str) -> dict[str, Any] | None:
        entry = self._use(lambda store: store.get(visitor))
        if entry is None or entry[0] != page:
            return None
        return entry[1]

    def put(self, visitor: str, page: str, answer: dict[str, Any]) -> None:
        self._use(lambda store: store.put(visitor, (page, answer), self.ttl))

    def forget(self, *visitors: str | None) -> None:
        named = [visitor for visitor in visitors if visitor is not None]
        if named:
            # The process's entries too: ones kept while Redis was down must not outlive this.
            self._in_process.forget(named)
            if self._shared is not None:
                self._use(lambda store: store.forget(named))

    def _use(self, operation: Callable[[_Store], _Result]) -> _Result:
        """``operation(store)`` on the shared store, or on the process's while Redis fails."""
        if self._shared is not None and not self._redis_pause.active():
            try:
                return operation(self._shared)
            except self._shared.failures as error:
                self._redis_pause.start()
                logger.warning(
                    "datacue: the shared recommendation cache is unavailable (%r); kept in this process"
                    " for %g s",
                    error,
                    self._redis_pause.seconds,
                )
        return operation(self._in_process)


class _Store(Protocol):
    """Where entries are kept; each store expires them after their ``ttl`` by itself."""

    def get(self, visitor: str) -> Entry | None: ...

    def put(self, visitor: str, entry: Entry, ttl: float) -> None: ...

    def forget(self, visitors: list[str]) -> None: ...


class _ProcessStore:
    """Entries in a dict, at most ``max_entries`` (past it, the expired ones go, or all)."""

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, Entry]] = {}
        self._lock = threading.Lock()

    def get(self, visitor: str) -> Entry | None:
        kept = self._entries.get(visitor)
        if kept is None or kept[0] < time.monotonic():
            return None
        return kept[1]

    def put(self, visitor: str, entry: Entry, ttl: float) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries = {key: kept for key, kept in self._entries.items() if kept[0] >= now}
                if len(self._entries) >= self.max_entries:
                    self._entries.clear()
            self._entries[visitor] = (now + ttl, entry)

    def forget(self, visitors: list[str]) -> None:
        for visitor in visitors:
            self._entries.pop(visitor, None)


class _RedisStore:
    """Entries as JSON in Redis, a key per visitor that Redis expires (``SET ... PX``)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self._redis = redis
        self._prefix = prefix
        #: What this store raises when Redis fails.
        self.failures = redis_errors()

    def get(self, visitor: str) -> Entry | None:
        stored = self._redis.get(self._prefix + visitor)
        if stored is None:
            return None
        try:
            page, answer = json.loads(stored)
        except ValueError:  # not ours, or from another version: a miss
            return None
        return (page, answer) if isinstance(page, str) and isinstance(answer, dict) else None

    def put(self, visitor: str, entry: Entry, ttl: float) -> None:
        try:
            value = encode_json(list(entry))
        except ValidationError:  # an answer that is not valid Unicode: not kept
            return
        self._redis.set(self._prefix + visitor, value, px=max(1, round(ttl * 1000)))

    def forget(self, visitors: list[str]) -> None:
        self._redis.delete(*(self._prefix + visitor for visitor in visitors))
