"""Objects DataCue accepts, used by more than one test module: the guide's events and a product."""

from __future__ import annotations

#: The cart in the examples of DataCue's guide.
GUIDE_CART = [
    {"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"},
    {"product_id": "p2", "variant_id": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"},
]

#: Every event of DataCue's guide, as the guide writes it.
DOCUMENTED_EVENTS = [
    {"type": "pageview", "subtype": "home"},
    {"type": "pageview", "subtype": "product", "product_id": "p1", "variant_id": "v1"},
    {"type": "pageview", "subtype": "category", "category_name": "living-room"},
    {"type": "search", "term": "tables"},
    {"type": "cart", "subtype": "update", "cart": GUIDE_CART, "cart_link": "https://myshop.com/cart/123"},
    {"type": "cart", "subtype": "update", "cart": [], "cart_link": "/cart"},  # a cleared cart
    {"type": "wishlist", "subtype": "add", "product_id": "p1", "variant_id": "v2"},
    {"type": "wishlist", "subtype": "remove", "product_id": "p1"},
    {"type": "checkout", "subtype": "started", "cart": GUIDE_CART, "cart_link": "/cart"},
    {"type": "login"},
    {"type": "click", "subtype": "banner", "banner_id": "b1"},
    {"type": "click", "subtype": "related", "product_id": "p2"},
    {"type": "click", "subtype": "similar", "product_id": "p2"},
    {"type": "click", "subtype": "recent", "product_id": "p2"},
]

# The guide's samples that break the guide's own tables (taken with a warning, see schema.FieldWarning).
GUIDE_BANNER_CLICK = {"type": "click", "subtype": "banner", "banner_id": "b1", "category_id": "c1"}
GUIDE_PRODUCT_CLICK = {"type": "click", "subtype": "product", "product_id": "p2"}
GUIDE_CHECKOUT = {
    "type": "checkout",
    "subtype": "started",
    "cart": [
        {"product_id": "p1", "variant": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"},
        {"product_id": "p2", "variant": "v2", "quantity": 3, "unit_price": 39, "currency": "USD"},
    ],
    "cart_link": "https://myshop.com/cart/123",
}
#: The items of the guide's Create/Update Users batch sample: no first_name.
GUIDE_BATCH_USERS = [{"user_id": "u1", "email": "u1@abc.com"}, {"user_id": "u2", "email": "u2@abc.com"}]

#: A product as a shop sends it.
PRODUCT = {
    "product_id": "p1",
    "variant_id": "v1",
    "categories": ["sofas"],
    "name": "Soft Sofa",
    "price": 299,
    "full_price": 349,
    "stock": 3,
    "photo_url": "/img/p1.svg",
    "link": "/products/p1",
}
