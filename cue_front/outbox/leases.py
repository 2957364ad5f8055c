"""The SQLite outbox's delivery side: rows leased to a worker's claim, and settled by it
(delivered, retried later, released unsent, or kept as dead letters).

:class:`~.sqlite.Outbox` delegates to one :class:`Leases`, as it delegates intake to
:class:`~.intake.Intake`; how claims, leases and order work is told in docs/delivery.md
("The SQLite outbox").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from . import sql
from .connections import ConnectionPool
from .contract import MAX_RESPONSE_CHARS, OutboxRow

__all__ = ["Leases"]


class Leases:
    """Claims and settles of the rows in ``pool``'s outbox; a claim holds its rows for
    ``lease_seconds`` and first moves journaled events in with ``ingest``."""

    def __init__(self, pool: ConnectionPool, *, lease_seconds: float, ingest: Callable[[], int]) -> None:
        self._pool = pool
        self.lease_seconds = lease_seconds
        self._ingest = ingest

    def claim(self, owner: str, limit: int = 100) -> list[OutboxRow]:
        """Lease up to ``limit`` (at most 500) due rows to ``owner`` for ``lease_seconds``, oldest first.

        A row is due when it is pending, its backoff is over and no earlier row with its
        ``ordering_key`` is unfinished; so at most one row per key is ever claimed.
        """
        if limit < 1:
            return []
        self._ingest()
        limit = min(limit, sql.IDS_PER_STATEMENT)
        now = time.time()
        lease_end = now + self.lease_seconds
        with self._pool.connection() as connection:
            # Found without the write lock (puts go on meanwhile, however long the queue)...
            keyed = connection.execute(sql.CLAIMABLE_KEYED, (now, limit)).fetchall()
            unkeyed = connection.execute(sql.CLAIMABLE_UNKEYED, (now, limit)).fetchall()
            found = sorted(keyed + unkeyed)[:limit] if keyed and unkeyed else (keyed or unkeyed)
            if not found:
                return []
            # ...then taken under it, each only if still free: another process may have
            # claimed one in between. What this owner holds is then exactly what bears its
            # name and this lease's end (owners are unique per claiming thread).
            ids = [row[0] for row in found]
            marks = ",".join("?" * len(ids))
            connection.execute("BEGIN IMMEDIATE")
            try:
                taken = connection.execute(
                    "UPDATE outbox SET due_at = ?, lease_owner = ?, attempts = attempts + 1"
                    f" WHERE id IN ({marks}) AND state = 0 AND due_at <= ?",
                    (lease_end, owner, *ids, now),
                ).rowcount
            except BaseException:
                connection.rollback()
                raise
            connection.execute("COMMIT")
            if taken < len(found):
                held = {
                    row_id
                    for (row_id,) in connection.execute(
                        f"SELECT id FROM outbox WHERE id IN ({marks}) AND lease_owner = ? AND due_at = ?",
                        (*ids, owner, lease_end),
                    )
                }
                found = [row for row in found if row[0] in held]
        return [  # attempts counts this claim too
            OutboxRow(row_id, kind, method, path, bytes(body), key, attempts + 1, created_at)
            for row_id, kind, method, path, body, key, attempts, created_at in found
        ]

    def ack(self, row_ids: Iterable[int]) -> None:
        """Mark rows delivered (whoever holds their lease now: DataCue has them)."""
        ids = list(row_ids)
        if not ids:
            return
        now = time.time()
        with self._pool.write() as connection:
            for start in range(0, len(ids), sql.IDS_PER_STATEMENT):
                chunk = ids[start : start + sql.IDS_PER_STATEMENT]
                connection.execute(
                    "UPDATE outbox SET state = 1, done_at = ?, lease_owner = NULL"
                    f" WHERE id IN ({','.join('?' * len(chunk))}) AND state != 1",
                    (now, *chunk),
                )
                self._settle_erased(connection, chunk, delivered=True)

    def retry_later(
        self,
        row_id: int,
        *,
        delay: float,
        error: str,
        status: int | None = None,
        owner: str | None = None,
    ) -> None:
        """Give a claimed row back, to be sent again in ``delay`` seconds; ``error`` says why it failed.

        With ``owner``, only if that owner still holds the row (its lease may have expired
        and the row gone to another worker, whose claim then stands).
        """
        now = time.time()
        with self._pool.write() as connection:
            connection.execute(
                "UPDATE outbox SET due_at = ?, lease_owner = NULL, last_status = ?, last_error = ?,"
                " failed_at = ? WHERE id = ? AND state = 0 AND (?6 IS NULL OR lease_owner = ?6)",
                (now + max(0.0, delay), status, error, now, row_id, owner),
            )
            self._settle_erased(connection, [row_id], delivered=False)
            connection.execute("UPDATE outbox_meta SET value = ? WHERE name = 'last_error'", (error,))

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        """Give claimed rows back unsent, due again in ``delay`` seconds; not counted as an attempt."""
        ids = list(row_ids)
        if not ids:
            return
        due_at = time.time() + max(0.0, delay)
        with self._pool.write() as connection:
            connection.executemany(
                "UPDATE outbox SET due_at = ?, lease_owner = NULL, attempts = MAX(attempts - 1, 0)"
                " WHERE id = ? AND state = 0 AND (?3 IS NULL OR lease_owner = ?3)",
                [(due_at, row_id, owner) for row_id in ids],
            )
            self._settle_erased(connection, ids, delivered=False)

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
        now = time.time()
        if response_body is not None:
            response_body = response_body[:MAX_RESPONSE_CHARS]
        with self._pool.write() as connection:
            connection.execute(
                "UPDATE outbox SET state = 2, lease_owner = NULL, last_status = ?, last_error = ?,"
                " response_body = ?, failed_at = ? WHERE id = ? AND state = 0"
                " AND (?6 IS NULL OR lease_owner = ?6)",
                (status, error, response_body, now, row_id, owner),
            )
            self._settle_erased(connection, [row_id], delivered=False)
            connection.execute("UPDATE outbox_meta SET value = ? WHERE name = 'last_error'", (error,))

    def _settle_erased(self, connection: Any, row_ids: list[int], *, delivered: bool) -> None:
        """Within a settle's transaction: rows erased (``drop_unsent``) while in flight lose their
        body; those that were not delivered are dropped and counted."""
        for start in range(0, len(row_ids), sql.IDS_PER_STATEMENT):
            chunk = row_ids[start : start + sql.IDS_PER_STATEMENT]
            statement = sql.SETTLE_ERASED.format(marks=",".join("?" * len(chunk)))
            settled = connection.execute(statement, (time.time(), int(delivered), *chunk)).rowcount
            if settled and not delivered:
                connection.execute(sql.COUNT_DROPPED, (settled,))
