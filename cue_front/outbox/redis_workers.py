"""One process's side of the Redis outbox: its worker id and partition leases (what a claim asks
for), the rows a claim hands it, and whether Redis failed lately (see docs/redis.md, "Partitions and
workers" and "While Redis is down")."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import struct
import time
from typing import Final

from .. import forks
from .contract import OutboxRow

__all__ = ["MAX_PARTITION_LEASE", "SCAN_PER_PARTITION", "Outage", "PartitionLeases", "unpack_rows"]

logger = logging.getLogger(__name__)

#: Ids a claim reads per partition at most (rows deeper in a partition wait for the ones before).
SCAN_PER_PARTITION: Final = 5000
#: The longest a partition lease (and a worker's heartbeat) lasts unrenewed (seconds).
MAX_PARTITION_LEASE: Final = 10.0
#: After Redis failed, delivery leaves it alone this long (seconds); puts always try.
RETRY_AFTER_FAILURE: Final = 1.0

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
    """Whether the outbox's Redis failed lately: delivery then leaves it alone for a second, and the
    outage is logged once, and its end once."""

    def __init__(self) -> None:
        self._down_until = 0.0
        self._reported = False

    def may_try(self) -> bool:
        return time.monotonic() >= self._down_until

    def report(self, error: Exception) -> None:
        self._down_until = time.monotonic() + RETRY_AFTER_FAILURE
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
