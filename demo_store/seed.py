"""The demo shop's data, generated: catalog, customers and a history of past orders.

Everything comes from one ``random.Random(seed)``, so a seed gives the same shop
every time (only the dates move with ``now``). The catalog has 48 products in 6
categories, each of a kind its picture shows (a saucepan, a sneaker); the 24
clothing and footwear products come in colours and sizes, the rest are single
items (DataCue's ``no-variants``). Some variants are out of stock and two
products are sold out entirely; about a third are discounted. The history's
customers are 27 accounts (3 that log in) and 12 guests, who checked out once
each without an account.

The order history is what makes recommendations meaningful from the first page:
each customer has two favourite categories, and products have natural partners
(a parka is often bought with a sweater, a skillet with a board), so DataCue's
"bought together" and best-seller lists have a shape a visitor recognises.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final

from sqlalchemy import Connection, func, insert, inspect, select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from . import db
from .db import Base
from .models import Category as CategoryRow
from .models import Customer, Guest, Meta, Order, OrderLine, Product, Variant, WishlistItem, upgrade

__all__ = [
    "CATEGORIES",
    "DEMO_ACCOUNTS",
    "DEMO_PASSWORD",
    "KINDS",
    "SeedSummary",
    "ensure_database",
    "seed",
    "timestamp",
]

#: Every demo account logs in with this password.
DEMO_PASSWORD: Final = "demo"


@dataclass(frozen=True)
class Category:
    category_id: str
    name: str
    tagline: str
    colour: str
    #: Each product's name and kind (what it is: its picture, see svg.DRAWINGS).
    products: tuple[tuple[str, str], ...]
    #: Sizes its products come in, or () for single items.
    sizes: tuple[str, ...]
    price_range: tuple[int, int]
    materials: tuple[str, ...]
    features: tuple[str, ...]


CATEGORIES: Final = (
    Category(
        "outerwear",
        "Outerwear",
        "Coats and jackets for every kind of weather",
        "#27406b",
        (
            ("Alpine Parka", "parka"),
            ("Harbour Raincoat", "raincoat"),
            ("Quilted Liner Jacket", "quilted-jacket"),
            ("Wool Overcoat", "overcoat"),
            ("Field Jacket", "field-jacket"),
            ("Trail Shell", "shell-jacket"),
            ("Down Gilet", "gilet"),
            ("Canvas Chore Coat", "chore-coat"),
        ),
        ("S", "M", "L", "XL"),
        (120, 320),
        ("recycled nylon", "waxed cotton", "boiled wool", "ripstop polyester"),
        (
            "A hood that stows in the collar.",
            "Taped seams keep the rain out.",
            "Two-way zip and deep hand pockets.",
            "Warm without the bulk.",
            "Cut long enough to cover a blazer.",
        ),
    ),
    Category(
        "knitwear",
        "Knitwear",
        "Soft layers, knitted to last",
        "#7a2735",
        (
            ("Merino Crew Sweater", "crew-sweater"),
            ("Cable Knit Cardigan", "cardigan"),
            ("Fisherman Roll Neck", "roll-neck"),
            ("Lambswool V-Neck", "v-neck"),
            ("Alpaca Hoodie", "hoodie"),
            ("Ribbed Mock Neck", "mock-neck"),
            ("Breton Cotton Sweater", "breton-sweater"),
            ("Fair Isle Pullover", "fair-isle"),
        ),
        ("S", "M", "L", "XL"),
        (60, 180),
        ("extra-fine merino", "undyed alpaca", "Scottish lambswool", "organic cotton"),
        (
            "Ribbed cuffs that keep their shape.",
            "Knitted in one piece: no side seams.",
            "Pills less than ordinary wool.",
            "Relaxed through the body.",
            "Hand-wash cold, dry flat.",
        ),
    ),
    Category(
        "footwear",
        "Footwear",
        "Boots and shoes made for walking",
        "#6b4a2f",
        (
            ("Leather Chelsea Boots", "chelsea-boot"),
            ("Trail Running Shoes", "running-shoe"),
            ("Canvas Sneakers", "sneaker"),
            ("Suede Desert Boots", "desert-boot"),
            ("Ridge Hiking Boots", "hiking-boot"),
            ("Felted Wool Slippers", "slipper"),
            ("Penny Loafers", "loafer"),
            ("Tall Rain Boots", "rain-boot"),
        ),
        ("40", "41", "42", "43", "44"),
        (80, 220),
        ("full-grain leather", "water-repellent suede", "organic canvas", "natural rubber"),
        (
            "Resoleable Goodyear welt.",
            "Cushioned cork footbed.",
            "Grippy lugged outsole.",
            "Runs true to size.",
            "Breaks in within a week.",
        ),
    ),
    Category(
        "bags",
        "Bags",
        "Carry everything, beautifully",
        "#2f5d46",
        (
            ("Waxed Canvas Backpack", "backpack"),
            ("Leather Tote", "tote"),
            ("Weekender Duffel", "duffel"),
            ("Roll-Top Messenger", "messenger"),
            ("Crossbody Pouch", "pouch"),
            ("Padded Laptop Sleeve", "laptop-sleeve"),
            ("Market Basket", "basket"),
            ("Hip Pack", "hip-pack"),
        ),
        (),
        (40, 190),
        ("waxed canvas", "vegetable-tanned leather", "recycled sailcloth", "woven seagrass"),
        (
            "Fits a 15-inch laptop.",
            "Brass hardware that ages well.",
            "A hidden pocket for a passport.",
            "Padded, adjustable strap.",
            "Wipe clean with a damp cloth.",
        ),
    ),
    Category(
        "home",
        "Home",
        "Quiet things for calm rooms",
        "#b5542c",
        (
            ("Ceramic Table Lamp", "lamp"),
            ("Linen Cushion Cover", "cushion"),
            ("Wool Throw Blanket", "throw"),
            ("Soy Wax Candle", "candle"),
            ("Oak Picture Frame", "frame"),
            ("Jute Doormat", "doormat"),
            ("Stoneware Vase", "vase"),
            ("Cotton Bath Towel", "towel"),
        ),
        (),
        (18, 120),
        ("stonewashed linen", "hand-thrown stoneware", "solid oak", "Turkish cotton"),
        (
            "Made in a small workshop.",
            "Each piece is slightly different.",
            "Machine washable.",
            "Pairs with everything in the range.",
            "Comes gift-wrapped.",
        ),
    ),
    Category(
        "kitchen",
        "Kitchen",
        "Tools for people who love to cook",
        "#c49a2c",
        (
            ("Enamel Coffee Pot", "coffee-pot"),
            ("Stoneware Mug Set", "mug-set"),
            ("Cast Iron Skillet", "skillet"),
            ("Olive Wood Board", "board"),
            ("Linen Tea Towels", "tea-towels"),
            ("Glass French Press", "french-press"),
            ("Ceramic Pour-Over", "pour-over"),
            ("Copper Saucepan", "saucepan"),
        ),
        (),
        (14, 140),
        ("enamelled steel", "pre-seasoned cast iron", "olive wood", "tin-lined copper"),
        (
            "Oven safe to 260 °C.",
            "Dishwasher safe.",
            "Works on induction.",
            "Lasts a lifetime.",
            "Holds heat beautifully.",
        ),
    ),
)

#: Each product's kind, by its name.
KINDS: Final = {name: kind for category in CATEGORIES for name, kind in category.products}

#: Colour name -> hex, for variants and for the generated pictures.
COLOURS: Final = {
    "Navy": "#27406b",
    "Forest": "#2f5d46",
    "Rust": "#b5542c",
    "Charcoal": "#3b3f45",
    "Sand": "#cdb891",
    "Mustard": "#d1a13a",
    "Burgundy": "#7a2735",
    "Sky": "#6a9fc9",
    "Cream": "#e9dfc8",
    "Olive": "#6f7a3a",
}

BRANDS: Final = ("Fernhill", "Northbound", "Ostra", "Marlow & Finch", "Tundra Works", "Kettle & Co")

#: Products whose partner (same position, paired category) is often bought with them.
PARTNER_CATEGORIES: Final = {
    "outerwear": "knitwear",
    "knitwear": "outerwear",
    "footwear": "bags",
    "bags": "footwear",
    "home": "kitchen",
    "kitchen": "home",
}


@dataclass(frozen=True)
class DemoAccount:
    email: str
    first_name: str
    last_name: str
    sex: str
    location: str
    segment: str
    favourites: tuple[str, str]


DEMO_ACCOUNTS: Final = (
    DemoAccount("ana@example.com", "Ana", "Souza", "female", "Lisbon", "gold", ("outerwear", "footwear")),
    DemoAccount("ben@example.com", "Ben", "Okafor", "male", "Manchester", "member", ("kitchen", "home")),
    DemoAccount("chloe@example.com", "Chloé", "Martin", "female", "Lyon", "platinum", ("knitwear", "bags")),
)

_FIRST_NAMES: Final = (
    "Aiko",
    "Bruno",
    "Carmen",
    "Dmitri",
    "Elif",
    "Farah",
    "Gustav",
    "Hana",
    "Ivo",
    "Jonas",
    "Kemi",
    "Lars",
    "Maya",
    "Nils",
    "Omar",
    "Priya",
    "Quentin",
    "Rosa",
    "Sven",
    "Tariq",
    "Uma",
    "Vera",
    "Wen",
    "Yusuf",
)
_LAST_NAMES: Final = (
    "Andersen",
    "Baptiste",
    "Costa",
    "Dubois",
    "Eriksen",
    "Fischer",
    "García",
    "Haddad",
    "Ito",
    "Jensen",
    "Kowalski",
    "Larsen",
    "Moreau",
    "Nakamura",
    "Okonkwo",
    "Petrov",
    "Quinn",
    "Rossi",
    "Schmidt",
    "Tanaka",
)
_LOCATIONS: Final = ("London", "Berlin", "Madrid", "Oslo", "Porto", "Dublin", "Milan", "Utrecht", "Ghent")
_SEGMENTS: Final = ("member", "member", "member", "gold", "platinum")

#: How many customers and orders the history has (besides the demo accounts).
CUSTOMERS: Final = 24
ORDERS: Final = 240
GUEST_ORDERS: Final = 12
HISTORY_DAYS: Final = 120


@dataclass(frozen=True)
class SeedSummary:
    categories: int
    products: int
    variants: int
    users: int
    guests: int
    orders: int

    def line(self) -> str:
        return (
            f"{self.products} products ({self.variants} variants) in {self.categories} categories,"
            f" {self.users} customers and {self.guests} guests, {self.orders} past orders"
        )


def timestamp(moment: datetime) -> str:
    """DataCue's timestamp style, in UTC: ``2018-04-04 23:29:04Z``."""
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%SZ")


def _slug(text: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in text.lower()).split())


def _price_cents(rng: random.Random, low: int, high: int) -> int:
    # Shop prices end in 5 or 9: $124.00, $129.00.
    return (rng.randrange(low // 5, high // 5) * 5 + rng.choice((4, 9))) * 100


def _discounted(rng: random.Random, full_cents: int) -> int:
    percent = rng.choice((10, 15, 20, 25, 30))
    price = full_cents * (100 - percent) // 100
    return max(50, price - price % 50)  # to the half dollar


def _stock(rng: random.Random, sold_out: bool) -> int:
    if sold_out or rng.random() < 0.15:
        return 0
    return rng.randint(1, 24)


def _insert(connection: Connection, model: type[Base], rows: Sequence[Mapping[str, Any]]) -> None:
    if rows:
        connection.execute(insert(model), list(rows))


def _seed_catalog(connection: Connection, rng: random.Random) -> list[tuple[str, str, int, str]]:
    """Categories, products and variants; returns ``(product_id, category_id, price, variant_id)``."""
    products: list[tuple[str, str, int, str]] = []
    rows: dict[type[Base], list[dict[str, Any]]] = {CategoryRow: [], Product: [], Variant: []}
    number = 100
    # One product with variants and one without are sold out entirely.
    sold_out = {("footwear", 6), ("home", 4)}
    for position, category in enumerate(CATEGORIES):
        rows[CategoryRow].append(
            {
                "category_id": category.category_id,
                "name": category.name,
                "tagline": category.tagline,
                "colour": category.colour,
                "position": position,
            }
        )
        for index, (name, kind) in enumerate(category.products):
            number += 1
            product_id = f"p{number}"
            brand = rng.choice(BRANDS)
            material = rng.choice(category.materials)
            features = " ".join(rng.sample(category.features, 2))
            full_cents = _price_cents(rng, *category.price_range)
            price_cents = _discounted(rng, full_cents) if rng.random() < 0.35 else full_cents
            rating = rng.randint(48, 70) if rng.random() < 0.1 else rng.randint(72, 98)
            rows[Product].append(
                {
                    "product_id": product_id,
                    "category_id": category.category_id,
                    "name": name,
                    "brand": brand,
                    "description": f"The {name.lower()} by {brand}, in {material}. {features}",
                    "rating": rating,
                    "price_cents": price_cents,
                    "full_price_cents": full_cents,
                    "position": index,
                    "kind": kind,
                }
            )
            is_sold_out = (category.category_id, index) in sold_out
            if category.sizes:
                colours = rng.sample(sorted(COLOURS), rng.choice((2, 3)))
                start = rng.randrange(0, len(category.sizes) - 3)
                sizes = category.sizes[start : start + rng.choice((3, 4))]
                choices: list[tuple[str, str | None]] = [(c, size) for c in colours for size in sizes]
            else:
                choices = [(rng.choice(sorted(COLOURS)), None)]
            for variant_position, (colour, size) in enumerate(choices):
                variant_id = "no-variants" if size is None else f"{_slug(colour)}-{_slug(size)}"
                rows[Variant].append(
                    {
                        "product_id": product_id,
                        "variant_id": variant_id,
                        "colour": colour,
                        "colour_hex": COLOURS[colour],
                        "size": size,
                        "stock": _stock(rng, is_sold_out),
                        "position": variant_position,
                    }
                )
                products.append((product_id, category.category_id, price_cents, variant_id))
    for model, model_rows in rows.items():
        _insert(connection, model, model_rows)
    return products


def _seed_users(
    connection: Connection,
    rng: random.Random,
    now: datetime,
    password_hasher: Callable[[str], str],
) -> list[tuple[str, tuple[str, str]]]:
    """Demo accounts and the customers of the history; returns ``(user_id, favourites)``."""
    users: list[tuple[str, tuple[str, str]]] = []
    rows: list[dict[str, Any]] = []
    category_ids = [category.category_id for category in CATEGORIES]
    demo_hash = password_hasher(DEMO_PASSWORD)
    for number, account in enumerate(DEMO_ACCOUNTS, start=1001):
        joined = now - timedelta(days=HISTORY_DAYS + rng.randint(10, 60))
        rows.append(
            {
                "user_id": f"u{number}",
                "email": account.email,
                "first_name": account.first_name,
                "last_name": account.last_name,
                "password_hash": demo_hash,
                "sex": account.sex,
                "location": account.location,
                "segment": account.segment,
                "created_at": timestamp(joined),
            }
        )
        users.append((f"u{number}", account.favourites))
    first_names = rng.sample(_FIRST_NAMES, CUSTOMERS)
    for offset, first_name in enumerate(first_names):
        user_id = f"u{1001 + len(DEMO_ACCOUNTS) + offset}"
        last_name = rng.choice(_LAST_NAMES)
        joined = now - timedelta(days=HISTORY_DAYS + rng.randint(1, 400))
        favourites = rng.sample(category_ids, 2)
        rows.append(
            {
                "user_id": user_id,
                "email": f"{_slug(first_name)}.{_slug(last_name)}.{offset}@example.net",
                "first_name": first_name,
                "last_name": last_name,
                "password_hash": None,
                "sex": rng.choice(("female", "male")),
                "location": rng.choice(_LOCATIONS),
                "segment": rng.choice(_SEGMENTS),
                "created_at": timestamp(joined),
            }
        )
        users.append((user_id, (favourites[0], favourites[1])))
    _insert(connection, Customer, rows)
    return users


def _seed_orders(
    connection: Connection,
    rng: random.Random,
    now: datetime,
    catalog: Sequence[tuple[str, str, int, str]],
    users: Sequence[tuple[str, tuple[str, str]]],
) -> tuple[int, int]:
    """The order history, customers' and guests'; returns how many orders, and how many guests."""
    by_product: dict[str, list[tuple[str, int, str]]] = {}
    for product_id, category_id, price, variant_id in catalog:
        by_product.setdefault(product_id, []).append((category_id, price, variant_id))
    by_category: dict[str, list[str]] = {}
    for product_id, variants in by_product.items():
        by_category.setdefault(variants[0][0], []).append(product_id)

    def partner(product_id: str) -> str:
        category_id = by_product[product_id][0][0]
        index = by_category[category_id].index(product_id)
        return by_category[PARTNER_CATEGORIES[category_id]][index]

    def basket(favourites: tuple[str, str]) -> list[str]:
        if rng.random() < 0.75:
            anchor = rng.choice(by_category[rng.choice(favourites)])
        else:
            anchor = rng.choice(sorted(by_product))
        chosen = [anchor]
        if rng.random() < 0.6:
            chosen.append(partner(anchor))
        if rng.random() < 0.25:
            neighbours = by_category[by_product[anchor][0][0]]
            chosen.append(neighbours[(neighbours.index(anchor) + 1) % len(neighbours)])
        return list(dict.fromkeys(chosen))

    customers = [(user_id, favourites) for user_id, favourites in users]
    # The demo accounts have a handful of orders each: enough for DataCue to know their taste,
    # few enough that plenty in their favourite categories is still new to them.
    weights = [0.7 if index < len(DEMO_ACCOUNTS) else 1.0 for index in range(len(customers))]
    moments = sorted(
        now - timedelta(days=HISTORY_DAYS) + timedelta(seconds=rng.randrange(HISTORY_DAYS * 86400 - 3600))
        for _ in range(ORDERS + GUEST_ORDERS)
    )
    guest_slots = set(rng.sample(range(len(moments)), GUEST_ORDERS))
    people = {
        row.user_id: (row.email, f"{row.first_name} {row.last_name}")
        for row in connection.execute(
            select(Customer.user_id, Customer.email, Customer.first_name, Customer.last_name)
        )
    }
    category_ids = [category.category_id for category in CATEGORIES]
    orders: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    guests: list[dict[str, Any]] = []
    for number, moment in enumerate(moments, start=10001):
        order_id = f"o{number}"
        if number - 10001 in guest_slots:
            user_id = None
            email = f"guest{number}@example.org"
            name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_LAST_NAMES)}"
            favourites_pair = rng.sample(category_ids, 2)
            favourites = (favourites_pair[0], favourites_pair[1])
            # Each guest of the history checked out once, with an email nobody else had.
            first_name = name.split()[0]
            guests.append(
                {"user_id": email, "email": email, "first_name": first_name, "created_at": timestamp(moment)}
            )
        else:
            user_id, favourites = rng.choices(customers, weights)[0]
            email, name = people[user_id]
        status = "cancelled" if rng.random() < 0.04 else "completed"
        orders.append(
            {
                "number": number,
                "order_id": order_id,
                "user_id": user_id,
                "guest_id": None,
                "email": email,
                "name": name,
                "address": f"{rng.randint(1, 99)} Example Street",
                "status": status,
                "created_at": timestamp(moment),
            }
        )
        for product_id in basket(favourites):
            _, price, variant_id = rng.choice(by_product[product_id])
            lines.append(
                {
                    "order_id": order_id,
                    "product_id": product_id,
                    "variant_id": variant_id,
                    "quantity": 2 if rng.random() < 0.15 else 1,
                    "unit_price_cents": price,
                }
            )
    _insert(connection, Guest, guests)
    _insert(connection, Order, orders)
    _insert(connection, OrderLine, lines)
    return len(moments), len(guests)


def _seed_wishlists(connection: Connection, rng: random.Random, now: datetime) -> None:
    rows: list[dict[str, Any]] = []
    for number, account in enumerate(DEMO_ACCOUNTS, start=1001):
        candidates = list(
            connection.scalars(
                select(Product.product_id)
                .where(Product.category_id.in_(account.favourites))
                .order_by(Product.product_id)
            )
        )
        for product_id in rng.sample(candidates, 2):
            rows.append(
                {
                    "user_id": f"u{number}",
                    "product_id": product_id,
                    "variant_id": None,
                    "added_at": timestamp(now - timedelta(days=rng.randint(1, 30))),
                }
            )
    _insert(connection, WishlistItem, rows)


def seed(
    connection: Connection,
    *,
    seed: int = 7,
    now: datetime | None = None,
    password_hasher: Callable[[str], str] = generate_password_hash,
) -> SeedSummary:
    """Fill an empty database (its tables made) with the whole shop, in the connection's transaction.

    Written with SQLAlchemy Core, not through a session: the declared DataCue sync follows
    sessions only, and the history reaches DataCue by its import (the guide's step 1).
    """
    rng = random.Random(seed)
    now = now or datetime.now(timezone.utc)
    catalog = _seed_catalog(connection, rng)
    users = _seed_users(connection, rng, now, password_hasher)
    orders, guests = _seed_orders(connection, rng, now, catalog, users)
    _seed_wishlists(connection, rng, now)
    _insert(connection, Meta, [{"key": "seeded_at", "value": timestamp(now)}])
    return SeedSummary(
        categories=len(CATEGORIES),
        products=len({row[0] for row in catalog}),
        variants=len(catalog),
        users=len(users),
        guests=guests,
        orders=orders,
    )


def ensure_database(path: str | Path, *, seed_value: int = 7) -> SeedSummary | None:
    """Create and seed the database at ``path`` unless it is seeded already; the summary if it seeded.

    A database of an earlier demo is brought up to date instead (:func:`models.upgrade`).
    """
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    engine = db.engine_for(path)
    try:
        with engine.connect() as connection:
            guests_were_missing = not inspect(connection).has_table(Guest.__tablename__)
            connection.rollback()
        Base.metadata.create_all(engine)
        # Under the write lock (BEGIN IMMEDIATE): two processes starting at once seed (or upgrade) it once.
        with Session(engine) as session, session.begin():
            connection = session.connection(execution_options={db.IMMEDIATE: True})
            upgrade(connection, KINDS, guests_were_missing=guests_were_missing)
            if session.scalar(select(func.count()).select_from(Meta).where(Meta.key == "seeded_at")):
                return None
            return seed(connection, seed=seed_value)
    finally:
        engine.dispose()
