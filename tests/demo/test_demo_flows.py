"""The demo store's flows with plain HTML forms (no JavaScript): what reaches DataCue, under whose name.

Cart changes, login (with the anonymous visitor joined to the account),
registration, the wishlist, checkout, orders placed by customers and guests,
and cancellations, each checked in the emulator that plays DataCue.
"""

from __future__ import annotations

from typing import Any

import html5lib
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text

from cue_front.emulator import RunningEmulator
from demo_store import catalog
from demo_store.db import write_transaction
from demo_store.testing import anonymous_id
from tests.support.demo_forms import add, checkout, log_in, received, rest_calls
from tests.support.pages_html import config_from_html


def product(shop: Flask, product_id: str) -> catalog.Product:
    with shop.app_context():
        found = catalog.load_product(product_id)
    assert found is not None
    return found


def in_stock_variant(shop: Flask, product_id: str) -> str:
    return next(v.variant_id for v in product(shop, product_id).variants if v.stock >= 2)


def line(product_id: str, variant_id: str, quantity: int, price: float) -> dict[str, Any]:
    return {
        "product_id": product_id,
        "variant_id": variant_id,
        "quantity": quantity,
        "unit_price": price,
        "currency": "USD",
    }


def cart_rows(html: str) -> list[tuple[str, str]]:
    """The cart page's lines: (product id, variant id)."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [
        (tr.attrib["data-product-id"], tr.attrib["data-variant-id"])
        for tr in document.iter("tr")
        if "data-product-id" in tr.attrib
    ]


def listed(html: str) -> list[str]:
    """The products a listing (category, search, wishlist) shows, by link."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [a.attrib["href"] for a in document.iter("a") if a.attrib.get("class") == "card__link"]


def recently_viewed(html: str) -> list[str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [
        a.attrib["data-dc-product-id"]
        for a in document.iter("a")
        if a.attrib.get("data-dc-kind") == "recent" and "data-dc-product-id" in a.attrib
    ]


def test_every_cart_change_sends_the_whole_cart_from_the_server(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    boots = in_stock_variant(shop, "p117")
    add(client, "p144", "no-variants", 2)
    add(client, "p117", boots)
    client.post("/cart/update", data={"product_id": "p144", "variant_id": "no-variants", "quantity": "1"})
    client.post("/cart/update", data={"product_id": "p117", "variant_id": boots, "remove": "1"})
    carts = received(emulator, "cart")
    board, boot = line("p144", "no-variants", 2, 34), line("p117", boots, 1, 115.5)
    assert [envelope["event"]["cart"] for envelope in carts] == [
        [board],
        [board, boot],
        [{**board, "quantity": 1}, boot],
        [{**board, "quantity": 1}],
    ]
    assert {envelope["event"]["cart_link"] for envelope in carts} == {"http://localhost/cart"}
    # An anonymous visitor: the server's signed cookie names them, never the browser.
    assert {envelope["user"]["anonymous_id"] for envelope in carts} == {anonymous_id(client)}
    assert all("user_id" not in envelope["user"] for envelope in carts)
    html = client.get("/cart").get_data(as_text=True)
    assert cart_rows(html) == [("p144", "no-variants")]
    assert 'data-test="cart-total">$34.00<' in html


def test_login_joins_the_anonymous_visitor_to_the_account(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    client.get("/p/p128")  # viewed before logging in
    add(client, "p144", "no-variants")
    visitor = anonymous_id(client)
    response = log_in(client, "ana@example.com", next_path="/cart")
    assert response.status_code == 302 and response.headers["Location"] == "/cart"
    (login,) = received(emulator, "login")
    assert login["event"] == {"type": "login"}
    assert login["user"]["user_id"] == "u1001" and login["user"]["anonymous_id"] == visitor
    assert login["user"]["profile"] == {"sex": "female", "location": "Lisbon", "segment": "gold"}
    # The cart survived the login, and is now Ana's.
    html = client.get("/cart").get_data(as_text=True)
    assert cart_rows(html) == [("p144", "no-variants")] and config_from_html(html)["user_id"] == "u1001"
    add(client, "p141", "no-variants")
    assert received(emulator, "cart")[-1]["user"]["user_id"] == "u1001"
    # DataCue joined the histories: what she viewed anonymously is her recently viewed now.
    assert recently_viewed(client.get("/").get_data(as_text=True))[0] == "p128"


@pytest.mark.parametrize(
    "target", ["//evil.example", "/\t/evil.example", "/\\evil.example", "https://evil.example"]
)
def test_login_never_sends_anyone_to_another_site(client: FlaskClient, target: str) -> None:
    response = client.post(
        "/login", query_string={"next": target}, data={"email": "ana@example.com", "password": "demo"}
    )
    assert response.status_code == 302 and response.headers["Location"] == "/"


def test_a_wrong_password_logs_nobody_in(client: FlaskClient, emulator: RunningEmulator) -> None:
    response = client.post("/login", data={"email": "ana@example.com", "password": "guess"})
    assert response.status_code == 401
    assert "do not match" in response.get_data(as_text=True)
    assert received(emulator, "login") == []
    # The customers of the seeded history have no password at all.
    assert (
        client.post("/login", data={"email": "aiko.andersen.0@example.net", "password": ""}).status_code
        == 401
    )


def test_registering_creates_the_user_in_datacue_with_their_anonymous_history(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    client.get("/")
    visitor = anonymous_id(client)
    form = {
        "email": "new@example.com",
        "first_name": "Noor",
        "last_name": "Haddad",
        "location": "Ghent",
        "password": "correct horse",
    }
    response = client.post("/register", data=form)
    assert response.status_code == 302
    (created,) = rest_calls(emulator, "users.create")
    user = created["body"]
    assert user["user_id"] == "u1028" and user["anonymous_id"] == visitor
    assert user["email"] == "new@example.com" and user["profile"] == {
        "segment": "member",
        "location": "Ghent",
    }
    (login,) = received(emulator, "login")
    assert login["user"] == {"user_id": "u1028", "anonymous_id": visitor, "profile": user["profile"]}
    assert "Hi, Noor" in client.get("/").get_data(as_text=True)
    # The same email cannot register twice.
    again = client.post("/register", data=form).get_data(as_text=True)
    assert "already an account" in again


def test_wishlist_add_and_remove(shop: Flask, client: FlaskClient, emulator: RunningEmulator) -> None:
    response = client.post("/wishlist/add", data={"product_id": "p113", "variant_id": "no-such"})
    assert response.headers["Location"] == "/login?next=/p/p113"  # anonymous: log in first
    assert received(emulator, "wishlist") == []
    log_in(client, "chloe@example.com")
    seeded = listed(client.get("/wishlist").get_data(as_text=True))
    assert len(seeded) == 2  # the demo accounts come with a wishlist
    sweater = next(p for p in ("p109", "p110", "p111", "p112") if f"/p/{p}" not in seeded)
    size = in_stock_variant(shop, sweater)
    client.post("/wishlist/add", data={"product_id": sweater, "variant_id": size})
    assert listed(client.get("/wishlist").get_data(as_text=True)) == [f"/p/{sweater}", *seeded]
    client.post("/wishlist/remove", data={"product_id": sweater})
    assert listed(client.get("/wishlist").get_data(as_text=True)) == seeded
    client.post("/wishlist/add", data={"product_id": "p144", "variant_id": "no-variants"})
    assert [(e["event"], e["user"]["user_id"]) for e in received(emulator, "wishlist")] == [
        ({"type": "wishlist", "subtype": "add", "product_id": sweater, "variant_id": size}, "u1003"),
        ({"type": "wishlist", "subtype": "remove", "product_id": sweater}, "u1003"),
        ({"type": "wishlist", "subtype": "add", "product_id": "p144"}, "u1003"),  # no variants: none sent
    ]


def test_a_customer_checks_out_and_datacue_gets_the_order_and_the_new_stock(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    log_in(client, "ana@example.com")
    parka = in_stock_variant(shop, "p101")
    stock_before = {v.variant_id: v.stock for v in product(shop, "p101").variants}
    board_before = product(shop, "p144").variants[0].stock
    add(client, "p101", parka, 2)
    add(client, "p144", "no-variants")
    cart = [line("p101", parka, 2, 144), line("p144", "no-variants", 1, 34)]

    response = checkout(client)
    (started,) = received(emulator, "checkout")
    assert started["event"] == {
        "type": "checkout",
        "subtype": "started",
        "cart": cart,
        "cart_link": "http://localhost/cart",
    }
    assert started["user"]["user_id"] == "u1001"

    assert response.status_code == 302
    order_id = response.headers["Location"].rsplit("/", 1)[1]
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Thank you, Ana!" in html
    config = config_from_html(html)
    assert config["page_type"] == "order confirmation" and config["user_id"] == "u1001"
    assert config["order_id"] == order_id
    assert config["order_details"]["order_status"] == "completed"
    assert sorted(config["order_details"]["cart"], key=lambda item: item["product_id"]) == cart

    (created,) = rest_calls(emulator, "orders.create")
    assert created["body"]["order_id"] == order_id and created["body"]["user_id"] == "u1001"
    assert created["body"]["cart"] == cart
    updates = {
        (c["path"].split("/")[-2], c["path"].split("/")[-1]): c["body"]
        for c in rest_calls(emulator, "products.update")
    }
    assert updates[("p101", parka)]["stock"] == stock_before[parka] - 2
    assert updates[("p144", "no-variants")]["stock"] == board_before - 1
    assert updates[("p101", parka)]["name"] == "Alpine Parka" and updates[("p101", parka)]["price"] == 144
    assert product(shop, "p101").variant(parka).stock == stock_before[parka] - 2  # type: ignore[union-attr]
    # The cart is empty now, and DataCue was told so.
    assert received(emulator, "cart")[-1]["event"]["cart"] == []
    assert 'data-test="cart-count">0<' in client.get("/").get_data(as_text=True)
    assert order_id in client.get("/account").get_data(as_text=True)


def test_a_guest_checks_out_under_their_email(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    add(client, "p141", "no-variants")
    visitor = anonymous_id(client)
    response = checkout(client, email="guest@example.org", name="Gus Guest")
    location = response.headers["Location"]
    html = client.get(location).get_data(as_text=True)
    config = config_from_html(html)
    assert config["user_id"] == "guest@example.org"  # the guide's guest checkout
    (guest,) = rest_calls(emulator, "users.create")
    assert guest["body"] == {
        "user_id": "guest@example.org",
        "email": "guest@example.org",
        "first_name": "Gus",
        "guest_account": True,
        "anonymous_id": visitor,
        "timestamp": guest["body"]["timestamp"],
    }
    (order,) = rest_calls(emulator, "orders.create")
    assert order["body"]["user_id"] == "guest@example.org"
    # Another browser cannot see this guest's order.
    assert shop.test_client().get(location).status_code == 404


def test_the_checkout_form_asks_again_for_what_is_missing(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    add(client, "p141", "no-variants")
    response = checkout(client, email="guest@example.org", card="12")
    assert response.status_code == 200
    assert "Please give a card number" in response.get_data(as_text=True)
    assert rest_calls(emulator, "orders.create") == []


def test_an_item_sold_out_meanwhile_stops_the_order(shop: Flask, emulator: RunningEmulator) -> None:
    first, second = shop.test_client(), shop.test_client()
    with shop.app_context(), write_transaction() as session:
        session.execute(text("UPDATE variants SET stock = 1 WHERE product_id = 'p146'"))
    add(first, "p146", "no-variants")
    add(second, "p146", "no-variants")
    assert checkout(first, email="first@example.org").status_code == 302
    response = checkout(second, email="second@example.org")
    assert response.headers["Location"] == "/cart"
    assert "sold out while you were shopping" in second.get(response.headers["Location"]).get_data(
        as_text=True
    )
    assert [call["body"]["user_id"] for call in rest_calls(emulator, "orders.create")] == [
        "first@example.org"
    ]
    assert product(shop, "p146").variants[0].stock == 0


def test_cancelling_an_order_from_the_account_page(
    shop: Flask, client: FlaskClient, emulator: RunningEmulator
) -> None:
    log_in(client, "ben@example.com")
    add(client, "p143", "no-variants", 2)
    order_id = checkout(client, name="Ben Okafor").headers["Location"].rsplit("/", 1)[1]
    stock_after_order = product(shop, "p143").variants[0].stock
    response = client.post(f"/orders/{order_id}/cancel")
    assert response.headers["Location"] == "/account"
    html = client.get("/account").get_data(as_text=True)
    assert f"Order {order_id} is cancelled" in html
    document = html5lib.parse(html, namespaceHTMLElements=False)
    row = next(tr for tr in document.iter("tr") if tr.attrib.get("data-order-id") == order_id)
    assert "cancelled" in "".join(row.itertext())
    (status,) = rest_calls(emulator, "orders.status")
    assert status["method"] == "PUT" and status["path"] == f"/v1/orders/{order_id}"
    assert status["body"] == {"order_status": "cancelled"}
    assert product(shop, "p143").variants[0].stock == stock_after_order + 2
    assert rest_calls(emulator, "products.update")[-1]["body"]["stock"] == stock_after_order + 2
    # Nobody cancels twice, or cancels someone else's order.
    assert client.post(f"/orders/{order_id}/cancel").status_code == 404
    log_in(client, "chloe@example.com")
    assert client.post("/orders/o10001/cancel").status_code == 404
