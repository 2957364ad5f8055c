"""One app's cue-front state (``app.extensions["datacue"]``), and ``get_state()`` that reaches it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app

from . import redis_store
from .client import Client
from .errors import ConfigurationError
from .outbox import DeliveryWorker, Outbox, OutboxBackend
from .outbox.journal import journal_folder
from .queued import QueuedClient
from .rate_limits import RateLimits
from .recommendation_cache import RecommendationCache
from .transport import Transport

if TYPE_CHECKING:
    from redis import Redis

    from .extension import DataCue

__all__ = ["DataCueState", "get_state"]

_Made = TypeVar("_Made")

#: Seconds between two log lines about events refused by a full outbox.
REFUSAL_REPORT_INTERVAL = 60.0


class DataCueState:
    """Everything cue-front knows about one app, read from its config once at ``init_app``.

    ``DATACUE_*`` keys are read when the extension is initialised and never again:
    set them before calling ``init_app``. What is costly to make (the REST client, the
    outbox and its delivery worker) is made on first use.
    """

    def __init__(self, extension: DataCue, app: Flask) -> None:
        config = app.config
        self.extension = extension
        #: The app itself: the sender of the signals the delivery worker sends.
        self.app = app
        #: The anonymous-id signers (identity.py), with the ``SECRET_KEY`` and fallbacks they
        #: were made for: made again only when the app's keys change.
        self.anonymous_id_signers: tuple[object, object, list[Any]] = (None, None, [])
        self.delivery_mode: str = config["DATACUE_DELIVERY"]
        #: Whether this app's processes deliver on a thread of their own, started on first use;
        #: else ``flask datacue worker`` delivers (``DATACUE_DELIVERY_THREAD``).
        self.delivery_thread = self.delivery_mode == "outbox" and bool(config["DATACUE_DELIVERY_THREAD"])
        self.shutdown_grace = float(config["DATACUE_SHUTDOWN_GRACE"])
        outbox_url = config["DATACUE_OUTBOX_URL"]
        #: The Redis every host shares (``DATACUE_OUTBOX_URL``), or ``None``: one client, no I/O yet.
        self.redis: Redis | None = (
            redis_store.connect(outbox_url) if redis_store.is_redis_url(outbox_url) else None
        )
        #: Whether, without that thread, a thread must still forward this host's journal: a
        #: Redis outbox, which another host's worker cannot read it into.
        self.forwards_journal = (
            self.delivery_mode == "outbox"
            and not self.delivery_thread
            and self.redis is not None
        )
        self.api_key: str = config["DATACUE_API_KEY"]
        self.strict: bool = bool(config["DATACUE_STRICT"])
        self.config_mode: str = config["DATACUE_CONFIG_MODE"]
        self.script_urls: tuple[str, ...] = tuple(config["DATACUE_SCRIPT_URLS"])
        self.url_prefix: str = config["DATACUE_URL_PREFIX"]
        self.proxy_enabled: bool = bool(config["DATACUE_PROXY_ENABLED"])
        self.proxy_max_bytes = int(config["DATACUE_PROXY_MAX_BYTES"])
        self.proxy_timeout = float(config["DATACUE_PROXY_TIMEOUT"])
        self.ssr: bool = bool(config["DATACUE_SSR"])
        self.ssr_timeout = float(config["DATACUE_SSR_TIMEOUT"])
        self.ssr_orders = bool(config["DATACUE_SSR_ORDERS"])
        # Shared by the hosts only with DATACUE_SSR, whose pages keep answers: without it the cache
        # (a widget's server_side=True) stays in the process, and a forget costs no Redis call.
        self.recommendation_cache = RecommendationCache(
            redis=self.redis if self.ssr else None, namespace=redis_store.namespace(config["DATACUE_API_KEY"])
        )
        self.anonymous_cookie: str = config["DATACUE_ANONYMOUS_COOKIE"]
        self.honour_gpc = bool(config["DATACUE_HONOUR_GPC"])
        self.shop_url: str | None = _shop_url(config)
        self.rate_limits = RateLimits(app, shared_redis=self.redis)
        # The app's Jinja globals, where flask-talisman (if installed) puts csp_nonce.
        self.jinja_globals = app.jinja_env.globals
        self._config = config
        self._client: Client | None = None
        self._outbox: OutboxBackend | None = None
        self._delivery: DeliveryWorker | None = None
        self._forwarder: DeliveryWorker | None = None
        self._quick_transports: dict[float, Transport] = {}
        self._lock = threading.RLock()
        #: Events refused at intake because the outbox was full (see docs/delivery.md).
        self.refused_events = 0
        self._refusals_reported = 0
        self._refusals_reported_at = -REFUSAL_REPORT_INTERVAL

    def _made(self, attribute: str, make: Callable[[], _Made]) -> _Made:
        """``self.<attribute>``, made by ``make`` the first time (once, whichever thread asks first)."""
        with self._lock:
            made: _Made | None = getattr(self, attribute)
            if made is None:
                made = make()
                setattr(self, attribute, made)
            return made

    @property
    def client(self) -> Client:
        """The REST client built from this app's config, created on first use."""
        return self._client or self._made("_client", lambda: Client.from_config(self._config))

    @property
    def outbox(self) -> OutboxBackend:
        """The app's durable outbox (``DATACUE_OUTBOX_PATH``), opened on first use."""
        return self._outbox or self._made("_outbox", self._open_outbox)

    def _open_outbox(self) -> OutboxBackend:
        config = self._config
        if self.redis is not None:  # DATACUE_OUTBOX_URL is a Redis
            from .outbox.redis import RedisOutbox  # redis-py is an extra: imported only when used

            return RedisOutbox(
                # Its own client: a forward or a claim may take longer than a page's Redis timeout.
                redis_store.connect(config["DATACUE_OUTBOX_URL"], timeout=2.0, connect_timeout=0.25),
                prefix=redis_store.namespace(config["DATACUE_API_KEY"]),
                journal=journal_folder(Path(config["DATACUE_OUTBOX_PATH"])),
                max_rows=int(config["DATACUE_OUTBOX_MAX_ROWS"]),
                lease_seconds=float(config["DATACUE_OUTBOX_LEASE_SECONDS"]),
                visitor_max=_int_or_none(config["DATACUE_OUTBOX_VISITOR_MAX"]),
                store_max=int(config["DATACUE_OUTBOX_STORE_MAX"]),
                partitions=int(config["DATACUE_OUTBOX_PARTITIONS"]),
            )
        return Outbox(
            self._config["DATACUE_OUTBOX_PATH"],
            max_rows=int(self._config["DATACUE_OUTBOX_MAX_ROWS"]),
            lease_seconds=float(self._config["DATACUE_OUTBOX_LEASE_SECONDS"]),
            visitor_max=_int_or_none(self._config["DATACUE_OUTBOX_VISITOR_MAX"]),
            store_max=int(self._config["DATACUE_OUTBOX_STORE_MAX"]),
        )

    @property
    def delivery(self) -> DeliveryWorker:
        """The worker to tell of a new row, its thread started on first use (and again after a
        fork): the delivery thread, or with ``DATACUE_DELIVERY_THREAD`` off and a Redis outbox,
        the thread that only forwards this host's journal (no other host can read it). The one
        place that starts them."""
        if self.delivery_thread:
            worker = self.delivery_worker
        elif self.forwards_journal:
            worker = self._forwarder or self._made("_forwarder", lambda: self._make_delivery(deliver=False))
        else:
            return self.delivery_worker
        worker.ensure_running()
        return worker

    @property
    def delivery_worker(self) -> DeliveryWorker:
        """The same worker, never started here: for delivering in the caller's thread (the CLI)."""
        return self._delivery or self._made("_delivery", self._make_delivery)

    def _make_delivery(self, *, deliver: bool = True) -> DeliveryWorker:
        first_wait, longest_wait = self._config["DATACUE_DELIVERY_BACKOFF"]
        return DeliveryWorker(
            self.outbox,
            self.client.transport,
            sender=self.app,
            max_in_flight=int(self._config["DATACUE_DELIVERY_IN_FLIGHT"]),
            backoff_base=float(first_wait),
            backoff_max=float(longest_wait),
            shutdown_grace=self.shutdown_grace,
            deliver=deliver,
        )

    @property
    def queued(self) -> QueuedClient:
        """The REST resources, delivered through the outbox (see ``cue_front.queued``)."""
        return QueuedClient(self)

    def quick_transport(self, timeout: float) -> Transport:
        """A transport for single, time-boxed calls (recommendations asked for on the request path)."""
        transport = self._quick_transports.get(timeout)
        if transport is None:
            with self._lock:
                transport = self._quick_transports.get(timeout)
                if transport is None:
                    config = self._config
                    transport = Transport(
                        config["DATACUE_API_KEY"],
                        config["DATACUE_API_SECRET"],
                        api_url=config["DATACUE_API_URL"],
                        events_url=config["DATACUE_EVENTS_URL"],
                        timeout=(timeout, timeout),
                        retries=0,
                    )
                    self._quick_transports[timeout] = transport
        return transport

    def close(self) -> None:
        """Stop the delivery thread and close the outbox and HTTP connections (tests, shutdown)."""
        with self._lock:
            for worker in (self._delivery, self._forwarder):
                if worker is not None:
                    worker.stop()
            self._delivery = self._forwarder = None
            if self._outbox is not None:
                self._outbox.close()
                self._outbox = None
            for transport in self._quick_transports.values():
                transport.close()
            self._quick_transports.clear()
            if self._client is not None:
                self._client.close()
                self._client = None
            if self.redis is not None:
                self.redis.close()  # its connections; the client reconnects if used again

    def count_refusal(self) -> int:
        """Count an event refused by a full outbox; the refusals to report now (0: not yet)."""
        with self._lock:
            self.refused_events += 1
            now = time.monotonic()
            if now - self._refusals_reported_at < REFUSAL_REPORT_INTERVAL:
                return 0
            unreported = self.refused_events - self._refusals_reported
            self._refusals_reported, self._refusals_reported_at = self.refused_events, now
            return unreported

    def __repr__(self) -> str:
        # Never show the config: it holds the API secret.
        return f"<DataCueState api_key={self.api_key!r} strict={self.strict}>"


def get_state(app: Flask | None = None) -> DataCueState:
    """The :class:`DataCueState` of ``app`` (default: the current app)."""
    if app is None:
        app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        state: DataCueState = app.extensions["datacue"]
    except KeyError:
        raise ConfigurationError(
            "cue-front is not initialised on this app: call DataCue(app) or datacue.init_app(app)"
        ) from None
    return state


def _shop_url(config: Mapping[str, Any]) -> str | None:
    """``DATACUE_SHOP_URL``, else ``<PREFERRED_URL_SCHEME>://<SERVER_NAME>``, without a trailing slash."""
    url = config.get("DATACUE_SHOP_URL")
    if not url and config.get("SERVER_NAME"):
        url = f"{config.get('PREFERRED_URL_SCHEME') or 'http'}://{config['SERVER_NAME']}"
    return str(url).rstrip("/") if url else None


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)
