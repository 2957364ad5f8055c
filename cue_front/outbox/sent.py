"""What declared model sync last queued per DataCue object, so that an unchanged object is not sent again.

A digest of the record, per key (``products/p1/v1``), kept in the outbox's own SQLite file
beside its rows, and shared by every process on the host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from . import sql
from .connections import ConnectionPool

__all__ = ["SentDigests"]


class SentDigests:
    """The ``outbox_sent`` table of one SQLite outbox."""

    def __init__(self, pool: ConnectionPool) -> None:
        self._pool = pool

    def digests(self, keys: Iterable[str]) -> dict[str, str]:
        """The digest remembered for each of ``keys`` that has one."""
        wanted = list(keys)
        found: dict[str, str] = {}
        with self._pool.connection() as connection:
            for start in range(0, len(wanted), sql.IDS_PER_STATEMENT):
                chunk = wanted[start : start + sql.IDS_PER_STATEMENT]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT key, digest FROM outbox_sent WHERE key IN ({marks})"
                rows = connection.execute(query, chunk)
                found.update(rows.fetchall())
        return found

    def remember(self, digests: Mapping[str, str | None]) -> None:
        """Remember each key's digest (``None``: forget the key), in one transaction."""
        kept = [(key, digest) for key, digest in digests.items() if digest is not None]
        forgotten = [(key,) for key, digest in digests.items() if digest is None]
        with self._pool.write() as connection:
            connection.executemany(
                "INSERT INTO outbox_sent (key, digest) VALUES (?, ?)"
                " ON CONFLICT (key) DO UPDATE SET digest = excluded.digest",
                kept,
            )
            connection.executemany("DELETE FROM outbox_sent WHERE key = ?", forgotten)
