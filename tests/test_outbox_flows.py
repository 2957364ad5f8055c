"""Events and store changes through the durable outbox, end to end against the emulator."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask

from cue_front import signals, track
from cue_front.emulator import RunningEmulator
from tests.support.samples import PRODUCT


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    return make_app(DATACUE_DELIVERY="outbox", **emulator.config)


def test_a_tracked_event_is_durable_first_and_keeps_its_time(shop: Flask, emulator: RunningEmulator) -> None:
    state = shop.extensions["datacue"]
    emulator.set_faults(events={"error_503": 1.0, "max_faults": 2})  # DataCue down for a moment
    before = datetime.now(timezone.utc).replace(microsecond=0)
    with shop.test_request_context(
        headers={"User-Agent": "Browser/2"}, environ_base={"REMOTE_ADDR": "10.1.2.3"}
    ):
        assert track({"type": "wishlist", "subtype": "add", "product_id": "p1"}) is True
    assert state.delivery.flush(10)
    delivered = [item for item in emulator.events() if item["status"] == 204]
    (item,) = delivered
    assert item["body"]["context"] == {"ip": "10.1.2.3", "user_agent": "Browser/2"}
    tracked_at = datetime.strptime(item["body"]["timestamp"], "%Y-%m-%d %H:%M:%S.%fZ")
    assert tracked_at.replace(tzinfo=timezone.utc) >= before
    # Two refusals were retried, and the timestamp is still the moment of track(), not of delivery.
    assert [entry["status"] for entry in emulator.events()] == [204, 503, 503]
    assert len({entry["body"]["timestamp"] for entry in emulator.events()}) == 1
    assert state.outbox.stats().pending == 0


def test_queued_store_changes_arrive_in_order(shop: Flask, emulator: RunningEmulator) -> None:
    datacue = shop.extensions["datacue"].extension
    with shop.app_context():
        datacue.queued.products.create(PRODUCT)
        changes = {key: value for key, value in PRODUCT.items() if key not in ("product_id", "variant_id")}
        datacue.queued.products.update("p1", "v1", {**changes, "stock": 2})
        order = {
            "order_id": "o1",
            "user_id": "u1",
            "cart": [{"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 299}],
        }
        datacue.queued.orders.create(order)
        datacue.queued.orders.cancel("o1")
        assert shop.extensions["datacue"].delivery.flush(10)
    actions = [f"{item['type']}.{item['action']}" for item in reversed(emulator.requests())]
    # Each entity's changes keep their order (different entities may interleave).
    assert [action for action in actions if action.startswith("products")] == [
        "products.create",
        "products.update",
    ]
    assert [action for action in actions if action.startswith("orders")] == ["orders.create", "orders.status"]
    assert all(item["status"] in (201, 204) for item in emulator.requests())
    assert emulator.overview()["products"] == 1


def test_signals_report_queued_and_delivered(shop: Flask) -> None:
    seen: list[tuple[str, Any, dict[str, Any]]] = []

    def record(name: str) -> Callable[..., None]:
        return lambda sender, **kwargs: seen.append((name, sender, kwargs))

    with signals.queued.connected_to(record("queued")), signals.delivered.connected_to(record("delivered")):
        with shop.test_request_context():
            track({"type": "login"})
        assert shop.extensions["datacue"].delivery.flush(10)
        with shop.app_context():
            shop.extensions["datacue"].extension.queued.users.update("u1", {"first_name": "Ana"})
        assert shop.extensions["datacue"].delivery.flush(10)
    assert [name for name, _, _ in seen] == ["queued", "delivered", "queued", "delivered"]
    assert all(sender is shop for _, sender, _ in seen)
    assert [kwargs["kind"] for _, _, kwargs in seen] == ["event", "event", "rest", "rest"]
    # An event is queued through the journal: it has a row id once the worker moved it.
    assert seen[0][2]["row_id"] is None and isinstance(seen[1][2]["row_id"], int)
    assert seen[2][2]["row_id"] == seen[3][2]["row_id"]


def test_a_refused_change_is_a_visible_retryable_dead_letter(shop: Flask, emulator: RunningEmulator) -> None:
    datacue = shop.extensions["datacue"].extension
    runner = shop.test_cli_runner()
    with shop.app_context():
        datacue.queued.orders.cancel("o404")  # DataCue has no such order: 404, for good
        assert shop.extensions["datacue"].delivery.flush(10)
    status = runner.invoke(args=["datacue", "status"])
    assert "dead letters:    1" in status.output
    dead = runner.invoke(args=["datacue", "outbox", "dead"])
    assert "PUT /orders/o404 -> 404" in dead.output
    emulator.rest("POST", "/orders", {"order_id": "o404", "user_id": "u1"})
    assert "1 dead letter(s) queued again" in runner.invoke(args=["datacue", "outbox", "retry-dead"]).output
    flushed = runner.invoke(args=["datacue", "outbox", "flush", "--timeout", "10"])
    assert flushed.exit_code == 0
    assert "pending: 0, dead letters: 0" in flushed.output
    assert emulator.requests(type="orders.status")[0]["status"] == 204


def test_a_full_outbox_refuses_events_loudly_but_in_one_line(
    make_app: Callable[..., Flask], emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_MAX_ROWS=2, **emulator.config)
    emulator.set_faults(events={"error_503": 1.0})  # DataCue down: nothing leaves the outbox
    refusals: list[dict[str, Any]] = []
    with (
        signals.outbox_full.connected_to(lambda sender, **kwargs: refusals.append(kwargs)),
        app.test_request_context(),
    ):
        accepted = [track({"type": "search", "term": f"t{n}"}) for n in range(5)]
    assert accepted == [True, True, False, False, False]
    assert len(refusals) == 3 and all(refusal["kind"] == "event" for refusal in refusals)
    assert app.extensions["datacue"].outbox.stats().refused == 3
    full_lines = [record for record in caplog.records if "outbox full" in record.getMessage()]
    assert len(full_lines) == 1 and full_lines[0].levelname == "ERROR"
    stats = app.extensions["datacue"].outbox.stats()
    assert stats.pending + stats.in_flight == 2  # what was accepted is kept, being retried
