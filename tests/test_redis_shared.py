"""What two hosts of one shop share through one real Redis: the events endpoint's rate limit and the
server-side recommendation cache, and how each falls back to the process while Redis is down.

Each "host" is a Flask app of its own (its own state, limiter and cache) with the same
``DATACUE_OUTBOX_URL``; a visitor moving between them carries their cookies, as behind a load
balancer without sticky sessions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import html5lib
import pytest
from flask import Flask, render_template_string
from flask.testing import FlaskClient

from benchmarks.redis_server import RedisServer
from cue_front import track
from cue_front.emulator import RunningEmulator
from cue_front.recommendation_cache import RecommendationCache
from cue_front.redis_store import connect
from tests.support.shops import session_login_shop

SITE = "http://localhost"
PAGE = "{{ render_datacue('product', product_id='p1') }}{{ datacue_products() }}"


def post_event(client: FlaskClient, event: dict[str, Any]) -> int:
    return client.post("/datacue/events", json={"event": event}, headers={"Origin": SITE}).status_code


def same_visitor_on(host: Flask, client: FlaskClient) -> FlaskClient:
    """A client of ``host`` carrying ``client``'s cookies: the same browser, sent to another host."""
    moved = host.test_client()
    for name in ("session", host.config["DATACUE_ANONYMOUS_COOKIE"]):
        cookie = client.get_cookie(name)
        if cookie is not None:
            moved.set_cookie(name, cookie.value)
    return moved


# -- the events endpoint's rate limit -----------------------------------------------------------


@pytest.fixture
def limited_hosts(
    make_app: Callable[..., Flask], emulator: RunningEmulator, redis_url: str
) -> tuple[Flask, Flask]:
    """Two hosts of one shop, 3 events a minute per visitor, counting in one Redis."""
    settings = {"DATACUE_PROXY_RATE_LIMIT": "3/minute", "DATACUE_OUTBOX_URL": redis_url}
    return session_login_shop(make_app, emulator, **settings), session_login_shop(
        make_app, emulator, **settings
    )


def test_a_visitor_limited_on_one_host_is_limited_on_the_other(limited_hosts: tuple[Flask, Flask]) -> None:
    first_host, second_host = limited_hosts
    on_first = first_host.test_client()
    assert [post_event(on_first, {"type": "login"}) for _ in range(2)] == [204, 204]
    on_second = same_visitor_on(second_host, on_first)
    assert [post_event(on_second, {"type": "login"}) for _ in range(2)] == [204, 429]
    assert post_event(on_first, {"type": "login"}) == 429
    assert post_event(second_host.test_client(), {"type": "login"}) == 204  # another visitor


def test_an_explicit_memory_storage_still_counts_per_process(
    make_app: Callable[..., Flask], emulator: RunningEmulator, redis_url: str
) -> None:
    hosts = [
        session_login_shop(
            make_app,
            emulator,
            DATACUE_PROXY_RATE_LIMIT="2/minute",
            DATACUE_OUTBOX_URL=redis_url,
            DATACUE_PROXY_RATE_LIMIT_STORAGE="memory://",
        )
        for _ in range(2)
    ]
    on_first = hosts[0].test_client()
    assert [post_event(on_first, {"type": "login"}) for _ in range(3)] == [204, 204, 429]
    assert post_event(same_visitor_on(hosts[1], on_first), {"type": "login"}) == 204


def test_with_redis_down_the_endpoint_answers_at_once_and_limits_in_the_process(
    limited_hosts: tuple[Flask, Flask],
    redis_server: RedisServer,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first_host, _ = limited_hosts
    client = first_host.test_client()
    assert post_event(client, {"type": "login"}) == 204
    redis_server.stop()
    started = time.monotonic()
    statuses = [post_event(client, {"type": "login"}) for _ in range(4)]
    assert time.monotonic() - started < 2  # no hang: connection refused, then a pause
    assert statuses == [204, 204, 204, 429]  # counted in this process from the first failure
    assert len(emulator.events(type="login")) == 1 + 3  # what was allowed went through
    assert caplog.text.count("rate limits cannot be counted in their storage") == 1


# -- the server-side recommendation cache -------------------------------------------------------


def product(number: int) -> dict[str, Any]:
    return {
        "product_id": f"p{number}",
        "variant_id": "no-variants",
        "categories": ["sofas"],
        "name": f"Sofa {number}",
        "price": 100 + number,
        "full_price": 120 + number,
        "stock": 5,
        "photo_url": f"/img/p{number}.svg",
        "link": f"/products/p{number}",
    }


def ssr_host(make_app: Callable[..., Flask], emulator: RunningEmulator, redis_url: str) -> Flask:
    app = make_app(DATACUE_DELIVERY="sync", DATACUE_SSR=True, DATACUE_OUTBOX_URL=redis_url, **emulator.config)
    app.add_url_rule("/", "home", lambda: render_template_string(PAGE))

    @app.post("/viewed/<product_id>")
    def viewed(product_id: str) -> str:
        track({"type": "pageview", "subtype": "product", "product_id": product_id})
        return "ok"

    return app


@pytest.fixture
def ssr_hosts(
    make_app: Callable[..., Flask], emulator: RunningEmulator, redis_url: str
) -> tuple[Flask, Flask]:
    """Two hosts of one shop rendering recommendations on the server, caching them in one Redis."""
    first, second = ssr_host(make_app, emulator, redis_url), ssr_host(make_app, emulator, redis_url)
    client = first.extensions["datacue"].client
    assert not client.products.batch_create([product(n) for n in range(1, 6)]).failures
    cart = [
        {"product_id": "p1", "variant_id": "no-variants", "quantity": 1, "unit_price": 101},
        {"product_id": "p2", "variant_id": "no-variants", "quantity": 1, "unit_price": 102},
    ]
    client.orders.batch_create([{"order_id": f"o{n}", "user_id": f"u{n}", "cart": cart} for n in range(3)])
    return first, second


def cards(html: str) -> list[str]:
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return [a.attrib["data-dc-product-id"] for a in document.iter("a") if "data-dc-product-id" in a.attrib]


def page_calls(emulator: RunningEmulator) -> int:
    """How many times the page's own event (a view of p1) reached DataCue."""
    return sum(event["body"]["event"].get("product_id") == "p1" for event in emulator.events())


def test_a_reload_storm_across_hosts_makes_one_call(
    ssr_hosts: tuple[Flask, Flask], emulator: RunningEmulator
) -> None:
    first_host, second_host = ssr_hosts
    on_first = first_host.test_client()
    first_page = on_first.get("/").get_data(as_text=True)
    assert cards(first_page)  # DataCue's answer, rendered on the server
    on_second = same_visitor_on(second_host, on_first)
    second_pages = [on_second.get("/").get_data(as_text=True) for _ in range(3)]
    assert page_calls(emulator) == 1  # the second host used the first host's answer
    assert all(cards(page) == cards(first_page) for page in second_pages)


def test_an_event_on_one_host_refreshes_the_recommendations_on_the_other(
    ssr_hosts: tuple[Flask, Flask], emulator: RunningEmulator
) -> None:
    first_host, second_host = ssr_hosts
    on_first = first_host.test_client()
    on_first.get("/")
    on_second = same_visitor_on(second_host, on_first)
    assert on_second.post("/viewed/p3").status_code == 200  # tracked on the second host
    html = on_first.get("/").get_data(as_text=True)
    assert page_calls(emulator) == 2  # the first host asked DataCue again
    assert "p3" in cards(html)  # and shows what the visitor just viewed


def test_with_redis_down_pages_render_at_once_from_the_process_cache(
    ssr_hosts: tuple[Flask, Flask],
    redis_server: RedisServer,
    emulator: RunningEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first_host, _ = ssr_hosts
    client = first_host.test_client()
    redis_server.stop()
    started = time.monotonic()
    pages = [client.get("/") for _ in range(4)]
    assert time.monotonic() - started < 2  # no page waited on Redis
    assert [page.status_code for page in pages] == [200] * 4
    assert all(cards(page.get_data(as_text=True)) for page in pages)  # recommendations, not placeholders
    assert page_calls(emulator) == 1  # the reload storm still made one call
    assert caplog.text.count("the shared recommendation cache is unavailable") == 1


def test_once_redis_is_back_the_cache_is_shared_again(redis_server: RedisServer, redis_url: str) -> None:
    first = RecommendationCache(redis=connect(redis_url), redis_retry_seconds=0.05)
    second = RecommendationCache(redis=connect(redis_url), redis_retry_seconds=0.05)
    answer = {"products": [{"product_id": "p1"}]}
    redis_server.stop()
    first.put("ana", "home", answer)
    assert first.get("ana", "home") == answer  # kept in the process meanwhile
    assert second.get("ana", "home") is None
    redis_server.start()
    time.sleep(0.1)  # past the pause after the failure
    first.put("ana", "home", answer)
    assert second.get("ana", "home") == answer
    assert second.get("ana", "product") is None  # another page: not this answer
    second.forget("ana")
    assert first.get("ana", "home") is None
