"""The demo store in headless Chromium: a visitor browses, buys, and DataCue follows them all the way.

Home -> a banner -> category -> product -> add to cart -> a recommended product
-> add to cart -> log in -> checkout -> confirmation, with the demo's own
settings (server-side recommendations, the durable outbox). Every page's
``window.datacueConfig`` is checked as the browser sees it; screenshots of
each step go to ``test-artifacts/demo-flow/``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import Page, expect

from cue_front.emulator import RunningEmulator

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo-flow"


def datacue_config(page: Page) -> dict[str, Any] | None:
    config: dict[str, Any] | None = page.evaluate(
        "window.datacueConfig === undefined ? null : window.datacueConfig"
    )
    return config


def wait_for(page: Page, check: Callable[[], bool]) -> None:
    """Poll until ``check()`` holds: events reach the emulator through the outbox, in the background."""
    for _ in range(300):  # up to 15 s on a loaded machine; most checks hold at once
        if check():
            return
        page.wait_for_timeout(50)
    assert check()


def test_a_visitor_browses_buys_and_datacue_follows_them(
    browser: Any, shop: Flask, emulator: RunningEmulator, live_server: Callable[[Flask], str]
) -> None:
    base = live_server(shop)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page: Page = context.new_page()
    shots = iter(range(1, 100))

    def screenshot(name: str) -> None:
        page.screenshot(path=str(ARTIFACTS / f"{next(shots):02}-{name}.png"), full_page=True)

    # Home: DataCue's banners and recommendations, rendered by the shop's server.
    page.goto(f"{base}/")
    assert datacue_config(page) == {"api_key": emulator.api_key, "user_id": None, "page_type": "home"}
    main_banner = page.locator(".banner--main")
    expect(main_banner).to_be_visible()
    expect(page.locator("[data-dc-banner-id]")).to_have_count(2)
    expect(page.locator('[data-datacue-kind="related"] [data-dc-product-id]').first).to_be_visible()
    screenshot("home")
    banner_id = main_banner.get_attribute("data-dc-banner-id")
    assert banner_id is not None
    category_id = banner_id.removeprefix("b-").removesuffix("-main")

    # A banner leads to its category.
    main_banner.click()
    page.wait_for_url(f"{base}/c/{category_id}")
    config = datacue_config(page)
    assert config is not None and config["page_type"] == "category" and config["category_id"] == category_id
    assert config["category_update"]["link"] == f"/c/{category_id}"
    screenshot("category")

    # The first product in stock.
    listing = page.locator(".card:not(.card--sold-out) .card__link").first
    product_path = listing.get_attribute("href")
    assert product_path is not None
    listing.click()
    page.wait_for_url(f"{base}{product_path}")
    first_id = product_path.rsplit("/", 1)[1]
    config = datacue_config(page)
    assert config is not None and config["page_type"] == "product" and config["product_id"] == first_id
    variants = page.locator("#variant option").count() or 1
    assert len(config["product_update"]) == variants
    similar = page.locator('[data-datacue-kind="similar"] [data-dc-product-id]').first
    expect(similar).to_be_visible()
    screenshot("product")
    page.click('[data-test="add-to-cart"]')
    page.wait_for_url(f"{base}/cart")
    assert datacue_config(page) == {"api_key": emulator.api_key, "user_id": None, "page_type": "cart"}
    expect(page.locator("[data-product-id]")).to_have_count(1)

    # Back to the product, and on to one DataCue finds similar.
    page.goto(f"{base}{product_path}")
    second_id = similar.get_attribute("data-dc-product-id")
    similar.click()
    page.wait_for_url(f"{base}/p/{second_id}")
    config = datacue_config(page)
    assert config is not None and config["product_id"] == second_id
    page.click('[data-test="add-to-cart"]')
    page.wait_for_url(f"{base}/cart")
    expect(page.locator("[data-product-id]")).to_have_count(2)
    expect(page.locator('[data-test="cart-count"]')).to_have_text("2")
    screenshot("cart")

    # Log in: the login page carries no DataCue script, and the cart stays.
    page.click('[data-test="login"]')
    page.wait_for_url(re.compile(r".*/login\?next=/cart"))
    assert datacue_config(page) is None
    page.fill("#email", "ana@example.com")
    page.fill("#password", "demo")
    page.click('[data-test="log-in"]')
    page.wait_for_url(f"{base}/cart")
    config = datacue_config(page)
    assert config is not None and config["user_id"] == "u1001"
    expect(page.locator("[data-product-id]")).to_have_count(2)

    # Checkout, the payment page: no script at all.
    page.click('[data-test="checkout"]')
    page.wait_for_url(f"{base}/checkout")
    assert datacue_config(page) is None
    assert page.locator("script").count() == 0
    page.fill("#address", "1 Rua Augusta, Lisbon")
    page.fill("#card", "4242 4242 4242 4242")
    screenshot("checkout")
    page.click('[data-test="place-order"]')
    page.wait_for_url(re.compile(r".*/orders/o\d+$"))
    expect(page.get_by_text("Thank you, Ana!")).to_be_visible()
    order_id = page.url.rsplit("/", 1)[1]
    config = datacue_config(page)
    assert config is not None
    assert config["page_type"] == "order confirmation" and config["order_id"] == order_id
    assert config["user_id"] == "u1001"
    ordered = sorted(item["product_id"] for item in config["order_details"]["cart"])
    assert ordered == sorted([first_id, str(second_id)])
    screenshot("confirmation")

    # What DataCue received, and under whose name.
    visitor_cookie = next(c for c in context.cookies() if c["name"] == "datacue_anonymous_id")
    visitor = visitor_cookie["value"].rsplit(".", 1)[0]
    wait_for(page, lambda: len(emulator.events(type="click")) == 2 and len(emulator.events(type="cart")) == 3)
    wait_for(page, lambda: len(emulator.requests(type="products.update")) == 2)
    carts = [item["body"] for item in reversed(emulator.events(type="cart"))]
    assert [len(cart["event"]["cart"]) for cart in carts] == [1, 2, 0]  # the last: emptied by the order
    assert [cart["user"].get("user_id") for cart in carts] == [None, None, "u1001"]
    assert {cart["user"]["anonymous_id"] for cart in carts} == {visitor}
    (login,) = emulator.events(type="login")
    assert login["body"]["user"]["user_id"] == "u1001" and login["body"]["user"]["anonymous_id"] == visitor
    clicks = [item["body"] for item in reversed(emulator.events(type="click"))]
    assert [click["event"] for click in clicks] == [
        {"type": "click", "subtype": "banner", "banner_id": banner_id},
        {"type": "click", "subtype": "similar", "product_id": second_id},
    ]
    assert {click["user"]["anonymous_id"] for click in clicks} == {visitor}
    (started,) = emulator.events(type="checkout")
    assert started["user_id"] == "u1001" and len(started["body"]["event"]["cart"]) == 2
    (order,) = emulator.requests(type="orders.create")
    assert order["body"]["order_id"] == order_id and order["body"]["user_id"] == "u1001"
    assert sorted(line["product_id"] for line in order["body"]["cart"]) == ordered
    updated = sorted(item["path"].split("/")[3] for item in emulator.requests(type="products.update"))
    assert updated == ordered
    context.close()


def test_with_javascript_disabled_the_cart_and_login_still_reach_datacue(
    browser: Any, shop: Flask, emulator: RunningEmulator, live_server: Callable[[Flask], str]
) -> None:
    base = live_server(shop)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page: Page = context.new_page()
    page.goto(f"{base}/p/p144")
    expect(page.locator('[data-datacue-kind="similar"] [data-dc-product-id]').first).to_be_visible()
    page.click('[data-test="add-to-cart"]')
    page.wait_for_url(f"{base}/cart")
    expect(page.locator('[data-product-id="p144"]')).to_have_count(1)
    page.fill("#q-1", "3")
    page.click("text=Update")
    expect(page.locator('[data-test="cart-total"]')).to_have_text("$102.00")
    page.click('[data-test="login"]')
    page.fill("#email", "ben@example.com")
    page.fill("#password", "demo")
    page.click('[data-test="log-in"]')
    page.wait_for_url(f"{base}/cart")
    page.screenshot(path=str(ARTIFACTS / "no-javascript-cart.png"))
    wait_for(page, lambda: len(emulator.events(type="cart")) == 2 and len(emulator.events(type="login")) == 1)
    carts = [item["body"] for item in reversed(emulator.events(type="cart"))]
    assert [cart["event"]["cart"][0]["quantity"] for cart in carts] == [1, 3]
    (login,) = emulator.events(type="login")
    assert login["body"]["user"]["user_id"] == "u1002"
    assert login["body"]["user"]["anonymous_id"] == carts[0]["user"]["anonymous_id"]
    context.close()
