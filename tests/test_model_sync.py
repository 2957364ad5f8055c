"""Declared model sync: a Flask-SQLAlchemy shop's commits reach DataCue with no client call in its views.

A real shop: SQLite through Flask-SQLAlchemy, cue-front's outbox on disk, the emulator on
loopback. Each test commits as a shop's views would and reads what DataCue received.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey, String, update
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from cue_front import DataCue, ValidationError
from cue_front.emulator import RunningEmulator


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)


class Category(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str]


class Product(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str]
    category_id: Mapped[str] = mapped_column(ForeignKey("category.id"))
    variants: Mapped[list[Variant]] = relationship(back_populates="product", cascade="all, delete-orphan")


class Promotion(db.Model):  # type: ignore[name-defined,misc]
    """A discount some variants take: part of their DataCue price (``depends_on``), a row of its own."""

    id: Mapped[str] = mapped_column(String, primary_key=True)
    discount: Mapped[int]
    variants: Mapped[list[Variant]] = relationship(back_populates="promotion")


class Variant(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[str] = mapped_column(String, primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("product.id"))
    product: Mapped[Product] = relationship(back_populates="variants")
    promotion_id: Mapped[str | None] = mapped_column(ForeignKey("promotion.id"))
    promotion: Mapped[Promotion | None] = relationship(back_populates="variants")
    price: Mapped[int]
    stock: Mapped[int]
    #: Not part of what DataCue is told: changing it sends nothing.
    internal_note: Mapped[str] = mapped_column(default="")


class Customer(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[str] = mapped_column(String, primary_key=True)
    first_name: Mapped[str]
    wishlist: Mapped[list[Wish]] = relationship(back_populates="customer", cascade="all, delete-orphan")


class Wish(db.Model):  # type: ignore[name-defined,misc]
    """A wishlist entry: part of its customer's DataCue user (``depends_on``), a row of its own."""

    id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str] = mapped_column(ForeignKey("customer.id"))
    customer: Mapped[Customer] = relationship(back_populates="wishlist")
    product_id: Mapped[str]


class Order(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[str] = mapped_column(String, primary_key=True)
    customer_id: Mapped[str]
    status: Mapped[str] = mapped_column(default="completed")


def variant_record(variant: Variant) -> dict[str, Any]:
    return {
        "product_id": variant.product_id,
        "variant_id": variant.id,
        "categories": [variant.product.category_id],
        "name": variant.product.name,
        "price": variant.price - (variant.promotion.discount if variant.promotion else 0),
        "full_price": variant.price,
        "stock": variant.stock,
        "photo_url": f"/img/{variant.id}.svg",
        "link": f"/products/{variant.product_id}",
    }


def user_record(customer: Customer) -> dict[str, Any]:
    wishlist = sorted({wish.product_id for wish in customer.wishlist})  # two wishes may name one product
    return {"user_id": customer.id, "first_name": customer.first_name, "wishlist": wishlist}


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator, tmp_path: Any) -> Iterator[Flask]:
    app = make_app(
        DATACUE_DELIVERY="outbox",
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'shop.sqlite3'}",
        **emulator.config,
    )
    db.init_app(app)
    datacue: DataCue = app.extensions["datacue"].extension
    datacue.syncs(Variant, "products", depends_on={Product: "variants", Promotion: "variants"})(
        variant_record
    )
    datacue.syncs(Category, "categories")(
        lambda category: {"category_id": category.id, "name": category.name}
    )
    datacue.syncs(Customer, "users", depends_on={Wish: "customer"})(user_record)
    datacue.syncs(Order, "orders")(
        lambda order: {"order_id": order.id, "user_id": order.customer_id, "order_status": order.status}
    )
    with app.app_context():
        db.create_all()
        yield app
        db.session.remove()


def delivered(shop: Flask) -> None:
    assert shop.extensions["datacue"].delivery.flush(10)


def sent(emulator: RunningEmulator) -> list[tuple[str, str]]:
    """What DataCue received, oldest first: (method, path)."""
    return [(r["method"], r["path"]) for r in reversed(emulator.requests())]


def stock_shop() -> None:
    db.session.add(Category(id="mugs", name="Mugs"))
    product = Product(id="p1", name="Mug", category_id="mugs")
    product.variants = [Variant(id="v1", price=12, stock=5), Variant(id="v2", price=14, stock=3)]
    db.session.add_all([product, Customer(id="u1", first_name="Ana")])
    db.session.commit()


def test_a_commit_creates_what_it_added(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    delivered(shop)
    counts = emulator.overview()
    assert (counts["products"], counts["variants"], counts["categories"], counts["users"]) == (1, 2, 1, 1)
    assert sorted(sent(emulator)) == [
        ("POST", "/v1/categories"),
        ("POST", "/v1/products"),
        ("POST", "/v1/products"),
        ("POST", "/v1/users"),
    ]


def test_changes_are_updated_and_unchanged_output_sends_nothing(
    shop: Flask, emulator: RunningEmulator
) -> None:
    stock_shop()
    delivered(shop)
    emulator.reset()
    variant = db.session.get(Variant, "v1")
    variant.internal_note = "reorder soon"  # not in DataCue's object
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == []
    variant.stock -= 1  # a sale
    db.session.commit()
    delivered(shop)
    (request,) = emulator.requests()
    assert (request["method"], request["path"]) == ("PUT", "/v1/products/p1/v1")
    assert request["body"]["stock"] == 4


def test_a_related_change_sends_every_dependent(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    delivered(shop)
    emulator.reset()
    db.session.get(Product, "p1").name = "Big mug"
    db.session.commit()
    delivered(shop)
    assert sorted(sent(emulator)) == [("PUT", "/v1/products/p1/v1"), ("PUT", "/v1/products/p1/v2")]
    assert {r["body"]["name"] for r in emulator.requests()} == {"Big mug"}


def test_deletes_and_cancellations_are_sent(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    db.session.add(Order(id="o1", customer_id="u1"))
    db.session.commit()
    delivered(shop)
    emulator.reset()
    outbox = shop.extensions["datacue"].outbox
    with sqlite3.connect(outbox.path) as connection:
        (before,) = connection.execute("SELECT MAX(id) FROM outbox").fetchone()
    connection.close()
    db.session.get(Order, "o1").status = "cancelled"
    db.session.commit()
    db.session.delete(db.session.get(Variant, "v2"))
    db.session.commit()
    db.session.delete(db.session.get(Customer, "u1"))
    db.session.commit()
    delivered(shop)
    # Queued in commit order; three entities, so delivered side by side (each in its own order).
    with sqlite3.connect(outbox.path) as connection:
        queued = connection.execute(
            "SELECT method, path FROM outbox WHERE id > ? ORDER BY id", (before,)
        ).fetchall()
    connection.close()
    assert queued == [("PUT", "/orders/o1"), ("DELETE", "/products/p1/v2"), ("DELETE", "/users/u1")]
    assert sorted(sent(emulator)) == [
        ("DELETE", "/v1/products/p1/v2"),
        ("DELETE", "/v1/users/u1"),
        ("PUT", "/v1/orders/o1"),
    ]
    assert emulator.requests(type="orders")[0]["body"] == {"order_status": "cancelled"}


def test_a_cascade_delete_through_the_orm_is_seen(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    delivered(shop)
    emulator.reset()
    db.session.delete(db.session.get(Product, "p1"))  # its variants go by the ORM's cascade
    db.session.commit()
    delivered(shop)
    assert sorted(sent(emulator)) == [("DELETE", "/v1/products/p1/v1"), ("DELETE", "/v1/products/p1/v2")]


def wishing_customer(*product_ids: str) -> Customer:
    """u1 with one wish per product id (w1, w2, ...), committed and delivered."""
    wishes = [Wish(id=f"w{n}", product_id=product_id) for n, product_id in enumerate(product_ids, 1)]
    db.session.add(Customer(id="u1", first_name="Ana", wishlist=wishes))
    db.session.commit()
    return db.session.get(Customer, "u1")


@pytest.mark.parametrize("loaded", [True, False], ids=["collection-loaded", "collection-unloaded"])
def test_a_related_row_deleted_on_its_own_sends_its_dependents(
    shop: Flask, emulator: RunningEmulator, loaded: bool
) -> None:
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    if loaded:
        assert len(customer.wishlist) == 2  # the collection loaded, and holding w1 until told otherwise
    db.session.delete(db.session.get(Wish, "w1"))  # not through the customer
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == [("PUT", "/v1/users/u1")]
    assert emulator.requests()[0]["body"]["wishlist"] == ["p2"]
    assert [wish.id for wish in customer.wishlist] == ["w2"]


def test_a_related_delete_and_a_change_of_its_dependent_send_one_update(
    shop: Flask, emulator: RunningEmulator
) -> None:
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    assert len(customer.wishlist) == 2
    customer.first_name = "Anna"
    db.session.delete(db.session.get(Wish, "w2"))
    db.session.commit()
    delivered(shop)
    (request,) = emulator.requests()
    assert (request["method"], request["path"]) == ("PUT", "/v1/users/u1")
    assert (request["body"]["first_name"], request["body"]["wishlist"]) == ("Anna", ["p1"])


def test_a_related_row_deleted_with_its_dependent_sends_only_the_delete(
    shop: Flask, emulator: RunningEmulator
) -> None:
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    wish = db.session.get(Wish, "w1")
    db.session.delete(customer)  # its wishes go by the cascade
    db.session.delete(wish)  # and this one on its own too, in the same flush
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == [("DELETE", "/v1/users/u1")]


def test_a_deleted_many_to_one_row_sends_its_dependents(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    variant = db.session.get(Variant, "v1")
    variant.promotion = Promotion(id="spring", discount=2)
    db.session.commit()
    delivered(shop)
    assert emulator.requests()[0]["body"]["price"] == 10
    emulator.reset()
    assert variant.promotion is not None  # loaded, and holding the promotion until told otherwise
    db.session.delete(db.session.get(Promotion, "spring"))
    db.session.commit()
    delivered(shop)
    (request,) = emulator.requests()
    assert (request["method"], request["path"], request["body"]["price"]) == ("PUT", "/v1/products/p1/v1", 12)


def test_a_related_row_removed_from_its_collection_sends_its_dependent(
    shop: Flask, emulator: RunningEmulator
) -> None:
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    customer.wishlist.remove(db.session.get(Wish, "w1"))  # an orphan, deleted by the cascade
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == [("PUT", "/v1/users/u1")]
    assert emulator.requests()[0]["body"]["wishlist"] == ["p2"]


def test_a_related_row_deleted_without_changing_the_output_sends_nothing(
    shop: Flask, emulator: RunningEmulator
) -> None:
    customer = wishing_customer("p1", "p2", "p1")
    delivered(shop)
    emulator.reset()
    assert len(customer.wishlist) == 3
    db.session.delete(db.session.get(Wish, "w1"))  # w3 still names p1
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == []


def test_a_related_delete_rolled_back_sends_nothing(shop: Flask, emulator: RunningEmulator) -> None:
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    assert len(customer.wishlist) == 2
    db.session.delete(db.session.get(Wish, "w1"))
    db.session.flush()  # written in the transaction, then taken back
    db.session.rollback()
    db.session.add(Category(id="plates", name="Plates"))
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == [("POST", "/v1/categories")]
    assert sorted(wish.id for wish in customer.wishlist) == ["w1", "w2"]


def test_a_rollback_sends_nothing(shop: Flask, emulator: RunningEmulator) -> None:
    db.session.add(Category(id="bowls", name="Bowls"))
    db.session.flush()  # written in the transaction, then taken back
    db.session.rollback()
    db.session.add(Category(id="plates", name="Plates"))
    db.session.commit()
    delivered(shop)
    assert [r["body"]["category_id"] for r in emulator.requests()] == ["plates"]


def test_a_bad_mapping_fails_the_commit_in_testing(shop: Flask, emulator: RunningEmulator) -> None:
    datacue: DataCue = shop.extensions["datacue"].extension
    datacue.model_sync.declarations.clear()
    datacue.syncs(Category, "categories")(lambda category: {"category_id": category.id})  # no name
    db.session.add(Category(id="bowls", name="Bowls"))
    with pytest.raises(ValidationError, match="name: required field missing"):
        db.session.commit()
    db.session.rollback()
    assert db.session.get(Category, "bowls") is None  # nothing half-done
    assert emulator.requests() == []


def test_bulk_updates_are_unseen_until_resynced(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    delivered(shop)
    emulator.reset()
    db.session.execute(update(Variant).values(stock=0))  # no ORM events for this
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == []
    datacue: DataCue = shop.extensions["datacue"].extension
    assert datacue.resync(Variant) == 2
    assert datacue.resync(Variant) == 0  # nothing changed since
    delivered(shop)
    assert sorted(sent(emulator)) == [("PUT", "/v1/products/p1/v1"), ("PUT", "/v1/products/p1/v2")]
    assert {r["body"]["stock"] for r in emulator.requests()} == {0}


def test_the_import_reads_the_declared_models(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    emulator.reset()
    result = shop.test_cli_runner().invoke(args=["datacue", "import", "products"])
    assert result.exit_code == 0, result.output
    assert "products: 2 sent" in result.output
    assert emulator.overview()["variants"] == 2


def test_reconcile_finds_and_repairs_drift_both_ways(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    db.session.add(Category(id="bowls", name="Bowls"))
    db.session.commit()
    delivered(shop)
    emulator.rest("DELETE", "/categories/bowls")  # lost at DataCue
    emulator.rest("POST", "/categories", {"category_id": "gone", "name": "Gone"})  # deleted in the shop
    runner = shop.test_cli_runner()
    dry = runner.invoke(args=["datacue", "reconcile", "--dry-run", "categories"])
    assert dry.exit_code == 0, dry.output
    assert "categories        2        2                   1                1" in dry.output
    assert "nothing was changed" in dry.output
    assert sorted(shop.extensions["datacue"].client.overview.categories().ids) == ["gone", "mugs"]
    repaired = runner.invoke(args=["datacue", "reconcile", "categories"], input="y\n")
    assert repaired.exit_code == 0, repaired.output
    assert "Create 1 and delete 1 object(s) at DataCue?" in repaired.output
    assert sorted(shop.extensions["datacue"].client.overview.categories().ids) == ["bowls", "mugs"]
    again = runner.invoke(args=["datacue", "reconcile", "--yes"])
    assert "DataCue holds what the shop holds" in again.output


def test_reconcile_resend_repairs_drift_in_content(shop: Flask, emulator: RunningEmulator) -> None:
    stock_shop()
    delivered(shop)
    stale = {**variant_record(db.session.get(Variant, "v1")), "price": 99}
    emulator.rest("POST", "/products", stale)  # a lost price change
    result = shop.test_cli_runner().invoke(args=["datacue", "reconcile", "--resend", "--yes", "products"])
    assert result.exit_code == 0, result.output
    prices = {
        (each["product_id"], each["variant_id"]): each["price"] for each in emulator.state.store.variants()
    }
    assert prices[("p1", "v1")] == 12


@pytest.mark.parametrize("loaded", [False, True], ids=["collection-not-loaded", "collection-loaded"])
def test_a_related_row_added_by_its_foreign_key_sends_its_dependent_with_it(
    shop: Flask, emulator: RunningEmulator, loaded: bool
) -> None:
    """A wish added by setting ``customer_id`` (not through ``customer.wishlist``): the customer's
    DataCue user is sent with it even when the customer's loaded wishlist does not hold it yet."""
    customer = wishing_customer("p1", "p2")
    delivered(shop)
    emulator.reset()
    if loaded:
        assert len(customer.wishlist) == 2
    db.session.add(Wish(id="w3", customer_id="u1", product_id="p3"))
    db.session.commit()
    delivered(shop)
    assert sent(emulator) == [("PUT", "/v1/users/u1")]
    assert emulator.requests()[0]["body"]["wishlist"] == ["p1", "p2", "p3"]
