"""The last recommendations DataCue gave each visitor, kept a few seconds so a reload storm makes one call."""

from __future__ import annotations

import threading
import time
from typing import Any

__all__ = ["RecommendationCache"]


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
