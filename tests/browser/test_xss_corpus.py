"""Classic XSS payloads in every page type's fields and in widget attributes, loaded in headless Chromium.

Each payload of a fixed corpus goes into every string field of every page type
(both config modes) and into the banner widgets' attributes. The page is served
by a real server and loaded in Chromium, where it must fire no dialog, gain no
element (the count of script, img, svg, iframe... elements is exactly what
cue-front writes), and hand DataCue's script exactly the config that was
passed. DataCue's CDN is out of reach, so two local stand-in scripts record the
config they find, in order.

The server-side recommendation widgets (``DATACUE_SSR``) render what DataCue
answers (names, links and pictures of products and banners) as real links and
images: the same corpus goes through DataCue's answer, and clicking every link
must run nothing either.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, Response, render_template_string

from cue_front.emulator import RunningEmulator

CORPUS = [
    "</script><script>alert(1)</script>",
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "'\"><img src=x onerror=alert(1)>",
    '" autofocus onfocus="alert(1)',
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "\tjavascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "\u2028alert(1)\u2029",
    "'\u2028alert(1)//",
    "<!--<script>",
    "</script><!--",
    "<!--<script>alert(1)//-->",
    "';alert(1);//",
    '";alert(1);//',
    "`${alert(1)}`",
    "</title><script>alert(1)</script>",
    "</textarea><script>alert(1)</script>",
    "<iframe src=javascript:alert(1)>",
    "<body onload=alert(1)>",
    "<svg><script>alert(1)</script></svg>",
    "<math><mi><mglyph><style><img src=x onerror=alert(1)>",
    '<noscript><p title="</noscript><img src=x onerror=alert(1)>">',
    "</SCRIPT >\n<script>alert(1)</script>",
    "\\u003cscript\\u003ealert(1)\\u003c/script\\u003e",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "{{ 7 * 7 }}{% raw %}",
]

STAND_IN = """
window.loaded = window.loaded || [];
window.loaded.push({name: "%s", config: window.datacueConfig});
"""

#: Elements a payload would have to create to run or show something.
WATCHED = (
    "script, img, svg, iframe, object, embed, math, style, link, meta, base, form, input, body, noscript"
)


def page_fields(payload: str) -> dict[str, dict[str, Any]]:
    """Every page type's fields, the payload in each string one."""
    variant = {
        "variant_id": payload,
        "name": payload,
        "photo_url": payload,
        "brand": payload,
        "category_ids": [payload],
        "price": 9.5,
    }
    line = {"product_id": payload, "variant_id": payload, "quantity": 1, "unit_price": 2, "currency": payload}
    return {
        "home": {},
        "product": {"product_id": payload, "product_update": [variant]},
        "category": {"category_id": payload, "category_update": {"name": payload, "link": payload}},
        "search": {"term": payload},
        "cart": {},
        "404": {},
        "order confirmation": {"order_id": payload, "order_details": {"cart": [line]}},
    }


def expected_config(page_type: str, fields: dict[str, Any], user_id: str) -> dict[str, Any]:
    config = {"api_key": "test-key", "user_id": user_id, "page_type": page_type, **fields}
    if page_type == "order confirmation":
        config["order_details"] = {**fields["order_details"], "order_status": "completed"}
    return config


INLINE_PAGE = """<!doctype html><html><head><title>{{ payload }}</title>
{%- for page_type, fields in pages.items() %}
{{ render_datacue(page_type, user_id=payload, **fields) }}
{%- endfor %}
</head><body>
{{ datacue_banners(static_img=payload, static_link=payload) }}
{{ datacue_banner_slot("main", 1, class_=payload, title=payload) }}
{{ datacue_products() }}
</body></html>"""

#: The data-island mode reads one config per page: one page per page type.
JSON_PAGE = """<!doctype html><html><head>{{ render_datacue(page_type, user_id=payload, **fields) }}</head>
<body>{{ datacue_banners(static_img=payload, static_link=payload) }}</body></html>"""


def shop(make_app: Callable[..., Flask], **config: Any) -> Flask:
    app = make_app(DATACUE_SCRIPT_URLS=["/cdn/datacue.js", "/cdn/datacue-storefront.js"], **config)
    app.config["CORPUS"] = CORPUS

    @app.route("/cdn/<name>")
    def stand_in(name: str) -> Response:
        return Response(STAND_IN % name.replace('"', ""), mimetype="text/javascript")

    @app.route("/inline/<int:number>")
    def inline(number: int) -> str:
        payload = CORPUS[number]
        return render_template_string(INLINE_PAGE, payload=payload, pages=page_fields(payload))

    @app.route("/json/<int:number>/<page_type>")
    def data_island(number: int, page_type: str) -> str:
        payload = CORPUS[number]
        return render_template_string(
            JSON_PAGE, payload=payload, page_type=page_type, fields=page_fields(payload)[page_type]
        )

    return app


class Visit:
    """One Chromium page that records every dialog (and dismisses it, so nothing hangs)."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page()
        self.dialogs: list[str] = []

        def dismiss(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", dismiss)

    def elements(self) -> dict[str, int]:
        counts: dict[str, int] = self.page.evaluate(
            """(selector) => {
                const counts = {};
                for (const element of document.querySelectorAll(selector)) {
                    counts[element.localName] = (counts[element.localName] || 0) + 1;
                }
                return counts;
            }""",
            WATCHED,
        )
        return counts

    def attribute(self, selector: str, name: str) -> str | None:
        value: str | None = self.page.evaluate(
            "([selector, name]) => document.querySelector(selector).getAttribute(name)", [selector, name]
        )
        return value


@pytest.fixture
def visit(browser: Any) -> Callable[[], Visit]:
    opened: list[Visit] = []

    def open_page() -> Visit:
        opened.append(Visit(browser))
        return opened[-1]

    yield open_page
    for each in opened:
        each.page.close()


def test_the_corpus_in_every_page_type_and_widget_runs_nothing(
    make_app: Callable[..., Flask], live_server: Callable[[Flask], str], visit: Callable[[], Visit]
) -> None:
    base = live_server(shop(make_app))
    page = visit()
    for number, payload in enumerate(CORPUS):
        page.page.goto(f"{base}/inline/{number}")
        page.page.wait_for_load_state("load")
        assert page.dialogs == [], payload
        # Seven configs, each followed by the two loader scripts; nothing else anywhere.
        assert page.elements() == {"script": 21, "body": 1}, payload
        loaded = page.page.evaluate("window.loaded")
        fields = page_fields(payload)
        assert [entry["config"] for entry in loaded[::2]] == [
            expected_config(page_type, page_fields(payload)[page_type], payload) for page_type in fields
        ], payload
        assert page.attribute("[data-dc-banners]", "data-dc-static-img") == payload
        assert page.attribute("[data-dc-banners]", "data-dc-static-link") == payload
        assert page.attribute("[data-dc-main-insert-banner]", "class") == payload
        assert page.attribute("[data-dc-main-insert-banner]", "title") == payload
        assert page.page.evaluate("document.querySelector('[data-dc-products]').childElementCount") == 0


def test_the_corpus_in_the_data_island_mode_runs_nothing(
    make_app: Callable[..., Flask], live_server: Callable[[Flask], str], visit: Callable[[], Visit]
) -> None:
    base = live_server(shop(make_app, DATACUE_CONFIG_MODE="json"))
    page = visit()
    for number, payload in enumerate(CORPUS):
        pages = page_fields(payload)
        # The product page (the most fields) and, in turn, each other page type.
        for page_type in {"product", list(pages)[number % len(pages)]}:
            fields = pages[page_type]
            page.page.goto(f"{base}/json/{number}/{page_type.replace(' ', '%20')}")
            page.page.wait_for_function("window.loaded && window.loaded.length === 2")
            assert page.dialogs == [], payload
            # The island, the static loader and the two scripts it added.
            assert page.elements() == {"script": 4, "body": 1}, (payload, page_type)
            loaded = page.page.evaluate("window.loaded")
            assert [entry["config"] for entry in loaded] == [expected_config(page_type, fields, payload)] * 2
            assert page.attribute("[data-dc-banners]", "data-dc-static-link") == payload


SSR_PAGE = """<!doctype html><html><head>{{ render_datacue(page_type, **fields) }}</head><body>
{{ datacue_banners(static_img="/static.png", static_link=static_link) }}
{{ datacue_products() }}
</body></html>"""


def test_what_datacue_answers_is_shown_as_text_and_its_links_run_nothing(
    make_app: Callable[..., Flask],
    emulator: RunningEmulator,
    live_server: Callable[[Flask], str],
    visit: Callable[[], Visit],
) -> None:
    """Server-side widgets render DataCue's answer: a hostile product or banner there stays inert."""
    hostile = [payload for payload in CORPUS if "javascript" in payload.lower() or "<" in payload]
    for number, payload in enumerate(hostile):
        emulator.rest(
            "POST",
            "/products",
            {
                "product_id": f"p{number}",
                "variant_id": "v1",
                "categories": ["sofas"],
                "name": payload,
                "price": 9.5,
                "full_price": 12,
                "stock": 3,
                "photo_url": payload,
                "link": payload,
            },
        ).raise_for_status()
    emulator.set_banners(
        [
            {
                "banner_id": f"b{number}",
                "category_id": "sofas",
                "kind": kind,
                "name": payload,
                "photo_url": payload,
                "link": payload,
            }
            for number, payload in enumerate(hostile)
            for kind in ("main", "sub")
        ][:4]
    )
    app = make_app(DATACUE_DELIVERY="sync", DATACUE_SSR=True, **emulator.config)

    @app.route("/page/product", defaults={"page_type": "product"})
    @app.route("/page/home", defaults={"page_type": "home"})
    def page_view(page_type: str) -> str:
        fields = {"product_id": "p0"} if page_type == "product" else {}
        return render_template_string(SSR_PAGE, page_type=page_type, fields=fields, static_link=hostile[0])

    base = live_server(app)
    page = visit()
    for page_type in ("product", "home"):
        page.page.goto(f"{base}/page/{page_type}")
        names = page.page.eval_on_selector_all(
            ".datacue-card__name", "cards => cards.map(c => c.textContent)"
        )
        assert names and set(names) <= set(hostile)  # shown as text, exactly as DataCue sent them
        # The config script only (no DataCue loader with SSR), and only the widgets' own pictures.
        own_pictures = page.page.locator("img.datacue-card__photo, a.datacue-banner > img").count()
        assert page.elements() == {"script": 1, "body": 1, "img": own_pictures}
        links = page.page.locator("a.datacue-card, a.datacue-banner")
        for index in range(links.count()):  # a visitor clicking each recommendation, from the page
            page.page.goto(f"{base}/page/{page_type}")
            before = page.page.url
            link = links.nth(index)
            href = link.get_attribute("href") or ""
            # element.click() follows the link as a visitor's click would, even one without a
            # picture to click on (a broken image leaves nothing visible).
            link.evaluate("link => link.click()")
            if "<" in href and any(control in href for control in "\n\r\t"):
                # Chromium refuses to follow these (its "dangling markup" defence): nothing happens.
                page.page.wait_for_timeout(100)
                assert page.page.url == before
            else:
                # A relative page or "#": wait until the click has gone there, however busy the
                # machine, or the next goto would race its navigation.
                page.page.wait_for_url(
                    lambda url, left=before: url != left, wait_until="commit", timeout=15_000
                )
                page.page.wait_for_load_state()
        assert page.dialogs == []
        # Every link and picture DataCue sent points to a web page or picture, nowhere else.
        page.page.goto(f"{base}/page/{page_type}")
        schemes = page.page.eval_on_selector_all(
            "a[href], img[src]", "all => all.map(e => new URL(e.href || e.src).protocol)"
        )
        assert set(schemes) <= {"http:", "https:"}, schemes
