"""The emulator's events API: where events go, how they authenticate, what they answer."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests

from cue_front.emulator import RunningEmulator
from cue_front.signing import events_authorization

CART = [{"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 24, "currency": "USD"}]

#: One of each documented event that answers 204.
NO_CONTENT_EVENTS: dict[str, dict[str, Any]] = {
    "cart update": {"type": "cart", "subtype": "update", "cart": CART, "cart_link": "https://shop/cart/1"},
    "wishlist add": {"type": "wishlist", "subtype": "add", "product_id": "p1", "variant_id": "v2"},
    "wishlist remove": {"type": "wishlist", "subtype": "remove", "product_id": "p1"},
    "checkout started": {"type": "checkout", "subtype": "started", "cart": CART, "cart_link": "/cart"},
    "login": {"type": "login"},
    "category pageview": {"type": "pageview", "subtype": "category", "category_name": "living-room"},
    "banner click": {"type": "click", "subtype": "banner", "banner_id": "b1"},
    "related click": {"type": "click", "subtype": "related", "product_id": "p2"},
    "similar click": {"type": "click", "subtype": "similar", "product_id": "p2"},
    "recent click": {"type": "click", "subtype": "recent", "product_id": "p2"},
}


def post_event(
    emulator: RunningEmulator, envelope: Any, path: str = "/", **headers: str
) -> requests.Response:
    headers.setdefault("Authorization", events_authorization(emulator.api_key))
    return requests.post(emulator.url + path, json=envelope, headers=headers, timeout=10)


@pytest.mark.parametrize("name", sorted(NO_CONTENT_EVENTS))
def test_documented_events_answer_204(emulator: RunningEmulator, name: str) -> None:
    event = NO_CONTENT_EVENTS[name]

    response = emulator.send_event(event, user_id="019mr8mf4r", anonymous_id="07d35b1a")

    assert response.status_code == 204
    assert response.content == b""
    received = emulator.events()[0]
    assert (received["status"], received["errors"]) == (204, [])
    assert received["body"]["event"] == event


@pytest.mark.parametrize("path", ["/", "/events"])
def test_events_are_received_at_the_root_and_at_events(emulator: RunningEmulator, path: str) -> None:
    envelope = {"user": {"anonymous_id": "a1"}, "event": {"type": "login"}}

    response = post_event(emulator, envelope, path)

    assert response.status_code == 204
    assert emulator.events()[0]["path"] == path


def test_home_pageview_answers_the_guides_four_lists(emulator: RunningEmulator) -> None:
    response = emulator.send_event({"type": "pageview", "subtype": "home"}, anonymous_id="a1")

    assert response.status_code == 200
    assert response.json() == {
        "main_banners": [],
        "sub_banners": [],
        "related_product_skus": [],
        "recent_product_skus": [],
    }


def _seed(emulator: RunningEmulator) -> None:
    products = [
        {"product_id": pid, "variant_id": "v1", "categories": ["sofas"], "name": name, "brand": "Nordic",
         "price": 299, "full_price": 399, "stock": 3, "photo_url": f"/img/{pid}.jpg",
         "link": f"/product/{pid}", "extra": {"discount": "25%"}}
        for pid, name in (("56", "Soft Sofa"), ("38", "Wicker Sofa"), ("18", "Luxury Double Bed"))
    ]
    assert emulator.rest("POST", "/batch/products", {"batch": products}).status_code == 201


def test_product_pageview_answers_similar_related_and_recent_shaped_like_the_guide(
    emulator: RunningEmulator,
) -> None:
    _seed(emulator)
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "18"}, anonymous_id="a1")

    response = emulator.send_event(
        {"type": "pageview", "subtype": "product", "product_id": "56", "variant_id": "v1"}, anonymous_id="a1"
    )

    assert response.status_code == 200
    answer = response.json()
    assert set(answer) == {"similar_product_skus", "related_product_skus", "recent_product_skus"}
    assert answer["similar_product_skus"][0] == {
        "product_id": "38", "name": "Wicker Sofa", "price": 299, "photo_url": "/img/38.jpg",
        "link": "/product/38", "category_1": "sofas", "extra": {"discount": "25%"},
    }
    assert answer["related_product_skus"] is None  # no orders yet: null, as in the guide's example
    assert answer["recent_product_skus"] == [
        {"product_id": "18", "variant_id": "v1", "name": "Luxury Double Bed", "price": 299,
         "photo_url": "/img/18.jpg", "link": "/product/18", "category_1": "sofas",
         "extra": {"discount": "25%"}}
    ]


def test_search_answers_recently_viewed(emulator: RunningEmulator) -> None:
    _seed(emulator)
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "38"}, user_id="u1")

    response = emulator.send_event({"type": "search", "term": "tables"}, user_id="u1")

    assert response.status_code == 200
    assert [item["product_id"] for item in response.json()["recent_product_skus"]] == ["38"]


def test_invalid_event_is_400_naming_the_field_path_and_is_journaled(emulator: RunningEmulator) -> None:
    bad_cart = [{**CART[0], "quantity": "two"}]

    response = emulator.send_event(
        {"type": "cart", "subtype": "update", "cart": bad_cart, "cart_link": "/cart"}, user_id="u1"
    )

    assert response.status_code == 400
    assert response.json()["errors"] == ["event.cart[0].quantity: expected an integer, got 'two'"]
    received = emulator.events(user="u1")[0]
    assert received["status"] == 400
    assert received["errors"] == ["event.cart[0].quantity: expected an integer, got 'two'"]
    assert received["body"]["event"]["cart"] == bad_cart  # exactly as sent
    assert (received["type"], received["subtype"]) == ("cart", "update")


def test_unknown_event_type_and_missing_identity_are_400(emulator: RunningEmulator) -> None:
    unknown = emulator.send_event({"type": "purchase"}, user_id="u1")
    anonymous = post_event(emulator, {"user": {}, "event": {"type": "login"}})

    assert unknown.status_code == 400
    assert unknown.json()["message"].startswith("event.type: unknown event (type='purchase'")
    assert anonymous.status_code == 400
    assert anonymous.json()["errors"] == ["user: needs user_id or anonymous_id"]


def test_invalid_json_event_is_400(emulator: RunningEmulator) -> None:
    response = requests.post(
        emulator.events_url, data=b"{oops", timeout=10,
        headers={"Authorization": events_authorization(emulator.api_key)},
    )

    assert response.status_code == 400
    assert response.json()["message"].startswith("invalid JSON")
    assert emulator.events()[0]["body"] is None


@pytest.mark.parametrize(
    ("authorization", "message"),
    [
        (None, "missing Authorization header"),
        (events_authorization("someone-else"), "unknown API key"),
        ("Basic " + base64.b64encode(b"test-key:a-signature").decode(), "empty password"),
        ("Basic %%%", "malformed Basic credentials"),
        ("Token test-key", "scheme must be Basic"),
    ],
)
def test_events_need_the_api_key_and_an_empty_password(
    emulator: RunningEmulator, authorization: str | None, message: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = requests.post(emulator.events_url, json={"user": {"anonymous_id": "a1"},
                                                        "event": {"type": "login"}},
                             headers=headers, timeout=10)

    assert response.status_code == 401
    assert message in response.json()["message"]
    assert emulator.events()[0]["status"] == 401


def test_timestamp_and_context_are_kept_for_history(emulator: RunningEmulator) -> None:
    _seed(emulator)
    context = {"ip": "12.34.56.78", "user_agent": "Mozilla/5.0 (Macintosh)"}
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "38"}, anonymous_id="a1")
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "56"}, anonymous_id="a1",
                        context=context, timestamp="2018-01-23 00:30:08.276Z")

    received = emulator.events(type="pageview.product")[0]
    home = emulator.send_event({"type": "pageview", "subtype": "home"}, anonymous_id="a1").json()

    assert (received["ip"], received["user_agent"]) == ("12.34.56.78", "Mozilla/5.0 (Macintosh)")
    assert received["timestamp"] == "2018-01-23 00:30:08.276Z"
    # The 2018 view happened before the live one, whatever the order they arrived in.
    assert [item["product_id"] for item in home["recent_product_skus"]] == ["38", "56"]


def test_without_context_the_connection_is_recorded(emulator: RunningEmulator) -> None:
    requests.post(emulator.events_url, json={"user": {"anonymous_id": "a1"}, "event": {"type": "login"}},
                  headers={"Authorization": events_authorization(emulator.api_key),
                           "User-Agent": "ShopBrowser/1.0"}, timeout=10)

    received = emulator.events()[0]

    assert (received["ip"], received["user_agent"]) == ("127.0.0.1", "ShopBrowser/1.0")
    assert received["timestamp"] == received["received_at"]


def test_events_are_listed_newest_first_and_filter_by_user_and_type(emulator: RunningEmulator) -> None:
    emulator.send_event({"type": "login"}, user_id="u1", anonymous_id="a1")
    emulator.send_event({"type": "pageview", "subtype": "home"}, anonymous_id="a2")
    emulator.send_event({"type": "pageview", "subtype": "category", "category_name": "c"}, user_id="u1")

    listed = requests.get(emulator.url + "/_emulator/events", timeout=10).json()

    assert listed == emulator.events()
    assert [(e["type"], e["subtype"]) for e in listed] == [("pageview", "category"), ("pageview", "home"),
                                                           ("login", None)]
    assert all({"received_at", "method", "path", "status", "errors", "body"} <= set(e) for e in listed)
    assert [e["type"] for e in emulator.events(user="u1")] == ["pageview", "login"]
    assert [e["user"] for e in emulator.events(user="a1")] == ["u1"]
    assert [e["subtype"] for e in emulator.events(type="pageview")] == ["category", "home"]
    assert [e["subtype"] for e in emulator.events(type="pageview.home")] == ["home"]
    filtered = requests.get(emulator.url + "/_emulator/events", params={"user": "u1", "type": "login"},
                            timeout=10).json()
    assert filtered == emulator.events(user="u1", type="login")
    assert len(requests.get(emulator.url + "/_emulator/events?limit=1", timeout=10).json()) == 1


def test_browsers_may_post_events_across_origins(emulator: RunningEmulator) -> None:
    response = emulator.send_event({"type": "login"}, anonymous_id="a1")

    asking = {"Origin": "http://shop.test", "Access-Control-Request-Method": "POST"}
    preflight = requests.options(emulator.events_url, headers=asking, timeout=10)

    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert preflight.status_code == 200
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
