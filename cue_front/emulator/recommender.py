"""Recommendations computed from what the emulator received: deterministic, explainable, fast.

The algorithm
=============

Products are recommended whole (a product and all its variants). A product is
*recommendable* when one of its variants is available (``available`` is not
false) and has ``stock`` above 0; the first such variant by variant id gives the
product's card: name, price, photo, link, first category (``category_1``) and
``extra``. Unrecommendable products, and the product being viewed, never appear
in any list. Every list holds at most ``LIST_SIZE`` products; ties are always
broken by units sold (more first) and then by product id, so the same data
gives the same answer.

A product page's two lists never show the same product, and both favour the
viewed product's own categories: a parka's page offers coats and what parka
buyers bought, not a lamp.

related (product page)
    Co-purchase. Every non-cancelled order counts once for each pair of
    distinct products in its cart. The products bought with the viewed one
    come first if they share one of its categories, then the others; each
    group by how many orders they share with it. Slots left over are filled
    with the best sellers (units sold in non-cancelled orders; a product never
    sold is no best seller) of its categories, its first category first, less
    those the similar list shows. With nothing to show the list is ``null``,
    as in the guide's example.

similar (product page)
    Content similarity among the products sharing a category with the viewed
    one (all products, for a product without categories: a lamp is never like
    a parka, however alike their descriptions), less the products bought with
    it (the related list shows those). A product is a bag of terms: the words
    of its name (weight 3), its brand (2), its category ids (2) and the words
    of its description (1), each weighted by its inverse document frequency,
    ``log(1 + products / products having the term)``; products are ranked by
    the cosine similarity of these vectors. A term shared by more than a
    tenth of the catalogue (and by more than 200 products) says nothing about
    a product and is ignored, which also keeps the work per request small.

related (home)
    Category affinity. A visitor's affinity for a category is the sum of the
    weights of their signals on products in it: a viewed product 1, a product
    in a cart update 3, a product on their wishlist 2, a product in one of
    their non-cancelled orders 5. Candidates are the products of their five
    strongest categories, less what they bought; a candidate scores the sum of
    the visitor's affinity for its categories. Slots left over (all of them,
    for a visitor with no signals) are filled with the global best sellers
    they did not buy.

recent
    The visitor's viewed products, the last viewed first (by event time, then
    arrival), each once.

banners
    Each banner belongs to a category; main and sub banners are ordered by
    the visitor's affinity for their category (strongest first), then in the
    order they were registered.

Who the visitor is (user or anonymous id, and how a login links the two) is
decided in ``state``; this room gets the visitor's signals as plain lists.

All indices live in memory and are maintained incrementally: catalogue
changes update one product's terms, orders add or remove their own pair
counts, so a pageview never scans the catalogue or the orders. Rankings that
depend on everything (best sellers, term norms) are computed once after a
change, when first needed.
"""

from __future__ import annotations

import heapq
import math
import re
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

__all__ = ["LIST_SIZE", "SIGNAL_WEIGHTS", "Catalog", "ProductCard", "Recommender", "Sales"]

#: The most products any recommendation list holds.
LIST_SIZE: Final = 10

#: How much each kind of signal says about a visitor's taste for a product's categories.
SIGNAL_WEIGHTS: Final = {"view": 1.0, "wishlist": 2.0, "cart": 3.0, "order": 5.0}

#: How many of a visitor's strongest categories home recommendations draw from.
AFFINITY_CATEGORIES: Final = 5

#: Term weights by the field a term comes from.
FIELD_WEIGHTS: Final = {"name": 3.0, "brand": 2.0, "category": 2.0, "description": 1.0}

_WORD = re.compile(r"[^\W_]{2,}")


@dataclass(frozen=True)
class ProductCard:
    """What a recommendation shows of a product: one recommendable variant of it."""

    product_id: str
    variant_id: str
    name: str
    price: float
    photo_url: str
    link: str
    category_1: str | None
    extra: Mapping[str, Any] | None

    @classmethod
    def of(cls, variant: Mapping[str, Any]) -> ProductCard:
        categories = variant.get("categories") or []
        return cls(
            product_id=variant["product_id"],
            variant_id=variant["variant_id"],
            name=variant["name"],
            price=variant["price"],
            photo_url=variant["photo_url"],
            link=variant["link"],
            category_1=categories[0] if categories else None,
            extra=variant.get("extra"),
        )

    def as_json(self, *, with_variant: bool = False) -> dict[str, Any]:
        """The guide's product object; ``variant_id`` only in recently viewed lists and ``extra``
        only for products that have one, as in the guide's examples."""
        item: dict[str, Any] = {"product_id": self.product_id}
        if with_variant:
            item["variant_id"] = self.variant_id
        item.update(
            name=self.name,
            price=self.price,
            photo_url=self.photo_url,
            link=self.link,
            category_1=self.category_1,
        )
        if self.extra is not None:
            item["extra"] = dict(self.extra)
        return item


def is_recommendable(variant: Mapping[str, Any]) -> bool:
    return variant.get("available", True) is not False and variant.get("stock", 0) > 0


def _terms_of(variants: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """A product's weighted terms (before inverse document frequency), over all its variants."""
    terms: dict[str, float] = defaultdict(float)
    seen: set[tuple[str, str]] = set()
    for variant in variants:
        fields = [
            ("name", _WORD.findall(variant.get("name", "").lower())),
            ("description", _WORD.findall(variant.get("description", "").lower())),
            ("brand", [variant["brand"].lower()] if variant.get("brand") else []),
            ("category", list(variant.get("categories") or [])),
        ]
        for field_name, words in fields:
            for word in words:
                # The same term counts once per field, however often a product repeats it.
                if (field_name, word) in seen:
                    continue
                seen.add((field_name, word))
                prefix = "" if field_name in ("name", "description") else field_name + ":"
                terms[prefix + word] += FIELD_WEIGHTS[field_name]
    return dict(terms)


class Catalog:
    """The products received, by product and variant, with the indices recommendations read."""

    def __init__(self) -> None:
        self.variants: dict[str, dict[str, Mapping[str, Any]]] = {}
        #: Recommendable products only.
        self.cards: dict[str, ProductCard] = {}
        self.categories_of: dict[str, tuple[str, ...]] = {}
        self.members: dict[str, set[str]] = defaultdict(set)
        self.terms: dict[str, dict[str, float]] = {}
        self.postings: dict[str, set[str]] = defaultdict(set)
        #: Bumped on every change; caches built on the catalogue remember the version they saw.
        self.version = 0

    def put(self, variants: Iterable[Mapping[str, Any]]) -> None:
        touched = set()
        for variant in variants:
            self.variants.setdefault(variant["product_id"], {})[variant["variant_id"]] = variant
            touched.add(variant["product_id"])
        for product_id in touched:
            self._reindex(product_id)

    def remove_variant(self, product_id: str, variant_id: str) -> None:
        self.variants.get(product_id, {}).pop(variant_id, None)
        self._reindex(product_id)

    def remove_product(self, product_id: str) -> None:
        self.variants.pop(product_id, None)
        self._reindex(product_id)

    def card(self, product_id: str, variant_id: str | None = None) -> ProductCard | None:
        """The product's card, from ``variant_id`` if that variant is recommendable."""
        if variant_id is not None:
            variant = self.variants.get(product_id, {}).get(variant_id)
            if variant is not None and is_recommendable(variant):
                return ProductCard.of(variant)
        return self.cards.get(product_id)

    def _reindex(self, product_id: str) -> None:
        self.version += 1
        for category in self.categories_of.pop(product_id, ()):
            self.members[category].discard(product_id)
        for term in self.terms.pop(product_id, {}):
            self.postings[term].discard(product_id)
        self.cards.pop(product_id, None)
        variants = self.variants.get(product_id)
        if not variants:
            self.variants.pop(product_id, None)
            return
        ordered = [variants[variant_id] for variant_id in sorted(variants)]
        recommendable = [variant for variant in ordered if is_recommendable(variant)]
        if recommendable:
            self.cards[product_id] = ProductCard.of(recommendable[0])
        categories = tuple(dict.fromkeys(c for v in ordered for c in v.get("categories") or ()))
        self.categories_of[product_id] = categories
        for category in categories:
            self.members[category].add(product_id)
        terms = _terms_of(ordered)
        self.terms[product_id] = terms
        for term in terms:
            self.postings[term].add(product_id)


class Sales:
    """Units sold and co-purchase counts over the non-cancelled orders, kept per order."""

    def __init__(self) -> None:
        self.units: Counter[str] = Counter()
        self.together: dict[str, Counter[str]] = defaultdict(Counter)
        self._counted: dict[str, Counter[str]] = {}
        self.version = 0

    def add_order(self, order_id: str, cart: Iterable[Mapping[str, Any]]) -> None:
        """Count an order (replacing its earlier count, if any)."""
        self.remove_order(order_id)
        lines: Counter[str] = Counter()
        for line in cart:
            lines[line["product_id"]] += line["quantity"]
        self._counted[order_id] = lines
        self._apply(lines, +1)

    def remove_order(self, order_id: str) -> None:
        lines = self._counted.pop(order_id, None)
        if lines is not None:
            self._apply(lines, -1)

    def _apply(self, lines: Counter[str], sign: int) -> None:
        self.version += 1
        for product_id, quantity in lines.items():
            self.units[product_id] += sign * quantity
            if self.units[product_id] <= 0:
                del self.units[product_id]
        for product_id in lines:
            partners = self.together[product_id]
            for other in lines:
                if other != product_id:
                    partners[other] += sign
                    if partners[other] <= 0:
                        del partners[other]


def _rank_key(units: Counter[str]) -> Any:
    return lambda product_id: (-units[product_id], product_id)


class Recommender:
    """The lists of the algorithm above, over one catalogue and one sales history."""

    def __init__(self) -> None:
        self.catalog = Catalog()
        self.sales = Sales()
        self._similar_cache: dict[str, list[str]] = {}
        self._similar_version = -1
        self._norms: dict[str, float] = {}
        self._idfs: dict[str, float] = {}
        self._best_sellers: list[str] = []
        self._category_best_sellers: dict[str, list[str]] = {}
        self._sales_seen = (-1, -1)

    # -- building blocks ----------------------------------------------------------------------

    def clear_catalog(self) -> None:
        self.catalog = Catalog()
        self._forget_rankings()

    def clear_sales(self) -> None:
        self.sales = Sales()
        self._forget_rankings()

    def _forget_rankings(self) -> None:
        self._similar_version = -1
        self._sales_seen = (-1, -1)

    def _cards(self, product_ids: Iterable[str], exclude: set[str], limit: int) -> list[ProductCard]:
        """Cards of the recommendable products among ``product_ids``, each once, in order."""
        cards: list[ProductCard] = []
        shown = set(exclude)
        for product_id in product_ids:
            if len(cards) >= limit:
                break
            if product_id in shown:
                continue
            card = self.catalog.cards.get(product_id)
            if card is not None:
                cards.append(card)
                shown.add(product_id)
        return cards

    def _refresh_sales_rankings(self) -> None:
        seen = (self.sales.version, self.catalog.version)
        if seen != self._sales_seen:
            self._best_sellers = sorted(self.sales.units, key=_rank_key(self.sales.units))
            self._category_best_sellers = {}
            self._sales_seen = seen

    def best_sellers(self) -> list[str]:
        """Every product ever sold, the most units first."""
        self._refresh_sales_rankings()
        return self._best_sellers

    def category_best_sellers(self, category: str) -> list[str]:
        self._refresh_sales_rankings()
        ranked = self._category_best_sellers.get(category)
        if ranked is None:
            units = self.sales.units
            sold = [pid for pid in self.catalog.members.get(category, ()) if pid in units]
            ranked = sorted(sold, key=_rank_key(units))
            self._category_best_sellers[category] = ranked
        return ranked

    # -- similar ------------------------------------------------------------------------------

    def _similarity_ready(self) -> None:
        if self._similar_version != self.catalog.version:
            self._similar_cache = {}
            self._norms = {}
            self._idfs = {}
            self._similar_version = self.catalog.version

    def _common_limit(self) -> int:
        return max(200, len(self.catalog.terms) // 10)

    def _idf(self, term: str) -> float:
        idf = self._idfs.get(term)
        if idf is None:
            idf = math.log(1 + len(self.catalog.terms) / len(self.catalog.postings[term]))
            self._idfs[term] = idf
        return idf

    def _norm(self, product_id: str) -> float:
        norm = self._norms.get(product_id)
        if norm is None:
            common = self._common_limit()
            postings = self.catalog.postings
            norm = math.sqrt(
                sum(
                    (weight * self._idf(term)) ** 2
                    for term, weight in self.catalog.terms[product_id].items()
                    if len(postings[term]) <= common
                )
            )
            self._norms[product_id] = norm
        return norm

    def similar_ids(self, product_id: str) -> list[str]:
        """The products of its categories sharing a telling term with this one, the most similar first."""
        self._similarity_ready()
        cached = self._similar_cache.get(product_id)
        if cached is not None:
            return cached
        terms = self.catalog.terms.get(product_id)
        if terms is None:  # a pageview of a product never received: nothing to compare
            return []
        common = self._common_limit()
        dot: dict[str, float] = defaultdict(float)
        for term, weight in terms.items():
            holders = self.catalog.postings[term]
            if len(holders) > common:
                continue
            idf = self._idf(term)
            own = weight * idf * idf
            for other in holders:
                if other != product_id:
                    dot[other] += own * self.catalog.terms[other][term]
        own_norm = self._norm(product_id) or 1.0
        units = self.sales.units
        categories = set(self.catalog.categories_of.get(product_id, ()))
        categories_of = self.catalog.categories_of
        scored = [
            (-score / (own_norm * (self._norm(other) or 1.0)), -units[other], other)
            for other, score in dot.items()
            if other in self.catalog.cards
            and not (categories and categories.isdisjoint(categories_of.get(other, ())))
        ]
        ranked = [other for _, _, other in heapq.nsmallest(LIST_SIZE * 3, scored)]
        self._similar_cache[product_id] = ranked
        return ranked

    def similar(self, product_id: str) -> list[ProductCard]:
        """Like this product, less what the related list shows as bought with it."""
        bought_with = set(self.bought_with(product_id))
        return self._cards(self.similar_ids(product_id), {product_id} | bought_with, LIST_SIZE)

    # -- related ------------------------------------------------------------------------------

    def bought_with(self, product_id: str) -> list[str]:
        """The recommendable products bought with this one: those of its categories first, then
        the others; each by orders shared with it. At most ``LIST_SIZE``."""
        units = self.sales.units
        partners = self.sales.together.get(product_id, Counter())
        categories = set(self.catalog.categories_of.get(product_id, ()))
        categories_of = self.catalog.categories_of
        return heapq.nsmallest(
            LIST_SIZE,
            (other for other in partners if other in self.catalog.cards and other != product_id),
            key=lambda other: (
                categories.isdisjoint(categories_of.get(other, ())),
                -partners[other],
                -units[other],
                other,
            ),
        )

    def related_to_product(self, product_id: str) -> list[ProductCard]:
        """Bought together with the product, then its categories' best sellers the similar list
        does not show."""
        cards = self._cards(self.bought_with(product_id), {product_id}, LIST_SIZE)
        similar = {card.product_id for card in self.similar(product_id)}
        for category in self.catalog.categories_of.get(product_id, ()):
            if len(cards) == LIST_SIZE:
                break
            shown = {product_id} | similar | {card.product_id for card in cards}
            cards += self._cards(self.category_best_sellers(category), shown, LIST_SIZE - len(cards))
        return cards

    def affinity(self, signals: Iterable[tuple[str, str]]) -> dict[str, float]:
        """Category affinity from ``(signal kind, product id)`` pairs (kinds: ``SIGNAL_WEIGHTS``)."""
        affinity: dict[str, float] = defaultdict(float)
        for kind, product_id in signals:
            for category in self.catalog.categories_of.get(product_id, ()):
                affinity[category] += SIGNAL_WEIGHTS[kind]
        return dict(affinity)

    def related_for_visitor(self, affinity: Mapping[str, float], bought: set[str]) -> list[ProductCard]:
        """Products of the visitor's favourite categories, then best sellers; never what they bought."""
        strongest = heapq.nsmallest(
            AFFINITY_CATEGORIES, affinity, key=lambda category: (-affinity[category], category)
        )
        units = self.sales.units
        candidates = {
            product_id
            for category in strongest
            for product_id in self.catalog.members.get(category, ())
            if product_id not in bought and product_id in self.catalog.cards
        }
        categories_of = self.catalog.categories_of

        def score(product_id: str) -> tuple[float, int, str]:
            total = sum(affinity.get(category, 0.0) for category in categories_of[product_id])
            return (-total, -units[product_id], product_id)

        cards = self._cards(heapq.nsmallest(LIST_SIZE, candidates, key=score), bought, LIST_SIZE)
        if len(cards) < LIST_SIZE:
            shown = bought | {card.product_id for card in cards}
            cards += self._cards(self.best_sellers(), shown, LIST_SIZE - len(cards))
        return cards

    # -- recent and banners ---------------------------------------------------------------------

    def recent(self, viewed: Iterable[tuple[str, str | None]], exclude: set[str]) -> list[ProductCard]:
        """Viewed ``(product id, variant id)`` pairs, newest first, as cards; each product once."""
        cards: list[ProductCard] = []
        shown = set(exclude)
        for product_id, variant_id in viewed:
            if product_id in shown:
                continue
            shown.add(product_id)
            card = self.catalog.card(product_id, variant_id)
            if card is not None:
                cards.append(card)
                if len(cards) == LIST_SIZE:
                    break
        return cards

    @staticmethod
    def order_banners(
        banners: Sequence[Mapping[str, Any]], affinity: Mapping[str, float]
    ) -> list[Mapping[str, Any]]:
        """Banners by the visitor's affinity for their category, then registration order."""
        positions = range(len(banners))
        ordered = sorted(positions, key=lambda i: (-affinity.get(banners[i]["category_id"], 0.0), i))
        return [banners[i] for i in ordered]
