"""Fixtures shared by the whole suite: shop apps and their clients, the demo store's database, the
loopback sink, an outbox and delivery workers, a real Redis, and a headless browser.

The ``emulator`` fixture comes from ``cue_front.testing``, which pytest loads through its entry point.
"""

from __future__ import annotations

import os
import shutil
import ssl
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from werkzeug.serving import make_server

from benchmarks.redis_server import RedisServer, redis_server_path
from benchmarks.sink import API_KEY as SINK_API_KEY
from benchmarks.sink import API_SECRET as SINK_API_SECRET
from benchmarks.sink import Sink
from cue_front import DataCue
from cue_front.emulator import RunningEmulator
from cue_front.outbox import DeliveryWorker, Outbox, OutboxBackend
from cue_front.transport import Transport
from demo_store.testing import seed_template
from tests.support.shops import API_KEY, SECRET

if TYPE_CHECKING:
    from cue_front.outbox.redis import RedisOutbox

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-background-networking", "--disable-component-update"]


@pytest.fixture
def make_app(tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Build a shop app with cue-front initialised; keyword arguments override the config.

    Each app's delivery thread, outbox and connections are closed after the test.
    """
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        app = Flask("shop", instance_path=str(tmp_path / "instance"))
        app.config.update(
            TESTING=True,
            SECRET_KEY="shop-secret-key",
            DATACUE_API_KEY=API_KEY,
            DATACUE_API_SECRET=SECRET,
            DATACUE_DELIVERY="off",
        )
        app.config.update(config)
        DataCue(app)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.extensions["datacue"].close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def browser_required() -> bool:
    """CI sets CUE_FRONT_REQUIRE_BROWSER=1: there a missing Chromium fails instead of skipping."""
    return os.environ.get("CUE_FRONT_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium driven by Playwright (never Playwright's own browser download)."""
    if not (shutil.which(CHROMIUM) or os.path.exists(CHROMIUM)):
        if browser_required():
            pytest.fail(f"Chromium is required here (CUE_FRONT_REQUIRE_BROWSER=1) but {CHROMIUM} is missing")
        pytest.skip(f"browser tests need Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def live_server() -> Iterator[Callable[[Flask], str]]:
    """Serve apps with werkzeug on free loopback ports, each in a thread; returns base URLs."""
    servers = []

    def start(app: Flask) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    """The loopback DataCue stand-in of ``benchmarks/sink.py``, running (its own key and secret)."""
    with Sink() as running:
        yield running


#: A self-signed certificate for localhost and its key, made once (see tests/tls/README.md).
TLS = Path(__file__).with_name("tls")


@pytest.fixture
def tls_sink() -> Iterator[tuple[Sink, Path]]:
    """The sink behind TLS (1.3: it sends session tickets) with the committed localhost certificate;
    yields it and the certificate."""
    cert, key = TLS / "localhost.pem", TLS / "localhost-key.pem"
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    with Sink() as running:
        running._server.socket = context.wrap_socket(running._server.socket, server_side=True)
        yield running, cert


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    """An empty outbox in the test's instance folder."""
    with Outbox(tmp_path / "instance" / "outbox.sqlite3") as opened:
        yield opened


@pytest.fixture
def make_worker(request: pytest.FixtureRequest, sink: Sink) -> Iterator[Callable[..., DeliveryWorker]]:
    """Delivery workers with quick backoffs, sending to ``target`` (the emulator, or a sink: the
    ``sink`` fixture unless given), serving ``outbox`` (the ``outbox`` fixture unless given);
    keywords are the worker's settings. Each is stopped and its transport closed after the test
    (before the sink closes)."""
    made: list[DeliveryWorker] = []

    def make(
        target: RunningEmulator | Sink | None = None,
        *,
        outbox: OutboxBackend | None = None,
        timeout: tuple[float, float] = (2.0, 5.0),
        **options: Any,
    ) -> DeliveryWorker:
        target = sink if target is None else target
        if outbox is None:
            outbox = request.getfixturevalue("outbox")
        if isinstance(target, Sink):
            key, secret, api_url = SINK_API_KEY, SINK_API_SECRET, target.url
        else:
            key, secret, api_url = target.api_key, target.api_secret, target.api_url
        transport = Transport(key, secret, api_url=api_url, events_url=target.events_url, timeout=timeout)
        settings: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.2, "idle_interval": 0.05}
        settings.update(options)
        worker = DeliveryWorker(outbox, transport, **settings)
        made.append(worker)
        return worker

    yield make
    for worker in made:
        worker.stop()
        worker.transport.close()


def redis_required() -> bool:
    """CI sets CUE_FRONT_REQUIRE_REDIS=1: there a missing redis-server fails instead of skipping."""
    return os.environ.get("CUE_FRONT_REQUIRE_REDIS") == "1"


@pytest.fixture(scope="session")
def redis_installed() -> None:
    """Skips a test when Debian's redis-server is missing (fails it where CI requires Redis)."""
    if redis_server_path() is None:
        if redis_required():
            pytest.fail("redis-server is required here (CUE_FRONT_REQUIRE_REDIS=1) but is not installed")
        pytest.skip("Redis tests need Debian's redis-server (apt-get install redis-server)")


@pytest.fixture(scope="session")
def redis_server(redis_installed: None) -> Iterator[RedisServer]:
    """Debian's redis-server on a free loopback port for the whole session, stopped after.

    A test may stop or restart it (an outage); the next test's ``redis_url`` starts it again.
    """
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, running and empty (FLUSHALL), as ``redis://127.0.0.1:<port>/0``."""
    if not redis_server.running:
        redis_server.start()
    redis_server.flush()
    return redis_server.url


@pytest.fixture
def make_redis_outbox(redis_url: str, tmp_path: Path) -> Iterator[Callable[..., RedisOutbox]]:
    """Hosts of a shop: RedisOutboxes on the test's Redis, each with the journal folder
    ``tmp_path/<name>/intake`` (two outboxes of one ``name`` are two processes of one host);
    keywords are the outbox's options. Each is closed after the test."""
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect

    made: list[RedisOutbox] = []

    def make(name: str = "a", **options: Any) -> RedisOutbox:
        outbox = RedisOutbox(connect(redis_url, timeout=5.0), journal=tmp_path / name / "intake", **options)
        made.append(outbox)
        return outbox

    yield make
    for outbox in made:
        outbox.close()


@pytest.fixture(params=["sqlite", "redis"])
def make_any_outbox(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., OutboxBackend]]:
    """Outboxes of either backend (the test runs once with each), for the contract both keep.

    SQLite: every outbox made is the same file (processes of one host). Redis: every outbox made
    is on the test's Redis with a journal folder of its own (hosts of one shop: ``make_redis_outbox``).
    """
    made: list[OutboxBackend] = []
    hosts = 0

    def make(**options: Any) -> OutboxBackend:
        nonlocal hosts
        if request.param == "sqlite":
            opened = Outbox(tmp_path / "instance" / "outbox.sqlite3", **options)
            made.append(opened)
            return opened
        hosts += 1  # make_redis_outbox closes its own
        host: OutboxBackend = request.getfixturevalue("make_redis_outbox")(f"host-{hosts - 1}", **options)
        return host

    yield make
    for opened in made:
        opened.close()


@pytest.fixture
def any_outbox(make_any_outbox: Callable[..., OutboxBackend]) -> OutboxBackend:
    """An empty outbox of either backend (the test runs once with each)."""
    return make_any_outbox()


@pytest.fixture(scope="session")
def demo_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store's database, seeded once a session, for ``create_test_app`` to copy."""
    return seed_template(tmp_path_factory.mktemp("demo-template"))
