"""How journaled events enter the Redis outbox: the partition of a row, the forward's batches and their
arguments, and the id that names this host's journal folder in Redis (see docs/redis.md)."""

from __future__ import annotations

import os
import secrets
import socket
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Final

from .journal import JournalRecord

__all__ = ["FORWARD_BATCH", "FORWARD_BATCH_BYTES", "batches", "folder_id", "partition_of", "record_args"]

#: Journal records moved in by one script (a few hundred KiB: Redis is never blocked for long).
FORWARD_BATCH: Final = 1000
FORWARD_BATCH_BYTES: Final = 1 << 20
#: The file in the journal folder naming it in Redis (its offsets survive a restart on one disk).
FOLDER_ID_FILE: Final = "redis-intake-id"


def partition_of(ordering_key: str | None, shared_key: str | None, partitions: int) -> int:
    """The partition of a row: a stable hash of its root key (the shared key when it has one, else
    its own), so that rows that order each other are mostly drained by one worker."""
    root = shared_key if shared_key is not None and ordering_key is not None else ordering_key
    if root is None:
        return secrets.randbelow(partitions)
    return zlib.crc32(root.encode("utf-8")) % partitions


def folder_id(folder: Path) -> str:
    """The journal folder's name in Redis, kept in a file of the folder (made once)."""
    path = folder / FOLDER_ID_FILE
    try:
        return path.read_text("ascii").strip()
    except FileNotFoundError:
        pass
    made = f"{socket.gethostname()}-{secrets.token_hex(8)}"
    pending = path.with_suffix(f".{os.getpid()}.tmp")
    pending.write_text(made, "ascii")
    try:
        os.link(pending, path)  # the first process wins; the others read its id
    except FileExistsError:
        pass
    finally:
        pending.unlink(missing_ok=True)
    return path.read_text("ascii").strip()


def batches(records: list[JournalRecord]) -> Iterable[list[JournalRecord]]:
    batch: list[JournalRecord] = []
    size = 0
    for record in records:
        if batch and (len(batch) >= FORWARD_BATCH or size + len(record.body) > FORWARD_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(record)
        size += len(record.body)
    if batch:
        yield batch


def record_args(record: JournalRecord, partitions: int) -> list[object]:
    shared = record.shared_key if record.ordering_key is not None else None
    return [
        record.ordering_key or "",
        shared or "",
        record.droppable,
        repr(record.created_at),
        record.body,
        partition_of(record.ordering_key, shared, partitions),
    ]
