"""No one visitor can crowd out the rest: the fair outbox, rate limits, size and number bounds.

The flood is scaled down (a small cap), DataCue is unreachable while it lasts, and what is kept
is read back from the outbox and from what the emulator receives once DataCue is back.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask, render_template_string
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address

from cue_front import PayloadTooLargeError, signals, track
from cue_front.emulator import RunningEmulator
from cue_front.outbox import Droppable, OutboxFullError
from tests.support.shops import session_login_shop

SITE = "http://localhost"
CART = [{"product_id": "p1", "variant_id": "v1", "unit_price": 10, "quantity": 1}]


def post_event(client: Any, event: dict[str, Any], **headers: str) -> Any:
    return client.post("/datacue/events", json={"event": event}, headers={"Origin": SITE, **headers})


# -- a fair outbox ------------------------------------------------------------------------------


@pytest.fixture
def outage_shop(make_app: Callable[..., Flask], emulator: RunningEmulator) -> Flask:
    """A shop queuing into a small outbox (300 rows, 20 per visitor) while DataCue's APIs fail."""
    emulator.set_faults(events={"error_503": 1.0}, rest={"error_503": 1.0})
    return make_app(
        DATACUE_DELIVERY="outbox",
        DATACUE_OUTBOX_MAX_ROWS=300,
        DATACUE_OUTBOX_STORE_MAX=50,
        **emulator.config,
    )


def test_a_flood_of_page_views_keeps_every_other_visitors_events(
    outage_shop: Flask, emulator: RunningEmulator
) -> None:
    state = outage_shop.extensions["datacue"]
    with outage_shop.test_request_context():
        for _ in range(1_000):  # one client reloading category pages in a loop
            track({"type": "pageview", "subtype": "category", "category_name": "Sale"}, anonymous_id="flood")
            state.outbox.ingest()
        for shopper in ("ana", "ben"):
            assert track(
                {"type": "cart", "subtype": "update", "cart": CART, "cart_link": "/cart"},
                user_id=shopper,
                anonymous_id=f"a-{shopper}",
            )
            assert track(
                {"type": "checkout", "subtype": "started", "cart": CART, "cart_link": "/cart"},
                user_id=shopper,
                anonymous_id=f"a-{shopper}",
            )
        state.queued.categories.create({"category_id": "sale", "name": "Sale"})
    stats = state.outbox.stats()
    assert stats.refused == 0  # nobody was turned away
    assert stats.dropped >= 1_000 - 20  # the flood kept its share, 20 page views
    emulator.set_faults()
    state.outbox.retry_now()  # DataCue is back: no row waits out its backoff
    assert state.delivery.flush(30)
    events = [e for e in emulator.events() if e["status"] < 300]  # accepted, not the outage's 503s
    flood = [e for e in events if e["body"]["user"].get("anonymous_id") == "flood"]
    assert len(flood) <= 20
    kept = [(e["body"]["user"].get("user_id"), e["body"]["event"]["type"]) for e in events if e not in flood]
    assert sorted(kept) == [("ana", "cart"), ("ana", "checkout"), ("ben", "cart"), ("ben", "checkout")]
    (store_change,) = [r for r in emulator.requests(type="categories") if r["status"] < 300]
    assert store_change["body"] == {"category_id": "sale", "name": "Sale"}


def test_store_changes_past_their_bound_are_refused_loudly(
    outage_shop: Flask, caplog: pytest.LogCaptureFixture
) -> None:
    state = outage_shop.extensions["datacue"]
    refusals: list[dict[str, Any]] = []
    signals.outbox_full.connect(lambda sender, **details: refusals.append(details), outage_shop, weak=False)
    accepted = 0
    with outage_shop.test_request_context(), pytest.raises(OutboxFullError, match="store change was refused"):
        for number in range(1_000):
            state.queued.users.create({"user_id": f"u{number}", "first_name": "Guest"})
            accepted += 1
    assert 300 + 50 - 5 <= accepted <= 300 + 50  # the bound, with a few rows of upkeep
    assert refusals and refusals[0]["kind"] == "rest"
    assert "store change was refused" in caplog.text
    stats = state.outbox.stats()
    assert stats.pending + stats.in_flight == accepted  # every accepted change is still there


# -- rate limits --------------------------------------------------------------------------------


def test_the_events_endpoint_limits_each_visitor_and_says_when_to_retry(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_PROXY_RATE_LIMIT="3/minute")
    first, second = shop.test_client(), shop.test_client()
    statuses = [post_event(first, {"type": "login"}).status_code for _ in range(4)]
    assert statuses == [204, 204, 204, 429]
    refused = post_event(first, {"type": "login"})
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert "at most 3 per 1 minute" in refused.get_json()["error"]
    assert post_event(second, {"type": "login"}).status_code == 204  # another visitor, the same IP


def test_one_ip_is_limited_to_a_few_visitors_worth(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_PROXY_RATE_LIMIT="2/minute")
    statuses = [post_event(shop.test_client(), {"type": "login"}).status_code for _ in range(12)]
    assert statuses.count(204) == 10 and statuses[-1] == 429  # five visitors' worth from one IP


def test_the_limit_touches_no_other_route(make_app: Callable[..., Flask]) -> None:
    shop = make_app(RATELIMIT_DEFAULT="3/minute")  # the shop's setting, for a Limiter it has not made
    shop.add_url_rule("/", "home", lambda: "home")
    client = shop.test_client()
    assert [client.get("/").status_code for _ in range(10)] == [200] * 10


def test_the_shops_own_limiter_is_used_even_when_made_after_datacue(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_PROXY_RATE_LIMIT="2/minute")
    limiter = Limiter(get_remote_address, app=shop, storage_uri="memory://")
    client = shop.test_client()
    assert [post_event(client, {"type": "login"}).status_code for _ in range(3)] == [204, 204, 429]
    limiter.reset()  # the counts were in the shop's storage
    assert post_event(client, {"type": "login"}).status_code == 204


def test_server_sent_page_events_are_limited_per_visitor(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = make_app(
        DATACUE_DELIVERY="sync", DATACUE_SSR=True, DATACUE_PAGE_EVENT_RATE_LIMIT="3/minute", **emulator.config
    )
    shop.add_url_rule(
        "/sale",
        "sale",
        lambda: render_template_string("{{ render_datacue('category', category_id='sale') }}"),
    )
    client = shop.test_client()
    assert [client.get("/sale").status_code for _ in range(6)] == [200] * 6  # every page renders
    assert len(emulator.events(type="pageview")) == 3


# -- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("item", "message"),
    [
        ({"quantity": 2**64}, "cart[0].quantity: must be at most 1000000"),
        (
            {"quantity": int("9" * 4001)},
            "cart[0].quantity: must be at most 1000000, got an integer of 4,001 digits",
        ),
        ({"unit_price": 1e308}, "cart[0].unit_price: must be at most 1e+15 either way"),
        ({"quantity": 0}, "cart[0].quantity: must be at least 1"),
    ],
)
def test_numbers_out_of_bounds_are_refused_with_their_path(
    make_app: Callable[..., Flask], emulator: RunningEmulator, item: dict[str, Any], message: str
) -> None:
    shop = session_login_shop(make_app, emulator)
    event = {"type": "cart", "subtype": "update", "cart_link": "/cart", "cart": [{**CART[0], **item}]}
    body = json.dumps({"event": event})  # the 4,001 digits as a browser would send them
    response = shop.test_client().post(
        "/datacue/events", data=body, content_type="application/json", headers={"Origin": SITE}
    )
    assert response.status_code == 400
    assert message in response.get_json()["error"]
    assert emulator.events() == []


def test_track_refuses_an_event_over_datacues_size_limit_in_every_mode(
    make_app: Callable[..., Flask], tmp_path: Any
) -> None:
    huge_cart = [{**CART[0], "product_id": f"p{n}-{'x' * 1000}"} for n in range(7_000)]  # about 7 MB
    event = {"type": "cart", "subtype": "update", "cart": huge_cart, "cart_link": "/cart"}
    for mode in ("outbox", "off"):
        app = make_app(DATACUE_DELIVERY=mode, DATACUE_OUTBOX_PATH=str(tmp_path / f"{mode}.sqlite3"))
        with app.test_request_context(), pytest.raises(PayloadTooLargeError, match="at most 5,242,880"):
            track(event)
        if mode == "outbox":
            assert app.extensions["datacue"].outbox.stats().pending == 0
    lenient_path = str(tmp_path / "lenient.sqlite3")
    lenient = make_app(DATACUE_STRICT=False, DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_PATH=lenient_path)
    with lenient.test_request_context():
        assert track(event) is False


def test_a_malformed_chunked_body_is_a_400(
    make_app: Callable[..., Flask], emulator: RunningEmulator, live_server: Callable[[Flask], str]
) -> None:
    url = live_server(session_login_shop(make_app, emulator))
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as connection:
        connection.sendall(
            b"POST /datacue/events HTTP/1.1\r\nHost: localhost\r\nOrigin: http://localhost\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n"
        )
        answer = connection.recv(65536).decode("latin-1")
    assert answer.startswith("HTTP/1.1 400"), answer[:200]
    assert "Traceback" not in answer


# -- links to the shop's own site ---------------------------------------------------------------


def test_the_endpoint_takes_cart_links_to_this_shop_only(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator)
    client = shop.test_client()
    for link, status in (
        ("/cart", 204),
        (f"{SITE}/cart", 204),
        ("http://evil.example/cart", 400),
        ("//evil.example/cart", 400),
        ("javascript:alert(1)", 400),
    ):
        event = {"type": "cart", "subtype": "update", "cart": CART, "cart_link": link}
        response = post_event(client, event)
        assert response.status_code == status, (link, response.get_data())
    received = [e["body"]["event"]["cart_link"] for e in emulator.events(type="cart")]
    assert received == [f"{SITE}/cart", "/cart"]  # newest first


def test_cart_links_are_made_on_the_configured_address_not_the_host_header(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_SHOP_URL="https://shop.example/")
    client = shop.test_client()
    event = {"type": "cart", "subtype": "update", "cart": CART, "cart_link": "/cart"}
    client.post("/track", json=event, headers={"Host": "evil.example"})
    (cart,) = emulator.events(type="cart")
    assert cart["body"]["event"]["cart_link"] == "https://shop.example/cart"
    spoofed = post_event(client, {**event, "cart_link": "http://evil.example/cart"}, Host="evil.example")
    assert spoofed.status_code in (400, 403)  # off the shop's site, whatever the Host says


# -- found in review: limits that fail, floods of other kinds, erasure, links -------------------


def test_a_rate_limit_storage_that_is_down_refuses_nothing(
    make_app: Callable[..., Flask], emulator: RunningEmulator, caplog: pytest.LogCaptureFixture
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_SSR=True)
    Limiter(get_remote_address, app=shop, storage_uri="redis://127.0.0.1:1", swallow_errors=True)
    shop.add_url_rule(
        "/sale",
        "sale",
        lambda: render_template_string("{{ render_datacue('category', category_id='sale') }}"),
    )
    client = shop.test_client()
    assert client.get("/sale").status_code == 200
    assert post_event(client, {"type": "login"}).status_code == 204
    assert "rate limits cannot be counted" in caplog.text


def test_a_flood_of_clicks_keeps_another_visitors_login(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    emulator.set_faults(events={"error_503": 1.0})
    shop = session_login_shop(
        make_app, emulator, DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_MAX_ROWS=100, DATACUE_STRICT=False
    )
    attacker = shop.test_client()
    for number in range(150):
        post_event(attacker, {"type": "click", "subtype": "banner", "banner_id": f"b{number}"})
        shop.extensions["datacue"].outbox.ingest()
    assert shop.test_client().post("/login/ana").status_code == 200
    stats = shop.extensions["datacue"].outbox.stats()
    # 120 clicks got past the endpoint's limit (120 a minute); all but the share of 20 went.
    assert (stats.refused, stats.dropped, stats.pending) == (0, 100, 20 + 1)


def test_page_events_are_limited_per_ip_when_the_cookie_is_dropped(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = make_app(
        DATACUE_DELIVERY="sync", DATACUE_SSR=True, DATACUE_PAGE_EVENT_RATE_LIMIT="2/minute", **emulator.config
    )
    shop.add_url_rule(
        "/sale",
        "sale",
        lambda: render_template_string("{{ render_datacue('category', category_id='sale') }}"),
    )
    for _ in range(30):
        shop.test_client().get("/sale")  # a new client each time: no cookie kept
    assert len(emulator.events(type="pageview")) == 10  # five visitors' worth from one IP


def test_an_erasure_takes_dead_letters_and_waits_behind_a_row_in_flight(tmp_path: Any) -> None:
    from cue_front.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put("event", "POST", "", b'{"ana": 1}', "visitor:ana")
    (refused,) = outbox.claim("worker-a")
    outbox.dead_letter(refused.id, status=400, error="refused", response_body="{}", owner="worker-a")
    outbox.put("rest", "PUT", "/users/ana", b'{"first_name": "Ana"}', "users/ana")
    (in_flight,) = outbox.claim("worker-a")
    assert outbox.drop_unsent(["visitor:ana", "users/ana"]) == 2
    assert outbox.dead_letters() == []  # the dead letter's contents are gone
    outbox.put("rest", "DELETE", "/users/ana", b"", "users/ana")
    assert outbox.claim("worker-b") == []  # the delete waits for the update being sent
    outbox.retry_later(in_flight.id, delay=0, error="503", owner="worker-a")  # it failed: dropped
    (delete,) = outbox.claim("worker-b")
    assert delete.method == "DELETE"
    assert outbox.stats().dropped == 2
    outbox.close()


def test_forget_finds_the_queued_changes_of_an_email_user(
    make_app: Callable[..., Flask], tmp_path: Any
) -> None:
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_API_URL="http://127.0.0.1:9/v1")
    datacue = app.extensions["datacue"].extension
    app.extensions["datacue"].delivery.stop()
    with app.test_request_context():
        datacue.queued.users.create({"user_id": "ana@example.com", "first_name": "Ana"})
        datacue.queued.users.update("ana@example.com", {"first_name": "Ana", "last_name": "Lopez"})
        assert datacue.forget("ana@example.com") == 2


def test_the_journal_writes_segments_old_readers_skip_and_reads_both(tmp_path: Any) -> None:
    from cue_front.outbox import Outbox
    from cue_front.outbox.journal import journal_folder

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put_event(b'{"e": 1}', "visitor:v1")
    names = [path.name for path in journal_folder(outbox.path).iterdir() if "journal" in path.name]
    assert names and all(name.endswith(".journal4") for name in names)
    assert outbox.ingest() == 1
    outbox.close()


@pytest.mark.parametrize(
    "link",
    ["\\\\evil.example\\cart", "\\/evil.example/cart", "/\\evil.example/cart", "/\t/evil.example/cart"],
)
def test_backslashes_and_tabs_do_not_lead_a_cart_link_elsewhere(
    make_app: Callable[..., Flask], emulator: RunningEmulator, link: str
) -> None:
    shop = session_login_shop(make_app, emulator)
    response = post_event(
        shop.test_client(), {"type": "cart", "subtype": "update", "cart": CART, "cart_link": link}
    )
    assert response.status_code == 400
    assert emulator.events() == []


def test_a_shop_address_with_a_path_is_not_doubled(
    make_app: Callable[..., Flask], emulator: RunningEmulator
) -> None:
    shop = session_login_shop(make_app, emulator, DATACUE_SHOP_URL="https://shop.example/store")
    event = {"type": "cart", "subtype": "update", "cart": CART, "cart_link": "/store/cart"}  # url_for's link
    shop.test_client().post("/track", json=event)
    assert emulator.events(type="cart")[0]["body"]["event"]["cart_link"] == "https://shop.example/store/cart"


def test_a_visitor_share_given_as_text_is_a_number(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_DELIVERY="outbox", DATACUE_OUTBOX_VISITOR_MAX="5")
    outbox = app.extensions["datacue"].outbox
    app.extensions["datacue"].delivery.stop()
    for _ in range(30):
        outbox.put_event(b"{}", "visitor:v1", droppable=Droppable.YES)
    outbox.ingest()
    assert outbox.stats().pending <= 5


def test_a_lenient_track_of_a_number_too_long_to_print_returns_false(make_app: Callable[..., Flask]) -> None:
    app = make_app(DATACUE_STRICT=False)
    item = {**CART[0], "quantity": 10**5000}
    with app.test_request_context():
        assert track({"type": "cart", "subtype": "update", "cart_link": "/cart", "cart": [item]}) is False
