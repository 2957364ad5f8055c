"""Settling delivered, failed and refused rows in the outbox: the acknowledgements, the retries
after a backoff (or ``Retry-After``), the dead letters, and the signals a shop observes.

One :class:`Settlement` per delivery worker and process (a forked child makes its own); the
worker's flights settle every row through it. The owner names of claims are made here too.
"""

from __future__ import annotations

import itertools
import logging
import os
import random
import socket
from collections.abc import Sequence
from typing import Any, Final

from .. import signals
from .contract import OutboxBackend, OutboxRow
from .sender import Outcome

__all__ = ["ATTEMPTS_BEFORE_WARNING", "MAX_RETRY_AFTER", "Settlement", "backoff"]

logger = logging.getLogger(__name__)

#: The longest ``Retry-After`` honoured; a longer one (a confused proxy) is cut to this.
MAX_RETRY_AFTER: Final = 3600.0
#: A row failing this many times is logged at WARNING (before: INFO, since one failure is routine).
ATTEMPTS_BEFORE_WARNING: Final = 5


class Settlement:
    """How one worker's rows are settled in ``outbox``: acknowledged, retried after
    :func:`backoff` (``backoff_base``, ``backoff_max``), or kept as dead letters. ``sender`` is
    the blinker sender of ``signals.delivered`` and ``signals.dead_lettered``."""

    def __init__(
        self, outbox: OutboxBackend, *, sender: object, backoff_base: float, backoff_max: float
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        #: Rows acknowledged since the worker last pruned (its upkeep reads and resets it).
        self.acked_since_prune = 0
        self._owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self._claims = itertools.count(1)

    def new_owner(self) -> str:
        """A lease owner for one claim: this process and worker, and the claim's number."""
        return f"{self._owner}:{next(self._claims)}"

    def backoff(self, attempts: int) -> float:
        """Seconds a row that failed ``attempts`` times waits (see :func:`backoff`)."""
        return backoff(self.backoff_base, self.backoff_max, attempts)

    def acknowledge(self, rows: Sequence[OutboxRow]) -> None:
        """Record ``rows`` as delivered (one write), and say so to the signal's receivers."""
        self.outbox.ack([row.id for row in rows])
        self.acked_since_prune += len(rows)
        if signals.delivered.receivers:
            for row in rows:
                _signal(signals.delivered, self.sender, row)

    def retry_later(self, row: OutboxRow, outcome: Outcome, owner: str, delay: float | None = None) -> float:
        """Give ``row`` back after a failed attempt, due again after its backoff (or ``Retry-After``)."""
        if delay is None:
            delay = self.backoff(row.attempts)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
        self.outbox.retry_later(row.id, delay=delay, error=outcome.error, status=outcome.status, owner=owner)
        level = logging.WARNING if row.attempts >= ATTEMPTS_BEFORE_WARNING else logging.INFO
        logger.log(
            level,
            "datacue: outbox row %d (%s) failed, attempt %d; retrying in %.1fs: %s",
            row.id,
            row.kind,
            row.attempts,
            delay,
            outcome.error,
        )
        return delay

    def dead_letter(self, row: OutboxRow, outcome: Outcome, owner: str) -> None:
        """Set ``row`` aside for good: DataCue refused it."""
        self.outbox.dead_letter(
            row.id,
            status=outcome.status,
            error=outcome.error,
            response_body=outcome.response_body,
            owner=owner,
        )
        logger.error(
            "datacue: DataCue refused outbox row %d (%s %s), kept as a dead letter: %s",
            row.id,
            row.method,
            row.path or "events",
            outcome.error,
        )
        if signals.dead_lettered.receivers:
            _signal(signals.dead_lettered, self.sender, row, status=outcome.status, error=outcome.error)


def backoff(base: float, longest: float, attempts: int) -> float:
    """Seconds a row that failed ``attempts`` times waits: ``base * 2**(attempts - 1)``, at most
    ``longest``, with "equal jitter": never less than half of it, so that a failing row is not
    hammered, and spread over the other half, so that processes retrying together drift apart."""
    ceiling = min(longest, base * 2.0 ** max(0, min(attempts - 1, 62)))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _signal(signal: Any, sender: object, row: OutboxRow, **extra: Any) -> None:
    """Send ``signal`` about ``row`` from ``sender`` (a Flask app: its context is pushed for receivers)."""
    details = {"row_id": row.id, "kind": row.kind, "method": row.method, "path": row.path, **extra}
    app_context = getattr(sender, "app_context", None)
    try:
        if callable(app_context):
            with app_context():  # receivers may use current_app, as in a request
                signal.send(sender, **details)
        else:
            signal.send(sender, **details)
    except Exception:  # a receiver's bug must not stop delivery
        logger.exception("datacue: a receiver of %s failed", signal.name)
