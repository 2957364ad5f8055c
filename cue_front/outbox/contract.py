"""The outbox's contract: what a queue of requests owed to DataCue must do, as a typed Protocol.

The delivery worker, the CLI, ``status``, the queued client and the extension use an
outbox only through :class:`OutboxBackend`, so a second backend plugs in without touching
them. The rules every backend keeps (leases, order per key, the cap) are in docs/delivery.md.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from ..errors import DataCueError

__all__ = [
    "KINDS",
    "MAX_RESPONSE_CHARS",
    "DeadLetter",
    "Droppable",
    "OutboxBackend",
    "OutboxFullError",
    "OutboxRow",
    "OutboxStats",
    "OutboxUnavailableError",
    "visitor_share",
]

#: What a row holds: an event for the events API, or a REST call to the API URL.
KINDS: Final = ("event", "rest")

#: A dead letter keeps at most this many characters of DataCue's answer.
MAX_RESPONSE_CHARS: Final = 10_000


def visitor_share(max_rows: int, visitor_max: int | None) -> int:
    """The unsent events one visitor may hold (``DATACUE_OUTBOX_VISITOR_MAX``): ``visitor_max``, or
    when ``None`` a small share of the cap (1% of ``max_rows``, at least 20; see the overflow
    policy in docs/delivery.md). Raises ``ValueError`` below 1 (0 would drop every droppable event)."""
    if visitor_max is None:
        return max(20, max_rows // 100)
    if visitor_max < 1:
        raise ValueError(f"visitor_max must be at least 1, got {visitor_max!r}")
    return visitor_max


class Droppable(enum.IntEnum):
    """How far an event may go when its visitor holds more than their share (see docs/delivery.md)."""

    #: Kept whatever happens: logins, checkouts, every store change.
    NEVER = 0
    #: A cart update: a later one of the same visitor carries the whole cart, so all but the
    #: newest may go.
    SUPERSEDED = 1
    #: Page views, searches, clicks, wishlist changes: the oldest go first.
    YES = 2


class OutboxFullError(DataCueError):
    """The outbox holds ``max_rows`` undelivered rows: a new event was refused (see docs/delivery.md)."""


class OutboxUnavailableError(DataCueError):
    """The outbox's server (the Redis of ``DATACUE_OUTBOX_URL``) could not be reached or refused a
    write: nothing was queued."""


@dataclass(frozen=True)
class OutboxRow:
    """One queued request, as claimed for delivery.

    ``path`` is ``""`` for an event (the events URL) and the path under the API URL
    for a REST call (``/products/p1/v1``). ``body`` is the exact bytes to sign and send.
    ``attempts`` counts the claims so far, this one included.
    """

    id: int
    kind: str
    method: str
    path: str
    body: bytes
    ordering_key: str | None
    attempts: int
    created_at: float


@dataclass(frozen=True)
class OutboxStats:
    """What the outbox holds now.

    ``pending`` rows wait to be sent (new, or waiting out a retry's backoff);
    ``in_flight`` rows are claimed by a worker right now (the two never overlap);
    ``delivered`` counts every row DataCue accepted, pruned or not; ``dead`` rows
    were refused for good and wait for ``retry_dead``.
    ``oldest_pending_age`` is the age in seconds of the oldest undelivered row
    (pending or in flight); ``last_error`` the latest failure of any row;
    ``refused`` counts the events refused because the outbox was full, ``dropped`` the
    events dropped unsent (a visitor over their share, or an erasure). ``next_due_in`` is
    :meth:`OutboxBackend.next_due_in` as of the same moment as the counts.
    """

    pending: int
    in_flight: int
    delivered: int
    dead: int
    oldest_pending_age: float | None
    last_error: str | None
    refused: int
    dropped: int = 0
    next_due_in: float | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A row DataCue refused for good, with its answer; ``retry_dead`` sends it again."""

    id: int
    kind: str
    method: str
    path: str
    body: bytes
    status: int | None
    error: str
    response_body: str | None
    attempts: int
    created_at: float
    failed_at: float


class OutboxBackend(Protocol):
    """A durable queue of requests owed to DataCue, shared by every process that opens it."""

    #: How long a claim holds its rows before anyone may claim them again.
    lease_seconds: float
    #: The most rows kept (pending, delivered and dead): the cap events are refused at.
    max_rows: int

    # -- intake -------------------------------------------------------------------------

    def put(
        self,
        kind: str,
        method: str,
        path: str,
        body: bytes,
        ordering_key: str | None = None,
        *,
        droppable: Droppable = Droppable.NEVER,
        shared_key: str | None = None,
    ) -> int:
        """Queue one request; its row id once it is durable. Events past the cap, and store
        changes past their own bound, raise :class:`OutboxFullError`. ``shared_key``: a key
        held in common with other rows (see docs/delivery.md, "Ordering")."""
        ...

    def put_event(
        self,
        body: bytes,
        ordering_key: str | None = None,
        *,
        droppable: Droppable = Droppable.NEVER,
        shared_key: str | None = None,
    ) -> int | None:
        """Queue one event the quickest durable way; its row id, or ``None`` until it gets one.
        A ``droppable`` event may be dropped when its key holds more than its share."""
        ...

    def drop_unsent(self, ordering_keys: Iterable[str]) -> int:
        """Drop (and erase) every unsent row of these keys; returns how many (``forget``)."""
        ...

    def ingest(self) -> int:
        """Move events accepted the quick way into the queue proper; returns how many."""
        ...

    # -- delivery -----------------------------------------------------------------------

    def claim(self, owner: str, limit: int = 100) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows to ``owner``, oldest first: none while an earlier row
        of its ordering key is unfinished, nor one its shared key orders after (see "Ordering")."""
        ...

    def ack(self, row_ids: Iterable[int]) -> None:
        """Mark rows delivered."""
        ...

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        """Give claimed rows back unsent, due again in ``delay`` seconds; not counted as an attempt."""
        ...

    def retry_later(
        self, row_id: int, *, delay: float, error: str, status: int | None = None, owner: str | None = None
    ) -> None:
        """Give a claimed row back after a failure, due again in ``delay`` seconds."""
        ...

    def dead_letter(
        self,
        row_id: int,
        *,
        status: int | None,
        error: str,
        response_body: str | None,
        owner: str | None = None,
    ) -> None:
        """Set a row aside for good (DataCue refused it); it stays visible and retryable."""
        ...

    # -- dead letters and upkeep --------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead letters, most recently refused first."""
        ...

    def retry_dead(self, row_ids: Iterable[int] | None = None) -> int:
        """Queue dead letters again (all, or those in ``row_ids``); returns how many."""
        ...

    def sent_digests(self, keys: Iterable[str]) -> dict[str, str]:
        """What was last queued for each key that has a record of it (declared model sync)."""
        ...

    def remember_digests(self, digests: Mapping[str, str | None]) -> None:
        """Record what was just queued per key (``None``: forget the key)."""
        ...

    def stats(self) -> OutboxStats:
        """Counts of what the outbox holds."""
        ...

    def next_due_in(self) -> float | None:
        """Seconds until a row may be claimed (0: now); ``None`` when nothing is unfinished."""
        ...

    def unfinished(self) -> int:
        """How many rows are pending or in flight."""
        ...

    def prune(self, *, pause: float = 0.0) -> int:
        """Delete delivered rows; returns how many."""
        ...

    def checkpoint(self) -> None:
        """Make recent writes cheap to read again (the worker calls this about once a second)."""
        ...

    def pause_all(self, seconds: float) -> None:
        """Start no new request anywhere for ``seconds`` (a 429, DataCue down): every worker that
        shares this outbox pauses, not only the caller's (never shortens a longer pause)."""
        ...

    def paused_for(self) -> float:
        """Seconds left of the pause :meth:`pause_all` set (by any worker sharing the outbox); 0: none."""
        ...

    def retire_journal(self, timeout: float = 5.0) -> None:
        """At exit: hand this process's quick-intake events over for good, trying for up to
        ``timeout`` seconds where that needs a server that may be down."""
        ...

    def close(self) -> None:
        """Let go of every resource this process holds for the outbox."""
        ...
