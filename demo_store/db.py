"""The demo shop's SQLite database (standard library ``sqlite3``): schema, connections, transactions.

One connection per request, opened on first use and closed when the app
context ends; scripts use :func:`connect` as a context manager. Connections are
in autocommit mode and writes go through :func:`transaction`, which takes the
write lock up front (``BEGIN IMMEDIATE``) so that a stock check and the
decrement that follows it cannot interleave with another order.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flask import Flask, current_app, g

__all__ = [
    "ADDED_COLUMNS",
    "SCHEMA",
    "connect",
    "get_db",
    "init_app",
    "meta",
    "set_meta",
    "transaction",
    "upgrade",
]

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS categories (
    category_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    tagline TEXT NOT NULL,
    colour TEXT NOT NULL,
    position INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT PRIMARY KEY,
    category_id TEXT NOT NULL REFERENCES categories (category_id),
    name TEXT NOT NULL,
    brand TEXT NOT NULL,
    description TEXT NOT NULL,
    rating INTEGER CHECK (rating BETWEEN 0 AND 100),
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
    full_price_cents INTEGER NOT NULL CHECK (full_price_cents >= price_cents),
    position INTEGER NOT NULL
);
-- A product without colours or sizes has one variant, "no-variants", as DataCue asks.
CREATE TABLE IF NOT EXISTS variants (
    product_id TEXT NOT NULL REFERENCES products (product_id),
    variant_id TEXT NOT NULL,
    colour TEXT NOT NULL,
    colour_hex TEXT NOT NULL,
    size TEXT,
    stock INTEGER NOT NULL CHECK (stock >= 0),
    position INTEGER NOT NULL,
    PRIMARY KEY (product_id, variant_id)
);
CREATE TABLE IF NOT EXISTS users (
    user_id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE COLLATE NOCASE,
    first_name TEXT NOT NULL,
    last_name TEXT NOT NULL,
    -- NULL for the customers of the seeded history, who cannot log in.
    password_hash TEXT,
    sex TEXT,
    location TEXT,
    segment TEXT,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS wishlist (
    user_id TEXT NOT NULL REFERENCES users (user_id),
    product_id TEXT NOT NULL REFERENCES products (product_id),
    variant_id TEXT,
    added_at TEXT NOT NULL,
    PRIMARY KEY (user_id, product_id)
);
CREATE TABLE IF NOT EXISTS orders (
    number INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL UNIQUE,
    -- NULL for a guest checkout: DataCue then knows the customer by their email.
    user_id TEXT REFERENCES users (user_id),
    -- A guest checkout whose email already named a shopper: the fresh DataCue user_id of this
    -- order's guest (guest-<order_id>), in place of the email (see basket.py).
    guest_id TEXT,
    email TEXT NOT NULL,
    name TEXT NOT NULL,
    address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('completed', 'cancelled')),
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS order_lines (
    order_id TEXT NOT NULL REFERENCES orders (order_id),
    product_id TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    quantity INTEGER NOT NULL CHECK (quantity > 0),
    unit_price_cents INTEGER NOT NULL,
    PRIMARY KEY (order_id, product_id, variant_id)
);
CREATE INDEX IF NOT EXISTS products_by_category ON products (category_id, position);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, number);
"""


#: Columns that came after the first databases were made: :func:`upgrade` adds them to those.
ADDED_COLUMNS = {("orders", "guest_id"): "TEXT"}


def upgrade(connection: sqlite3.Connection) -> None:
    """Bring a database made by an earlier version of the demo up to :data:`SCHEMA`."""
    for (table, column), definition in ADDED_COLUMNS.items():
        columns = {row["name"] for row in connection.execute(f"PRAGMA table_info({table})")}
        if column not in columns:
            connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")


def _open(path: str | Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None, timeout=10)
    connection.row_factory = sqlite3.Row
    connection.execute("PRAGMA foreign_keys = ON")
    return connection


@contextmanager
def connect(path: str | Path) -> Iterator[sqlite3.Connection]:
    """A connection for scripts and start-up work, closed on exit."""
    connection = _open(path)
    try:
        yield connection
    finally:
        connection.close()


def get_db() -> sqlite3.Connection:
    """This app context's connection, opened on first use."""
    connection: sqlite3.Connection | None = g.get("_demo_db")
    if connection is None:
        connection = g._demo_db = _open(current_app.config["DEMO_DATABASE"])
    return connection


def _close_db(_: BaseException | None) -> None:
    connection: sqlite3.Connection | None = g.pop("_demo_db", None)
    if connection is not None:
        connection.close()


@contextmanager
def transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, or ``ROLLBACK`` when the block raises."""
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def meta(connection: sqlite3.Connection, key: str) -> str | None:
    row = connection.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row["value"])


def set_meta(connection: sqlite3.Connection, key: str, value: str) -> None:
    connection.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def init_app(app: Flask) -> None:
    app.teardown_appcontext(_close_db)
