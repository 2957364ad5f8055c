"""The demo store's visitors in headless Chromium: a logout ends the customer's visitor, and another
site cannot log a browser in or out.

After Ana logs out, the next person at her browser sees nothing of hers (her
name, her "Recently viewed", her "Picked for you") and nothing they do reaches
DataCue under her ids. A page of another origin that posts the demo's login or
logout form is refused (Flask-WTF's CSRF token): both from another port of the
same host, where ``SameSite=Lax`` cookies still go along and only the token
helps, and from another site.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from markupsafe import Markup
from playwright.sync_api import BrowserContext, Page, expect

from cue_front.emulator import RunningEmulator

#: Products Ana looks at before she logs out.
VIEWED = ["p101", "p117", "p128"]
#: What the next person at her browser looks at.
NEXT_VIEWED = "p144"


def visitor(context: BrowserContext) -> str:
    """The browser's anonymous id, from cue-front's signed cookie."""
    cookie = next(c for c in context.cookies() if c["name"] == "datacue_anonymous_id")
    return cookie["value"].rsplit(".", 1)[0]


def shown(page: Page, kind: str) -> list[str]:
    """The products of a recommendation section ("recent", "related") of the page."""
    cards = page.locator(f'[data-datacue-kind="{kind}"] [data-dc-product-id]')
    return [str(card.get_attribute("data-dc-product-id")) for card in cards.all()]


def log_in(page: Page, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.fill("#email", email)
    page.fill("#password", "demo")
    page.click('[data-test="log-in"]')
    page.wait_for_url(f"{base}/")


def test_after_a_logout_nothing_of_the_last_customer_shows_or_is_sent(
    browser: Any, shop: Flask, emulator: RunningEmulator, live_server: Callable[[Flask], str]
) -> None:
    base = live_server(shop)
    fresh = browser.new_context()
    fresh_page = fresh.new_page()
    fresh_page.goto(f"{base}/")
    picks_for_anyone = shown(fresh_page, "related")  # a visitor DataCue knows nothing of
    fresh.close()
    context = browser.new_context()
    page = context.new_page()

    log_in(page, base, "ana@example.com")
    expect(page.locator('[data-test="account"]')).to_have_text("Hi, Ana")
    for product_id in VIEWED:
        page.goto(f"{base}/p/{product_id}")
    page.goto(f"{base}/")
    assert shown(page, "recent")[:3] == VIEWED[::-1]  # hers, last viewed first
    assert shown(page, "related") and shown(page, "related") != picks_for_anyone  # picked for her
    anas_visitor = visitor(context)
    state = shop.extensions["datacue"]
    assert state.delivery.flush(5.0)
    before = max(item["id"] for item in emulator.events())

    page.click("text=Log out")
    page.wait_for_url(f"{base}/")
    expect(page.get_by_text("You are logged out.")).to_be_visible()
    expect(page.locator('[data-test="account"]')).to_have_count(0)
    expect(page.locator('[data-test="login"]')).to_be_visible()
    assert "Ana" not in page.locator("header").inner_text()
    assert shown(page, "recent") == []
    assert shown(page, "related") == picks_for_anyone
    assert visitor(context) != anas_visitor
    page.goto(f"{base}/p/{NEXT_VIEWED}")
    assert not set(shown(page, "recent")) & set(VIEWED)
    page.goto(f"{base}/search?q=pregnancy+test")
    page.goto(f"{base}/")
    assert set(shown(page, "recent")) <= {NEXT_VIEWED}
    assert "Hi, Ana" not in page.content()

    assert state.delivery.flush(5.0)
    after = [item["body"]["user"] for item in emulator.events() if item["id"] > before]
    assert len(after) >= 4  # the pages the next person saw, each a pageview
    assert not [user for user in after if user.get("user_id") == "u1001"]
    assert not [user for user in after if user.get("anonymous_id") == anas_visitor]
    assert {user["anonymous_id"] for user in after} == {visitor(context)}
    context.close()


def post_from_elsewhere(
    page: Page, live_server: Callable[[Flask], str], host: str, action: str, fields: dict[str, str]
) -> None:
    """``page`` opens another site's page (served on ``host``), which posts a form to the shop's
    ``action`` as soon as it loads: the shop refuses it (400, its page for a refused form)."""
    site = Flask("elsewhere")

    @site.get("/")
    def lure() -> Markup:
        inputs = Markup("").join(
            Markup('<input type="hidden" name="{}" value="{}">').format(name, value)
            for name, value in fields.items()
        )
        form = Markup('<!doctype html><form method="post" action="{}">{}</form>').format(action, inputs)
        return form + Markup("<script>document.forms[0].submit()</script>")

    with page.expect_response(action) as answer:
        page.goto(live_server(site).replace("127.0.0.1", host) + "/")
    assert answer.value.status == 400
    expect(page.get_by_text("The CSRF")).to_be_visible()


#: Another origin on the same site (SameSite cookies go along: only the token stops the post),
#: and another site.
ELSEWHERE = pytest.mark.parametrize("host", ["127.0.0.1", "localhost"], ids=["another-port", "another-site"])


@ELSEWHERE
def test_another_site_cannot_log_a_browser_in(
    browser: Any, shop: Flask, emulator: RunningEmulator, live_server: Callable[[Flask], str], host: str
) -> None:
    base = live_server(shop)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{base}/")  # the victim has been to the shop before
    post_from_elsewhere(
        page, live_server, host, f"{base}/login", {"email": "ana@example.com", "password": "demo"}
    )
    page.goto(f"{base}/")
    expect(page.locator('[data-test="login"]')).to_be_visible()
    expect(page.locator('[data-test="account"]')).to_have_count(0)
    assert shop.extensions["datacue"].delivery.flush(5.0)
    assert emulator.events(type="login") == []
    context.close()


@ELSEWHERE
def test_another_site_cannot_log_a_browser_out(
    browser: Any, shop: Flask, live_server: Callable[[Flask], str], host: str
) -> None:
    base = live_server(shop)
    context = browser.new_context()
    page = context.new_page()
    log_in(page, base, "ana@example.com")
    anas_visitor = visitor(context)
    post_from_elsewhere(page, live_server, host, f"{base}/logout", {})
    page.goto(f"{base}/")
    expect(page.locator('[data-test="account"]')).to_have_text("Hi, Ana")
    assert visitor(context) == anas_visitor
    context.close()
