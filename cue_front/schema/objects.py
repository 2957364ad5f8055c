"""DataCue's documented objects (the guide's tables) as specs: pages, events, and the REST resources.

Where the guide contradicts itself, a comment beginning "Guide:" says which side is taken.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Final

from .engine import Field, Object, Tagged, optional, required, table_required, unlisted
from .values import Boolean, FreeObject, Id, Integer, ListOf, Number, String, Timestamp

__all__ = [
    "ANSWERED_EVENTS",
    "BATCH_LIMIT",
    "CART_ITEM",
    "CATEGORY",
    "CATEGORY_CHANGES",
    "CATEGORY_KEY",
    "CATEGORY_UPDATE",
    "EVENT",
    "EVENT_CONTEXT",
    "EVENT_ENVELOPE",
    "EVENT_USER",
    "MAX_QUANTITY",
    "ORDER",
    "ORDER_DETAILS",
    "ORDER_KEY",
    "ORDER_STATUSES",
    "ORDER_STATUS_CHANGE",
    "ORDER_STATUS_ITEM",
    "PAGE_CONFIG",
    "PAGE_TYPES",
    "PRODUCT",
    "PRODUCT_CHANGES",
    "PRODUCT_KEY",
    "PRODUCT_UPDATE_VARIANT",
    "USER",
    "USER_CHANGES",
    "USER_KEY",
    "batch_of",
]

#: DataCue accepts at most this many items in one batch request.
BATCH_LIMIT: Final = 500
#: The most of one variant a cart or an order line may hold: more is a typo or an attack.
MAX_QUANTITY: Final = 1_000_000

_ID = Id()
_TEXT = String()
_MONEY = Number(minimum=0)

#: A line of a cart or an order ("cart items" and "cart object" tables).
CART_ITEM = Object(
    {
        "product_id": required(_ID),
        "variant_id": required(_ID),
        "unit_price": required(_MONEY),
        "quantity": required(Integer(minimum=1, maximum=MAX_QUANTITY)),
        # Guide: the cart items tables omit currency, but the cart update table describes
        # the cart as "product, variant, unit price, quantity and currency" and every
        # sample sends it, so it is accepted as optional.
        "currency": optional(String(non_empty=True)),
    }
)

#: An element of a product page's ``product_update`` list: one variant.
#: The guide's table gives no "Required" column; only ``variant_id`` is needed to
#: say which variant (``"no-variants"`` for a product without variants).
PRODUCT_UPDATE_VARIANT = Object(
    {
        "variant_id": required(_ID),
        "name": optional(_TEXT),
        "price": optional(_MONEY),
        "full_price": optional(_MONEY),
        "photo_url": optional(_TEXT),
        "available": optional(Boolean()),
        "stock": optional(Integer()),
        "category_ids": optional(ListOf(_ID)),
        "brand": optional(_TEXT),
    }
)

#: A category page's optional ``category_update``.
CATEGORY_UPDATE = Object({"name": optional(_TEXT), "link": optional(_TEXT)})

ORDER_STATUSES: Final = ("completed", "cancelled")
_ORDER_STATUS = String(choices=ORDER_STATUSES)

#: The ``order_details`` of an order confirmation page ("order details object" table).
ORDER_DETAILS = Object(
    {
        "order_status": optional(_ORDER_STATUS, default="completed"),
        "cart": required(ListOf(CART_ITEM, min_items=1)),
        "timestamp": optional(Timestamp()),
    }
)

#: The documented page types, in the guide's order.
PAGE_TYPES: Final = ("home", "product", "category", "cart", "search", "order confirmation", "404")

_CONFIG_COMMON: dict[str, Field] = {
    "api_key": required(String(non_empty=True)),
    # Guide: "Yes (if logged in)": the member is always present, null when anonymous.
    "user_id": required(_ID, nullable=True),
    "page_type": required(String(choices=PAGE_TYPES)),
}


def _config(**fields: Field) -> Object:
    return Object({**_CONFIG_COMMON, **fields})


#: ``window.datacueConfig`` for each page type ("The config object" table).
PAGE_CONFIG = Tagged(
    tags=("page_type",),
    name="page type",
    variants={
        ("home",): _config(),
        ("product",): _config(
            product_id=required(_ID),
            product_update=optional(ListOf(PRODUCT_UPDATE_VARIANT, min_items=1)),
        ),
        ("category",): _config(
            category_id=required(_ID),
            category_update=optional(CATEGORY_UPDATE),
        ),
        ("cart",): _config(),
        ("search",): _config(term=required(_TEXT)),
        # order_id and order_details are optional: the "Backend (recommended)" form sends neither.
        ("order confirmation",): Object(
            {
                **_CONFIG_COMMON,
                "order_id": optional(_ID),
                "order_details": optional(ORDER_DETAILS),
            },
            dependencies={"order_details": ("order_id",)},
        ),
        ("404",): _config(),
    },
)

# -- events --------------------------------------------------------------------------------


_EventVariant = tuple[tuple[str | None, ...], Object]


def _event(type_: str, subtype: str | None, **fields: Field) -> _EventVariant:
    members: dict[str, Field] = {"type": required(String(choices=(type_,)))}
    if subtype is not None:
        members["subtype"] = required(String(choices=(subtype,)))
    members.update(fields)
    return (type_, subtype), Object(members)


def _sample_subtype(variant: _EventVariant, table_says: str) -> _EventVariant:
    """An event variant whose subtype only a sample of the guide uses: taken with a warning."""
    key, event = variant
    return key, event.extend(subtype=replace(event.fields["subtype"], unlisted=table_says))


_CART_EVENT_FIELDS = {"cart": required(ListOf(CART_ITEM)), "cart_link": required(_TEXT)}
_PRODUCT_REF = {"product_id": required(_ID), "variant_id": optional(_ID)}

# Guide: the checkout sample writes "variant" in its cart where the cart tables say variant_id.
# Taken (DataCue takes what its own sample sends) with a warning; a line needs one of the two.
_CHECKOUT_CART_ITEM = Object(
    {
        **CART_ITEM.fields,
        "variant_id": optional(_ID),
        "variant": unlisted(_ID, "the guide's table says variant_id"),
    },
    at_least_one=(("variant_id", "variant"),),
)

#: Every documented storefront event, tagged by ``(type, subtype)``.
EVENT = Tagged(
    tags=("type", "subtype"),
    name="event",
    variants=dict(
        [
            _event("pageview", "home"),
            _event("pageview", "product", **_PRODUCT_REF),
            _event("pageview", "category", category_name=required(_TEXT)),
            _event("search", None, term=required(_TEXT)),
            _event("cart", "update", **_CART_EVENT_FIELDS),
            _event("wishlist", "add", **_PRODUCT_REF),
            _event("wishlist", "remove", **_PRODUCT_REF),
            _event(
                "checkout",
                "started",
                cart=required(ListOf(_CHECKOUT_CART_ITEM)),
                cart_link=_CART_EVENT_FIELDS["cart_link"],
            ),
            _event("login", None),
            # Guide: the banner click sample also sends category_id, which the table does
            # not list: taken, as the sample sends it, with a warning.
            _event(
                "click",
                "banner",
                banner_id=required(_ID),
                category_id=unlisted(_ID, "the guide's table lists only type, subtype and banner_id"),
            ),
            _event("click", "related", product_id=required(_ID)),
            _event("click", "similar", product_id=required(_ID)),
            _event("click", "recent", product_id=required(_ID)),
            # Guide: the product click sample uses subtype 'product'; the table says 'related',
            # 'similar' or 'recent' (the widget that was clicked). Taken, as the sample sends it,
            # with a warning.
            _sample_subtype(
                _event("click", "product", product_id=required(_ID)),
                "the guide's table says 'related', 'similar' or 'recent'",
            ),
        ]
    ),
)

#: The events DataCue answers with recommendations (the guide's "Response JSON fields"),
#: as ``(type, subtype)``: the server sends these at once and keeps the answer.
ANSWERED_EVENTS: Final = frozenset({("pageview", "home"), ("pageview", "product"), ("search", None)})

#: The ``user`` member of an event envelope ("User" table).
EVENT_USER = Object(
    {
        "user_id": optional(_ID, nullable=True),
        "anonymous_id": optional(_ID, nullable=True),
        "profile": optional(FreeObject()),
    },
    at_least_one=(("user_id", "anonymous_id"),),
)

EVENT_CONTEXT = Object({"ip": optional(_TEXT), "user_agent": optional(_TEXT)})

#: A whole request to the events API ("Sending other events" table).
EVENT_ENVELOPE = Object(
    {
        "user": required(EVENT_USER),
        "event": required(EVENT),
        "context": optional(EVENT_CONTEXT),
        "timestamp": optional(Timestamp()),
    }
)

# -- backend (REST) objects ----------------------------------------------------------------

#: Create Product ("Request JSON fields" table).
#: Guide: the Batch section's preface sketches "a product create payload" with category_1 and
#: without name, categories, full_price or stock. It illustrates the batch wrapper (as the
#: Authentication sample illustrates signing), in an older shape (category_1 is what the answers'
#: products carry); every Create Product and batch sample sends the table. The table wins here.
PRODUCT = Object(
    {
        "product_id": required(_ID),
        # "if you only use product SKUs set this to a constant such as 'no-variants'"
        "variant_id": required(_ID),
        "categories": required(ListOf(_ID)),
        "name": required(_TEXT),
        "brand": optional(_TEXT),
        "description": optional(_TEXT),
        "color": optional(_TEXT),
        "size": optional(_TEXT),
        "price": required(_MONEY),
        "full_price": required(_MONEY),
        "available": optional(Boolean()),
        "stock": required(Integer()),
        "rating": optional(Integer(minimum=0, maximum=100)),
        "extra": optional(FreeObject()),
        "photo_url": required(_TEXT),
        "link": required(_TEXT),
        "owner_id": optional(_ID),
    }
)
#: Update Product: "Same as for Create Product, except product_id and variant_id".
PRODUCT_CHANGES = PRODUCT.without("product_id", "variant_id")

CATEGORY = Object({"category_id": required(_ID), "name": required(_TEXT), "link": optional(_TEXT)})
CATEGORY_CHANGES = CATEGORY.without("category_id")

# Guide: the Authentication sample posts a user with "name" and no user_id; it illustrates
# signing, not a user, so user_id stays required and "name" unknown.
USER = Object(
    {
        "user_id": required(_ID),
        "anonymous_id": optional(_ID),
        # Guide: "Yes, if using email marketing"; optional as far as the API is concerned.
        "email": optional(_TEXT),
        "title": optional(_TEXT),
        # Guide: the table says required; the Create/Update Users batch samples (Python, PHP,
        # Node) send only user_id and email. Taken with a warning, as DataCue takes its samples.
        "first_name": table_required(_TEXT),
        "last_name": optional(_TEXT),
        "profile": optional(FreeObject()),
        "email_subscriber": optional(Boolean()),
        "guest_account": optional(Boolean()),
        "wishlist": optional(ListOf(_ID)),
        "timestamp": optional(Timestamp()),
    }
)
# Guide: the Update User Python sample repeats user_id in the body; the text says "Same as for
# Create User, except user_id". Taken with a warning, as the sample sends it, when it names the
# path's user (``Resource.repeated_id_errors``).
USER_CHANGES = USER.without("user_id").extend(
    user_id=unlisted(_ID, "the guide's table leaves it out of an update")
)

ORDER = Object(
    {
        "order_id": required(_ID),
        "user_id": required(_ID),
        "order_status": optional(_ORDER_STATUS, default="completed"),
        "cart": optional(ListOf(CART_ITEM)),
        "timestamp": optional(Timestamp()),
    }
)
ORDER_STATUS_CHANGE = Object({"order_status": required(_ORDER_STATUS)})

# The bodies of the batch delete endpoints: "only require an id field".
PRODUCT_KEY = Object({"product_id": required(_ID), "variant_id": required(_ID)})
CATEGORY_KEY = Object({"category_id": required(_ID)})
USER_KEY = Object({"user_id": required(_ID)})
ORDER_KEY = Object({"order_id": required(_ID)})
#: An item of a batch order status change (the official client's batchCancel, which the guide does
#: not document): which order, and its new status.
ORDER_STATUS_ITEM = ORDER_KEY.extend(**ORDER_STATUS_CHANGE.fields)


def batch_of(item: Object) -> Object:
    """The ``{"batch": [...]}`` wrapper of the batch endpoints: 1 to 500 items."""
    return Object({"batch": required(ListOf(item, min_items=1, max_items=BATCH_LIMIT))})

