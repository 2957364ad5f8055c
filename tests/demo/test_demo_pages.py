"""The demo store's pages: each one's datacueConfig, what it shows, and the one DataCue call it makes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import html5lib
import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from demo_store import catalog
from demo_store.testing import anonymous_id, create_test_app
from tests.support.pages_html import config_from_html, script_elements


def page(client: FlaskClient, path: str, status: int = 200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    return response.get_data(as_text=True)


def elements(html: str, tag: str, attribute: str) -> list[dict[str, str]]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [dict(element.attrib) for element in document.iter(tag) if attribute in element.attrib]


def cards(html: str) -> list[dict[str, str]]:
    """The recommended products shown, with their widget kind (DataCue's, rendered on the server)."""
    return elements(html, "a", "data-dc-product-id")


def banners(html: str) -> list[str]:
    return [banner["data-dc-banner-id"] for banner in elements(html, "a", "data-dc-banner-id")]


def script_sources(html: str) -> list[str | None]:
    return [script.get("src") for script in script_elements(html)]


def events(emulator: RunningEmulator) -> list[dict[str, Any]]:
    """Event envelopes the emulator received, oldest first."""
    return [item["body"] for item in reversed(emulator.events())]


def test_home_page_shows_personal_banners_and_recommendations_from_one_call(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    html = page(client, "/")
    assert config_from_html(html) == {"api_key": emulator.api_key, "user_id": None, "page_type": "home"}
    # Server-side rendered: DataCue's CDN scripts are left out, only cue-front.js remains.
    assert script_sources(html) == [None, "/datacue/static/cue-front.js"]
    assert (
        len(banners(html)) == 2 and banners(html)[0].endswith("-main") and banners(html)[1].endswith("-sub")
    )
    related = [card for card in cards(html) if card["data-dc-kind"] == "related"]
    assert len(related) == 10
    assert all(card["href"].startswith("/p/") for card in related)
    (pageview,) = events(emulator)
    assert pageview["event"] == {"type": "pageview", "subtype": "home"}
    assert pageview["user"]["anonymous_id"] == anonymous_id(client)


def test_recommendations_know_a_demo_customer_from_their_order_history(
    client: FlaskClient, shop: Flask
) -> None:
    response = client.post("/login", data={"email": "ben@example.com", "password": "demo"})
    assert response.status_code == 302
    html = page(client, "/")
    assert config_from_html(html)["user_id"] == "u1002"
    with shop.app_context():
        category_of = {p.product_id: p.category_id for p in catalog.load_products()}
    picked = [
        category_of[card["data-dc-product-id"]] for card in cards(html) if card["data-dc-kind"] == "related"
    ]
    # Ben buys for his kitchen and home: so does what DataCue picks for him first.
    assert picked[0] in {"kitchen", "home"}
    assert sum(category in {"kitchen", "home"} for category in picked[:5]) >= 4
    # ...and his banners lead with those categories.
    assert banners(html) in (["b-kitchen-main", "b-kitchen-sub"], ["b-home-main", "b-home-sub"])


def test_category_page_sends_category_update(client: FlaskClient, emulator: RunningEmulator) -> None:
    html = page(client, "/c/outerwear")
    assert config_from_html(html) == {
        "api_key": emulator.api_key,
        "user_id": None,
        "page_type": "category",
        "category_id": "outerwear",
        "category_update": {"name": "Outerwear", "link": "/c/outerwear"},
    }
    listing = [a["href"] for a in elements(html, "a", "href") if a.get("class") == "card__link"]
    assert len(listing) == 8
    assert [e["event"] for e in events(emulator)] == [
        {"type": "pageview", "subtype": "category", "category_name": "Outerwear"}
    ]


def test_category_page_sorts_by_price(client: FlaskClient) -> None:
    html = page(client, "/c/kitchen?sort=price-low")
    document = html5lib.parse(html, namespaceHTMLElements=False)
    amounts = [
        float(span.text.strip("$").replace(",", ""))
        for span in document.iter("span")
        if (span.get("class") or "").startswith("price__now")
    ]
    assert amounts == sorted(amounts) and len(amounts) == 8


def test_product_page_sends_every_variant_and_shows_similar_and_related(
    client: FlaskClient, shop: Flask, emulator: RunningEmulator
) -> None:
    with shop.app_context():
        product = catalog.load_product("p117")
    assert product is not None and len(product.variants) > 1
    html = page(client, "/p/p117")
    config = config_from_html(html)
    assert config["page_type"] == "product" and config["product_id"] == "p117"
    update = config["product_update"]
    assert [v["variant_id"] for v in update] == [v.variant_id for v in product.variants]
    assert [(v["stock"], v["available"]) for v in update] == [
        (v.stock, v.stock > 0) for v in product.variants
    ]
    assert update[0]["photo_url"] == f"/media/products/p117/{product.variants[0].colour.lower()}.svg"
    assert {key: update[0][key] for key in ("name", "price", "full_price", "category_ids", "brand")} == {
        "name": "Leather Chelsea Boots",
        "price": 115.5,
        "full_price": 154,
        "category_ids": ["footwear"],
        "brand": product.brand,
    }
    shown = cards(html)
    assert {card["data-dc-kind"] for card in shown} == {"similar", "related"}
    assert "p117" not in {card["data-dc-product-id"] for card in shown}  # never the product on view
    assert [e["event"] for e in events(emulator)] == [
        {"type": "pageview", "subtype": "product", "product_id": "p117"}
    ]
    # The variant select offers sold-out sizes disabled.
    options = elements(html, "option", "value")
    assert [o["value"] for o in options if "disabled" in o] == [
        v.variant_id for v in product.variants if not v.stock
    ]


def test_single_item_page_has_one_no_variants_update(client: FlaskClient) -> None:
    update = config_from_html(page(client, "/p/p144"))["product_update"]
    assert [v["variant_id"] for v in update] == ["no-variants"]


def test_sold_out_product_cannot_be_added(
    client: FlaskClient, shop: Flask, emulator: RunningEmulator
) -> None:
    with shop.app_context():
        product = catalog.load_product("p123")
    assert product is not None and not product.in_stock  # every size sold out
    html = page(client, "/p/p123")
    assert "Sold out" in html and 'data-test="add-to-cart"' not in html
    response = client.post(
        "/cart/add", data={"product_id": "p123", "variant_id": product.variants[0].variant_id}
    )
    assert response.status_code == 302
    assert "no more" in page(client, response.headers["Location"])
    assert emulator.events(type="cart") == []


def test_search_page(client: FlaskClient, emulator: RunningEmulator) -> None:
    page(client, "/p/p141")
    html = page(client, "/search?q=enamel+pot")
    assert config_from_html(html) == {
        "api_key": emulator.api_key,
        "user_id": None,
        "page_type": "search",
        "term": "enamel pot",
    }
    listing = [a["href"] for a in elements(html, "a", "href") if a.get("class") == "card__link"]
    assert listing == ["/p/p141"]
    # The search answer carries the visitor's recently viewed products.
    assert [card["data-dc-product-id"] for card in cards(html)] == ["p141"]
    assert events(emulator)[-1]["event"] == {"type": "search", "term": "enamel pot"}


def test_cart_page(client: FlaskClient, emulator: RunningEmulator) -> None:
    html = page(client, "/cart")
    assert config_from_html(html)["page_type"] == "cart"
    assert "Your cart is empty" in html
    assert events(emulator) == []  # DataCue has no cart pageview: nothing to send


def test_not_found_page(client: FlaskClient) -> None:
    for path in ("/no/such/page", "/p/p999", "/c/hats"):
        html = page(client, path, status=404)
        assert config_from_html(html)["page_type"] == "404"
        assert "We could not find that page" in html


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_pages_where_passwords_are_typed_carry_no_script(client: FlaskClient, path: str) -> None:
    assert script_elements(page(client, path)) == []


def test_checkout_is_a_payment_page_without_any_script(
    client: FlaskClient, emulator: RunningEmulator
) -> None:
    client.post("/cart/add", data={"product_id": "p144", "variant_id": "no-variants"})
    html = page(client, "/checkout")
    assert 'name="card"' in html
    assert script_elements(html) == []
    assert "datacueConfig" not in html


def test_the_shop_keeps_working_when_datacue_is_down(
    emulator: RunningEmulator, tmp_path: Path, demo_template: Path
) -> None:
    client = create_test_app(emulator, tmp_path / "instance", demo_template, DATACUE_RETRIES=0).test_client()
    emulator.set_faults(error_503=1)
    html = page(client, "/")
    assert config_from_html(html)["page_type"] == "home"
    assert cards(html) == [] and banners(html) == []  # placeholders instead
    assert "Shop by category" in html
    response = client.post("/cart/add", data={"product_id": "p144", "variant_id": "no-variants"})
    assert response.status_code == 302
    assert "Olive Wood Board" in page(client, "/cart")


def test_pictures_and_banners_are_generated_svg(client: FlaskClient) -> None:
    html = page(client, "/p/p101")
    (picture,) = [
        img["src"] for img in elements(html, "img", "src") if img["src"].startswith("/media/products/p101/")
    ]
    response = client.get(picture)
    assert response.status_code == 200 and response.mimetype == "image/svg+xml"
    assert response.get_data(as_text=True).startswith("<svg") and "<title>Alpine Parka" in response.get_data(
        as_text=True
    )
    assert client.get(picture, headers={"If-None-Match": response.headers["ETag"]}).status_code == 304
    banner = client.get("/media/banners/b-kitchen-main.svg")
    assert banner.status_code == 200 and "Kitchen" in banner.get_data(as_text=True)
    assert client.get("/media/products/p101/purple.svg").status_code == 404
