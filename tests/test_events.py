"""Server-side track(): every documented event reaches DataCue with the server's identity and context."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import pytest
from flask import Flask, g, session
from itsdangerous import BadSignature, Signer
from werkzeug.middleware.proxy_fix import ProxyFix

from cue_front import DataCue, ValidationError, current_anonymous_id, track
from cue_front.emulator import RunningEmulator
from tests.support.samples import DOCUMENTED_EVENTS
from tests.support.shops import session_login_shop

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) cue-front-tests"


@pytest.fixture
def shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    """The shop with a session login; a logged-in user's profile is ``{"segment": "gold"}``."""
    app = session_login_shop(make_app, emulator)
    datacue: DataCue = app.extensions["datacue"].extension

    @datacue.profile_loader
    def current_profile() -> dict[str, Any] | None:
        return {"segment": "gold"} if session.get("user_id") else None

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


def anonymous_id_for(app: Flask, cookie: str | None) -> tuple[str, str | None]:
    """The anonymous id a request with this cookie gets, and the new cookie it would set (if any)."""
    environ = {"HTTP_COOKIE": f"datacue_anonymous_id={cookie}"} if cookie is not None else {}
    with app.test_request_context(environ_base=environ):
        anonymous_id = current_anonymous_id()
        assert anonymous_id is not None
        return anonymous_id, g.get("_datacue_new_anonymous_cookie")


# The anonymous-id cookie as every earlier version signed it: a plain itsdangerous Signer.
OLD_SALT = "cue-front.anonymous-id"


def test_cookies_signed_by_a_plain_signer_are_still_read(app: Flask) -> None:
    cookie = Signer("shop-secret-key", salt=OLD_SALT).sign("07d35b1a-5776-4ddf-8f1c-3c6d2b1c0a9e").decode()
    assert anonymous_id_for(app, cookie) == ("07d35b1a-5776-4ddf-8f1c-3c6d2b1c0a9e", None)


def test_new_cookies_verify_with_a_plain_signer(app: Flask) -> None:
    anonymous_id, cookie = anonymous_id_for(app, None)
    assert cookie is not None
    assert Signer("shop-secret-key", salt=OLD_SALT).unsign(cookie).decode() == anonymous_id
    assert anonymous_id_for(app, cookie) == (anonymous_id, None)


def test_a_cookie_is_accepted_exactly_when_a_plain_signer_accepts_it(app: Flask) -> None:
    signer = Signer("shop-secret-key", salt=OLD_SALT)
    good = signer.sign("a1").decode()
    value, signature = good.rsplit(".", 1)
    flipped = signature[:-1] + ("A" if signature[-1] != "A" else "B")
    candidates = [
        good,
        good + "=",  # padding, and characters outside base64, are skipped by itsdangerous
        f"{value}.{signature[:5]}!{signature[5:]}",
        f"{value}.{signature[:-1]}",
        f"{value}.{flipped}",
        f"{value}..{signature}",
        f"b1.{signature}",
        value,
        f".{signature}",
        f"{value}.",
        signer.sign("caf\u00e9").decode(),  # signed, but not ASCII
    ]
    for cookie in candidates:
        try:
            expected: str | None = signer.unsign(cookie).decode("ascii")
        except (BadSignature, UnicodeDecodeError):
            expected = None
        anonymous_id, new_cookie = anonymous_id_for(app, cookie)
        if expected is None:
            assert new_cookie is not None and anonymous_id != value, cookie
        else:
            assert (anonymous_id, new_cookie) == (expected, None), cookie


def test_a_new_secret_key_signs_new_cookies_and_refuses_old_ones(app: Flask) -> None:
    old_id, old_cookie = anonymous_id_for(app, None)
    assert old_cookie is not None
    app.config["SECRET_KEY"] = "rotated-secret-key"
    new_id, new_cookie = anonymous_id_for(app, old_cookie)
    assert new_id != old_id and new_cookie is not None
    assert Signer("rotated-secret-key", salt=OLD_SALT).unsign(new_cookie).decode() == new_id
    assert anonymous_id_for(app, new_cookie) == (new_id, None)


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
        assert track({"type": "click", "subtype": "carousel", "product_id": "p1"}) is False
    assert "unknown event (type='click', subtype='carousel')" in caplog.text
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
