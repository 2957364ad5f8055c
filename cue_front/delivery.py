"""The delivery worker: one background thread per process that drains the outbox into DataCue.

It claims a batch of due rows (:meth:`Outbox.claim`), sends each one through the
shared :class:`~cue_front.transport.Transport`'s URLs, signatures and error
mapping, and settles it:

* a 2xx (or 3xx) answer: delivered (acked in one write per batch);
* 4xx other than 408 and 429: refused for good, kept as a dead letter with the
  answer, ``signals.dead_lettered`` sent and an ERROR logged;
* 5xx, 408, 429, a timeout or a connection error: retried after an exponential
  backoff with jitter (``backoff_base * 2**(attempts - 1)``, capped at
  ``backoff_max``, then between half and all of it), or after the server's
  ``Retry-After`` when that is longer.

A request not answered within the read timeout is not retried at once: DataCue's
APIs have no idempotency key, and a slow answer usually means the request is being
processed, so a second copy would be counted twice. The thread moves on to the next
row while :class:`_LateAnswers` keeps listening on that connection, until a second
before the row's lease runs out; the answer settles the row when it comes. Only a
hang-up, or no answer by then, has the row retried.

When DataCue looks down (it cannot be connected to, three failures in a row, or
a 429) the rest of the batch is handed back unsent and the thread pauses for
the backoff, instead of spending a timeout on every row. Woken by
:meth:`DeliveryWorker.notify`, the thread lingers 10 ms first, so that a busy
process sends its events in batches (one claim and one ack per batch). A batch also stops
short when its lease is about to run out, so that a row is never still being
sent when another process may claim it.

The hot path talks HTTP through kept-alive ``http.client`` connections of its
own (requests' and urllib3's per-call overhead is most of the cost of a small
POST on a fast network, and this thread shares the GIL with the shop's
requests); it falls back to ``transport.send(..., retry=False)`` when the
environment routes DataCue through a proxy, so proxies behave as everywhere else
(there a timed-out request is retried, not listened for).

The thread starts lazily (:meth:`DeliveryWorker.ensure_running`) and again in a
forked child (gunicorn workers), with its own connections. At interpreter exit
every running worker gets a bounded flush (2 seconds in all).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import itertools
import logging
import os
import random
import select
import selectors
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO, Final
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy

from . import signals
from .errors import APIError, DataCueError, NetworkError, PayloadTooLargeError, RateLimitError
from .outbox import Outbox, OutboxRow
from .transport import Transport, check_body_size, error_for_reply, parse_retry_after

__all__ = ["EXIT_FLUSH_SECONDS", "DeliveryWorker"]

logger = logging.getLogger("cue_front.delivery")

#: How long, in all, the flush at interpreter exit may take.
EXIT_FLUSH_SECONDS: Final = 2.0
#: Failures in a row, within one batch, after which DataCue is taken to be down.
FAILURES_BEFORE_PAUSE: Final = 3
#: The longest ``Retry-After`` honoured; a longer one (a confused proxy) is cut to this.
MAX_RETRY_AFTER: Final = 3600.0
#: A row failing this many times is logged at WARNING (before: INFO, since one failure is routine).
ATTEMPTS_BEFORE_WARNING: Final = 5
#: Statuses of the 4xx family that are worth another try.
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})
#: Seconds between WAL checkpoints by the worker (puts never checkpoint: see outbox.py).
CHECKPOINT_INTERVAL: Final = 1.0
#: While delivery is paused, journaled events are still moved into the outbox this often (seconds).
INGEST_WHILE_PAUSED: Final = 0.5
#: A dead letter keeps at most this much of DataCue's answer.
MAX_RESPONSE_CHARS: Final = 10_000
#: Rows whose late answer one worker listens for at a time; past that a timed-out row is retried.
MAX_LATE_ANSWERS: Final = 32
#: Seconds before a claim's lease ends by which its rows are settled (no other process may have them yet).
LEASE_MARGIN: Final = 1.0


@dataclass(frozen=True)
class _Outcome:
    """What became of one send: ``delivered``, ``retry`` or ``refused`` (dead letter)."""

    verdict: str
    status: int | None = None
    error: str = ""
    response_body: str | None = None
    retry_after: float | None = None
    #: The failure says DataCue cannot be reached at all: stop the batch at once.
    unreachable: bool = False


_DELIVERED: Final = _Outcome("delivered")


@dataclass
class _Unanswered:
    """A request sent and not answered within the read timeout; its connection is still open."""

    connection: http.client.HTTPConnection
    origin: tuple[str, str, int]
    method: str
    url: str
    #: Seconds already waited for the answer.
    waited: float


def _readable(sock: socket.socket) -> bool:
    """Whether ``sock`` has something to read right now.

    poll(), not select(), which fails on a descriptor numbered past 1023 (a busy process
    with many files and connections open); Windows has no poll(), nor that limit.
    """
    if not hasattr(select, "poll"):
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


class _AnswerBegun:
    """Stands in for a connection's socket while ``getresponse()`` reads an answer already begun.

    Its first bytes are in ``reader``, read to learn that it had begun: on a TLS socket,
    readable is not enough (a TLS 1.3 session ticket makes it readable too, before any
    answer). A reader of http.client's own would start after them.
    """

    def __init__(self, sock: socket.socket, reader: BinaryIO) -> None:
        self.sock = sock
        self.reader = reader

    def makefile(self, mode: str) -> BinaryIO:
        return self.reader

    def close(self) -> None:
        self.sock.close()


class _Courier:
    """Sends outbox rows over kept-alive ``http.client`` connections of its own, per origin.

    ``http.client`` rather than requests or urllib3: on a small POST to a fast server
    most of the cost is the client's own Python, and the worker shares the GIL with
    the shop's request threads. Not shared across a fork: the child makes its own.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.connect_timeout, self.read_timeout = transport.timeout
        self.request_seconds = self.connect_timeout + self.read_timeout
        self._events_headers = transport.events_headers()
        #: url -> (scheme, host, port, request target), or None when a proxy must be used.
        self._routes: dict[str, tuple[str, str, int, str] | None] = {}
        self._tls: ssl.SSLContext | None = None
        #: Idle kept-alive connections per (scheme, host, port); list.pop/append are atomic.
        self._idle: dict[tuple[str, str, int], list[http.client.HTTPConnection]] = {}

    def close(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _route(self, url: str) -> tuple[str, str, int, str] | None:
        """Where ``url`` goes; ``None`` when the environment sends it through a proxy."""
        route = self._routes.get(url, ())
        if route != ():
            return route  # type: ignore[return-value]
        settings = self.transport.session.merge_environment_settings(url, {}, None, None, None)
        if select_proxy(url, settings["proxies"]) is not None:
            route = None
        else:
            parts = urlsplit(url)
            scheme = parts.scheme.lower()
            if scheme == "https" and self._tls is None:
                self._tls = _tls_context(settings["verify"])
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            route = (scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80), target)
        if len(self._routes) < 4096:  # REST paths vary; keep the table bounded
            self._routes[url] = route
        return route

    def _connection(self, origin: tuple[str, str, int]) -> http.client.HTTPConnection | None:
        """A kept-alive connection that the server has not closed meanwhile, or None."""
        idle = self._idle.setdefault(origin, [])
        while idle:
            try:
                connection = idle.pop()
            except IndexError:  # another thread took the last one
                break
            sock = connection.sock
            # Readable while idle means closed (or garbage): the server dropped it.
            if sock is not None and not _readable(sock):
                return connection
            connection.close()
        return None

    def send(self, row: OutboxRow, time_left: float | None = None) -> _Outcome | _Unanswered:
        """Send ``row``; its outcome, or the open connection when no answer came within the read timeout."""
        transport = self.transport
        if row.kind == "event":
            url = transport.events_url if not row.path else transport.events_url.rstrip("/") + row.path
            method = "POST"
        else:
            url = transport.url_for(row.path)
            method = row.method
        try:
            check_body_size(row.body)
            headers = self._events_headers if row.kind == "event" else transport.rest_headers(row.body)
        except PayloadTooLargeError as error:
            return _Outcome("refused", None, str(error))
        except DataCueError as error:  # no API secret: a setup problem, not the row's fault
            return _Outcome("retry", None, str(error))
        route = self._route(url)
        if route is None:
            return self._send_through_transport(row, method)
        scheme, host, port, target = route
        connect_timeout, read_timeout = self.connect_timeout, self.read_timeout
        if time_left is not None:  # a bounded flush: no request may outlast it
            connect_timeout = max(0.05, min(connect_timeout, time_left))
            read_timeout = max(0.05, min(read_timeout, time_left))
        connection = self._connection((scheme, host, port))
        if connection is None:
            if scheme == "https":
                connection = http.client.HTTPSConnection(
                    host, port, timeout=connect_timeout, context=self._tls
                )
            else:
                connection = http.client.HTTPConnection(host, port, timeout=connect_timeout)
            try:
                connection.connect()
            except OSError as error:  # refused, unknown host, connect timeout, TLS handshake
                connection.close()
                return _Outcome("retry", None, _network_message(method, url, error), unreachable=True)
            # http.client writes the head and the body separately: without this, Nagle's
            # algorithm holds the body until the server's delayed ACK of the head (40 ms).
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock = connection.sock
        assert sock is not None
        sock.settimeout(read_timeout)
        try:
            connection.request(method, target, body=row.body or None, headers=headers)
        except TimeoutError:  # DataCue did not even take the request in: it cannot have processed it
            connection.close()
            message = f"{method} {url}: DataCue did not answer in time ({read_timeout:g}s)"
            return _Outcome("retry", None, message)
        except (OSError, http.client.HTTPException) as error:  # reset, refused mid-write
            connection.close()
            return _Outcome("retry", None, _network_message(method, url, error))
        outcome = self.receive(connection, (scheme, host, port), method, url, read_timeout, read_timeout)
        if outcome is None:
            return _Unanswered(connection, (scheme, host, port), method, url, read_timeout)
        return outcome

    def receive(
        self,
        connection: http.client.HTTPConnection,
        origin: tuple[str, str, int],
        method: str,
        url: str,
        read_timeout: float,
        first_byte_wait: float,
    ) -> _Outcome | None:
        """Read the answer to the request just sent; None when none began within ``first_byte_wait``.

        Waiting for the first byte apart from getresponse() leaves the connection as it was
        when nothing came: a late answer can still be read from it (see :class:`_LateAnswers`).
        """
        sock = connection.sock
        assert sock is not None
        reader = sock.makefile("rb")
        try:
            sock.settimeout(max(first_byte_wait, 0.001))  # not 0, which makes the socket non-blocking
            try:
                reader.peek(1)  # through TLS: select() would take a session ticket for an answer
            except TimeoutError:
                reader.close()
                return None
            sock.settimeout(read_timeout)
            connection.sock = _AnswerBegun(sock, reader)
            try:
                response = connection.getresponse()
            finally:
                if connection.sock is not None:  # else closed: the answer or a hang-up said so
                    connection.sock = sock
            body = response.read()
        except TimeoutError:
            connection.close()
            reader.close()  # after: a response http.client kept would flush it as it closes
            message = f"{method} {url}: DataCue did not answer in time ({read_timeout:g}s)"
            return _Outcome("retry", None, message)
        except (OSError, http.client.HTTPException) as error:  # dropped, reset, cut off
            connection.close()
            reader.close()
            return _Outcome("retry", None, _network_message(method, url, error))
        if response.will_close:
            connection.close()
        else:
            self._idle.setdefault(origin, []).append(connection)
        if response.status < 400:
            return _DELIVERED
        answer_headers = CaseInsensitiveDict(response.getheaders())
        return _outcome_for_reply(method, url, response.status, body, answer_headers)

    def _send_through_transport(self, row: OutboxRow, method: str) -> _Outcome:
        try:
            if row.kind == "event":
                self.transport.send_event(row.body, retry=False)
            else:
                self.transport.send(method, row.path, row.body, retry=False)
        except RateLimitError as error:
            return _Outcome("retry", error.status, str(error), error.body, error.retry_after)
        except APIError as error:
            verdict = "retry" if _retryable(error.status) else "refused"
            return _Outcome(verdict, error.status, str(error), _clip(error.body))
        except NetworkError as error:
            return _Outcome("retry", None, str(error))
        except DataCueError as error:
            return _Outcome("retry", None, str(error))
        return _DELIVERED


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in RETRYABLE_CLIENT_STATUSES


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_RESPONSE_CHARS]


def _outcome_for_reply(
    method: str, url: str, status: int, body: bytes, headers: Mapping[str, str]
) -> _Outcome:
    error = error_for_reply(method, url, status, body, headers)
    if error is None:
        return _DELIVERED
    text = _clip(body.decode("utf-8", errors="replace"))
    if _retryable(status):
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if retry_after is None:  # a 503 may say when to come back too
            retry_after = parse_retry_after(headers.get("Retry-After"))
        return _Outcome("retry", status, str(error), text, retry_after)
    return _Outcome("refused", status, str(error), text)


def _tls_context(verify: object) -> ssl.SSLContext:
    """TLS as requests would do it: its CA bundle (or REQUESTS_CA_BUNDLE's), or no checks if told so."""
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    bundle = verify if isinstance(verify, str) else DEFAULT_CA_BUNDLE_PATH
    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)


def _network_message(method: str, url: str, error: BaseException) -> str:
    inner: BaseException = error
    for _ in range(8):  # the innermost reason says most (refused, reset, name unknown)
        nested = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    reason = f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__
    return f"{method} {url}: DataCue could not be reached ({reason})"


@dataclass(eq=False)
class _Awaited:
    """A row whose answer is still listened for after the read timeout."""

    row: OutboxRow
    owner: str
    unanswered: _Unanswered
    #: When the request went out, and when to stop listening (before the row's lease ends).
    sent_at: float
    until: float


class _LateAnswers:
    """Listens, on a thread of its own, for answers that come after the read timeout.

    DataCue's APIs have no idempotency key, so a request sent again after a timeout
    is counted twice whenever DataCue did process the first copy, only slowly. A row
    not answered within the read timeout is therefore not retried at once: the
    delivery thread moves on, and this thread keeps the connection open and reads the
    answer when it comes, until shortly before the row's lease runs out. Only then,
    or when DataCue hangs up without answering, is the row retried. ``settle``
    records each outcome. At most ``capacity`` rows are listened for at a time.
    """

    def __init__(
        self, courier: _Courier, settle: Callable[[_Awaited, _Outcome], None], capacity: int
    ) -> None:
        self._courier = courier
        self._settle = settle
        self._capacity = capacity
        self._awaited: list[_Awaited] = []
        #: Rows taken from ``_awaited`` whose answer is being read or recorded.
        self._settling: set[int] = set()
        self._changed = threading.Condition()
        self._closing = False
        self._thread: threading.Thread | None = None
        self._wake_pair: tuple[socket.socket, socket.socket] | None = None

    def listen(self, awaited: _Awaited) -> bool:
        """Listen for ``awaited``'s answer; False (nothing taken) when full or closed."""
        with self._changed:
            if self._closing or len(self._awaited) + len(self._settling) >= self._capacity:
                return False
            if self._thread is None:
                pair = socket.socketpair()
                for end in pair:
                    end.setblocking(False)
                thread = threading.Thread(target=self._run, args=(pair[0],), name="cue-front-late-answers")
                thread.daemon = True
                try:
                    thread.start()
                except RuntimeError:  # interpreter shutdown
                    for end in pair:
                        end.close()
                    return False
                self._thread, self._wake_pair = thread, pair
            self._awaited.append(awaited)
        self._wake()
        return True

    def wait_for(self, row_ids: set[int]) -> None:
        """Return once none of ``row_ids`` is listened for any more (each has been settled)."""

        def unsettled() -> list[_Awaited]:
            return [item for item in self._awaited if item.row.id in row_ids]

        with self._changed:
            while (waiting := unsettled()) or self._settling & row_ids:
                if self._thread is None or not self._thread.is_alive():
                    return  # nothing would settle them: their leases run out instead
                until = max((item.until for item in waiting), default=time.monotonic())
                self._changed.wait(max(0.05, until - time.monotonic() + 0.05))

    def close(self, timeout: float) -> list[_Awaited]:
        """Stop listening; the rows still waiting for an answer are returned, their connections closed.

        Waits up to ``timeout`` seconds for an answer being read meanwhile to be recorded.
        """
        with self._changed:
            self._closing = True
            left, self._awaited = self._awaited, []
            thread, pair = self._thread, self._wake_pair
            self._changed.notify_all()
        self._wake()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        for item in left:
            item.unanswered.connection.close()
        if pair is not None and (thread is None or not thread.is_alive()):
            for end in pair:
                end.close()
        return left

    def _wake(self) -> None:
        pair = self._wake_pair
        if pair is not None:
            with contextlib.suppress(OSError):  # a wake-up already waiting (buffer full), or closed
                pair[1].send(b"\0")

    def _run(self, wake: socket.socket) -> None:
        while True:
            with self._changed:
                if self._closing:
                    return
                awaited = list(self._awaited)
            sockets = {item.unanswered.connection.sock: item for item in awaited}
            timeout = min((item.until for item in awaited), default=time.monotonic() + 60.0)
            try:
                with selectors.DefaultSelector() as selector:  # not select(): see _readable
                    for sock in (wake, *sockets):
                        selector.register(sock, selectors.EVENT_READ)
                    events = selector.select(max(0.0, timeout - time.monotonic()))
            except (OSError, ValueError):  # a connection closed meanwhile (by close())
                continue
            ready = {key.fileobj for key, _ in events}
            if wake in ready:
                try:
                    while wake.recv(4096):
                        pass
                except OSError:  # drained (or closed)
                    pass
            now = time.monotonic()
            due = [item for sock, item in sockets.items() if sock in ready or now >= item.until]
            with self._changed:
                due = [item for item in due if item in self._awaited]
                for item in due:
                    self._awaited.remove(item)
                    self._settling.add(item.row.id)
            for index, item in enumerate(due):
                self._answer(item, now, due[index + 1 :])

    def _answer(self, item: _Awaited, now: float, due_next: list[_Awaited]) -> None:
        unanswered = item.unanswered
        connection = unanswered.connection
        try:
            # An answer slow to come whole must not keep the others unread past their time.
            with self._changed:
                next_until = min((other.until for other in (*self._awaited, *due_next)), default=None)
            read_timeout = self._courier.read_timeout
            if next_until is not None:
                read_timeout = max(0.01, min(read_timeout, next_until - time.monotonic()))
            outcome: _Outcome | None = None
            if connection.sock is not None:
                method, url = unanswered.method, unanswered.url
                outcome = self._courier.receive(connection, unanswered.origin, method, url, read_timeout, 0.0)
            if outcome is None:
                with self._changed:
                    # Readable for no answer (a TLS session ticket): listen on, while there is time.
                    if not self._closing and time.monotonic() < item.until:
                        self._awaited.append(item)
                        return
                connection.close()
                outcome = _unanswered_outcome(unanswered, now - item.sent_at)
            self._settle(item, outcome)
        except Exception:  # the outbox file: the lease runs out and the row is sent again
            logger.exception("datacue: recording the late answer to outbox row %d failed", item.row.id)
        finally:
            with self._changed:
                self._settling.discard(item.row.id)
                self._changed.notify_all()


def _unanswered_outcome(unanswered: _Unanswered, waited: float) -> _Outcome:
    message = f"{unanswered.method} {unanswered.url}: DataCue did not answer in time ({waited:.3g}s)"
    return _Outcome("retry", None, message)


class DeliveryWorker:
    """Drains an :class:`Outbox` into DataCue through ``transport``, on a thread of its own.

    ``sender`` is the blinker sender of ``signals.delivered`` and
    ``signals.dead_lettered`` (the Flask app; its app context is pushed while they
    are sent). ``batch_size`` rows are claimed at a time. Failed rows wait
    ``backoff_base * 2**(attempts - 1)`` seconds, at most ``backoff_max``, with
    jitter. With nothing due, the thread sleeps up to ``idle_interval`` seconds
    (other processes' rows are found then), or until :meth:`notify`; then it
    lingers ``linger`` seconds to send what arrives meanwhile in the same batch.
    """

    def __init__(
        self,
        outbox: Outbox,
        transport: Transport,
        *,
        sender: object = None,
        batch_size: int = 100,
        backoff_base: float = 0.5,
        backoff_max: float = 300.0,
        idle_interval: float = 1.0,
        linger: float = 0.01,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size!r}")
        self.outbox = outbox
        self.transport = transport
        self.sender = sender
        self.batch_size = batch_size
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.idle_interval = idle_interval
        self.linger = linger
        self._stopped = False
        self._reset_for_this_process()
        request_seconds = sum(transport.timeout)
        if outbox.lease_seconds <= request_seconds:
            logger.warning(
                "datacue: the outbox lease (%gs) is not longer than one request may take (%gs):"
                " rows may be sent twice; raise lease_seconds",
                outbox.lease_seconds,
                request_seconds,
            )
        _workers.add(self)

    def __repr__(self) -> str:
        return f"<DeliveryWorker outbox={str(self.outbox.path)!r} running={self.running}>"

    def _reset_for_this_process(self) -> None:
        """Fresh thread state and HTTP connections: at creation, and in a forked child."""
        self._pid = os.getpid()
        self._generation = _fork_generation
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._courier = _Courier(self.transport)
        self._late = _LateAnswers(self._courier, self._settle_late, MAX_LATE_ANSWERS)
        self._owner = f"{socket.gethostname()}:{self._pid}:{id(self):x}"
        self._claims = itertools.count(1)
        self._paused_until = 0.0
        self._acked_since_prune = 0
        self._last_prune = time.monotonic()
        self._last_checkpoint = time.monotonic()

    def _check_fork(self) -> None:
        if self._generation != _fork_generation:
            # The parent's thread does not exist here, and its sockets are the parent's.
            self._reset_for_this_process()

    # -- the thread -------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True when this process's delivery thread is alive."""
        thread = self._thread
        return thread is not None and self._generation == _fork_generation and thread.is_alive()

    def ensure_running(self) -> None:
        """Start the delivery thread if it is not running in this process (first use, or after a fork)."""
        # On every track(): a fork generation, not os.getpid(), which is a system call.
        if self._generation == _fork_generation and self._thread is not None and self._thread.is_alive():
            return
        self._check_fork()
        if self._stopped:
            return
        with self._start_lock:
            if self._thread is not None and self._thread.is_alive():
                return
            if self._thread is not None:
                logger.error("datacue: the delivery thread had stopped; starting it again")
            self._stopping.clear()
            thread = threading.Thread(target=self._run, name="cue-front-delivery", daemon=True)
            try:
                thread.start()
            except RuntimeError as error:  # interpreter shutdown: the rows wait in the outbox
                logger.warning("datacue: cannot start the delivery thread (%s); rows stay queued", error)
                return
            self._thread = thread

    def serve(self) -> None:
        """Deliver in the calling thread until :meth:`stop` (from a signal handler or another thread).

        For a process that only delivers (``flask datacue outbox deliver``): with the
        shop's own processes not starting their thread, no delivery work competes with
        their requests for the GIL.
        """
        self._check_fork()
        if self._stopped:  # stop() is final, even when it comes first
            return
        try:
            self._run()
        finally:
            self._stop_listening(timeout=5.0)
            self._courier.close()

    def notify(self) -> None:
        """Wake the thread: a row was just put. Cheap enough for the request path."""
        wake = self._wake
        if not wake.is_set():
            wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread (waiting up to ``timeout`` for the batch in hand) and close its connections.

        Rows it could not finish stay in the outbox for the next start.
        """
        self._stopped = True
        if self._generation != _fork_generation:
            return
        self._stopping.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._stop_listening(timeout=max(0.1, deadline - time.monotonic()))
        if thread is None or not thread.is_alive():  # else its connections are still in use
            self._courier.close()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            pause = self._paused_until - time.monotonic()
            if pause > 0:  # DataCue is down or asked us to slow down: even a notify waits
                # ...but journaled events still move into the outbox, where the cap and
                # `flask datacue status` see them.
                self._stopping.wait(min(pause, INGEST_WHILE_PAUSED))
                try:
                    self.outbox.ingest()
                except Exception:
                    logger.exception("datacue: moving journaled events into the outbox failed")
                continue
            self._wake.clear()
            try:
                handled = self._deliver_batch(deadline=None)
                failures = 0
            except Exception:  # the outbox file, the disk: keep going, loudly
                failures += 1
                logger.exception("datacue: the delivery worker failed; trying again")
                handled = 0
                self._pause(self._backoff(failures))
            try:
                self._upkeep(idle=handled == 0)
            except Exception:
                logger.exception("datacue: outbox upkeep failed")
            paused = time.monotonic() < self._paused_until
            if handled >= self.batch_size and not paused:
                continue  # a backlog: straight on with the next batch
            if handled and not paused:
                # Rows keep coming: gather what arrives meanwhile into one batch, so that a
                # busy process pays one claim and one ack per batch, not per event.
                self._stopping.wait(self.linger)
                continue
            if self._wake.wait(self._idle_wait()) and self.linger:
                self._stopping.wait(self.linger)

    def _idle_wait(self) -> float:
        pause = self._paused_until - time.monotonic()
        if pause > 0:
            return pause
        try:
            due_in = self.outbox.next_due_in()
        except Exception:
            return self.idle_interval
        if due_in is None:
            return self.idle_interval
        return min(self.idle_interval, max(due_in, 0.005))

    def _pause(self, seconds: float) -> None:
        self._paused_until = max(self._paused_until, time.monotonic() + seconds)

    def _upkeep(self, idle: bool) -> None:
        now = time.monotonic()
        prune_every = max(100, min(10_000, self.outbox.max_rows // 10))
        if self._acked_since_prune >= prune_every or (
            idle and self._acked_since_prune and now - self._last_prune >= 5.0
        ):
            self._acked_since_prune = 0
            self._last_prune = now
            self.outbox.prune(pause=0.001)
        if now - self._last_checkpoint >= CHECKPOINT_INTERVAL:
            self._last_checkpoint = now
            self.outbox.checkpoint()

    # -- delivering -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Claim one batch and send it, here and now; returns how many rows were settled.

        A row answered after the read timeout is waited for (see :class:`_LateAnswers`).
        """
        return self._deliver_batch(deadline=None, wait_for_late_answers=True)

    def flush(self, timeout: float) -> bool:
        """Deliver until the outbox is empty or ``timeout`` seconds pass; True when nothing is left.

        Waits for rows in flight elsewhere (this process's thread, another process) and
        for retries that fall due before the deadline; gives up at once when what is
        left waits out a backoff longer than the time left.
        """
        deadline = time.monotonic() + max(0.0, timeout)
        while True:
            if self._deliver_batch(deadline=deadline):
                if time.monotonic() < deadline:
                    continue
                return self.outbox.unfinished() == 0
            stats = self.outbox.stats()
            if stats.pending + stats.in_flight == 0:
                return True
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            if stats.in_flight:
                time.sleep(min(left, 0.02))
                continue
            due_in = self.outbox.next_due_in()
            if due_in is None:
                return True
            if due_in >= left:
                return False
            time.sleep(max(due_in, 0.005))

    def _deliver_batch(self, deadline: float | None, wait_for_late_answers: bool = False) -> int:
        self._check_fork()
        # An owner per claim, not per thread: an answer recorded after the lease ran out
        # (the listener was busy) must not settle the copy this thread has sent since.
        owner = f"{self._owner}:{next(self._claims)}"
        started = time.monotonic()  # before the claim: its lease may only end later than this says
        rows = self.outbox.claim(owner, self.batch_size)
        if not rows:
            return 0
        # A row is only started while enough lease is left to finish it (see the module doc).
        last_start = started + self.outbox.lease_seconds - self._courier.request_seconds - LEASE_MARGIN
        if deadline is not None:
            last_start = min(last_start, deadline)
        delivered: list[OutboxRow] = []
        listened_for: set[int] = set()
        failures_in_a_row = 0
        settled = 0
        for index, row in enumerate(rows):
            now = time.monotonic()
            if index and now >= last_start:
                self.outbox.release([r.id for r in rows[index:]], owner=owner)
                break
            time_left = None if deadline is None else deadline - now
            sent = self._courier.send(row, time_left)
            settled += 1
            if isinstance(sent, _Unanswered):
                outcome = self._listen_for_answer(row, owner, sent, started, deadline)
            else:
                outcome = sent
            if outcome.verdict == "delivered":
                delivered.append(row)
                failures_in_a_row = 0
                continue
            if outcome.verdict == "refused":
                self._dead_letter(row, outcome, owner)
                failures_in_a_row = 0
                continue
            failures_in_a_row += 1
            if outcome.verdict == "awaited":  # the row waits for its answer; the backoff paces the rest
                listened_for.add(row.id)
                delay = self._backoff(row.attempts)
            else:
                delay = self._retry_later(row, outcome, owner)
            rest = rows[index + 1 :]
            rate_limited = outcome.status == 429
            if rest and (outcome.unreachable or rate_limited or failures_in_a_row >= FAILURES_BEFORE_PAUSE):
                # DataCue looks down or asks us to slow down: the rest of the batch waits too.
                self.outbox.release([r.id for r in rest], delay=delay, owner=owner)
                self._pause(delay)
                logger.info("datacue: pausing delivery for %.1fs (%s)", delay, outcome.error)
                break
            if outcome.unreachable or rate_limited:
                self._pause(delay)
        if delivered:
            self.outbox.ack([row.id for row in delivered])
            self._acked_since_prune += len(delivered)
            if signals.delivered.receivers:
                for row in delivered:
                    self._signal(signals.delivered, row)
        if wait_for_late_answers and listened_for:
            self._late.wait_for(listened_for)
        return settled

    def _listen_for_answer(
        self, row: OutboxRow, owner: str, unanswered: _Unanswered, claimed_at: float, deadline: float | None
    ) -> _Outcome:
        """Hand a request that outlasted the read timeout to :class:`_LateAnswers`, or give it up.

        Listened for until :data:`LEASE_MARGIN` before the claim's lease ends (and never
        past ``deadline``); the verdict is then ``awaited``. When that leaves no time, or
        too many answers are awaited already, the connection is closed and the row retried.
        """
        now = time.monotonic()
        until = claimed_at + self.outbox.lease_seconds - LEASE_MARGIN
        if deadline is not None:
            until = min(until, deadline)
        sent_at = now - unanswered.waited
        if until - now > 0.01 and self._late.listen(_Awaited(row, owner, unanswered, sent_at, until)):
            logger.info(
                "datacue: outbox row %d (%s) not answered in %gs; listening for its answer %.1fs more",
                row.id,
                row.kind,
                unanswered.waited,
                until - now,
            )
            return _Outcome("awaited", None, "")
        unanswered.connection.close()
        return _unanswered_outcome(unanswered, unanswered.waited)

    def _settle_late(self, awaited: _Awaited, outcome: _Outcome) -> None:
        """Record the outcome of a row whose answer came (or did not) after the read timeout."""
        row, owner = awaited.row, awaited.owner
        if outcome.verdict == "delivered":
            self.outbox.ack([row.id])
            self._acked_since_prune += 1
            logger.info(
                "datacue: outbox row %d (%s) delivered; DataCue answered after %.1fs",
                row.id,
                row.kind,
                time.monotonic() - awaited.sent_at,
            )
            if signals.delivered.receivers:
                self._signal(signals.delivered, row)
        elif outcome.verdict == "refused":
            self._dead_letter(row, outcome, owner)
        else:
            delay = self._retry_later(row, outcome, owner)
            if outcome.status == 429:
                self._pause(delay)

    def _stop_listening(self, timeout: float) -> None:
        """Stop listening for late answers; the rows still waiting are retried (at once)."""
        for awaited in self._late.close(timeout):
            outcome = _unanswered_outcome(awaited.unanswered, time.monotonic() - awaited.sent_at)
            try:
                self._retry_later(awaited.row, outcome, awaited.owner, delay=0.0)
            except Exception:  # the lease runs out and the row is sent again
                logger.exception("datacue: could not hand back outbox row %d", awaited.row.id)

    def _backoff(self, attempts: int) -> float:
        exponential = self.backoff_base * 2.0 ** max(0, min(attempts - 1, 62))
        ceiling = min(self.backoff_max, exponential)
        # "Equal jitter": never less than half the backoff, so a failing row is not hammered,
        # and spread over the other half so that processes retrying together drift apart.
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _retry_later(
        self, row: OutboxRow, outcome: _Outcome, owner: str, delay: float | None = None
    ) -> float:
        if delay is None:
            delay = self._backoff(row.attempts)
        if outcome.retry_after is not None:
            delay = max(delay, min(outcome.retry_after, MAX_RETRY_AFTER))
        self.outbox.retry_later(row.id, delay=delay, error=outcome.error, status=outcome.status, owner=owner)
        level = logging.WARNING if row.attempts >= ATTEMPTS_BEFORE_WARNING else logging.INFO
        logger.log(
            level,
            "datacue: outbox row %d (%s) failed, attempt %d; retrying in %.1fs: %s",
            row.id,
            row.kind,
            row.attempts,
            delay,
            outcome.error,
        )
        return delay

    def _dead_letter(self, row: OutboxRow, outcome: _Outcome, owner: str) -> None:
        self.outbox.dead_letter(
            row.id,
            status=outcome.status,
            error=outcome.error,
            response_body=outcome.response_body,
            owner=owner,
        )
        logger.error(
            "datacue: DataCue refused outbox row %d (%s %s), kept as a dead letter: %s",
            row.id,
            row.method,
            row.path or "events",
            outcome.error,
        )
        if signals.dead_lettered.receivers:
            self._signal(signals.dead_lettered, row, status=outcome.status, error=outcome.error)

    def _signal(self, signal: Any, row: OutboxRow, **extra: Any) -> None:
        details = {"row_id": row.id, "kind": row.kind, "method": row.method, "path": row.path, **extra}
        app_context = getattr(self.sender, "app_context", None)
        try:
            if callable(app_context):
                with app_context():  # receivers may use current_app, as in a request
                    signal.send(self.sender, **details)
            else:
                signal.send(self.sender, **details)
        except Exception:  # a receiver's bug must not stop delivery
            logger.exception("datacue: a receiver of %s failed", signal.name)


# -- the flush at interpreter exit --------------------------------------------------------

_workers: weakref.WeakSet[DeliveryWorker] = weakref.WeakSet()
#: Bumped in a forked child, where every worker's thread and sockets are its parent's.
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _flush_at_exit() -> None:
    deadline = time.monotonic() + EXIT_FLUSH_SECONDS
    for worker in list(_workers):
        if not worker.running:
            continue
        try:
            left = deadline - time.monotonic()
            if left > 0 and not worker.flush(left):
                logger.warning(
                    "datacue: exiting with %d rows still in the outbox; they are sent at the next start",
                    worker.outbox.unfinished(),
                )
            worker.stop(timeout=max(0.1, deadline - time.monotonic()))
            worker.outbox.retire_journal()
        except Exception:
            logger.exception("datacue: the flush at exit failed; undelivered rows stay in the outbox")


atexit.register(_flush_at_exit)
