"""In headless Chromium: the config a page renders is the config DataCue's script sees.

DataCue's CDN is out of reach here, so ``DATACUE_SCRIPT_URLS`` points at two
local stand-in scripts that record, in order, the config they found.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Response

from cue_front import render_datacue

STAND_IN = """
window.loaded = window.loaded || [];
window.loaded.push({name: "%s", config: window.datacueConfig});
"""
HOSTILE_TERM = "</script><script>window.pwned=1</script><!--\u2028'\""


def shop(make_app: Callable[..., Flask], **config: Any) -> Flask:
    app = make_app(DATACUE_SCRIPT_URLS=["/cdn/datacue.js", "/cdn/datacue-storefront.js"], **config)

    @app.route("/cdn/<name>")
    def stand_in(name: str) -> Response:
        return Response(STAND_IN % name.replace('"', ""), mimetype="text/javascript")

    @app.route("/search")
    def search() -> str:
        head = render_datacue("search", term=HOSTILE_TERM, nonce="r4nd0m")
        return f"<!doctype html><html><head>{head}</head><body><p>results</p></body></html>"

    @app.after_request
    def strict_csp(response: Response) -> Response:
        # No 'unsafe-inline': only nonce-carrying or same-origin scripts run.
        response.headers["Content-Security-Policy"] = "script-src 'self' 'nonce-r4nd0m'"
        return response

    return app


def test_inline_config_reaches_the_scripts_in_order(
    browser: Any, make_app: Callable[..., Flask], live_server: Callable[[Flask], str]
) -> None:
    base = live_server(shop(make_app))
    page = browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    page.goto(f"{base}/search")
    loaded = page.evaluate("window.loaded")
    assert [entry["name"] for entry in loaded] == ["datacue.js", "datacue-storefront.js"]
    expected = {"api_key": "test-key", "user_id": None, "page_type": "search", "term": HOSTILE_TERM}
    assert all(entry["config"] == expected for entry in loaded)
    assert page.evaluate("window.pwned") is None
    assert dialogs == []
    page.close()


def test_data_island_mode_works_under_a_strict_csp(
    browser: Any, make_app: Callable[..., Flask], live_server: Callable[[Flask], str]
) -> None:
    base = live_server(shop(make_app, DATACUE_CONFIG_MODE="json"))
    page = browser.new_page()
    page.goto(f"{base}/search")
    page.wait_for_function("window.loaded && window.loaded.length === 2")
    loaded = page.evaluate("window.loaded")
    assert [entry["name"] for entry in loaded] == ["datacue.js", "datacue-storefront.js"]
    assert loaded[0]["config"]["term"] == HOSTILE_TERM
    assert page.evaluate("window.pwned") is None
    page.close()
