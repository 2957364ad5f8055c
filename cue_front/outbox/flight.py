"""The requests one delivery loop keeps in flight: claimed rows started as slots free up, each
request moved on by one selector, each row settled as its answer comes.

Up to ``capacity`` requests at once, each on a kept-alive connection of its own; never two
rows of one ordering key, since the outbox hands out a key's next row only once the one
before it is settled. docs/delivery.md ("The delivery worker") tells how it paces itself.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import selectors
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from .contract import OutboxBackend, OutboxRow
from .exchange import Connection, Exchange, Failure, Origin, Phase, Resolver
from .sender import Outcome, Request, RowSender, Verdict
from .settle import Settlement

__all__ = ["Claim", "Flight"]

logger = logging.getLogger(__name__)

#: Delivered rows are acknowledged together: at the latest this many seconds after the first
#: of them was answered, or once this many wait (one write for many rows).
ACK_DELAY: Final = 0.005
ACK_BATCH: Final = 100
#: Seconds a kept-alive connection may stay idle before it is closed.
IDLE_CONNECTION_SECONDS: Final = 30.0
#: A connection idle longer than this is checked before it is used again (one ``poll()``).
RECHECK_AFTER: Final = 0.05
#: The answers of requests sent through a proxy (they block a thread each) are checked this often.
PROXY_POLL_SECONDS: Final = 0.01
#: How long the end of a flight waits for the answers of requests sent through a proxy (never past
#: a flush's deadline).
PROXY_WAIT_AT_CLOSE: Final = 5.0
#: Failures in a row after which DataCue is taken to be down.
FAILURES_BEFORE_PAUSE: Final = 3
#: Seconds before a claim's lease ends by which its rows are settled (no other process may have them yet).
LEASE_MARGIN: Final = 1.0


#: What pauses delivery for some seconds (the worker's :meth:`~.worker.DeliveryWorker.pause`).
Pause = Callable[[float], None]


@dataclass(eq=False)
class Claim:
    """One claim's lease: its owner, until when its rows may start (enough of the lease left to
    finish them), and until when an answer is waited for (before anyone else may claim them)."""

    owner: str
    start_by: float
    until: float
    started: bool = False


@dataclass(eq=False)
class _Sending:
    """A row in flight: its request, on an exchange of the loop's or (through a proxy) in a thread."""

    row: OutboxRow
    claim: Claim
    request: Request
    exchange: Exchange | None = None
    future: Future[Outcome] | None = None
    #: The socket watched for it, and the connection it belongs to (a new one after a failed address).
    fd: int = -1
    connection: Connection | None = None
    #: Opening a connection to an origin not known to be reachable (one at a time: see _can_open).
    probing: bool = False
    #: Counted among the failures in a row already (it went past the read timeout).
    counted: bool = False


class Flight:
    """Up to ``capacity`` requests in flight on one selector, for one delivery loop (one thread).

    Rows are claimed from ``outbox``, made into requests by ``sender``, and settled through
    ``settlement``; ``pause`` holds back new requests (DataCue looks down).
    ``deadline`` (monotonic seconds) bounds a flush: nothing is waited for past it.
    The worker claims rows into :attr:`queue` with :meth:`claim`; :meth:`start` sends what
    there is room for; :meth:`wait` waits for sockets and deadlines and settles what ends;
    :meth:`close` hands back what is left.
    """

    def __init__(
        self,
        outbox: OutboxBackend,
        sender: RowSender,
        settlement: Settlement,
        pause: Pause,
        capacity: int,
        deadline: float | None = None,
    ) -> None:
        self.outbox = outbox
        self.sender = sender
        self.settlement = settlement
        self._pause = pause
        self.capacity = capacity
        self.deadline = deadline
        self.queue: deque[tuple[OutboxRow, Claim]] = deque()
        self.sending: set[_Sending] = set()
        #: Rows settled so far (answered, or failed); not those handed back unsent.
        self.settled = 0
        #: An acknowledgement was written since the last :meth:`refill`: its rows' keys are free,
        #: so a claim may find their next rows.
        self.keys_freed = False
        #: The last :meth:`refill` took all it asked for: a backlog drains.
        self.backlog = False
        self.failures_in_a_row = 0
        self._acks: list[OutboxRow] = []
        self._acks_due = 0.0
        self._idle: dict[Origin, list[Connection]] = {}
        self._reachable: dict[Origin, bool] = {}
        self._connecting: Counter[Origin] = Counter()
        self._selector = selectors.DefaultSelector()
        self._watched: dict[int, _Sending | Connection] = {}
        #: What each watched descriptor is registered for (the selector's own record is slower to ask).
        self._interest: dict[int, int] = {}
        self._resolver = Resolver()
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def room(self) -> int:
        """How many more rows may be claimed: slots not taken by requests or rows waiting to start."""
        return self.capacity - len(self.sending) - len(self.queue)

    @property
    def busy(self) -> bool:
        return bool(self.sending or self.queue)

    # -- claiming and starting -----------------------------------------------------------------

    def claim(self, limit: int) -> int:
        """Claim up to ``limit`` due rows into :attr:`queue`; returns how many."""
        # An owner per claim, not per thread: an answer recorded after the lease ran out
        # must not settle the copy sent since under a later claim.
        owner = self.settlement.new_owner()
        started = time.monotonic()  # before the claim: its lease may only end later than this says
        rows = self.outbox.claim(owner, limit)
        if not rows:
            return 0
        lease = self.outbox.lease_seconds
        start_by = started + lease - self.sender.request_seconds - LEASE_MARGIN
        until = started + lease - LEASE_MARGIN
        if self.deadline is not None:
            start_by, until = min(start_by, self.deadline), min(until, self.deadline)
        claim = Claim(owner, start_by, until)
        self.queue.extend((row, claim) for row in rows)
        return len(rows)

    def refill(self, batch: int, backlog_size: int) -> int:
        """Claim more rows (returns how many): the acknowledgements waiting are written first (the
        keys they hold are free then), and in a backlog :attr:`backlog` the claim is
        ``backlog_size`` rows instead of ``batch`` (a claim reads the whole queue, whatever it takes)."""
        self.flush_acks(time.monotonic(), force=True)
        self.keys_freed = False
        size = backlog_size if self.backlog else batch
        got = self.claim(size)
        self.backlog = got >= size
        return got

    def start(self, now: float) -> None:
        """Send queued rows while there is a free slot (and a connection may be had for them).

        A row that must wait (for the connection being opened to its origin) goes back to the
        end of :attr:`queue`, not aside: a pause that a settle here sets hands it back too.
        """
        held = 0
        expired: list[tuple[OutboxRow, Claim]] = []
        for _ in range(len(self.queue)):
            if not self.queue or len(self.sending) >= self.capacity:
                break
            row, claim = self.queue.popleft()
            if now >= claim.start_by and claim.started:
                # Not enough of the lease is left to finish it: back, for whoever claims it next.
                expired.append((row, claim))
                continue
            request = self.sender.request_for(row)
            if isinstance(request, Outcome):  # refused before sending (too large; no secret)
                claim.started = True
                self._settle(_Sending(row, claim, Request(None, row.method, "", b"")), request, now)
                continue
            if request.origin is None:
                claim.started = True
                self._send_through_proxy(row, claim, request)
                continue
            connection = self._idle_connection(request.origin, now)
            if connection is None and not self._can_open(request.origin):
                self.queue.append((row, claim))  # after the connection being opened there
                held += 1
                continue
            claim.started = True
            self._send(row, claim, request, connection, now)
        if 0 < held <= len(self.queue):  # the held rows first again, as they were
            self.queue.rotate(held)
        _hand_back(self.outbox, expired)

    def hand_back_queue(self, delay: float = 0.0) -> None:
        """Release every row waiting to start, due again in ``delay`` seconds. A release that
        fails (the outbox file) is logged; the rows' lease runs out instead."""
        rows = list(self.queue)
        self.queue.clear()
        _hand_back(self.outbox, rows, delay)

    def _can_open(self, origin: Origin) -> bool:
        """Whether a new connection to ``origin`` may be opened now: always once one has
        succeeded; otherwise one attempt at a time, so that a DataCue that cannot be reached
        costs one attempt, not one per slot."""
        return self._reachable.get(origin, False) or not self._connecting[origin]

    def _idle_connection(self, origin: Origin, now: float) -> Connection | None:
        """A kept-alive connection to ``origin``. It stays registered with the selector for
        reading, idle or not: each change of registration is a system call, and every system
        call lets go of the GIL (see docs/delivery.md, "The worker beside the shop")."""
        idle = self._idle.get(origin)
        while idle:
            connection = idle.pop()
            idle_for = now - connection.idle_since
            # Idle a while, the loop may not have watched it (it sleeps when nothing is in flight):
            # asked once more whether the server has closed it (a server closes idle connections).
            fresh = idle_for < RECHECK_AFTER or not connection.closed_meanwhile()
            if idle_for < IDLE_CONNECTION_SECONDS and fresh:
                return connection
            self._unwatch(connection.fileno())
            connection.close()
        return None

    def _send(
        self, row: OutboxRow, claim: Claim, request: Request, connection: Connection | None, now: float
    ) -> None:
        assert request.origin is not None
        connect_timeout, read_timeout = self.sender.connect_timeout, self.sender.read_timeout
        if self.deadline is not None:  # a bounded flush: no request may outlast it
            left = self.deadline - now
            connect_timeout = max(0.05, min(connect_timeout, left))
            read_timeout = max(0.05, min(read_timeout, left))
        exchange = Exchange(
            request.origin,
            request.method,
            request.url,
            request.data,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            until=max(claim.until, now + 0.05),
            tls=self.sender.tls_for(request.origin),
        )
        sending = _Sending(row, claim, request, exchange, probing=connection is None)
        if connection is not None:  # watched already (for reading), as an idle connection
            sending.connection, sending.fd = connection, connection.fileno()
        if sending.probing:
            self._connecting[request.origin] += 1
        self.sending.add(sending)
        exchange.start(now, connection, self._resolver)
        self._moved(sending, now)

    def _send_through_proxy(self, row: OutboxRow, claim: Claim, request: Request) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(self.capacity, thread_name_prefix="cue-front-proxy")
        future = self._executor.submit(self.sender.send_through_transport, row, request.method)
        self.sending.add(_Sending(row, claim, request, future=future))

    # -- waiting -------------------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """The earliest moment something must happen without a socket turning ready."""
        moments = [s.exchange.deadline for s in self.sending if s.exchange is not None]
        if self._acks:
            moments.append(self._acks_due)
        if any(s.future is not None for s in self.sending):
            moments.append(time.monotonic() + PROXY_POLL_SECONDS)
        return min(moments, default=None)

    def wait(self, longest: float) -> None:
        """Wait up to ``longest`` seconds (less when a deadline comes first) for sockets, then move
        on every exchange that can, and settle what ended."""
        now = time.monotonic()
        deadline = self.next_deadline()
        timeout = longest if deadline is None else max(0.0, min(longest, deadline - now))
        ready = self._selector.select(timeout) if self._watched else _sleep(timeout)
        now = time.monotonic()
        for key, _ in ready:
            watched = self._watched.get(key.fd)
            if isinstance(watched, Connection):  # an idle one: the server closed it, most likely
                if watched.closed_while_idle():
                    self._forget_idle(watched)
            elif watched is not None and watched.exchange is not None:
                watched.exchange.ready(now)
                self._moved(watched, now)
        for sending in list(self.sending):
            exchange = sending.exchange
            if exchange is not None:
                if exchange.phase is not Phase.DONE and now >= exchange.deadline:
                    if exchange.expire(now):
                        self._became_late(sending, now)
                    self._moved(sending, now)
            elif sending.future is not None and sending.future.done():
                self.sending.discard(sending)
                self._settle(sending, _result(sending.future, sending.request), now)
        self.flush_acks(now)

    def _moved(self, sending: _Sending, now: float) -> None:
        """After ``sending``'s exchange moved on: watch its socket for what it waits for, or settle it."""
        exchange = sending.exchange
        assert exchange is not None
        origin = exchange.origin
        if sending.probing and exchange.phase not in (Phase.CONNECTING, Phase.HANDSHAKE):
            sending.probing = False
            self._connecting[origin] -= 1
            failed_to_connect = isinstance(exchange.result, Failure) and exchange.result.unreachable
            self._reachable[origin] = not failed_to_connect
        if exchange.phase is Phase.DONE:
            self.sending.discard(sending)
            kept = exchange.kept
            if kept is not None:
                kept.idle_since = now
                self._idle.setdefault(origin, []).append(kept)
                self._watch(kept.fileno(), kept, selectors.EVENT_READ)  # watched as it was
            else:
                self._unwatch(sending.fd)
            assert exchange.result is not None
            self._settle(sending, self.sender.outcome(exchange.method, exchange.url, exchange.result), now)
            return
        if exchange.connection is not sending.connection:
            self._unwatch(sending.fd)  # its socket may be closed, and its number taken by the new one
            sending.connection, sending.fd = exchange.connection, exchange.fileno()
        self._watch(sending.fd, sending, exchange.events)

    def _watch(self, fd: int, watched: _Sending | Connection, events: int) -> None:
        self._watched[fd] = watched
        registered = self._interest.get(fd)
        if registered == events:
            return
        if registered is None:
            self._selector.register(fd, events)
        else:
            self._selector.modify(fd, events)
        self._interest[fd] = events

    def _unwatch(self, fd: int) -> None:
        self._interest.pop(fd, None)
        if self._watched.pop(fd, None) is not None:
            with contextlib.suppress(KeyError, ValueError, OSError):
                self._selector.unregister(fd)

    def _forget_idle(self, connection: Connection) -> None:
        self._unwatch(connection.fileno())
        idle = self._idle.get(connection.origin, [])
        if connection in idle:
            idle.remove(connection)
        connection.close()

    def _became_late(self, sending: _Sending, now: float) -> None:
        """No answer within the read timeout: waited for on (see docs/delivery.md, "Late answers")."""
        exchange = sending.exchange
        assert exchange is not None
        logger.info(
            "datacue: outbox row %d (%s) not answered in %gs; listening for its answer %.1fs more",
            sending.row.id,
            sending.row.kind,
            exchange.read_timeout,
            exchange.until - now,
        )
        sending.counted = True
        self.failures_in_a_row += 1
        if self.failures_in_a_row >= FAILURES_BEFORE_PAUSE:
            self.pause(self.settlement.backoff(sending.row.attempts), "DataCue answers nothing in time")

    # -- settling ------------------------------------------------------------------------------

    def _settle(self, sending: _Sending, outcome: Outcome, now: float) -> None:
        row, owner = sending.row, sending.claim.owner
        self.settled += 1
        settlement = self.settlement
        if outcome.verdict is Verdict.DELIVERED:
            if not self._acks:
                self._acks_due = now + ACK_DELAY
            self._acks.append(row)
            self.failures_in_a_row = 0
            exchange = sending.exchange
            if exchange is not None and exchange.late:
                logger.info(
                    "datacue: outbox row %d (%s) delivered; DataCue answered after %.1fs",
                    row.id,
                    row.kind,
                    now - exchange.sent_at,
                )
            if len(self._acks) >= ACK_BATCH:
                self.flush_acks(now, force=True)
            return
        if outcome.verdict is Verdict.REFUSED:
            settlement.dead_letter(row, outcome, owner)
            self.failures_in_a_row = 0
            return
        delay = settlement.retry_later(row, outcome, owner)
        if not sending.counted:
            self.failures_in_a_row += 1
        if outcome.unreachable or outcome.status == 429 or self.failures_in_a_row >= FAILURES_BEFORE_PAUSE:
            # DataCue looks down or asks us to slow down: what waits to start waits too.
            self.pause(delay, outcome.error)

    def pause(self, delay: float, reason: str) -> None:
        """Hold back new requests for ``delay`` seconds: the rows waiting to start go back, due then
        (every worker sharing the outbox pauses too)."""
        self._pause(delay)
        self.hand_back_queue(delay)
        logger.info("datacue: pausing delivery for %.1fs (%s)", delay, reason)

    def flush_acks(self, now: float, *, force: bool = False) -> None:
        """Write the acknowledgements waiting, when they are due (or ``force``)."""
        if not self._acks or (not force and now < self._acks_due and self.sending):
            return
        rows, self._acks = self._acks, []
        self.settlement.acknowledge(rows)
        self.keys_freed = True

    def close_idle_connections(self, now: float) -> None:
        """Close the connections idle for :data:`IDLE_CONNECTION_SECONDS` (the worker calls this)."""
        for connections in self._idle.values():
            for connection in [c for c in connections if now - c.idle_since >= IDLE_CONNECTION_SECONDS]:
                self._forget_idle(connection)

    # -- the end -------------------------------------------------------------------------------

    def close(self) -> None:
        """Hand back what is left: rows not started are released, requests in flight given up
        (their rows due again at once: nothing says DataCue has them). Closes every connection."""
        if self._closed:
            return
        self._closed = True
        now = time.monotonic()
        try:
            self.flush_acks(now, force=True)
        except Exception:
            logger.exception("datacue: recording delivered rows failed; they are sent again")
        self.hand_back_queue()
        until = now + PROXY_WAIT_AT_CLOSE
        if self.deadline is not None:  # a bounded flush (the one at exit: DATACUE_SHUTDOWN_GRACE)
            until = min(until, self.deadline)
        for sending in list(self.sending):
            if sending.future is not None:
                try:
                    outcome = sending.future.result(timeout=max(0.0, until - time.monotonic()))
                except Exception:  # still running (or failed): handed back below
                    pass
                else:
                    self.sending.discard(sending)
                    _quietly(functools.partial(self._settle, sending, outcome, time.monotonic()))
        now = time.monotonic()
        for sending in list(self.sending):
            if sending.exchange is not None:
                sending.exchange.abandon(now)
                result = sending.exchange.result
                message = result.message if isinstance(result, Failure) else "handed back"
            else:
                message = f"{sending.request.method} {sending.request.url}: handed back unanswered"
            outcome = Outcome(Verdict.RETRY, None, message)
            owner = sending.claim.owner
            _quietly(functools.partial(self.settlement.retry_later, sending.row, outcome, owner, delay=0.0))
        self.sending.clear()
        _quietly(lambda: self.flush_acks(time.monotonic(), force=True))
        for connections in self._idle.values():
            for connection in connections:
                connection.close()
        self._idle.clear()
        self._watched.clear()
        self._interest.clear()
        self._selector.close()
        if self._executor is not None:
            self._executor.shutdown(wait=False)


def _hand_back(outbox: OutboxBackend, rows: list[tuple[OutboxRow, Claim]], delay: float = 0.0) -> None:
    """Release ``rows`` unsent, one write per claim, due again in ``delay`` seconds (quietly)."""
    by_owner: dict[str, list[int]] = {}
    for row, claim in rows:
        by_owner.setdefault(claim.owner, []).append(row.id)
    for owner, ids in by_owner.items():
        _quietly(functools.partial(outbox.release, ids, delay=delay, owner=owner))


def _result(future: Future[Outcome], request: Request) -> Outcome:
    try:
        return future.result()
    except Exception as error:  # a bug in the transport: retried, loudly
        logger.exception("datacue: sending through the proxy failed")
        return Outcome(Verdict.RETRY, None, f"{request.method} {request.url}: {error}")


def _sleep(seconds: float) -> list[tuple[selectors.SelectorKey, int]]:
    time.sleep(seconds)
    return []


def _quietly(action: Callable[[], object]) -> None:
    """Run ``action`` at the end of a flight; a failure (the outbox file) is logged: the lease
    runs out and the row is sent again."""
    try:
        action()
    except Exception:
        logger.exception("datacue: handing back an outbox row failed; its lease runs out instead")
