"""Seeing what the emulator received: the debugger page, ``/_emulator/...``, the fixture, the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import requests

from cue_front.emulator import DEFAULT_API_KEY, DEFAULT_API_SECRET, RunningEmulator, run_emulator
from cue_front.signing import rest_authorization

BAD_CART_EVENT = {
    "type": "cart", "subtype": "update", "cart_link": "/cart",
    "cart": [{"product_id": "p1", "variant_id": "v1", "quantity": "two", "unit_price": 10}],
}


def page(emulator: RunningEmulator, path: str = "/", **params: str) -> str:
    response = requests.get(emulator.url + path, params=params, timeout=10)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    return response.text


def section(html: str, name: str) -> str:
    start = html.index(f'<section id="{name}"')
    return html[start:html.index("</section>", start)]


def load_products(emulator: RunningEmulator) -> None:
    products = [
        {"product_id": pid, "variant_id": "v1", "categories": ["lamps"], "name": name, "price": 30,
         "full_price": 30, "stock": 2, "photo_url": f"/{pid}.jpg", "link": f"/p/{pid}"}
        for pid, name in (("p1", "Brass Desk Lamp"), ("p2", "Brass Floor Lamp"), ("p3", "Paper Lamp"))
    ]
    assert emulator.rest("POST", "/batch/products", {"batch": products}).status_code == 201


def test_the_page_lists_events_newest_first_with_their_validation(emulator: RunningEmulator) -> None:
    load_products(emulator)
    emulator.send_event({"type": "pageview", "subtype": "home"}, user_id="shopper-1",
                        context={"ip": "12.34.56.78", "user_agent": "Mozilla/5.0 Test"})
    emulator.send_event(BAD_CART_EVENT, anonymous_id="anon-7")

    html = page(emulator)

    events = section(html, "events")
    assert events.index("anonymous anon-7") < events.index("user shopper-1")
    invalid_row = events[events.index('<tr class="invalid">'):]
    assert "event.cart[0].quantity: expected an integer, got &#39;two&#39;" in invalid_row.split("</tr>")[0]
    assert '<tr class="valid">' in events
    assert "12.34.56.78" in events and "Mozilla/5.0 Test" in events
    assert "<b>3</b> products" in section(html, "counts")
    assert "POST /v1/batch/products" in section(html, "requests")


def test_the_page_shows_what_each_visitor_viewed_and_was_recommended(emulator: RunningEmulator) -> None:
    load_products(emulator)
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "p3"}, anonymous_id="a1")
    emulator.send_event({"type": "pageview", "subtype": "product", "product_id": "p1"}, anonymous_id="a1")

    visitors = section(page(emulator), "visitors")

    assert "anonymous a1" in visitors
    assert "Brass Desk Lamp <span class=\"muted\">(p1)</span>, Paper Lamp" in visitors
    assert "similar_product_skus: Brass Floor Lamp, Paper Lamp" in visitors
    assert "lamps (2.0)" in visitors


def test_hostile_strings_are_shown_escaped(emulator: RunningEmulator) -> None:
    emulator.send_event({"type": "login"}, anonymous_id="<script>alert(1)</script>")

    html = page(emulator)

    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_the_live_part_refreshes_with_new_events(emulator: RunningEmulator) -> None:
    html = page(emulator)
    assert 'data-src="/_emulator/live' in html and "setInterval" in html
    assert "No events yet" in page(emulator, "/_emulator/live")

    emulator.send_event({"type": "search", "term": "lamps"}, user_id="u1")

    live = page(emulator, "/_emulator/live")
    assert "No events yet" not in live and "search" in section(live, "events")


def test_the_page_filters_by_visitor(emulator: RunningEmulator) -> None:
    emulator.send_event({"type": "login"}, user_id="alice")
    emulator.send_event({"type": "login"}, user_id="bob")

    events = section(page(emulator, user="alice"), "events")

    assert "user alice" in events and "user bob" not in events


def test_the_page_says_when_faults_are_on(emulator: RunningEmulator) -> None:
    assert 'id="faults"' not in page(emulator)

    emulator.set_faults(seed=3, rest={"error_503": 0.5})

    assert "Fault injection is on (seed 3)" in page(emulator)


def test_reset_and_overview_endpoints(emulator: RunningEmulator) -> None:
    load_products(emulator)
    emulator.send_event({"type": "login"}, user_id="u1")
    assert requests.get(emulator.url + "/_emulator/overview", timeout=10).json() == emulator.overview()

    reset = requests.post(emulator.url + "/_emulator/reset", timeout=10)

    assert reset.status_code == 204
    assert emulator.overview() == {"products": 0, "variants": 0, "categories": 0, "users": 0, "orders": 0}
    assert emulator.events() == [] and emulator.requests() == []


def test_banners_are_validated_naming_the_field(emulator: RunningEmulator) -> None:
    response = requests.put(emulator.url + "/_emulator/banners",
                            json={"banners": [{"banner_id": "b1", "category_id": "c1", "link": "/c"}]},
                            timeout=10)

    assert response.status_code == 400
    assert response.json()["errors"] == ["banners[0].photo_url: required field missing"]


def test_banners_can_come_from_a_json_file(tmp_path: Path) -> None:
    banners: list[dict[str, Any]] = [{"banner_id": "b1", "category_id": "c1", "photo_url": "/b1.jpg",
                                      "link": "/c/c1", "kind": "sub"}]
    path = tmp_path / "banners.json"
    path.write_text(json.dumps({"banners": banners}), encoding="utf-8")

    with run_emulator(banners=path) as emulator:
        listed = requests.get(emulator.url + "/_emulator/banners", timeout=10).json()
        home = emulator.send_event({"type": "pageview", "subtype": "home"}, anonymous_id="a1").json()

    assert listed == {"banners": [{**banners[0], "name": ""}]}
    assert home["sub_banners"] == [{"banner_id": "b1", "name": "", "link": "/c/c1", "photo_url": "/b1.jpg"}]


def test_the_fixture_gives_a_shop_its_settings(emulator: RunningEmulator) -> None:
    assert emulator.url.startswith("http://127.0.0.1:")
    assert emulator.config == {
        "DATACUE_API_KEY": "test-key",
        "DATACUE_API_SECRET": "test-secret",
        "DATACUE_API_URL": emulator.url + "/v1",
        "DATACUE_EVENTS_URL": emulator.url + "/",
    }
    assert (emulator.api_url, emulator.events_url) == (emulator.url + "/v1", emulator.url + "/")
    assert emulator.app.name == "cue_front.emulator"


def test_the_command_line_prints_the_settings_and_serves(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "cue_front.emulator", "--port", "0", "--quiet",
               "--db", str(tmp_path / "emulator.sqlite3")]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            printed: dict[str, str] = {}
            for line in process.stdout:
                name, equals, value = line.strip().partition("=")
                if equals:
                    printed[name] = value
                if name == "DATACUE_EVENTS_URL":
                    break
            overview = requests.get(
                printed["DATACUE_API_URL"] + "/overview",
                headers={"Authorization": rest_authorization(DEFAULT_API_KEY, DEFAULT_API_SECRET, b"")},
                timeout=10,
            )
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert printed["DATACUE_API_KEY"] == DEFAULT_API_KEY
    assert printed["DATACUE_API_SECRET"] == DEFAULT_API_SECRET
    assert printed["DATACUE_API_URL"].startswith("http://127.0.0.1:")
    assert printed["DATACUE_EVENTS_URL"] == printed["DATACUE_API_URL"].removesuffix("v1")
    assert overview.status_code == 200
