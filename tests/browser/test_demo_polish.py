"""A newcomer's walk through the demo store, in headless Chromium: what they once met, fixed.

Each product is drawn as what it is; asking for more than is left, or wishlisting a product
twice, says so; "Recently viewed" shows the colour viewed and leads back to it; a product
page's two rails share nothing and offer no lamp with a parka. Screenshots go to
``test-artifacts/demo-polish/``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import Page, expect

from demo_store import catalog, seed

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "demo-polish"


@pytest.fixture
def page(browser: Any) -> Iterator[Page]:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


@pytest.fixture
def base(shop: Flask, live_server: Callable[[Flask], str]) -> str:
    return live_server(shop)


def test_a_category_s_pictures_each_show_what_the_product_is(page: Page, base: str) -> None:
    page.goto(f"{base}/c/kitchen")
    pictures = page.locator(".card__media img")
    expect(pictures).to_have_count(8)
    drawn = page.evaluate(
        """async () => Promise.all([...document.querySelectorAll('.card__media img')].map(async (img) => {
            const svg = await (await fetch(img.src)).text();
            return [img.alt, img.naturalWidth, svg.match(/data-kind="([^"]+)"/)[1]];
        }))"""
    )
    page.screenshot(path=str(ARTIFACTS / "kitchen.png"), full_page=True)
    assert all(width == 400 for _, width, _ in drawn)  # every picture drew
    assert {name: kind for name, _, kind in drawn} == {
        name: seed.KINDS[name] for name, _ in seed.CATEGORIES[5].products
    }
    assert len({kind for *_, kind in drawn}) == 8


def scarce(shop: Flask) -> tuple[str, str, str, int]:
    """A product, a variant with a few left (more than one) and its label, and how many are left."""
    with shop.app_context():
        for product in catalog.load_products():
            if not product.has_variants:
                continue
            for variant in product.variants:
                if 1 < variant.stock <= 5:
                    return product.product_id, variant.variant_id, variant.label, variant.stock
    raise AssertionError("no variant with a few left")


def test_asking_for_more_than_is_left_says_so(page: Page, base: str, shop: Flask) -> None:
    product_id, variant_id, label, left = scarce(shop)
    page.goto(f"{base}/p/{product_id}")
    page.select_option("#variant", variant_id)
    page.fill("#quantity", "10")
    page.click('[data-test="add-to-cart"]')
    page.wait_for_url(f"{base}/cart")
    notice = page.locator(".flash--notice")
    expect(notice).to_contain_text(f"You asked for 10, but only {left} of")
    expect(notice).to_contain_text(f"({label}) are left: your cart has {left}.")
    expect(page.locator("#q-1")).to_have_value(str(left))
    page.screenshot(path=str(ARTIFACTS / "fewer-than-asked.png"))


def test_wishlisting_a_product_already_there_says_so(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", "chloe@example.com")
    page.fill("#password", "demo")
    page.click('[data-test="log-in"]')
    page.goto(f"{base}/wishlist")
    first = page.locator(".card__link").first
    name = first.locator(".card__name").inner_text()
    first.click()
    page.click('[data-test="add-to-wishlist"]')
    expect(page.locator(".flash--notice")).to_have_text(f"{name} is already on your wishlist.")
    page.screenshot(path=str(ARTIFACTS / "already-on-the-wishlist.png"))


def test_recently_viewed_shows_the_colour_viewed_and_leads_back_to_it(page: Page, base: str) -> None:
    page.goto(f"{base}/p/p101")
    swatches = page.locator(".colours .swatch")
    assert swatches.count() >= 2
    colours = [str(swatches.nth(i).get_attribute("title")) for i in range(2)]
    for colour in (colours[1], colours[0], colours[1]):  # DataCue's card shows one colour: not both
        page.goto(f"{base}/p/p101")
        page.click(f'.colours .swatch[title="{colour}"]')
        expect(page.locator(".product__media img")).to_have_attribute("alt", f"Alpine Parka, {colour}")
        page.goto(f"{base}/")
        card = page.locator('[data-datacue-kind="recent"] [data-dc-product-id="p101"]')
        expect(card.locator("img")).to_have_attribute("src", f"/media/products/p101/{colour.lower()}.svg")
    page.screenshot(path=str(ARTIFACTS / "recently-viewed.png"), full_page=True)
    card.click()
    expect(page.locator(".swatch--selected")).to_have_attribute("title", colours[1])


def test_a_parka_s_rails_share_nothing_and_offer_no_lamp(page: Page, base: str) -> None:
    page.goto(f"{base}/p/p101")
    rails = {}
    for kind, title in (("similar", "You may also like"), ("related", "Customers also bought")):
        section = page.locator(f'[data-datacue-kind="{kind}"]')
        expect(section.locator("h2")).to_have_text(title)
        rails[kind] = [str(a.get_attribute("data-dc-product-id")) for a in section.locator("a").all()]
    page.screenshot(path=str(ARTIFACTS / "parka-rails.png"), full_page=True)
    assert rails["similar"] and rails["related"]
    assert not set(rails["similar"]) & set(rails["related"])
    names = page.locator(".recs .card__name").all_inner_texts()
    assert "Ceramic Table Lamp" not in names and not any("Lamp" in name for name in names)
