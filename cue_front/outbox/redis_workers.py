"""One process's side of the Redis outbox: its worker id and partition leases (what a claim asks
for), the rows a claim hands it, the pause every worker shares, the dead letters it reads, and
whether Redis failed lately (see docs/redis.md, "Partitions and workers", "The shared pause" and
"While Redis is down")."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import struct
import time
from typing import TYPE_CHECKING, Any, Final

from .. import forks
from ..redis_store import RetryPause, decode, redis_errors
from .contract import DeadLetter, OutboxRow

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

__all__ = [
    "MAX_PARTITION_LEASE",
    "SCAN_PER_PARTITION",
    "Outage",
    "PartitionLeases",
    "SharedPause",
    "read_dead_letters",
    "unpack_rows",
]

logger = logging.getLogger(__name__)

#: Ids a claim reads per partition at most (rows deeper in a partition wait for the ones before).
SCAN_PER_PARTITION: Final = 5000
#: The longest a partition lease (and a worker's heartbeat) lasts unrenewed (seconds).
MAX_PARTITION_LEASE: Final = 10.0
#: After Redis failed, delivery leaves it alone this long (seconds); puts always try.
RETRY_AFTER_FAILURE: Final = 1.0
#: The shared pause is read from Redis at most this often (seconds).
PAUSE_READ_INTERVAL: Final = 0.25

_LENGTH: Final = struct.Struct("<I")


class PartitionLeases:
    """This process as a worker: a name of its own (a forked child gets another) under which the
    CLAIM script keeps its heartbeat and leases its share of the ``partitions``."""

    def __init__(self, partitions: int, lease_seconds: float) -> None:
        self.partitions = partitions
        self.lease_seconds = lease_seconds
        self.partition_lease = min(lease_seconds, MAX_PARTITION_LEASE)
        self._generation = -1
        self._worker_id = ""

    @property
    def worker_id(self) -> str:
        if self._generation != forks.generation:  # a forked child is a worker of its own
            self._generation = forks.generation
            self._worker_id = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        return self._worker_id

    def claim_args(self, mode: str, owner: str, limit: int) -> list[object]:
        """The CLAIM script's arguments: ``mode`` 'claim' (for ``owner``, up to ``limit`` rows) or 'peek'."""
        return [
            mode, self.worker_id, int(self.partition_lease * 1000), self.partitions, limit,
            repr(self.lease_seconds), owner, SCAN_PER_PARTITION,
        ]  # fmt: skip

    def leave_args(self) -> list[object]:
        """The LEAVE script's arguments: this worker's heartbeat and leases go at once."""
        return [self.worker_id, self.partitions]


def unpack_rows(data: bytes) -> list[OutboxRow]:
    """The rows of a claim, as the CLAIM script packs them: for each, its attempts (4 bytes), then
    id, kind, method, path, body, ordering key ('' for none) and created_at, each after its length.

    One reply string instead of eight per row: redis-py parses replies in Python, and a claim's
    rows parsed one field at a time held the GIL a request thread was waiting for."""
    rows: list[OutboxRow] = []
    length = _LENGTH.unpack_from
    at, end = 0, len(data)
    while at < end:
        (attempts,) = length(data, at)
        at += 4
        fields: list[bytes] = []
        for _ in range(7):
            (size,) = length(data, at)
            fields.append(data[at + 4 : at + 4 + size])
            at += 4 + size
        row_id, kind, method, path, body, key, created = fields
        rows.append(
            OutboxRow(
                int(row_id), kind.decode(), method.decode(), path.decode(), body,
                key.decode("utf-8") or None, attempts, float(created),
            )
        )  # fmt: skip
    return rows


class Outage:
    """Whether the outbox's Redis failed lately: delivery then leaves it alone for a second (a
    :class:`~cue_front.redis_store.RetryPause`), and the outage is logged once, and its end once."""

    def __init__(self) -> None:
        self._pause = RetryPause(RETRY_AFTER_FAILURE)
        self._reported = False

    def may_try(self) -> bool:
        return not self._pause.active()

    def report(self, error: Exception) -> None:
        self._pause.start()
        if not self._reported:
            self._reported = True
            logger.warning(
                "datacue: the outbox's Redis (DATACUE_OUTBOX_URL) failed (%s); events wait in this host's"
                " journal, delivery waits, and both resume when Redis answers",
                error,
            )

    def answered(self) -> None:
        if self._reported:
            self._reported = False
            logger.warning("datacue: the outbox's Redis answers again; delivery resumes")


class SharedPause:
    """The pause every worker on every host shares (a 429, DataCue down): set with an expiry in the
    outbox's ``pause`` key (``keys`` is its prefix) by the PAUSE ``script`` (never shortening a
    longer one), read at most every 0.25 s."""

    def __init__(self, client: Redis, keys: str, script: Script, outage: Outage) -> None:
        self._client = client
        self._keys = keys
        self._key = keys + "pause"
        self._script = script
        self._outage = outage
        self._errors = redis_errors()
        self._read_at = -PAUSE_READ_INTERVAL
        self._until = 0.0

    def pause_all(self, seconds: float, *, may_try: bool) -> None:
        """Pause every worker for ``seconds``: this one at once, the others through Redis."""
        self._until = max(self._until, time.monotonic() + seconds)
        if seconds > 0 and may_try:
            try:
                self._script(keys=[self._key], args=[self._keys, int(seconds * 1000) + 1])
            except self._errors as error:
                self._outage.report(error)

    def paused_for(self, *, may_try: bool) -> float:
        """Seconds left of the shared pause; 0 when none."""
        now = time.monotonic()
        if now - self._read_at >= PAUSE_READ_INTERVAL and may_try:
            self._read_at = now
            try:
                left = int(self._client.pttl(self._key))
            except self._errors as error:
                self._outage.report(error)
            else:
                if left > 0:
                    self._until = max(self._until, now + left / 1000)
        return max(0.0, self._until - now)


def read_dead_letters(client: Redis, keys: str, limit: int) -> list[DeadLetter]:
    """The dead letters of every host (the outbox's key prefix ``keys``), most recently refused first."""
    ids: list[Any] = list(client.zrevrange(keys + "dead", 0, limit - 1))
    pipe = client.pipeline(transaction=False)
    for row_id in ids:
        pipe.hmget(f"{keys}r:{decode(row_id)}", "k", "m", "p", "b", "ls", "le", "rb", "a", "c", "f")
    letters = []
    for row_id, fields in zip(ids, pipe.execute(), strict=True):
        kind, method, path, body, status, error, answer, attempts, created, failed = fields
        if body is None:
            continue  # settled meanwhile
        letters.append(
            DeadLetter(
                int(row_id), decode(kind) or "event", decode(method) or "POST", decode(path) or "",
                bytes(body), int(status) if status else None, decode(error) or "", decode(answer) or None,
                int(attempts or 0), float(created), float(failed),
            )
        )  # fmt: skip
    letters.sort(key=lambda letter: (letter.failed_at, letter.id), reverse=True)
    return letters
