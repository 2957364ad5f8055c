"""DataCue's REST API as Python: one :class:`Client`, one resource per documented object.

::

    client = Client("api-key", "api-secret")
    client.products.create({"product_id": "p1", "variant_id": "v1", ...})
    client.orders.cancel("o1")
    result = client.products.batch_create(read_products())   # any iterable, consumed lazily
    print(result.accepted, result.failed, result.failures[:3])
    client.overview.summary()

Every payload is validated with :mod:`cue_front.schema` before anything is sent:
bad data raises :class:`~cue_front.errors.ValidationError` naming the field path,
and no request is made. Batch calls consume their iterable lazily, in requests of
at most 500 items (``schema.BATCH_LIMIT``) and under DataCue's 5 MiB body limit.
Problems with *items* (invalid data, an item DataCue refused with 400, a failed
entry of a 207 multi-status reply) are returned in :attr:`BatchResult.failures`
and the rest goes on; problems with the *service* (401, 404, 5xx or 429 after
retries, network) raise their typed error.

Guide: where the guide's samples and its endpoint lines disagree, the endpoint
lines win (see :meth:`Categories.update`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol
from urllib.parse import quote

from .errors import BadRequestError, FieldError, PayloadTooLargeError, ValidationError
from .schema import (
    BATCH_LIMIT,
    CATEGORY,
    CATEGORY_CHANGES,
    CATEGORY_KEY,
    ORDER,
    ORDER_KEY,
    ORDER_STATUS_CHANGE,
    PRODUCT,
    PRODUCT_CHANGES,
    PRODUCT_KEY,
    USER,
    USER_CHANGES,
    USER_KEY,
    Object,
    validate,
)
from .settings import DEFAULTS
from .transport import (
    DEFAULT_API_URL,
    DEFAULT_EVENTS_URL,
    MAX_BODY_BYTES,
    Reply,
    Transport,
    encode_json,
)

__all__ = [
    "BatchResult",
    "Categories",
    "Client",
    "ItemFailure",
    "Orders",
    "Overview",
    "OverviewIds",
    "OverviewSummary",
    "PreparedBatch",
    "Products",
    "Sender",
    "Users",
]

_BATCH_PREFIX = b'{"batch":['
_BATCH_SUFFIX = b"]}"
_BATCH_OVERHEAD = len(_BATCH_PREFIX) + len(_BATCH_SUFFIX)

# A product is deleted with all its variants when no variant id is given.
_PRODUCT_ID_ONLY = PRODUCT_KEY.without("variant_id")


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ItemFailure:
    """One item that did not reach DataCue, and why.

    ``position`` is the item's 0-based place in the iterable given to the batch call
    (``None`` when DataCue reported an id the batch did not hold). ``status`` is the
    HTTP status when DataCue refused it, ``None`` when it was refused before sending;
    ``errors`` lists the field problems of an invalid item; ``record`` is the item.
    """

    position: int | None
    key: str | None
    reason: str
    status: int | None = None
    errors: tuple[FieldError, ...] = ()
    record: Any = None


@dataclass
class BatchResult:
    """What a batch call did: items accepted, the failures, and how many requests it took."""

    accepted: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    requests: int = 0

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def add(self, other: BatchResult) -> None:
        self.accepted += other.accepted
        self.failures.extend(other.failures)
        self.requests += other.requests


@dataclass(frozen=True, eq=False)
class PreparedBatch:
    """One batch request ready to send: its exact body bytes and what each item was.

    ``positions[i]`` and ``keys[i]`` describe the i-th item; ``spans[i]`` is where its
    JSON sits inside ``body`` (so a refused item can be reported without keeping a copy).
    """

    number: int
    method: str
    path: str
    body: bytes
    positions: list[int]
    keys: list[str]
    spans: list[tuple[int, int]]

    def __len__(self) -> int:
        return len(self.positions)

    def item(self, index: int) -> Any:
        start, end = self.spans[index]
        return json.loads(self.body[start:end])


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
# Batching


def _path_id(value: str) -> str:
    return quote(value, safe="")


def _raw_key(raw: Any, key_fields: tuple[str, ...]) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    values = [raw.get(name) for name in key_fields]
    if any(value is None or value == "" for value in values):
        return None
    return "/".join(str(value) for value in values)


class _Batcher:
    """Turns numbered items into :class:`PreparedBatch` es (and failures), lazily."""

    def __init__(
        self, method: str, path: str, spec: Object, key_fields: tuple[str, ...], batch_size: int
    ) -> None:
        if not 1 <= batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {BATCH_LIMIT}, got {batch_size}")
        self.method = method
        self.path = path
        self.spec = spec
        self.key_fields = key_fields
        self.batch_size = batch_size

    def __call__(self, numbered_items: Iterable[tuple[int, Any]]) -> Iterator[PreparedBatch | ItemFailure]:
        parts: list[bytes] = []
        positions: list[int] = []
        keys: list[str] = []
        size = _BATCH_OVERHEAD
        number = 0
        for position, raw in numbered_items:
            try:
                item = validate(self.spec, raw)
            except ValidationError as error:
                yield ItemFailure(
                    position,
                    _raw_key(raw, self.key_fields),
                    str(error),
                    errors=tuple(error.errors),
                    record=raw,
                )
                continue
            encoded = encode_json(item)
            key = "/".join(item[name] for name in self.key_fields)
            if len(encoded) + _BATCH_OVERHEAD > MAX_BODY_BYTES:
                yield ItemFailure(
                    position,
                    key,
                    f"item is {len(encoded):,} bytes as JSON; a request may be at most {MAX_BODY_BYTES:,}",
                    record=item,
                )
                continue
            grown = size + len(encoded) + (1 if parts else 0)
            if parts and (len(parts) >= self.batch_size or grown > MAX_BODY_BYTES):
                yield self._seal(number, parts, positions, keys)
                number += 1
                parts, positions, keys = [], [], []
                grown = _BATCH_OVERHEAD + len(encoded)
            parts.append(encoded)
            positions.append(position)
            keys.append(key)
            size = grown
        if parts:
            yield self._seal(number, parts, positions, keys)

    def _seal(self, number: int, parts: list[bytes], positions: list[int], keys: list[str]) -> PreparedBatch:
        spans = []
        offset = len(_BATCH_PREFIX)
        for part in parts:
            spans.append((offset, offset + len(part)))
            offset += len(part) + 1
        body = _BATCH_PREFIX + b",".join(parts) + _BATCH_SUFFIX
        return PreparedBatch(number, self.method, self.path, body, positions, keys, spans)


def _multi_status_failures(
    batch: PreparedBatch, reply: Reply, key_fields: tuple[str, ...]
) -> list[ItemFailure]:
    """The failed entries of a 207 reply: ``{"status": [{"order_id": .., "status": "OK"|error}]}``."""
    try:
        entries = reply.json()["status"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return [
            ItemFailure(position, key, "DataCue sent an unreadable 207 multi-status reply", 207)
            for position, key in zip(batch.positions, batch.keys, strict=True)
        ]
    index_of = {key: index for index, key in enumerate(batch.keys)}
    failures = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        status = entry.get("status")
        if isinstance(status, str) and status.upper() == "OK":
            continue
        key = _raw_key(entry, key_fields)
        index = index_of.get(key) if key is not None else None
        reason = status if isinstance(status, str) else json.dumps(status)
        failures.append(
            ItemFailure(
                batch.positions[index] if index is not None else None,
                key,
                reason,
                207,
                record=batch.item(index) if index is not None else None,
            )
        )
    return failures


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


class _BatchResource(_Resource):
    """The batch endpoints every resource shares: create/update many, delete many, delete all."""

    #: The collection's name in URLs (``/batch/<name>``).
    name: ClassVar[str]
    item_spec: ClassVar[Object]
    key_spec: ClassVar[Object]

    @property
    def key_fields(self) -> tuple[str, ...]:
        return tuple(self.key_spec.fields)

    def prepare_batches(
        self, numbered_items: Iterable[tuple[int, Any]], *, batch_size: int = BATCH_LIMIT
    ) -> Iterator[PreparedBatch | ItemFailure]:
        """Validate, encode and group ``(position, item)`` pairs into create/update batches.

        Lazy: it reads one batch's worth of items ahead. The importer sends what it yields
        concurrently with :meth:`send_batch`.
        """
        batcher = _Batcher("POST", f"/batch/{self.name}", self.item_spec, self.key_fields, batch_size)
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
        if reply.status == 207:
            failures = _multi_status_failures(batch, reply, self.key_fields)
            return BatchResult(max(0, len(batch) - len(failures)), failures, 1)
        return BatchResult(len(batch), [], 1)

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

    def _batch_delete(self, keys: Iterable[Mapping[str, Any]], batch_size: int) -> BatchResult:
        batcher = _Batcher("DELETE", f"/batch/{self.name}", self.key_spec, self.key_fields, batch_size)
        return self._run(batcher(enumerate(keys)))

    def delete_all(self) -> None:
        """Delete every object of this kind (``DELETE /batch/<name>/all``)."""
        self._call("DELETE", f"/batch/{self.name}/all")


class _SingleIdResource(_BatchResource):
    """Categories, users and orders: objects named by one id."""

    def _id(self, value: str | int) -> str:
        key_field = self.key_fields[0]
        normalized: dict[str, str] = validate(self.key_spec, {key_field: value})
        return normalized[key_field]

    def delete(self, object_id: str | int) -> None:
        """Delete one (``DELETE /<name>/<id>``)."""
        self._call("DELETE", f"/{self.name}/{_path_id(self._id(object_id))}")

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

    name = "products"
    item_spec = PRODUCT
    key_spec = PRODUCT_KEY

    def create(self, product: Mapping[str, Any]) -> None:
        """``POST /products``."""
        self._call("POST", "/products", validate(PRODUCT, product))

    def update(self, product_id: str | int, variant_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /products/<product_id>/<variant_id>``; the body is Create Product's less the ids."""
        key = validate(PRODUCT_KEY, {"product_id": product_id, "variant_id": variant_id})
        body = validate(PRODUCT_CHANGES, changes)
        self._call("PUT", f"/products/{_path_id(key['product_id'])}/{_path_id(key['variant_id'])}", body)

    def delete(self, product_id: str | int, variant_id: str | int | None = None) -> None:
        """Delete one variant, or (no ``variant_id``) the product and all its variants."""
        if variant_id is None:
            key = validate(_PRODUCT_ID_ONLY, {"product_id": product_id})
            self._call("DELETE", f"/products/{_path_id(key['product_id'])}")
        else:
            key = validate(PRODUCT_KEY, {"product_id": product_id, "variant_id": variant_id})
            self._call("DELETE", f"/products/{_path_id(key['product_id'])}/{_path_id(key['variant_id'])}")

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

    name = "categories"
    item_spec = CATEGORY
    key_spec = CATEGORY_KEY

    def create(self, category: Mapping[str, Any]) -> None:
        """``POST /categories``."""
        self._call("POST", "/categories", validate(CATEGORY, category))

    def update(self, category_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /categories/<category_id>``.

        Guide: the Update Category sample posts to ``/v1/category/{id}``; its endpoint
        line says ``/v1/categories/<category_id>``, like every other category URL. The
        endpoint line wins.
        """
        body = validate(CATEGORY_CHANGES, changes)
        self._call("PUT", f"/categories/{_path_id(self._id(category_id))}", body)


class Users(_SingleIdResource):
    """``/users``."""

    name = "users"
    item_spec = USER
    key_spec = USER_KEY

    def create(self, user: Mapping[str, Any]) -> None:
        """``POST /users``."""
        self._call("POST", "/users", validate(USER, user))

    def update(self, user_id: str | int, changes: Mapping[str, Any]) -> None:
        """``PUT /users/<user_id>``; the body is Create User's less ``user_id``."""
        body = validate(USER_CHANGES, changes)
        self._call("PUT", f"/users/{_path_id(self._id(user_id))}", body)


class Orders(_SingleIdResource):
    """``/orders``. A batch delete answers 207 with a status per order."""

    name = "orders"
    item_spec = ORDER
    key_spec = ORDER_KEY

    def create(self, order: Mapping[str, Any]) -> None:
        """``POST /orders``."""
        self._call("POST", "/orders", validate(ORDER, order))

    def set_status(self, order_id: str | int, order_status: str) -> None:
        """``PUT /orders/<order_id>`` with ``{"order_status": "completed" | "cancelled"}``."""
        body = validate(ORDER_STATUS_CHANGE, {"order_status": order_status})
        self._call("PUT", f"/orders/{_path_id(self._id(order_id))}", body)

    def cancel(self, order_id: str | int) -> None:
        """Mark an order cancelled."""
        self.set_status(order_id, "cancelled")


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
        timeout: float | tuple[float, float] = (3.05, 10.0),
        retries: int = 3,
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
        """The resource called ``name`` (``"products"``, ``"categories"``, ``"users"``, ``"orders"``)."""
        resources: dict[str, _BatchResource] = {
            "products": self.products,
            "categories": self.categories,
            "users": self.users,
            "orders": self.orders,
        }
        try:
            return resources[name]
        except KeyError:
            raise ValueError(f"no such resource {name!r}; expected one of {', '.join(resources)}") from None

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Client(api_url={self.transport.api_url!r})"
