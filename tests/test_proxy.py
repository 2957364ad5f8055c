"""The first-party endpoint: what a browser may send, what it may not, and what reaches DataCue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from tests.support.shops import session_login_shop

SITE = "http://localhost"


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    return session_login_shop(make_app, emulator)


def post(client: FlaskClient, body: Any, **headers: str) -> Any:
    headers.setdefault("Origin", SITE)
    return client.post("/datacue/events", json=body, headers=headers)


def test_a_browser_event_is_forwarded_with_the_servers_identity(
    shop: Flask, emulator: RunningEmulator
) -> None:
    client = shop.test_client()
    with client.session_transaction() as browser_session:
        browser_session["user_id"] = "u1"
    spoofed = {
        "event": {"type": "wishlist", "subtype": "add", "product_id": "p9"},
        "user": {"user_id": "victim"},
        "context": {"ip": "6.6.6.6"},
        "timestamp": "2001-01-01 00:00:00Z",
    }
    response = post(client, spoofed, **{"User-Agent": "Browser/1.0"})
    assert response.status_code == 204
    (item,) = emulator.events()
    envelope = item["body"]
    assert envelope["event"] == spoofed["event"]
    assert envelope["user"]["user_id"] == "u1"  # the server's idea of the visitor, not "victim"
    assert envelope["context"] == {"ip": "127.0.0.1", "user_agent": "Browser/1.0"}
    assert envelope["timestamp"] != "2001-01-01 00:00:00Z"


@pytest.mark.parametrize(
    "event",
    [{"type": "pageview", "subtype": "home"}, {"type": "search", "term": "tables"}],
    ids=["home", "search"],
)
def test_recommendation_events_answer_with_datacues_json(
    shop: Flask, emulator: RunningEmulator, event: dict[str, Any]
) -> None:
    response = post(shop.test_client(), {"event": event})
    assert response.status_code == 200
    assert "recent_product_skus" in response.get_json()
    assert emulator.events()[0]["body"]["event"] == event


@pytest.mark.parametrize(
    ("send", "status", "message"),
    [
        (
            lambda c: c.post(
                "/datacue/events", data="{", content_type="application/json", headers={"Origin": SITE}
            ),
            400,
            "malformed JSON",
        ),
        (
            lambda c: c.post("/datacue/events", data="type=login", headers={"Origin": SITE}),
            415,
            "application/json",
        ),
        (lambda c: post(c, {"event": {"type": "login"}, "padding": "x" * 20000}), 413, "over 16384 bytes"),
        (
            lambda c: post(c, {"event": {"type": "order", "subtype": "cancel", "order_id": "o1"}}),
            400,
            "unknown event",
        ),
        (
            lambda c: post(
                c, {"event": {"type": "cart", "subtype": "update", "cart": [{"product_id": "p1"}]}}
            ),
            400,
            "event.cart[0].variant_id: required field missing",
        ),
        (lambda c: post(c, {"event": {"type": "login"}, "order": {}}), 400, "unknown member(s): order"),
        (lambda c: post(c, [{"type": "login"}]), 400, "expected a JSON object"),
        (lambda c: post(c, {"event": {"type": "login"}}, Origin="https://evil.example"), 403, "this site"),
        (lambda c: c.post("/datacue/events", json={"event": {"type": "login"}}), 403, "this site"),
    ],
    ids=[
        "malformed",
        "not-json",
        "oversized",
        "rest-only",
        "invalid",
        "extra-member",
        "not-object",
        "cross-origin",
        "no-origin",
    ],
)
def test_refusals_forward_nothing(
    shop: Flask, emulator: RunningEmulator, send: Callable[[FlaskClient], Any], status: int, message: str
) -> None:
    response = send(shop.test_client())
    assert response.status_code == status
    assert message in response.get_json()["error"]
    assert emulator.events() == []


def test_same_origin_by_referer(shop: Flask, emulator: RunningEmulator) -> None:
    response = shop.test_client().post(
        "/datacue/events", json={"event": {"type": "login"}}, headers={"Referer": f"{SITE}/cart"}
    )
    assert response.status_code == 204
    assert len(emulator.events()) == 1


def test_rate_limited_per_client(make_app: Callable[..., Flask], emulator: RunningEmulator) -> None:
    app = make_app(DATACUE_DELIVERY="sync", DATACUE_PROXY_RATE_LIMIT="3/minute", **emulator.config)
    client = app.test_client()
    statuses = [post(client, {"event": {"type": "login"}}).status_code for _ in range(4)]
    assert statuses == [204, 204, 204, 429]
    assert len(emulator.events()) == 3


def test_the_endpoint_can_be_turned_off(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_PROXY_ENABLED=False)
    assert post(app.test_client(), {"event": {"type": "login"}}).status_code == 404
