"""The Redis outbox: the queue every host of a shop shares, drained by workers that split it fairly.

It implements :class:`~cue_front.outbox.contract.OutboxBackend` on a Redis (or Valkey): store
changes go straight in, events through this host's intake journal and a forwarder (``ingest``).
The keys, the claim rule, the partitions and what each failure costs are in docs/redis.md
("The Redis outbox"); the atomic parts are the Lua scripts of :mod:`.redis_scripts`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, NoReturn

from ..errors import DataCueError
from ..redis_store import decode, redis_errors
from ..settings import DEFAULT_PARTITIONS
from . import redis_scripts
from .contract import (
    KINDS,
    MAX_RESPONSE_CHARS,
    CapLog,
    DeadLetter,
    Droppable,
    OutboxRow,
    OutboxStats,
    OutboxUnavailableError,
    full_error,
    visitor_share,
)
from .journal import JOURNAL_SUPPORTED, ingest_lock, writer_for
from .redis_intake import Forwarder, partition_of
from .redis_workers import Outage, PartitionLeases, SharedPause, read_dead_letters, unpack_rows
from .sent import RedisSentDigests

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["OutboxUnavailableError", "RedisOutbox"]

logger = logging.getLogger(__name__)

#: The most partitions (a forwarded record carries its partition in two bytes).
MAX_PARTITIONS: Final = 65_535


class RedisOutbox:
    """A durable queue of outbound requests in a Redis shared by every host (see docs/redis.md).

    ``client`` is a redis-py client (``cue_front.redis_store.connect``); ``prefix`` starts every
    key, all of which share one hash tag (one Redis Cluster slot). ``journal`` is this host's
    intake journal folder for :meth:`put_event` (``None``: events go straight to Redis).
    ``max_rows``, ``visitor_max``, ``store_max`` and ``lease_seconds`` mean what they mean for
    the SQLite outbox; ``partitions`` is how many parts the queue is split in for the workers.
    """

    def __init__(
        self,
        client: Redis,
        *,
        prefix: str = "datacue:",
        journal: str | os.PathLike[str] | None = None,
        max_rows: int = 100_000,
        lease_seconds: float = 30.0,
        visitor_max: int | None = None,
        store_max: int = 1_000_000,
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows!r}")
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        if not 1 <= partitions <= MAX_PARTITIONS:
            raise ValueError(f"partitions must be from 1 to {MAX_PARTITIONS}, got {partitions!r}")
        if "{" in prefix or "}" in prefix:
            raise ValueError(f"the key prefix may not hold braces (it becomes a hash tag), got {prefix!r}")
        self.client = client
        #: What the client raises when Redis fails.
        self._errors = redis_errors()
        self.max_rows = max_rows
        self.lease_seconds = float(lease_seconds)
        self.visitor_max = visitor_share(max_rows, visitor_max)
        self.store_max = store_max
        self.partitions = partitions
        self._leases = PartitionLeases(partitions, self.lease_seconds)
        #: Every key of this outbox starts so: one hash tag, one slot.
        self.keys = "{" + prefix + "outbox}:"
        self._meta = self.keys + "meta"
        self._scripts = {
            name: client.register_script(getattr(redis_scripts, name)) for name in redis_scripts.__all__
        }
        self._cap_log = CapLog(max_rows, self.visitor_max, "in Redis")
        self._forwarder: Forwarder | None = None
        if journal is not None and JOURNAL_SUPPORTED:
            writer, forward = writer_for(Path(journal)), self._scripts["FORWARD"]
            self._forwarder = Forwarder(writer, client, self.keys, forward, partitions, self._cap_log)
        self._closed = False
        self._outage = Outage()
        self._pause = SharedPause(client, self.keys, self._scripts["PAUSE"], self._outage)
        self._sent = RedisSentDigests(client, self.keys + "sent", self._outage)

    def __repr__(self) -> str:
        return f"RedisOutbox({self.keys!r}, max_rows={self.max_rows}, partitions={self.partitions})"

    # -- calling Redis --------------------------------------------------------------------

    def _run(self, name: str, args: Sequence[object], keys: Sequence[str] | None = None) -> Any:
        if self._closed:
            raise DataCueError("this outbox is closed")
        arguments: list[Any] = [self.keys, *args]
        return self._scripts[name](keys=list(keys or [self._meta]), args=arguments)

    def _unavailable(self, error: Exception, what: str) -> NoReturn:
        """Raise :class:`OutboxUnavailableError` (a ``DataCueError`` naming ``DATACUE_OUTBOX_URL``) for
        a Redis that failed; ``what`` says what did not happen ("this event was not queued")."""
        self._outage.report(error)
        raise OutboxUnavailableError(
            f"the DataCue outbox's Redis (DATACUE_OUTBOX_URL) failed: {error}; {what}."
            " Try again once Redis answers"
        ) from error

    def _delivery_may_try(self) -> bool:
        return not self._closed and self._outage.may_try()

    # -- intake ---------------------------------------------------------------------------

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
        """Queue one request in Redis; its row id once Redis has it (see the SQLite outbox's ``put``).

        Raises :class:`OutboxFullError` like the SQLite outbox, and :class:`OutboxUnavailableError`
        (a ``DataCueError`` naming ``DATACUE_OUTBOX_URL``) when Redis fails: then nothing was written.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if ordering_key is None:
            shared_key = None
        try:
            if kind == "event" and self._forwarder is not None:
                self._forward()  # events journaled before this one first: order kept
            limit = self.max_rows + (self.store_max if kind == "rest" else 0)
            row_id, held, dropped = (
                int(number)
                for number in self._run(
                    "PUT",
                    [
                        kind, method, path, body, ordering_key or "", shared_key or "", repr(time.time()),
                        int(droppable), partition_of(ordering_key, shared_key, self.partitions),
                        limit, self.visitor_max,
                    ],
                )
            )  # fmt: skip
        except self._errors as error:
            what = "this store change" if kind == "rest" else "this event"
            self._unavailable(error, f"{what} was not queued (nothing was written)")
        self._outage.answered()
        if row_id < 0:
            self._refuse(kind, counted=True)
        if dropped:
            self._cap_log.dropped(dropped)
        if held > self.max_rows and kind == "rest":
            self._cap_log.accepted(held)
        return row_id

    def put_event(
        self,
        body: bytes,
        ordering_key: str | None = None,
        *,
        droppable: Droppable = Droppable.NEVER,
        shared_key: str | None = None,
    ) -> int | None:
        """Queue one event into this host's journal, without a system call or a word to Redis.

        Returns ``None`` (the row id comes when :meth:`ingest` forwards it). Keeps the cap by the
        same estimate as the SQLite outbox: the rows Redis held at this host's latest forward plus
        every event journaled on the host since; Redis need not answer.
        """
        forwarder = self._forwarder
        if forwarder is None or self._closed:
            return self.put(
                "event", "POST", "", body, ordering_key, droppable=droppable, shared_key=shared_key
            )
        if forwarder.room_left(self.max_rows) <= 0:
            self.ingest()  # the estimate may be stale: ask Redis (if it answers)
            if forwarder.room_left(self.max_rows) <= 0:
                self._refuse("event")
        journal = forwarder.journal
        try:
            if not journal.append(ordering_key, body, time.time(), droppable, shared_key):
                with journal.ingest_mutex, ingest_lock(journal.folder):
                    journal.count_shared(1)
        except OSError as error:  # no segment could be made (a full disk): straight to Redis
            logger.warning("datacue: the outbox journal at %s cannot take events: %s", journal.folder, error)
            return self.put(
                "event", "POST", "", body, ordering_key, droppable=droppable, shared_key=shared_key
            )
        return None

    def _refuse(self, kind: str, *, counted: bool = False) -> NoReturn:
        if kind == "event" and not counted:
            with contextlib.suppress(*self._errors):  # the refusal is raised all the same
                self.client.hincrby(self._meta, "refused", 1)
        raise full_error(kind, self.max_rows, self.store_max, "in Redis")

    def ingest(self) -> int:
        """Forward this host's journaled events to Redis, in order, exactly once; returns how many.

        While Redis fails this returns 0 (logged once) and the events wait in the journal.
        """
        if self._forwarder is None or not self._delivery_may_try():
            return 0
        try:
            return self._forward()
        except self._errors as error:
            self._outage.report(error)
            return 0

    def _forward(self) -> int:
        assert self._forwarder is not None
        if self._closed:
            raise DataCueError("this outbox is closed")
        moved = self._forwarder.forward(self.visitor_max)
        self._outage.answered()
        return moved

    def retire_journal(self, timeout: float = 5.0) -> None:
        """At exit: close this process's journal segment and forward everything journaled on the host,
        trying for up to ``timeout`` seconds while Redis fails (what is left waits for the next start)."""
        if self._forwarder is None or self._closed:
            return
        self._forwarder.journal.close()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self._forward()
                return
            except self._errors as error:
                self._outage.report(error)
                if time.monotonic() + 0.1 >= deadline:
                    logger.warning(
                        "datacue: exiting with journaled events not yet in Redis; the next start sends them"
                    )
                    return
                time.sleep(0.1)

    def drop_unsent(self, ordering_keys: Iterable[str]) -> int:
        """Drop (and erase) every unsent row of these keys on every host; returns how many.

        Rows in flight are marked and go when they settle; events of these keys still in a host's
        journal are dropped as they are forwarded (Redis keeps each erasure a day)."""
        keys = list(ordering_keys)
        if not keys:
            return 0
        self.ingest()
        try:
            count = int(self._run("DROP_UNSENT", keys))
        except self._errors as error:
            self._unavailable(error, "the erasure was not made (nothing was written)")
        return count

    # -- delivery -------------------------------------------------------------------------

    def claim(self, owner: str, limit: int = 100) -> list[OutboxRow]:
        """Lease up to ``limit`` due rows of this worker's partitions to ``owner``, oldest first.

        The rule of the SQLite outbox holds across hosts (the key indexes are cluster-wide): none
        while an earlier row of its key is unfinished, nor one its shared key orders after. While
        Redis fails this returns no rows.
        """
        if limit < 1 or not self._delivery_may_try():
            return []
        self.ingest()
        try:
            found = self._run("CLAIM", self._leases.claim_args("claim", owner, min(limit, 500)))
        except self._errors as error:
            self._outage.report(error)
            return []
        return unpack_rows(bytes(found))

    def ack(self, row_ids: Iterable[int]) -> None:
        """Mark rows delivered: they leave Redis and are counted."""
        ids = list(row_ids)
        for start in range(0, len(ids), 500):
            self._settle("ACK", ids[start : start + 500])

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        """Give claimed rows back unsent, due again in ``delay`` seconds; not counted as an attempt."""
        ids = list(row_ids)
        if ids:
            self._settle("RELEASE", [repr(max(0.0, delay)), owner or "", *ids])

    def retry_later(
        self, row_id: int, *, delay: float, error: str, status: int | None = None, owner: str | None = None
    ) -> None:
        """Give a claimed row back after a failure, due again in ``delay`` seconds."""
        args = [repr(max(0.0, delay)), owner or "", row_id, error, "" if status is None else status]
        self._settle("RETRY_LATER", args)

    def dead_letter(
        self,
        row_id: int,
        *,
        status: int | None,
        error: str,
        response_body: str | None,
        owner: str | None = None,
    ) -> None:
        """Set a row aside for good (DataCue refused it); every host sees it and may retry it."""
        answer = "" if response_body is None else response_body[:MAX_RESPONSE_CHARS]
        status_text = "" if status is None else status
        self._settle("DEAD_LETTER", ["", owner or "", row_id, error, status_text, answer])

    def _settle(self, name: str, args: Sequence[object]) -> None:
        """A settle while Redis fails is lost (logged once): the row's lease runs out and it is sent
        again, which delivery at least once allows."""
        try:
            self._run(name, args)
        except self._errors as error:
            self._outage.report(error)

    # -- the pause every worker shares ----------------------------------------------------

    def pause_all(self, seconds: float) -> None:
        """Pause every worker on every host for ``seconds`` (a 429, DataCue down); never shortens one."""
        self._pause.pause_all(seconds, may_try=self._delivery_may_try())

    def paused_for(self) -> float:
        """Seconds left of the shared pause (read from Redis at most every 0.25 s); 0 when none."""
        return self._pause.paused_for(may_try=self._delivery_may_try())

    # -- dead letters and upkeep ----------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead letters of every host, most recently refused first."""
        try:
            return read_dead_letters(self.client, self.keys, limit)
        except self._errors as error:
            self._unavailable(error, "the dead letters cannot be read")

    def retry_dead(self, row_ids: Iterable[int] | None = None) -> int:
        """Queue dead letters again (all, or those in ``row_ids``); returns how many."""
        args: list[object] = ["all"] if row_ids is None else ["some", *row_ids]
        try:
            return int(self._run("RETRY_DEAD", args))
        except self._errors as error:
            self._unavailable(error, "no dead letter was queued again")

    def retry_now(self) -> int:
        """Make every row waiting out a backoff due now; rows in flight are left to their owners."""
        try:
            return int(self._run("RETRY_NOW", [self.partitions]))
        except self._errors as error:
            self._unavailable(error, "no backoff was ended")

    def sent_digests(self, keys: Iterable[str]) -> dict[str, str]:
        """What declared model sync last queued per key, from any host (``{}`` while Redis fails)."""
        return self._sent.digests(keys)

    def remember_digests(self, digests: Mapping[str, str | None]) -> None:
        """Record what was just queued per key (``None``: forget the key); nothing while Redis fails."""
        self._sent.remember(digests)

    def stats(self) -> OutboxStats:
        """Counts of what the whole cluster's outbox holds; raises :class:`OutboxUnavailableError`
        while Redis fails."""
        self.ingest()
        try:
            unfinished, in_flight, dead, oldest, now, meta_flat = self._run("STATS", [self.partitions])
            next_due_in = self._peek()
        except self._errors as error:
            self._unavailable(error, "its counts cannot be read")
        meta = {decode(meta_flat[i]): meta_flat[i + 1] for i in range(0, len(meta_flat), 2)}
        return OutboxStats(
            pending=int(unfinished) - int(in_flight),
            in_flight=int(in_flight),
            delivered=int(meta.get("delivered", 0)),
            dead=int(dead),
            oldest_pending_age=max(0.0, float(now) - float(oldest)) if oldest else None,
            last_error=decode(meta["last_error"]) if "last_error" in meta else None,
            refused=int(meta.get("refused", 0)),
            dropped=int(meta.get("dropped", 0)),
            next_due_in=next_due_in,
        )

    def _peek(self) -> float | None:
        due_in = decode(self._run("CLAIM", self._leases.claim_args("peek", "", 0)))
        return float(due_in) if due_in else None

    def next_due_in(self) -> float | None:
        """Seconds until a row anywhere may be claimed (0: now); ``None`` when nothing is unfinished
        (or Redis fails)."""
        if not self._delivery_may_try():
            return None
        self.ingest()
        try:
            return self._peek()
        except self._errors as error:
            self._outage.report(error)
            return None

    def unfinished(self) -> int:
        """How many rows are pending or in flight, on every host; raises
        :class:`OutboxUnavailableError` while Redis fails."""
        self.ingest()
        pipe = self.client.pipeline(transaction=False)
        for partition in range(self.partitions):
            pipe.zcard(f"{self.keys}p:{partition}")
        try:
            return sum(int(count) for count in pipe.execute())
        except self._errors as error:
            self._unavailable(error, "its rows cannot be counted")

    def prune(self, *, pause: float = 0.0) -> int:
        """Nothing to prune: an acknowledged row leaves Redis at once."""
        return 0

    def checkpoint(self) -> None:
        """Nothing to do: Redis persists by its own settings (``appendfsync``)."""

    def close(self) -> None:
        """Hand this process's partitions to the other workers at once and close the client's
        connections; the outbox is unusable after."""
        if self._closed:
            return
        with contextlib.suppress(*self._errors):  # else they expire on their own
            self._run("LEAVE", self._leases.leave_args())
        self._closed = True
        self.client.close()

    def __enter__(self) -> RedisOutbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
