"""Sends outbox rows over kept-alive ``http.client`` connections, and reads DataCue's answer as a verdict.

Why ``http.client`` and not requests, how a late answer is told from a session ticket,
and when the sender falls back to the transport (a proxy) are in docs/delivery.md.
"""

from __future__ import annotations

import enum
import http.client
import os
import select
import socket
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import BinaryIO, Final
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy

from ..encoding import check_body_size
from ..errors import APIError, DataCueError, NetworkError, PayloadTooLargeError, RateLimitError
from ..transport import Transport, error_for_reply, parse_retry_after
from .contract import MAX_RESPONSE_CHARS, OutboxRow

__all__ = ["DELIVERED", "AnswerBegun", "Outcome", "RowSender", "Unanswered", "Verdict"]

#: Statuses of the 4xx family that are worth another try.
RETRYABLE_CLIENT_STATUSES: Final = frozenset({408, 429})


class Verdict(enum.Enum):
    """What is to become of a row after one send."""

    #: DataCue accepted it (2xx, or 3xx).
    DELIVERED = "delivered"
    #: It failed in a way worth another try (5xx, 408, 429, a timeout, a network error).
    RETRY = "retry"
    #: DataCue refused it for good (another 4xx): a dead letter.
    REFUSED = "refused"
    #: Not answered within the read timeout; its answer is listened for (see late_answers).
    AWAITED = "awaited"


@dataclass(frozen=True)
class Outcome:
    """What became of one send, and what DataCue said."""

    verdict: Verdict
    status: int | None = None
    error: str = ""
    response_body: str | None = None
    retry_after: float | None = None
    #: The failure says DataCue cannot be reached at all: stop the batch at once.
    unreachable: bool = False


DELIVERED: Final = Outcome(Verdict.DELIVERED)


@dataclass
class Unanswered:
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


class AnswerBegun:
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


class RowSender:
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

    def send(self, row: OutboxRow, time_left: float | None = None) -> Outcome | Unanswered:
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
            return Outcome(Verdict.REFUSED, None, str(error))
        except DataCueError as error:  # no API secret: a setup problem, not the row's fault
            return Outcome(Verdict.RETRY, None, str(error))
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
                return Outcome(Verdict.RETRY, None, _network_message(method, url, error), unreachable=True)
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
            return Outcome(Verdict.RETRY, None, message)
        except (OSError, http.client.HTTPException) as error:  # reset, refused mid-write
            connection.close()
            return Outcome(Verdict.RETRY, None, _network_message(method, url, error))
        outcome = self.receive(connection, (scheme, host, port), method, url, read_timeout, read_timeout)
        if outcome is None:
            return Unanswered(connection, (scheme, host, port), method, url, read_timeout)
        return outcome

    def receive(
        self,
        connection: http.client.HTTPConnection,
        origin: tuple[str, str, int],
        method: str,
        url: str,
        read_timeout: float,
        first_byte_wait: float,
    ) -> Outcome | None:
        """Read the answer to the request just sent; None when none began within ``first_byte_wait``.

        Waiting for the first byte apart from getresponse() leaves the connection as it was
        when nothing came: a late answer can still be read from it (see :class:`LateAnswers`).
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
            connection.sock = AnswerBegun(sock, reader)
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
            return Outcome(Verdict.RETRY, None, message)
        except (OSError, http.client.HTTPException) as error:  # dropped, reset, cut off
            connection.close()
            reader.close()
            return Outcome(Verdict.RETRY, None, _network_message(method, url, error))
        if response.will_close:
            connection.close()
        else:
            self._idle.setdefault(origin, []).append(connection)
        if response.status < 400:
            return DELIVERED
        answer_headers = CaseInsensitiveDict(response.getheaders())
        return _outcome_for_reply(method, url, response.status, body, answer_headers)

    def _send_through_transport(self, row: OutboxRow, method: str) -> Outcome:
        try:
            if row.kind == "event":
                self.transport.send_event(row.body, retry=False)
            else:
                self.transport.send(method, row.path, row.body, retry=False)
        except RateLimitError as error:
            return Outcome(Verdict.RETRY, error.status, str(error), error.body, error.retry_after)
        except APIError as error:
            verdict = Verdict.RETRY if _retryable(error.status) else Verdict.REFUSED
            return Outcome(verdict, error.status, str(error), _clip(error.body))
        except NetworkError as error:
            return Outcome(Verdict.RETRY, None, str(error))
        except DataCueError as error:
            return Outcome(Verdict.RETRY, None, str(error))
        return DELIVERED


def _retryable(status: int | None) -> bool:
    return status is None or status >= 500 or status in RETRYABLE_CLIENT_STATUSES


def _clip(text: str | None) -> str | None:
    return None if text is None else text[:MAX_RESPONSE_CHARS]


def _outcome_for_reply(
    method: str, url: str, status: int, body: bytes, headers: Mapping[str, str]
) -> Outcome:
    error = error_for_reply(method, url, status, body, headers)
    if error is None:
        return DELIVERED
    text = _clip(body.decode("utf-8", errors="replace"))
    if _retryable(status):
        retry_after = error.retry_after if isinstance(error, RateLimitError) else None
        if retry_after is None:  # a 503 may say when to come back too
            retry_after = parse_retry_after(headers.get("Retry-After"))
        return Outcome(Verdict.RETRY, status, str(error), text, retry_after)
    return Outcome(Verdict.REFUSED, status, str(error), text)


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
