"""One HTTP/1.1 request and its answer on a non-blocking, kept-alive connection: the delivery loop's wire.

The delivery worker keeps many requests in flight on one thread; each is an
:class:`Exchange` that the loop moves on whenever its socket is ready or its deadline
comes, and each :class:`Connection` is kept alive for the next request to its origin.
Why an event loop, and why this much HTTP by hand, is in docs/delivery.md ("The sender").
"""

from __future__ import annotations

import contextlib
import enum
import errno
import os
import select
import selectors
import socket
import ssl
import time
from typing import Any, Final, NamedTuple

from ..transport import unreachable_message

__all__ = [
    "Answer",
    "Connection",
    "Exchange",
    "Failure",
    "Origin",
    "Phase",
    "ProtocolError",
    "Resolver",
    "parse_answer",
]

#: The longest answer head read; a longer one is not DataCue's.
MAX_HEAD_BYTES: Final = 64 * 1024
#: The most bytes read from one socket per readiness (TLS records are at most 16 KiB).
RECEIVE_BYTES: Final = 65536
#: Seconds a name lookup is kept: connections are kept alive, so lookups are rare anyway.
RESOLVED_SECONDS: Final = 60.0


class Origin(NamedTuple):
    """Where requests go: ``("https", "events.datacue.co", 443)``."""

    scheme: str
    host: str
    port: int


class Answer(NamedTuple):
    """An HTTP answer, whole. ``headers`` has lower-case names (repeated ones joined with ``, ``)."""

    status: int
    headers: dict[str, str]
    body: bytes
    keep_alive: bool


class Failure(NamedTuple):
    """A request that got no answer: why, and whether DataCue could not be reached at all."""

    message: str
    unreachable: bool = False


class ProtocolError(Exception):
    """Bytes that are not an HTTP/1.x answer."""


def parse_answer(buffer: bytes | bytearray, closed: bool) -> tuple[Answer, int] | None:
    """The answer at the start of ``buffer`` and how many bytes it took; ``None`` while it is not whole.

    ``closed``: the server has closed the connection (an answer without a length ends there).
    Informational answers (1xx) are skipped. Raises :class:`ProtocolError`.

    Framed by hand, and only this far (status line, headers, ``Content-Length``, chunked, or up
    to the connection's end): ``http.client`` reads only from a blocking socket, one request per
    thread, and 16 threads with it spent 62-68 us of CPU per request where this loop spends
    12.6 (docs/delivery.md, "Threads or an event loop"); h11, which frames HTTP/1.1 for any I/O,
    would be a runtime dependency for what DataCue's short answers need of it.
    """
    start = 0
    while True:
        end = buffer.find(b"\r\n\r\n", start)
        if end < 0:
            if len(buffer) - start > MAX_HEAD_BYTES:
                raise ProtocolError("the answer's head is too long")
            return None
        lines = bytes(buffer[start:end]).decode("latin-1").split("\r\n")
        version, _, rest = lines[0].partition(" ")
        code = rest[:3]
        if not version.startswith("HTTP/1.") or not code.isdigit():
            raise ProtocolError(f"not an HTTP/1.x answer: {lines[0][:60]!r}")
        status = int(code)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"a malformed header line: {line[:60]!r}")
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        body_start = end + 4
        if 100 <= status < 200:  # "100 Continue" and the like: the answer itself follows
            start = body_start
            continue
        tokens = headers.get("connection", "").lower()
        keep_alive = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        if status in (204, 304):
            return Answer(status, headers, b"", keep_alive), body_start
        if "chunked" in headers.get("transfer-encoding", "").lower():
            return _chunked(buffer, body_start, status, headers, keep_alive)
        length_text = headers.get("content-length")
        if length_text is not None:
            try:
                length = int(length_text.split(",")[0])
            except ValueError:
                raise ProtocolError(f"a malformed Content-Length: {length_text[:40]!r}") from None
            if length < 0:
                raise ProtocolError(f"a negative Content-Length: {length}")
            if len(buffer) < body_start + length:
                return None
            body = bytes(buffer[body_start : body_start + length])
            return Answer(status, headers, body, keep_alive), body_start + length
        if not closed:  # no length: the body ends where the connection does
            return None
        return Answer(status, headers, bytes(buffer[body_start:]), False), len(buffer)


def _chunked(
    buffer: bytes | bytearray, position: int, status: int, headers: dict[str, str], keep_alive: bool
) -> tuple[Answer, int] | None:
    pieces: list[bytes] = []
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size_text = bytes(buffer[position:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"a malformed chunk size: {size_text[:20]!r}") from None
        position = line_end + 2
        if size == 0:
            while True:  # trailers, up to an empty line
                line_end = buffer.find(b"\r\n", position)
                if line_end < 0:
                    return None
                empty = line_end == position
                position = line_end + 2
                if empty:
                    return Answer(status, headers, b"".join(pieces), keep_alive), position
        if len(buffer) < position + size + 2:
            return None
        pieces.append(bytes(buffer[position : position + size]))
        position += size + 2


#: An address to connect to, as ``getaddrinfo`` gives it: its family, and the address itself.
_Address = tuple[socket.AddressFamily, Any]


class Resolver:
    """Name lookups, kept :data:`RESOLVED_SECONDS`. A lookup blocks (it lets go of the GIL): it
    happens only when a new connection is opened, and a shop's DataCue names resolve at once."""

    def __init__(self) -> None:
        self._known: dict[tuple[str, int], tuple[float, list[_Address]]] = {}

    def addresses(self, host: str, port: int) -> list[_Address]:
        now = time.monotonic()
        known = self._known.get((host, port))
        if known is not None and known[0] > now:
            return known[1]
        found: list[_Address] = [
            (family, address)
            for family, _, _, _, address in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        ]
        if len(self._known) > 64:
            self._known.clear()
        self._known[(host, port)] = (now + RESOLVED_SECONDS, found)
        return found


class Connection:
    """A TCP (or TLS) connection to one origin, non-blocking, kept alive between requests."""

    def __init__(self, origin: Origin, sock: socket.socket) -> None:
        self.origin = origin
        self.sock = sock
        self.idle_since = 0.0

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def closed_meanwhile(self) -> bool:
        """Whether the server closed this idle connection since it was last watched (one ``poll()``;
        not ``select()``, which fails past descriptor 1023; Windows has no ``poll()``, nor that limit)."""
        if hasattr(select, "poll"):
            poller = select.poll()
            poller.register(self.sock, select.POLLIN)
            readable = bool(poller.poll(0))
        else:  # pragma: no cover - Windows
            readable = bool(select.select([self.sock], [], [], 0)[0])
        return readable and self.closed_while_idle()

    def closed_while_idle(self) -> bool:
        """Whether the server closed this idle connection (or sent what no request asked for).

        Called when it turns readable while idle. A TLS 1.3 session ticket makes it readable
        too, and is no reason to let it go.
        """
        try:
            self.sock.recv(RECEIVE_BYTES)  # an end (b""), or bytes no request asked for: unusable
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError, InterruptedError):
            return False
        except OSError:
            pass
        return True


class Phase(enum.Enum):
    CONNECTING = "connecting"
    HANDSHAKE = "handshake"
    SENDING = "sending"
    #: Sent, no byte of the answer yet.
    WAITING = "waiting"
    #: The answer has begun.
    READING = "reading"
    DONE = "done"


_NOT_YET: Final = (BlockingIOError, InterruptedError)


class Exchange:
    """One request (``request``: head and body, as bytes) and its answer, on ``connection`` or a new one.

    The loop registers :meth:`fileno` for :attr:`events`, calls :meth:`ready` when the socket
    is ready and :meth:`expire` once :attr:`deadline` (monotonic seconds) has come. When it
    is over, :attr:`phase` is ``DONE`` and :attr:`result` holds the :class:`Answer` or the
    :class:`Failure`; :attr:`kept` is the connection to keep alive, if any.

    Time limits: connecting (and the TLS handshake) within ``connect_timeout``; then the
    request must be taken in and the first byte of the answer come within ``read_timeout``.
    Without a first byte by then the exchange is :attr:`late`, and is waited for until
    ``until``, no longer: DataCue may be processing it, and sending it again would count it
    twice (docs/delivery.md, "Late answers"). Once the answer has begun, each read must come
    within ``read_timeout`` of the last, and never after ``until``.
    """

    def __init__(
        self,
        origin: Origin,
        method: str,
        url: str,
        request: bytes,
        *,
        connect_timeout: float,
        read_timeout: float,
        until: float,
        tls: ssl.SSLContext | None,
    ) -> None:
        self.origin = origin
        self.method = method
        self.url = url
        self.request = memoryview(request)
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.until = until
        self.tls = tls
        self.phase = Phase.CONNECTING
        self.events = selectors.EVENT_WRITE
        self.deadline = 0.0
        self.started_at = 0.0
        #: When the request was whole on the wire.
        self.sent_at = 0.0
        self.late = False
        self.result: Answer | Failure | None = None
        self.kept: Connection | None = None
        self.connection: Connection | None = None
        self._addresses: list[_Address] = []
        self._sent = 0
        self._received = bytearray()

    # -- starting ----------------------------------------------------------------------------

    def start(self, now: float, connection: Connection | None, resolver: Resolver) -> None:
        """Begin: on a kept-alive ``connection``, else by connecting."""
        self.started_at = now
        if connection is not None:
            self.connection = connection
            self._begin_sending(now)
            self._send(now)
            return
        self.deadline = now + self.connect_timeout
        try:
            self._addresses = list(resolver.addresses(self.origin.host, self.origin.port))
        except OSError as error:  # an unknown name, or no resolver at all
            self._fail(error, unreachable=True)
            return
        self._connect_next(now, None)

    def _connect_next(self, now: float, error: BaseException | None) -> None:
        """Connect to the next address found for the origin (the first, or after ``error``)."""
        if self.connection is not None:
            self.connection.close()
            self.connection = None
        if not self._addresses:
            self._fail(error or ConnectionError("no address"), unreachable=True)
            return
        family, address = self._addresses.pop(0)
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setblocking(False)
        self.connection = Connection(self.origin, sock)
        code = sock.connect_ex(address)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._connect_next(now, OSError(code, os.strerror(code)))
            return
        self.phase, self.events = Phase.CONNECTING, selectors.EVENT_WRITE

    def fileno(self) -> int:
        assert self.connection is not None
        return self.connection.fileno()

    # -- moving on ---------------------------------------------------------------------------

    def ready(self, now: float) -> None:
        """The socket is ready for :attr:`events`: move on as far as it goes."""
        if self.phase is Phase.CONNECTING:
            self._connected(now)
        elif self.phase is Phase.HANDSHAKE:
            self._handshake(now)
        elif self.phase is Phase.SENDING:
            self._send(now)
        elif self.phase in (Phase.WAITING, Phase.READING):
            self._receive(now)

    def expire(self, now: float) -> bool:
        """The deadline has come. True when the exchange just became :attr:`late` (and goes on)."""
        if self.phase in (Phase.CONNECTING, Phase.HANDSHAKE):
            self._fail(TimeoutError("timed out"), unreachable=True)
        elif self.phase is Phase.SENDING:
            # DataCue did not even take the request in: it cannot have processed it.
            self._finish(self._no_answer(f"{self.read_timeout:g}s"))
        elif self.phase is Phase.WAITING and not self.late and now < self.until:
            self.late = True
            self.deadline = self.until
            return True
        elif self.phase in (Phase.WAITING, Phase.READING):
            self._finish(self._no_answer(f"{now - (self.sent_at or self.started_at):.3g}s"))
        return False

    def abandon(self, now: float) -> None:
        """Stop here (the worker is stopping, or a flush's time is up): the connection is closed."""
        if self.phase is not Phase.DONE:
            self._finish(self._no_answer(f"{now - (self.sent_at or self.started_at):.3g}s"))

    def _no_answer(self, waited: str) -> Failure:
        """The failure of a request DataCue did not answer within ``waited`` (``"5s"``)."""
        return Failure(f"{self.method} {self.url}: DataCue did not answer in time ({waited})")

    def _connected(self, now: float) -> None:
        assert self.connection is not None
        sock = self.connection.sock
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._connect_next(now, OSError(code, os.strerror(code)))
            return
        # The head and the body leave in one send; this only matters for a body too large
        # for one (the rest waits for no delayed ACK).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is None:
            self._begin_sending(now)
            self._send(now)
            return
        try:
            self.connection.sock = self.tls.wrap_socket(
                sock, server_hostname=self.origin.host, do_handshake_on_connect=False
            )
        except (OSError, ValueError) as error:
            self._fail(error, unreachable=True)
            return
        self.phase = Phase.HANDSHAKE
        self._handshake(now)

    def _handshake(self, now: float) -> None:
        assert self.connection is not None
        sock = self.connection.sock
        assert isinstance(sock, ssl.SSLSocket)
        try:
            sock.do_handshake()
        except ssl.SSLWantReadError:
            self.events = selectors.EVENT_READ
            return
        except ssl.SSLWantWriteError:
            self.events = selectors.EVENT_WRITE
            return
        except OSError as error:  # a certificate refused, a reset
            self._fail(error, unreachable=True)
            return
        self._begin_sending(now)
        self._send(now)

    def _begin_sending(self, now: float) -> None:
        self.phase, self.events = Phase.SENDING, selectors.EVENT_WRITE
        self.deadline = now + self.read_timeout

    def _send(self, now: float) -> None:
        assert self.connection is not None
        sock = self.connection.sock
        try:
            while self._sent < len(self.request):
                self._sent += sock.send(self.request[self._sent :])
        except (*_NOT_YET, ssl.SSLWantWriteError):
            self.events = selectors.EVENT_WRITE
            return
        except ssl.SSLWantReadError:
            self.events = selectors.EVENT_READ
            return
        except OSError as error:  # reset, or closed by the server while idle
            self._fail(error)
            return
        self.sent_at = now
        self.phase, self.events = Phase.WAITING, selectors.EVENT_READ
        self.deadline = min(now + self.read_timeout, self.until) if not self.late else self.until

    def _receive(self, now: float) -> None:
        assert self.connection is not None
        sock = self.connection.sock
        closed = False
        try:
            while True:
                data = sock.recv(RECEIVE_BYTES)
                if not data:
                    closed = True
                    break
                self._received += data
                # A TLS socket may hold decrypted bytes the selector will not report.
                if not isinstance(sock, ssl.SSLSocket) or not sock.pending():
                    break
        except (*_NOT_YET, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            pass  # nothing (more) for now: a TLS 1.3 session ticket, say
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            closed = True
        except OSError as error:  # reset
            self._fail(error)
            return
        if not self._received:
            if closed:
                self._fail(ConnectionError("the connection was closed before any answer"))
            return
        if self.phase is Phase.WAITING:
            self.phase = Phase.READING
        try:
            parsed = parse_answer(self._received, closed)
        except ProtocolError as error:
            self._fail(error)
            return
        if parsed is None:
            if closed:
                self._fail(ConnectionError("the answer was cut off"))
                return
            self.deadline = min(now + self.read_timeout, self.until)
            return
        answer, used = parsed
        keep = answer.keep_alive and not closed and used == len(self._received)
        self._finish(answer, keep=keep)

    # -- ending ------------------------------------------------------------------------------

    def _fail(self, error: BaseException, *, unreachable: bool = False) -> None:
        self._finish(Failure(unreachable_message(self.method, self.url, error), unreachable))

    def _finish(self, result: Answer | Failure, *, keep: bool = False) -> None:
        self.result = result
        self.phase = Phase.DONE
        connection, self.connection = self.connection, None
        if connection is not None:
            if keep:
                self.kept = connection
            else:
                connection.close()
