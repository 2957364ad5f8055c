"""Server-side rendered recommendations: one DataCue call per page, real products, and a fallback."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import html5lib
import pytest
from flask import Flask, render_template_string

from cue_front.emulator import RunningEmulator
from tests.support.pages_html import config_from_html, script_elements

CATEGORIES = ("sofas", "beds", "lamps")
PAGE = """<!doctype html><html><head>{{ render_datacue(page_type, **fields) }}</head><body>
{{ datacue_banners() }}{{ datacue_products() }}{{ datacue_products("recent") }}
</body></html>"""


def product(number: int, stock: int = 5) -> dict[str, Any]:
    category = CATEGORIES[number % len(CATEGORIES)]
    return {
        "product_id": f"p{number}",
        "variant_id": "no-variants",
        "categories": [category],
        "name": f"{category.title()} model {number}",
        "price": 100 + number,
        "full_price": 120 + number,
        "stock": stock,
        "photo_url": f"/img/p{number}.svg",
        "link": f"/products/p{number}",
    }


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    app = make_app(DATACUE_DELIVERY="sync", DATACUE_SSR=True, **emulator.config)
    client = app.extensions["datacue"].client
    client.products.batch_create([product(n) for n in range(1, 13)] + [product(13, stock=0)])
    orders = [
        {
            "order_id": f"o{n}",
            "user_id": f"u{n}",
            "cart": [
                {"product_id": "p1", "variant_id": "no-variants", "quantity": 1, "unit_price": 101},
                {"product_id": "p2", "variant_id": "no-variants", "quantity": 1, "unit_price": 102},
            ],
        }
        for n in range(3)
    ]
    client.orders.batch_create(orders)
    emulator.set_banners(
        [
            {
                "banner_id": "b-sofas",
                "category_id": "sofas",
                "name": "Sofas",
                "photo_url": "/b/sofas.svg",
                "link": "/c/sofas",
            },
            {
                "banner_id": "b-lamps",
                "category_id": "lamps",
                "kind": "sub",
                "name": "Lamps",
                "photo_url": "/b/lamps.svg",
                "link": "/c/lamps",
            },
        ]
    )

    @app.route("/<page_type>")
    def page(page_type: str) -> str:
        fields = {
            "product": {"product_id": "p1"},
            "search": {"term": "sofa"},
            "category": {"category_id": "sofas", "category_update": {"name": "Sofas"}},
        }
        return render_template_string(PAGE, page_type=page_type, fields=fields.get(page_type, {}))

    return app


def cards(html: str) -> list[dict[str, str]]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [dict(a.attrib) for a in document.iter("a") if "data-dc-product-id" in a.attrib]


def banners(html: str) -> list[str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [a.attrib["data-dc-banner-id"] for a in document.iter("a") if "data-dc-banner-id" in a.attrib]


def test_product_page_renders_related_and_similar_from_one_call(
    shop: Flask, emulator: RunningEmulator
) -> None:
    client = shop.test_client()
    html = client.get("/product").get_data(as_text=True)
    assert len(emulator.events()) == 1  # one pageview, however many widgets
    assert emulator.events()[0]["body"]["event"] == {
        "type": "pageview",
        "subtype": "product",
        "product_id": "p1",
    }
    shown = cards(html)
    related = [card["data-dc-product-id"] for card in shown if card["data-dc-kind"] == "related"]
    assert related[0] == "p2"  # bought together with p1 in every past order
    assert "p1" not in {card["data-dc-product-id"] for card in shown}  # never the product on view
    assert "p13" not in {card["data-dc-product-id"] for card in shown}  # out of stock
    assert all(card["href"].startswith("/products/") for card in shown)
    # DataCue's own scripts would send the pageview again: SSR pages leave them out.
    assert [s.get("src") for s in script_elements(html)] == [None]
    assert config_from_html(html)["product_id"] == "p1"


def test_home_page_banners_and_recent_views(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    client.get("/product")
    html = client.get("/home").get_data(as_text=True)
    assert set(banners(html)) == {"b-sofas", "b-lamps"}
    recent = [card["data-dc-product-id"] for card in cards(html) if card["data-dc-kind"] == "recent"]
    assert recent[0] == "p1"


def test_a_reload_storm_makes_one_call(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    pages = [client.get("/home").get_data(as_text=True) for _ in range(5)]
    assert len(emulator.events()) == 1
    assert all(banners(page) == banners(pages[0]) for page in pages)


def test_another_page_or_event_refreshes_the_recommendations(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    client.get("/home")
    client.get("/product")
    html = client.get("/home").get_data(as_text=True)
    assert [item["subtype"] for item in reversed(emulator.events())] == ["home", "product", "home"]
    assert "p1" in [card["data-dc-product-id"] for card in cards(html) if card["data-dc-kind"] == "recent"]


def test_order_details_of_an_ssr_confirmation_page_become_an_order(
    shop: Flask, emulator: RunningEmulator
) -> None:
    details = {"cart": [{"product_id": "p3", "variant_id": "no-variants", "quantity": 2, "unit_price": 103}]}
    with shop.test_request_context():
        render_template_string(
            "{{ render_datacue('order confirmation', order_id='o9', order_details=d, user_id=u) }}",
            d=details,
            u="guest@x.com",
        )
    (order,) = emulator.requests(type="orders.create")
    assert order["status"] == 201
    assert order["body"] == {
        "order_id": "o9",
        "user_id": "guest@x.com",
        **details,
        "order_status": "completed",
    }


def test_category_page_event_is_sent_and_cart_page_sends_none(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    client.get("/category")
    client.get("/cart")
    assert [item["body"]["event"] for item in emulator.events()] == [
        {"type": "pageview", "subtype": "category", "category_name": "Sofas"}
    ]


def test_fallback_to_placeholders_when_datacue_is_slow(
    shop: Flask, emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    shop.extensions["datacue"].ssr_timeout = 0.2
    emulator.set_faults(events={"latency": 1.0, "max_faults": 1})
    with caplog.at_level(logging.WARNING, logger="cue_front"):
        response = shop.test_client().get("/home")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert cards(html) == [] and banners(html) == []
    document = html5lib.parse(html, namespaceHTMLElements=False)
    assert [div.attrib for div in document.iter("div")] == [
        {"data-dc-banners": ""},
        {"data-dc-products": ""},
        {"data-dc-products": "recent"},
    ]
    assert caplog.text.count("server-side recommendations unavailable") == 1
    # The pageview was not lost: it was delivered after the slow attempt.
    assert emulator.events()[0]["body"]["event"] == {"type": "pageview", "subtype": "home"}


def test_server_side_per_widget_without_ssr_mode(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    app = make_app(DATACUE_DELIVERY="sync", **emulator.config)
    app.extensions["datacue"].client.products.batch_create([product(n) for n in range(1, 6)])
    source = "{{ render_datacue('search', term='x') }}{{ datacue_products('recent', server_side=True) }}"
    with app.test_request_context():
        html = render_template_string(source)
    assert len(script_elements(html)) == 3  # not SSR mode: DataCue's scripts stay
    assert len(emulator.events()) == 1
