"""Delivery at DataCue's distance: one process draining its outbox into sinks that answer after 0, 20
and 50 ms, and the backlog an outage leaves, cleared at 50 ms.

* **At a distance.** Queued events drained by one :class:`~cue_front.outbox.DeliveryWorker`
  (its default number of requests in flight) into a loopback sink (``benchmarks/loopback.py``,
  in a process of its own) that answers each request after 0, 20 or 50 ms. Baseline: the same
  worker with one request in flight, into the same sink, interleaved round by round (fewer
  events at a distance: one at a time it delivers 20 a second). Goals: at 0 ms, no slower than
  one in flight (the median of the rounds' ratios); at 50 ms, at least 1,000 events/s.
* **Against the naive way.** At 0 ms, against ``requests.post`` per event: at least 3x.
* **After an outage.** The outage test's backlog, 1,000 events from 40 visitors and 100 store
  changes, queued while DataCue could not be reached (with the outage test's timeouts, lease and
  backoff: the rows wait out backoffs as they would), then drained at 50 ms. The figure: seconds
  from the sink's first answer after recovery until the outbox is empty. Goal: under 5 s.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

from benchmarks.loopback import distant_sink, free_port, sink_state
from benchmarks.report import Result
from cue_front.encoding import encode_json
from cue_front.events import visitor_key
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.outbox.worker import DEFAULT_IN_FLIGHT
from cue_front.queued import ordering_keys
from cue_front.transport import Transport

API_KEY = "bench-key"
API_SECRET = "bench-secret"
ROUNDS = 3
#: Events drained per round, by the sink's delay: (many in flight, one in flight).
EVENTS = {0.0: (20_000, 20_000), 0.02: (10_000, 300), 0.05: (10_000, 200)}
VISITORS = 2_000
NAIVE_EVENTS = 2_000
NAIVE_GOAL = 3.0
AT_ZERO_GOAL = 1.0
AT_50_MS_GOAL = 1_000.0
#: The outage test's backlog and settings (tests/soak: OUTAGE, and the shop's config there).
BACKLOG_EVENTS, BACKLOG_VISITORS, BACKLOG_CHANGES = 1_000, 40, 100
OUTAGE_TIMEOUT, OUTAGE_LEASE, OUTAGE_BACKOFF = (0.5, 0.5), 5.0, (0.1, 1.0)
BACKLOG_GOAL_SECONDS = 5.0


def event_body(seq: int, visitor: int) -> bytes:
    return encode_json(
        {
            "user": {"anonymous_id": f"07d35b1a-5776-4ddf-8f1c-{visitor:012d}"},
            "event": {
                "type": "wishlist",
                "subtype": "add",
                "product_id": f"p{seq % 500}",
                "variant_id": "v1",
            },
            "context": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0"},
            "timestamp": "2026-01-23 00:30:08.276Z",
        }
    )


def transport_for(port: int, timeout: tuple[float, float] = (3.05, 10.0)) -> Transport:
    events_url = f"http://127.0.0.1:{port}/"
    return Transport(API_KEY, API_SECRET, api_url=events_url + "v1", events_url=events_url, timeout=timeout)


def drain_rate(folder: Path, port: int, events: int, in_flight: int, name: str) -> float:
    """Events/s one worker drains from a full outbox into the sink (the puts are not timed)."""
    with Outbox(folder / f"{name}.sqlite3") as outbox, transport_for(port) as transport:
        for seq in range(events):
            visitor = seq % VISITORS
            outbox.put("event", "POST", "", event_body(seq, visitor), visitor_key(str(visitor)))
        outbox.checkpoint()
        worker = DeliveryWorker(outbox, transport, max_in_flight=in_flight)
        try:
            started = time.perf_counter()
            emptied = worker.flush(600)
            elapsed = time.perf_counter() - started
        finally:
            worker.stop()
        if not emptied or outbox.stats().delivered != events:
            raise RuntimeError(f"the outbox was not drained: {outbox.stats()}")
    return events / elapsed


def naive_rate(port: int) -> float:
    """Events/s posting each event with ``requests.post``, the way a shop would without cue-front."""
    with transport_for(port) as transport:
        headers = transport.events_headers()
    url = f"http://127.0.0.1:{port}/"
    bodies = [event_body(seq, seq % VISITORS) for seq in range(NAIVE_EVENTS)]
    started = time.perf_counter()
    for body in bodies:
        requests.post(url, data=body, headers=headers, timeout=(3.05, 10)).raise_for_status()
    return NAIVE_EVENTS / (time.perf_counter() - started)


def backlog_seconds(folder: Path, port: int) -> float:
    """Seconds from the first answer after an outage until its backlog is delivered (see the module doc)."""
    with Outbox(folder / "backlog.sqlite3", lease_seconds=OUTAGE_LEASE) as outbox:
        first_wait, longest_wait = OUTAGE_BACKOFF
        with transport_for(free_port(), OUTAGE_TIMEOUT) as down:
            worker = DeliveryWorker(
                outbox, down, backoff_base=first_wait, backoff_max=longest_wait, idle_interval=0.05
            )
            worker.ensure_running()
            # The outage: events and store changes keep coming while DataCue cannot be reached.
            for seq in range(BACKLOG_EVENTS):
                visitor = seq % BACKLOG_VISITORS
                outbox.put_event(event_body(seq, visitor), visitor_key(str(visitor)))
                if seq % 50 == 49:
                    worker.notify()
                    time.sleep(0.01)
            for number in range(BACKLOG_CHANGES):
                body = encode_json({"name": f"Category {number}"})
                path = f"/categories/c{number}"
                key, shared = ordering_keys("PUT", path, body)  # as the queued client keys it
                outbox.put("rest", "PUT", path, body, key, shared_key=shared)
            worker.notify()
            time.sleep(1.0)  # the rows that were tried wait out their backoffs
            worker.stop()
        sink_state(port, "/reset")
        with transport_for(port, OUTAGE_TIMEOUT) as up:
            worker = DeliveryWorker(outbox, up, backoff_base=first_wait, backoff_max=longest_wait)
            try:
                emptied = worker.flush(120)
                done = time.monotonic()
            finally:
                worker.stop()
        stats = outbox.stats()
        if not emptied or stats.delivered != BACKLOG_EVENTS + BACKLOG_CHANGES:
            raise RuntimeError(f"the backlog was not delivered: {stats}")
    first_answer = sink_state(port)["first_answer"]
    return done - float(first_answer)


def run() -> list[Result]:
    results: list[Result] = []
    rates: dict[float, tuple[list[float], list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as name:
        folder = Path(name)
        for delay, (many_events, one_events) in EVENTS.items():
            many: list[float] = []
            one: list[float] = []
            with distant_sink(delay) as port:
                drain_rate(folder, port, 2_000, DEFAULT_IN_FLIGHT, f"warm-{delay}")
                for round_ in range(ROUNDS):  # interleaved: both see the same machine
                    one.append(drain_rate(folder, port, one_events, 1, f"one-{delay}-{round_}"))
                    name_ = f"many-{delay}-{round_}"
                    many.append(drain_rate(folder, port, many_events, DEFAULT_IN_FLIGHT, name_))
                if delay == 0.0:
                    naive = max(naive_rate(port) for _ in range(ROUNDS))
                    zero_many = max(many)
                if delay == 0.05:
                    backlog = backlog_seconds(folder, port)
            rates[delay] = (many, one)
            print(
                f"  at {delay * 1000:g} ms: {DEFAULT_IN_FLIGHT} in flight "
                + ", ".join(f"{rate:,.0f}" for rate in many)
                + " events/s; one in flight "
                + ", ".join(f"{rate:,.0f}" for rate in one),
                file=sys.stderr,
            )
    for delay, (many, one) in rates.items():
        ratio = statistics.median(m / o for m, o in zip(many, one, strict=True))
        figure, baseline = statistics.median(many), statistics.median(one)
        if delay == 0.0:
            goal = f">= {AT_ZERO_GOAL:g}x one in flight (median of {ROUNDS} rounds)"
            passed = ratio >= AT_ZERO_GOAL
        elif delay == 0.05:
            goal, passed = f">= {AT_50_MS_GOAL:,.0f} events/s", figure >= AT_50_MS_GOAL
        else:
            goal, passed = "reported", True
        results.append(
            Result(
                measure=f"delivery at {delay * 1000:g} ms, 1 process: {DEFAULT_IN_FLIGHT} in flight vs 1",
                baseline=baseline,
                figure=figure,
                unit="events/s",
                goal=goal,
                passed=passed,
            )
        )
    results.append(
        Result(
            measure="delivery at 0 ms vs requests.post per event",
            baseline=naive,
            figure=zero_many,
            unit="events/s",
            goal=f">= {NAIVE_GOAL:g}x requests.post per event",
            passed=zero_many >= NAIVE_GOAL * naive,
        )
    )
    results.append(
        Result(
            measure="outage backlog (1,000 events, 100 changes) at 50 ms, from the first 2xx",
            baseline=None,
            figure=backlog,
            unit="s",
            goal=f"< {BACKLOG_GOAL_SECONDS:g} s",
            passed=backlog < BACKLOG_GOAL_SECONDS,
        )
    )
    return results


if __name__ == "__main__":
    from benchmarks.report import format_table

    print(format_table(run()))
