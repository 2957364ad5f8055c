"""A small shop for gunicorn: pages that render DataCue's config and track an event, and store changes.

``gunicorn 'tests.soak.shop:create_app()'`` with the settings as JSON in the
``SOAK_SHOP`` environment variable (see :func:`create_app`). Every worker process
shares one outbox file, as a real deployment does. Each response says which
worker served it (``X-Soak-Worker``), how long the worker spent on it
(``X-Soak-Seconds``, first ``before_request`` to last ``after_request``) and
whether cue-front accepted the event or change (``X-Soak-Queued``: 1, or 0
when the outbox refused it).

Routes (``MARKER`` is ``ev-000123`` or ``ch-000123``):

* ``GET /page/<kind>/<MARKER>``: a ``product``, ``search``, ``cart`` or ``home`` page
  (``render_datacue`` in the head) that ``track()``\\s an event carrying the marker;
* ``POST /change/<kind>/<MARKER>``: a store change queued with ``datacue.queued``
  (``product``, ``product-update``, ``category``, ``user``, ``order``);
* ``POST /login/<user_id>``: the visitor is now that user (a Flask session);
* ``GET /_soak/health``: answers once the worker serves.

With ``DATACUE_OUTBOX_URL`` set to a Redis (the multi-host soak), a store change that Redis
could not take is answered 503 with ``X-Soak-Queued: 0`` (nothing was queued: the shop's
admin tries again), and the failure recorder reads a row's body from Redis.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
from typing import Any

from flask import Flask, Response, abort, g, session

from cue_front import DataCue, render_datacue, track
from cue_front.outbox.redis import OutboxUnavailableError, RedisOutbox
from cue_front.state import get_state

PAGE_KINDS = ("product", "search", "cart", "home")
CHANGE_KINDS = ("product", "product-update", "category", "user", "order")

PAGE = "<!doctype html><html><head>{head}</head><body><h1>{title}</h1></body></html>"


def product_of(n: int) -> str:
    """The product a change belongs to: a handful of changes share each one (per-key order)."""
    return f"prod-{n // 4}"


def event_for(kind: str, marker: str) -> dict[str, Any]:
    if kind == "product":
        return {"type": "wishlist", "subtype": "add", "product_id": marker}
    if kind == "search":
        return {"type": "search", "term": marker}
    if kind == "cart":
        line = {"product_id": marker, "variant_id": "v1", "quantity": 1, "unit_price": 9.5, "currency": "EUR"}
        return {"type": "cart", "subtype": "update", "cart": [line], "cart_link": "/cart"}
    return {"type": "click", "subtype": "banner", "banner_id": marker}


def head_for(kind: str, marker: str) -> Any:
    if kind == "product":
        variant = {"variant_id": "v1", "name": "Soak sofa", "price": 9.5, "photo_url": "/p.jpg"}
        return render_datacue("product", product_id=marker, product_update=[variant])
    if kind == "search":
        return render_datacue("search", term=marker)
    if kind == "cart":
        return render_datacue("cart")
    return render_datacue("home")


def create_app() -> Flask:
    """The shop, configured from ``SOAK_SHOP``: ``outbox``, ``datacue`` (config of the emulator or
    the switch in front of it), and any other ``DATACUE_*`` overrides under ``config``."""
    settings = json.loads(os.environ["SOAK_SHOP"])
    app = Flask("soak_shop")
    app.config.update(
        SECRET_KEY="soak-shop-secret-key",
        DATACUE_DELIVERY="outbox",
        DATACUE_OUTBOX_PATH=settings["outbox"],
        DATACUE_PROXY_RATE_LIMIT="1000000/minute",
        **settings["datacue"],
        **settings.get("config", {}),
    )
    if "DATACUE_TIMEOUT" in app.config:
        app.config["DATACUE_TIMEOUT"] = tuple(app.config["DATACUE_TIMEOUT"])
    datacue = DataCue(app)
    # As a shop in production does: warnings and errors to stderr (gunicorn's error log).
    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(process)d %(name)s %(levelname)s %(message)s"
    )
    if settings.get("failures"):
        FailureRecorder.install(settings["failures"], settings["outbox"], app)

    @datacue.user_id_loader
    def current_user_id() -> str | None:
        return session.get("user_id")

    @app.get("/page/<kind>/<marker>")
    def page(kind: str, marker: str) -> Response:
        if kind not in PAGE_KINDS:
            abort(404)
        head = head_for(kind, marker)
        accepted = track(event_for(kind, marker))
        response = Response(PAGE.format(head=head, title=kind))
        response.headers["X-Soak-Queued"] = "1" if accepted else "0"
        return response

    @app.post("/change/<kind>/<marker>")
    def change(kind: str, marker: str) -> Response:
        try:
            queue_change(kind, marker)
        except OutboxUnavailableError:  # the outbox's Redis is down: nothing was queued
            return Response(status=503, headers={"X-Soak-Queued": "0", "Retry-After": "1"})
        response = Response(status=202)
        response.headers["X-Soak-Queued"] = "1"
        return response

    def queue_change(kind: str, marker: str) -> None:
        n = int(marker.split("-")[1])
        queued = datacue.queued
        if kind == "product":
            queued.products.create(
                {
                    "product_id": product_of(n),
                    "variant_id": "v1",
                    "categories": ["soak"],
                    "name": "Soak sofa",
                    "description": marker,
                    "price": 9.5,
                    "full_price": 12,
                    "stock": 3,
                    "photo_url": "/p.jpg",
                    "link": f"/p/{product_of(n)}",
                }
            )
        elif kind == "product-update":
            queued.products.update(product_of(n), "v1", _product_changes(marker))
        elif kind == "category":
            queued.categories.create({"category_id": f"cat-{n}", "name": marker})
        elif kind == "user":
            queued.users.create({"user_id": f"user-{n}", "first_name": marker})
        elif kind == "order":
            line = {"product_id": product_of(n), "variant_id": "v1", "quantity": 1, "unit_price": 9.5}
            queued.orders.create({"order_id": marker, "user_id": f"user-{n}", "cart": [line]})
        else:
            abort(404)

    @app.post("/login/<user_id>")
    def login(user_id: str) -> Response:
        session["user_id"] = user_id
        return Response(status=204)

    @app.get("/_soak/health")
    def health() -> Response:
        return Response("ok", mimetype="text/plain")

    @app.before_request
    def start_clock() -> None:
        g.soak_started = time.perf_counter()

    @app.after_request
    def say_who(response: Response) -> Response:
        response.headers["X-Soak-Worker"] = str(os.getpid())
        response.headers["X-Soak-Seconds"] = f"{time.perf_counter() - g.soak_started:.6f}"
        return response

    return app


def _product_changes(marker: str) -> dict[str, Any]:
    return {
        "categories": ["soak"],
        "name": "Soak sofa",
        "description": marker,
        "price": 8.5,
        "full_price": 12,
        "stock": 2,
        "photo_url": "/p.jpg",
        "link": "/p",
    }


class FailureRecorder(logging.Handler):
    """Records, per marker, each failed or slow send the shop's delivery worker logs (and why).

    The worker logs every failed attempt with the row id and the reason at INFO
    (``datacue: outbox row 12 (event) failed, attempt 1; retrying in 0.1s: ...``),
    and each request still listened for after the read timeout (``... not answered
    in 0.5s; listening for its answer ...``).
    A failure that may hide a request DataCue did process (a read timeout, a
    connection lost after sending) explains one extra copy of that row at DataCue;
    the soak's report uses these to tell such copies from any other.
    """

    MESSAGE = re.compile(r"datacue: outbox row \d+ \(\w+\) (failed|not answered in)")

    def __init__(self, failures: str, outbox: str, app: Flask) -> None:
        super().__init__(logging.INFO)
        self.failures = failures
        self.outbox = outbox
        self.app = app
        self._local = threading.local()

    @classmethod
    def install(cls, failures: str, outbox: str, app: Flask) -> None:
        delivery_logger = logging.getLogger("cue_front.outbox")
        delivery_logger.setLevel(logging.INFO)
        delivery_logger.addHandler(cls(failures, outbox, app))

    @staticmethod
    def create(failures: str) -> None:
        """Make the failures file, once, before the workers start: SQLite answers two processes
        switching one new file to WAL at the same moment with "database is locked"."""
        with sqlite3.connect(failures, isolation_level=None) as connection:
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS failures (marker TEXT, pid INTEGER, at REAL, error TEXT)"
            )
        connection.close()

    def _connection(self) -> sqlite3.Connection:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(self.failures, timeout=30, isolation_level=None)
            self._local.connection = connection
        return connection

    def _body(self, row_id: int) -> bytes | None:
        """The row's request body, from the outbox this process delivers (SQLite file or Redis)."""
        outbox = get_state(self.app).outbox
        if isinstance(outbox, RedisOutbox):
            found: Any = outbox.client.hget(f"{outbox.keys}r:{row_id}", "b")
            return bytes(found) if found is not None else None
        connection = self._connection()
        if not getattr(self._local, "attached", False):
            connection.execute(f"ATTACH DATABASE 'file:{self.outbox}?mode=ro' AS outbox")
            self._local.attached = True
        row = connection.execute("SELECT body FROM outbox.outbox WHERE id = ?", (row_id,)).fetchone()
        return bytes(row[0]) if row else None

    def emit(self, record: logging.LogRecord) -> None:
        if not isinstance(record.msg, str) or not self.MESSAGE.match(record.getMessage()):
            return
        row_id = record.args[0]  # type: ignore[index]
        # A failure's reason is its last argument; a slow answer still listened for has none.
        error = str(record.args[-1]) if "failed" in record.msg else record.getMessage()  # type: ignore[index]
        body = self._body(int(str(row_id)))
        markers = re.findall(r"(?:ev|ch)-\d{6}", body.decode()) if body else []
        connection = self._connection()
        for marker in markers:
            connection.execute(
                "INSERT INTO failures VALUES (?, ?, ?, ?)", (marker, os.getpid(), time.time(), error)
            )
