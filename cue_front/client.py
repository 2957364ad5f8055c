"""DataCue's REST API as Python: one :class:`Client`, one resource per documented object.

::

    client = Client("api-key", "api-secret")
    client.products.create({"product_id": "p1", "variant_id": "v1", ...})
    client.orders.cancel("o1")
    result = client.products.batch_create(read_products())   # any iterable, consumed lazily

Payloads are validated before anything is sent; how batches and their failures work
is told in docs/architecture.md ("Backend sync"). What breaks a rule only the guide's
table states, as the guide's own samples do (``schema.FieldWarning``), is sent and
logged at WARNING on the ``cue_front.client`` logger, as the emulator journals it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from .batches import (
    Batcher,
    BatchResult,
    ItemFailure,
    ItemWarning,
    PreparedBatch,
    multi_status_failures,
)
from .encoding import encode_json
from .errors import BadRequestError, PayloadTooLargeError, ValidationError
from .schema import (
    BATCH_LIMIT,
    ORDER_STATUS_ITEM,
    RESOURCES,
    FieldWarning,
    Resource,
    resource,
    validate,
    validate_with_warnings,
)
from .settings import DEFAULT_API_URL, DEFAULT_EVENTS_URL, DEFAULT_RETRIES, DEFAULT_TIMEOUT, DEFAULTS
from .transport import Reply, Transport

__all__ = [
    "BatchResult",
    "Categories",
    "Client",
    "ItemFailure",
    "ItemWarning",
    "Orders",
    "Overview",
    "OverviewIds",
    "OverviewSummary",
    "PreparedBatch",
    "Products",
    "Sender",
    "Users",
]

logger = logging.getLogger("cue_front.client")

# A product is deleted with all its variants when no variant id is given.
_PRODUCT_ID_ONLY = RESOURCES["products"].key.without("variant_id")

#: What the log adds to a warning: why the payload went all the same.
_SENT_ANYWAY = "sent all the same, as the guide's own samples send it"


def _path_id(value: str) -> str:
    return quote(value, safe="")


@dataclass(frozen=True)
class OverviewSummary:
    """``GET /overview``: how many of each object DataCue holds (``None`` when not reported)."""

    products: int | None
    variants: int | None
    orders: int | None
    users: int | None
    categories: int | None
    raw: Mapping[str, Any]


@dataclass(frozen=True)
class OverviewIds:
    """``GET /overview/<resource>``: every id DataCue holds, and their count."""

    ids: list[str]
    count: int


# ---------------------------------------------------------------------------
# Resources


class Sender(Protocol):
    """What resources send through: a :class:`Transport`, or the outbox (``cue_front.queued``)."""

    def send(self, method: str, path: str, body: bytes = b"", *, retry: bool = True) -> Reply: ...


class _Resource:
    def __init__(self, transport: Sender) -> None:
        self._transport = transport

    def _call(self, method: str, path: str, payload: Any = None) -> Reply:
        body = b"" if payload is None else encode_json(payload)
        return self._transport.send(method, path, body)

    def _call_warned(self, method: str, path: str, payload: Any, warnings: Sequence[FieldWarning]) -> None:
        """Send a validated payload, logging its warnings first."""
        for warning in warnings:
            logger.warning("%s %s: %s; %s", method, path, warning, _SENT_ANYWAY)
        self._call(method, path, payload)


class _BatchResource(_Resource):
    """The batch endpoints every resource shares: create/update many, delete many, delete all."""

    #: The resource's entry in the registry (``cue_front.schema.RESOURCES``).
    resource: ClassVar[Resource]

    @property
    def name(self) -> str:
        """The collection's name in URLs: ``products``."""
        return self.resource.name

    @property
    def key_fields(self) -> tuple[str, ...]:
        return self.resource.key_fields

    def prepare_batches(
        self, numbered_items: Iterable[tuple[int, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> Iterator[PreparedBatch | ItemFailure]:
        """Validate, encode and group ``(position, item)`` pairs into create/update batches.

        Lazy: it reads one batch's worth of items ahead. The importer sends what it yields
        concurrently with :meth:`send_batch`.
        """
        batcher = Batcher("POST", self.resource.batch_path, self.resource.spec, self.key_fields, batch_size)
        return batcher(numbered_items)

    def send_batch(self, batch: PreparedBatch) -> BatchResult:
        """Send one prepared batch. Item-level refusals come back as failures; service errors raise."""
        try:
            reply = self._transport.send(batch.method, batch.path, batch.body)
        except (BadRequestError, PayloadTooLargeError) as error:
            return BatchResult(
                0,
                [
                    ItemFailure(position, key, error.message, error.status, record=batch.item(index))
                    for index, (position, key) in enumerate(zip(batch.positions, batch.keys, strict=True))
                ],
                1,
            )
        _log_item_warnings(batch)
        if reply.status == 207:
            failures = multi_status_failures(batch, reply, self.key_fields)
            return BatchResult(max(0, len(batch) - len(failures)), failures, 1, list(batch.warnings))
        return BatchResult(len(batch), [], 1, list(batch.warnings))

    def _run(self, pieces: Iterable[PreparedBatch | ItemFailure]) -> BatchResult:
        result = BatchResult()
        for piece in pieces:
            if isinstance(piece, ItemFailure):
                result.failures.append(piece)
            else:
                result.add(self.send_batch(piece))
        return result

    def batch_create(
        self, items: Iterable[Mapping[str, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> BatchResult:
        """Create or update many (``POST /batch/<name>``), reading ``items`` lazily."""
        return self._run(self.prepare_batches(enumerate(items), batch_size=batch_size))

    def batch_update(
        self, items: Iterable[Mapping[str, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> BatchResult:
        """Update many: the same request as :meth:`batch_create`, ``POST /batch/<name>`` with
        ``{"batch": [...]}``.

        That is the form the guide documents for updates ("Create/Update Products": an item
        DataCue holds is replaced). DataCue's official PHP client's ``batchUpdate`` sends
        ``PUT`` instead, which the guide does not document, so the guide's form is sent.
        """
        return self.batch_create(items, batch_size=batch_size)

    def _batch_delete(self, keys: Iterable[Mapping[str, Any]], batch_size: int) -> BatchResult:
        batcher = Batcher("DELETE", self.resource.batch_path, self.resource.key, self.key_fields, batch_size)
        return self._run(batcher(enumerate(keys)))

    def delete_all(self) -> None:
        """Delete every object of this kind (``DELETE /batch/<name>/all``)."""
        self._call("DELETE", f"{self.resource.batch_path}/all")

    def _create(self, item: Mapping[str, Any]) -> None:
        body, warnings = validate_with_warnings(self.resource.spec, item)
        self._call_warned("POST", self.resource.path, body, warnings)

    def _item_path(self, key: Mapping[str, str]) -> str:
        """``/products/p1/v1``: the URL of the item that ``key`` (validated) names."""
        return self.resource.path + "".join(f"/{_path_id(key[name])}" for name in key)

    def _update_item(self, key: Mapping[str, str], changes: Mapping[str, Any]) -> None:
        """``PUT`` ``changes`` (validated) to the item that ``key`` (validated) names."""
        body, warnings = validate_with_warnings(self.resource.changes, changes)
        errors = self.resource.repeated_id_errors(key, body)
        if errors:
            raise ValidationError(errors)
        self._call_warned("PUT", self._item_path(key), body, warnings)


class _SingleIdResource(_BatchResource):
    """Categories, users and orders: objects named by one id."""

    def _key_of(self, object_id: str | int) -> dict[str, str]:
        key: dict[str, str] = validate(self.resource.key, {self.resource.id_field: object_id})
        return key

    def _path_of(self, object_id: str | int) -> str:
        return self._item_path(self._key_of(object_id))

    def _update(self, object_id: str | int, changes: Mapping[str, Any]) -> None:
        self._update_item(self._key_of(object_id), changes)

    def delete(self, object_id: str | int) -> None:
        """Delete one (``DELETE /<name>/<id>``)."""
        self._call("DELETE", self._path_of(object_id))

    def batch_delete(
        self, ids: Iterable[str | int | Mapping[str, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> BatchResult:
        """Delete many: ``ids`` are ids or ``{"<name>_id": ...}`` objects, read lazily."""
        key_field = self.key_fields[0]
        return self._batch_delete(
            (each if isinstance(each, Mapping) else {key_field: each} for each in ids), batch_size
        )


class Products(_BatchResource):
    """``/products``: variants of products, named by ``(product_id, variant_id)``."""

    resource = RESOURCES["products"]

    def create(self, product: Mapping[str, Any]) -> None:
        """``POST /products``."""
        self._create(product)

    def update(self, product_id: str | int, variant_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /products/<product_id>/<variant_id>``; the body is Create Product's less the ids."""
        key = validate(self.resource.key, {"product_id": product_id, "variant_id": variant_id})
        self._update_item(key, changes)

    def delete(self, product_id: str | int, variant_id: str | int | None = None) -> None:
        """Delete one variant, or (no ``variant_id``) the product and all its variants."""
        if variant_id is None:
            key = validate(_PRODUCT_ID_ONLY, {"product_id": product_id})
        else:
            key = validate(self.resource.key, {"product_id": product_id, "variant_id": variant_id})
        self._call("DELETE", self._item_path(key))

    def batch_delete(
        self,
        keys: Iterable[tuple[str | int, str | int] | Mapping[str, Any]],
        *,
        batch_size: int = BATCH_LIMIT,
    ) -> BatchResult:
        """Delete many variants: ``(product_id, variant_id)`` pairs or key objects, read lazily."""
        return self._batch_delete(
            (
                each if isinstance(each, Mapping) else {"product_id": each[0], "variant_id": each[1]}
                for each in keys
            ),
            batch_size,
        )


class Categories(_SingleIdResource):
    """``/categories``."""

    resource = RESOURCES["categories"]

    def create(self, category: Mapping[str, Any]) -> None:
        """``POST /categories``."""
        self._create(category)

    def update(self, category_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /categories/<category_id>``.

        Guide: the Update Category sample posts to ``/v1/category/{id}``; its endpoint
        line says ``/v1/categories/<category_id>``, like every other category URL. The
        endpoint line wins.
        """
        self._update(category_id, changes)


class Users(_SingleIdResource):
    """``/users``."""

    resource = RESOURCES["users"]

    def create(self, user: Mapping[str, Any]) -> None:
        """``POST /users``."""
        self._create(user)

    def update(self, user_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /users/<user_id>``; the body is Create User's less ``user_id``.

        A ``user_id`` in ``changes``, as the guide's sample sends, is sent with a warning when
        it is ``user_id``; another one raises :class:`ValidationError`.
        """
        self._update(user_id, changes)


class Orders(_SingleIdResource):
    """``/orders``. A batch delete or cancel answers 207 with a status per order."""

    resource = RESOURCES["orders"]

    def create(self, order: Mapping[str, Any]) -> None:
        """``POST /orders``."""
        self._create(order)

    def set_status(self, order_id: str | int, order_status: str) -> None:
        """``PUT /orders/<order_id>`` with ``{"order_status": "completed" | "cancelled"}``."""
        self._update(order_id, {"order_status": order_status})

    def cancel(self, order_id: str | int) -> None:
        """Mark an order cancelled."""
        self.set_status(order_id, "cancelled")

    def batch_cancel(
        self, order_ids: Iterable[str | int | Mapping[str, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> BatchResult:
        """Mark many orders cancelled: ``order_ids`` are ids or ``{"order_id": ...}``, read lazily.

        The guide documents no batch status change; this is DataCue's official PHP client's
        ``batchCancel``: ``PATCH /batch/orders`` with ``{"batch": [{"order_id": "o1",
        "order_status": "cancelled"}]}``. Its answer is a status per order (207): the orders
        DataCue did not cancel (an unknown one, say) come back as failures.
        """
        changes = (
            {**each, "order_status": "cancelled"}
            if isinstance(each, Mapping)
            else {"order_id": each, "order_status": "cancelled"}
            for each in order_ids
        )
        batcher = Batcher("PATCH", self.resource.batch_path, ORDER_STATUS_ITEM, self.key_fields, batch_size)
        return self._run(batcher(enumerate(changes)))


class Overview(_Resource):
    """``/overview``: what DataCue holds for this store."""

    def summary(self) -> OverviewSummary:
        """``GET /overview``.

        Guide: the sample reply nests ``{"products": {"products": n, "variants": m}}``
        while the fields table lists ``products`` and ``variants`` side by side; both
        shapes are read.
        """
        raw = self._call("GET", "/overview").json() or {}
        products = raw.get("products")
        variants = raw.get("variants")
        if isinstance(products, Mapping):
            variants = products.get("variants", variants)
            products = products.get("products")

        def count(value: Any) -> int | None:
            return value if isinstance(value, int) and not isinstance(value, bool) else None

        return OverviewSummary(
            count(products),
            count(variants),
            count(raw.get("orders")),
            count(raw.get("users")),
            count(raw.get("categories")),
            raw,
        )

    def _ids(self, name: str) -> OverviewIds:
        raw = self._call("GET", f"/overview/{name}").json() or {}
        ids = [str(each) for each in raw.get("ids") or []]
        total = raw.get("count")
        return OverviewIds(ids, total if isinstance(total, int) else len(ids))

    def products(self) -> OverviewIds:
        """``GET /overview/products``: the product ids (not variants) DataCue holds."""
        return self._ids("products")

    def categories(self) -> OverviewIds:
        """``GET /overview/categories``."""
        return self._ids("categories")

    def orders(self) -> OverviewIds:
        """``GET /overview/orders``."""
        return self._ids("orders")

    def users(self) -> OverviewIds:
        """``GET /overview/users``."""
        return self._ids("users")


def _log_item_warnings(batch: PreparedBatch) -> None:
    """One line per kind of warning in a sent batch (an import may warn of every item)."""
    found = Counter(str(warning) for item in batch.warnings for warning in item.warnings)
    for warning, count in found.items():
        first = next(item for item in batch.warnings if warning in map(str, item.warnings))
        logger.warning(
            "%s %s: %s (%d item(s), the first at position %d); %s",
            batch.method, batch.path, warning, count, first.position, _SENT_ANYWAY,
        )


# ---------------------------------------------------------------------------
# The client


def _timeout(value: Any) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        return (float(value), float(value))
    connect, read = value
    return (float(connect), float(read))


class Client:
    """DataCue's REST API: ``products``, ``categories``, ``users``, ``orders``, ``overview``.

    ``timeout`` is ``(connect, read)`` seconds (or one number for both); ``retries`` is
    how many times a request that failed with 429, 5xx or a connection error is repeated.
    ``pool_size`` should be at least the number of threads sharing the client.
    """

    def __init__(
        self,
        api_key: str,
        api_secret: str | None,
        api_url: str = DEFAULT_API_URL,
        *,
        events_url: str = DEFAULT_EVENTS_URL,
        timeout: float | tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = DEFAULT_RETRIES,
        backoff_factor: float = 0.5,
        max_retry_after: float = 60.0,
        pool_size: int = 10,
    ) -> None:
        self.transport = Transport(
            api_key,
            api_secret,
            api_url=api_url,
            events_url=events_url,
            timeout=_timeout(timeout),
            retries=retries,
            backoff_factor=backoff_factor,
            max_retry_after=max_retry_after,
            pool_size=pool_size,
        )
        self.products = Products(self.transport)
        self.categories = Categories(self.transport)
        self.users = Users(self.transport)
        self.orders = Orders(self.transport)
        self.overview = Overview(self.transport)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Client:
        """A client from ``DATACUE_*`` settings (an app's config); defaults from ``settings``."""

        def setting(name: str) -> Any:
            value = config.get(name)
            return DEFAULTS[name] if value is None else value

        return cls(
            setting("DATACUE_API_KEY"),
            setting("DATACUE_API_SECRET"),
            setting("DATACUE_API_URL"),
            events_url=setting("DATACUE_EVENTS_URL"),
            timeout=setting("DATACUE_TIMEOUT"),
            retries=int(setting("DATACUE_RETRIES")),
        )

    def resource(self, name: str) -> _BatchResource:
        """The resource called ``name`` (one of ``cue_front.schema.RESOURCE_NAMES``)."""
        found: _BatchResource = getattr(self, resource(name).name)
        return found

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(api_url={self.transport.api_url!r})"
