"""One person is one visitor in the demo store, whoever else sends it forms or types their email.

Every form is CSRF-protected (cue-front's JSON endpoint checks its Origin
instead); a guest whose email already names a shopper is recorded under a fresh
guest id; the links sent to DataCue lead to the shop's configured address, never
to a request's Host; the session cookie follows the app's https settings.
The logout in a real browser is in ``tests/browser/test_demo_visitors.py``.
"""

from __future__ import annotations

from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any

import html5lib
import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from demo_store import integration
from demo_store.testing import anonymous_id, create_test_app, rows
from tests.support.demo_forms import add, checkout, log_in, received, rest_calls
from tests.support.pages_html import config_from_html


def post_forms(html: str) -> list[dict[str, str]]:
    """The page's forms that post: their action, and the CSRF token each carries ("" if none)."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    forms = []
    for form in document.iter("form"):
        if form.attrib.get("method", "get").lower() != "post":
            continue
        tokens = [
            i.attrib.get("value", "") for i in form.iter("input") if i.attrib.get("name") == "csrf_token"
        ]
        forms.append({"action": form.attrib["action"], "token": tokens[0] if tokens else ""})
    return forms


def form_endpoints(shop: Flask) -> set[str]:
    """Every endpoint of the shop's own that takes a POST (cue-front's are not forms)."""
    return {
        rule.endpoint
        for rule in shop.url_map.iter_rules()
        if "POST" in (rule.methods or ()) and not rule.endpoint.startswith("datacue.")
    }


def test_every_form_that_posts_carries_the_csrf_token(shop: Flask, client: FlaskClient) -> None:
    log_in(client, "chloe@example.com")  # her wishlist is seeded
    add(client, "p144", "no-variants")
    checkout(client, name="Chloé Martin")  # an order to cancel on the account page
    add(client, "p141", "no-variants")
    pages = ["/", "/p/p144", "/cart", "/checkout", "/account", "/wishlist"]
    forms = [form for path in pages for form in post_forms(client.get(path).get_data(as_text=True))]
    client.post("/logout")
    for path in ("/login", "/register"):
        forms += post_forms(client.get(path).get_data(as_text=True))
    assert all(form["token"] for form in forms), [form for form in forms if not form["token"]]
    adapter = shop.url_map.bind("localhost")
    posted_to = {adapter.match(form["action"].split("?")[0], method="POST")[0] for form in forms}
    assert posted_to == form_endpoints(shop)  # a form for each of them, all of them seen


def test_a_form_posted_without_this_browser_s_token_is_refused(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    log_in(client, "ana@example.com")
    add(client, "p144", "no-variants")
    order_id = checkout(client).headers["Location"].rsplit("/", 1)[1]
    sent_before = (len(emulator.events()), len(emulator.requests()))
    forms = {
        "accounts.login": ("/login", {"email": "ben@example.com", "password": "demo"}),
        "accounts.logout": ("/logout", {}),
        "accounts.register": (
            "/register",
            {"email": "m@example.org", "first_name": "Mallory", "password": "long enough"},
        ),
        "basket.add_to_cart": ("/cart/add", {"product_id": "p141", "variant_id": "no-variants"}),
        "basket.update_cart": ("/cart/update", {"product_id": "p144", "variant_id": "no-variants"}),
        "basket.start_checkout": ("/checkout/start", {}),
        "basket.checkout": ("/checkout", {"name": "M", "address": "A", "card": "4242 4242 4242"}),
        "basket.cancel_order": (f"/orders/{order_id}/cancel", {}),
        "accounts.add_to_wishlist": ("/wishlist/add", {"product_id": "p144"}),
        "accounts.remove_from_wishlist": ("/wishlist/remove", {"product_id": "p144"}),
    }
    assert set(forms) == form_endpoints(shop)
    # Ana's own browser (her session cookie), posting without a token, and with another browser's.
    with client.session_transaction() as ana_session:
        assert ana_session["_user_id"] == "u1001"
    cookie = client.get_cookie("session")
    assert cookie is not None
    without = FlaskClient(shop, shop.response_class)
    without.set_cookie("session", cookie.value)
    others = shop.test_client().csrf_token()  # type: ignore[attr-defined]
    for path, data in forms.values():
        for token in ({}, {"csrf_token": others}):
            response = without.post(path, data={**data, **token})
            assert response.status_code == 400, (path, token)
            assert "CSRF" in response.get_data(as_text=True)
    assert (len(emulator.events()), len(emulator.requests())) == sent_before  # nothing was done
    home = client.get("/").get_data(as_text=True)
    assert "Hi, Ana" in home and 'data-test="cart-count">0<' in home  # still logged in, nothing added


def test_cue_front_js_posts_its_events_without_a_form_token(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    client.get("/")
    event = {"type": "click", "subtype": "banner", "banner_id": "b-knitwear-main"}
    response = client.post("/datacue/events", json={"event": event}, headers={"Origin": "http://localhost"})
    assert response.status_code == 204
    assert received(emulator, "click")[-1]["event"] == event
    # Its own check still holds: another site's page may not post to it.
    refused = client.post("/datacue/events", json={"event": event}, headers={"Origin": "http://evil.example"})
    assert refused.status_code == 403


def seeded_guest(shop: Flask) -> tuple[str, str]:
    """An email of the seeded history's guest checkouts, and that guest's first name."""
    (row,) = rows(shop, "SELECT email, name FROM orders WHERE user_id IS NULL LIMIT 1")
    return row["email"], row["name"].split()[0]


def assert_claimed_nobody(
    shop: Flask, emulator: RunningEmulator, order_id: str, visitor: str, claimed: dict[str, str | None]
) -> str:
    """The order went to DataCue under a fresh guest id, and each shopper in ``claimed`` (by DataCue
    user_id: their first name there, or ``None`` for no such user) kept their profile and got none
    of the guest's history. Returns the guest id."""
    guest = f"guest-{order_id}"
    (row,) = rows(shop, "SELECT * FROM orders WHERE order_id = ?", order_id)
    assert row["user_id"] is None and row["guest_id"] == guest
    orders = [call["body"] for call in rest_calls(emulator, "orders.create")]
    assert [order["user_id"] for order in orders if order["order_id"] == order_id] == [guest]
    created = rest_calls(emulator, "users.create")[-1]["body"]
    assert created == {
        "user_id": guest,
        "first_name": "Mallory",
        "guest_account": True,
        "anonymous_id": visitor,
        "timestamp": created["timestamp"],
    }
    store = emulator.state.store
    for user_id, first_name in claimed.items():
        kept = store.user(user_id)
        assert (kept and kept["first_name"]) == first_name, kept
    assert store.user_for(visitor) == guest  # the guest's browsing is this order's guest's alone
    tied = {e["user"].get("user_id") for e in received(emulator) if e["user"].get("anonymous_id") == visitor}
    assert not tied & set(claimed)
    return guest


@pytest.mark.parametrize("whose", ["an account's", "an account's, in capitals", "a guest's of the history"])
def test_a_guest_checkout_with_an_email_that_names_a_shopper_claims_nobody(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator, whose: str
) -> None:
    if whose.startswith("an account's"):
        email = "ANA@EXAMPLE.COM" if "capitals" in whose else "ana@example.com"
        claimed: dict[str, str | None] = {"u1001": "Ana", "ana@example.com": None, email: None}
    else:
        email, first_name = seeded_guest(shop)
        claimed = {email: first_name}
    client.get("/p/p128")
    add(client, "p141", "no-variants")
    visitor = anonymous_id(client)
    response = checkout(client, email=email, name="Mallory Mallet")
    order_id = response.headers["Location"].rsplit("/", 1)[1]
    guest = assert_claimed_nobody(shop, emulator, order_id, visitor, claimed)
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert config_from_html(html)["user_id"] == guest and "Thank you, Mallory!" in html
    # The history import (the guide's step 1, run again) says the same.
    integration.import_history(shop)
    assert_claimed_nobody(shop, emulator, order_id, visitor, claimed)
    assert emulator.state.store.user(guest) == {
        "user_id": guest,
        "first_name": "Mallory",
        "guest_account": True,
        "timestamp": emulator.state.store.user(guest)["timestamp"],  # type: ignore[index]
    }


def test_a_first_time_guest_is_known_by_their_email_and_the_next_one_with_it_is_not(
    shop: Flask, emulator: RunningEmulator
) -> None:
    first, second = shop.test_client(), shop.test_client()
    add(first, "p141", "no-variants")
    gus = anonymous_id(first)
    checkout(first, email="gus@example.org", name="Gus Guest")
    (created,) = rest_calls(emulator, "users.create")
    assert created["body"]["user_id"] == "gus@example.org" and created["body"]["anonymous_id"] == gus
    assert emulator.state.store.user_for(gus) == "gus@example.org"
    add(second, "p144", "no-variants")
    visitor = anonymous_id(second)
    response = checkout(second, email="gus@example.org", name="Mallory Mallet")
    order_id = response.headers["Location"].rsplit("/", 1)[1]
    assert_claimed_nobody(shop, emulator, order_id, visitor, {"gus@example.org": "Gus"})
    assert emulator.state.store.user_for(gus) == "gus@example.org"


def cart_links(emulator: RunningEmulator) -> list[str]:
    return [
        envelope["event"]["cart_link"] for envelope in received(emulator) if "cart_link" in envelope["event"]
    ]


def test_cart_links_lead_to_the_shop_s_address_whatever_host_a_request_names(
    emulator: RunningEmulator, tmp_path: Path, demo_template: Path
) -> None:
    shop = create_test_app(
        emulator, tmp_path / "instance", demo_template, DATACUE_SHOP_URL="https://fernhill.example"
    )
    client = shop.test_client()
    evil: dict[str, Any] = {"base_url": "http://evil.example"}  # Host: evil.example
    add(client, "p144", "no-variants", **evil)
    client.post(
        "/cart/update", data={"product_id": "p144", "variant_id": "no-variants", "quantity": "2"}, **evil
    )
    client.post("/checkout/start", **evil)
    assert len(received(emulator, "cart")) == 2 and len(received(emulator, "checkout")) == 1
    assert cart_links(emulator) == ["https://fernhill.example/cart"] * 3


@pytest.mark.parametrize(
    ("config", "secure"),
    [
        ({}, False),
        ({"PREFERRED_URL_SCHEME": "https"}, True),
        ({"PREFERRED_URL_SCHEME": "https", "SESSION_COOKIE_SECURE": False}, False),
        ({"SESSION_COOKIE_SECURE": True}, True),
    ],
)
def test_the_session_cookie_follows_the_app_s_https_settings(
    emulator: RunningEmulator, tmp_path: Path, demo_template: Path, config: dict[str, Any], secure: bool
) -> None:
    shop = create_test_app(emulator, tmp_path / "instance", demo_template, **config)
    response = shop.test_client().get("/login")  # its form's token is kept in the session
    (header,) = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    morsel = SimpleCookie(header)["session"]
    assert bool(morsel["secure"]) is secure
    assert morsel["httponly"] is True and morsel["samesite"] == "Lax"
