"""A recognisable API secret, used on every path, shows up nowhere it could leak.

The shop is configured with ``SECRET`` and used the way a shop uses cue-front:
every page type and widget (with and without server-side recommendations),
the first-party endpoint (accepted, refused, answered), ``track()`` in sync and
outbox mode, queued store changes and their dead letters, the REST client and
its errors (401 from the emulator included, 5xx, 429, dropped connections, a
closed port), the CLI (status, overview, import with rejects, outbox commands)
and the emulator's debugger pages. Every page, response (body and headers),
log record (DEBUG and up, with tracebacks), exception (``str``, ``repr`` and
formatted traceback), CLI output, file written, and request on the wire is then
searched for the secret, raw and in the encodings it could take (base64 in a
Basic header, hex).
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import socket
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask, render_template_string
from werkzeug.test import TestResponse

from benchmarks.sink import Sink
from cue_front import DataCueError, build_config, render_datacue, track
from cue_front.emulator import RunningEmulator, run_emulator
from cue_front.transport import Transport
from tests.support.samples import PRODUCT
from tests.support.shops import API_KEY, SECRET, session_login_shop

SITE = "http://localhost"


PAGE = """<!doctype html><html><head>{{ render_datacue(page_type, **fields) }}</head><body>
{{ datacue_banners(static_img="/sale.jpg", static_link="/sale") }}
{{ datacue_banner_slot("main", 1, class_="big") }}
{{ datacue_products() }}
{{ datacue_events_script() }}
</body></html>"""

PAGES: dict[str, dict[str, Any]] = {
    "home": {},
    "product": {"product_id": "p1", "product_update": [{"variant_id": "v1", "price": 299}]},
    "category": {"category_id": "sofas", "category_update": {"name": "Sofas", "link": "/c/sofas"}},
    "search": {"term": "sofa"},
    "cart": {},
    "404": {},
    "order confirmation": {
        "order_id": "o1",
        "order_details": {
            "cart": [{"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": 299}]
        },
    },
}


def leaked_forms(secret: str) -> list[str]:
    """The secret as it would appear if it leaked: raw, in a Basic header, base64, hex."""
    basic = base64.b64encode(f"{API_KEY}:{secret}".encode()).decode()
    return [secret, basic, base64.b64encode(secret.encode()).decode(), secret.encode().hex()]


class Witness:
    """Everything a user, an operator or an attacker could read, gathered to be searched."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def saw(self, where: str, text: str | bytes) -> None:
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        self.seen.append((where, text))

    def response(self, where: str, response: TestResponse | requests.Response) -> None:
        body = response.get_data() if isinstance(response, TestResponse) else response.content
        self.saw(f"{where} (body)", body)
        self.saw(f"{where} (headers)", json.dumps(dict(response.headers)))

    def error(self, where: str, error: BaseException) -> None:
        self.saw(f"{where} (str)", str(error))
        self.saw(f"{where} (repr)", repr(error))
        self.saw(f"{where} (traceback)", "".join(traceback.format_exception(error)))
        for name, value in vars(error).items():
            self.saw(f"{where} (.{name})", repr(value))

    def raises(self, where: str, call: Callable[[], Any]) -> BaseException:
        try:
            call()
        except Exception as error:  # every failure mode is collected, whatever its class
            self.error(where, error)
            return error
        raise AssertionError(f"{where}: expected an error")

    def files(self, directory: Path) -> None:
        for path in sorted(directory.rglob("*")):
            if path.is_file():
                self.saw(f"file {path.relative_to(directory)}", path.read_bytes())

    def logs(self, caplog: pytest.LogCaptureFixture) -> int:
        formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        for record in caplog.records:
            self.saw(f"log {record.name}", formatter.format(record) + repr(record.args))
        return len(caplog.records)

    def assert_nothing_leaked(self) -> None:
        forms = leaked_forms(SECRET)
        leaks = [
            f"{where}: {text[:300]!r}" for where, text in self.seen if any(form in text for form in forms)
        ]
        assert leaks == []


@pytest.fixture
def witness(caplog: pytest.LogCaptureFixture) -> Iterator[Witness]:
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="cue_front")
    watching = Witness()
    yield watching


@pytest.fixture
def datacue_with_the_secret() -> Iterator[RunningEmulator]:
    """An emulator that knows SECRET: the shop's signed calls succeed, and its pages are searched too."""
    with run_emulator(api_key=API_KEY, api_secret=SECRET) as running:
        yield running


def make_shop(make_app: Callable[..., Flask], emulator: RunningEmulator, **config: Any) -> Flask:
    app = session_login_shop(
        make_app,
        emulator,
        **{
            "DATACUE_API_SECRET": SECRET,
            "DATACUE_PROXY_RATE_LIMIT": "1000/minute",
            "DATACUE_DELIVERY_BACKOFF": (0.01, 0.05),
            "DATACUE_RETRIES": 1,
            **config,
        },
    )

    @app.get("/page/<page_type>")
    def page(page_type: str) -> str:
        return render_template_string(PAGE, page_type=page_type, fields=PAGES[page_type])

    return app


def test_pages_widgets_endpoint_and_events_never_show_the_secret(
    make_app: Callable[..., Flask],
    datacue_with_the_secret: RunningEmulator,
    witness: Witness,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    emulator = datacue_with_the_secret
    for delivery, ssr in (("sync", True), ("outbox", False), ("outbox", True)):
        shop = make_shop(make_app, emulator, DATACUE_DELIVERY=delivery, DATACUE_SSR=ssr)
        client = shop.test_client()
        witness.response("login", client.post("/login/u1"))
        for page_type in PAGES:
            witness.response(f"{delivery} page {page_type}", client.get(f"/page/{page_type}"))
        witness.response("no such page", client.get("/nope"))
        events = [
            {"event": {"type": "cart", "subtype": "update", "cart": [], "cart_link": "/cart"}},
            {"event": {"type": "search", "term": "sofa"}},
            {"event": {"type": "pageview", "subtype": "home"}},
            {"event": {"type": "dance"}},
            {"event": {"type": "login"}, "user": {"user_id": "victim"}},
            {"event": {"type": "login"}, "padding": "x" * 20_000},
        ]
        for body in events:
            witness.response("endpoint", client.post("/datacue/events", json=body, headers={"Origin": SITE}))
        witness.response(
            "cross-origin", client.post("/datacue/events", json=events[0], headers={"Origin": "x"})
        )
        witness.response(
            "track", client.post("/track", json={"type": "wishlist", "subtype": "add", "product_id": "p1"})
        )
        state = shop.extensions["datacue"]
        with shop.test_request_context():
            witness.saw("build_config", json.dumps(build_config("home")))
            witness.saw("render_datacue", str(render_datacue("search", term="sofa")))
            witness.raises("checkout page", lambda: render_datacue("checkout"))
            state.queued.products.create(PRODUCT)
            if delivery == "sync":  # sent now: DataCue's 404 is raised
                witness.raises("sync 404", functools.partial(state.queued.orders.cancel, "no-such-order"))
            else:  # queued: DataCue's 404 makes a dead letter
                state.queued.orders.cancel("no-such-order")
        if delivery == "outbox":
            state.delivery.flush(10)
            letters = state.outbox.dead_letters()
            assert any(letter.path == "/orders/no-such-order" for letter in letters)
            witness.saw("dead letters", repr(letters))
            witness.saw("cli dead", shop.test_cli_runner().invoke(args=["datacue", "outbox", "dead"]).output)
        for item in emulator.events() + emulator.requests():
            witness.saw("what DataCue received", json.dumps(item))
        emulator.reset()
    assert witness.logs(caplog) > 0
    witness.files(tmp_path)
    witness.assert_nothing_leaked()


def test_rest_errors_and_their_logs_never_show_the_secret(
    make_app: Callable[..., Flask],
    datacue_with_the_secret: RunningEmulator,
    witness: Witness,
    caplog: pytest.LogCaptureFixture,
) -> None:
    emulator = datacue_with_the_secret
    shop = make_shop(make_app, emulator, DATACUE_DELIVERY="sync")
    client = shop.extensions["datacue"].client
    for family in ("rest", "events"):
        for fault in (
            {"error_500": 1.0},
            {"error_503": 1.0},
            {"error_429": 1.0, "retry_after": 0},
            {"drop": 1.0},
        ):
            emulator.set_faults(**{family: fault})
            if family == "rest":
                witness.raises(f"rest {fault}", lambda: client.products.create(PRODUCT))
            else:
                with shop.test_request_context():
                    witness.raises(f"event {fault}", lambda: track({"type": "login"}))
    emulator.set_faults()
    witness.raises("validation", lambda: client.products.create({**PRODUCT, "price": "99,50"}))
    witness.raises("too large", lambda: client.products.create({**PRODUCT, "name": "x" * (6 * 1024 * 1024)}))
    with run_emulator(api_key=API_KEY, api_secret="another-secret") as other_datacue:
        wrong = make_shop(make_app, other_datacue, DATACUE_DELIVERY="sync")
        error = witness.raises("401", lambda: wrong.extensions["datacue"].client.products.create(PRODUCT))
        assert getattr(error, "status", None) == 401
        for item in other_datacue.requests():
            witness.saw("what the other DataCue received", json.dumps(item))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    down = make_shop(make_app, emulator, DATACUE_DELIVERY="sync", DATACUE_API_URL=closed + "/v1")
    witness.raises("closed port", lambda: down.extensions["datacue"].client.overview.summary())
    for thing in (shop.extensions["datacue"], client, client.transport, Transport(API_KEY, SECRET)):
        witness.saw(f"repr {type(thing).__name__}", repr(thing))
        witness.saw(f"str {type(thing).__name__}", str(thing))
    state = make_shop(make_app, emulator, DATACUE_DELIVERY="outbox").extensions["datacue"]
    witness.saw("repr outbox", repr(state.outbox))
    witness.saw("repr worker", repr(state.delivery))
    assert witness.logs(caplog) > 0
    witness.assert_nothing_leaked()


def test_the_cli_and_the_emulator_pages_never_show_the_secret(
    make_app: Callable[..., Flask],
    datacue_with_the_secret: RunningEmulator,
    witness: Witness,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    emulator = datacue_with_the_secret
    shop = make_shop(make_app, emulator, DATACUE_DELIVERY="outbox")
    products = tmp_path / "products.jsonl"
    products.write_text(
        "\n".join(
            json.dumps({**PRODUCT, "product_id": f"p{n}", "stock": "many" if n == 3 else 1}) for n in range(5)
        )
    )
    runner = shop.test_cli_runner()
    for args in (
        ["datacue", "import", "products", str(products)],
        ["datacue", "overview"],
        ["datacue", "status"],
        ["datacue", "outbox", "dead"],
        ["datacue", "outbox", "retry-dead"],
        ["datacue", "outbox", "flush", "--timeout", "2"],
    ):
        result = runner.invoke(args=args)
        witness.saw(" ".join(args), result.output)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            witness.error(" ".join(args), result.exception)
    assert (tmp_path / "products.jsonl.rejects.jsonl").exists()  # the bad row was written aside
    emulator.set_faults(rest={"error_500": 1.0})
    failed = runner.invoke(args=["datacue", "overview"])
    assert failed.exit_code != 0
    witness.saw("overview while DataCue fails", failed.output)
    emulator.set_faults()
    for path in (
        "/",
        "/_emulator/live",
        "/_emulator/events",
        "/_emulator/requests",
        "/_emulator/overview",
        "/_emulator/faults",
        "/_emulator/banners",
        "/v1/overview",
        "/v1/nothing-here",
    ):
        witness.response(f"emulator {path}", requests.get(emulator.url + path, timeout=10))
    witness.response(
        "emulator unsigned", requests.post(emulator.url + "/v1/products", json=PRODUCT, timeout=10)
    )
    witness.files(tmp_path)
    assert witness.logs(caplog) > 0
    witness.assert_nothing_leaked()


def test_the_secret_is_never_on_the_wire(make_app: Callable[..., Flask], witness: Witness) -> None:
    """DataCue gets a signature of each body, never the secret itself (nor the key:secret pair)."""
    with Sink(API_KEY, SECRET) as sink:
        shop = make_app(
            DATACUE_API_URL=sink.url,
            DATACUE_EVENTS_URL=sink.events_url,
            DATACUE_DELIVERY="outbox",
            DATACUE_DELIVERY_BACKOFF=(0.01, 0.05),
        )
        state = shop.extensions["datacue"]
        state.client.products.create(PRODUCT)
        state.client.overview.summary()
        with shop.test_request_context():
            track({"type": "login"})
            state.queued.orders.create({"order_id": "o1", "user_id": "u1"})
        assert state.delivery.flush(10)
        received = sink.received()
        assert len(received) == 4 and all(request.signature_ok for request in received)
        for recorded in received:
            witness.saw(
                f"wire {recorded.method} {recorded.path}",
                json.dumps(recorded.headers) + recorded.body.decode(),
            )
    witness.assert_nothing_leaked()


def test_the_witness_would_see_a_leak() -> None:
    """The search itself works: each form of the secret is found where it would leak."""
    for form in leaked_forms(SECRET):
        witness = Witness()
        witness.saw("somewhere", f"Authorization: Basic {form}")
        with pytest.raises(AssertionError):
            witness.assert_nothing_leaked()


def test_a_datacue_error_can_carry_no_secret_by_construction() -> None:
    error = DataCueError("DataCue refused POST https://api.datacue.co/v1/products: bad request")
    assert SECRET not in repr(error)
