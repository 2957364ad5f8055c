"""Many requests in flight at once, as the loopback sink sees them: how many it held at a time, never
two of one key, the orders across keys kept, a slow answer holding one slot only, a 429 stopping
what had not started."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable

from flask import Flask

from benchmarks.sink import API_KEY, API_SECRET, Answer, Recorded, Sink, peak_in_flight
from cue_front import track
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.transport import Transport
from tests.support.outbox_process import event_body
from tests.support.samples import PRODUCT

#: The ``make_worker`` fixture (tests/conftest.py): workers on ``outbox`` sending to ``sink``.
MakeWorker = Callable[..., DeliveryWorker]


def put_events(outbox: Outbox, visitors: int, each: int) -> None:
    """``each`` events for each of ``visitors`` visitors, interleaved, numbered in queue order."""
    seq = 0
    for _ in range(each):
        for visitor in range(visitors):
            outbox.put("event", "POST", "", event_body(seq, f"v{visitor}"), f"v{visitor}")
            seq += 1


def seq(request: Recorded) -> int:
    number: int = request.json()["user"]["profile"]["seq"]
    return number


def visitor(request: Recorded) -> str:
    anonymous_id: str = request.json()["user"]["anonymous_id"]
    return anonymous_id


def one_after_another(requests: list[Recorded]) -> bool:
    """Whether each of ``requests`` (in arrival order) arrived after the one before was answered."""
    return all(later.received_at >= earlier.answered_at for earlier, later in itertools.pairwise(requests))


def test_the_worker_keeps_its_number_of_requests_in_flight_at_once(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.fallback("POST", "/events/", Answer(201, delay=0.3))
    put_events(outbox, visitors=40, each=1)

    assert make_worker(max_in_flight=16).flush(30) is True

    received = sink.received("POST", "/events/")
    assert sorted(seq(request) for request in received) == list(range(40))
    assert peak_in_flight(received) == 16  # as many as allowed, and never more


def test_one_in_flight_sends_one_request_at_a_time(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.fallback("POST", "/events/", Answer(201, delay=0.02))
    put_events(outbox, visitors=10, each=1)

    assert make_worker(max_in_flight=1).flush(30) is True

    received = sink.received("POST", "/events/")
    assert [seq(request) for request in received] == list(range(10))
    assert peak_in_flight(received) == 1


def test_never_two_requests_of_one_key_at_once_and_each_keys_order_kept(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.fallback("POST", "/events/", Answer(201, delay=0.03))
    put_events(outbox, visitors=6, each=8)

    assert make_worker(max_in_flight=16).flush(60) is True

    received = sink.received("POST", "/events/")
    per_visitor: dict[str, list[Recorded]] = defaultdict(list)
    for request in received:
        per_visitor[visitor(request)].append(request)
    for number, requests in enumerate(per_visitor[f"v{n}"] for n in range(6)):
        assert [seq(request) for request in requests] == list(range(number, 48, 6))
        assert one_after_another(requests)
    assert peak_in_flight(received) == 6  # every visitor at once, one request each


def test_a_slow_answer_holds_one_slot_and_its_key_while_the_others_go_on(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    # v0's first event is answered after 3 s: past the 0.3 s read timeout, so it is listened for.
    def answer(body: bytes) -> Answer:
        return Answer(201, delay=3.0 if json.loads(body)["user"]["profile"]["seq"] == 0 else 0.0)

    sink.choose("POST", "/events/", answer)
    put_events(outbox, visitors=5, each=4)

    assert make_worker(max_in_flight=4, timeout=(1.0, 0.3)).flush(30) is True

    received = sink.received("POST", "/events/")
    slow = next(request for request in received if seq(request) == 0)
    others = [request for request in received if visitor(request) != "v0"]
    # Every other visitor's events were sent and answered while the slow answer was awaited...
    assert len(others) == 16 and all(request.answered_at < slow.answered_at for request in others)
    # ...and v0's next events waited for it; none was sent twice.
    v0 = [request for request in received if visitor(request) == "v0"]
    assert [seq(request) for request in v0] == [0, 5, 10, 15] and one_after_another(v0)
    assert len(received) == 20


def test_after_a_429_nothing_new_starts_and_what_was_sent_is_settled(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    def answer(body: bytes) -> Answer:
        if json.loads(body)["user"]["profile"]["seq"] == 0:
            return Answer(429, headers={"Retry-After": "120"}, delay=0.5)
        return Answer(201, delay=1.0)

    sink.choose("POST", "/events/", answer)
    put_events(outbox, visitors=20, each=1)

    settled = make_worker(max_in_flight=4).run_once()

    received = sink.received("POST", "/events/")
    rate_limited = next(request for request in received if seq(request) == 0)
    assert len(received) == 4 == settled  # the four in flight, then nothing more
    assert all(request.received_at < rate_limited.answered_at for request in received)
    stats = outbox.stats()
    assert (stats.delivered, stats.pending, stats.in_flight) == (3, 17, 0)
    next_due = outbox.next_due_in()
    assert next_due is not None and next_due > 100


def test_a_batch_and_the_changes_to_its_entities_never_overtake_each_other(
    make_app: Callable[..., Flask], sink: Sink
) -> None:
    # Each answer takes a while, so that a request sent too early would arrive before the one
    # it must follow is answered.
    for method, path in [
        ("PUT", "/v1/products/p1/v1"),
        ("POST", "/v1/batch/products"),
        ("PUT", "/v1/products/p2/v1"),
        ("PUT", "/v1/categories/c1"),
    ]:
        sink.fallback(method, path, Answer(204 if method == "PUT" else 201, delay=0.2))
    app = make_app(
        DATACUE_DELIVERY="outbox",
        DATACUE_API_KEY=API_KEY,
        DATACUE_API_SECRET=API_SECRET,
        DATACUE_API_URL=sink.url,
        DATACUE_EVENTS_URL=sink.events_url,
    )
    datacue = app.extensions["datacue"].extension
    changes = {name: value for name, value in PRODUCT.items() if name not in ("product_id", "variant_id")}
    with app.app_context():
        datacue.queued.products.update("p1", "v1", {**changes, "stock": 2})
        datacue.queued.products.batch_create([PRODUCT, {**PRODUCT, "product_id": "p2"}])
        datacue.queued.products.update("p2", "v1", {**changes, "stock": 0})
        datacue.queued.products.update("p1", "v1", {**changes, "stock": 1})
        datacue.queued.categories.update("c1", {"name": "Sofas"})
        assert app.extensions["datacue"].delivery.flush(30) is True

    received = sink.received()
    first_p1, batch, p2, second_p1 = (
        next(r for r in received if (r.method, r.path) == ("PUT", "/v1/products/p1/v1")),
        next(r for r in received if r.path == "/v1/batch/products"),
        next(r for r in received if r.path == "/v1/products/p2/v1"),
        [r for r in received if (r.method, r.path) == ("PUT", "/v1/products/p1/v1")][1],
    )
    category = next(r for r in received if r.path == "/v1/categories/c1")
    assert batch.received_at >= first_p1.answered_at
    assert p2.received_at >= batch.answered_at and second_p1.received_at >= batch.answered_at
    # p2's and p1's later changes went side by side, and the category did not wait for the batch.
    assert p2.received_at < second_p1.answered_at and second_p1.received_at < p2.answered_at
    assert category.received_at < first_p1.answered_at
    assert all(r.signature_ok for r in received) and len(received) == 5


def test_a_visitors_events_before_and_after_login_arrive_one_after_another(
    make_app: Callable[..., Flask], sink: Sink
) -> None:
    sink.fallback("POST", "/events/", Answer(201, delay=0.1))
    app = make_app(
        DATACUE_DELIVERY="outbox",
        DATACUE_API_URL=sink.url,
        DATACUE_EVENTS_URL=sink.events_url,
        DATACUE_API_KEY=API_KEY,
    )
    state = app.extensions["datacue"]
    with app.app_context():
        state.delivery.stop()  # everything queued first, then delivered with many in flight
        for number in range(3):
            track({"type": "search", "term": f"anonymous {number}"}, user_id=None, anonymous_id="a1")
        track({"type": "login"}, user_id="u1", anonymous_id="a1")
        for number in range(3):
            track({"type": "search", "term": f"logged in {number}"}, user_id="u1", anonymous_id="a1")
        for number in range(3):
            track({"type": "search", "term": f"other {number}"}, user_id=None, anonymous_id="b1")
        transport = Transport(API_KEY, "", api_url=sink.url, events_url=sink.events_url)
        worker = DeliveryWorker(state.outbox, transport, max_in_flight=8)
        try:
            assert worker.flush(30) is True
        finally:
            worker.stop()
            transport.close()

    received = sink.received("POST", "/events/")
    theirs = [r for r in received if r.json()["user"]["anonymous_id"] == "a1"]
    terms = [r.json()["event"].get("term", "login") for r in theirs]
    assert terms == [
        *(f"anonymous {n}" for n in range(3)),
        "login",
        *(f"logged in {n}" for n in range(3)),
    ]
    assert one_after_another(theirs)
    # The other visitor went side by side with them.
    assert peak_in_flight(received) == 2
