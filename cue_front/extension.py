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
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Blueprint, Flask, current_app

from .errors import ConfigurationError
from .resources import resource_dir
from .settings import CONFIG_MODES, DEFAULTS, DELIVERY_MODES

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger("cue_front")

UserIdLoader = Callable[[], "str | int | None"]
ProfileLoader = Callable[[], "Mapping[str, Any] | None"]
Source = Callable[[], Iterable[Mapping[str, Any]]]
F = TypeVar("F", bound=Callable[..., Any])

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
        self.api_key: str = config["DATACUE_API_KEY"]
        self.strict: bool = bool(config["DATACUE_STRICT"])
        self.config_mode: str = config["DATACUE_CONFIG_MODE"]
        self.script_urls: tuple[str, ...] = tuple(config["DATACUE_SCRIPT_URLS"])
        self.url_prefix: str = config["DATACUE_URL_PREFIX"]
        # The app's Jinja globals, where flask-talisman (if installed) puts csp_nonce.
        self.jinja_globals = app.jinja_env.globals
        self._config = config
        self._client: Client | None = None
        self._lock = threading.Lock()

    @property
    def client(self) -> Client:
        """The REST client built from this app's config, created on first use."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    from .client import Client

                    self._client = Client.from_config(self._config)
        return self._client

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
        app.register_blueprint(_make_blueprint(), url_prefix=app.config["DATACUE_URL_PREFIX"])

        from . import pages, widgets
        from .cli import datacue_cli

        app.add_template_global(pages.render_datacue, "render_datacue")
        app.add_template_global(widgets.datacue_banners, "datacue_banners")
        app.add_template_global(widgets.datacue_banner_slot, "datacue_banner_slot")
        app.add_template_global(widgets.datacue_products, "datacue_products")
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
        """The current app's REST client (``datacue.client.products.create(...)``)."""
        return get_state().client


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


def _make_blueprint() -> Blueprint:
    """The ``datacue`` blueprint: static files, templates, and the first-party endpoint."""
    blueprint = Blueprint(
        "datacue",
        __name__,
        static_folder=resource_dir("static"),
        template_folder=resource_dir("templates"),
    )
    return blueprint
