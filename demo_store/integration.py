"""Everything the demo tells DataCue, in one room: identity, events, store changes, history and banners.

- Identity: cue-front takes the user id from Flask-Login (``current_user.get_id()``);
  ``@datacue.profile_loader`` adds the customer's sex, location and segment.
- Events: :func:`send` wraps ``cue_front.track`` so that a DataCue outage is
  logged, never shown to the customer.
- Store changes: :func:`queue_stock_changes` sends a product's full record
  through ``datacue.queued`` after an order moves its stock.
- History (the guide's step 1): ``@datacue.source(...)`` generators read the
  shop's own tables, :func:`import_history` streams them with cue-front's
  importer, and ``flask --app demo_store datacue import products`` does the same.
- Banners: DataCue keeps banners in its dashboard; the emulator takes them
  through :meth:`RunningEmulator.set_banners`, and :func:`banners` says which.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask

from cue_front import DataCue, track
from cue_front.errors import APIError, NetworkError
from cue_front.importer import Importer, ImportSummary, IterableSource

from . import catalog, db
from .customers import logged_in, profile

if TYPE_CHECKING:
    from cue_front.emulator import RunningEmulator

__all__ = [
    "IMPORT_ORDER",
    "banners",
    "cart_lines",
    "datacue",
    "guest_user",
    "import_history",
    "needs_import",
    "order_user_id",
    "queue_stock_changes",
    "register_banners",
    "send",
]

logger = logging.getLogger("demo_store")

#: The extension object; ``create_app`` initialises it on each app.
datacue = DataCue()

#: Categories first, so products name known categories; users before their orders.
IMPORT_ORDER = ("categories", "products", "users", "orders")


# -- identity ------------------------------------------------------------------------------


@datacue.profile_loader
def current_profile() -> dict[str, str] | None:
    customer = logged_in()
    return None if customer is None else customer.profile


# -- events and store changes --------------------------------------------------------------


def send(event: Mapping[str, Any]) -> None:
    """``track(event)``; DataCue being down or refusing is logged, and the shop carries on."""
    try:
        track(event)
    except (APIError, NetworkError) as error:
        logger.warning("DataCue did not take the %s event: %s", event.get("type"), error)


def cart_lines(lines: Iterable[tuple[str, str, int, int]]) -> list[dict[str, Any]]:
    """``(product_id, variant_id, quantity, unit price in cents)`` as DataCue's cart items."""
    return [
        {
            "product_id": product_id,
            "variant_id": variant_id,
            "quantity": quantity,
            "unit_price": catalog.money(unit_price_cents),
            "currency": catalog.CURRENCY,
        }
        for product_id, variant_id, quantity, unit_price_cents in lines
    ]


def order_user_id(order: sqlite3.Row) -> str:
    """The DataCue ``user_id`` an order is recorded under: its customer's; for a guest checkout, their
    email (the guide's way), or the fresh guest id given when that email already named someone."""
    user_id: str = order["user_id"] or order["guest_id"] or order["email"]
    return user_id


def guest_user(order: sqlite3.Row) -> dict[str, Any]:
    """DataCue's user for the guest of an order (its ``guest_id``, ``email``, ``name`` and
    ``created_at``): known by their email, or by the fresh guest id, and then without the email,
    which names another shopper already (see :func:`order_user_id`)."""
    user: dict[str, Any] = {
        "user_id": order["guest_id"] or order["email"],
        "first_name": order["name"].split()[0],
        "guest_account": True,
        "timestamp": order["created_at"],
    }
    if order["guest_id"] is None:
        user["email"] = order["email"]
    return user


def queue_stock_changes(products: Iterable[catalog.Product], variant_keys: Iterable[tuple[str, str]]) -> None:
    """Queue Update Product for each changed variant, with its whole record (new stock included)."""
    by_id = {product.product_id: product for product in products}
    for product_id, variant_id in dict.fromkeys(variant_keys):
        product = by_id[product_id]
        variant = product.variant(variant_id)
        if variant is None:
            continue
        record = catalog.datacue_product(product, variant)
        del record["product_id"], record["variant_id"]
        try:
            datacue.queued.products.update(product_id, variant_id, record)
        except (APIError, NetworkError) as error:  # only with DATACUE_DELIVERY = "sync"
            logger.warning("DataCue did not take the stock of %s/%s: %s", product_id, variant_id, error)


# -- the history, for the importer ---------------------------------------------------------


@datacue.source("categories")
def category_records() -> Iterator[dict[str, Any]]:
    for category in catalog.load_categories(db.get_db()):
        yield {"category_id": category.category_id, "name": category.name, "link": category.path}


@datacue.source("products")
def product_records() -> Iterator[dict[str, Any]]:
    yield from catalog.datacue_products(catalog.load_products(db.get_db()))


@datacue.source("users")
def user_records() -> Iterator[dict[str, Any]]:
    connection = db.get_db()
    wishlists: dict[str, list[str]] = {}
    for row in connection.execute("SELECT user_id, product_id FROM wishlist ORDER BY added_at"):
        wishlists.setdefault(row["user_id"], []).append(row["product_id"])
    for row in connection.execute("SELECT * FROM users ORDER BY user_id"):
        record: dict[str, Any] = {
            "user_id": row["user_id"],
            "email": row["email"],
            "first_name": row["first_name"],
            "last_name": row["last_name"],
            "profile": profile(row),
            "guest_account": False,
            "timestamp": row["created_at"],
        }
        if row["user_id"] in wishlists:
            record["wishlist"] = wishlists[row["user_id"]]
        yield record
    # Guest checkouts: DataCue knows these customers by their email, or by a fresh guest id.
    guests = connection.execute(
        "SELECT coalesce(guest_id, email) AS guest, guest_id, email, min(name) AS name,"
        " min(created_at) AS created_at FROM orders WHERE user_id IS NULL GROUP BY guest ORDER BY guest"
    )
    for row in guests:
        yield guest_user(row)


@datacue.source("orders")
def order_records() -> Iterator[dict[str, Any]]:
    connection = db.get_db()
    lines: dict[str, list[tuple[str, str, int, int]]] = {}
    for row in connection.execute(
        "SELECT order_id, product_id, variant_id, quantity, unit_price_cents FROM order_lines"
        " ORDER BY order_id, product_id"
    ):
        lines.setdefault(row["order_id"], []).append(
            (row["product_id"], row["variant_id"], row["quantity"], row["unit_price_cents"])
        )
    for row in connection.execute(
        "SELECT order_id, user_id, guest_id, email, status, created_at FROM orders ORDER BY number"
    ):
        yield {
            "order_id": row["order_id"],
            "user_id": order_user_id(row),
            "order_status": row["status"],
            "cart": cart_lines(lines.get(row["order_id"], [])),
            "timestamp": row["created_at"],
        }


def _import_flag(app: Flask) -> str:
    return f"datacue_imported:{app.config['DATACUE_API_KEY']}"


def needs_import(app: Flask) -> bool:
    """True unless this DataCue account already got the history and holds every product of it."""
    with app.app_context():
        connection = db.get_db()
        if db.meta(connection, _import_flag(app)) is None:
            return True
        ours = {row["product_id"] for row in connection.execute("SELECT product_id FROM products")}
    held = set(app.extensions["datacue"].client.overview.products().ids)
    return not ours <= held


def import_history(
    app: Flask, on_summary: Callable[[ImportSummary], None] | None = None
) -> list[ImportSummary]:
    """Stream categories, products, users and orders into DataCue with cue-front's importer."""
    state = app.extensions["datacue"]
    rejects_folder = Path(app.instance_path)
    summaries = []
    with app.app_context():
        for resource in IMPORT_ORDER:
            records = state.extension.sources[resource]()
            importer = Importer(
                state.client, resource, rejects=rejects_folder / f"import-{resource}.rejects.jsonl"
            )
            summary = importer.run(IterableSource(records, name=f"demo_store.{resource}"))
            summaries.append(summary)
            if on_summary is not None:
                on_summary(summary)
        if all(summary.ok for summary in summaries):
            connection = db.get_db()
            with db.transaction(connection):
                db.set_meta(connection, _import_flag(app), "yes")
    return summaries


# -- banners -------------------------------------------------------------------------------


def banner_photo_path(banner_id: str) -> str:
    return f"/media/banners/{banner_id}.svg"


def banners(app: Flask) -> list[dict[str, Any]]:
    """A main and a sub banner per category, in the emulator's registration format."""
    with app.app_context():
        categories = catalog.load_categories(db.get_db())
    registered = []
    for category in categories:
        for kind in ("main", "sub"):
            banner_id = f"b-{category.category_id}-{kind}"
            registered.append(
                {
                    "banner_id": banner_id,
                    "category_id": category.category_id,
                    "kind": kind,
                    "name": category.name if kind == "main" else f"New in {category.name}",
                    "photo_url": banner_photo_path(banner_id),
                    "link": category.path,
                }
            )
    return registered


def register_banners(app: Flask, emulator: RunningEmulator) -> int:
    """Give the emulator the shop's banners (DataCue itself takes them in its dashboard)."""
    registered = banners(app)
    emulator.set_banners(registered)
    return len(registered)
