"""The shop's tables as SQLAlchemy models, what the views and templates read of them, and upgrades.

Categories, products and their variants; customers (the accounts, Flask-Login's
users) with their wishlists; guests (a guest checkout's DataCue user); orders
and their lines; and ``meta``. :mod:`demo_store.integration` declares which of
them DataCue is told about, and how. :func:`upgrade` brings a database made by
an earlier version of the demo up to these models.
"""

from __future__ import annotations

from typing import Final

from flask_login import UserMixin
from sqlalchemy import (
    CheckConstraint,
    Connection,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from .db import Base

__all__ = [
    "NO_VARIANTS",
    "PROFILE_FIELDS",
    "Category",
    "Customer",
    "Guest",
    "Meta",
    "Order",
    "OrderLine",
    "Product",
    "Variant",
    "WishlistItem",
    "category_path",
    "meta",
    "photo_path",
    "product_path",
    "set_meta",
    "upgrade",
]

#: DataCue's variant id for a product sold without colours or sizes.
NO_VARIANTS: Final = "no-variants"
#: The customer columns DataCue's ``profile`` object carries.
PROFILE_FIELDS: Final = ("sex", "location", "segment")


def product_path(product_id: str) -> str:
    return f"/p/{product_id}"


def category_path(category_id: str) -> str:
    return f"/c/{category_id}"


def photo_path(product_id: str, colour: str) -> str:
    return f"/media/products/{product_id}/{colour.lower()}.svg"


class Meta(Base):
    """Facts about the database itself: when it was seeded, which DataCue account got its history."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String, primary_key=True)
    value: Mapped[str]


def meta(session: Session, key: str) -> str | None:
    found = session.get(Meta, key)
    return None if found is None else found.value


def set_meta(session: Session, key: str, value: str) -> None:
    session.merge(Meta(key=key, value=value))


class Category(Base):
    __tablename__ = "categories"
    category_id: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str]
    tagline: Mapped[str]
    colour: Mapped[str]
    position: Mapped[int]

    @property
    def path(self) -> str:
        return category_path(self.category_id)


class Product(Base):
    """A product; its price is the same in every colour and size (its variants)."""

    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("rating BETWEEN 0 AND 100"),
        CheckConstraint("price_cents >= 0"),
        CheckConstraint("full_price_cents >= price_cents"),
        Index("products_by_category", "category_id", "position"),
    )
    product_id: Mapped[str] = mapped_column(String, primary_key=True)
    category_id: Mapped[str] = mapped_column(ForeignKey("categories.category_id"))
    name: Mapped[str]
    brand: Mapped[str]
    description: Mapped[str]
    rating: Mapped[int | None]
    price_cents: Mapped[int]
    full_price_cents: Mapped[int]
    position: Mapped[int]
    #: What the product is, for its picture (``svg.DRAWINGS``): "saucepan", "sneaker"...
    kind: Mapped[str | None] = mapped_column(String)

    category: Mapped[Category] = relationship(lazy="joined", innerjoin=True)
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.position", lazy="selectin"
    )

    @property
    def category_name(self) -> str:
        return self.category.name

    @property
    def path(self) -> str:
        return product_path(self.product_id)

    @property
    def has_variants(self) -> bool:
        return self.variants[0].variant_id != NO_VARIANTS

    @property
    def in_stock(self) -> bool:
        return any(variant.available for variant in self.variants)

    @property
    def stock(self) -> int:
        return sum(variant.stock for variant in self.variants)

    @property
    def discount_percent(self) -> int:
        if self.price_cents >= self.full_price_cents:
            return 0
        return round(100 - self.price_cents * 100 / self.full_price_cents)

    @property
    def colours(self) -> list[Variant]:
        """One variant per colour, in the shop's order (for swatches)."""
        seen: dict[str, Variant] = {}
        for variant in self.variants:
            seen.setdefault(variant.colour, variant)
        return list(seen.values())

    @property
    def photo_path(self) -> str:
        available = [variant for variant in self.variants if variant.available]
        return (available or list(self.variants))[0].photo_path

    def variant(self, variant_id: str | None) -> Variant | None:
        return next((v for v in self.variants if v.variant_id == variant_id), None)


class Variant(Base):
    """One colour and size of a product (a product without them has one, ``no-variants``, as DataCue asks)."""

    __tablename__ = "variants"
    __table_args__ = (CheckConstraint("stock >= 0"),)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), primary_key=True)
    variant_id: Mapped[str] = mapped_column(String, primary_key=True)
    colour: Mapped[str]
    colour_hex: Mapped[str]
    size: Mapped[str | None]
    stock: Mapped[int]
    position: Mapped[int]

    product: Mapped[Product] = relationship(back_populates="variants")

    @property
    def available(self) -> bool:
        return self.stock > 0

    @property
    def label(self) -> str:
        """What a customer picks: ``Navy / M``, or the colour alone for single items."""
        return f"{self.colour} / {self.size}" if self.size else self.colour

    @property
    def photo_path(self) -> str:
        return photo_path(self.product_id, self.colour)


class Customer(UserMixin, Base):  # type: ignore[misc]  # Flask-Login ships no types
    """A customer with an account: Flask-Login's user (``current_user``), and a DataCue user.

    Flask-Login keeps their ``user_id`` in the session; it is their DataCue ``user_id`` too
    (cue-front reads ``current_user.get_id()``). The customers of the seeded history have no
    password and cannot log in.
    """

    __tablename__ = "users"
    # Declared models may carry attributes that are not columns (anonymous_id below).
    __allow_unmapped__ = True

    user_id: Mapped[str] = mapped_column(String, primary_key=True)
    email: Mapped[str] = mapped_column(String(collation="NOCASE"), unique=True)
    first_name: Mapped[str]
    last_name: Mapped[str]
    password_hash: Mapped[str | None]
    sex: Mapped[str | None]
    location: Mapped[str | None]
    segment: Mapped[str | None]
    created_at: Mapped[str]

    wishlist: Mapped[list[WishlistItem]] = relationship(
        back_populates="customer",
        order_by="WishlistItem.added_at",
        cascade="all, delete-orphan",
        lazy="selectin",
    )

    #: The browser that made this account, in the request that made it; never stored. DataCue's
    #: Create User then joins that browser's history to the new user.
    anonymous_id: str | None = None

    def get_id(self) -> str:
        return self.user_id

    @property
    def profile(self) -> dict[str, str]:
        """DataCue's ``profile``: the customer's sex, location and segment, those they have."""
        return {name: value for name in PROFILE_FIELDS if (value := getattr(self, name))}


class WishlistItem(Base):
    __tablename__ = "wishlist"
    user_id: Mapped[str] = mapped_column(ForeignKey("users.user_id"), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), primary_key=True)
    variant_id: Mapped[str | None]
    added_at: Mapped[str]

    customer: Mapped[Customer] = relationship(back_populates="wishlist")


class Guest(Base):
    """The DataCue user of a guest checkout: a shopper with no account.

    Known by the email of their first checkout, as DataCue's guide says; or, when that email
    already named a shopper (an account's, or an earlier guest's), by ``guest-<order_id>``,
    without the email, which is anyone's to type into a checkout form (see basket.py).
    """

    __tablename__ = "guests"
    __allow_unmapped__ = True

    user_id: Mapped[str] = mapped_column(String, primary_key=True)
    #: The email DataCue is told: ``None`` for a guest known by ``guest-<order_id>``.
    email: Mapped[str | None] = mapped_column(String(collation="NOCASE"))
    first_name: Mapped[str]
    created_at: Mapped[str]

    #: The browser that checked out, in that request only; never stored (see Customer.anonymous_id).
    anonymous_id: str | None = None


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint("status IN ('completed', 'cancelled')"),
        Index("orders_by_user", "user_id", "number"),
        {"sqlite_autoincrement": True},
    )
    number: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[str] = mapped_column(String, unique=True)
    #: ``None`` for a guest checkout.
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.user_id"))
    #: A guest checkout whose email already named a shopper: its guest's ``guest-<order_id>``.
    guest_id: Mapped[str | None]
    email: Mapped[str]
    name: Mapped[str]
    address: Mapped[str]
    status: Mapped[str]
    created_at: Mapped[str]

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", order_by="OrderLine.product_id", cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def datacue_user_id(self) -> str:
        """The DataCue ``user_id`` the order is recorded under: its customer's; for a guest, their
        guest id when they have one, else their email (the guide's way)."""
        return self.user_id or self.guest_id or self.email

    @property
    def total_cents(self) -> int:
        return sum(line.total_cents for line in self.lines)

    @property
    def items(self) -> int:
        return sum(line.quantity for line in self.lines)


class OrderLine(Base):
    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0"),
        ForeignKeyConstraint(["product_id", "variant_id"], ["variants.product_id", "variants.variant_id"]),
    )
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), primary_key=True)
    product_id: Mapped[str] = mapped_column(String, primary_key=True)
    variant_id: Mapped[str] = mapped_column(String, primary_key=True)
    quantity: Mapped[int]
    unit_price_cents: Mapped[int]

    order: Mapped[Order] = relationship(back_populates="lines")
    variant: Mapped[Variant] = relationship(lazy="joined", innerjoin=True)

    @property
    def total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


# -- databases of earlier demos ----------------------------------------------------------------

#: Columns that came after the first databases were made: :func:`upgrade` adds them to those.
ADDED_COLUMNS: Final = {("orders", "guest_id"): "TEXT", ("products", "kind"): "TEXT"}


def upgrade(connection: Connection, kinds: dict[str, str], *, guests_were_missing: bool) -> None:
    """Bring a database made by an earlier version of the demo up to these models (whose tables
    exist: ``create_all`` made those it lacked). ``kinds`` names each product's kind by its name;
    ``guests_were_missing`` says the guests table was just made, to be filled from the orders."""
    inspector = inspect(connection)
    for (table, column), definition in ADDED_COLUMNS.items():
        if column not in {found["name"] for found in inspector.get_columns(table)}:
            connection.exec_driver_sql(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    unnamed = connection.execute(select(Product.product_id, Product.name).where(Product.kind.is_(None)))
    for product_id, name in unnamed.all():
        if name in kinds:
            connection.execute(
                update(Product).where(Product.product_id == product_id).values(kind=kinds[name])
            )
    if not guests_were_missing:
        return
    # Guests came with the move to declared sync: an earlier demo's guest checkouts become guests.
    connection.execute(
        text(
            "INSERT OR IGNORE INTO guests (user_id, email, first_name, created_at)"
            " SELECT coalesce(guest_id, email), CASE WHEN guest_id IS NULL THEN email END,"
            " substr(min(name) || ' ', 1, instr(min(name) || ' ', ' ') - 1), min(created_at)"
            " FROM orders WHERE user_id IS NULL GROUP BY coalesce(guest_id, email)"
        )
    )
