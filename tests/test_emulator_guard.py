"""The emulator keeps other sites out: foreign hosts get 421, other sites' pages cannot change it.

Headers are set by hand here, as a browser would set them; ``tests/browser/test_emulator_guard.py``
has Chromium set them itself.
"""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
import requests

from cue_front.emulator import RunningEmulator, run_emulator
from cue_front.emulator.guard import host_name
from cue_front.signing import events_authorization
from tests.test_emulator_rest import product


def loaded(emulator: RunningEmulator) -> RunningEmulator:
    """The emulator with three products: what a successful reset would lose."""
    products = [product("p1"), product("p2"), product("p3")]
    assert emulator.rest("POST", "/batch/products", {"batch": products}).status_code == 201
    return emulator


def get(emulator: RunningEmulator, path: str, **headers: str) -> requests.Response:
    return requests.get(emulator.url + path, headers=headers, timeout=10)


def post(emulator: RunningEmulator, path: str, **headers: str) -> requests.Response:
    return requests.post(emulator.url + path, headers=headers, timeout=10)


# -- Host -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/_emulator/requests", "/", "/v1/overview", "/events"])
def test_a_foreign_host_is_refused_with_421_everywhere(emulator: RunningEmulator, path: str) -> None:
    loaded(emulator)
    journal_before = len(emulator.requests())

    response = get(emulator, path, Host=f"evil.example:{emulator.port}")

    assert response.status_code == 421
    message = response.json()["message"]
    assert "'evil.example'" in message and "--allow-host evil.example" in message
    assert "p1" not in response.text
    assert len(emulator.requests()) == journal_before  # refused before anything, journaled nowhere


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LocalHost", "[::1]"])
def test_the_loopback_names_are_answered_on_any_port(emulator: RunningEmulator, host: str) -> None:
    port = emulator.port

    with_port = get(emulator, "/_emulator/overview", Host=f"{host}:{port}")
    forwarded = get(emulator, "/_emulator/overview", Host=f"{host}:{port + 1}")  # a local proxy's port
    bare = get(emulator, "/_emulator/overview", Host=host)

    assert (with_port.status_code, forwarded.status_code, bare.status_code) == (200, 200, 200)


def test_allowed_hosts_are_answered_and_others_still_refused() -> None:
    with run_emulator(allow_hosts=["Shop.Test", "emulator:5050"]) as emulator:
        port = emulator.port
        allowed = get(emulator, "/_emulator/overview", Host=f"shop.test:{port}")
        named_with_a_port = get(emulator, "/_emulator/overview", Host="emulator:8080")
        other = get(emulator, "/_emulator/overview", Host=f"evil.example:{port}")

    assert (allowed.status_code, named_with_a_port.status_code, other.status_code) == (200, 200, 421)


def test_the_command_line_allows_hosts_with_repeated_allow_host() -> None:
    command = [sys.executable, "-m", "cue_front.emulator", "--port", "0", "--quiet",
               "--allow-host", "shop.test", "--allow-host", "emulator"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None
            root = process.stdout.readline().split(" on ", 1)[1].split(" ", 1)[0]
            statuses = [
                requests.get(root + "/_emulator/overview", headers={"Host": host}, timeout=10).status_code
                for host in ("shop.test", "emulator:5050", "evil.example")
            ]
        finally:
            process.terminate()
            process.wait(timeout=10)

    assert statuses == [200, 200, 421]


@pytest.mark.parametrize(
    ("header", "name"),
    [("localhost:5050", "localhost"), ("[::1]:5050", "::1"), ("Example.TEST", "example.test"),
     ("[::1]", "::1"), ("", "")],
)
def test_host_name_drops_the_port_and_case(header: str, name: str) -> None:
    assert host_name(header) == name


# -- cross-site requests --------------------------------------------------------------------------


STATE_CHANGES: list[tuple[str, str, Any]] = [
    ("POST", "/_emulator/reset", None),
    ("POST", "/_emulator/faults", {"error_500": 1}),
    ("PUT", "/_emulator/banners", {"banners": []}),
]


@pytest.mark.parametrize(("method", "path", "body"), STATE_CHANGES)
@pytest.mark.parametrize(
    "headers",
    [
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # another port of the same host is another origin
        {"Origin": "http://127.0.0.1:1"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "same-site", "Origin": "{own}"},  # Sec-Fetch-Site decides when present
    ],
    ids=["cross-site", "same-site", "other origin", "null origin", "same-site from its own origin"],
)
def test_other_sites_pages_cannot_change_the_emulator(
    emulator: RunningEmulator, method: str, path: str, body: Any, headers: dict[str, str]
) -> None:
    loaded(emulator)
    headers = {name: value.format(own=emulator.url) for name, value in headers.items()}

    response = requests.request(method, emulator.url + path, json=body, headers=headers, timeout=10)

    assert response.status_code == 403
    assert "another site's page" in response.json()["message"]
    assert emulator.overview()["products"] == 3
    assert emulator.state.faults.plan.rest.error_500 == 0


@pytest.mark.parametrize(
    "headers",
    [
        {},  # curl, requests, the tests: not a web page
        {"Sec-Fetch-Site": "same-origin"},  # the emulator's own page
        {"Sec-Fetch-Site": "none"},  # typed in the address bar
        {"Origin": "{own}"},  # the emulator's own page, in a browser without Sec-Fetch-Site
    ],
    ids=["no browser", "same-origin", "address bar", "own origin"],
)
def test_the_emulators_own_page_and_non_browsers_can_reset_it(
    emulator: RunningEmulator, headers: dict[str, str]
) -> None:
    loaded(emulator)
    headers = {name: value.format(own=emulator.url) for name, value in headers.items()}

    response = post(emulator, "/_emulator/reset", **headers)

    assert response.status_code == 204, response.text
    assert emulator.overview()["products"] == 0


def test_reading_and_the_events_api_stay_open_to_other_sites(emulator: RunningEmulator) -> None:
    loaded(emulator)
    cross_site = {"Sec-Fetch-Site": "cross-site", "Origin": "https://shop.example"}

    read = get(emulator, "/_emulator/overview", **cross_site)
    event = requests.post(
        emulator.events_url,
        json={"user": {"anonymous_id": "a1"}, "event": {"type": "login"}},
        headers={**cross_site, "Authorization": events_authorization(emulator.api_key)},
        timeout=10,
    )

    assert read.status_code == 200
    assert "Access-Control-Allow-Origin" not in read.headers  # so another site cannot read it
    assert event.status_code == 204  # shops' pages post events from their own origin

