"""How rows enter the Redis outbox: the forwarder of journaled events, the partition of a row, the
forward's batches packed into one argument each, the id that names this host's journal folder in
Redis, and the refusals and warnings of the cap (see docs/redis.md, "Intake" and "The forwarder")."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import struct
import time
import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ..redis_store import decode
from .contract import CapLog
from .journal import Collected, JournalRecord, JournalWriter, collect, ingest_lock

if TYPE_CHECKING:
    from redis import Redis
    from redis.commands.core import Script

__all__ = [
    "FORWARD_BATCH",
    "FORWARD_BATCH_BYTES",
    "FORWARD_PIPELINE",
    "Forwarder",
    "batches",
    "folder_id",
    "pack_records",
    "partition_of",
]

logger = logging.getLogger(__name__)

#: Journal records moved in by one script (a few hundred KiB: Redis is never blocked for long).
FORWARD_BATCH: Final = 1000
FORWARD_BATCH_BYTES: Final = 1 << 20
#: Scripts sent in one round trip: with ``appendfsync always`` Redis writes the file once for all
#: the commands it read together, so a pipeline of batches shares one ``fsync``.
FORWARD_PIPELINE: Final = 4
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


#: A record's head in the packed batch (little-endian): droppable, partition, then the lengths of
#: created_at (its ``repr``), ordering key, shared key and body, each read by the script's
#: ``struct.unpack('<BHi4c0i4c0i4c0i4c0', ...)`` just before its bytes.
_HEAD: Final = struct.Struct("<BHi")
_LENGTH: Final = struct.Struct("<i")


def pack_records(records: Iterable[JournalRecord], partitions: int) -> bytes:
    """A batch of records as the one argument the FORWARD script unpacks (``''``: no key).

    One argument instead of six per record: redis-py's packing of the arguments was half of what a
    forward cost in this process."""
    parts: list[bytes] = []
    head, length = _HEAD.pack, _LENGTH.pack
    for record in records:
        ordering_key = record.ordering_key
        shared = record.shared_key if ordering_key is not None else None
        created = repr(record.created_at).encode("ascii")
        key = ordering_key.encode("utf-8") if ordering_key is not None else b""
        shared_bytes = shared.encode("utf-8") if shared is not None else b""
        parts += (
            head(record.droppable, partition_of(ordering_key, shared, partitions), len(created)),
            created, length(len(key)), key, length(len(shared_bytes)), shared_bytes,
            length(len(record.body)), record.body,
        )  # fmt: skip
    return b"".join(parts)


class Forwarder:
    """This host's intake journal, and how its events move into the Redis outbox: in order, exactly
    once, in pipelined batches (one FORWARD script each, offsets compared and set with the rows).

    ``keys`` is the outbox's key prefix, ``script`` its registered FORWARD script; events dropped
    from visitors' shares are told to ``cap_log``. It keeps the estimate ``put_event`` refuses by:
    the rows Redis held at this host's latest forward, and the journal's append count just before it.
    """

    def __init__(
        self,
        journal: JournalWriter,
        client: Redis,
        keys: str,
        script: Script,
        partitions: int,
        cap_log: CapLog,
    ) -> None:
        self.journal = journal
        self.folder_id = folder_id(journal.folder)
        self._client = client
        self._keys = keys
        self._meta = keys + "meta"
        self._intake = f"{keys}intake:{self.folder_id}"
        self._script = script
        self._partitions = partitions
        self._cap_log = cap_log
        self.rows_at_forward = 0
        self.appended_at_forward = 0

    def room_left(self, max_rows: int) -> int:
        """The rows ``put_event`` may still journal by the estimate (see the class)."""
        appended_since = self.journal.appended_everywhere() - self.appended_at_forward
        return max_rows - self.rows_at_forward - appended_since

    def forward(self, visitor_max: int) -> int:
        """Move every journaled record of the host into Redis; returns how many (0 when another
        pass had moved some of them: the next reads again). Raises redis-py's errors."""
        journal = self.journal
        with journal.ingest_mutex, ingest_lock(journal.folder):
            appended = journal.appended_everywhere()
            cut = time.monotonic_ns()
            offsets = {decode(k): int(v) for k, v in self._client.hgetall(self._intake).items()}
            found = collect(journal.folder, offsets, cut)
            calls = self._calls(found, offsets, visitor_max)
            held = self._send(calls) if calls else int(self._client.hget(self._meta, "n") or 0)
            if held is None:  # another pass moved them (a retried script that had run): read again
                logger.info("datacue: the journal's offsets in Redis moved on; reading again")
                return 0
            for name in found.finished:  # read to the end (offsets in Redis) and no writer left
                (journal.folder / name).unlink(missing_ok=True)
            self.rows_at_forward, self.appended_at_forward = held, appended
        return len(found.records)

    def _calls(self, found: Collected, offsets: dict[str, int], visitor_max: int) -> list[list[Any]]:
        """The FORWARD scripts' arguments, batch by batch; the last also records the segments read
        to their end and forgets those gone from the folder."""
        forgotten = [name for name in offsets if name not in found.present]
        groups = list(batches(found.records)) or [[]]
        expected = dict(offsets)
        calls: list[list[Any]] = []
        for number, batch in enumerate(groups):
            last = number == len(groups) - 1
            moved = {record.segment: record.end for record in batch}
            if last:
                moved.update(found.offsets)
            forgets = forgotten if last else []
            if not batch and not moved and not forgets:
                break
            args: list[Any] = [self._keys, self.folder_id, visitor_max, len(moved)]
            for name, end in moved.items():
                args += [name, expected.get(name, 0), end]
            args += [len(forgets), *forgets, pack_records(batch, self._partitions)]
            calls.append(args)
            expected.update(moved)
        return calls

    def _send(self, calls: list[list[Any]]) -> int | None:
        """Run the scripts in order, ``FORWARD_PIPELINE`` a round trip; the rows held after the last,
        or ``None`` when one found its offsets moved on (it changed nothing; those after it only
        move records nobody moved, since each compares its own offsets)."""
        held: int | None = None
        for start in range(0, len(calls), FORWARD_PIPELINE):
            group = calls[start : start + FORWARD_PIPELINE]
            if len(group) == 1:  # the usual pass of a busy worker: no pipeline (and no SCRIPT EXISTS)
                answers: list[Any] = [self._script(keys=[self._meta], args=group[0])]
            else:
                pipe = self._client.pipeline(transaction=False)
                for args in group:
                    self._script(keys=[self._meta], args=args, client=pipe)
                answers = pipe.execute()
            for answer in answers:
                if not isinstance(answer, list):  # -1: the offsets had moved on
                    return None
                held, dropped = int(answer[0]), int(answer[1])
                if dropped:
                    self._cap_log.dropped(dropped)
        return held
