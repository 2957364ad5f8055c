"""The pieces hostile strings are made of, and every page type with such a string in every field."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

HOSTILE_PIECES = [
    "</script>",
    "</SCRIPT >",
    "</script\t",
    "<script>",
    "<!--",
    "-->",
    "<![CDATA[",
    "]]>",
    "'",
    '"',
    "\\",
    "&",
    "&lt;",
    "<",
    ">",
    "/",
    "\u2028",
    "\u2029",
    "\x00",
    "\r\n",
    "\U0001f600",
    "\ufeff",
    "${alert(1)}",
    "`",
    "<img src=x onerror=alert(1)>",
]


def pages(text: Callable[[], str]) -> list[tuple[str, dict[str, Any]]]:
    """Every page type with a hostile string in every string field."""
    variant = {
        "variant_id": text(),
        "name": text(),
        "photo_url": text(),
        "brand": text(),
        "category_ids": [text(), text()],
        "price": 1.5,
    }
    line = {"product_id": text(), "variant_id": text(), "quantity": 1, "unit_price": 2, "currency": text()}
    return [
        ("home", {}),
        ("product", {"product_id": text(), "product_update": [variant]}),
        ("category", {"category_id": text(), "category_update": {"name": text(), "link": text()}}),
        ("search", {"term": text()}),
        ("cart", {}),
        ("404", {}),
        ("order confirmation", {"order_id": text(), "order_details": {"cart": [line]}}),
    ]
