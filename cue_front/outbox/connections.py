"""SQLite connections for the outbox: a pool per outbox, safe across threads and forks.

Each connection is used by one thread at a time. A forked child never touches a
connection its parent opened (SQLite forbids it), and a fork waits until no thread is
inside SQLite, so that the child cannot inherit a mutex held by a thread it does not
have (docs/delivery.md, "Processes and threads").
"""

from __future__ import annotations

import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Final, TypeVar

from .. import forks
from ..errors import DataCueError

__all__ = ["BUSY_TIMEOUT_SECONDS", "ConnectionPool", "when_unlocked"]

#: Idle connections kept per pool; more are closed when given back.
_MAX_IDLE_CONNECTIONS: Final = 8
#: Pages of WAL after which a commit checkpoints by itself. Large, because the
#: delivery worker checkpoints off the request path; this is only the safety net of
#: a process that puts rows and runs no worker.
_WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
#: The WAL file is truncated back to this size after a checkpoint.
_WAL_SIZE_LIMIT_BYTES: Final = 16 * 1024 * 1024
#: How long a statement waits for another process's write lock before failing.
BUSY_TIMEOUT_SECONDS: Final = 10.0
#: The put path's waits for the write lock: from this (seconds), doubling up to the longest.
_LOCK_WAIT_FIRST: Final = 0.00002
_LOCK_WAIT_LONGEST: Final = 0.001


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY: another connection holds the lock (Python 3.10 only has the message)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == 5)  # SQLITE_BUSY, with or without an extended code
    return "locked" in str(error) or "busy" in str(error)


_Result = TypeVar("_Result")


def when_unlocked(statement: Callable[[], _Result]) -> _Result:
    """Run ``statement``, waiting out another connection's lock for up to the busy timeout.

    Used where SQLite's own busy handler does not help: the put path, whose connections
    have none (it would sleep 1, 2, 5... milliseconds where the lock is held for tens
    of microseconds), and switching a new file to WAL, which SQLite answers with
    SQLITE_BUSY at once, without its handler, while another process does the same.
    """
    waited = 0.0
    pause = _LOCK_WAIT_FIRST
    while True:
        try:
            return statement()
        except sqlite3.OperationalError as error:
            if not _is_busy(error) or waited >= BUSY_TIMEOUT_SECONDS:
                raise
        time.sleep(pause)
        waited += pause
        pause = min(pause * 2, _LOCK_WAIT_LONGEST)


# -- fork safety --------------------------------------------------------------------------


class _ForkGate:
    """Keeps ``os.fork()`` from happening while another thread is inside SQLite.

    A child inherits every mutex as it was at the fork: one held by a thread of the
    parent's (the delivery worker in the middle of a claim) stays held forever in the
    child, and the child's first outbox call hangs. So every use of a connection
    passes this gate, and a fork waits (briefly: statements are short) until no
    thread is inside, holding the gate shut until the fork is done.
    """

    #: How long a fork waits for threads to leave SQLite before going ahead anyway.
    FORK_WAIT_SECONDS: Final = 10.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._inside = 0
        self._forking = False

    def enter(self) -> None:
        with self._lock:
            while self._forking:
                self._changed.wait()
            self._inside += 1

    def leave(self) -> None:
        with self._lock:
            self._inside -= 1
            if self._forking and not self._inside:
                self._changed.notify_all()

    def before_fork(self) -> None:
        self._lock.acquire()  # held through the fork: nobody enters meanwhile
        self._forking = True
        self._changed.wait_for(lambda: not self._inside, timeout=self.FORK_WAIT_SECONDS)

    def after_fork_in_parent(self) -> None:
        self._forking = False
        self._changed.notify_all()
        self._lock.release()


_gate = _ForkGate()
#: Connections inherited from a parent process. Never used and never closed in the
#: child (closing one can checkpoint the parent's WAL under it); kept referenced so
#: that garbage collection does not close them either.
_inherited_connections: list[sqlite3.Connection] = []
_open_pools: weakref.WeakSet[ConnectionPool] = weakref.WeakSet()


def _before_fork() -> None:
    _gate.before_fork()
    # No thread is inside SQLite now: close every idle connection, so that the child inherits
    # no SQLite state for the file. (With an open connection inherited, the child's own would
    # share the parent's -shm bookkeeping and never take their own lock on it; once the parent
    # closed, a newcomer would think the WAL index unused and reset it under the child.)
    for pool in list(_open_pools):
        if pool.generation == forks.generation:
            pool.close_idle()


def _after_fork_in_parent() -> None:
    _gate.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _gate
    _gate = _ForkGate()  # the parent's is shut, and its other threads do not exist here
    for pool in list(_open_pools):
        pool.forget_inherited()


forks.at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child)


class ConnectionPool:
    """Pooled connections to one outbox file, in this process.

    ``synchronous`` is the SQLite setting each connection gets. Two pools of idle
    connections are kept: the put path's, which have no busy handler (they wait their own
    way, see :func:`when_unlocked`), and everyone else's.
    """

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.synchronous = synchronous
        self._idle: list[sqlite3.Connection] = []
        #: Idle connections of the put path, which waits for locks its own way.
        self._idle_intake: list[sqlite3.Connection] = []
        #: Every connection open in this process, idle or in use by some thread now.
        self._connections: set[sqlite3.Connection] = set()
        self.generation = forks.generation
        self.closed = False
        _open_pools.add(self)

    def _connect(self, busy_timeout: float) -> sqlite3.Connection:
        if self.closed:
            raise DataCueError(f"the outbox at {self.path} is closed")
        # isolation_level=None: every statement commits by itself unless a transaction
        # is opened explicitly, so a put is a single statement. check_same_thread=False:
        # pooled connections move between threads, one thread at a time.
        connection = sqlite3.connect(
            self.path,
            timeout=busy_timeout,
            isolation_level=None,
            check_same_thread=False,
        )
        try:
            connection.execute(f"PRAGMA synchronous = {self.synchronous}")
            connection.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
            connection.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT_BYTES}")
        except BaseException:
            connection.close()
            raise
        self._connections.add(connection)
        return connection

    def acquire(self, intake: bool = False) -> sqlite3.Connection:
        """A pooled connection, inside the fork gate; ``intake``: one of the put path's."""
        _gate.enter()
        try:
            if self.generation != forks.generation:
                self.forget_inherited()
            try:
                # list.pop is atomic under the GIL: no lock of our own on the put path
                return (self._idle_intake if intake else self._idle).pop()
            except IndexError:
                return self._connect(busy_timeout=0.0 if intake else BUSY_TIMEOUT_SECONDS)
        except BaseException:
            _gate.leave()
            raise

    def release(self, connection: sqlite3.Connection, intake: bool = False) -> None:
        """Give back a connection from :meth:`acquire` (with the same ``intake``)."""
        try:
            if self.generation != forks.generation:
                return  # a connection of the parent's, finished with in the child: leave it be
            if connection.in_transaction:  # an exception left a transaction open
                connection.rollback()
            pool = self._idle_intake if intake else self._idle
            if self.closed or len(pool) >= _MAX_IDLE_CONNECTIONS:
                self._connections.discard(connection)
                connection.close()
                return
            pool.append(connection)
        finally:
            _gate.leave()

    @contextmanager
    def connection(self) -> Iterator[sqlite3.Connection]:
        connection = self.acquire()
        try:
            yield connection
        finally:
            self.release(connection)

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock at once (no deadlock upgrading a read)."""
        with self.connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.execute("COMMIT")

    def close_idle(self) -> None:
        idle, self._idle, self._idle_intake = self._idle + self._idle_intake, [], []
        for connection in idle:
            self._connections.discard(connection)
            connection.close()

    def forget_inherited(self) -> None:
        """In a forked child: set aside the parent's connections; new ones are opened on demand."""
        if self.generation == forks.generation:
            return
        _inherited_connections.extend(self._connections)
        self._idle = []
        self._idle_intake = []
        self._connections = set()
        self.generation = forks.generation

    def close(self) -> None:
        """Close every connection this process opened; the pool cannot be used afterwards."""
        self.closed = True
        _open_pools.discard(self)
        if self.generation != forks.generation:
            self.forget_inherited()
            return
        # A connection in use by another thread right now is closed when it is given back.
        self.close_idle()
