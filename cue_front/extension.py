"""The Flask extension object: ``DataCue(app)`` or ``DataCue()`` + ``init_app(app)``.

Following Flask's extension rules, the extension object keeps no app: per-app
state lives in ``app.extensions["datacue"]`` (a :class:`DataCueState`) and code
reaches it through ``current_app``. What the extension object does hold is what
the shop registers on it with decorators (loaders, import sources), which is the
same for every app it is initialised on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar, cast

from flask import Blueprint, Flask, current_app

from .errors import ConfigurationError
from .resources import resource_dir
from .settings import CONFIG_MODES, DEFAULTS, DELIVERY_MODES

if TYPE_CHECKING:
    from .client import Client
    from .delivery import DeliveryWorker
    from .outbox import Outbox
    from .queued import QueuedClient
    from .transport import Transport

logger = logging.getLogger("cue_front")

UserIdLoader = Callable[[], "str | int | None"]
ProfileLoader = Callable[[], "Mapping[str, Any] | None"]
Source = Callable[[], Iterable[Mapping[str, Any]]]
F = TypeVar("F", bound=Callable[..., Any])

#: Seconds between two log lines about events refused by a full outbox.
REFUSAL_REPORT_INTERVAL = 60.0

#: The resources a shop can register an import source for.
SOURCE_RESOURCES = ("products", "categories", "users", "orders")


class DataCueState:
    """Everything cue-front knows about one app, read from its config once at ``init_app``.

    ``DATACUE_*`` keys are read when the extension is initialised and never again:
    set them before calling ``init_app``.
    """

    def __init__(self, extension: DataCue, app: Flask) -> None:
        config = app.config
        self.extension = extension
        #: The app itself: the sender of the signals the delivery worker sends.
        self.app = app
        self.delivery_mode: str = config["DATACUE_DELIVERY"]
        self.api_key: str = config["DATACUE_API_KEY"]
        self.strict: bool = bool(config["DATACUE_STRICT"])
        self.config_mode: str = config["DATACUE_CONFIG_MODE"]
        self.script_urls: tuple[str, ...] = tuple(config["DATACUE_SCRIPT_URLS"])
        self.url_prefix: str = config["DATACUE_URL_PREFIX"]
        self.proxy_enabled: bool = bool(config["DATACUE_PROXY_ENABLED"])
        self.ssr: bool = bool(config["DATACUE_SSR"])
        self.ssr_timeout = float(config["DATACUE_SSR_TIMEOUT"])
        self.ssr_orders = bool(config["DATACUE_SSR_ORDERS"])
        from .recommendations import RecommendationCache

        self.recommendation_cache = RecommendationCache()
        self.anonymous_cookie: str = config["DATACUE_ANONYMOUS_COOKIE"]
        # The app's Jinja globals, where flask-talisman (if installed) puts csp_nonce.
        self.jinja_globals = app.jinja_env.globals
        self._config = config
        self._client: Client | None = None
        self._outbox: Outbox | None = None
        self._delivery: DeliveryWorker | None = None
        self._quick_transports: dict[float, Transport] = {}
        self._lock = threading.RLock()
        #: Events refused at intake because the outbox was full (see outbox.py).
        self.refused_events = 0
        self._refusals_reported = 0
        self._refusals_reported_at = -REFUSAL_REPORT_INTERVAL

    @property
    def client(self) -> Client:
        """The REST client built from this app's config, created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from .client import Client

                    self._client = Client.from_config(self._config)
        return self._client

    @property
    def outbox(self) -> Outbox:
        """The app's durable outbox (``DATACUE_OUTBOX_PATH``), opened on first use."""
        if self._outbox is None:
            with self._lock:
                if self._outbox is None:
                    from .outbox import Outbox

                    self._outbox = Outbox(
                        self._config["DATACUE_OUTBOX_PATH"],
                        max_rows=int(self._config["DATACUE_OUTBOX_MAX_ROWS"]),
                        lease_seconds=float(self._config["DATACUE_OUTBOX_LEASE_SECONDS"]),
                    )
        return self._outbox

    @property
    def delivery(self) -> DeliveryWorker:
        """The worker that drains the outbox, started on first use (and again after a fork)."""
        if self._delivery is None:
            with self._lock:
                if self._delivery is None:
                    from .delivery import DeliveryWorker

                    first_wait, longest_wait = self._config["DATACUE_DELIVERY_BACKOFF"]
                    self._delivery = DeliveryWorker(
                        self.outbox,
                        self.client.transport,
                        sender=self.app,
                        backoff_base=float(first_wait),
                        backoff_max=float(longest_wait),
                    )
        self._delivery.ensure_running()
        return self._delivery

    @property
    def queued(self) -> QueuedClient:
        """The REST resources, delivered through the outbox (see ``cue_front.queued``)."""
        from .queued import QueuedClient

        return QueuedClient(self)

    def quick_transport(self, timeout: float) -> Transport:
        """A transport for single, time-boxed calls (recommendations asked for on the request path)."""
        transport = self._quick_transports.get(timeout)
        if transport is None:
            with self._lock:
                transport = self._quick_transports.get(timeout)
                if transport is None:
                    from .transport import Transport

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
            if self._delivery is not None:
                self._delivery.stop()
                self._delivery = None
            if self._outbox is not None:
                self._outbox.close()
                self._outbox = None
            for transport in self._quick_transports.values():
                transport.close()
            self._quick_transports.clear()
            if self._client is not None:
                self._client.close()
                self._client = None

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


class DataCue:
    """Connects a Flask shop to DataCue.

    ::

        datacue = DataCue(app)

        @datacue.user_id_loader
        def current_user_id():
            return session.get("user_id")
    """

    def __init__(self, app: Flask | None = None) -> None:
        self.user_id_loader_callback: UserIdLoader | None = None
        self.profile_loader_callback: ProfileLoader | None = None
        self.sources: dict[str, Source] = {}
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        if app.config["DATACUE_STRICT"] is None:
            app.config["DATACUE_STRICT"] = app.debug or app.testing
        if app.config["DATACUE_OUTBOX_PATH"] is None:
            app.config["DATACUE_OUTBOX_PATH"] = f"{app.instance_path}/datacue-outbox.sqlite3"
        _check_config(app.config)

        app.extensions["datacue"] = DataCueState(self, app)
        app.register_blueprint(_make_blueprint(app), url_prefix=app.config["DATACUE_URL_PREFIX"])

        from . import identity, pages, widgets
        from .cli import datacue_cli

        app.after_request(identity.set_anonymous_cookie)
        app.add_template_global(pages.render_datacue, "render_datacue")
        app.add_template_global(pages.datacue_events_script, "datacue_events_script")
        app.add_template_global(widgets.datacue_banners, "datacue_banners")
        app.add_template_global(widgets.datacue_banner_slot, "datacue_banner_slot")
        app.add_template_global(widgets.datacue_products, "datacue_products")
        app.add_template_filter(widgets.safe_url, "datacue_url")
        app.cli.add_command(datacue_cli)

    # -- what the shop registers -------------------------------------------------

    def user_id_loader(self, callback: F) -> F:
        """Register the function that returns the logged-in user's id, or ``None``."""
        self.user_id_loader_callback = callback
        return callback

    def profile_loader(self, callback: F) -> F:
        """Register the function that returns the visitor's ``profile`` object, or ``None``."""
        self.profile_loader_callback = callback
        return callback

    def source(self, resource: str) -> Callable[[F], F]:
        """Register a generator of records for ``flask datacue import RESOURCE`` without a file."""
        if resource not in SOURCE_RESOURCES:
            raise ValueError(f"resource must be one of {', '.join(SOURCE_RESOURCES)}, got {resource!r}")

        def register(callback: F) -> F:
            self.sources[resource] = callback
            return callback

        return register

    # -- conveniences for the current app -----------------------------------------

    @property
    def client(self) -> Client:
        """The current app's REST client (``datacue.client.products.create(...)``): sends now, raises."""
        return get_state().client

    @property
    def queued(self) -> QueuedClient:
        """The same resources through the durable outbox: ``datacue.queued.orders.create(...)``."""
        return get_state().queued


def _check_config(config: Mapping[str, Any]) -> None:
    if not config.get("DATACUE_API_KEY"):
        raise ConfigurationError(
            "DATACUE_API_KEY is not set: set it to your DataCue API key (or the emulator's,"
            " see `python -m cue_front.emulator`) before DataCue(app)"
        )
    if config["DATACUE_CONFIG_MODE"] not in CONFIG_MODES:
        raise ConfigurationError(
            f"DATACUE_CONFIG_MODE must be one of {', '.join(CONFIG_MODES)},"
            f" got {config['DATACUE_CONFIG_MODE']!r}"
        )
    if config["DATACUE_DELIVERY"] not in DELIVERY_MODES:
        raise ConfigurationError(
            f"DATACUE_DELIVERY must be one of {', '.join(DELIVERY_MODES)}, got {config['DATACUE_DELIVERY']!r}"
        )
    if isinstance(config["DATACUE_SCRIPT_URLS"], str):
        raise ConfigurationError("DATACUE_SCRIPT_URLS must be a list of URLs, not one string")


def _make_blueprint(app: Flask) -> Blueprint:
    """The ``datacue`` blueprint: static files, templates, and the first-party events endpoint."""
    from werkzeug.exceptions import HTTPException

    from . import proxy

    blueprint = Blueprint(
        "datacue",
        __name__,
        static_folder=resource_dir("static"),
        template_folder=resource_dir("templates"),
    )
    if app.config["DATACUE_PROXY_ENABLED"]:
        view = _rate_limited(app, proxy.receive_event)
        blueprint.add_url_rule("/events", "events", view, methods=["POST"])
        blueprint.register_error_handler(HTTPException, proxy.error_as_json)
    return blueprint


def _rate_limited(app: Flask, view: F) -> F:
    """``view`` under ``DATACUE_PROXY_RATE_LIMIT`` per client when Flask-Limiter is installed."""
    try:
        from flask_limiter import Limiter
        from flask_limiter.util import get_remote_address
    except ImportError:
        logger.warning(
            "datacue: the events endpoint has no rate limit; install cue-front[limits]"
            " (Flask-Limiter) to limit each client to DATACUE_PROXY_RATE_LIMIT"
        )
        return view
    limiter = Limiter(
        get_remote_address,
        app=app,
        storage_uri=app.config["DATACUE_PROXY_RATE_LIMIT_STORAGE"],
        key_prefix="datacue",
    )
    return cast(F, limiter.limit(app.config["DATACUE_PROXY_RATE_LIMIT"])(view))
