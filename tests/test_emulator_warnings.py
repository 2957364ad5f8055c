"""The warning level at the emulator: what a sample of the guide sends against the guide's own table is
taken with the status the guide documents, and the warning is journaled, returned by ``/_emulator/...``
and shown in the debugger beside the request. ``track()`` takes the same and the emulator says the same.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import html5lib
import pytest
import requests
from flask import Flask

from cue_front.emulator import RunningEmulator, run_emulator
from tests.support.samples import GUIDE_BANNER_CLICK as BANNER_CLICK
from tests.support.samples import GUIDE_BATCH_USERS
from tests.support.samples import GUIDE_CHECKOUT as CHECKOUT
from tests.support.samples import GUIDE_PRODUCT_CLICK as PRODUCT_CLICK
from tests.support.shops import session_login_shop

BANNER_WARNING = "event.category_id: the guide's table lists only type, subtype and banner_id"

# Each event sample that breaks its table, and the warnings the emulator journals for it.
EVENT_SAMPLES = [
    pytest.param(BANNER_CLICK, [BANNER_WARNING], id="banner-click"),
    pytest.param(PRODUCT_CLICK, ["event.subtype: the guide's table says 'related', 'similar' or 'recent'"],
                 id="product-click"),
    pytest.param(CHECKOUT, [f"event.cart[{n}].variant: the guide's table says variant_id" for n in (0, 1)],
                 id="checkout"),
]


def inspect(emulator: RunningEmulator, what: str) -> Any:
    """``GET /_emulator/<what>``, as a shop's test reads it."""
    response = requests.get(f"{emulator.url}/_emulator/{what}", timeout=10)
    assert response.status_code == 200
    return response.json()


def shown_warnings(emulator: RunningEmulator, section: str) -> list[list[str]]:
    """The warnings the debugger page shows, row by row, in a section ("events" or "requests"), read
    as a browser parses the page; rows shown as warned only."""
    html = requests.get(emulator.url + "/", timeout=10).text
    document = html5lib.parse(html, namespaceHTMLElements=False)
    (part,) = [element for element in document.iter("section") if element.get("id") == section]
    return [
        ["".join(item.itertext()) for item in row.iter("li")]
        for row in part.iter("tr")
        if row.get("class") == "warned"
    ]


@pytest.mark.parametrize(("event", "warnings"), EVENT_SAMPLES)
@pytest.mark.parametrize("path", ["/", "/events"])
def test_an_event_sample_against_its_table_is_taken_and_warned(
    emulator: RunningEmulator, event: dict[str, Any], warnings: list[str], path: str
) -> None:
    response = requests.post(emulator.url + path, json={"user": {"user_id": "u1"}, "event": event},
                             auth=(emulator.api_key, ""), timeout=10)

    assert response.status_code == 204, response.text
    (journaled,) = inspect(emulator, "events")
    assert (journaled["status"], journaled["errors"], journaled["warnings"]) == (204, [], warnings)
    assert shown_warnings(emulator, "events") == [[f"warning: {warning}" for warning in warnings]]


@pytest.mark.parametrize(
    ("body", "prefix"),
    [({"batch": GUIDE_BATCH_USERS}, "batch"), (GUIDE_BATCH_USERS, "")],
    ids=["batch", "bare"],
)
def test_the_batch_users_sample_is_created_and_each_item_warned(
    emulator: RunningEmulator, body: Any, prefix: str
) -> None:
    response = emulator.rest("POST", "/batch/users", body)

    assert response.status_code == 201, response.text
    assert inspect(emulator, "overview")["users"] == 2
    expected = [f"{prefix}[{n}].first_name: the guide's table says required" for n in (0, 1)]
    (journaled,) = inspect(emulator, "requests")
    assert (journaled["errors"], journaled["warnings"]) == ([], expected)
    assert shown_warnings(emulator, "requests") == [[f"warning: {warning}" for warning in expected]]


def test_the_update_user_sample_with_its_user_id_is_warned(emulator: RunningEmulator) -> None:
    response = emulator.rest("PUT", "/users/u1", {"user_id": "u1", "first_name": "John"})

    assert response.status_code == 204, response.text
    assert inspect(emulator, "requests")[0]["warnings"] == [
        "user_id: the guide's table leaves it out of an update"
    ]


def test_a_batch_of_events_names_the_warned_item(emulator: RunningEmulator) -> None:
    login = {"user": {"user_id": "u1"}, "event": {"type": "login"}}
    batch = [login, {"user": {"user_id": "u1"}, "event": BANNER_CLICK}]

    response = requests.post(emulator.url + "/", json=batch, auth=(emulator.api_key, ""), timeout=10)

    assert response.status_code == 204, response.text
    assert inspect(emulator, "events")[0]["warnings"] == [f"[1].{BANNER_WARNING}"]


def test_many_warnings_are_shown_five_and_counted(emulator: RunningEmulator) -> None:
    users = [{"user_id": f"u{n}"} for n in range(7)]

    assert emulator.rest("POST", "/batch/users", {"batch": users}).status_code == 201

    (shown,) = shown_warnings(emulator, "requests")
    assert shown[:5] == [f"warning: batch[{n}].first_name: the guide's table says required" for n in range(5)]
    assert shown[5:] == ["and 2 more warnings"]
    assert len(inspect(emulator, "requests")[0]["warnings"]) == 7  # the JSON holds them all


def test_what_the_table_agrees_with_has_no_warnings_and_a_refusal_only_its_errors(
    emulator: RunningEmulator,
) -> None:
    assert emulator.rest("POST", "/users", {"user_id": "u1", "first_name": "Ann"}).status_code == 201
    # A bad email alongside a missing first_name: refused for the email alone.
    refused = emulator.rest("POST", "/users", {"user_id": "u2", "email": 7})

    assert refused.status_code == 400
    assert refused.json()["errors"] == ["email: expected a string, got 7"]
    newest, oldest = inspect(emulator, "requests")
    assert (oldest["status"], oldest["warnings"]) == (201, [])
    assert (newest["status"], newest["warnings"]) == (400, [])
    assert shown_warnings(emulator, "requests") == []


def test_warnings_survive_a_restart_with_the_journal(tmp_path: Path) -> None:
    database = tmp_path / "emulator.sqlite3"
    with run_emulator(db_path=database) as emulator:
        assert emulator.rest("POST", "/batch/users", {"batch": [{"user_id": "u1"}]}).status_code == 201

    with run_emulator(db_path=database) as restarted:
        assert restarted.requests()[0]["warnings"] == ["batch[0].first_name: the guide's table says required"]


def test_track_takes_what_the_guides_samples_send_and_the_emulator_warns(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator)

    taken = shop.test_client().post("/track", json=BANNER_CLICK)

    assert taken.get_data(as_text=True) == "queued"  # sent at once: DATACUE_DELIVERY is sync
    (event,) = emulator.events(type="click.banner")
    assert (event["status"], event["body"]["event"]) == (204, BANNER_CLICK)
    assert event["warnings"] == [BANNER_WARNING]
