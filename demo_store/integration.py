"""Everything the demo tells DataCue, in one room: identity, events, store data, history and banners.

- Identity: cue-front takes the user id from Flask-Login (``current_user.get_id()``);
  ``@datacue.profile_loader`` adds the customer's sex, location and segment.
- Events: :func:`send` wraps ``cue_front.track`` so that a DataCue outage is
  logged, never shown to the customer. Cart updates, checkout started and
  wishlist changes are storefront events: the views send them.
- Store data: ``@datacue.syncs`` declares which models are DataCue's products,
  categories, users and orders, and how each row becomes DataCue's object. From
  then on every commit sends what it created, changed or deleted (an order set
  to cancelled is cancelled), through cue-front's outbox: no view calls the
  client, and an edit from the command line (``flask --app demo_store shop
  restock``) reaches DataCue the same way. A product's price or name is on its
  row, so a change to it sends each of its variants (``depends_on``); a wishlist
  is part of its customer's DataCue user.
- History (the guide's step 1): :func:`import_history` streams the declared
  models' rows through the same functions with cue-front's importer, as
  ``flask --app demo_store datacue import products`` does.
- Banners: DataCue keeps banners in its dashboard; the emulator takes them
  through :meth:`RunningEmulator.set_banners`, and :func:`banners` says which.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from sqlalchemy import select

from cue_front import DataCue, track
from cue_front.errors import APIError, NetworkError
from cue_front.importer import Importer, ImportSummary, IterableSource

from . import catalog
from .customers import logged_in
from .db import db
from .models import Category, Customer, Guest, Order, Product, Variant, WishlistItem, meta, set_meta

if TYPE_CHECKING:
    from cue_front.emulator import RunningEmulator

__all__ = [
    "IMPORT_ORDER",
    "banners",
    "cart_lines",
    "datacue",
    "import_history",
    "needs_import",
    "register_banners",
    "send",
    "shop_records",
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


# -- events --------------------------------------------------------------------------------


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


# -- store data: the declared models -------------------------------------------------------


@datacue.syncs(Category, "categories")
def category_to_datacue(category: Category) -> dict[str, Any]:
    return {"category_id": category.category_id, "name": category.name, "link": category.path}


@datacue.syncs(Variant, "products", depends_on={Product: "variants"})
def variant_to_datacue(variant: Variant) -> dict[str, Any]:
    """DataCue's products are variants; the price, name and rating are the product's."""
    return catalog.datacue_product(variant)


@datacue.syncs(Customer, "users", depends_on={WishlistItem: "customer"})
def customer_to_datacue(customer: Customer) -> dict[str, Any]:
    user: dict[str, Any] = {
        "user_id": customer.user_id,
        "email": customer.email,
        "first_name": customer.first_name,
        "profile": customer.profile,
        "guest_account": False,
        "wishlist": [item.product_id for item in customer.wishlist],
        "timestamp": customer.created_at,
    }
    if customer.last_name:
        user["last_name"] = customer.last_name
    if customer.anonymous_id:  # just registered: DataCue joins this browser's history to them
        user["anonymous_id"] = customer.anonymous_id
    return user


@datacue.syncs(Guest, "users")
def guest_to_datacue(guest: Guest) -> dict[str, Any]:
    """A guest checkout's user: known by their email, or by ``guest-<order_id>`` and then without
    the email, which names another shopper already (see basket.py)."""
    user: dict[str, Any] = {
        "user_id": guest.user_id,
        "first_name": guest.first_name,
        "guest_account": True,
        "timestamp": guest.created_at,
    }
    if guest.email is not None:
        user["email"] = guest.email
    if guest.anonymous_id:  # the checkout's browser: its history becomes the guest's
        user["anonymous_id"] = guest.anonymous_id
    return user


@datacue.syncs(Order, "orders")
def order_to_datacue(order: Order) -> dict[str, Any]:
    return {
        "order_id": order.order_id,
        "user_id": order.datacue_user_id,
        "order_status": order.status,
        "cart": cart_lines(
            (line.product_id, line.variant_id, line.quantity, line.unit_price_cents) for line in order.lines
        ),
        "timestamp": order.created_at,
    }


# -- the history, for the importer ---------------------------------------------------------


def shop_records(app: Flask, resource: str) -> Iterator[dict[str, Any]]:
    """The shop's records of a resource, read from its declared models (in an app context)."""
    model_sync = app.extensions["datacue"].extension.model_sync
    declarations = model_sync.for_resource(resource)
    return itertools.chain.from_iterable(model_sync.rows(db.session, each) for each in declarations)


def _import_flag(app: Flask) -> str:
    return f"datacue_imported:{app.config['DATACUE_API_KEY']}"


def needs_import(app: Flask) -> bool:
    """True unless this DataCue account already got the history and holds every product of it."""
    with app.app_context():
        if meta(db.session(), _import_flag(app)) is None:
            return True
        ours = set(db.session.scalars(select(Product.product_id)))
    held = set(app.extensions["datacue"].client.overview.products().ids)
    return not ours <= held


def import_history(
    app: Flask, on_summary: Callable[[ImportSummary], None] | None = None
) -> list[ImportSummary]:
    """Stream categories, products, users and orders into DataCue with cue-front's importer, read
    from the declared models through the same functions as every commit."""
    state = app.extensions["datacue"]
    rejects_folder = Path(app.instance_path)
    summaries = []
    with app.app_context():
        for resource in IMPORT_ORDER:
            importer = Importer(
                state.client, resource, rejects=rejects_folder / f"import-{resource}.rejects.jsonl"
            )
            summary = importer.run(IterableSource(shop_records(app, resource), name=f"demo_store.{resource}"))
            summaries.append(summary)
            if on_summary is not None:
                on_summary(summary)
        if all(summary.ok for summary in summaries):
            session = db.session()
            set_meta(session, _import_flag(app), "yes")
            session.commit()
    return summaries


# -- banners -------------------------------------------------------------------------------


def banner_photo_path(banner_id: str) -> str:
    return f"/media/banners/{banner_id}.svg"


def banners(app: Flask) -> list[dict[str, Any]]:
    """A main and a sub banner per category, in the emulator's registration format."""
    with app.app_context():
        categories = catalog.load_categories()
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
