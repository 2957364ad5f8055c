"""Other sites in headless Chromium cannot wipe the emulator or read it through DNS rebinding.

The attacker's page is served on a second loopback port (another origin, the
same site); Chromium sets ``Sec-Fetch-Site`` and ``Origin`` itself. The
rebinding attacker is a browser that resolves ``evil.example`` to 127.0.0.1,
as a rebinding DNS server makes it do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask

from cue_front.emulator import RunningEmulator
from tests.conftest import CHROMIUM, CHROMIUM_ARGS
from tests.test_emulator_guard import loaded

ATTACK = """<!doctype html><html><body>
<form id="form" method="post" action="{emulator}/_emulator/reset"></form>
<script>
  // What any page can do without reading the answer: a no-cors fetch, or a form.
  fetch("{emulator}/_emulator/reset", {{method: "POST", mode: "no-cors"}})
    .then(() => {{ document.title = "fetched"; }}, () => {{ document.title = "fetch failed"; }});
</script>
</body></html>"""


def attacker(live_server: Callable[[Flask], str], emulator: RunningEmulator) -> str:
    """A page on another loopback port that tries to reset the emulator."""
    app = Flask("attacker")
    app.add_url_rule("/", "attack", lambda: ATTACK.format(emulator=emulator.url))
    return live_server(app)


def test_a_page_on_another_origin_cannot_reset_the_emulator(
    browser: Any, emulator: RunningEmulator, live_server: Callable[[Flask], str]
) -> None:
    assert loaded(emulator).overview()["products"] == 3
    page = browser.new_page()
    page.goto(attacker(live_server, emulator) + "/")
    page.wait_for_function("document.title === 'fetched'")

    with page.expect_navigation():
        page.evaluate("document.getElementById('form').submit()")

    assert "another site's page" in page.content()  # the form's answer: the 403
    assert emulator.overview()["products"] == 3
    assert len(emulator.requests()) == 1  # a reset would have emptied the journal too
    page.close()


def test_the_emulators_own_page_can_still_reset_it(browser: Any, emulator: RunningEmulator) -> None:
    loaded(emulator)
    page = browser.new_page()
    page.goto(emulator.url + "/")

    status = page.evaluate("fetch('/_emulator/reset', {method: 'POST'}).then(r => r.status)")

    assert status == 204
    assert emulator.overview()["products"] == 0
    page.close()


@pytest.fixture
def rebound_browser(browser: Any) -> Iterator[Any]:
    """A second Chromium (the ``browser`` fixture decides whether there is one) for which
    evil.example is 127.0.0.1."""
    rebound = browser.browser_type.launch(
        executable_path=CHROMIUM,
        args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"],
        headless=True,
    )
    try:
        yield rebound
    finally:
        rebound.close()


def test_a_rebinding_page_cannot_read_the_emulator(rebound_browser: Any, emulator: RunningEmulator) -> None:
    loaded(emulator)
    emulator.rest("POST", "/users", {"user_id": "u1", "first_name": "Ann", "email": "ann@example.com"})
    page = rebound_browser.new_page()

    response = page.goto(f"http://evil.example:{emulator.port}/_emulator/requests")

    assert response is not None and response.status == 421
    assert "ann@example.com" not in page.content()
    assert "evil.example" in page.content()
    assert emulator.overview()["products"] == 3
    page.close()
