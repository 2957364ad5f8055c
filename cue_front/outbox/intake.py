"""How rows enter the SQLite outbox: puts under the row cap, and journaled events moved in, in order.

The cap and what happens past it (events refused loudly, store changes kept) are in
docs/delivery.md ("Bounds and the overflow policy"); the journal is :mod:`.journal`.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from collections.abc import Callable, Iterable
from typing import Final, NoReturn

from . import sql
from .connections import ConnectionPool, when_unlocked
from .contract import KINDS, CapLog, Droppable, full_error
from .journal import JournalRecord, JournalWriter, collect, ingest_lock

__all__ = ["Intake"]

logger = logging.getLogger(__name__)

#: With less room than this left, put_event counts exactly, one process at a time: the
#: estimate may miss appends other threads are making at this very moment.
_EXACT_ROOM: Final = 64


class Intake:
    """The intake side of one SQLite outbox in this process: ``put``, ``put_event`` and ``ingest``.

    ``journal`` is this process's writer for the outbox's journal, or ``None`` when events
    go straight into SQLite; ``prune`` deletes delivered rows (before refusing an event).
    """

    def __init__(
        self,
        pool: ConnectionPool,
        *,
        max_rows: int,
        visitor_max: int,
        store_max: int,
        journal: JournalWriter | None,
        prune: Callable[[], int],
    ) -> None:
        self._pool = pool
        self.max_rows = max_rows
        self.visitor_max = visitor_max
        self.store_max = store_max
        self._journal = journal
        self._prune = prune
        #: The row count after this process's latest ingest, and the journal's append
        #: count taken just before it: put_event's estimate of the room left (see there).
        self._rows_at_ingest = max_rows
        self._appended_at_ingest = 0
        self._cap_log = CapLog(max_rows, visitor_max, f"at {pool.path}")

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
        """Queue one request; returns its row id once it is durable.

        Raises :class:`OutboxFullError` for an event when the outbox is full even after
        pruning delivered rows, and for a ``"rest"`` row past the store changes' own bound.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if ordering_key is None:
            shared_key = None  # a row with no key of its own waits for nothing
        if kind == "event" and self._journal is not None:
            self.ingest()  # events journaled before this one get their ids first: order kept
        now = time.time()
        values = (
            kind, method, path, body, ordering_key, now, self.max_rows, self.store_max, droppable, shared_key
        )
        connection = self._pool.acquire(intake=True)
        try:
            row_id = self._insert(connection, values)
        finally:
            self._pool.release(connection, intake=True)
        if row_id is None:
            row_id = self._put_when_full(values)
        self._count_direct_row()
        if kind == "rest":
            self._warn_if_over_cap()
        elif droppable and ordering_key is not None:
            with self._pool.write() as connection:
                self._drop_crowded(connection, [ordering_key])
        return row_id

    def _count_direct_row(self) -> None:
        """Tell put_event's estimates in every process about a row inserted here (see journal)."""
        journal = self._journal
        if journal is not None and not journal.count(1):
            with journal.ingest_mutex, ingest_lock(journal.folder):
                journal.count_shared(1)

    def _insert(self, connection: sqlite3.Connection, values: tuple[object, ...]) -> int | None:
        """Run the put's INSERT; the row id, or None when the cap refused it.

        When another connection holds the write lock (the worker's ack, another process's
        put), the put waits in steps of tens of microseconds (see :func:`_when_unlocked`).
        """
        cursor = when_unlocked(lambda: connection.execute(sql.INSERT, values))
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def put_event(
        self,
        body: bytes,
        ordering_key: str | None = None,
        *,
        droppable: Droppable = Droppable.NEVER,
        shared_key: str | None = None,
    ) -> int | None:
        """Queue one event the quick way: through the journal, without a system call.

        Durable when it returns, like :meth:`put`. Returns ``None`` for a journaled event
        (it gets its row id when :meth:`ingest` moves it into the outbox) and the row id
        when the journal is off or cannot take it (then :meth:`put` is used). Raises
        :class:`OutboxFullError` like :meth:`put`, and keeps the same cap: the room left
        is the row count of the latest ingest less every event journaled since (an
        overestimate of the rows, never an under); near the cap, events are counted
        exactly, one at a time across the host.
        """
        journal = self._journal
        if journal is None or self._pool.closed:
            return self.put(
                "event", "POST", "", body, ordering_key, droppable=droppable, shared_key=shared_key
            )
        try:
            if journal.counted and self._room_left(journal) > _EXACT_ROOM:
                if not journal.append(ordering_key, body, time.time(), droppable, shared_key):
                    self._count_direct_row()  # only if this process lost its slot meanwhile
            else:
                with journal.ingest_mutex, ingest_lock(journal.folder):
                    self._ingest_locked()
                    if self._rows_at_ingest >= self.max_rows:
                        self._prune()
                        with self._pool.connection() as connection:
                            self._rows_at_ingest = int(connection.execute(sql.ROW_COUNT).fetchone()[0])
                        if self._rows_at_ingest >= self.max_rows:
                            self._refuse()
                    if not journal.append(ordering_key, body, time.time(), droppable, shared_key):
                        journal.count_shared(1)  # no slot for this process: counted here, locked
        except OSError as error:  # no segment could be made (a full disk): SQLite says why
            logger.warning("datacue: the outbox journal at %s cannot take events: %s", journal.folder, error)
            return self.put(
                "event", "POST", "", body, ordering_key, droppable=droppable, shared_key=shared_key
            )
        return None

    def _room_left(self, journal: JournalWriter) -> int:
        appended_since = journal.appended_everywhere() - self._appended_at_ingest
        return self.max_rows - self._rows_at_ingest - appended_since

    def ingest(self) -> int:
        """Move journaled events into the outbox, in order; returns how many (see the journal).

        Any process may run it (the delivery worker does, before each claim); passes are
        serialised by a lock file, and each record is moved exactly once.
        """
        journal = self._journal
        if journal is None or self._pool.closed:
            return 0
        with journal.ingest_mutex, ingest_lock(journal.folder):
            return self._ingest_locked()

    def retire_journal(self) -> None:
        """At exit: this process's journal segment is closed, its events moved into the outbox,
        and the segment deleted (else the next start's first ingest deletes it)."""
        if self._journal is None or self._pool.closed:
            return
        self._journal.close()
        self.ingest()

    def _ingest_locked(self) -> int:
        assert self._journal is not None
        folder = self._journal.folder
        # Counted before the cut: every append counted here was whole before it, so this
        # pass moves it. (One completed after the count but before the cut is moved too
        # and will be counted again as "since": an overestimate, on the safe side.)
        appended = self._journal.appended_everywhere()
        cut = time.monotonic_ns()
        with self._pool.connection() as connection:
            offsets = dict(connection.execute("SELECT name, offset FROM outbox_intake").fetchall())
        found = collect(folder, offsets, cut)
        forgotten = [(name,) for name in offsets if name not in found.present]
        if found.records or found.offsets or forgotten:
            with self._pool.write() as connection:
                connection.executemany(sql.INGEST, map(_ingest_values, found.records))
                self._drop_crowded(connection, {r.ordering_key for r in found.records if r.droppable})
                connection.executemany(
                    "INSERT INTO outbox_intake (name, offset) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET offset = excluded.offset",
                    list(found.offsets.items()),
                )
                # Offsets of files deleted by an earlier pass (never by this one: a crash
                # between its commit and the deletes must not read a file again from 0).
                connection.executemany("DELETE FROM outbox_intake WHERE name = ?", forgotten)
                rows = connection.execute(sql.ROW_COUNT).fetchone()[0]
        else:
            with self._pool.connection() as connection:
                rows = connection.execute(sql.ROW_COUNT).fetchone()[0]
        for name in found.finished:  # read to the end (offsets committed above) and no writer
            (folder / name).unlink(missing_ok=True)
        self._rows_at_ingest, self._appended_at_ingest = int(rows), appended
        return len(found.records)

    def _put_when_full(self, values: tuple[object, ...]) -> int:
        self._prune()
        with self._pool.connection() as connection:
            cursor = connection.execute(sql.INSERT, values)
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                return cursor.lastrowid
        if values[0] == "rest":
            raise full_error("rest", self.max_rows, self.store_max, f"at {self._pool.path}")
        self._refuse()

    def _drop_crowded(self, connection: sqlite3.Connection, keys: Iterable[str | None]) -> None:
        """Within a write transaction: drop the oldest droppable rows of every key in ``keys``
        holding more than ``visitor_max`` unfinished rows, down to that share (see the policy)."""
        wanted = [key for key in keys if key is not None]
        now = time.time()
        dropped = 0
        for start in range(0, len(wanted), sql.IDS_PER_STATEMENT):
            chunk = wanted[start : start + sql.IDS_PER_STATEMENT]
            statement = sql.CROWDED_KEYS.format(marks=",".join("?" * len(chunk)))
            for key, count in connection.execute(statement, (*chunk, self.visitor_max)).fetchall():
                dropped += connection.execute(sql.DROP_OLDEST, (key, count - self.visitor_max, now)).rowcount
        if dropped:
            connection.execute(sql.COUNT_DROPPED, (dropped,))
            self._cap_log.dropped(dropped)

    def drop_unsent(self, ordering_keys: Iterable[str]) -> int:
        """Drop every unsent row of these keys (an erasure, see ``Outbox.drop_unsent``); rows a
        worker is sending now are marked erased. Returns how many rows were dropped or marked."""
        keys = list(ordering_keys)
        dropped = marked = 0
        now = time.time()
        with self._pool.write() as connection:
            for start in range(0, len(keys), sql.IDS_PER_STATEMENT):
                chunk = keys[start : start + sql.IDS_PER_STATEMENT]
                marks = ",".join("?" * len(chunk))
                dropped += connection.execute(sql.DROP_UNSENT.format(marks=marks), (now, *chunk)).rowcount
                marked += connection.execute(sql.MARK_ERASED.format(marks=marks), (now, *chunk)).rowcount
            if dropped:
                connection.execute(sql.COUNT_DROPPED, (dropped,))
        return dropped + marked

    def _refuse(self) -> NoReturn:
        """Count a refused event and say so (see the overflow policy)."""
        with self._pool.write() as connection:
            connection.execute("UPDATE outbox_meta SET value = value + 1 WHERE name = 'refused'")
        raise full_error("event", self.max_rows, self.store_max, f"at {self._pool.path}")

    def _warn_if_over_cap(self) -> None:
        with self._pool.connection() as connection:
            rows = connection.execute(sql.ROW_COUNT).fetchone()[0]
        if rows > self.max_rows:
            self._cap_log.accepted(rows)


def _ingest_values(record: JournalRecord) -> tuple[object, ...]:
    """The values of :data:`sql.INGEST` for one journal record (due as soon as it was made)."""
    return (
        record.body,
        record.ordering_key,
        record.created_at,
        record.created_at,
        record.droppable,
        record.shared_key,
    )
