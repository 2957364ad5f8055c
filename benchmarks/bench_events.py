"""Events on the request path: ``track()`` against Segment's and PostHog's SDKs, where its time goes,
the delivery thread beside a request thread that never waits, and the first-party endpoint.

Each against what the same machine does in the same run:

* **track() and its peers.** The same event, a cart update with one item, through cue-front's
  durable ``track()`` (the outbox's journal), Segment's ``segment-analytics-python``
  ``track()`` and PostHog's ``capture()`` (both an in-memory queue). All three send to one
  loopback sink (``benchmarks/loopback.py``; their ``host`` set to it, and an audit hook refuses
  any connection off loopback), each with its delivery thread running. Each call in a request
  context of its own (1,000 returning visitors, each with its signed cookie); the three
  interleaved, :data:`ROUNDS` rounds of :data:`CALLS` calls each, the goals judged on the
  median of the rounds' ratios. Goals: p50 at most 1.0x Segment's; p99 at most 2x Segment's
  with cue-front's delivery thread running, and at most 1.0x with its delivery in a process of
  its own (``DeliveryWorker.serve()``, what a CPU-bound shop would run).
* **Where the time goes.** Each step of ``track()`` timed apart, p50: identity, context,
  validation, encoding, the journal's copy, and the rest (printed; see REPORT.md).
* **The worker beside a busy request thread.** Events delivered per second by the delivery
  thread while ``track()`` runs flat out (never letting go of the GIL), and while a request loop
  runs that, like a server's, waits on a socket once per request, against the thread's rate with
  nothing else running. Goal: at least 25% of that rate in the server's loop (the flat-out loop is
  reported, with Segment's consumer in the same loop: see REPORT.md for why).
* **First-party endpoint.** ``POST /datacue/events`` (a wishlist event, queued) against a bare
  Flask JSON route of the same app carrying the same Flask-Limiter limits (per IP and per visitor),
  on the same werkzeug server (in another process), over one kept-alive connection. Goal: at most
  1.2x.
"""

from __future__ import annotations

import gc
import http.client
import ipaddress
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.loopback import (
    API_KEY,
    API_SECRET,
    WORKER_SOURCE,
    distant_sink,
    serving,
    sink_state,
    wait_until,
    worker_arguments,
)
from benchmarks.report import Result
from cue_front.encoding import encode_json
from cue_front.events import visitor_key

ROUNDS = 5
CALLS = 3_000  # per round and per SDK
WARM_UP = 1_000
P50_GOAL = 1.0
P99_THREAD_GOAL = 2.0
P99_PROCESS_GOAL = 1.0
FLOOR_GOAL = 0.25
STARVATION_SECONDS = 2.0
PROXY_REQUESTS = 3_000
PROXY_RATIO_GOAL = 1.2

CART_ITEM = {"product_id": "p1", "variant_id": "v1", "unit_price": 99.5, "quantity": 1, "currency": "USD"}
CART_EVENT = {"type": "cart", "subtype": "update", "cart": [CART_ITEM], "cart_link": "https://shop.example/cart"}
CART_PROPERTIES = {"cart": [CART_ITEM], "cart_link": "https://shop.example/cart"}


def only_loopback(event: str, args: tuple[Any, ...]) -> None:
    """An audit hook: no connection (nor name lookup) off loopback, whatever an SDK would do."""
    if event == "socket.getaddrinfo":
        host = args[0]
    elif event == "socket.connect" and isinstance(args[1], tuple):
        host = args[1][0]
    else:
        return
    if host in (None, "localhost") or (isinstance(host, bytes) and host == b"localhost"):
        return
    try:
        loopback = ipaddress.ip_address(host.decode() if isinstance(host, bytes) else host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise RuntimeError(f"the benchmark reaches only loopback, not {host!r}")


# -- timing -----------------------------------------------------------------------------------


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


class Shop:
    """A Flask app with cue-front (durable ``track()``), and the peers, all aimed at one sink."""

    def __init__(self, folder: Path, sink_port: int, config: dict[str, Any] | None = None) -> None:
        from flask import Flask, g

        from cue_front import DataCue
        from cue_front.identity import current_anonymous_id
        from cue_front.state import get_state

        self.events_url = f"http://127.0.0.1:{sink_port}/"
        self.outbox_path = folder / "track.sqlite3"
        app = Flask("bench_track")
        app.config.update(
            SECRET_KEY="bench-shop-secret",
            DATACUE_API_KEY=API_KEY,
            DATACUE_API_SECRET=API_SECRET,
            DATACUE_EVENTS_URL=self.events_url,
            DATACUE_API_URL=self.events_url + "v1",
            DATACUE_DELIVERY="outbox",
            DATACUE_OUTBOX_PATH=str(self.outbox_path),
        )
        app.config.update(config or {})
        DataCue(app)
        self.app = app
        self.state = get_state(app)
        self.random = random.Random(20261203)
        # Returning visitors: each request carries one of 1,000 signed anonymous-id cookies.
        self.environs: list[dict[str, str]] = []
        self.anonymous_ids: list[str] = []
        for _ in range(1000):
            with app.test_request_context("/"):
                self.anonymous_ids.append(current_anonymous_id() or "")
                cookie = g._datacue_new_anonymous_cookie
            self.environs.append(
                {
                    "HTTP_COOKIE": f"datacue_anonymous_id={cookie}",
                    "HTTP_USER_AGENT": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
                    "REMOTE_ADDR": "203.0.113.7",
                }
            )

    def timed(self, call: Callable[[int], object], count: int) -> list[float]:
        """Microseconds of ``call(visitor)`` in a request context of its own, ``count`` times.

        Before each call (untimed), a request leaves a varying number of objects for the
        cyclic garbage collector, as a real app's requests do. Were it always the same number,
        the collector would start at the same point of every request, and whichever call that
        point falls in would pay for every collection (it did: one SDK's p99 doubled from one
        run to the next as that point moved); varied, each call pays in proportion to the
        objects it makes itself.
        """
        clock = time.perf_counter_ns
        samples = []
        context = self.app.test_request_context
        environs = self.environs
        garbage = self.random.randrange
        for index in range(count):
            for _ in range(garbage(32)):
                cycle: list[Any] = []
                cycle.append(cycle)
            with context("/cart", method="POST", environ_base=environs[index % 1000]):
                started = clock()
                call(index % 1000)
                samples.append((clock() - started) / 1000)
        return samples


def peers(sink_port: int) -> tuple[Any, Any]:
    """Segment's and PostHog's clients, aimed at the sink (their defaults otherwise)."""
    from posthog import Posthog
    from segment.analytics import Client as Segment

    host = f"http://127.0.0.1:{sink_port}"
    segment = Segment("bench-write-key", host=host)
    posthog = Posthog("bench-project-key", host=host, enable_local_evaluation=False)
    return segment, posthog


def wait_until_drained(shop: Shop, seconds: float = 120) -> None:
    """Wait until the shop's outbox holds nothing unfinished."""
    outbox = shop.state.outbox
    wait_until(
        lambda: not outbox.unfinished(), seconds, lambda: f"the outbox was not drained: {outbox.stats()}"
    )


def measure_track(folder: Path, sink_port: int) -> list[Result]:
    from cue_front import track

    shop = Shop(folder, sink_port)
    segment, posthog = peers(sink_port)
    anonymous_ids = shop.anonymous_ids
    contenders: dict[str, Callable[[int], object]] = {
        "cue-front": lambda visitor: track(CART_EVENT),
        "Segment": lambda visitor: segment.track(
            anonymous_id=anonymous_ids[visitor], event="Cart Updated", properties=CART_PROPERTIES
        ),
        "PostHog": lambda visitor: posthog.capture(
            "cart updated", distinct_id=anonymous_ids[visitor], properties=CART_PROPERTIES
        ),
    }
    rounds: dict[str, list[list[float]]] = {name: [] for name in contenders}
    delivered: dict[str, list[float]] = {"cue-front": [], "Segment": []}
    try:
        for call in contenders.values():
            shop.timed(call, WARM_UP)  # the outbox opens, the threads start, the caches fill
        segment.flush()
        shop.state.delivery.flush(60)
        names = list(contenders)
        for round_ in range(ROUNDS):
            for name in names[round_ % 3 :] + names[: round_ % 3]:  # each goes first in turn
                gc.collect()
                before = sink_state(sink_port)["received"]
                started = time.perf_counter()
                rounds[name].append(shop.timed(contenders[name], CALLS))
                elapsed = time.perf_counter() - started
                if name in delivered:  # what each one's delivery thread sent meanwhile
                    delivered[name].append((sink_state(sink_port)["received"] - before) / elapsed)
                if name == "cue-front":
                    shop.state.delivery.flush(60)
                else:
                    (segment if name == "Segment" else posthog).flush()
        # cue-front with its delivery in a process of its own, against Segment again.
        shop.state.delivery.stop()
        separate: list[list[float]] = []
        segment_again: list[list[float]] = []
        with serving(WORKER_SOURCE, *worker_arguments(shop.outbox_path, shop.events_url, idle_interval=0.01)):
            for _ in range(ROUNDS):
                gc.collect()
                separate.append(shop.timed(contenders["cue-front"], CALLS))
                gc.collect()
                segment_again.append(shop.timed(contenders["Segment"], CALLS))
                segment.flush()
            wait_until_drained(shop)
        steps = profile_track(shop)
    finally:
        shop.state.delivery.stop()
        segment.shutdown()
        posthog.shutdown()

    def ratios(numerator: list[list[float]], denominator: list[list[float]], fraction: float) -> float:
        return statistics.median(
            percentile(top, fraction) / percentile(bottom, fraction)
            for top, bottom in zip(numerator, denominator, strict=True)
        )

    def median_of(samples: list[list[float]], fraction: float) -> float:
        return statistics.median(percentile(one, fraction) for one in samples)

    for name, samples in [*rounds.items(), ("cue-front, delivery in its own process", separate)]:
        per_round = ", ".join(
            f"{percentile(one, 0.5):.1f}/{percentile(one, 0.99):.0f}" for one in samples
        )
        print(f"  {name}: p50/p99 per round, us: {per_round}", file=sys.stderr)
    print(
        "  delivered during the rounds (flat out), events/s: cue-front "
        + ", ".join(f"{rate:,.0f}" for rate in delivered["cue-front"])
        + "; Segment's consumer "
        + ", ".join(f"{rate:,.0f}" for rate in delivered["Segment"]),
        file=sys.stderr,
    )
    total = sum(value for name, value in steps.items() if name != "track()")
    print(
        "  where track()'s time goes, p50 us: "
        + ", ".join(f"{name} {value:.1f}" for name, value in steps.items())
        + f" (the steps add up to {total:.1f})",
        file=sys.stderr,
    )
    cue, seg, pos = rounds["cue-front"], rounds["Segment"], rounds["PostHog"]
    p50_ratio = ratios(cue, seg, 0.5)
    p99_ratio = ratios(cue, seg, 0.99)
    p99_separate = ratios(separate, segment_again, 0.99)
    return [
        Result(
            measure="track() p50, durable, thread running, vs Segment track()",
            baseline=median_of(seg, 0.5),
            figure=median_of(cue, 0.5),
            unit="us",
            goal=f"<= {P50_GOAL:g}x Segment (median of {ROUNDS} rounds' ratios: {p50_ratio:.2f}x)",
            passed=p50_ratio <= P50_GOAL,
        ),
        Result(
            measure="track() p99, durable, thread running, vs Segment track()",
            baseline=median_of(seg, 0.99),
            figure=median_of(cue, 0.99),
            unit="us",
            goal=f"<= {P99_THREAD_GOAL:g}x Segment (median ratio {p99_ratio:.2f}x)",
            passed=p99_ratio <= P99_THREAD_GOAL,
        ),
        Result(
            measure="track() p99, delivery in its own process, vs Segment track()",
            baseline=median_of(segment_again, 0.99),
            figure=median_of(separate, 0.99),
            unit="us",
            goal=f"<= {P99_PROCESS_GOAL:g}x Segment (median ratio {p99_separate:.2f}x)",
            passed=p99_separate <= P99_PROCESS_GOAL,
        ),
        Result(
            measure="delivered while track() runs flat out (no I/O): cue-front vs Segment's consumer",
            baseline=statistics.median(delivered["Segment"]),
            figure=statistics.median(delivered["cue-front"]),
            unit="events/s",
            goal="reported (the GIL: see REPORT.md)",
            passed=True,
        ),
        Result(
            measure="track() p50 vs PostHog capture()",
            baseline=median_of(pos, 0.5),
            figure=median_of(cue, 0.5),
            unit="us",
            goal=f"reported (median ratio {ratios(cue, pos, 0.5):.2f}x)",
            passed=True,
        ),
        Result(
            measure="track() p99 vs PostHog capture()",
            baseline=median_of(pos, 0.99),
            figure=median_of(cue, 0.99),
            unit="us",
            goal=f"reported (median ratio {ratios(cue, pos, 0.99):.2f}x)",
            passed=True,
        ),
    ]


# -- where the time goes ----------------------------------------------------------------------


def profile_track(shop: Shop) -> dict[str, float]:
    """p50 microseconds of each step of ``track()``, timed apart the way ``track()`` runs them."""
    from flask import g, request

    from cue_front import schema, track
    from cue_front.identity import request_anonymous_id, request_profile, request_user_id

    state = shop.state
    steps: dict[str, list[float]] = {
        name: [] for name in ("identity", "context", "validation", "encoding", "journal copy", "track()")
    }
    clock = time.perf_counter_ns
    context = shop.app.test_request_context
    for index in range(6_000):
        with context("/cart", method="POST", environ_base=shop.environs[index % 1000]):
            t0 = clock()
            namespace = vars(g._get_current_object())
            current = request._get_current_object()  # type: ignore[attr-defined]
            user_id = request_user_id(state, namespace)
            anonymous_id = request_anonymous_id(state, namespace, current)
            request_profile(state, namespace)
            t1 = clock()
            environ = current.environ
            envelope = {
                "user": {"user_id": user_id, "anonymous_id": anonymous_id}
                if user_id
                else {"anonymous_id": anonymous_id},
                "event": CART_EVENT,
                "context": {"ip": environ["REMOTE_ADDR"], "user_agent": environ["HTTP_USER_AGENT"]},
                "timestamp": schema.timestamp_now(),
            }
            t2 = clock()
            validated = schema.validate(schema.EVENT_ENVELOPE, envelope)
            t3 = clock()
            body = encode_json(validated)
            t4 = clock()
            state.outbox.put_event(body, visitor_key(anonymous_id))
            t5 = clock()
        with context("/cart", method="POST", environ_base=shop.environs[(index + 500) % 1000]):
            t6 = clock()
            track(CART_EVENT)
            t7 = clock()
        if index >= 1_000:
            spans = (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4, t7 - t6)
            for name, spent in zip(steps, spans, strict=True):
                steps[name].append(spent / 1000)
        if index % 2_000 == 1_999:
            state.outbox.ingest()
    medians = {name: statistics.median(samples) for name, samples in steps.items()}
    parts = sum(value for name, value in medians.items() if name != "track()")
    medians["the rest"] = max(0.0, medians["track()"] - parts)
    return medians


# -- shops in processes of their own ---------------------------------------------------------

# The start of a shop's script: a Flask app named ``NAME`` sending to the sink at ``argv[1]`` from
# the outbox at ``argv[2]``, its config updated with ``EXTRA`` (both set by :func:`shop_source`).
# The body adds cue-front (``DataCue(app)``, after whatever must come first) and its routes.
_SHOP_HEAD = r"""
import sys
from flask import Flask, Response, request
from werkzeug.serving import WSGIRequestHandler, make_server

class Quiet(WSGIRequestHandler):
    def log_request(self, *args, **kwargs):
        pass

events_url, outbox_path = sys.argv[1], sys.argv[2]
app = Flask(NAME)
app.config.update(
    SECRET_KEY="bench-shop-secret",
    DATACUE_API_KEY=API_KEY,
    DATACUE_API_SECRET=API_SECRET,
    DATACUE_EVENTS_URL=events_url,
    DATACUE_API_URL=events_url + "v1",
    DATACUE_OUTBOX_PATH=outbox_path,
)
app.config.update(**EXTRA)
"""

# The end of a shop's script: served by werkzeug (threaded, HTTP/1.1 keep-alive), its port printed.
_SHOP_TAIL = r"""
server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=Quiet)
print(server.server_port, flush=True)
server.serve_forever()
"""


def shop_source(name: str, body: str, **extra: str) -> str:
    """A shop's script for :func:`~benchmarks.loopback.serving`: :data:`_SHOP_HEAD` (the app named
    ``name``, ``extra`` its further config), ``body``, :data:`_SHOP_TAIL`. The body may use
    ``EVENT`` (:data:`CART_EVENT`)."""
    constants = f"NAME, EXTRA = {name!r}, {extra!r}\nAPI_KEY, API_SECRET = {API_KEY!r}, {API_SECRET!r}\n"
    return constants + f"EVENT = {CART_EVENT!r}\n" + _SHOP_HEAD + body + _SHOP_TAIL


# -- the worker beside a busy request thread --------------------------------------------------

# A shop served by werkzeug (threaded) in a process of its own: ``POST /cart`` tracks the cart
# update; ``POST /fill`` tracks ``n`` of them back to back in one request (a backlog, made while
# the delivery thread is starved); ``GET /backlog`` says how many rows wait.
BUSY_SHOP_SOURCE = shop_source(
    "bench_busy_shop",
    r"""
from cue_front import DataCue, track
from cue_front.state import get_state

DataCue(app)

@app.post("/cart")
def cart():
    track(EVENT)
    return Response(status=204)

@app.post("/fill")
def fill():
    for number in range(int(request.args["n"])):  # 2,000 visitors' events
        track(EVENT, anonymous_id=f"07d35b1a-5776-4ddf-8f1c-{number % 2000:012d}")
    return Response(status=204)

@app.get("/backlog")
def backlog():
    return str(get_state().outbox.unfinished())
""",
)


def shop_request(
    port: int, method: str, path: str, connection: http.client.HTTPConnection | None = None
) -> str:
    own = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        own.request(method, path, body=b"" if method == "POST" else None, headers={"Cookie": "x=1"})
        answer = own.getresponse()
        text = answer.read().decode()
        if answer.status >= 400:
            raise RuntimeError(f"{method} {path} answered {answer.status}")
        return text
    finally:
        if connection is None:
            own.close()


def measure_starvation(folder: Path, sink_port: int) -> list[Result]:
    """The delivery thread of a shop serving requests flat out, against its rate alone."""
    events_url = f"http://127.0.0.1:{sink_port}/"
    with serving(BUSY_SHOP_SOURCE, events_url, str(folder / "busy.sqlite3")) as port:
        # Alone: a backlog (made in one request, the thread starved meanwhile), then drained
        # with nothing else running.
        def drained() -> bool:
            return not int(shop_request(port, "GET", "/backlog"))

        shop_request(port, "POST", "/fill?n=1000")
        wait_until(drained, 120, "the busy shop's backlog of 1,000 was not delivered")
        alone = []
        for _ in range(2):
            shop_request(port, "POST", "/fill?n=20000")
            before, started = sink_state(sink_port)["received"], time.perf_counter()
            wait_until(drained, 300, "the busy shop's backlog of 20,000 was not delivered", interval=0.02)
            alone.append((sink_state(sink_port)["received"] - before) / (time.perf_counter() - started))
        # Busy: requests back to back over two kept-alive connections, each tracking an event.
        served = [0, 0]
        stop = time.perf_counter() + STARVATION_SECONDS

        def client(slot: int) -> None:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                while time.perf_counter() < stop:
                    shop_request(port, "POST", "/cart", connection)
                    served[slot] += 1
            finally:
                connection.close()

        import threading

        before, started = sink_state(sink_port)["received"], time.perf_counter()
        clients = [threading.Thread(target=client, args=(slot,)) for slot in range(2)]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join()
        elapsed = time.perf_counter() - started
        busy = (sink_state(sink_port)["received"] - before) / elapsed
        arrivals = sum(served) / elapsed
        backlog = int(shop_request(port, "GET", "/backlog"))
    idle = statistics.median(alone)
    print(
        f"  delivery thread: alone {', '.join(f'{rate:,.0f}' for rate in alone)} events/s; in a shop"
        f" serving requests flat out, {arrivals:,.0f} events/s tracked, {busy:,.0f} delivered meanwhile,"
        f" {backlog} waiting at the end",
        file=sys.stderr,
    )
    return [
        Result(
            measure="delivery thread in a shop serving flat out (events/s), vs alone",
            baseline=idle,
            figure=busy,
            unit="events/s",
            goal=f">= {FLOOR_GOAL:.0%} of alone, or all that arrives",
            passed=busy >= FLOOR_GOAL * idle or busy >= 0.95 * arrivals,
        )
    ]


# -- the first-party endpoint -----------------------------------------------------------------

# The shop for the endpoint measure: one app with cue-front and a bare JSON route carrying the
# same Flask-Limiter limits (per IP, per visitor), served by werkzeug (threaded, HTTP/1.1
# keep-alive) in its own process.
SHOP_SOURCE = shop_source(
    "bench_shop",
    r"""
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from cue_front import DataCue

limiter = Limiter(get_remote_address, app=app, storage_uri="memory://")
DataCue(app)

def visitor():
    return request.cookies.get("datacue_anonymous_id", "")

@app.post("/bare")
@limiter.limit("5000000/minute")
@limiter.limit("1000000/minute", key_func=visitor)
def bare():
    payload = request.get_json()
    if not isinstance(payload, dict) or "event" not in payload:
        return {"error": "expected an event"}, 400
    return Response(status=204)
""",
    DATACUE_PROXY_RATE_LIMIT="1000000/minute",
)


def per_request_us(port: int, path: str, body: bytes, headers: dict[str, str], count: int) -> float:
    """Microseconds per request, over one kept-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        started = time.perf_counter()
        for _ in range(count):
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 204:
                raise RuntimeError(f"POST {path} answered {response.status}")
        return (time.perf_counter() - started) / count * 1e6
    finally:
        connection.close()


def measure_endpoint(folder: Path, sink_port: int) -> list[Result]:
    events_url = f"http://127.0.0.1:{sink_port}/"
    with serving(SHOP_SOURCE, events_url, str(folder / "endpoint.sqlite3")) as port:
        origin = f"http://127.0.0.1:{port}"
        body = json.dumps(
            {"event": {"type": "wishlist", "subtype": "add", "product_id": "p1", "variant_id": "v1"}}
        ).encode()
        headers = {"Content-Type": "application/json", "Origin": origin, "User-Agent": "Mozilla/5.0"}
        # A returning visitor sends its anonymous id cookie.
        first = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        first.request("POST", "/datacue/events", body=body, headers=headers)
        answer = first.getresponse()
        answer.read()
        cookie = (answer.getheader("Set-Cookie") or "").split(";", 1)[0]
        first.close()
        headers["Cookie"] = cookie
        per_request_us(port, "/bare", body, headers, 500)  # warm up both routes
        per_request_us(port, "/datacue/events", body, headers, 500)
        baselines, figures = [], []
        for _ in range(ROUNDS):  # interleaved, in rounds
            baselines.append(per_request_us(port, "/bare", body, headers, PROXY_REQUESTS // ROUNDS))
            figures.append(per_request_us(port, "/datacue/events", body, headers, PROXY_REQUESTS // ROUNDS))
    ratio = statistics.median(f / b for f, b in zip(figures, baselines, strict=True))
    return [
        Result(
            measure="POST /datacue/events (queued) per request",
            baseline=statistics.median(baselines),
            figure=statistics.median(figures),
            unit="us",
            goal=f"<= {PROXY_RATIO_GOAL:g}x a bare route with the same limits (median ratio {ratio:.2f}x)",
            passed=ratio <= PROXY_RATIO_GOAL,
        )
    ]


def run() -> list[Result]:
    sys.addaudithook(only_loopback)
    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder, distant_sink(0.0) as sink_port:
        results = measure_track(Path(folder), sink_port)
        results += measure_starvation(Path(folder), sink_port)
        results += measure_endpoint(Path(folder), sink_port)
    return results


if __name__ == "__main__":
    from benchmarks.report import format_table

    print(format_table(run()))
