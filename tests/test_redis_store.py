"""The one place that connects to Redis: URLs, short timeouts, and the startup refusal of a Redis that evicts.

Everything runs against Debian's redis-server (the ``redis_server`` fixture), never a fake.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from flask import Flask

from benchmarks.redis_server import RedisServer
from cue_front import ConfigurationError
from cue_front.redis_store import check_eviction_policy, connect, is_redis_url

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def restore_policy(redis_url: str) -> Iterator[redis.Redis]:
    """An admin client; the server's eviction policy is set back to ``noeviction`` after the test."""
    admin = redis.Redis.from_url(redis_url)
    yield admin
    admin.config_set("maxmemory-policy", "noeviction")
    admin.close()


def test_redis_urls_are_told_from_other_outboxes() -> None:
    assert is_redis_url("redis://cache.internal:6379/2")
    assert is_redis_url("rediss://:password@cache.example:6380/0")
    assert is_redis_url("unix:///run/redis/redis.sock?db=1")
    assert not is_redis_url("sqlite:////var/shop/outbox.sqlite3")
    assert not is_redis_url("/var/shop/outbox.sqlite3")
    assert not is_redis_url(None)


def test_a_url_that_is_not_a_redis_is_refused_naming_the_setting(make_app: Callable[..., Flask]) -> None:
    with pytest.raises(ConfigurationError, match=r"DATACUE_OUTBOX_URL must be sqlite:///path or a redis://.*'memcached'"):
        make_app(DATACUE_OUTBOX_URL="memcached://127.0.0.1:11211")


def test_a_sqlite_url_names_the_sqlite_outboxs_file(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    file = tmp_path / "elsewhere" / "queue.sqlite3"
    shop = make_app(
        DATACUE_OUTBOX_URL=f"sqlite:///{file}", DATACUE_DELIVERY="outbox", DATACUE_DELIVERY_THREAD=False
    )
    state = shop.extensions["datacue"]
    with shop.test_request_context("/"):
        state.queued.categories.create({"category_id": "c1", "name": "Mugs"})
    assert state.redis is None
    # The store change is queued in that file.
    assert file.exists() and state.outbox.path == file and state.outbox.stats().pending == 1


def test_the_shared_client_reaches_redis_over_tcp_and_unix_socket(
    make_app: Callable[..., Flask], redis_server: RedisServer, redis_url: str
) -> None:
    shop = make_app(DATACUE_OUTBOX_URL=redis_url)
    shared = shop.extensions["datacue"].redis
    shared.set("written-by-the-shop", "1")
    over_socket = connect(f"unix://{redis_server.unix_socket}?db=0")
    assert over_socket.get("written-by-the-shop") == b"1"
    over_socket.close()


def test_a_shop_without_a_redis_url_has_no_redis(app: Flask) -> None:
    assert app.extensions["datacue"].redis is None


def test_a_redis_that_stops_answering_fails_within_the_timeout_without_retrying(
    redis_url: str, redis_server: RedisServer
) -> None:
    client = connect(redis_url, timeout=0.5)
    client.ping()
    assert redis_server.command("CLIENT", "PAUSE", "3000", "ALL") == b"+OK"  # every client waits 3 s
    try:
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            client.get("anything")
        assert time.monotonic() - started < 2  # one 0.5 s timeout, not redis-py's default four and backoff
    finally:
        redis_server.command("CLIENT", "UNPAUSE")
        client.close()


@pytest.mark.usefixtures("redis_installed")
def test_the_client_reconnects_after_a_crash_and_aof_keeps_what_was_acknowledged() -> None:
    with RedisServer(append_only=True) as server:
        client = connect(server.url)
        client.set("acknowledged", "kept")
        server.restart(kill=True)  # SIGKILL: no shutdown save; appendfsync always has it on disk
        assert client.get("acknowledged") == b"kept"
        client.close()


# -- the eviction policy, checked at init_app ---------------------------------------------------


@pytest.mark.parametrize("policy", ["allkeys-lru", "allkeys-lfu", "allkeys-random"])
def test_a_redis_that_may_evict_any_key_is_refused_at_startup(
    make_app: Callable[..., Flask], redis_url: str, restore_policy: redis.Redis, policy: str
) -> None:
    restore_policy.config_set("maxmemory-policy", policy)
    with pytest.raises(ConfigurationError) as refused:
        make_app(DATACUE_OUTBOX_URL=redis_url)
    assert "DATACUE_OUTBOX_URL" in str(refused.value)
    assert policy in str(refused.value)
    assert "CONFIG SET maxmemory-policy noeviction" in str(refused.value)


@pytest.mark.parametrize("policy", ["noeviction", "volatile-lru", "volatile-ttl"])
def test_a_redis_that_never_evicts_keys_without_expiry_is_accepted(
    make_app: Callable[..., Flask], redis_url: str, restore_policy: redis.Redis, policy: str
) -> None:
    restore_policy.config_set("maxmemory-policy", policy)
    shop = make_app(DATACUE_OUTBOX_URL=redis_url)
    assert shop.extensions["datacue"].redis.ping()


def test_a_managed_redis_that_hides_its_config_is_accepted_with_a_warning(
    make_app: Callable[..., Flask], redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = redis.Redis.from_url(redis_url)
    admin.acl_setuser("shop", enabled=True, passwords=["+shop-pw"], keys=["*"], commands=["+@all", "-config"])
    try:
        user_url = redis_url.replace("redis://", "redis://shop:shop-pw@")
        shop = make_app(DATACUE_OUTBOX_URL=user_url)
        assert shop.extensions["datacue"].redis.set("allowed", "1")
        assert "cannot read DATACUE_OUTBOX_URL's maxmemory-policy" in caplog.text
    finally:
        admin.acl_deluser("shop")
        admin.close()


def test_wrong_credentials_are_refused_at_startup(make_app: Callable[..., Flask], redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="DATACUE_OUTBOX_URL: Redis refused the credentials"):
        make_app(DATACUE_OUTBOX_URL=redis_url.replace("redis://", "redis://nobody:wrong@"))


def test_a_shop_starts_while_redis_is_down(
    make_app: Callable[..., Flask],
    redis_server: RedisServer,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis_server.stop()
    shop = make_app(DATACUE_OUTBOX_URL=redis_url)
    shop.add_url_rule("/", "home", lambda: "home")
    assert shop.test_client().get("/").status_code == 200
    assert "DATACUE_OUTBOX_URL is unreachable now" in caplog.text


def test_without_redis_py_a_redis_url_fails_at_init_naming_the_extra(tmp_path: Path) -> None:
    # A process where redis-py cannot be imported (None in sys.modules is Python's own "absent").
    script = f"""
import sys
sys.modules["redis"] = None
from flask import Flask
from cue_front import DataCue, ConfigurationError
app = Flask("shop", instance_path={str(tmp_path)!r})
app.config.update(DATACUE_API_KEY="k", DATACUE_OUTBOX_URL="redis://127.0.0.1:6379/0")
try:
    DataCue(app)
except ConfigurationError as error:
    print(error)
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
        check=True,
    )
    assert "pip install cue-front[redis]" in done.stdout
    assert "DATACUE_OUTBOX_URL" in done.stdout


def test_check_eviction_policy_names_the_setting_it_is_given(
    redis_url: str, restore_policy: redis.Redis
) -> None:
    restore_policy.config_set("maxmemory-policy", "allkeys-lru")
    client = connect(redis_url)
    with pytest.raises(ConfigurationError, match="DATACUE_SOMETHING_URL"):
        check_eviction_policy(client, "DATACUE_SOMETHING_URL")
    client.close()
