"""Fault injection: seeded errors, Retry-After, latency and dropped connections, per route family."""

from __future__ import annotations

from typing import Any

import pytest
import requests

from cue_front.emulator import RunningEmulator, run_emulator

LOGIN: dict[str, Any] = {"type": "login"}


def rest_statuses(emulator: RunningEmulator, count: int) -> list[int]:
    return [emulator.rest("GET", "/overview").status_code for _ in range(count)]


def test_rest_faults_leave_events_alone(emulator: RunningEmulator) -> None:
    emulator.set_faults(rest={"error_503": 1.0})

    failed = emulator.rest("GET", "/overview")
    event = emulator.send_event(LOGIN, anonymous_id="a1")

    assert failed.status_code == 503
    assert failed.json()["message"] == "injected fault: 503 Service Unavailable"
    assert event.status_code == 204


def test_event_faults_leave_rest_alone(emulator: RunningEmulator) -> None:
    emulator.set_faults(events={"error_500": 1.0})

    assert emulator.send_event(LOGIN, anonymous_id="a1").status_code == 500
    assert emulator.rest("GET", "/overview").status_code == 200
    assert emulator.events()[0]["errors"] == ["injected fault: 500 Internal Server Error"]


def test_429_carries_retry_after(emulator: RunningEmulator) -> None:
    emulator.set_faults(error_429=1.0, retry_after=7)

    response = emulator.rest("GET", "/overview")

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"


def test_a_faulted_request_changes_nothing(emulator: RunningEmulator) -> None:
    emulator.set_faults(rest={"error_500": 1.0})
    product = {"product_id": "p1", "variant_id": "v1", "categories": [], "name": "P", "price": 1,
               "full_price": 1, "stock": 1, "photo_url": "/p.jpg", "link": "/p"}

    assert emulator.rest("POST", "/products", product).status_code == 500

    assert emulator.overview()["products"] == 0
    logged = emulator.requests()[0]
    assert (logged["status"], logged["type"], logged["action"]) == (500, "products", "create")


def test_the_same_seed_gives_the_same_faults(emulator: RunningEmulator) -> None:
    plan = {"seed": 42, "rest": {"error_500": 0.25, "error_503": 0.25, "error_429": 0.25}}

    emulator.set_faults(**plan)
    first = rest_statuses(emulator, 30)
    emulator.set_faults(**plan)
    second = rest_statuses(emulator, 30)
    emulator.set_faults(**{**plan, "seed": 43})
    other_seed = rest_statuses(emulator, 30)

    assert first == second
    assert set(first) == {200, 429, 500, 503}
    assert other_seed != first


def test_faults_stop_after_max_faults(emulator: RunningEmulator) -> None:
    emulator.set_faults(rest={"error_503": 1.0, "max_faults": 2})

    assert rest_statuses(emulator, 4) == [503, 503, 200, 200]


def test_a_dropped_connection_gets_no_answer(emulator: RunningEmulator) -> None:
    emulator.set_faults(events={"drop": 1.0})

    with pytest.raises(requests.ConnectionError):
        emulator.send_event(LOGIN, anonymous_id="a1")

    received = emulator.events(user="a1", type="login")[0]
    assert received["status"] is None
    assert received["errors"] == ["injected fault: connection dropped without an answer"]
    assert emulator.rest("GET", "/overview").status_code == 200  # the server itself is fine


def test_latency_can_outlast_a_client_timeout(emulator: RunningEmulator) -> None:
    emulator.set_faults(rest={"latency": 2.0})

    with pytest.raises(requests.Timeout):
        emulator.rest("GET", "/overview", timeout=0.2)

    emulator.set_faults(rest={"latency": 0.05, "latency_probability": 1.0})
    assert emulator.rest("GET", "/overview", timeout=5).status_code == 200


def test_faults_are_set_over_http_and_invalid_plans_name_the_field(emulator: RunningEmulator) -> None:
    url = emulator.url + "/_emulator/faults"

    accepted = requests.post(url, json={"seed": 1, "events": {"error_503": 0.5}}, timeout=10)
    refused = requests.post(url, json={"rest": {"error_500": 1.5}, "events": {"drop": "often"}}, timeout=10)
    too_many = requests.post(url, json={"error_500": 0.6, "error_503": 0.6}, timeout=10)
    not_an_object = requests.post(url, json=[0.5], timeout=10)

    assert accepted.status_code == 200
    assert accepted.json()["events"]["error_503"] == 0.5
    assert requests.get(url, timeout=10).json() == accepted.json()
    assert refused.status_code == 400
    assert refused.json()["errors"] == ["events.drop: expected a number, got 'often'"]
    assert too_many.status_code == 400
    assert "add up to 1.2" in too_many.json()["message"]
    assert not_an_object.status_code == 400


def test_faults_given_at_start_come_back_after_reset() -> None:
    with run_emulator(faults={"rest": {"error_503": 1.0}}) as emulator:
        emulator.set_faults()
        assert emulator.rest("GET", "/overview").status_code == 200

        emulator.reset()

        assert emulator.rest("GET", "/overview").status_code == 503


def test_the_emulators_own_endpoints_never_fail(emulator: RunningEmulator) -> None:
    emulator.set_faults(error_500=1.0)

    assert requests.get(emulator.url + "/_emulator/events", timeout=10).status_code == 200
    assert requests.get(emulator.url + "/", timeout=10).status_code == 200
