"""The shop's catalog as the views and DataCue see it: products with their variants, and their URLs.

Rows come from :mod:`demo_store.db`; this room turns them into small frozen
objects and into DataCue's documented shapes (the Create Product record, a
product page's ``product_update``), so every place that tells DataCue about a
product says the same thing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

__all__ = [
    "Category",
    "Product",
    "Variant",
    "category_path",
    "datacue_product",
    "load_categories",
    "load_category",
    "load_product",
    "load_products",
    "money",
    "product_path",
    "product_update",
    "search_products",
]

#: DataCue's variant id for a product sold without colours or sizes.
NO_VARIANTS = "no-variants"
CURRENCY = "USD"


def money(cents: int) -> Decimal:
    """Cents as the exact decimal amount DataCue is sent (``Decimal`` becomes a JSON number)."""
    return Decimal(cents) / 100


def product_path(product_id: str) -> str:
    return f"/p/{product_id}"


def category_path(category_id: str) -> str:
    return f"/c/{category_id}"


def photo_path(product_id: str, colour: str) -> str:
    return f"/media/products/{product_id}/{colour.lower()}.svg"


@dataclass(frozen=True)
class Category:
    category_id: str
    name: str
    tagline: str
    colour: str
    position: int

    @property
    def path(self) -> str:
        return category_path(self.category_id)


@dataclass(frozen=True)
class Variant:
    product_id: str
    variant_id: str
    colour: str
    colour_hex: str
    size: str | None
    stock: int

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


@dataclass(frozen=True)
class Product:
    product_id: str
    category_id: str
    category_name: str
    name: str
    brand: str
    description: str
    rating: int | None
    price_cents: int
    full_price_cents: int
    position: int
    variants: tuple[Variant, ...]

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


_PRODUCT_COLUMNS = (
    "SELECT p.product_id, p.category_id, c.name AS category_name, p.name, p.brand, p.description, p.rating,"
    " p.price_cents, p.full_price_cents, p.position"
    " FROM products p JOIN categories c USING (category_id)"
)


def _variants(connection: sqlite3.Connection, product_ids: list[str]) -> dict[str, list[Variant]]:
    found: dict[str, list[Variant]] = {product_id: [] for product_id in product_ids}
    if not product_ids:
        return found
    marks = ",".join("?" * len(product_ids))
    rows = connection.execute(
        "SELECT product_id, variant_id, colour, colour_hex, size, stock FROM variants"
        f" WHERE product_id IN ({marks}) ORDER BY product_id, position",
        product_ids,
    )
    for row in rows:
        found[row["product_id"]].append(Variant(**dict(row)))
    return found


def _products(connection: sqlite3.Connection, rows: Iterable[sqlite3.Row]) -> list[Product]:
    rows = list(rows)
    variants = _variants(connection, [row["product_id"] for row in rows])
    return [Product(**dict(row), variants=tuple(variants[row["product_id"]])) for row in rows]


def load_categories(connection: sqlite3.Connection) -> list[Category]:
    rows = connection.execute(
        "SELECT category_id, name, tagline, colour, position FROM categories ORDER BY position"
    )
    return [Category(**dict(row)) for row in rows]


def load_category(connection: sqlite3.Connection, category_id: str) -> Category | None:
    row = connection.execute(
        "SELECT category_id, name, tagline, colour, position FROM categories WHERE category_id = ?",
        (category_id,),
    ).fetchone()
    return None if row is None else Category(**dict(row))


def load_product(connection: sqlite3.Connection, product_id: str) -> Product | None:
    found = _products(
        connection, connection.execute(f"{_PRODUCT_COLUMNS} WHERE p.product_id = ?", (product_id,))
    )
    return found[0] if found else None


#: How a category page can be sorted: name -> ORDER BY.
SORTS = {
    "featured": "p.position",
    "price-low": "p.price_cents, p.position",
    "price-high": "p.price_cents DESC, p.position",
    "rating": "p.rating DESC, p.position",
}


def load_products(
    connection: sqlite3.Connection,
    *,
    category_id: str | None = None,
    product_ids: Iterable[str] | None = None,
    sort: str = "featured",
) -> list[Product]:
    """Products of a category, or with the given ids (kept in that order), or all of them."""
    if product_ids is not None:
        wanted = list(dict.fromkeys(product_ids))
        marks = ",".join("?" * len(wanted))
        rows = connection.execute(f"{_PRODUCT_COLUMNS} WHERE p.product_id IN ({marks})", wanted)
        by_id = {product.product_id: product for product in _products(connection, rows)}
        return [by_id[product_id] for product_id in wanted if product_id in by_id]
    order = SORTS.get(sort, SORTS["featured"])
    if category_id is None:
        rows = connection.execute(f"{_PRODUCT_COLUMNS} ORDER BY c.position, {order}")
    else:
        rows = connection.execute(
            f"{_PRODUCT_COLUMNS} WHERE p.category_id = ? ORDER BY {order}", (category_id,)
        )
    return _products(connection, rows)


def search_products(connection: sqlite3.Connection, term: str) -> list[Product]:
    """Products whose name, brand, category or description has every word of ``term``."""
    words = term.lower().split()[:8]
    if not words:
        return []
    clause = " AND ".join(
        "(lower(p.name) LIKE ? ESCAPE '\\' OR lower(p.brand) LIKE ? ESCAPE '\\'"
        " OR lower(c.name) LIKE ? ESCAPE '\\' OR lower(p.description) LIKE ? ESCAPE '\\')"
        for _ in words
    )
    parameters: list[str] = []
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        parameters += [pattern] * 4
    rows = connection.execute(
        f"{_PRODUCT_COLUMNS} WHERE {clause} ORDER BY c.position, p.position", parameters
    )
    return _products(connection, rows)


# -- DataCue's shapes ----------------------------------------------------------------------


def _card_extra(product: Product) -> dict[str, Any]:
    """What a recommendation card shows beyond DataCue's product object (``extra``)."""
    extra: dict[str, Any] = {"full_price": money(product.full_price_cents)}
    if product.rating is not None:
        extra["rating"] = product.rating
    if product.discount_percent:
        extra["discount"] = f"{product.discount_percent}%"
    return extra


def datacue_product(product: Product, variant: Variant) -> dict[str, Any]:
    """One variant as Create Product's record (less the ids, it is Update Product's body too)."""
    record: dict[str, Any] = {
        "product_id": product.product_id,
        "variant_id": variant.variant_id,
        "categories": [product.category_id],
        "name": product.name,
        "brand": product.brand,
        "description": product.description,
        "color": variant.colour,
        "price": money(product.price_cents),
        "full_price": money(product.full_price_cents),
        "available": variant.available,
        "stock": variant.stock,
        "extra": _card_extra(product),
        "photo_url": variant.photo_path,
        "link": product.path,
    }
    if variant.size:
        record["size"] = variant.size
    if product.rating is not None:
        record["rating"] = product.rating
    return record


def datacue_products(products: Iterable[Product]) -> Iterator[dict[str, Any]]:
    for product in products:
        for variant in product.variants:
            yield datacue_product(product, variant)


def product_update(product: Product) -> list[dict[str, Any]]:
    """A product page's ``product_update``: one element per variant, as the guide's table lists them."""
    return [
        {
            "variant_id": variant.variant_id,
            "name": product.name,
            "price": money(product.price_cents),
            "full_price": money(product.full_price_cents),
            "photo_url": variant.photo_path,
            "available": variant.available,
            "stock": variant.stock,
            "category_ids": [product.category_id],
            "brand": product.brand,
        }
        for variant in product.variants
    ]
