"""What an outbox row becomes on the wire (its request, as bytes), and what DataCue's answer means for it.

The requests themselves go out on the delivery loop's connections (:mod:`.exchange`);
when the environment routes DataCue through a proxy, a row is sent through the
transport instead. See docs/delivery.md ("The sender").
"""

from __future__ import annotations

import enum
import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, NamedTuple
from urllib.parse import urlsplit

from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, select_proxy

from ..encoding import check_body_size
from ..errors import APIError, DataCueError, NetworkError, PayloadTooLargeError, RateLimitError
from ..transport import Transport, error_for_reply, parse_retry_after
from .contract import MAX_RESPONSE_CHARS, OutboxRow
from .exchange import Answer, Failure, Origin

__all__ = ["DELIVERED", "Outcome", "Request", "RowSender", "Verdict"]

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


@dataclass(frozen=True)
class Outcome:
    """What became of one send, and what DataCue said."""

    verdict: Verdict
    status: int | None = None
    error: str = ""
    response_body: str | None = None
    retry_after: float | None = None
    #: The failure says DataCue cannot be reached at all: pause at once.
    unreachable: bool = False


DELIVERED: Final = Outcome(Verdict.DELIVERED)


class Request(NamedTuple):
    """One row as it goes out: to ``origin`` (``None``: through the environment's proxy, with the
    transport), ``data`` being the request's head and body, ready for the socket."""

    origin: Origin | None
    method: str
    url: str
    data: bytes


class RowSender:
    """Turns outbox rows into requests for the delivery loop, and answers into outcomes.

    It knows the transport's URLs, signatures and timeouts; it sends nothing itself, except
    through the transport when a proxy is in the way (:meth:`send_through_transport`).
    Not shared across a fork: the child makes its own.
    """

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.connect_timeout, self.read_timeout = transport.timeout
        self.request_seconds = self.connect_timeout + self.read_timeout
        #: url -> (origin, request target, the head's fixed part for events), or None for a proxy.
        self._routes: dict[str, tuple[Origin, str, bytes] | None] = {}
        self._tls: ssl.SSLContext | None = None

    def request_for(self, row: OutboxRow) -> Request | Outcome:
        """The request that sends ``row``; an outcome instead when it cannot be sent at all."""
        transport = self.transport
        body = row.body
        if row.kind == "event":
            url = transport.events_url if not row.path else transport.events_url.rstrip("/") + row.path
            method = "POST"
        else:
            url = transport.url_for(row.path)
            method = row.method
        try:
            check_body_size(body)
            route = self._route(url)
            if route is None:
                return Request(None, method, url, b"")
            origin, target, events_head = route
            if row.kind == "event":
                head = events_head
            else:
                head = _head(method, target, origin, transport.rest_headers(body))
        except PayloadTooLargeError as error:
            return Outcome(Verdict.REFUSED, None, str(error))
        except DataCueError as error:  # no API secret: a setup problem, not the row's fault
            return Outcome(Verdict.RETRY, None, str(error))
        if body or method in ("POST", "PUT", "PATCH"):
            return Request(origin, method, url, b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body))
        return Request(origin, method, url, head + b"\r\n")

    def tls_for(self, origin: Origin) -> ssl.SSLContext | None:
        """The TLS context for ``origin`` (``None`` for plain http)."""
        return self._tls if origin.scheme == "https" else None

    def _route(self, url: str) -> tuple[Origin, str, bytes] | None:
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
            origin = Origin(scheme, parts.hostname or "", parts.port or (443 if scheme == "https" else 80))
            target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            events_head = _head("POST", target, origin, self.transport.events_headers())
            route = (origin, target, events_head)
        if len(self._routes) < 4096:  # REST paths vary; keep the table bounded
            self._routes[url] = route
        return route

    def outcome(self, method: str, url: str, result: Answer | Failure) -> Outcome:
        """What DataCue's answer (or its absence) means for the row."""
        if isinstance(result, Failure):
            return Outcome(Verdict.RETRY, None, result.message, unreachable=result.unreachable)
        if result.status < 400:
            return DELIVERED
        headers = CaseInsensitiveDict(result.headers)
        return _outcome_for_reply(method, url, result.status, result.body, headers)

    def send_through_transport(self, row: OutboxRow, method: str) -> Outcome:
        """Send ``row`` with the transport (through the environment's proxy); blocks."""
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


def _head(method: str, target: str, origin: Origin, headers: Mapping[str, str]) -> bytes:
    """A request's head up to (not including) its Content-Length and the empty line."""
    host = f"[{origin.host}]" if ":" in origin.host else origin.host
    if origin.port != (443 if origin.scheme == "https" else 80):
        host = f"{host}:{origin.port}"
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}", "Accept-Encoding: identity"]
    lines.extend(f"{name}: {value}" for name, value in headers.items())
    return ("\r\n".join(lines) + "\r\n").encode("latin-1")


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
