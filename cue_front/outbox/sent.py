"""What declared model sync last queued per DataCue object, so that an unchanged object is not sent again.

A digest of the record, per key (``products/p1/v1``), kept beside the outbox's rows: in its
SQLite file, shared by every process on the host, or in its Redis, shared by every host.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from ..redis_store import decode, redis_errors
from . import sql
from .connections import ConnectionPool
from .redis_workers import Outage

if TYPE_CHECKING:
    from redis import Redis

__all__ = ["RedisSentDigests", "SentDigests"]


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


class RedisSentDigests:
    """The ``sent`` hash (``key``) of one Redis outbox. While Redis fails nothing is read or recorded
    (the ``outage`` is reported): every change is then queued, which only sends again what DataCue
    may have, and is never an error for the shop's commit."""

    def __init__(self, client: Redis, key: str, outage: Outage) -> None:
        self._client = client
        self._key = key
        self._outage = outage
        self._errors = redis_errors()

    def digests(self, keys: Iterable[str]) -> dict[str, str]:
        """The digest remembered for each of ``keys`` that has one; ``{}`` while Redis fails."""
        wanted = list(keys)
        if not wanted:
            return {}
        try:
            found = self._client.hmget(self._key, wanted)
        except self._errors as error:
            self._outage.report(error)
            return {}
        return {key: decode(digest) for key, digest in zip(wanted, found, strict=True) if digest is not None}

    def remember(self, digests: Mapping[str, str | None]) -> None:
        """Remember each key's digest (``None``: forget the key), in one transaction."""
        kept: dict[Any, Any] = {key: digest for key, digest in digests.items() if digest is not None}
        gone = [key for key, digest in digests.items() if digest is None]
        pipe = self._client.pipeline(transaction=True)
        if kept:
            pipe.hset(self._key, mapping=kept)
        if gone:
            pipe.hdel(self._key, *gone)
        try:
            pipe.execute()
        except self._errors as error:
            self._outage.report(error)
