"""The one place cue-front connects to Redis (or Valkey): clients with timeouts fit for a web request,
the startup check that Redis will not evict what cue-front keeps there, and the pause after a failure.

redis-py is the ``redis`` extra (``pip install cue-front[redis]``), imported only when a Redis URL
is configured. What is shared through Redis so far is listed in docs/redis.md.
"""

from __future__ import annotations

import functools
import importlib
import logging
import time
from types import ModuleType
from typing import TYPE_CHECKING, Any, Final, overload
from urllib.parse import unquote, urlsplit

from .errors import ConfigurationError

if TYPE_CHECKING:
    from redis import Redis

__all__ = [
    "DEFAULT_TIMEOUT",
    "REDIS_SCHEMES",
    "RetryPause",
    "check_eviction_policy",
    "connect",
    "decode",
    "is_redis_url",
    "namespace",
    "redacted",
    "redis_errors",
    "scheme",
]

logger = logging.getLogger(__name__)

#: URL schemes of a Redis: TCP, TLS, and a Unix socket (``unix:///run/redis.sock?db=0``).
REDIS_SCHEMES: Final = ("redis", "rediss", "unix")
#: Seconds to connect and to wait for an answer: a page must not wait on a Redis that is down.
DEFAULT_TIMEOUT: Final = 0.25
#: The eviction policy that never evicts; every ``volatile-*`` policy evicts only keys with an
#: expiry, and the outbox's keys have none. Any other (``allkeys-*``) may evict them.
_NEVER_EVICTS = "noeviction"
_EVICTS_ONLY_EXPIRING = "volatile-"


def scheme(url: object) -> str:
    """The scheme of a URL setting (``redis``, ``sqlite``...); ``""`` for none."""
    return urlsplit(url).scheme if isinstance(url, str) else ""


def is_redis_url(url: object) -> bool:
    """Whether ``url`` names a Redis: ``redis://``, ``rediss://`` or ``unix://``."""
    return scheme(url) in REDIS_SCHEMES


def redacted(url: str) -> str:
    """``url`` with its password masked (``***``), for logs and errors: the password of its user
    part (``redis://user:pw@host``) and any ``password`` query parameter, in any case
    (``unix:///run/redis.sock?db=0&password=pw``), as redis-py reads both. A URL that cannot be
    parsed is shown by its scheme alone."""
    try:
        parts = urlsplit(url)
        has_password = parts.password is not None
    except ValueError:
        return url.split(":", 1)[0] + "://***" if ":" in url else "***"
    netloc = parts.netloc
    if has_password:
        user_part, host = netloc.rsplit("@", 1)
        netloc = f"{user_part.split(':', 1)[0]}:***@{host}"
    pairs = parts.query.split("&") if parts.query else []
    query = "&".join(
        f"{pair.split('=', 1)[0]}=***" if unquote(pair.split("=", 1)[0]).lower() == "password" else pair
        for pair in pairs
    )
    text = f"{parts.scheme}://{netloc}{parts.path}" if "//" in url else f"{parts.scheme}:{parts.path}"
    return text + (f"?{query}" if query else "") + (f"#{parts.fragment}" if parts.fragment else "")


def namespace(api_key: str) -> str:
    """The prefix of every key one shop keeps in Redis (``datacue:<api key>:``), so that several
    shops, or a shop's staging and production, can share one Redis. The API key is public."""
    return f"datacue:{api_key}:"


def _redis_module(setting_name: str) -> ModuleType:
    try:
        return importlib.import_module("redis")
    except ImportError:
        raise ConfigurationError(
            f"{setting_name} is a Redis URL but redis-py is not installed: pip install cue-front[redis]"
        ) from None


@functools.cache
def redis_errors() -> tuple[type[Exception], ...]:
    """What a Redis client raises when Redis fails (down, slow, full, refusing): ``redis.RedisError``
    (redis-py is imported the first time only)."""
    errors: type[Exception] = _redis_module("DATACUE_OUTBOX_URL").RedisError
    return (errors,)


def connect(
    url: str,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    connect_timeout: float | None = None,
    retries: int = 0,
    setting_name: str = "DATACUE_OUTBOX_URL",
) -> Redis:
    """A client of the Redis at ``url`` (``redis://``, ``rediss://`` or ``unix://``: ``init_app``
    refuses any other scheme, naming the setting); no I/O yet.

    ``timeout`` bounds each command and ``connect_timeout`` (default: ``timeout``) each
    connection; a failed command is retried ``retries`` times, at once (redis-py's own default
    retries three times with backoff, seconds a web request cannot spend). The client is safe
    across threads and forks (redis-py's pool notices a fork and reconnects).
    """
    redis = _redis_module(setting_name)
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client: Redis = redis.Redis.from_url(
        url,
        socket_timeout=timeout,
        socket_connect_timeout=timeout if connect_timeout is None else connect_timeout,
        retry=Retry(NoBackoff(), retries),
    )
    return client


def check_eviction_policy(client: Redis, setting_name: str = "DATACUE_OUTBOX_URL") -> None:
    """Refuse a Redis whose ``maxmemory-policy`` could evict keys that have no expiry.

    Raises :class:`ConfigurationError` naming ``setting_name`` and the fix. A Redis that does not
    let us read its configuration (a managed Redis with ``CONFIG`` disabled), or that cannot be
    reached now, is logged and accepted: a shop must be able to start while Redis is down.
    """
    redis = _redis_module(setting_name)
    try:
        reply: dict[Any, Any] = client.config_get("maxmemory-policy")
    except redis.AuthenticationError as error:
        raise ConfigurationError(f"{setting_name}: Redis refused the credentials: {error}") from None
    except redis.ResponseError as error:  # CONFIG renamed, disabled, or not allowed to this user
        logger.warning(
            "datacue: cannot read %s's maxmemory-policy (%s); make sure it is noeviction or volatile-*,"
            " or Redis may evict undelivered events",
            setting_name,
            error,
        )
        return
    except redis.RedisError as error:
        logger.warning(
            "datacue: %s is unreachable now (%r); its eviction policy is not checked", setting_name, error
        )
        return
    policy = decode(reply.get("maxmemory-policy", reply.get(b"maxmemory-policy")))
    if policy is None or policy == _NEVER_EVICTS or policy.startswith(_EVICTS_ONLY_EXPIRING):
        return
    raise ConfigurationError(
        f"{setting_name} points to a Redis whose maxmemory-policy is {policy}: it may evict keys that have"
        " no expiry, and cue-front's outbox keeps its events in such keys. Run"
        " `CONFIG SET maxmemory-policy noeviction` on that Redis (and set it in redis.conf or your"
        " provider's parameters), or use a Redis of its own for cue-front"
    )


@overload
def decode(value: bytes | str) -> str: ...
@overload
def decode(value: object) -> str | None: ...
def decode(value: object) -> str | None:
    """A Redis reply as text (UTF-8; bytes that are not are replaced); ``None`` (no such key or
    field) stays ``None``."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return None if value is None else str(value)


class RetryPause:
    """After Redis fails, it is left alone for ``seconds``: callers use their fallback meanwhile, so a
    Redis that is down or slow costs one timeout every few seconds, not one per call."""

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._until = 0.0

    def active(self) -> bool:
        """Whether Redis failed less than ``seconds`` ago (use the fallback)."""
        return time.monotonic() < self._until

    def start(self) -> None:
        """Redis just failed: pause."""
        self._until = time.monotonic() + self.seconds
