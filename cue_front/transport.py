"""One HTTP session to DataCue: base URLs, signed authentication, timeouts, retries, status -> typed error.

It sends prepared requests (a method, a path and the exact body bytes, already encoded
by :mod:`cue_front.encoding`); docs/architecture.md tells how retries and errors work.
The API secret lives in one private attribute; it never appears in an error, a log line or a ``repr``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import MaxRetryError, ResponseError
from urllib3.response import BaseHTTPResponse
from urllib3.util.retry import Retry

from . import forks, signing
from ._version import __version__
from .encoding import check_body_size
from .errors import (
    APIError,
    AuthenticationError,
    BadRequestError,
    ConfigurationError,
    NetworkError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    ServerError,
)
from .settings import DEFAULT_API_URL, DEFAULT_EVENTS_URL, DEFAULT_RETRIES, DEFAULT_TIMEOUT

__all__ = [
    "RETRY_STATUSES",
    "Reply",
    "Transport",
    "error_for_reply",
    "network_reason",
    "parse_retry_after",
    "unreachable_message",
    "user_agent",
]

logger = logging.getLogger(__name__)

#: Statuses worth another attempt: rate limited, or the server (or a proxy) failed.
RETRY_STATUSES: Final = frozenset({429, 500, 502, 503, 504})
RETRY_METHODS: Final = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})


def user_agent() -> str:
    """``cue-front/<version>``: what every request says it is."""
    return f"cue-front/{__version__}"


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - time.time())


@dataclass(frozen=True)
class Reply:
    """DataCue's answer to one request that succeeded (2xx, including 207 multi-status)."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body parsed as JSON; ``None`` for an empty body (201/204)."""
        return json.loads(self.body) if self.body.strip() else None


def _server_message(body: bytes) -> str:
    """The human part of an error reply: its ``error``/``message``/``detail`` member, else its text."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        for key in ("error", "message", "detail", "errors"):
            if parsed.get(key):
                found = parsed[key]
                return found if isinstance(found, str) else json.dumps(found)
    return text[:500]


def error_for_reply(
    method: str, url: str, status: int, body: bytes, headers: Mapping[str, str]
) -> APIError | None:
    """The typed error for a reply, or ``None`` when the status is a success.

    Public so that a caller sending with a bare urllib3 pool maps statuses the same way.
    """
    if status < 400:
        return None
    where = f"{method} {url}"
    text = body.decode("utf-8", errors="replace")
    details: dict[str, Any] = {
        "status": status,
        "body": text,
        "request_id": headers.get("X-Request-Id") or headers.get("x-request-id"),
    }
    message = _server_message(body)
    if status == 400:
        return BadRequestError(f"DataCue refused {where}: {message or 'bad request'}", **details)
    if status in (401, 403):
        return AuthenticationError(
            f"DataCue did not accept the credentials for {where} ({status}): check the API key "
            "and secret" + (f"; server said: {message}" if message else ""),
            **details,
        )
    if status == 404:
        return NotFoundError(f"{where}: not found" + (f" ({message})" if message else ""), **details)
    if status == 413:
        return PayloadTooLargeError(f"{where}: payload too large (413)", **details)
    if status == 429:
        retry_after = parse_retry_after(headers.get("Retry-After") or headers.get("retry-after"))
        hint = f"; retry after {retry_after:g}s" if retry_after is not None else ""
        return RateLimitError(f"{where}: rate limited (429){hint}", retry_after=retry_after, **details)
    if status >= 500:
        return ServerError(
            f"{where}: DataCue failed with {status}" + (f": {message}" if message else ""),
            **details,
        )
    return APIError(f"{where}: unexpected status {status}" + (f": {message}" if message else ""), **details)


class _DataCueRetry(Retry):
    """urllib3's Retry with two changes, each a reason urllib3 alone cannot express.

    * 413 is never retried, even with a ``Retry-After`` (urllib3 retries 413, 429 and
      503 whenever ``Retry-After`` is present): resending the same too-large bytes
      cannot succeed.
    * A ``Retry-After`` longer than ``max_retry_after`` ends the retries at once, so
      the caller gets a :class:`RateLimitError` carrying the hint instead of a call
      that silently sleeps for an hour (urllib3 would sleep as long as told).
    """

    RETRY_AFTER_STATUS_CODES = frozenset({429, 503})

    def __init__(self, *args: Any, max_retry_after: float = 60.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_retry_after = max_retry_after

    def new(self, **kw: Any) -> _DataCueRetry:
        kw.setdefault("max_retry_after", self.max_retry_after)
        renewed = super().new(**kw)
        assert isinstance(renewed, _DataCueRetry)
        return renewed

    def increment(
        self,
        method: str | None = None,
        url: str | None = None,
        response: BaseHTTPResponse | None = None,
        error: Exception | None = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> _DataCueRetry:
        if response is not None and self.respect_retry_after_header:
            wait = parse_retry_after(response.headers.get("Retry-After"))
            if wait is not None and wait > self.max_retry_after:
                # With raise_on_status=False urllib3 hands back this last response,
                # which then maps to RateLimitError(retry_after=wait).
                raise MaxRetryError(_pool, url or "", ResponseError(f"Retry-After {wait:g}s is too long"))
        renewed = super().increment(method, url, response, error, _pool, _stacktrace)
        assert isinstance(renewed, _DataCueRetry)
        return renewed


class Transport:
    """Owns the HTTP session to DataCue; sends prepared, signed requests; maps replies to errors.

    ``timeout`` is ``(connect, read)`` seconds. ``retries`` is how many times a failed
    attempt (429, 5xx, connection error) is repeated; ``backoff_factor`` and
    ``backoff_jitter`` shape the exponential wait between attempts (urllib3's meaning),
    capped at ``backoff_max``; ``max_retry_after`` is the longest ``Retry-After`` that is
    waited for. ``pool_size`` bounds the kept-alive connections per host: make it at least
    the number of threads that share the transport.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str | None = None,
        *,
        api_url: str = DEFAULT_API_URL,
        events_url: str = DEFAULT_EVENTS_URL,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff_factor: float = 0.5,
        backoff_jitter: float = 0.25,
        backoff_max: float = 30.0,
        max_retry_after: float = 60.0,
        pool_size: int = 10,
    ) -> None:
        if not api_key:
            raise ConfigurationError("DataCue needs an API key (DATACUE_API_KEY)")
        self.api_key = api_key
        self.__secret = api_secret
        self.api_url = api_url.rstrip("/")
        self.events_url = events_url
        self.timeout = (float(timeout[0]), float(timeout[1]))
        self.retries = retries
        self.user_agent = user_agent()
        self.retry_policy = _DataCueRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            redirect=0,
            allowed_methods=RETRY_METHODS,
            status_forcelist=RETRY_STATUSES,
            backoff_factor=backoff_factor,
            backoff_jitter=backoff_jitter,
            backoff_max=backoff_max,
            respect_retry_after_header=True,
            raise_on_status=False,
            raise_on_redirect=False,
            max_retry_after=max_retry_after,
        )
        self._generation = forks.generation
        self.session = requests.Session()
        # Retries are per adapter in requests, so a second adapter (same session, its
        # own pool) serves the single-attempt sends of the delivery worker.
        self._retrying = HTTPAdapter(
            max_retries=self.retry_policy, pool_connections=2, pool_maxsize=pool_size
        )
        self._single_attempt = HTTPAdapter(
            max_retries=Retry(0, read=False, redirect=0, raise_on_status=False),
            pool_connections=2,
            pool_maxsize=pool_size,
        )
        for prefix in ("https://", "http://"):
            self.session.mount(prefix, self._retrying)
        self.session.headers.update({"User-Agent": self.user_agent, "Accept": "application/json"})

    def __repr__(self) -> str:
        return f"Transport(api_url={self.api_url!r}, events_url={self.events_url!r})"

    # -- building blocks, public so a worker can send with its own HTTP pool --------------

    def url_for(self, path: str) -> str:
        """The absolute REST URL of ``path`` (``/products/p1``)."""
        return f"{self.api_url}/{path.lstrip('/')}"

    def rest_headers(self, body: bytes) -> dict[str, str]:
        """Headers of a REST call whose body is ``body``: signed Basic auth, and JSON type if any."""
        if not self.__secret:
            raise ConfigurationError("DataCue's REST API needs the API secret (DATACUE_API_SECRET)")
        headers = {
            "Authorization": signing.rest_authorization(self.api_key, self.__secret, body),
            "User-Agent": self.user_agent,
        }
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    def events_headers(self) -> dict[str, str]:
        """Headers of an events API call: the API key only, JSON body."""
        return {
            "Authorization": signing.events_authorization(self.api_key),
            "Content-Type": "application/json",
            "User-Agent": self.user_agent,
        }

    # -- sending ---------------------------------------------------------------------------

    def send(self, method: str, path: str, body: bytes = b"", *, retry: bool = True) -> Reply:
        """Send one signed REST request; return the reply or raise its typed error.

        ``body`` is the exact bytes to sign and send (``b""`` for GET and body-less
        DELETE). ``retry=False`` makes a single attempt.
        """
        check_body_size(body)
        return self._send(method, self.url_for(path), body, self.rest_headers(body), retry)

    def send_event(self, body: bytes, *, retry: bool = True) -> Reply:
        """POST one encoded event envelope to the events API (key-only authentication)."""
        check_body_size(body)
        return self._send("POST", self.events_url, body, self.events_headers(), retry)

    def _send(self, method: str, url: str, body: bytes, headers: dict[str, str], retry: bool) -> Reply:
        if self._generation != forks.generation:
            # A forked child (a gunicorn worker) must not share its parent's sockets.
            self._generation = forks.generation
            for adapter in (self._retrying, self._single_attempt):
                adapter.poolmanager.clear()
        request = requests.Request(method, url, data=body or None, headers=headers)
        prepared = self.session.prepare_request(request)
        adapter = self._retrying if retry else self._single_attempt
        # The adapter is called directly (to choose the retry policy per call), so the
        # environment's proxy and CA settings are merged here as Session.request does.
        settings = self.session.merge_environment_settings(url, {}, False, None, None)
        started = time.perf_counter()
        try:
            response = adapter.send(
                prepared,
                timeout=self.timeout,
                verify=settings["verify"] if settings["verify"] is not None else True,
                cert=settings["cert"],
                proxies=settings["proxies"],
            )
        except requests.RequestException as exc:
            logger.warning("%s %s: %s", method, url, type(exc).__name__)
            raise NetworkError(unreachable_message(method, url, exc)) from exc
        try:
            content = response.content
        except requests.RequestException as exc:
            raise NetworkError(f"{method} {url}: the reply was cut off ({network_reason(exc)})") from exc
        finally:
            response.close()
        logger.debug("%s %s -> %d in %.3fs", method, url, response.status_code, time.perf_counter() - started)
        error = error_for_reply(method, url, response.status_code, content, response.headers)
        if error is not None:
            raise error
        return Reply(response.status_code, content, dict(response.headers))

    # -- lifetime --------------------------------------------------------------------------

    def close(self) -> None:
        """Close the pooled connections (both adapters)."""
        self.session.close()
        self._single_attempt.close()

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def network_reason(exc: BaseException) -> str:
    """A short reason for a network failure, from the innermost cause (refused, reset, name
    unknown; no headers, no secret): ``ConnectionRefusedError: [Errno 111] Connection refused``."""
    inner: BaseException = exc
    for _ in range(8):
        nested = getattr(inner, "reason", None) or inner.__cause__ or inner.__context__
        if not isinstance(nested, BaseException) or nested is inner:
            break
        inner = nested
    return f"{type(inner).__name__}: {inner}" if str(inner) else type(inner).__name__


def unreachable_message(method: str, url: str, exc: BaseException) -> str:
    """``POST https://...: DataCue could not be reached (<the innermost reason>)``."""
    return f"{method} {url}: DataCue could not be reached ({network_reason(exc)})"
