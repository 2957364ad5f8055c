"""Server-side track(): every documented event reaches DataCue with the server's identity and context."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask, session
from werkzeug.middleware.proxy_fix import ProxyFix

from cue_front import DataCue, ValidationError, track
from cue_front.emulator import RunningEmulator

from .test_schema import DOCUMENTED_EVENTS

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) cue-front-tests"


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    """A shop talking to the emulator synchronously, with a session-based login."""
    app = make_app(DATACUE_DELIVERY="sync", **emulator.config)
    datacue: DataCue = app.extensions["datacue"].extension

    @datacue.user_id_loader
    def current_user() -> str | None:
        return session.get("user_id")

    @datacue.profile_loader
    def current_profile() -> dict[str, Any] | None:
        return {"segment": "gold"} if session.get("user_id") else None

    @app.post("/track")
    def track_view() -> str:
        from flask import request

        track(request.get_json())
        return "ok"

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        session["user_id"] = user_id
        track({"type": "login"})
        return "ok"

    return app


def received(emulator: RunningEmulator) -> list[dict[str, Any]]:
    """The envelopes the emulator received, oldest first."""
    return [item["body"] for item in reversed(emulator.events())]


@pytest.mark.parametrize("event", DOCUMENTED_EVENTS, ids=lambda e: f"{e['type']}-{e.get('subtype')}")
def test_every_event_arrives_with_identity_context_and_time(
    shop: Flask, emulator: RunningEmulator, event: dict[str, Any]
) -> None:
    client = shop.test_client()
    before = datetime.now(timezone.utc).replace(microsecond=0)
    response = client.post("/track", json=event, headers={"User-Agent": BROWSER})
    assert response.status_code == 200
    (envelope,) = received(emulator)
    assert envelope["event"] == event
    anonymous_id = envelope["user"]["anonymous_id"]
    assert envelope["user"] == {"anonymous_id": anonymous_id}
    assert envelope["context"] == {"ip": "127.0.0.1", "user_agent": BROWSER}
    sent_at = datetime.strptime(envelope["timestamp"], "%Y-%m-%d %H:%M:%S.%fZ").replace(tzinfo=timezone.utc)
    assert sent_at >= before
    assert emulator.events()[0]["status"] in (200, 204)
    assert emulator.events()[0]["errors"] == []


def test_the_anonymous_id_is_kept_in_a_signed_cookie(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    first = client.post("/track", json={"type": "login"})
    cookie_header = first.headers["Set-Cookie"]
    assert "datacue_anonymous_id=" in cookie_header
    assert "HttpOnly" in cookie_header
    assert "SameSite=Lax" in cookie_header
    assert "Secure" not in cookie_header  # plain http here
    client.post("/track", json={"type": "pageview", "subtype": "home"})
    first_id, second_id = (envelope["user"]["anonymous_id"] for envelope in received(emulator))
    assert first_id == second_id
    cookie = client.get_cookie("datacue_anonymous_id")
    assert cookie is not None
    assert first_id in cookie.value  # the id, then its signature


def test_a_tampered_cookie_is_ignored_and_replaced(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    client.set_cookie("datacue_anonymous_id", "someone-elses-id.forgedsignature")
    response = client.post("/track", json={"type": "login"})
    (envelope,) = received(emulator)
    assert envelope["user"]["anonymous_id"] != "someone-elses-id"
    assert "datacue_anonymous_id=" in response.headers["Set-Cookie"]


def test_the_cookie_is_secure_on_https(shop: Flask) -> None:
    response = shop.test_client().post("/track", json={"type": "login"}, base_url="https://shop.test")
    assert "Secure" in response.headers["Set-Cookie"]


def test_login_stitches_the_anonymous_history_to_the_user(shop: Flask, emulator: RunningEmulator) -> None:
    client = shop.test_client()
    client.post("/track", json={"type": "pageview", "subtype": "product", "product_id": "p1"})
    client.post("/login/u42")
    browsing, login = received(emulator)
    assert login["event"] == {"type": "login"}
    assert login["user"] == {
        "user_id": "u42",
        "anonymous_id": browsing["user"]["anonymous_id"],
        "profile": {"segment": "gold"},
    }


def test_context_ip_behind_proxy_fix(shop: Flask, emulator: RunningEmulator) -> None:
    shop.wsgi_app = ProxyFix(shop.wsgi_app, x_for=1)  # type: ignore[method-assign]
    shop.test_client().post("/track", json={"type": "login"}, headers={"X-Forwarded-For": "203.0.113.9"})
    assert received(emulator)[0]["context"]["ip"] == "203.0.113.9"


def test_outside_a_request_identity_and_time_are_explicit(shop: Flask, emulator: RunningEmulator) -> None:
    ordered_at = datetime(2018, 4, 4, 23, 29, 4, tzinfo=timezone.utc)
    event = {"type": "wishlist", "subtype": "add", "product_id": 7}
    with shop.app_context():
        track(event, user_id="u1", context={"ip": "12.34.56.78"}, timestamp=ordered_at)
        with pytest.raises(ValidationError, match="user: needs user_id or anonymous_id"):
            track({"type": "login"})
    (envelope,) = received(emulator)
    assert envelope == {
        "user": {"user_id": "u1"},
        "event": {"type": "wishlist", "subtype": "add", "product_id": "7"},
        "context": {"ip": "12.34.56.78"},
        "timestamp": "2018-04-04 23:29:04Z",
    }


def test_invalid_events_raise_in_strict_mode_with_the_field_path(
    shop: Flask, emulator: RunningEmulator
) -> None:
    bad = {"type": "cart", "subtype": "update", "cart": [{"product_id": "p1", "quantity": "2"}]}
    with shop.test_request_context(), pytest.raises(ValidationError) as caught:
        track(bad)
    assert "event.cart[0].quantity: expected an integer, got '2'" in str(caught.value)
    assert "event.cart_link: required field missing" in str(caught.value)
    assert emulator.events() == []


def test_invalid_events_are_logged_and_dropped_when_lenient(
    make_app: Callable[..., Flask], emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(DATACUE_DELIVERY="sync", DATACUE_STRICT=False, **emulator.config)
    with app.test_request_context():
        assert track({"type": "click", "subtype": "product", "product_id": "p1"}) is False
    assert "unknown event (type='click', subtype='product')" in caplog.text
    assert emulator.events() == []


def test_delivery_off_validates_and_sends_nothing(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    app = make_app(DATACUE_DELIVERY="off", **emulator.config)
    with app.test_request_context():
        assert track({"type": "login"}) is True
        with pytest.raises(ValidationError):
            track({"type": "logout"})
    assert emulator.events() == []
