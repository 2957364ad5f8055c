"""The cue-front demo store: a small but real Flask shop on SQLite, personalised by DataCue.

``create_app(config)`` builds the shop; on first use it creates and seeds its
database in the app's instance folder. ``python -m demo_store`` (``make demo``)
also starts a DataCue emulator, imports the shop's history into it and serves
both. The rooms: ``db`` (SQLite through Flask-SQLAlchemy), ``models`` (its
tables), ``seed`` (the generated shop), ``catalog`` (products and DataCue's
shapes of them), ``svg`` (pictures and banners), ``customers`` (Flask-Login's
users), ``integration`` (everything sent to DataCue, the declared model sync
included), ``admin`` (``flask --app demo_store shop ...``: back-office edits),
and the views: ``shop`` (browsing), ``basket`` (cart, checkout, orders) and
``accounts``. Every form carries Flask-WTF's CSRF token.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template
from flask_wtf.csrf import CSRFError, CSRFProtect  # type: ignore[import-untyped]  # ships no types
from markupsafe import Markup
from werkzeug.exceptions import HTTPException, NotFound

from cue_front.cli import datacue_cli

from . import accounts, admin, basket, catalog, db, integration, seed, settings, shop

__all__ = ["SHOP_NAME", "configure_logging", "create_app"]

SHOP_NAME = "Fernhill Supply"

logger = logging.getLogger("demo_store")

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure_logging() -> None:
    """The demo's log, cue-front's included (refused events, dead letters, delivery failures), on
    the console from INFO up; unless the process has set up logging already (pytest, gunicorn)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, datefmt="%H:%M:%S")


#: The environment variable that moves the instance folder (as ``python -m demo_store --instance``).
INSTANCE_VARIABLE = "DEMO_STORE_INSTANCE"


def create_app(config: Mapping[str, Any] | None = None, *, instance_path: str | None = None) -> Flask:
    """The shop. ``config`` overrides the defaults and the environment; ``instance_path`` (or
    ``DEMO_STORE_INSTANCE``) moves the database, the secret key and cue-front's outbox.

    DataCue's settings come from ``config``, the environment, or a running demo's note in the
    instance folder (:mod:`demo_store.settings`); without any the app still loads, for ``--help``.
    """
    app = Flask(__name__, instance_path=instance_path or os.environ.get(INSTANCE_VARIABLE) or None)
    app.config.from_mapping(
        DEMO_DATABASE=os.path.join(app.instance_path, "demo-store.sqlite3"),
        DEMO_SEED=7,
        # Recommendations and banners are rendered on the server: the shop needs no CDN.
        # Events and store changes go through cue-front's durable outbox (the default delivery).
        DATACUE_SSR=True,
        # Orders reach DataCue from the backend, by the declared model sync (the guide's
        # recommended way); the confirmation page's order_details must not be sent a second time.
        DATACUE_SSR_ORDERS=False,
        SESSION_COOKIE_HTTPONLY=True,
        # Browsers do not send the session with another site's form posts (CSRF tokens guard
        # them all the same: another origin on the same site is not "another site").
        SESSION_COOKIE_SAMESITE="Lax",
    )
    if config:
        app.config.update(config)
    has_datacue = bool(settings.resolve(app.config, Path(app.instance_path)))
    app.config.setdefault("SQLALCHEMY_DATABASE_URI", db.sqlite_url(app.config["DEMO_DATABASE"]))
    if "SESSION_COOKIE_SECURE" not in (config or {}):
        # Served over https (PREFERRED_URL_SCHEME, behind a proxy that ends TLS): the session
        # cookie is never sent over plain http.
        app.config["SESSION_COOKIE_SECURE"] = app.config["PREFERRED_URL_SCHEME"] == "https"
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_secret(Path(app.instance_path))
    app.extensions["demo_store.seeded"] = seed.ensure_database(
        app.config["DEMO_DATABASE"], seed_value=int(app.config["DEMO_SEED"])
    )

    configure_logging()  # before cue-front, which warns when its log goes nowhere
    db.init_app(app)
    accounts.login_manager.init_app(app)
    csrf = CSRFProtect(app)
    if has_datacue:
        integration.datacue.init_app(app)
        # Every form post carries the browser's token; cue-front's events endpoint (JSON, from
        # cue-front.js) checks the Origin of what it is sent instead.
        csrf.exempt(app.blueprints["datacue"])
        app.cli.add_command(admin.shop_cli)
    else:
        # Loaded all the same, for `flask --app demo_store ... --help`: its commands and pages
        # say how to give it DataCue's settings.
        logger.warning("%s", settings.NO_SETTINGS)
        app.cli.add_command(settings.refusing(datacue_cli))
        app.cli.add_command(settings.refusing(admin.shop_cli))
        app.before_request(_no_settings_page)
        return app
    app.register_blueprint(shop.blueprint)
    app.register_blueprint(basket.blueprint)
    app.register_blueprint(accounts.blueprint)
    app.register_error_handler(NotFound, shop.not_found)
    app.register_error_handler(CSRFError, _form_refused)
    app.register_error_handler(HTTPException, _http_error)
    app.add_template_filter(cents)
    app.add_template_filter(dollars)
    app.add_template_filter(stars)
    app.add_template_global(shop.viewed_variant)
    app.context_processor(_layout_context)
    return app


def _no_settings_page() -> tuple[str, int, dict[str, str]]:
    """Every page of a shop started without DataCue settings (``flask --app demo_store run``)."""
    return f"{SHOP_NAME}: {settings.NO_SETTINGS}.\n", 503, {"Content-Type": "text/plain; charset=utf-8"}


def _instance_secret(instance: Path) -> str:
    """The session signing key, made once and kept in the instance folder."""
    path = instance / "secret-key"
    if path.exists():
        return path.read_text(encoding="utf-8").strip()
    instance.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(key)
    return key


def _http_error(error: HTTPException) -> tuple[str, int]:
    return render_template("error.html", error=error), error.code or 500


def _form_refused(error: CSRFError) -> tuple[str, int]:
    """A form posted without this browser's token: from another site's page, or one left open too long."""
    advice = "It came from another site, or its page was open too long: go back, reload it and try again."
    return render_template("error.html", error=error, advice=advice), 400


def _layout_context() -> dict[str, Any]:
    """What the layout shows on every page: categories and the cart count (who is logged in is
    Flask-Login's ``current_user``).

    Computed once per request: cue-front's widget templates are rendered with it too.
    """
    cached: dict[str, Any] | None = g.get("_demo_layout")
    if cached is not None:
        return cached
    layout = g._demo_layout = {
        "shop_name": SHOP_NAME,
        "nav_categories": catalog.load_categories(),
        "cart_count": sum(quantity for _, _, quantity in basket.session_cart()),
    }
    return layout


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def dollars(value: Any) -> str:
    """A price in dollars (a number, or a string as DataCue sometimes sends it): ``$1,299.00``."""
    amount = _decimal(value)
    return "" if amount is None else f"${amount:,.2f}"


def cents(value: int) -> str:
    return dollars(catalog.money(value))


def stars(rating: Any) -> Markup:
    """A 0-100 rating as five stars, the way DataCue describes it (58 shows three)."""
    amount = _decimal(rating)
    if amount is None:
        return Markup("")
    filled = max(0, min(5, int((amount / 20).to_integral_value())))
    return Markup(
        '<span class="stars" role="img" aria-label="{} out of 5 stars">'
        '{}<span class="stars__off">{}</span></span>'
    ).format(filled, "\u2605" * filled, "\u2605" * (5 - filled))
