"""The Flask extension object: ``DataCue(app)`` or ``DataCue()`` + ``init_app(app)``.

It keeps no app (Flask's extension rules): per-app state lives in ``app.extensions["datacue"]``
(:mod:`cue_front.state`); the object holds what the shop registers on it with decorators.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import quote

from flask import Blueprint, Flask, session
from werkzeug.exceptions import HTTPException

from . import identity, model_sync, pages, proxy, rate_limits, redis_store, widgets
from .assets import resource_dir
from .cli import datacue_cli
from .client import Client
from .errors import ConfigurationError, DataCueError
from .events import track, visitor_key
from .outbox.worker import exit_cleanly_on_sigterm
from .queued import QueuedClient, ordering_key
from .schema import RESOURCE_NAMES
from .settings import CONFIG_MODES, DEFAULTS, DELIVERY_MODES, SQLITE_URL
from .state import DataCueState, get_state

try:  # Flask-Login is the shop's choice; when it is there, logins and logouts are followed
    import flask_login
except ImportError:  # pragma: no cover - exercised where Flask-Login is not installed
    flask_login = None

__all__ = ["DataCue"]

logger = logging.getLogger(__name__)

UserIdLoader = Callable[[], "str | int | None"]
ConsentLoader = Callable[[], bool]
ProfileLoader = Callable[[], "Mapping[str, Any] | None"]
Source = Callable[[], Iterable[Mapping[str, Any]]]
F = TypeVar("F", bound=Callable[..., Any])


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
        self.consent_loader_callback: ConsentLoader | None = None
        self.sources: dict[str, Source] = {}
        #: Models declared with :meth:`syncs`.
        self.model_sync = model_sync.ModelSync()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        if app.config["DATACUE_STRICT"] is None:
            app.config["DATACUE_STRICT"] = app.debug or app.testing
        outbox_url = app.config["DATACUE_OUTBOX_URL"]
        if isinstance(outbox_url, str) and outbox_url.startswith(SQLITE_URL):
            # The SQLite outbox named by URL, as SQLAlchemy spells one: sqlite:///relative/path,
            # sqlite:////absolute/path. The file is what DATACUE_OUTBOX_PATH names otherwise.
            app.config["DATACUE_OUTBOX_PATH"] = outbox_url[len(SQLITE_URL) :]
        elif outbox_url is not None and not redis_store.is_redis_url(outbox_url):
            raise ConfigurationError(
                f"DATACUE_OUTBOX_URL must be sqlite:///path or a redis:// (rediss://, unix://) URL,"
                f" got {redis_store.scheme(outbox_url)!r}://..."
            )
        if app.config["DATACUE_OUTBOX_PATH"] is None:
            app.config["DATACUE_OUTBOX_PATH"] = f"{app.instance_path}/datacue-outbox.sqlite3"
        if app.config["DATACUE_PROXY_RATE_LIMIT_STORAGE"] is None:
            outbox_url = app.config["DATACUE_OUTBOX_URL"]
            app.config["DATACUE_PROXY_RATE_LIMIT_STORAGE"] = (
                outbox_url if redis_store.is_redis_url(outbox_url) else "memory://"
            )
        _check_config(app.config)

        state = DataCueState(self, app)
        if state.redis is not None:  # once, before the app serves: a Redis that evicts is refused
            redis_store.check_eviction_policy(state.redis, "DATACUE_OUTBOX_URL")
        app.extensions["datacue"] = state
        if state.delivery_thread or state.forwards_journal:
            # A process stopped with SIGTERM (`flask run`, waitress) flushes its thread's rows first.
            exit_cleanly_on_sigterm()
        app.register_blueprint(_make_blueprint(app), url_prefix=app.config["DATACUE_URL_PREFIX"])
        app.after_request(identity.finish_response)
        app.add_template_global(pages.render_datacue, "render_datacue")
        app.add_template_global(pages.datacue_events_script, "datacue_events_script")
        app.add_template_global(widgets.datacue_banners, "datacue_banners")
        app.add_template_global(widgets.datacue_banner_slot, "datacue_banner_slot")
        app.add_template_global(widgets.datacue_products, "datacue_products")
        app.add_template_filter(widgets.safe_url, "datacue_url")
        app.cli.add_command(datacue_cli)
        if app.config["DATACUE_FLASK_LOGIN"] and flask_login is not None:
            # Sent with the app as sender: a receiver for this app only.
            flask_login.user_logged_in.connect(_on_login, app)
            flask_login.user_logged_out.connect(_on_logout, app)
        if not rate_limits.AVAILABLE and app.config["DATACUE_PROXY_ENABLED"]:
            logger.warning(
                "datacue: the events endpoint has no rate limit; install cue-front[limits]"
                " (Flask-Limiter) to limit each visitor to DATACUE_PROXY_RATE_LIMIT"
            )
        _warn_if_logging_nowhere()
        if not (app.config["DATACUE_SHOP_URL"] or app.config.get("SERVER_NAME") or app.testing):
            logger.warning(
                "datacue: set DATACUE_SHOP_URL (or SERVER_NAME) to the shop's address: without it a"
                " relative cart_link reaches DataCue relative, and the events endpoint judges links"
                " by each request's Host header"
            )

    # -- what the shop registers -------------------------------------------------

    def user_id_loader(self, callback: F) -> F:
        """Register the function that returns the logged-in user's id, or ``None``."""
        self.user_id_loader_callback = callback
        return callback

    def profile_loader(self, callback: F) -> F:
        """Register the function that returns the visitor's ``profile`` object, or ``None``."""
        self.profile_loader_callback = callback
        return callback

    def consent_loader(self, callback: F) -> F:
        """Register the function that says whether this visitor agreed to be tracked (default: yes).

        Without consent no anonymous cookie is set, no event is sent or queued, and
        ``render_datacue`` leaves out DataCue's config and scripts; store sync goes on.
        """
        self.consent_loader_callback = callback
        return callback

    def source(self, resource: str) -> Callable[[F], F]:
        """Register a generator of records for ``flask datacue import RESOURCE`` without a file."""
        if resource not in RESOURCE_NAMES:
            raise ValueError(f"resource must be one of {', '.join(RESOURCE_NAMES)}, got {resource!r}")

        def register(callback: F) -> F:
            self.sources[resource] = callback
            return callback

        return register

    def syncs(
        self, model: type, resource: str, *, depends_on: Mapping[type, Any] | None = None
    ) -> Callable[[F], F]:
        """Declare that ``model``'s rows are DataCue ``resource`` objects, made by the decorated function.

        From then on every commit sends what it created, changed or deleted (through the
        outbox, in commit order); a rollback sends nothing. ``depends_on`` maps a related
        model to the attribute (or function) giving the instances it feeds, so that renaming
        a Product sends its Variants again. ``flask datacue import`` and ``reconcile`` read the
        declared models too. Needs ``cue-front[sqlalchemy]``.
        """

        def register(to_datacue: F) -> F:
            self.model_sync.declare(model, resource, to_datacue, depends_on)
            return to_datacue

        return register

    def resync(self, target: Any, *, force: bool = False) -> int:
        """Send what the ORM's events could not see (bulk ``update()``, raw SQL): ``target`` is an
        instance, instances, or a declared model (all its rows). Returns how many were queued."""
        return model_sync.resync(self.model_sync, target, force=force)

    # -- conveniences for the current app -----------------------------------------

    @property
    def client(self) -> Client:
        """The current app's REST client (``datacue.client.products.create(...)``): sends now, raises."""
        return get_state().client

    @property
    def queued(self) -> QueuedClient:
        """The same resources through the durable outbox: ``datacue.queued.orders.create(...)``."""
        return get_state().queued

    def end_visitor(self) -> None:
        """End this browser's visitor (call it at logout): see :func:`cue_front.end_visitor`."""
        identity.end_visitor()

    def forget(self, user_id: str | int) -> int:
        """Erase a user: delete them at DataCue (through the outbox) and drop their events not yet
        sent. Returns how many queued events were dropped."""
        state = get_state()
        user_id = str(user_id)
        dropped = 0
        if state.delivery_mode == "outbox":
            # The user's key as the client spells it (quoted, as in URLs), and as rows queued by an
            # earlier cue-front spelled a create's key (raw).
            keys = [visitor_key(user_id), ordering_key("DELETE", f"/users/{quote(user_id, safe='')}", b"")]
            keys.append(f"users/{user_id}")
            dropped = state.outbox.drop_unsent(keys)
        state.recommendation_cache.forget(user_id)
        state.queued.users.delete(user_id)
        return dropped


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
    if not isinstance(config["DATACUE_DELIVERY_THREAD"], bool):
        raise ConfigurationError(
            f"DATACUE_DELIVERY_THREAD must be True or False, got {config['DATACUE_DELIVERY_THREAD']!r}"
            " (a value read from the environment is a string: parse it, as"
            " app.config.from_prefixed_env() does)"
        )
    grace = config["DATACUE_SHUTDOWN_GRACE"]
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise ConfigurationError(f"DATACUE_SHUTDOWN_GRACE must be a number of seconds (>= 0), got {grace!r}")
    if isinstance(config["DATACUE_SCRIPT_URLS"], str):
        raise ConfigurationError("DATACUE_SCRIPT_URLS must be a list of URLs, not one string")


def _make_blueprint(app: Flask) -> Blueprint:
    """The ``datacue`` blueprint: static files, templates, and the first-party events endpoint."""
    blueprint = Blueprint(
        "datacue",
        __name__,
        static_folder=resource_dir("static"),
        template_folder=resource_dir("templates"),
    )
    if app.config["DATACUE_PROXY_ENABLED"]:
        blueprint.add_url_rule("/events", "events", proxy.receive_event, methods=["POST"])
        blueprint.register_error_handler(HTTPException, proxy.error_as_json)
    return blueprint


#: The session's record of the customer this browser's visitor last logged in as.
_LAST_CUSTOMER = "_datacue_customer"


def _on_login(app: Flask, user: object = None, **_: object) -> None:
    """Flask-Login's ``user_logged_in``: DataCue's login event, which stitches the anonymous
    visitor's history to the account (it carries both ids). When another customer logged in on
    this browser before without logging out, the visitor is theirs: a new one starts first."""
    customer = identity.current_user_id(fresh=True)
    if session.get(_LAST_CUSTOMER) not in (None, customer):
        identity.end_visitor()
    session[_LAST_CUSTOMER] = customer
    try:
        track({"type": "login"})
    except DataCueError as error:  # DATACUE_DELIVERY = "sync": a login never fails because of DataCue
        logger.warning("datacue: the login event was not sent: %s", error)


def _on_logout(app: Flask, user: object = None, **_: object) -> None:
    """Flask-Login's ``user_logged_out``: the next person on this browser is a new visitor."""
    session.pop(_LAST_CUSTOMER, None)
    identity.end_visitor()


def _warn_if_logging_nowhere() -> None:
    """cue-front reports refusals and failures in its log: say so once if that log goes nowhere."""
    library = logging.getLogger("cue_front")
    logger_ = library
    while logger_ is not None:
        if any(not isinstance(handler, logging.NullHandler) for handler in logger_.handlers):
            return
        if not logger_.propagate:
            break
        logger_ = logger_.parent  # type: ignore[assignment]
    warnings.warn(
        "cue_front logs nowhere: refused events, dead letters and delivery failures will go"
        " unseen. Configure logging (logging.basicConfig(level=logging.INFO), or a handler on"
        " the 'cue_front' logger) before DataCue(app)",
        RuntimeWarning,
        stacklevel=3,
    )
