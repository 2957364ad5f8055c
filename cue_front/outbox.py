"""The durable outbox: a SQLite queue of the requests cue-front owes DataCue (events and REST writes).

A row is durable when :meth:`Outbox.put` returns. Every process on the host
(gunicorn workers, a CLI command) opens the same file and shares the queue; a
:class:`~cue_front.delivery.DeliveryWorker` in each process drains it.

**Claims and leases.** :meth:`Outbox.claim` hands rows to one owner for
``lease_seconds``; the owner then acks, retries later or dead-letters each one.
If the owner dies (SIGKILL, OOM, a lost container), its lease runs out and the
row is claimed again by anyone. Delivery is therefore *at least once*: a row is
sent again whenever the outcome of its first send was never recorded. That is
the case when the worker died after sending but before acknowledging (acks are
written once per batch, so a killed worker's batch in hand is resent), when a
lease ran out mid-send, or when DataCue processed a request but never answered,
or answered only after the worker stopped listening (its API has no idempotency
key that could tell the two apart; the worker listens for a late answer until its
lease nearly ends, see :mod:`cue_front.delivery`).

**Ordering.** Rows that share an ``ordering_key`` (one visitor, one product)
are delivered in the order they were put: a row is claimed only when no earlier
row with its key is unfinished (pending, in flight or waiting for a retry), so
at most one row per key is ever in flight. A dead-lettered row does not hold its
key back (it will never finish on its own); :meth:`Outbox.retry_dead` puts it
back in front of its key's later rows that have not been sent yet.

**Bounds and the overflow policy.** The outbox holds at most ``max_rows`` rows
(``DATACUE_OUTBOX_MAX_ROWS``), counting pending, delivered and dead ones.
Delivered rows are deleted first: the worker prunes them as it goes, and
:meth:`Outbox.put` prunes them itself before it gives up. When the outbox is
still full after pruning (DataCue has been unreachable for a long time):

* a new **event** is refused at intake: ``put`` raises :class:`OutboxFullError`
  and the refusal is counted in :attr:`OutboxStats.refused`. The caller
  (``track()``, the first-party endpoint) logs it at ERROR and sends
  ``signals.outbox_full``: an event is lost, loudly, never silently.
* a queued **REST write** (a store change) is always accepted, even past the
  cap, because a lost product or order change stays wrong in DataCue until the
  next full import, while a lost pageview is one data point. Each such write is
  logged at WARNING (at most once a minute).

**Durability.** The database runs in WAL mode with ``synchronous=NORMAL``
(the default): a returned ``put`` survives the process being killed, but a power
loss or kernel crash can lose the last commits before the next checkpoint.
``Outbox(path, synchronous="FULL")`` fsyncs every commit, surviving power loss
at the price of a disk flush on every ``put``.

**Cost on the request path.** A put is one INSERT that commits by itself: no
fsync (see above), no scan (the row cap is checked as ``max(id) - deleted``).
When another connection holds the write lock, a put retries in steps of tens of
microseconds instead of SQLite's busy handler, which sleeps whole milliseconds.
The worker keeps its own write transactions short: a claim finds its rows
without the lock and only marks them under it; delivered rows are pruned in
small chunks; WAL checkpoints are the worker's job, not the puts'.

**Processes and threads.** Connections are pooled and each is used by one
thread at a time. After ``os.fork()`` the child never touches a connection
opened by its parent (SQLite forbids it); it opens its own. A fork also waits
until no other thread is inside SQLite, so that the child cannot inherit a
mutex held by a thread that does not exist there.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Final, NoReturn, TypeVar

from .errors import DataCueError
from .journal import JOURNAL_SUPPORTED, JournalWriter, collect, ingest_lock, journal_folder, writer_for

__all__ = [
    "KINDS",
    "DeadLetter",
    "Outbox",
    "OutboxFullError",
    "OutboxRow",
    "OutboxStats",
]

logger = logging.getLogger("cue_front.outbox")

#: What a row holds: an event for the events API, or a REST call to the API URL.
KINDS: Final = ("event", "rest")

#: The ``synchronous`` settings that keep a WAL database durable against a process crash.
SYNCHRONOUS_MODES: Final = ("NORMAL", "FULL")

_PENDING: Final = 0
_DELIVERED: Final = 1
_DEAD: Final = 2

_SCHEMA_VERSION: Final = 2  # 2: outbox_intake (the journal's read offsets)

# ``id`` is an alias of the rowid, not AUTOINCREMENT (which costs a page write per put).
# Ids are never reused all the same: SQLite gives a new row max(id) + 1, and nothing
# ever deletes the row holding max(id) (see _PRUNE_CHUNK). That also makes the row
# count O(1): max(id) - (rows deleted so far), which is how put() enforces the cap
# without a COUNT(*) scan or a counter row to update.
_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    body BLOB NOT NULL,
    ordering_key TEXT,
    state INTEGER NOT NULL DEFAULT 0,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    due_at REAL NOT NULL,
    lease_owner TEXT,
    last_status INTEGER,
    last_error TEXT,
    response_body TEXT,
    failed_at REAL,
    done_at REAL
);
CREATE INDEX IF NOT EXISTS outbox_unfinished_by_key ON outbox (ordering_key, id) WHERE state = 0;
CREATE TABLE IF NOT EXISTS outbox_meta (name TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS outbox_intake (name TEXT PRIMARY KEY, offset INTEGER NOT NULL);
INSERT OR IGNORE INTO outbox_meta (name, value) VALUES ('deleted', 0), ('refused', 0), ('last_error', NULL);
"""
# Columns, in short: ``state`` 0 pending, 1 delivered, 2 dead. ``due_at`` is when a
# pending row may be sent; a claim moves it to the lease's end, so one comparison
# says "free to claim" both for a row waiting out its backoff and for a row whose
# owner died. ``lease_owner`` is set while a claim holds the row.

# One statement, so a put is one round trip into SQLite and one commit. Rows are
# counted as max(id) - deleted (see _SCHEMA). REST writes skip the cap: see the policy.
_INSERT: Final = """
INSERT INTO outbox (kind, method, path, body, ordering_key, created_at, due_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?6
WHERE ?1 = 'rest'
   OR (SELECT COALESCE(MAX(id), 0) FROM outbox)
      - (SELECT value FROM outbox_meta WHERE name = 'deleted') < ?7
"""

# Journaled events were accepted already: they skip the cap (put_event enforced it).
_INGEST: Final = """
INSERT INTO outbox (kind, method, path, body, ordering_key, created_at, due_at)
VALUES ('event', 'POST', '', ?, ?, ?, ?)
"""

_ROW_COUNT: Final = """
SELECT (SELECT COALESCE(MAX(id), 0) FROM outbox) - (SELECT value FROM outbox_meta WHERE name = 'deleted')
"""

_ROW_COLUMNS: Final = "id, kind, method, path, body, ordering_key, attempts, created_at"

# The first unfinished row of every key is the only one of its key that may be
# claimed; the partial index holds exactly the unfinished rows, grouped by key.
_CLAIMABLE_KEYED: Final = f"""
SELECT {_ROW_COLUMNS} FROM outbox
WHERE id IN (SELECT MIN(id) FROM outbox WHERE state = 0 AND ordering_key IS NOT NULL GROUP BY ordering_key)
  AND due_at <= ?1
ORDER BY id LIMIT ?2
"""
_NEXT_DUE: Final = """
SELECT MIN(due_at) FROM outbox
WHERE id IN (SELECT MIN(id) FROM outbox WHERE state = 0 AND ordering_key IS NOT NULL GROUP BY ordering_key)
   OR (state = 0 AND ordering_key IS NULL)
"""
_CLAIMABLE_UNKEYED: Final = f"""
SELECT {_ROW_COLUMNS} FROM outbox
WHERE state = 0 AND ordering_key IS NULL AND due_at <= ?1
ORDER BY id LIMIT ?2
"""

# Delivered rows go in small chunks so that no put waits long for the write lock.
# The row holding max(id) is always kept: ids are never reused, and the row count
# stays max(id) - deleted.
_PRUNE_CHUNK_ROWS: Final = 100
_PRUNE_CHUNK: Final = """
DELETE FROM outbox WHERE id IN (
    SELECT id FROM outbox WHERE state = 1 AND id < (SELECT MAX(id) FROM outbox) LIMIT ?
)
"""

#: SQLite's default limit on bound variables is 999 in older builds.
_IDS_PER_STATEMENT: Final = 500
#: Idle connections kept per outbox; more are closed when given back.
_MAX_IDLE_CONNECTIONS: Final = 8
#: Pages of WAL after which a commit checkpoints by itself. Large, because the
#: delivery worker checkpoints (:meth:`Outbox.checkpoint`) off the request path; this
#: is only the safety net of a process that puts rows and runs no worker.
_WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
#: The WAL file is truncated back to this size after a checkpoint.
_WAL_SIZE_LIMIT_BYTES: Final = 16 * 1024 * 1024
#: How long a statement waits for another process's write lock before failing.
_BUSY_TIMEOUT_SECONDS: Final = 10.0
#: The put path's waits for the write lock: from this (seconds), doubling up to the longest.
_LOCK_WAIT_FIRST: Final = 0.00002
_LOCK_WAIT_LONGEST: Final = 0.001
#: With less room than this left, put_event counts exactly, one process at a time: the
#: estimate may miss appends other threads are making at this very moment.
_EXACT_ROOM: Final = 64
#: Dead-letter response bodies are kept up to this many characters.
_MAX_RESPONSE_CHARS: Final = 10_000
#: Past the cap, an accepted REST write is logged at most this often (seconds).
_OVER_CAP_LOG_INTERVAL: Final = 60.0


class OutboxFullError(DataCueError):
    """The outbox holds ``max_rows`` undelivered rows: a new event was refused (see the policy above)."""


@dataclass(frozen=True)
class OutboxRow:
    """One queued request, as claimed for delivery.

    ``path`` is ``""`` for an event (the events URL) and the path under the API URL
    for a REST call (``/products/p1/v1``). ``body`` is the exact bytes to sign and send.
    ``attempts`` counts the claims so far, this one included.
    """

    id: int
    kind: str
    method: str
    path: str
    body: bytes
    ordering_key: str | None
    attempts: int
    created_at: float


@dataclass(frozen=True)
class OutboxStats:
    """What the outbox holds now.

    ``pending`` rows wait to be sent (new, or waiting out a retry's backoff);
    ``in_flight`` rows are claimed by a worker right now (the two never overlap);
    ``delivered`` counts every row DataCue accepted, pruned or not; ``dead`` rows
    were refused for good and wait for :meth:`Outbox.retry_dead`.
    ``oldest_pending_age`` is the age in seconds of the oldest undelivered row
    (pending or in flight); ``last_error`` the latest failure of any row;
    ``refused`` counts the events refused because the outbox was full.
    """

    pending: int
    in_flight: int
    delivered: int
    dead: int
    oldest_pending_age: float | None
    last_error: str | None
    refused: int


@dataclass(frozen=True)
class DeadLetter:
    """A row DataCue refused for good, with its answer; :meth:`Outbox.retry_dead` sends it again."""

    id: int
    kind: str
    method: str
    path: str
    body: bytes
    status: int | None
    error: str
    response_body: str | None
    attempts: int
    created_at: float
    failed_at: float


def _is_busy(error: sqlite3.OperationalError) -> bool:
    """SQLITE_BUSY: another connection holds the lock (Python 3.10 only has the message)."""
    code = getattr(error, "sqlite_errorcode", None)
    if code is not None:
        return bool(code & 0xFF == 5)  # SQLITE_BUSY, with or without an extended code
    return "locked" in str(error) or "busy" in str(error)


_Result = TypeVar("_Result")


def _when_unlocked(statement: Callable[[], _Result]) -> _Result:
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
            if not _is_busy(error) or waited >= _BUSY_TIMEOUT_SECONDS:
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
_fork_generation = 0
#: Connections inherited from a parent process. Never used and never closed in the
#: child (closing one can checkpoint the parent's WAL under it); kept referenced so
#: that garbage collection does not close them either.
_inherited_connections: list[sqlite3.Connection] = []
_open_outboxes: weakref.WeakSet[Outbox] = weakref.WeakSet()


def _before_fork() -> None:
    _gate.before_fork()
    # No thread is inside SQLite now: close every idle connection, so that the child inherits
    # no SQLite state for the file. (With an open connection inherited, the child's own would
    # share the parent's -shm bookkeeping and never take their own lock on it; once the parent
    # closed, a newcomer would think the WAL index unused and reset it under the child.)
    for outbox in list(_open_outboxes):
        if outbox._generation == _fork_generation:
            outbox._close_idle_connections()


def _after_fork_in_parent() -> None:
    _gate.after_fork_in_parent()


def _after_fork_in_child() -> None:
    global _fork_generation, _gate
    _gate = _ForkGate()  # the parent's is shut, and its other threads do not exist here
    _fork_generation += 1
    for outbox in list(_open_outboxes):
        outbox._forget_inherited_connections()


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(
        before=_before_fork, after_in_parent=_after_fork_in_parent, after_in_child=_after_fork_in_child
    )


# -- the outbox ---------------------------------------------------------------------------


class Outbox:
    """A durable queue of outbound requests in a SQLite file shared by every process on the host.

    ``max_rows`` bounds the rows kept (see the overflow policy in the module doc);
    ``lease_seconds`` is how long a claim holds its rows before anyone may claim them
    again: keep it above the transport's connect + read timeout. ``synchronous`` is
    ``"NORMAL"`` (durable against a process crash) or ``"FULL"`` (also against power loss).
    ``journal=False`` makes :meth:`put_event` write into SQLite directly (see :mod:`cue_front.journal`).
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
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, got {max_rows!r}")
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
        self._idle: list[sqlite3.Connection] = []
        #: Idle connections of the put path, which waits for locks its own way (see put).
        self._idle_intake: list[sqlite3.Connection] = []
        #: Every connection open in this process, idle or in use by some thread now.
        self._connections: set[sqlite3.Connection] = set()
        self._generation = _fork_generation
        self._closed = False
        self._last_over_cap_log = 0.0
        self._over_cap_since_log = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()
        #: Events queued with put_event go through the journal (see cue_front.journal) when
        #: the platform allows and the durability asked for is the journal's.
        self._journal: JournalWriter | None = None
        if journal and JOURNAL_SUPPORTED and synchronous == "NORMAL":
            self._journal = writer_for(journal_folder(self.path))
        #: The row count after this process's latest ingest, and the journal's append
        #: count taken just before it: put_event's estimate of the room left (see there).
        self._rows_at_ingest = max_rows
        self._appended_at_ingest = 0
        _open_outboxes.add(self)

    def __repr__(self) -> str:
        return f"Outbox({str(self.path)!r}, max_rows={self.max_rows})"

    # -- connections ------------------------------------------------------------------------

    def _connect(self, busy_timeout: float = _BUSY_TIMEOUT_SECONDS) -> sqlite3.Connection:
        if self._closed:
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

    def _acquire(self, intake: bool = False) -> sqlite3.Connection:
        """A pooled connection, inside the fork gate; ``intake``: one of the put path's."""
        _gate.enter()
        try:
            if self._generation != _fork_generation:
                self._forget_inherited_connections()
            try:
                # list.pop is atomic under the GIL: no lock of our own on the put path
                return (self._idle_intake if intake else self._idle).pop()
            except IndexError:
                return self._connect(busy_timeout=0.0 if intake else _BUSY_TIMEOUT_SECONDS)
        except BaseException:
            _gate.leave()
            raise

    def _release(self, connection: sqlite3.Connection, intake: bool = False) -> None:
        try:
            if self._generation != _fork_generation:
                return  # a connection of the parent's, finished with in the child: leave it be
            if connection.in_transaction:  # an exception left a transaction open
                connection.rollback()
            pool = self._idle_intake if intake else self._idle
            if self._closed or len(pool) >= _MAX_IDLE_CONNECTIONS:
                self._connections.discard(connection)
                connection.close()
                return
            pool.append(connection)
        finally:
            _gate.leave()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        connection = self._acquire()
        try:
            yield connection
        finally:
            self._release(connection)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction that takes the write lock at once (no deadlock upgrading a read)."""
        with self._connection() as connection:
            connection.execute("BEGIN IMMEDIATE")
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.execute("COMMIT")

    def _close_idle_connections(self) -> None:
        idle, self._idle, self._idle_intake = self._idle + self._idle_intake, [], []
        for connection in idle:
            self._connections.discard(connection)
            connection.close()

    def _forget_inherited_connections(self) -> None:
        """In a forked child: set aside the parent's connections; new ones are opened on demand."""
        if self._generation == _fork_generation:
            return
        _inherited_connections.extend(self._connections)
        self._idle = []
        self._idle_intake = []
        self._connections = set()
        self._generation = _fork_generation

    def _create_schema(self) -> None:
        with self._connection() as connection:
            # WAL is a property of the file: set once, seen by every later connection.
            mode = _when_unlocked(lambda: connection.execute("PRAGMA journal_mode = WAL").fetchone()[0])
            if str(mode).lower() != "wal":
                raise DataCueError(
                    f"the outbox at {self.path} cannot use SQLite's WAL mode (got {mode!r});"
                    " put DATACUE_OUTBOX_PATH on a local disk"
                )
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            if version == _SCHEMA_VERSION:
                return
            if version > _SCHEMA_VERSION:
                raise DataCueError(
                    f"the outbox at {self.path} was written by a newer cue-front (schema {version});"
                    " upgrade cue-front or point DATACUE_OUTBOX_PATH elsewhere"
                )
            connection.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                connection.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            except BaseException:
                connection.rollback()
                raise
            connection.execute("COMMIT")

    # -- intake ---------------------------------------------------------------------------

    def put(self, kind: str, method: str, path: str, body: bytes, ordering_key: str | None = None) -> int:
        """Queue one request; returns its row id once it is durable.

        Raises :class:`OutboxFullError` for an event when the outbox is full even after
        pruning delivered rows; a ``"rest"`` row is always accepted (see the policy).
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        if kind == "event" and self._journal is not None:
            self.ingest()  # events journaled before this one get their ids first: order kept
        connection = self._acquire(intake=True)
        try:
            row_id = self._insert(
                connection, (kind, method, path, body, ordering_key, time.time(), self.max_rows)
            )
        finally:
            self._release(connection, intake=True)
        if row_id is None:
            row_id = self._put_when_full(kind, method, path, body, ordering_key)
        self._count_direct_row()
        if kind == "rest":
            self._warn_if_over_cap()
        return row_id

    def _count_direct_row(self) -> None:
        """Tell put_event's estimates in every process about a row inserted here (see journal)."""
        journal = self._journal
        if journal is not None and not journal.count(1):
            with journal.ingest_mutex, ingest_lock(journal.folder):
                journal.count_shared(1)

    def _insert(self, connection: sqlite3.Connection, values: tuple[object, ...]) -> int | None:
        """Run the put's INSERT; the row id, or None when the cap refused it.

        When another connection holds the write lock (the worker's ack, another process's
        put), the put waits in steps of tens of microseconds (see :func:`_when_unlocked`).
        """
        cursor = _when_unlocked(lambda: connection.execute(_INSERT, values))
        return cursor.lastrowid if cursor.rowcount == 1 else None

    def put_event(self, body: bytes, ordering_key: str | None = None) -> int | None:
        """Queue one event the quick way: through the journal, without a system call.

        Durable when it returns, like :meth:`put`. Returns ``None`` for a journaled event
        (it gets its row id when :meth:`ingest` moves it into the outbox) and the row id
        when the journal is off or cannot take it (then :meth:`put` is used). Raises
        :class:`OutboxFullError` like :meth:`put`, and keeps the same cap: the room left
        is the row count of the latest ingest less every event journaled since (an
        overestimate of the rows, never an under); near the cap, events are counted
        exactly, one at a time across the host.
        """
        journal = self._journal
        if journal is None or self._closed:
            return self.put("event", "POST", "", body, ordering_key)
        try:
            if journal.counted and self._room_left(journal) > _EXACT_ROOM:
                if not journal.append(ordering_key, body, time.time()):
                    self._count_direct_row()  # only if this process lost its slot meanwhile
            else:
                with journal.ingest_mutex, ingest_lock(journal.folder):
                    self._ingest_locked()
                    if self._rows_at_ingest >= self.max_rows:
                        self.prune()
                        with self._connection() as connection:
                            self._rows_at_ingest = int(connection.execute(_ROW_COUNT).fetchone()[0])
                        if self._rows_at_ingest >= self.max_rows:
                            self._refuse()
                    if not journal.append(ordering_key, body, time.time()):
                        journal.count_shared(1)  # no slot for this process: counted here, locked
        except OSError as error:  # no segment could be made (a full disk): SQLite says why
            logger.warning("datacue: the outbox journal at %s cannot take events: %s", journal.folder, error)
            return self.put("event", "POST", "", body, ordering_key)
        return None

    def _room_left(self, journal: JournalWriter) -> int:
        appended_since = journal.appended_everywhere() - self._appended_at_ingest
        return self.max_rows - self._rows_at_ingest - appended_since

    def ingest(self) -> int:
        """Move journaled events into the outbox, in order; returns how many (see :mod:`cue_front.journal`).

        Any process may run it (the delivery worker does, before each claim); passes are
        serialised by a lock file, and each record is moved exactly once.
        """
        journal = self._journal
        if journal is None or self._closed:
            return 0
        with journal.ingest_mutex, ingest_lock(journal.folder):
            return self._ingest_locked()

    def retire_journal(self) -> None:
        """At exit: this process's journal segment is closed, its events moved into the outbox,
        and the segment deleted (else the next start's first ingest deletes it)."""
        if self._journal is None or self._closed:
            return
        self._journal.close()
        self.ingest()

    def _ingest_locked(self) -> int:
        assert self._journal is not None
        folder = self._journal.folder
        # Counted before the cut: every append counted here was whole before it, so this
        # pass moves it. (One completed after the count but before the cut is moved too
        # and will be counted again as "since": an overestimate, on the safe side.)
        appended = self._journal.appended_everywhere()
        cut = time.monotonic_ns()
        with self._connection() as connection:
            offsets = dict(connection.execute("SELECT name, offset FROM outbox_intake").fetchall())
        found = collect(folder, offsets, cut)
        forgotten = [(name,) for name in offsets if name not in found.present]
        if found.records or found.offsets or forgotten:
            with self._write() as connection:
                connection.executemany(
                    _INGEST,
                    [(r.body, r.ordering_key, r.created_at, r.created_at) for r in found.records],
                )
                connection.executemany(
                    "INSERT INTO outbox_intake (name, offset) VALUES (?, ?)"
                    " ON CONFLICT (name) DO UPDATE SET offset = excluded.offset",
                    list(found.offsets.items()),
                )
                # Offsets of files deleted by an earlier pass (never by this one: a crash
                # between its commit and the deletes must not read a file again from 0).
                connection.executemany("DELETE FROM outbox_intake WHERE name = ?", forgotten)
                rows = connection.execute(_ROW_COUNT).fetchone()[0]
        else:
            with self._connection() as connection:
                rows = connection.execute(_ROW_COUNT).fetchone()[0]
        for name in found.finished:  # read to the end (offsets committed above) and no writer
            (folder / name).unlink(missing_ok=True)
        self._rows_at_ingest, self._appended_at_ingest = int(rows), appended
        return len(found.records)

    def _put_when_full(self, kind: str, method: str, path: str, body: bytes, ordering_key: str | None) -> int:
        self.prune()
        with self._connection() as connection:
            cursor = connection.execute(
                _INSERT, (kind, method, path, body, ordering_key, time.time(), self.max_rows)
            )
            if cursor.rowcount == 1 and cursor.lastrowid is not None:
                return cursor.lastrowid
        self._refuse()

    def _refuse(self) -> NoReturn:
        """Count a refused event and say so (see the overflow policy)."""
        with self._write() as connection:
            connection.execute("UPDATE outbox_meta SET value = value + 1 WHERE name = 'refused'")
        raise OutboxFullError(
            f"the DataCue outbox at {self.path} is full ({self.max_rows:,} rows waiting or dead,"
            " DATACUE_OUTBOX_MAX_ROWS): this event was refused. DataCue has not accepted rows for a while:"
            " check `flask datacue status` and the dead letters"
        )

    def _warn_if_over_cap(self) -> None:
        with self._connection() as connection:
            rows = connection.execute(_ROW_COUNT).fetchone()[0]
        if rows <= self.max_rows:
            return
        self._over_cap_since_log += 1
        now = time.monotonic()
        if now - self._last_over_cap_log >= _OVER_CAP_LOG_INTERVAL:
            logger.warning(
                "datacue: the outbox at %s holds %d rows, over its cap of %d (DATACUE_OUTBOX_MAX_ROWS);"
                " store changes are still accepted (%d since the last warning), events are refused",
                self.path,
                rows,
                self.max_rows,
                self._over_cap_since_log,
            )
            self._last_over_cap_log = now
            self._over_cap_since_log = 0

    # -- delivery -------------------------------------------------------------------------

    def claim(self, owner: str, limit: int = 100) -> list[OutboxRow]:
        """Lease up to ``limit`` (at most 500) due rows to ``owner`` for ``lease_seconds``, oldest first.

        A row is due when it is pending, its backoff is over and no earlier row with its
        ``ordering_key`` is unfinished; so at most one row per key is ever claimed.
        """
        if limit < 1:
            return []
        self.ingest()
        limit = min(limit, _IDS_PER_STATEMENT)
        now = time.time()
        lease_end = now + self.lease_seconds
        with self._connection() as connection:
            # Found without the write lock (puts go on meanwhile, however long the queue)...
            keyed = connection.execute(_CLAIMABLE_KEYED, (now, limit)).fetchall()
            unkeyed = connection.execute(_CLAIMABLE_UNKEYED, (now, limit)).fetchall()
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
        return [
            OutboxRow(
                id=row_id,
                kind=kind,
                method=method,
                path=path,
                body=bytes(body),
                ordering_key=ordering_key,
                attempts=attempts + 1,
                created_at=created_at,
            )
            for row_id, kind, method, path, body, ordering_key, attempts, created_at in found
        ]

    def ack(self, row_ids: Iterable[int]) -> None:
        """Mark rows delivered (whoever holds their lease now: DataCue has them)."""
        ids = list(row_ids)
        if not ids:
            return
        now = time.time()
        with self._write() as connection:
            for start in range(0, len(ids), _IDS_PER_STATEMENT):
                chunk = ids[start : start + _IDS_PER_STATEMENT]
                connection.execute(
                    "UPDATE outbox SET state = 1, done_at = ?, lease_owner = NULL"
                    f" WHERE id IN ({','.join('?' * len(chunk))}) AND state != 1",
                    (now, *chunk),
                )

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
        with self._write() as connection:
            connection.execute(
                "UPDATE outbox SET due_at = ?, lease_owner = NULL, last_status = ?, last_error = ?,"
                " failed_at = ? WHERE id = ? AND state = 0 AND (?6 IS NULL OR lease_owner = ?6)",
                (now + max(0.0, delay), status, error, now, row_id, owner),
            )
            connection.execute("UPDATE outbox_meta SET value = ? WHERE name = 'last_error'", (error,))

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        """Give claimed rows back unsent, due again in ``delay`` seconds; not counted as an attempt."""
        ids = list(row_ids)
        if not ids:
            return
        due_at = time.time() + max(0.0, delay)
        with self._write() as connection:
            connection.executemany(
                "UPDATE outbox SET due_at = ?, lease_owner = NULL, attempts = MAX(attempts - 1, 0)"
                " WHERE id = ? AND state = 0 AND (?3 IS NULL OR lease_owner = ?3)",
                [(due_at, row_id, owner) for row_id in ids],
            )

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
            response_body = response_body[:_MAX_RESPONSE_CHARS]
        with self._write() as connection:
            connection.execute(
                "UPDATE outbox SET state = 2, lease_owner = NULL, last_status = ?, last_error = ?,"
                " response_body = ?, failed_at = ? WHERE id = ? AND state = 0"
                " AND (?6 IS NULL OR lease_owner = ?6)",
                (status, error, response_body, now, row_id, owner),
            )
            connection.execute("UPDATE outbox_meta SET value = ? WHERE name = 'last_error'", (error,))

    # -- dead letters ---------------------------------------------------------------------

    def dead_letters(self, limit: int = 100) -> list[DeadLetter]:
        """The dead letters, most recently refused first."""
        with self._connection() as connection:
            rows = connection.execute(
                "SELECT id, kind, method, path, body, last_status, last_error, response_body, attempts,"
                " created_at, failed_at FROM outbox WHERE state = 2 ORDER BY failed_at DESC, id DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            DeadLetter(
                id=row_id,
                kind=kind,
                method=method,
                path=path,
                body=bytes(body),
                status=status,
                error=error or "",
                response_body=response_body,
                attempts=attempts,
                created_at=created_at,
                failed_at=failed_at,
            )
            for (
                row_id,
                kind,
                method,
                path,
                body,
                status,
                error,
                response_body,
                attempts,
                created_at,
                failed_at,
            ) in rows
        ]

    def retry_dead(self, row_ids: Iterable[int] | None = None) -> int:
        """Queue dead letters again (all of them, or those in ``row_ids``); returns how many.

        A requeued row goes before the later rows of its key that are not in flight yet.
        """
        now = time.time()
        with self._write() as connection:
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

    def retry_now(self) -> int:
        """Make every pending row waiting out a backoff due now (DataCue is back); returns how many.

        Rows in flight are left to their owners.
        """
        now = time.time()
        with self._write() as connection:
            return connection.execute(
                "UPDATE outbox SET due_at = ? WHERE state = 0 AND due_at > ? AND lease_owner IS NULL",
                (now, now),
            ).rowcount

    # -- upkeep ---------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        """Counts of what the outbox holds (a scan of the table: for status pages, not hot paths)."""
        self.ingest()
        now = time.time()
        with self._connection() as connection:
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
            finally:
                connection.execute("COMMIT")
        return OutboxStats(
            pending=int(waiting),
            in_flight=int(in_flight),
            delivered=int(delivered) + int(meta["deleted"]),
            dead=int(dead),
            oldest_pending_age=None if oldest is None else max(0.0, now - oldest),
            last_error=meta["last_error"],
            refused=int(meta["refused"]),
        )

    def next_due_in(self) -> float | None:
        """Seconds until a row may be claimed (0: one may now); ``None`` when no row is unfinished.

        Only the first unfinished row of each key counts: the rows behind it wait for it.
        """
        self.ingest()
        with self._connection() as connection:
            (due_at,) = connection.execute(_NEXT_DUE).fetchone()
        return None if due_at is None else max(0.0, due_at - time.time())

    def unfinished(self) -> int:
        """How many rows are not delivered and not dead (pending or in flight)."""
        self.ingest()
        with self._connection() as connection:
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
            with self._write() as connection:
                deleted = connection.execute(_PRUNE_CHUNK, (_PRUNE_CHUNK_ROWS,)).rowcount
                if deleted:
                    connection.execute(
                        "UPDATE outbox_meta SET value = value + ? WHERE name = 'deleted'", (deleted,)
                    )
            pruned += deleted
            if deleted < _PRUNE_CHUNK_ROWS:
                return pruned

    def checkpoint(self) -> None:
        """Copy the WAL into the database file without blocking anyone (the worker calls this)."""
        with self._connection() as connection:
            connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()

    def close(self) -> None:
        """Close every connection this process opened. The outbox cannot be used afterwards."""
        self._closed = True
        _open_outboxes.discard(self)
        if self._generation != _fork_generation:
            self._forget_inherited_connections()
            return
        # A connection in use by another thread right now is closed when it is given back.
        self._close_idle_connections()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
