"""cue-front.js in headless Chromium: clicks survive navigation and arrive under the server's identity."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask

from cue_front import datacue_events_script
from cue_front.emulator import RunningEmulator

PAGE = """<!doctype html><html><head>{script}</head><body>
<div data-dc-products="similar">
  <a id="product" href="/next" data-dc-product-id="p7">Sofa</a>
</div>
<a id="banner" href="/next" data-dc-banner-id="b2"><img alt="banner"></a>
<a id="plain" href="/next">plain link</a>
</body></html>"""


def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    app = make_app(DATACUE_DELIVERY="sync", **emulator.config)

    @app.route("/")
    @app.route("/next")
    def page() -> str:
        return PAGE.format(script=datacue_events_script())

    return app


def wait_for_events(page: Any, emulator: RunningEmulator, count: int) -> list[dict[str, Any]]:
    for _ in range(150):  # up to 15 s: a loaded CI machine is slow, and the loop ends at once
        if len(emulator.events()) >= count:
            break
        page.wait_for_timeout(100)
    return [item["body"] for item in reversed(emulator.events())]


def test_a_deferred_product_click_arrives_on_the_next_page(
    browser: Any,
    make_app: Callable[..., Flask],
    emulator: RunningEmulator,
    live_server: Callable[[Flask], str],
) -> None:
    base = live_server(shop(make_app, emulator))
    page = browser.new_page()
    page.goto(f"{base}/")
    page.click("#product")
    page.wait_for_url(f"{base}/next")
    (click,) = wait_for_events(page, emulator, 1)
    assert click["event"] == {"type": "click", "subtype": "similar", "product_id": "p7"}
    anonymous_cookie = next(c for c in page.context.cookies() if c["name"] == "datacue_anonymous_id")
    assert anonymous_cookie["value"].startswith(click["user"]["anonymous_id"])
    assert anonymous_cookie["httpOnly"] is True
    page.close()


def test_banner_clicks_and_direct_tracking(
    browser: Any,
    make_app: Callable[..., Flask],
    emulator: RunningEmulator,
    live_server: Callable[[Flask], str],
) -> None:
    base = live_server(shop(make_app, emulator))
    page = browser.new_page()
    page.goto(f"{base}/")
    answer = page.evaluate(
        "cueFront.track({type: 'wishlist', subtype: 'add', product_id: 'p1', variant_id: 'v1'})"
    )
    assert answer is None  # 204: nothing to read
    recommendations = page.evaluate("cueFront.track({type: 'pageview', subtype: 'home'})")
    assert set(recommendations) >= {"main_banners", "related_product_skus", "recent_product_skus"}
    page.click("#plain")  # not a DataCue element: nothing sent
    page.wait_for_url(f"{base}/next")
    page.goto(f"{base}/")
    page.click("#banner")
    page.wait_for_url(f"{base}/next")
    events = [envelope["event"] for envelope in wait_for_events(page, emulator, 3)]
    assert events == [
        {"type": "wishlist", "subtype": "add", "product_id": "p1", "variant_id": "v1"},
        {"type": "pageview", "subtype": "home"},
        {"type": "click", "subtype": "banner", "banner_id": "b2"},
    ]
    page.close()
