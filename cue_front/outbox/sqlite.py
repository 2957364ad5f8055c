"""The SQLite outbox: a durable queue of requests owed to DataCue, shared by every process on the host.

It implements :class:`~cue_front.outbox.contract.OutboxBackend`; how claims, leases, order,
the row cap and durability work is told in docs/delivery.md ("The SQLite outbox").
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Final

from . import sql
from .connections import ConnectionPool
from .contract import DeadLetter, Droppable, OutboxRow, OutboxStats, visitor_share
from .intake import Intake
from .journal import JOURNAL_SUPPORTED, journal_folder, writer_for
from .leases import Leases
from .sent import SentDigests

__all__ = ["SYNCHRONOUS_MODES", "Outbox"]

#: The ``synchronous`` settings that keep a WAL database durable against a process crash.
SYNCHRONOUS_MODES: Final = ("NORMAL", "FULL")


class Outbox:
    """A durable queue of outbound requests in a SQLite file shared by every process on the host.

    ``max_rows`` bounds the rows kept, ``visitor_max`` the unsent events of one visitor (default
    1% of ``max_rows``), ``store_max`` the store changes kept beyond ``max_rows`` (see the
    overflow policy in docs/delivery.md);
    ``lease_seconds`` is how long a claim holds its rows before anyone may claim them
    again: keep it above the transport's connect + read timeout. ``synchronous`` is
    ``"NORMAL"`` (durable against a process crash) or ``"FULL"`` (also against power loss).
    ``journal=False`` makes :meth:`put_event` write into SQLite directly (see docs/delivery.md).
    Every process's outbox on one file should agree on it (the extension's do): an event put
    straight into SQLite by one without the journal does not wait for the events another
    journaled before it, so one visitor's events could then be reordered.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_rows: int = 100_000,
        lease_seconds: float = 30.0,
        synchronous: str = "NORMAL",
        journal: bool = True,
        visitor_max: int | None = None,
        store_max: int = 1_000_000,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows!r}")
        visitor_max = visitor_share(max_rows, visitor_max)
        if lease_seconds <= 0:
            raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")
        synchronous = synchronous.upper()
        if synchronous not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(SYNCHRONOUS_MODES)}, got {synchronous!r}"
            )
        self.path = Path(path)
        self.max_rows = max_rows
        self.lease_seconds = float(lease_seconds)
        self.synchronous = synchronous
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._paused_until = 0.0
        self._pool = ConnectionPool(self.path, synchronous)
        with self._pool.connection() as connection:
            sql.create_schema(connection, self.path)
        # Events queued with put_event go through the journal when the platform allows and
        # the durability asked for is the journal's.
        writer = None
        if journal and JOURNAL_SUPPORTED and synchronous == "NORMAL":
            writer = writer_for(journal_folder(self.path))
        self._sent = SentDigests(self._pool)
        self._intake = Intake(
            self._pool,
            max_rows=max_rows,
            visitor_max=visitor_max,
            store_max=store_max,
            journal=writer,
            prune=self.prune,
        )
        self._leases = Leases(self._pool, lease_seconds=self.lease_seconds, ingest=self.ingest)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, max_rows={self.max_rows})"

    # -- intake (see .intake) ---------------------------------------------------------------

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
        pruning delivered rows, and for a ``"rest"`` row past ``store_max`` more (see
        docs/delivery.md). A ``droppable`` event may be dropped if its key holds too many.
        ``shared_key`` is a key the row holds in common with others (see "Ordering").
        """
        return self._intake.put(
            kind, method, path, body, ordering_key, droppable=droppable, shared_key=shared_key
        )

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
        when the journal is off or cannot take it.
        """
        return self._intake.put_event(body, ordering_key, droppable=droppable, shared_key=shared_key)

    def ingest(self) -> int:
        """Move journaled events into the outbox, in order; returns how many.

        Any process may run it (the delivery worker does, before each claim); passes are
        serialised by a lock file, and each record is moved exactly once.
        """
        return self._intake.ingest()

    def retire_journal(self, timeout: float = 5.0) -> None:
        """At exit: this process's journal segment is closed, its events moved into the outbox,
        and the segment deleted (else the next start's first ingest deletes it). A local file:
        ``timeout`` is not waited on."""
        self._intake.retire_journal()

    # -- delivery -------------------------------------------------------------------------

    def claim(self, owner: str, limit: int = 100) -> list[OutboxRow]:
        """Lease up to ``limit`` (at most 500) due rows to ``owner`` for ``lease_seconds``, oldest first.

        A row is due when it is pending, its backoff is over and no earlier row with its
        ``ordering_key`` is unfinished; so at most one row per key is ever claimed.
        """
        return self._leases.claim(owner, limit)

    def ack(self, row_ids: Iterable[int]) -> None:
        """Mark rows delivered (whoever holds their lease now: DataCue has them)."""
        self._leases.ack(row_ids)

    def retry_later(
        self,
        row_id: int,
        *,
        delay: float,
        error: str,
        status: int | None = None,
        owner: str | None = None,
    ) -> None:
        """Give a claimed row back, to be sent again in ``delay`` seconds; ``error`` says why it failed
        (with ``owner``, only if that owner still holds it)."""
        self._leases.retry_later(row_id, delay=delay, error=error, status=status, owner=owner)

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        """Give claimed rows back unsent, due again in ``delay`` seconds; not counted as an attempt."""
        self._leases.release(row_ids, delay=delay, owner=owner)

    def dead_letter(
        self,
        row_id: int,
        *,
        status: int | None,
        error: str,
        response_body: str | None,
        owner: str | None = None,
    ) -> None:
        """Set a row aside for good: DataCue refused it. It stays visible and retryable."""
        self._leases.dead_letter(row_id, status=status, error=error, response_body=response_body, owner=owner)

    # -- dead letters ---------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead letters, most recently refused first."""
        with self._pool.connection() as connection:
            rows = connection.execute(
                "SELECT id, kind, method, path, body, last_status, last_error, response_body, attempts,"
                " created_at, failed_at FROM outbox WHERE state = 2 ORDER BY failed_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(row_id, kind, method, path, bytes(body), status, error or "", answer, *counts)
            for row_id, kind, method, path, body, status, error, answer, *counts in rows  # attempts, times
        ]

    def retry_dead(self, row_ids: Iterable[int] | None = None) -> int:
        """Queue dead letters again (all of them, or those in ``row_ids``); returns how many.

        A requeued row goes before the later rows of its key that are not in flight yet.
        """
        now = time.time()
        with self._pool.write() as connection:
            if row_ids is None:
                cursor = connection.execute(
                    "UPDATE outbox SET state = 0, due_at = ?, attempts = 0, lease_owner = NULL"
                    " WHERE state = 2",
                    (now,),
                )
                return cursor.rowcount
            cursor = connection.executemany(
                "UPDATE outbox SET state = 0, due_at = ?, attempts = 0, lease_owner = NULL"
                " WHERE id = ? AND state = 2",
                [(now, row_id) for row_id in row_ids],
            )
            return cursor.rowcount

    def drop_unsent(self, ordering_keys: Iterable[str]) -> int:
        """Drop every unsent row of these keys, in flight or not (an erasure: the bodies are
        emptied); returns how many. They are counted in ``stats().dropped``."""
        self.ingest()  # journaled events of these keys too
        return self._intake.drop_unsent(ordering_keys)

    def sent_digests(self, keys: Iterable[str]) -> dict[str, str]:
        """The digest last remembered for each of ``keys`` that has one (declared model sync)."""
        return self._sent.digests(keys)

    def remember_digests(self, digests: Mapping[str, str | None]) -> None:
        """Remember what was last queued per key (``None``: forget it, the object was deleted)."""
        self._sent.remember(digests)

    def pause_all(self, seconds: float) -> None:
        """Pause every worker of this process that shares this outbox (the SQLite outbox's workers
        are one per process; the Redis outbox shares the pause across hosts)."""
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def paused_for(self) -> float:
        """Seconds left of the pause :meth:`pause_all` set; 0 when none."""
        return max(0.0, self._paused_until - time.monotonic())

    def retry_now(self) -> int:
        """Make every pending row waiting out a backoff due now (DataCue is back); returns how many.

        Rows in flight are left to their owners.
        """
        now = time.time()
        with self._pool.write() as connection:
            return connection.execute(
                "UPDATE outbox SET due_at = ? WHERE state = 0 AND due_at > ? AND lease_owner IS NULL",
                (now, now),
            ).rowcount

    # -- upkeep ---------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Counts of what the outbox holds (a scan of the table: for status pages, not hot paths)."""
        self.ingest()
        now = time.time()
        with self._pool.connection() as connection:
            connection.execute("BEGIN")  # one snapshot for both reads
            try:
                waiting, in_flight, delivered, dead, oldest = connection.execute(
                    "SELECT COALESCE(SUM(state = 0 AND (lease_owner IS NULL OR due_at <= ?1)), 0),"
                    " COALESCE(SUM(state = 0 AND lease_owner IS NOT NULL AND due_at > ?1), 0),"
                    " COALESCE(SUM(state = 1), 0), COALESCE(SUM(state = 2), 0),"
                    " MIN(CASE WHEN state = 0 THEN created_at END) FROM outbox",
                    (now,),
                ).fetchone()
                meta = dict(connection.execute("SELECT name, value FROM outbox_meta").fetchall())
                (due_at,) = connection.execute(sql.NEXT_DUE).fetchone()
            finally:
                connection.execute("COMMIT")
        return OutboxStats(
            pending=int(waiting),
            in_flight=int(in_flight),
            # Dropped rows are marked done like delivered ones (and pruned with them).
            delivered=int(delivered) + int(meta["deleted"]) - int(meta["dropped"]),
            dead=int(dead),
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
            last_error=meta["last_error"],
            refused=int(meta["refused"]),
            dropped=int(meta["dropped"]),
            next_due_in=None if due_at is None else max(0.0, due_at - now),
        )

    def next_due_in(self) -> float | None:
        """Seconds until a row may be claimed (0: one may now); ``None`` when no row is unfinished.

        Only the first unfinished row of each key counts: the rows behind it wait for it.
        """
        self.ingest()
        with self._pool.connection() as connection:
            (due_at,) = connection.execute(sql.NEXT_DUE).fetchone()
        return None if due_at is None else max(0.0, due_at - time.time())

    def unfinished(self) -> int:
        """How many rows are not delivered and not dead (pending or in flight)."""
        self.ingest()
        with self._pool.connection() as connection:
            (count,) = connection.execute(
                "SELECT COUNT(*) FROM outbox INDEXED BY outbox_unfinished_by_key WHERE state = 0"
            ).fetchone()
        return int(count)

    def prune(self, *, pause: float = 0.0) -> int:
        """Delete delivered rows; returns how many. The worker calls this as it goes.

        Rows go in small chunks, one transaction each; ``pause`` seconds between chunks
        leave the write lock to the puts of request threads (the worker pauses; a put
        that found the outbox full does not).
        """
        pruned = 0
        while True:
            if pruned and pause:
                time.sleep(pause)
            with self._pool.write() as connection:
                deleted = connection.execute(sql.PRUNE_CHUNK, (sql.PRUNE_CHUNK_ROWS,)).rowcount
                if deleted:
                    connection.execute(
                        "UPDATE outbox_meta SET value = value + ? WHERE name = 'deleted'", (deleted,)
                    )
            pruned += deleted
            if deleted < sql.PRUNE_CHUNK_ROWS:
                return pruned

    def checkpoint(self) -> None:
        """Copy the WAL into the database file without blocking anyone (the worker calls this)."""
        with self._pool.connection() as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Close every connection this process opened. The outbox cannot be used afterwards."""
        self._pool.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
