"""The outbox's contract: what a queue of requests owed to DataCue must do, as a typed Protocol.

The delivery worker, the CLI, ``status``, the queued client and the extension use an
outbox only through :class:`OutboxBackend`, so a second backend plugs in without touching
them. The rules every backend keeps (leases, order per key, the cap) are in docs/delivery.md.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Protocol

from ..errors import DataCueError

__all__ = [
    "CAP_LOG_INTERVAL",
    "KINDS",
    "MAX_RESPONSE_CHARS",
    "CapLog",
    "DeadLetter",
    "Droppable",
    "OutboxBackend",
    "OutboxFullError",
    "OutboxRow",
    "OutboxStats",
    "OutboxUnavailableError",
    "full_error",
    "visitor_share",
]

logger = logging.getLogger(__name__)

#: Past the cap, or a visitor's share, a warning is logged at most this often (seconds).
CAP_LOG_INTERVAL: Final = 60.0

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


def full_error(kind: str, max_rows: int, store_max: int, where: str) -> OutboxFullError:
    """The refusal of a put into a full outbox (``where`` it is: ``at <path>``, ``in Redis``): an
    event past ``max_rows``, a store change (``rest``) past ``max_rows + store_max``."""
    if kind == "rest":
        return OutboxFullError(
            f"the DataCue outbox {where} holds {max_rows + store_max:,} rows"
            " (DATACUE_OUTBOX_MAX_ROWS + DATACUE_OUTBOX_STORE_MAX): this store change was refused."
            " DataCue has not accepted rows for a long while: check `flask datacue status`"
        )
    return OutboxFullError(
        f"the DataCue outbox {where} is full ({max_rows:,} rows waiting or dead,"
        " DATACUE_OUTBOX_MAX_ROWS): this event was refused. DataCue has not accepted rows for a while:"
        " check `flask datacue status` and the dead letters"
    )


class CapLog:
    """The two warnings of the overflow policy (docs/delivery.md), each at most once a minute
    (:data:`CAP_LOG_INTERVAL`) with the count since the last: store changes accepted past the cap of
    ``max_rows``, and events dropped because a visitor held more than ``visitor_max``. ``where`` is
    where the outbox is (``at <path>``, ``in Redis``)."""

    def __init__(self, max_rows: int, visitor_max: int, where: str) -> None:
        self.max_rows = max_rows
        self.visitor_max = visitor_max
        self.where = where
        self._over_cap = _Throttle()
        self._drops = _Throttle()

    def accepted(self, held: int) -> None:
        """A store change was accepted with ``held`` rows in the outbox (more than ``max_rows``)."""
        since = self._over_cap.count(1)
        if since:
            logger.warning(
                "datacue: the outbox %s holds %d rows, over its cap of %d (DATACUE_OUTBOX_MAX_ROWS);"
                " store changes are still accepted (%d since the last warning), events are refused",
                self.where,
                held,
                self.max_rows,
                since,
            )

    def dropped(self, count: int) -> None:
        """``count`` events were dropped from visitors' shares."""
        since = self._drops.count(count)
        if since:
            logger.warning(
                "datacue: %d event(s) dropped since the last report: a visitor held more than"
                " %d unsent events (DATACUE_OUTBOX_VISITOR_MAX); other visitors' events are kept",
                since,
                self.visitor_max,
            )


class _Throttle:
    """Counts things, and says how many to report at most every :data:`CAP_LOG_INTERVAL` seconds."""

    def __init__(self) -> None:
        self._logged_at = -CAP_LOG_INTERVAL
        self._since = 0

    def count(self, n: int) -> int:
        """Count ``n`` more; the count to report now (then reset), or 0 to keep quiet."""
        self._since += n
        now = time.monotonic()
        if now - self._logged_at < CAP_LOG_INTERVAL:
            return 0
        since, self._since, self._logged_at = self._since, 0, now
        return since


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
