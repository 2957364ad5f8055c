"""The intake journal: how ``track()`` makes an event durable without a system call.

Each process appends records to memory-mapped segment files of its own; any process's
ingest moves them into the outbox, exactly once and in order. Files, records, counting
and the proof of order are in docs/delivery.md ("The intake journal").
"""

from __future__ import annotations

import mmap
import os
import secrets
import socket
import struct
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from .. import forks

try:
    import fcntl
except ImportError:  # Windows: no journal; events go straight into SQLite
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "JOURNAL_SUPPORTED",
    "Collected",
    "JournalRecord",
    "JournalWriter",
    "collect",
    "ingest_lock",
    "journal_folder",
    "writer_for",
]

#: The journal needs ``mmap``, ``flock`` and ``posix_fallocate`` (Linux, the BSDs; not macOS or Windows).
JOURNAL_SUPPORTED: Final = fcntl is not None and hasattr(os, "posix_fallocate")

SEGMENT_BYTES: Final = 4 * 1024 * 1024
#: Segments written now (records may carry a shared key), and those earlier writers left: before
#: shared keys (``.journal3``) and before the droppable flag (``.journal``). All are read.
SUFFIX: Final = ".journal4"
OLD_SUFFIXES: Final = (".journal3", ".journal")
PENDING_SUFFIX: Final = ".tmp"
#: A ``.tmp`` segment older than this (seconds) was left by a writer that died creating it.
ABANDONED_SECONDS: Final = 60.0

_SIZE = struct.Struct("<I")
_CRC = struct.Struct("<I")
_STAMPS = struct.Struct("<QdI")  # order stamp, created_at, key length
_CHECKED_FROM: Final = _SIZE.size + _CRC.size
_HEADER_BYTES: Final = _CHECKED_FROM + _STAMPS.size
_NO_KEY: Final = 0xFFFFFFFF
#: The key length's top two bits hold how droppable the event is (``Droppable``, 0 to 2). Keys are
#: far shorter than 1 GiB. Records of ``.journal`` segments never set them.
_DROPPABLE_SHIFT: Final = 30
_KEY_LENGTH_MASK: Final = (1 << _DROPPABLE_SHIFT) - 1
#: Between a record's ordering key and its shared key, when it has one: a byte UTF-8 never holds.
#: Only ``.journal4`` segments hold it, which a reader from before shared keys skips.
_SHARED_KEY_MARK: Final = b"\xff"
#: ``size`` of the marker a writer leaves when it moves on to its next segment.
_SEALED: Final = 0xFFFFFFFF
#: Counters in ``appended``: one per writing process, and the last one shared (see Counting).
COUNTER_SLOTS: Final = 64
_SHARED_SLOT: Final = COUNTER_SLOTS - 1


_writers: dict[Path, JournalWriter] = {}
_writers_lock = threading.Lock()
#: Every writer of this process, for the fork hooks (tests make some outside ``_writers``).
_every_writer: weakref.WeakSet[JournalWriter] = weakref.WeakSet()


def writer_for(folder: Path) -> JournalWriter:
    """This process's writer for the journal in ``folder``: one per process and folder, so
    that two outboxes on one file (two apps in one process) share its counter slot and lock."""
    folder = folder.resolve()
    with _writers_lock:
        writer = _writers.get(folder)
        if writer is None:
            writer = _writers[folder] = JournalWriter(folder)
        return writer


def _before_fork() -> None:
    # No fork in the middle of an append or of a segment's creation: the child would keep
    # a descriptor (and its lock) it does not know about.
    for writer in list(_every_writer):
        writer._lock.acquire()


def _after_fork_in_parent() -> None:
    for writer in list(_every_writer):
        writer._lock.release()


def _after_fork_in_child() -> None:
    global _writers_lock
    _writers_lock = threading.Lock()  # a parent's thread may have held it at the fork
    for writer in list(_every_writer):
        writer.forget_parents_segment()  # new locks: the inherited ones are held


forks.at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


def journal_folder(outbox_path: Path) -> Path:
    """Where the journals of the outbox at ``outbox_path`` live."""
    return outbox_path.with_name(outbox_path.name + ".intake")


@contextmanager
def ingest_lock(folder: Path) -> Iterator[None]:
    """One ingest at a time on the host. A POSIX record lock (``lockf``), not ``flock``: a
    child forked mid-pass does not inherit it, so it cannot hold it forever."""
    folder.mkdir(parents=True, exist_ok=True)  # someone may have removed it (a demo reset)
    fd = os.open(folder / "ingest.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _aligned(position: int) -> int:
    return (position + 7) & ~7


class JournalWriter:
    """This process's appends to the journal of one outbox (threads share it; a fork starts afresh)."""

    def __init__(self, folder: Path, segment_bytes: int = SEGMENT_BYTES) -> None:
        self.folder = folder
        self.segment_bytes = segment_bytes
        self.folder.mkdir(parents=True, exist_ok=True)
        self._start_afresh()
        _every_writer.add(self)

    def _start_afresh(self) -> None:
        self._pid = os.getpid()
        self._generation = forks.generation
        self._lock = threading.Lock()
        #: Held by this process's thread that ingests this journal (with :func:`ingest_lock`,
        #: which is per process: POSIX record locks do not tell one thread from another).
        self.ingest_mutex = threading.Lock()
        self._prefix = f"{socket.gethostname()}-{self._pid}-{secrets.token_hex(4)}"
        self._sequence = 0
        self._fd: int | None = None
        self._map: mmap.mmap | None = None
        self._position = 0
        self._counters_fd: int | None = None
        self._counters_map: mmap.mmap | None = None
        self._counters: memoryview | None = None
        self._slot: int | None = None

    def _open_counters(self) -> memoryview:
        if self._counters is None:
            fd = os.open(self.folder / "appended", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                os.posix_fallocate(fd, 0, COUNTER_SLOTS * 8)
                self._counters_map = mmap.mmap(fd, COUNTER_SLOTS * 8)
            except BaseException:
                os.close(fd)
                raise
            self._counters_fd = fd
            self._counters = memoryview(self._counters_map).cast("Q")
        return self._counters

    def appended_everywhere(self) -> int:
        """Events appended so far by every process on the host (only ever grows)."""
        return sum(self._open_counters())

    @property
    def counted(self) -> bool:
        """Whether this process's appends are counted (it holds a slot); see :meth:`append`."""
        return self._slot is not None

    def count(self, rows: int = 1) -> bool:
        """Count rows this process added to the outbox some other way (a direct insert).

        False when it holds no slot: then the caller counts them with :meth:`count_shared`.
        """
        if self._generation != forks.generation:
            self.forget_parents_segment()
        with self._lock:
            if self._slot is None:
                self._claim_slot()
            if self._slot is None:
                return False
            assert self._counters is not None
            self._counters[self._slot] += rows
            return True

    def count_shared(self, rows: int = 1) -> None:
        """Count rows in the shared counter; the caller holds :func:`ingest_lock` (one process at a time)."""
        self._open_counters()[_SHARED_SLOT] += rows

    def _claim_slot(self) -> None:
        self._open_counters()
        fd = self._counters_fd
        assert fd is not None
        for slot in range(_SHARED_SLOT):
            try:
                fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, slot)
            except OSError:
                continue
            self._slot = slot
            return

    def append(
        self,
        ordering_key: str | None,
        body: bytes,
        created_at: float,
        droppable: int = 0,
        shared_key: str | None = None,
    ) -> bool:
        """Write one record; once this returns it survives the process. True when the append
        was counted in this process's slot (see Counting; else the caller counts it).

        Raises ``OSError`` when no segment can be made (disk full, permissions): the
        caller takes another way.
        """
        if self._generation != forks.generation:
            self.forget_parents_segment()
        key = b"" if ordering_key is None else ordering_key.encode("utf-8")
        if shared_key is not None and ordering_key is not None:
            key += _SHARED_KEY_MARK + shared_key.encode("utf-8")
        key_length = _NO_KEY if ordering_key is None else len(key) | (droppable << _DROPPABLE_SHIFT)
        size = _HEADER_BYTES + len(key) + len(body)
        with self._lock:
            if self._slot is None:
                self._claim_slot()  # with 63 writers already, none is left: see Outbox
            segment, position = self._map, self._position
            # A whole record may stand here already: an append interrupted (an exception from a
            # signal handler) between writing its size and moving on. A reader may have moved it
            # into the outbox already, so it is never written over.
            while segment is not None and position + _SIZE.size <= len(segment):
                (there,) = _SIZE.unpack_from(segment, position)
                if there == 0 or there == _SEALED:
                    break
                position = self._position = _aligned(position + there)
            if segment is None or position + size + _SIZE.size > len(segment):
                segment = self._next_segment(size)
                position = 0
            following = _aligned(position + size)
            # Stamped under the lock: each file is in stamp order (see the module doc).
            checked = _STAMPS.pack(time.monotonic_ns(), created_at, key_length) + key + body
            segment[position + _CHECKED_FROM : position + size] = checked
            segment[position + _SIZE.size : position + _CHECKED_FROM] = _CRC.pack(zlib.crc32(checked))
            segment[position : position + _SIZE.size] = _SIZE.pack(size)  # last: the record is whole
            self._position = following
            if self._slot is None:
                return False
            assert self._counters is not None
            self._counters[self._slot] += 1
            return True

    def _next_segment(self, record_size: int) -> mmap.mmap:
        """Seal the current segment (if any) and open the next one, big enough for the record."""
        self._close_segment(seal=True)
        size = max(self.segment_bytes, _aligned(record_size) + _SIZE.size)
        self._sequence += 1
        name = f"{self._prefix}-{self._sequence:06d}"
        self.folder.mkdir(parents=True, exist_ok=True)
        pending = self.folder / (name + PENDING_SUFFIX)
        fd = os.open(pending, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)  # held as long as this process may write here
            os.posix_fallocate(fd, 0, size)  # the space is ours now: no SIGBUS on a full disk later
            segment = mmap.mmap(fd, size)
            try:
                os.rename(pending, self.folder / (name + SUFFIX))
            except BaseException:
                segment.close()
                raise
        except BaseException:
            os.close(fd)
            pending.unlink(missing_ok=True)
            raise
        self._fd, self._map, self._position = fd, segment, 0
        return segment

    def _close_segment(self, *, seal: bool) -> None:
        segment, fd = self._map, self._fd
        self._map, self._fd = None, None
        if segment is not None:
            if seal and self._position + _SIZE.size <= len(segment):
                segment[self._position : self._position + _SIZE.size] = _SIZE.pack(_SEALED)
            segment.close()
        if fd is not None:
            os.close(fd)  # releases the lock: readers may delete the segment once read

    def forget_parents_segment(self) -> None:
        """In a forked child: the segment and its lock are the parent's; this process gets its own."""
        if self._generation == forks.generation:
            return
        segment, fd = self._map, self._fd
        self._release_counters()  # the slot is the parent's (its record lock stayed there)
        self._start_afresh()
        if segment is not None:
            segment.close()  # unmaps this process's copy only
        if fd is not None:
            os.close(fd)  # the parent's descriptor keeps its lock

    def _release_counters(self) -> None:
        if self._counters is not None:
            self._counters.release()
        if self._counters_map is not None:
            self._counters_map.close()
        if self._counters_fd is not None:
            os.close(self._counters_fd)  # releases this process's slot
        self._counters, self._counters_map, self._counters_fd, self._slot = None, None, None, None

    def close(self) -> None:
        """Stop writing (what was written stays, for any process's next ingest)."""
        if self._generation != forks.generation:
            self.forget_parents_segment()
            return
        with self._lock:
            self._close_segment(seal=True)
            self._release_counters()


@dataclass(frozen=True)
class JournalRecord:
    stamp: int
    created_at: float
    ordering_key: str | None
    body: bytes
    droppable: int = 0
    shared_key: str | None = None
    #: The segment it was read from, and the offset just past it there (a reader that moves
    #: records in several batches records how far each batch got).
    segment: str = ""
    end: int = 0


@dataclass
class Collected:
    """What one pass found: records to move, how far each file was read, files read to their end."""

    records: list[JournalRecord] = field(default_factory=list)
    offsets: dict[str, int] = field(default_factory=dict)
    finished: list[str] = field(default_factory=list)
    present: set[str] = field(default_factory=set)


def collect(folder: Path, offsets: dict[str, int], cut: int) -> Collected:
    """Read every journal in ``folder`` from its recorded offset; see the module doc for ``cut``."""
    found = Collected()
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except FileNotFoundError:
        return found
    for entry in entries:
        if entry.name.endswith(PENDING_SUFFIX):
            _remove_if_abandoned(entry)
        elif entry.name.endswith((SUFFIX, *OLD_SUFFIXES)):
            found.present.add(entry.name)
            _collect_file(Path(entry.path), offsets.get(entry.name, 0), cut, found)
    found.records.sort(key=lambda record: record.stamp)
    return found


def _collect_file(path: Path, start: int, cut: int, found: Collected) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        # Tested before reading: a writer that is gone now cannot add anything afterwards.
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            writer_gone = True
            # Let go at once: a gone writer never comes back, and a child forked meanwhile
            # must not inherit a lock that makes every later pass think a writer is there.
            fcntl.flock(fd, fcntl.LOCK_UN)
        except BlockingIOError:
            writer_gone = False
        read = _Reader(fd, start, os.fstat(fd).st_size)
        position, waiting = 0, False
        while read.covers(position + _SIZE.size):
            (record_size,) = _SIZE.unpack_from(read.data, position)
            if (
                record_size == _SEALED
                or record_size < _HEADER_BYTES
                or not read.covers(position + record_size)
            ):
                break  # the writer moved on, has not written here yet, or a torn tail
            data = read.data
            (crc,) = _CRC.unpack_from(data, position + _SIZE.size)
            if zlib.crc32(data[position + _CHECKED_FROM : position + record_size]) != crc:
                waiting = not writer_gone  # still being copied; if the writer died, it never returned
                break
            stamp, created_at, key_length = _STAMPS.unpack_from(data, position + _CHECKED_FROM)
            if stamp >= cut:
                waiting = True
                break
            key_start = position + _HEADER_BYTES
            droppable = 0 if key_length == _NO_KEY else key_length >> _DROPPABLE_SHIFT
            shared_key = None
            if key_length == _NO_KEY:
                ordering_key, body_start = None, key_start
            else:
                key_length &= _KEY_LENGTH_MASK
                keys = data[key_start : key_start + key_length]
                if _SHARED_KEY_MARK in keys:
                    own, shared = keys.split(_SHARED_KEY_MARK, 1)
                    ordering_key, shared_key = own.decode("utf-8"), shared.decode("utf-8")
                else:
                    ordering_key = keys.decode("utf-8")
                body_start = key_start + key_length
            body = data[body_start : position + record_size]
            position = _aligned(position + record_size)
            found.records.append(
                JournalRecord(
                    stamp, created_at, ordering_key, body, droppable, shared_key, path.name, start + position
                )
            )
    finally:
        os.close(fd)
    if position:
        found.offsets[path.name] = start + position
    if writer_gone and not waiting:
        found.finished.append(path.name)


class _Reader:
    """A file read from ``start`` as far as the parse needs: a segment is mostly reserved
    space, so a pass reads what was written (and one chunk more), not the whole segment."""

    CHUNK: Final = 64 * 1024

    def __init__(self, fd: int, start: int, size: int) -> None:
        self.fd, self.start, self.size = fd, start, size
        self.data = b""

    def covers(self, end: int) -> bool:
        """Whether ``data`` holds bytes up to ``end`` (relative to ``start``), reading more if needed."""
        if end <= len(self.data):
            return True
        available = self.size - self.start - len(self.data)
        if available <= 0:
            return False
        wanted = min(available, max(end - len(self.data), self.CHUNK, len(self.data)))
        self.data += os.pread(self.fd, wanted, self.start + len(self.data))
        return end <= len(self.data)


def _remove_if_abandoned(entry: os.DirEntry[str]) -> None:
    try:
        if time.time() - entry.stat().st_mtime > ABANDONED_SECONDS:
            os.unlink(entry.path)
    except FileNotFoundError:
        pass
