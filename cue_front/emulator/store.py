"""The emulator's SQLite database: what DataCue has received, who the visitors are, the journal.

One connection, shared by the server's threads under a lock; in memory unless
a file is given (``--db``), in which case everything survives a restart. Rows
keep the validated JSON objects as text: this room stores and fetches, it
knows no field rules and computes no recommendations.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from ..schema import RESOURCE_NAMES, resource

__all__ = ["RESOURCES", "Activity", "JournalEntry", "Store"]

#: The four backend resources, named as in the REST paths.
#: The resources a shop sends, in the order the registry names them.
RESOURCES: Final = RESOURCE_NAMES

#: The journal keeps this many newest entries; older ones are pruned.
JOURNAL_CAPACITY: Final = 10_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS products (
    product_id TEXT NOT NULL,
    variant_id TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (product_id, variant_id)
);
CREATE TABLE IF NOT EXISTS categories (category_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS users (user_id TEXT PRIMARY KEY, body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    order_id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL,
    status TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, status);
-- An anonymous visitor who turned out to be a user (a login, or an event carrying both ids).
CREATE TABLE IF NOT EXISTS identities (anonymous_id TEXT PRIMARY KEY, user_id TEXT NOT NULL);
-- What visitors did, as far as recommendations care: views, carts, wishlists, searches, clicks.
CREATE TABLE IF NOT EXISTS activity (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    visitor TEXT NOT NULL,
    kind TEXT NOT NULL,
    product_id TEXT,
    variant_id TEXT,
    detail TEXT,
    at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS activity_by_visitor ON activity (visitor, kind, at, seq);
CREATE TABLE IF NOT EXISTS banners (position INTEGER PRIMARY KEY, body TEXT NOT NULL);
-- Every exchange on the events and REST APIs, valid or not, with what the emulator answered.
CREATE TABLE IF NOT EXISTS journal (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    received_at TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    visitor TEXT,
    user_id TEXT,
    anonymous_id TEXT,
    type TEXT,
    subtype TEXT,
    body_text TEXT,
    details TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS journal_by_kind ON journal (kind, seq);
"""

_ENTITY_TABLES: Final = {
    "products": "products",
    "categories": "categories",
    "users": "users",
    "orders": "orders",
}
#: What a shop sent: its backend data, and its visitors (who they are and what they did).
_DATA_TABLES: Final = (*RESOURCES, "identities", "activity")
_ID_COLUMNS: Final = {name: resource(name).id_field for name in RESOURCES}


@dataclass(frozen=True)
class Activity:
    """One thing a visitor did that recommendations read."""

    kind: str
    product_id: str | None
    variant_id: str | None
    detail: str | None
    at: float


@dataclass
class JournalEntry:
    """One request the emulator received and what it answered (see ``GET /_emulator/events``)."""

    kind: str  # "event" or "request"
    received_at: str
    method: str
    path: str
    status: int | None = None
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    body_text: str | None = None
    visitor: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    type: str | None = None
    subtype: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


class Store:
    """The database. Every method is atomic and thread-safe."""

    def __init__(self, path: str | None = None) -> None:
        self.path = path
        self._lock = threading.RLock()
        self._db = sqlite3.connect(
            path or ":memory:", check_same_thread=False, isolation_level=None
        )
        if path:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._journal_writes = 0

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Hold the lock and run the block as one transaction."""
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, parameters: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, parameters).fetchall()

    def reset(self) -> None:
        """Forget everything: data, visitors, banners and the journal."""
        self._empty((*_DATA_TABLES, "banners", "journal"))

    def clear_data(self) -> None:
        """Forget what a shop sent: its data and its visitors; keep the banners and the journal."""
        self._empty(_DATA_TABLES)

    def _empty(self, tables: Iterable[str]) -> None:
        with self.transaction() as db:
            for table in tables:
                db.execute(f"DELETE FROM {table}")

    # -- products -------------------------------------------------------------------------

    def put_products(self, variants: Iterable[dict[str, Any]]) -> None:
        rows = [(v["product_id"], v["variant_id"], _dumps(v)) for v in variants]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO products (product_id, variant_id, body) VALUES (?, ?, ?)",
                rows,
            )

    def delete_variants(self, keys: Iterable[tuple[str, str]]) -> None:
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM products WHERE product_id = ? AND variant_id = ?", list(keys)
            )

    def delete_products(self, product_ids: Iterable[str]) -> None:
        with self.transaction() as db:
            db.executemany(
                "DELETE FROM products WHERE product_id = ?", [(pid,) for pid in product_ids]
            )

    def variants(self) -> list[dict[str, Any]]:
        rows = self._query("SELECT body FROM products ORDER BY product_id, variant_id")
        return [json.loads(body) for (body,) in rows]

    # -- categories and users --------------------------------------------------------------

    def put_categories(self, categories: Iterable[dict[str, Any]]) -> None:
        rows = [(c["category_id"], _dumps(c)) for c in categories]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO categories (category_id, body) VALUES (?, ?)", rows)

    def put_users(self, users: Iterable[dict[str, Any]]) -> None:
        rows = [(u["user_id"], _dumps(u)) for u in users]
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO users (user_id, body) VALUES (?, ?)", rows)

    def user(self, user_id: str) -> dict[str, Any] | None:
        rows = self._query("SELECT body FROM users WHERE user_id = ?", (user_id,))
        return json.loads(rows[0][0]) if rows else None

    def delete(self, resource: str, ids: Iterable[str]) -> None:
        """Delete categories, users or orders by id (products: see ``delete_products``)."""
        table, column = _ENTITY_TABLES[resource], _ID_COLUMNS[resource]
        with self.transaction() as db:
            db.executemany(
                f"DELETE FROM {table} WHERE {column} = ?",
                [(entity_id,) for entity_id in ids],
            )

    def delete_all(self, resource: str) -> None:
        with self.transaction() as db:
            db.execute(f"DELETE FROM {_ENTITY_TABLES[resource]}")

    # -- orders ---------------------------------------------------------------------------

    def put_orders(self, orders: Iterable[dict[str, Any]]) -> None:
        rows = [(o["order_id"], o["user_id"], o["order_status"], _dumps(o)) for o in orders]
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO orders (order_id, user_id, status, body) VALUES (?, ?, ?, ?)",
                rows,
            )

    def orders_by_id(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        found: dict[str, dict[str, Any]] = {}
        with self._lock:
            for order_id in order_ids:
                row = self._db.execute(
                    "SELECT body FROM orders WHERE order_id = ?", (order_id,)
                ).fetchone()
                if row:
                    found[order_id] = json.loads(row[0])
        return found

    def completed_orders(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Every order not cancelled, or only one user's."""
        if user_id is None:
            rows = self._query("SELECT body FROM orders WHERE status = 'completed'")
        else:
            rows = self._query(
                "SELECT body FROM orders WHERE user_id = ? AND status = 'completed'", (user_id,)
            )
        return [json.loads(body) for (body,) in rows]

    # -- overview -------------------------------------------------------------------------

    def ids(self, resource: str) -> list[str]:
        """The unique ids received for a resource (products: product ids, not variants)."""
        column = _ID_COLUMNS[resource]
        table = _ENTITY_TABLES[resource]
        rows = self._query(f"SELECT DISTINCT {column} FROM {table} ORDER BY {column}")
        return [entity_id for (entity_id,) in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            count = {
                resource: self._db.execute(
                    f"SELECT COUNT(DISTINCT {_ID_COLUMNS[resource]}) FROM {_ENTITY_TABLES[resource]}"
                ).fetchone()[0]
                for resource in RESOURCES
            }
            count["variants"] = self._db.execute("SELECT COUNT(*) FROM products").fetchone()[0]
        return count

    # -- identities and activity ----------------------------------------------------------

    def user_for(self, anonymous_id: str) -> str | None:
        rows = self._query("SELECT user_id FROM identities WHERE anonymous_id = ?", (anonymous_id,))
        return rows[0][0] if rows else None

    def link(self, anonymous_id: str, user_id: str, from_visitor: str, to_visitor: str) -> None:
        """Record that an anonymous visitor is a user, and give the user their history."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO identities (anonymous_id, user_id) VALUES (?, ?)",
                (anonymous_id, user_id),
            )
            db.execute("UPDATE activity SET visitor = ? WHERE visitor = ?", (to_visitor, from_visitor))
            db.execute("UPDATE journal SET visitor = ? WHERE visitor = ?", (to_visitor, from_visitor))

    def add_activity(self, visitor: str, activities: Iterable[Activity]) -> None:
        rows = [(visitor, a.kind, a.product_id, a.variant_id, a.detail, a.at) for a in activities]
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO activity (visitor, kind, product_id, variant_id, detail, at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                rows,
            )

    def activity(self, visitor: str, kinds: Sequence[str], newest_first: bool = False,
                 limit: int = -1) -> list[Activity]:
        """A visitor's activity of the given kinds, oldest first unless asked otherwise."""
        order = "DESC" if newest_first else "ASC"
        marks = ", ".join("?" for _ in kinds)
        rows = self._query(
            "SELECT kind, product_id, variant_id, detail, at FROM activity"
            f" WHERE visitor = ? AND kind IN ({marks})"
            f" ORDER BY at {order}, seq {order} LIMIT ?",
            (visitor, *kinds, limit),
        )
        return [Activity(*row) for row in rows]

    def visitors(self, limit: int) -> list[str]:
        """The visitors seen most recently first."""
        rows = self._query(
            "SELECT visitor FROM activity GROUP BY visitor ORDER BY MAX(seq) DESC LIMIT ?", (limit,)
        )
        return [visitor for (visitor,) in rows]

    # -- banners --------------------------------------------------------------------------

    def put_banners(self, banners: Sequence[dict[str, Any]]) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM banners")
            db.executemany(
                "INSERT INTO banners (position, body) VALUES (?, ?)",
                [(position, _dumps(banner)) for position, banner in enumerate(banners)],
            )

    def banners(self) -> list[dict[str, Any]]:
        return [json.loads(body) for (body,) in self._query("SELECT body FROM banners ORDER BY position")]

    # -- journal --------------------------------------------------------------------------

    def add_journal(self, entry: JournalEntry) -> None:
        details = {**entry.details, "errors": entry.errors, "warnings": entry.warnings}
        with self.transaction() as db:
            db.execute(
                "INSERT INTO journal (kind, received_at, method, path, status, visitor, user_id,"
                " anonymous_id, type, subtype, body_text, details)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (entry.kind, entry.received_at, entry.method, entry.path, entry.status,
                 entry.visitor, entry.user_id, entry.anonymous_id, entry.type, entry.subtype,
                 entry.body_text, _dumps(details)),
            )
            self._journal_writes += 1
            if self._journal_writes % 500 == 0:
                db.execute(
                    "DELETE FROM journal WHERE seq <= (SELECT MAX(seq) FROM journal) - ?",
                    (JOURNAL_CAPACITY,),
                )

    def journal(
        self,
        kind: str,
        *,
        user: str | None = None,
        type: str | None = None,
        visitor: str | None = None,
        limit: int | None = None,
    ) -> list[tuple[Any, ...]]:
        """Journal rows, newest first: seq, received_at, method, path, status, visitor,
        user_id, anonymous_id, type, subtype, body_text, details."""
        clauses, parameters = ["kind = ?"], [kind]
        if user is not None:
            clauses.append("(user_id = ? OR anonymous_id = ?)")
            parameters += [user, user]
        if type is not None:
            clauses.append("(type = ? OR type || '.' || subtype = ?)")
            parameters += [type, type]
        if visitor is not None:
            clauses.append("visitor = ?")
            parameters.append(visitor)
        sql = (
            "SELECT seq, received_at, method, path, status, visitor, user_id, anonymous_id, type,"
            " subtype, body_text, details FROM journal WHERE "
            + " AND ".join(clauses)
            + " ORDER BY seq DESC LIMIT ?"
        )
        return self._query(sql, (*parameters, -1 if limit is None else limit))

    def journal_size(self, kind: str) -> int:
        return int(self._query("SELECT COUNT(*) FROM journal WHERE kind = ?", (kind,))[0][0])
