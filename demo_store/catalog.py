"""The shop's catalog as the views and DataCue see it: queries for products and categories, and their
DataCue shapes.

The rows are :mod:`demo_store.models` (``Product``, ``Variant``, ``Category``);
this room finds them for the views and turns them into DataCue's documented
shapes (the Create Product record, a product page's ``product_update``), so
every place that tells DataCue about a product says the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import ColumnElement, func, or_, select

from .db import db
from .models import NO_VARIANTS, Category, Product, Variant, category_path, product_path

__all__ = [
    "CURRENCY",
    "NO_VARIANTS",
    "SORTS",
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

CURRENCY: Final = "USD"


def money(cents: int) -> Decimal:
    """Cents as the exact decimal amount DataCue is sent (``Decimal`` becomes a JSON number)."""
    return Decimal(cents) / 100


def load_categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.position)))


def load_category(category_id: str) -> Category | None:
    return db.session.get(Category, category_id)


def load_product(product_id: str) -> Product | None:
    return db.session.get(Product, product_id)


#: The shop's order: by category, then by the product's place in it.
_SHOP_ORDER: Final = (Category.position, Product.position)

#: How a category page can be sorted: name -> ORDER BY.
SORTS: Final[dict[str, tuple[ColumnElement[Any], ...]]] = {
    "featured": (Product.position.asc(),),
    "price-low": (Product.price_cents.asc(), Product.position.asc()),
    "price-high": (Product.price_cents.desc(), Product.position.asc()),
    "rating": (Product.rating.desc(), Product.position.asc()),
}


def load_products(
    *, category_id: str | None = None, product_ids: Iterable[str] | None = None, sort: str = "featured"
) -> list[Product]:
    """Products of a category, or with the given ids (kept in that order), or all of them."""
    if product_ids is not None:
        wanted = list(dict.fromkeys(product_ids))
        found = db.session.scalars(select(Product).where(Product.product_id.in_(wanted)))
        by_id = {product.product_id: product for product in found}
        return [by_id[product_id] for product_id in wanted if product_id in by_id]
    if category_id is None:
        return list(db.session.scalars(select(Product).join(Product.category).order_by(*_SHOP_ORDER)))
    query = select(Product).where(Product.category_id == category_id)
    return list(db.session.scalars(query.order_by(*SORTS.get(sort, SORTS["featured"]))))


def search_products(term: str) -> list[Product]:
    """Products whose name, brand, category or description has every word of ``term``."""
    words = term.lower().split()[:8]
    if not words:
        return []
    fields = (Product.name, Product.brand, Category.name, Product.description)
    clauses = []
    for word in words:
        pattern = "%" + word.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        clauses.append(or_(*(func.lower(field).like(pattern, escape="\\") for field in fields)))
    query = select(Product).join(Product.category).where(*clauses).order_by(*_SHOP_ORDER)
    return list(db.session.scalars(query))


# -- DataCue's shapes ----------------------------------------------------------------------


def _card_extra(product: Product) -> dict[str, Any]:
    """What a recommendation card shows beyond DataCue's product object (``extra``)."""
    extra: dict[str, Any] = {"full_price": money(product.full_price_cents)}
    if product.rating is not None:
        extra["rating"] = product.rating
    if product.discount_percent:
        extra["discount"] = f"{product.discount_percent}%"
    return extra


def datacue_product(variant: Variant) -> dict[str, Any]:
    """One variant as Create Product's record (less the ids, it is Update Product's body too)."""
    product = variant.product
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
