"""One emulated DataCue account: the stored data, the recommendation indices and who visitors are.

Routes hand this room validated objects and get answers back; it keeps the
SQLite store (the truth) and the in-memory recommender (derived from it,
rebuilt on start) in step under one lock. The semantics of the API live here:
create and update upsert, batch create replaces, deleting a product without a
variant deletes all its variants, cancelled orders stop counting as sales.

Identity: a visitor is a user (``user_id``) or, until they log in, an
anonymous id. An event carrying both ids (a login, or any other) links them:
the anonymous history becomes the user's, and later events sent with only
that anonymous id count for the user too. A user created with an
``anonymous_id`` is linked the same way.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any, Final

from ..schema import format_timestamp
from .banners import banner_json
from .faults import FaultInjector, FaultPlan
from .recommender import Recommender
from .store import RESOURCES, Activity, JournalEntry, Store

__all__ = ["RESOURCES", "EmulatorState", "epoch_of", "now_timestamp"]

#: Activity kinds whose products say something about a visitor's taste.
_SIGNAL_KINDS: Final = ("view", "cart", "wishlist_add", "wishlist_remove")

#: How many of a visitor's views are read to find their recently viewed products.
_RECENT_WINDOW: Final = 200

_USER, _ANONYMOUS = "user:", "anonymous:"


def epoch_of(timestamp: str) -> float:
    """Seconds since the epoch of a normalized timestamp (``2018-04-04 23:29:04.123Z``)."""
    moment = datetime.fromisoformat(timestamp.rstrip("Z")).replace(tzinfo=timezone.utc)
    return moment.timestamp()


def now_timestamp() -> str:
    return format_timestamp(datetime.now(timezone.utc))


def describe_visitor(visitor: str) -> str:
    """``user u1`` or ``anonymous a1``: a visitor key as people read it."""
    kind, _, identifier = visitor.partition(":")
    return f"{kind} {identifier}"


class EmulatorState:
    """Everything one emulator knows. Thread-safe: every public method holds the lock."""

    def __init__(
        self,
        api_key: str,
        api_secret: str,
        *,
        db_path: str | None = None,
        faults: FaultPlan | None = None,
        banners: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.store = Store(db_path)
        self.faults = FaultInjector(faults)
        self._initial_faults = faults or FaultPlan()
        self._lock = threading.RLock()
        self.recommender = Recommender()
        self.recommender.catalog.put(self.store.variants())
        for order in self.store.completed_orders():
            self.recommender.sales.add_order(order["order_id"], order.get("cart") or [])
        if banners is not None:
            self.store.put_banners([dict(banner) for banner in banners])
        self._banners = self.store.banners()
        #: Counts resets: a request still in flight across a reset is not journaled after it.
        self.generation = 0

    def reset(self) -> None:
        """An empty account: no data, no visitors, no banners, an empty journal, the initial faults."""
        with self._lock:
            self.generation += 1
            self.store.reset()
            self.recommender = Recommender()
            self._banners = []
            self.faults.set_plan(self._initial_faults)

    def clear_data(self) -> None:
        """Forget what the shop sent (``DELETE /v1/clients``): products, categories, users, orders and
        visitors' history. The banners (set up in DataCue's dashboard, not sent by the shop), the
        journal and the faults (the emulator's own) stay."""
        with self._lock:
            self.store.clear_data()
            self.recommender = Recommender()

    # -- backend data (REST) ------------------------------------------------------------------

    def put_products(self, variants: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.store.put_products(dict(variant) for variant in variants)
            self.recommender.catalog.put(variants)

    def delete_variants(self, keys: Sequence[tuple[str, str]]) -> None:
        with self._lock:
            self.store.delete_variants(keys)
            for product_id, variant_id in keys:
                self.recommender.catalog.remove_variant(product_id, variant_id)

    def delete_products(self, product_ids: Sequence[str]) -> None:
        """Delete products with all their variants."""
        with self._lock:
            self.store.delete_products(product_ids)
            for product_id in product_ids:
                self.recommender.catalog.remove_product(product_id)

    def put_categories(self, categories: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.store.put_categories(dict(category) for category in categories)

    def put_users(self, users: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.store.put_users(dict(user) for user in users)
            for user in users:
                if user.get("anonymous_id"):
                    self._link(user["anonymous_id"], user["user_id"])

    def put_orders(self, orders: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.store.put_orders(dict(order) for order in orders)
            for order in orders:
                self._count_order(order)

    def change_order_statuses(self, changes: Sequence[tuple[str, str]]) -> set[str]:
        """Complete or cancel orders, given as ``(order_id, status)``; returns the ids of no order,
        which are left alone."""
        with self._lock:
            orders = self.store.orders_by_id(order_id for order_id, _ in changes)
            changed: dict[str, dict[str, Any]] = {}
            for order_id, status in changes:
                if order_id in orders:
                    changed[order_id] = {**orders[order_id], "order_status": status}
            self.store.put_orders(changed.values())
            for order in changed.values():
                self._count_order(order)
            return {order_id for order_id, _ in changes if order_id not in orders}

    def _count_order(self, order: Mapping[str, Any]) -> None:
        sales = self.recommender.sales
        if order.get("order_status", "completed") == "completed":
            sales.add_order(order["order_id"], order.get("cart") or [])
        else:
            sales.remove_order(order["order_id"])

    def delete(self, resource: str, ids: Sequence[str]) -> None:
        """Delete categories, users or orders by id; unknown ids are ignored."""
        with self._lock:
            self.store.delete(resource, ids)
            if resource == "orders":
                for order_id in ids:
                    self.recommender.sales.remove_order(order_id)

    def delete_all(self, resource: str) -> None:
        with self._lock:
            self.store.delete_all(resource)
            if resource == "products":
                self.recommender.clear_catalog()
            elif resource == "orders":
                self.recommender.clear_sales()

    def existing_orders(self, order_ids: Iterable[str]) -> set[str]:
        with self._lock:
            return set(self.store.orders_by_id(order_ids))

    def counts(self) -> dict[str, int]:
        """Unique products, variants, categories, users and orders received."""
        with self._lock:
            return self.store.counts()

    def ids(self, resource: str) -> list[str]:
        with self._lock:
            return self.store.ids(resource)

    # -- banners and faults ---------------------------------------------------------------------

    def set_banners(self, banners: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            self.store.put_banners([dict(banner) for banner in banners])
            self._banners = self.store.banners()

    def banners(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._banners)

    def set_faults(self, plan: FaultPlan) -> None:
        self.faults.set_plan(plan)

    # -- events -------------------------------------------------------------------------------

    def receive_event(self, envelope: Mapping[str, Any], received_at: float) -> tuple[str, Any]:
        """Record a validated event; returns the visitor key and the answer (None: 204)."""
        with self._lock:
            visitor = self._record(envelope, received_at)
            return visitor, self._answer(visitor, envelope["event"])

    def receive_events(self, envelopes: Sequence[Mapping[str, Any]], received_at: float) -> list[str]:
        """Record a validated batch of events, in order and at once; returns their visitor keys."""
        with self._lock:
            return [self._record(envelope, received_at) for envelope in envelopes]

    def _record(self, envelope: Mapping[str, Any], received_at: float) -> str:
        user, event = envelope["user"], envelope["event"]
        at = epoch_of(envelope["timestamp"]) if envelope.get("timestamp") else received_at
        visitor = self._visitor(user.get("user_id"), user.get("anonymous_id"))
        self.store.add_activity(visitor, _activities(event, at))
        return visitor

    def _visitor(self, user_id: str | None, anonymous_id: str | None) -> str:
        if user_id:
            if anonymous_id:
                self._link(anonymous_id, user_id)
            return _USER + user_id
        assert anonymous_id, "the envelope spec requires user_id or anonymous_id"
        linked = self.store.user_for(anonymous_id)
        return _USER + linked if linked else _ANONYMOUS + anonymous_id

    def _link(self, anonymous_id: str, user_id: str) -> None:
        if self.store.user_for(anonymous_id) != user_id:
            self.store.link(anonymous_id, user_id, _ANONYMOUS + anonymous_id, _USER + user_id)

    def _answer(self, visitor: str, event: Mapping[str, Any]) -> Any:
        kind = (event["type"], event.get("subtype"))
        if kind == ("pageview", "home"):
            return self._home_page(visitor)
        if kind == ("pageview", "product"):
            return self._product_page(visitor, event["product_id"])
        if kind == ("search", None):
            return {"recent_product_skus": self._recent(visitor, exclude=set())}
        return None

    def _home_page(self, visitor: str) -> dict[str, Any]:
        signals, bought = self._signals(visitor)
        affinity = self.recommender.affinity(signals)
        banners = self.recommender.order_banners(self._banners, affinity)
        related = self.recommender.related_for_visitor(affinity, bought)
        return {
            "main_banners": [banner_json(dict(b)) for b in banners if b["kind"] == "main"],
            "sub_banners": [banner_json(dict(b)) for b in banners if b["kind"] == "sub"],
            "related_product_skus": [card.as_json() for card in related],
            "recent_product_skus": self._recent(visitor, exclude=set()),
        }

    def _product_page(self, visitor: str, product_id: str) -> dict[str, Any]:
        similar = self.recommender.similar(product_id)
        related = self.recommender.related_to_product(product_id)
        return {
            "similar_product_skus": [card.as_json() for card in similar],
            # Guide: its example answers null when nothing is related; so does the emulator.
            "related_product_skus": [card.as_json() for card in related] or None,
            "recent_product_skus": self._recent(visitor, exclude={product_id}),
        }

    def _recent(self, visitor: str, exclude: set[str]) -> list[dict[str, Any]]:
        views = self.store.activity(visitor, ("view",), newest_first=True, limit=_RECENT_WINDOW)
        viewed = [(view.product_id or "", view.variant_id) for view in views]
        return [card.as_json(with_variant=True) for card in self.recommender.recent(viewed, exclude)]

    def _signals(self, visitor: str) -> tuple[list[tuple[str, str]], set[str]]:
        """The visitor's ``(signal kind, product id)`` pairs, and the products they bought."""
        signals: list[tuple[str, str]] = []
        wishlist: dict[str, None] = {}
        for activity in self.store.activity(visitor, _SIGNAL_KINDS):
            product_id = activity.product_id or ""
            if activity.kind == "wishlist_add":
                wishlist[product_id] = None
            elif activity.kind == "wishlist_remove":
                wishlist.pop(product_id, None)
            else:
                signals.append((activity.kind, product_id))
        bought: set[str] = set()
        if visitor.startswith(_USER):
            user_id = visitor.removeprefix(_USER)
            stored_user = self.store.user(user_id) or {}
            wishlist.update(dict.fromkeys(stored_user.get("wishlist") or ()))
            for order in self.store.completed_orders(user_id):
                for line in order.get("cart") or ():
                    signals.append(("order", line["product_id"]))
                    bought.add(line["product_id"])
        signals += [("wishlist", product_id) for product_id in wishlist]
        return signals, bought

    # -- the journal ----------------------------------------------------------------------------

    def journal(self, entry: JournalEntry, generation: int) -> None:
        """Journal an exchange, unless the emulator was reset since it began."""
        with self._lock:
            if generation == self.generation:
                self.store.add_journal(entry)

    def journal_items(
        self,
        kind: str,
        *,
        user: str | None = None,
        type: str | None = None,
        visitor: str | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Journal entries as ``GET /_emulator/events`` and ``/requests`` list them, newest first."""
        if type is not None:
            type = type.replace("/", ".")
        rows = self.store.journal(kind, user=user, type=type, visitor=visitor, limit=limit)
        return [_journal_item(kind, row) for row in rows]

    # -- what the debugger shows ----------------------------------------------------------------

    def visitor_summaries(self, limit: int) -> list[dict[str, Any]]:
        """The most recent visitors: what they viewed, their tastes, what they were recommended."""
        with self._lock:
            summaries = []
            for visitor in self.store.visitors(limit):
                signals, _ = self._signals(visitor)
                affinity = self.recommender.affinity(signals)
                answers = [
                    item for item in self.journal_items("event", visitor=visitor, limit=50)
                    if item.get("response")
                ]
                summaries.append(
                    {
                        "visitor": describe_visitor(visitor),
                        "viewed": self._recent(visitor, exclude=set()),
                        "categories": sorted(affinity.items(), key=lambda kv: (-kv[1], kv[0]))[:5],
                        "last_recommendations": answers[0] if answers else None,
                    }
                )
            return summaries


def _activities(event: Mapping[str, Any], at: float) -> list[Activity]:
    """What an event adds to its visitor's history."""
    kind, subtype = event["type"], event.get("subtype")
    if kind == "pageview" and subtype == "product":
        return [Activity("view", event["product_id"], event.get("variant_id"), None, at)]
    if kind == "pageview" and subtype == "category":
        return [Activity("category_view", None, None, event["category_name"], at)]
    if kind == "search":
        return [Activity("search", None, None, event["term"], at)]
    if kind in ("cart", "checkout"):
        # Guide: the checkout sample names a line's variant "variant" (see schema.objects).
        return [
            Activity(kind, line["product_id"], line.get("variant_id", line.get("variant")), None, at)
            for line in event["cart"]
        ]
    if kind == "wishlist":
        return [Activity(f"wishlist_{subtype}", event["product_id"], event.get("variant_id"), None, at)]
    if kind == "click":
        target = event.get("product_id")
        return [Activity("click", target, None, event.get("banner_id") or subtype, at)]
    return []


def _journal_item(kind: str, row: Sequence[Any]) -> dict[str, Any]:
    (seq, received_at, method, path, status, visitor, user_id, anonymous_id, type_, subtype,
     body_text, details_text) = row
    details = json.loads(details_text)
    body = None
    if body_text:
        try:
            body = json.loads(body_text)
        except ValueError:
            details.setdefault("raw", body_text[:2000])
    item = {
        "id": seq,
        "received_at": received_at,
        "method": method,
        "path": path,
        "status": status,
        "errors": details.pop("errors", []),
        "warnings": details.pop("warnings", []),
        "body": body,
        "user": user_id or anonymous_id,
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "visitor": describe_visitor(visitor) if visitor else None,
        "type": type_,
        ("subtype" if kind == "event" else "action"): subtype,
    }
    item.update(details)
    return item
