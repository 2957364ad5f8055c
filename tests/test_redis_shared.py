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

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from tests.support.redis_server import RedisServer
from tests.support.shops import session_login_shop

SITE = "http://localhost"


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
