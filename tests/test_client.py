"""Every REST resource method against a real loopback server: method, path, body, signature."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink
from cue_front.client import Client, ItemWarning, OverviewIds
from cue_front.encoding import MAX_BODY_BYTES
from cue_front.errors import AuthenticationError, ServerError, ValidationError
from cue_front.schema import BATCH_LIMIT, TABLE_SAYS_REQUIRED, FieldWarning
from cue_front.settings import DEFAULTS

PRODUCT = {
    "product_id": "p1",
    "variant_id": "v1",
    "categories": ["men", "summer", "jeans"],
    "name": "cool jeans",
    "brand": "zayra",
    "price": 25000,
    "full_price": 35000,
    "available": True,
    "stock": 5,
    "rating": 90,
    "extra": {"extra_feature": "details"},
    "photo_url": "https://s3.amazon.com/image.png",
    "link": "/product/p1",
}
PRODUCT_CHANGES = {k: v for k, v in PRODUCT.items() if k not in ("product_id", "variant_id")}
CATEGORY = {"category_id": "summer-jeans", "name": "Summer Jeans", "link": "/categories/summer-jeans"}
USER = {
    "user_id": "u1",
    "email": "xyz@abc.com",
    "first_name": "John",
    "profile": {"location": "santiago", "sex": "male", "segment": "platinum"},
    "wishlist": ["P1", "P3"],
    "email_subscriber": True,
    "timestamp": "2018-04-04 23:29:04Z",
}
ORDER = {
    "order_id": "o123",
    "user_id": "u456",
    "order_status": "completed",
    "cart": [{"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"}],
    "timestamp": "2018-04-04 23:29:04Z",
}


def product(number: int, **changes: Any) -> dict[str, Any]:
    return {**PRODUCT, "product_id": f"p{number}", "link": f"/p/{number}", **changes}


@pytest.fixture
def datacue(sink: Sink) -> Iterator[Client]:
    with Client(API_KEY, API_SECRET, sink.url, retries=1, backoff_factor=0) as client:
        yield client


Call = Callable[[Client], object]

EVERY_METHOD: list[tuple[str, Call, str, str, Any]] = [
    ("products.create", lambda c: c.products.create(PRODUCT), "POST", "/v1/products", PRODUCT),
    (
        "products.update",
        lambda c: c.products.update("p1", "v1", PRODUCT_CHANGES),
        "PUT",
        "/v1/products/p1/v1",
        PRODUCT_CHANGES,
    ),
    (
        "products.delete variant",
        lambda c: c.products.delete("p1", "v1"),
        "DELETE",
        "/v1/products/p1/v1",
        None,
    ),
    ("products.delete product", lambda c: c.products.delete("p1"), "DELETE", "/v1/products/p1", None),
    (
        "products.batch_create",
        lambda c: c.products.batch_create(iter([PRODUCT])),
        "POST",
        "/v1/batch/products",
        {"batch": [PRODUCT]},
    ),
    (
        "products.batch_delete",
        lambda c: c.products.batch_delete([("p1", "v1"), {"product_id": "p2", "variant_id": "v1"}]),
        "DELETE",
        "/v1/batch/products",
        {"batch": [{"product_id": "p1", "variant_id": "v1"}, {"product_id": "p2", "variant_id": "v1"}]},
    ),
    ("products.delete_all", lambda c: c.products.delete_all(), "DELETE", "/v1/batch/products/all", None),
    ("categories.create", lambda c: c.categories.create(CATEGORY), "POST", "/v1/categories", CATEGORY),
    (
        # Guide: the sample says /v1/category/{id}; the endpoint line (followed) says /categories/.
        "categories.update",
        lambda c: c.categories.update("summer-jeans", {"name": "Summer Jeans Special"}),
        "PUT",
        "/v1/categories/summer-jeans",
        {"name": "Summer Jeans Special"},
    ),
    ("categories.delete", lambda c: c.categories.delete("c1"), "DELETE", "/v1/categories/c1", None),
    (
        "categories.batch_create",
        lambda c: c.categories.batch_create([CATEGORY]),
        "POST",
        "/v1/batch/categories",
        {"batch": [CATEGORY]},
    ),
    (
        "categories.batch_delete",
        lambda c: c.categories.batch_delete(["c1", "c2", 3]),
        "DELETE",
        "/v1/batch/categories",
        {"batch": [{"category_id": "c1"}, {"category_id": "c2"}, {"category_id": "3"}]},
    ),
    (
        "categories.delete_all",
        lambda c: c.categories.delete_all(),
        "DELETE",
        "/v1/batch/categories/all",
        None,
    ),
    ("users.create", lambda c: c.users.create(USER), "POST", "/v1/users", USER),
    (
        "users.update",
        lambda c: c.users.update("u1", {"first_name": "John", "email_subscriber": False}),
        "PUT",
        "/v1/users/u1",
        {"first_name": "John", "email_subscriber": False},
    ),
    ("users.delete", lambda c: c.users.delete("u1"), "DELETE", "/v1/users/u1", None),
    (
        "users.batch_create",
        lambda c: c.users.batch_create([USER]),
        "POST",
        "/v1/batch/users",
        {"batch": [USER]},
    ),
    (
        # The guide's create-or-update form, not the PHP client's undocumented PUT.
        "users.batch_update",
        lambda c: c.users.batch_update([USER]),
        "POST",
        "/v1/batch/users",
        {"batch": [USER]},
    ),
    (
        "users.batch_delete",
        lambda c: c.users.batch_delete(["u1", {"user_id": "u2"}]),
        "DELETE",
        "/v1/batch/users",
        {"batch": [{"user_id": "u1"}, {"user_id": "u2"}]},
    ),
    ("users.delete_all", lambda c: c.users.delete_all(), "DELETE", "/v1/batch/users/all", None),
    ("orders.create", lambda c: c.orders.create(ORDER), "POST", "/v1/orders", ORDER),
    ("orders.cancel", lambda c: c.orders.cancel("o1"), "PUT", "/v1/orders/o1", {"order_status": "cancelled"}),
    (
        "orders.set_status",
        lambda c: c.orders.set_status("o1", "completed"),
        "PUT",
        "/v1/orders/o1",
        {"order_status": "completed"},
    ),
    ("orders.delete", lambda c: c.orders.delete("o1"), "DELETE", "/v1/orders/o1", None),
    (
        "orders.batch_create",
        lambda c: c.orders.batch_create([ORDER]),
        "POST",
        "/v1/batch/orders",
        {"batch": [ORDER]},
    ),
    (
        "orders.batch_delete",
        lambda c: c.orders.batch_delete(["o1", "o2"]),
        "DELETE",
        "/v1/batch/orders",
        {"batch": [{"order_id": "o1"}, {"order_id": "o2"}]},
    ),
    ("orders.delete_all", lambda c: c.orders.delete_all(), "DELETE", "/v1/batch/orders/all", None),
    ("overview.summary", lambda c: c.overview.summary(), "GET", "/v1/overview", None),
    ("overview.products", lambda c: c.overview.products(), "GET", "/v1/overview/products", None),
    ("overview.categories", lambda c: c.overview.categories(), "GET", "/v1/overview/categories", None),
    ("overview.orders", lambda c: c.overview.orders(), "GET", "/v1/overview/orders", None),
    ("overview.users", lambda c: c.overview.users(), "GET", "/v1/overview/users", None),
]


@pytest.mark.parametrize(
    ("call", "method", "path", "body"),
    [case[1:] for case in EVERY_METHOD],
    ids=[case[0] for case in EVERY_METHOD],
)
def test_every_method_sends_the_documented_request(
    sink: Sink, datacue: Client, call: Call, method: str, path: str, body: Any
) -> None:
    call(datacue)
    (request,) = sink.received()
    assert (request.method, request.path) == (method, path)
    assert request.signature_ok
    assert request.json() == body
    if body is not None:
        assert request.headers["Content-Type"] == "application/json"


def test_ids_are_sent_as_strings_and_escaped_in_paths(sink: Sink, datacue: Client) -> None:
    datacue.products.update(17, "a/b c", PRODUCT_CHANGES)
    datacue.users.delete(42)
    assert [r.path for r in sink.received()] == ["/v1/products/17/a%2Fb%20c", "/v1/users/42"]


def test_values_are_normalized_before_sending(sink: Sink, datacue: Client) -> None:
    from datetime import datetime, timezone
    from decimal import Decimal

    datacue.orders.create(
        {
            "order_id": 7,
            "user_id": "u1",
            "cart": [{"product_id": 1, "variant_id": "v", "quantity": 2, "unit_price": Decimal("9.50")}],
            "timestamp": datetime(2018, 4, 4, 23, 29, 4, tzinfo=timezone.utc),
        }
    )
    assert sink.received()[0].json() == {
        "order_id": "7",
        "user_id": "u1",
        "cart": [{"product_id": "1", "variant_id": "v", "quantity": 2, "unit_price": 9.5}],
        "timestamp": "2018-04-04 23:29:04Z",
        "order_status": "completed",
    }


@pytest.mark.parametrize(
    ("call", "path"),
    [
        (lambda c: c.products.create({**PRODUCT, "price": "99,50"}), "price"),
        (lambda c: c.products.update("p1", "", PRODUCT_CHANGES), "variant_id"),
        (lambda c: c.products.update("p1", "v1", {**PRODUCT_CHANGES, "stock": "5"}), "stock"),
        (lambda c: c.categories.create({"category_id": "c1"}), "name"),
        (lambda c: c.users.update("u1", {"user_id": "u2", "first_name": "J"}), "user_id"),
        (lambda c: c.orders.set_status("o1", "shipped"), "order_status"),
        (lambda c: c.orders.create({**ORDER, "cart": [{"product_id": "p1"}]}), "cart[0].variant_id"),
    ],
)
def test_schema_errors_name_the_field_and_send_nothing(
    sink: Sink, datacue: Client, call: Call, path: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        call(datacue)
    assert path in [error.path for error in caught.value.errors]
    assert sink.received() == []


def test_batches_hold_at_most_500_items_and_read_lazily(sink: Sink, datacue: Client) -> None:
    result = datacue.products.batch_create(product(n) for n in range(1201))
    sizes = [len(r.json()["batch"]) for r in sink.received()]
    assert sizes == [BATCH_LIMIT, BATCH_LIMIT, 201]
    assert (result.accepted, result.failed, result.requests) == (1201, 0, 3)
    assert [item["product_id"] for item in sink.batch_items("/v1/batch/products")] == [
        f"p{n}" for n in range(1201)
    ]


def test_a_batch_goes_out_before_the_iterable_is_finished(sink: Sink, datacue: Client) -> None:
    def products() -> Iterator[dict[str, Any]]:
        yield from (product(n) for n in range(BATCH_LIMIT + 1))
        raise RuntimeError("the database went away")

    with pytest.raises(RuntimeError):
        datacue.products.batch_create(products())
    assert [len(r.json()["batch"]) for r in sink.received()] == [BATCH_LIMIT]


def test_batches_stay_under_the_size_limit(sink: Sink, datacue: Client) -> None:
    description = "x" * 20_000
    result = datacue.products.batch_create(product(n, description=description) for n in range(400))
    requests = sink.received()
    assert len(requests) == 2
    assert all(len(r.body) <= MAX_BODY_BYTES for r in requests)
    assert len(requests[0].body) > MAX_BODY_BYTES - 21_000  # filled, not split early
    assert result.accepted == 400
    assert len(sink.batch_items("/v1/batch/products")) == 400


def test_an_item_too_large_alone_is_a_failure_and_the_rest_goes(sink: Sink, datacue: Client) -> None:
    huge = product(1, description="x" * MAX_BODY_BYTES)
    result = datacue.products.batch_create([product(0), huge, product(2)])
    assert result.accepted == 2
    (failure,) = result.failures
    assert (failure.position, failure.key, failure.status) == (1, "p1/v1", None)
    assert "at most" in failure.reason
    assert [i["product_id"] for i in sink.batch_items("/v1/batch/products")] == ["p0", "p2"]


def test_invalid_items_are_failures_with_field_paths(sink: Sink, datacue: Client) -> None:
    result = datacue.products.batch_create(
        [product(0), product(1, price="99,50"), "not an object", product(3)]
    )
    assert result.accepted == 2
    assert [(f.position, f.key) for f in result.failures] == [(1, "p1/v1"), (2, None)]
    assert result.failures[0].errors[0].path == "price"
    assert "price: expected a number, got '99,50'" in result.failures[0].reason
    assert len(sink.received()) == 1


def test_multi_status_failures_are_surfaced(sink: Sink, datacue: Client) -> None:
    sink.script(
        "DELETE",
        "/v1/batch/orders",
        Answer(
            207,
            {
                "status": [
                    {"order_id": "o1", "status": "OK"},
                    {"order_id": "o2", "status": "order not found"},
                    {"order_id": "o3", "status": "OK"},
                ]
            },
        ),
    )
    result = datacue.orders.batch_delete(["o1", "o2", "o3"])
    assert result.accepted == 2
    (failure,) = result.failures
    assert (failure.position, failure.key, failure.reason, failure.status) == (
        1,
        "o2",
        "order not found",
        207,
    )
    assert failure.record == {"order_id": "o2"}


def test_a_refused_batch_fails_its_items_and_the_next_batch_goes(sink: Sink, datacue: Client) -> None:
    sink.script("POST", "/v1/batch/users", Answer(400, {"error": "duplicate user_id u3"}))
    users = ({**USER, "user_id": f"u{n}"} for n in range(4))
    result = datacue.users.batch_create(users, batch_size=2)
    assert result.accepted == 2
    assert [(f.position, f.key, f.status) for f in result.failures] == [(0, "u0", 400), (1, "u1", 400)]
    assert "duplicate user_id u3" in result.failures[0].reason
    assert result.failures[0].record["user_id"] == "u0"


def test_service_errors_raise_from_batches(sink: Sink, datacue: Client) -> None:
    sink.fallback("POST", "/v1/batch/categories", Answer(401))
    with pytest.raises(AuthenticationError):
        datacue.categories.batch_create([CATEGORY])


def test_batch_size_is_bounded(datacue: Client) -> None:
    with pytest.raises(ValueError, match="between 1 and 500"):
        datacue.products.batch_create([PRODUCT], batch_size=501)


@pytest.mark.parametrize(
    "reply",
    [
        {"products": {"products": 500, "variants": 2500}, "orders": 5000, "users": 4900},
        {"products": 500, "variants": 2500, "orders": 5000, "users": 4900},
    ],
)
def test_overview_summary_reads_both_documented_shapes(
    sink: Sink, datacue: Client, reply: dict[str, Any]
) -> None:
    sink.overview_summary = reply
    summary = datacue.overview.summary()
    assert (summary.products, summary.variants, summary.orders, summary.users) == (500, 2500, 5000, 4900)
    assert summary.categories is None


def test_overview_ids(sink: Sink, datacue: Client) -> None:
    sink.overview_ids["products"] = ["P1", "P2"]
    assert datacue.overview.products() == OverviewIds(["P1", "P2"], 2)
    assert datacue.overview.users() == OverviewIds([], 0)


def test_from_config_reads_the_datacue_settings(sink: Sink) -> None:
    config = {
        **DEFAULTS,
        "DATACUE_API_KEY": API_KEY,
        "DATACUE_API_SECRET": API_SECRET,
        "DATACUE_API_URL": sink.url,
        "DATACUE_TIMEOUT": (1.5, 4.0),
        "DATACUE_RETRIES": 0,
    }
    sink.script("POST", "/v1/users", Answer(503))
    with Client.from_config(config) as client:
        assert client.transport.timeout == (1.5, 4.0)
        with pytest.raises(ServerError, match="DataCue failed with 503"):
            client.users.create(USER)
    assert len(sink.received()) == 1  # DATACUE_RETRIES=0: no retry
    assert API_SECRET not in repr(client) + repr(client.transport)


def test_no_secret_in_a_batch_result(sink: Sink, datacue: Client) -> None:
    sink.script("POST", "/v1/batch/products", Answer(400, {"error": "nope"}))
    result = datacue.products.batch_create([PRODUCT])
    assert API_SECRET not in json.dumps([f.reason for f in result.failures]) + repr(result)


# -- end to end, against the emulator --------------------------------------------------------------


@pytest.fixture
def emulated(emulator: Any) -> Iterator[Client]:
    with Client(emulator.api_key, emulator.api_secret, emulator.api_url, backoff_factor=0) as client:
        yield client


def test_round_trip_through_the_emulator(emulator: Any, emulated: Client) -> None:
    emulated.categories.create(CATEGORY)
    emulated.products.create(PRODUCT)
    emulated.products.update("p1", "v1", {**PRODUCT_CHANGES, "price": 20000})
    emulated.users.create(USER)
    emulated.orders.create(ORDER)
    emulated.orders.cancel("o123")
    result = emulated.orders.batch_create({**ORDER, "order_id": f"o{n}"} for n in range(3))
    assert (result.accepted, result.failed) == (3, 0)

    summary = emulated.overview.summary()
    assert (summary.products, summary.variants, summary.users, summary.orders) == (1, 1, 1, 4)
    assert emulated.overview.categories().ids == ["summer-jeans"]

    deleted = emulated.orders.batch_delete(["o0", "o1", "o2"])
    assert (deleted.accepted, deleted.failed) == (3, 0)
    emulated.products.delete("p1")
    emulated.users.delete("u1")
    assert emulated.overview.summary().products == 0
    assert emulator.overview()["orders"] == 1


def test_retries_ride_out_emulated_faults(emulator: Any, emulated: Client) -> None:
    emulator.set_faults(rest={"error_503": 1.0, "max_faults": 2})
    result = emulated.products.batch_create(product(n) for n in range(600))
    assert (result.accepted, result.requests) == (600, 2)
    assert emulator.overview()["products"] == 600


# -- what the official client offers, and the warning level, against the emulator ---------------


def bought_together(emulated: Client, *order_ids: str) -> None:
    """p1 and p3 in stock, bought together in each of ``order_ids`` (completed orders)."""
    emulated.products.batch_create(product(n) for n in (1, 2, 3))
    cart = [
        {"product_id": f"p{n}", "variant_id": "v1", "quantity": 1, "unit_price": 24} for n in (1, 3)
    ]
    emulated.orders.batch_create(
        {"order_id": order_id, "user_id": "u1", "cart": cart} for order_id in order_ids
    )


def related_to(emulator: Any, product_id: str) -> list[str] | None:
    """What the emulator recommends as bought with ``product_id`` (None: nothing)."""
    answer = emulator.send_event({"type": "pageview", "subtype": "product", "product_id": product_id},
                                 user_id="viewer").json()
    related = answer["related_product_skus"]
    return None if related is None else [item["product_id"] for item in related]


def test_batch_cancel_sends_the_official_clients_patch_and_returns_unknown_orders_as_failures(
    emulator: Any, emulated: Client
) -> None:
    bought_together(emulated, "o1", "o2")
    assert related_to(emulator, "p1") == ["p3"]

    result = emulated.orders.batch_cancel(["o1", "o404", {"order_id": "o2"}])

    assert (result.accepted, result.requests) == (2, 1)
    (failure,) = result.failures
    assert (failure.position, failure.key, failure.status) == (1, "o404", 207)
    assert "no order 'o404'" in failure.reason
    assert failure.record == {"order_id": "o404", "order_status": "cancelled"}
    assert related_to(emulator, "p1") is None  # o1 and o2 stopped counting as sales
    (sent,) = emulator.requests(type="orders.batch_status")
    assert (sent["method"], sent["path"], sent["status"]) == ("PATCH", "/v1/batch/orders", 207)
    assert sent["body"] == {"batch": [
        {"order_id": "o1", "order_status": "cancelled"},
        {"order_id": "o404", "order_status": "cancelled"},
        {"order_id": "o2", "order_status": "cancelled"},
    ]}


def test_batch_cancel_validates_before_sending_and_reads_lazily(emulator: Any, emulated: Client) -> None:
    bought_together(emulated, *(f"o{n}" for n in range(3)))

    result = emulated.orders.batch_cancel((f"o{n}" for n in [0, 1, 2]), batch_size=2)
    refused = emulated.orders.batch_cancel(["", {"order_id": "o1", "note": "x"}])

    assert (result.accepted, result.failed, result.requests) == (3, 0, 2)
    assert [(f.position, f.status) for f in refused.failures] == [(0, None), (1, None)]
    assert refused.failures[1].errors[0].path == "note"
    assert len(emulator.requests(type="orders.batch_status")) == 2  # the refused ones were never sent


def test_the_queued_twin_delivers_batch_cancel_through_the_outbox(
    make_app: Callable[..., Flask], emulator: Any, emulated: Client
) -> None:
    bought_together(emulated, "o1")
    shop = make_app(DATACUE_DELIVERY="outbox", **emulator.config)

    with shop.app_context():
        queued = shop.extensions["datacue"].extension.queued.orders.batch_cancel(["o1"])
        assert shop.extensions["datacue"].delivery.flush(10)

    assert (queued.accepted, queued.failed) == (1, 0)  # accepted for delivery
    (sent,) = emulator.requests(type="orders.batch_status")
    assert (sent["method"], sent["status"]) == ("PATCH", 207)
    assert related_to(emulator, "p1") is None


def test_batch_update_replaces_what_datacue_holds(emulator: Any, emulated: Client) -> None:
    emulated.categories.batch_create(
        [{"category_id": "c1", "name": "Old"}, {"category_id": "c2", "name": "Two"}]
    )

    result = emulated.categories.batch_update([{"category_id": "c1", "name": "New"}])

    assert (result.accepted, result.failed) == (1, 0)
    assert emulator.overview()["categories"] == 2
    newest = emulator.requests()[0]
    assert (newest["method"], newest["path"], newest["action"]) == (
        "POST", "/v1/batch/categories", "batch_create",
    )
    assert newest["body"] == {"batch": [{"category_id": "c1", "name": "New"}]}


def test_what_the_guides_samples_send_against_the_table_is_sent_and_logged(
    emulator: Any, emulated: Client, caplog: pytest.LogCaptureFixture
) -> None:
    # The guide's batch users sample, without first_name, and its Update User sample, with user_id.
    users = [{"user_id": "u1", "email": "u1@abc.com"}, {"user_id": "u2", "email": "u2@abc.com"}]
    with caplog.at_level(logging.WARNING, logger="cue_front.client"):
        result = emulated.users.batch_create(users)
        emulated.users.update("u1", {"user_id": "u1", "first_name": "John"})

    assert (result.accepted, result.failed) == (2, 0)
    warning = FieldWarning("first_name", TABLE_SAYS_REQUIRED)
    assert result.warnings == [ItemWarning(0, "u1", (warning,)), ItemWarning(1, "u2", (warning,))]
    assert [record.getMessage() for record in caplog.records] == [
        "POST /batch/users: first_name: the guide's table says required (2 item(s), the first at"
        " position 0); sent all the same, as the guide's own samples send it",
        "PUT /users/u1: user_id: the guide's table leaves it out of an update; sent all the same,"
        " as the guide's own samples send it",
    ]
    # The emulator took both and says the same.
    update, batch = emulator.requests()[:2]
    assert (update["status"], update["warnings"]) == (
        204, ["user_id: the guide's table leaves it out of an update"],
    )
    assert (batch["status"], batch["warnings"]) == (201, [
        "batch[0].first_name: the guide's table says required",
        "batch[1].first_name: the guide's table says required",
    ])


def test_data_the_table_agrees_with_logs_no_warning(
    emulated: Client, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="cue_front.client"):
        emulated.users.create(USER)
        result = emulated.users.batch_create([USER])
    assert result.warnings == []
    assert caplog.records == []
