"""The delivery worker against a real DataCue stand-in: faults, crashes, several processes, dead letters.

Rows go through the emulator (or the scriptable sink of ``benchmarks/sink.py``) over
loopback; crashes are real SIGKILLs of real processes (``tests/support/outbox_process.py``).
"""

from __future__ import annotations

import json
import logging
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, current_app

from benchmarks.loopback import free_port
from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink
from cue_front import signals
from cue_front.emulator import RunningEmulator
from cue_front.encoding import encode_json
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.outbox.journal import journal_folder
from cue_front.transport import Transport
from tests.support.outbox_process import HELPER, event_body
from tests.support.waiting import wait_for

#: The ``make_worker`` fixture (tests/conftest.py): workers on ``outbox`` sending to ``target``.
MakeWorker = Callable[..., DeliveryWorker]


def emulator_settings(emulator: RunningEmulator, outbox_path: Path, **more: Any) -> str:
    return json.dumps(
        {
            "outbox": str(outbox_path),
            "api_key": emulator.api_key,
            "api_secret": emulator.api_secret,
            "api_url": emulator.api_url,
            "events_url": emulator.events_url,
            **more,
        }
    )


def put_events(
    outbox: Outbox, count: int, visitor: Callable[[int], str] = lambda seq: f"visitor-{seq}"
) -> None:
    for seq in range(count):
        outbox.put("event", "POST", "", event_body(seq, visitor(seq)), visitor(seq))


def accepted_events(emulator: RunningEmulator) -> list[dict[str, Any]]:
    """Events the emulator accepted, in the order they arrived (faulted attempts left out)."""
    return [item for item in reversed(emulator.events()) if item["status"] in (200, 204)]


def seq_of(item: dict[str, Any]) -> int:
    seq: int = item["body"]["user"]["profile"]["seq"]
    return seq


def closed_port_url() -> str:
    """A loopback URL where nothing listens: DataCue down."""
    return f"http://127.0.0.1:{free_port()}/"


# -- what arrives -----------------------------------------------------------------------------


def test_events_and_store_changes_arrive_as_they_were_queued(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    event = event_body(1, "a1")
    product = {
        "product_id": "p1",
        "variant_id": "v1",
        "categories": ["jeans"],
        "name": "Blue jeans",
        "price": 99.5,
        "full_price": 120,
        "stock": 3,
        "photo_url": "https://shop.example/p1.jpg",
        "link": "/p/p1",
    }
    changes = {key: value for key, value in product.items() if key not in ("product_id", "variant_id")}
    changes["stock"] = 2
    outbox.put("event", "POST", "", event, "a1")
    outbox.put("rest", "POST", "/products", encode_json(product), "product:p1")
    outbox.put("rest", "PUT", "/products/p1/v1", encode_json(changes), "product:p1")
    outbox.put("rest", "DELETE", "/products/p1/v1", b"", "product:p1")

    assert make_worker(emulator).flush(10) is True

    (received,) = emulator.events()
    assert (received["status"], received["body"]) == (204, json.loads(event))
    # The emulator checks each REST signature against the body bytes: a 2xx proves it matched.
    assert [(r["method"], r["path"], r["status"]) for r in reversed(emulator.requests())] == [
        ("POST", "/v1/products", 201),
        ("PUT", "/v1/products/p1/v1", 204),
        ("DELETE", "/v1/products/p1/v1", 204),
    ]
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 4, 0)


def test_2000_events_all_arrive_through_30_percent_server_errors_and_timeouts(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    total = 2000
    put_events(outbox, total, visitor=lambda seq: f"visitor-{seq % 250}")
    emulator.set_faults(
        seed=5,
        # 25% answered 500/503, 5% dropped without an answer, and some answered too late.
        events={
            "error_500": 0.15,
            "error_503": 0.10,
            "drop": 0.05,
            "latency": 0.25,
            "latency_probability": 0.015,
        },
    )
    worker = make_worker(emulator, timeout=(1.0, 0.08))

    worker.ensure_running()
    worker.notify()
    wait_for(lambda: outbox.unfinished() == 0, seconds=120)

    everything = emulator.events()
    failed = [item for item in everything if item["status"] not in (200, 204)]
    arrived = Counter(seq_of(item) for item in accepted_events(emulator))
    assert set(arrived) == set(range(total))
    assert len(failed) > total * 0.2  # the faults did happen
    stats = outbox.stats()
    assert (stats.delivered, stats.dead) == (total, 0)


def test_each_visitors_events_arrive_in_order_through_retries(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    put_events(outbox, 200, visitor=lambda seq: f"visitor-{seq % 8}")
    # Server errors only: a faulted request changes nothing, so every event arrives exactly once.
    emulator.set_faults(seed=9, events={"error_500": 0.2, "error_503": 0.15})
    worker = make_worker(emulator)

    worker.ensure_running()
    worker.notify()
    wait_for(lambda: outbox.unfinished() == 0)

    per_visitor: dict[str, list[int]] = defaultdict(list)
    for item in accepted_events(emulator):
        per_visitor[item["user"]].append(seq_of(item))
    assert per_visitor == {f"visitor-{v}": list(range(v, 200, 8)) for v in range(8)}
    assert any(item["status"] >= 500 for item in emulator.events())


# -- refusals, rate limits, outages -------------------------------------------------------------


def test_a_refused_row_becomes_a_visible_dead_letter_with_a_signal(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    bad = outbox.put("event", "POST", "", b'{"user":{"anonymous_id":"a1"},"event":{"type":"dance"}}', "a1")
    good = outbox.put("event", "POST", "", event_body(2, "a1"), "a1")
    app = Flask("shop")
    dead: list[dict[str, Any]] = []
    delivered: list[dict[str, Any]] = []

    def on_dead(sender: Flask, **details: Any) -> None:
        assert current_app.name == "shop"  # receivers run inside the app's context
        dead.append({"sender": sender, **details})

    def on_delivered(sender: Flask, **details: Any) -> None:
        delivered.append({"sender": sender, **details})

    with signals.dead_lettered.connected_to(on_dead), signals.delivered.connected_to(on_delivered):
        assert make_worker(emulator, sender=app).flush(10) is True

    (letter,) = outbox.dead_letters()
    assert (letter.id, letter.status, letter.kind) == (bad, 400, "event")
    assert "event.type" in letter.error and letter.response_body and "dance" in letter.response_body
    assert dead == [
        {
            "sender": app,
            "row_id": bad,
            "kind": "event",
            "method": "POST",
            "path": "",
            "status": 400,
            "error": letter.error,
        }
    ]
    # The refused row does not hold its visitor's later events back.
    assert delivered == [{"sender": app, "row_id": good, "kind": "event", "method": "POST", "path": ""}]
    assert [seq_of(item) for item in accepted_events(emulator)] == [2]


def test_a_dead_letter_can_be_sent_again(outbox: Outbox, make_worker: MakeWorker, sink: Sink) -> None:
    sink.script("PUT", "/v1/users/u1", Answer(422, {"error": "user is locked"}))
    row_id = outbox.put("rest", "PUT", "/users/u1", encode_json({"first_name": "Ana"}), "user:u1")
    worker = make_worker(sink)
    worker.flush(5)
    (letter,) = outbox.dead_letters()
    assert (letter.id, letter.status, letter.response_body) == (row_id, 422, '{"error": "user is locked"}')

    assert outbox.retry_dead() == 1
    assert worker.flush(5) is True

    assert outbox.dead_letters() == []
    assert [(r.method, r.path, r.signature_ok) for r in sink.received()] == [
        ("PUT", "/v1/users/u1", True),
        ("PUT", "/v1/users/u1", True),
    ]


def test_408_and_429_are_retried_and_retry_after_is_honoured(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.script("POST", "/events/", Answer(408), Answer(429, headers={"Retry-After": "120"}))
    put_events(outbox, 5)
    # One request at a time, so that nothing else is on its way when the 429 comes (with many
    # in flight, what was sent already is answered: see tests/test_in_flight.py).
    worker = make_worker(sink, max_in_flight=1)

    # The 429 stops the batch: the rest of it waits with the rate-limited row.
    assert worker.run_once() == 2
    assert outbox.dead_letters() == []
    wait_for(lambda: worker.run_once() > 0)  # the 408 row, after its short backoff

    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (4, 0, 1, 0)
    assert "rate limited (429); retry after 120s" in (stats.last_error or "")
    next_due = outbox.next_due_in()
    assert next_due is not None and next_due > 100  # the two minutes it was told to wait
    assert len(sink.received()) == 3


def test_when_datacue_is_down_a_batch_stops_at_the_first_refused_connection(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    put_events(outbox, 50)
    sink.close()  # nothing listens any more
    worker = make_worker(sink)

    assert worker.run_once() == 1  # not 50 connection timeouts in a row
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.dead) == (50, 0, 0)
    assert "could not be reached" in (stats.last_error or "")


# -- answers after the read timeout -----------------------------------------------------------


def test_an_answer_after_the_read_timeout_is_waited_for_and_the_row_sent_once(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink, caplog: pytest.LogCaptureFixture
) -> None:
    put_events(outbox, 5)
    # The first event's answer comes 1.5 s late, well past the 0.1 s read timeout.
    sink.script("POST", "/events/", Answer(201, delay=1.5))
    worker = make_worker(sink, timeout=(1.0, 0.1))

    with caplog.at_level(logging.INFO, logger="cue_front.outbox"):
        assert worker.run_once() == 5

    received = sink.received("POST", "/events/")
    seqs = [request.json()["user"]["profile"]["seq"] for request in received]
    assert sorted(seqs) == [0, 1, 2, 3, 4]  # each once: the slow one was not sent again
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 5, 0)
    # The worker went on with the other rows while it waited for the slow answer.
    slow_answered_at = received[0].received_at + 1.5
    assert all(request.received_at < slow_answered_at for request in received[1:])
    assert "not answered in 0.1s; listening for its answer" in caplog.text
    assert "delivered; DataCue answered after" in caplog.text


def test_a_request_never_answered_is_sent_again_only_when_its_lease_is_nearly_over(
    tmp_path: Path, sink: Sink
) -> None:
    sink.script("POST", "/events/", Answer(201, delay=30))  # answered only when the sink closes
    with Outbox(tmp_path / "short-lease.sqlite3", lease_seconds=2.5) as outbox:
        row = outbox.put("event", "POST", "", event_body(1, "a1"), "a1")
        transport = Transport(
            API_KEY, API_SECRET, api_url=sink.url, events_url=sink.events_url, timeout=(1.0, 0.1)
        )
        worker = DeliveryWorker(outbox, transport, backoff_base=0.01, backoff_max=0.02)
        try:
            assert worker.run_once() == 1
            stats = outbox.stats()
            assert (stats.pending, stats.in_flight, stats.delivered) == (1, 0, 0)
            assert "did not answer in time" in (stats.last_error or "")
            assert worker.flush(10) is True
        finally:
            worker.stop()
            transport.close()
        first, second = sink.received("POST", "/events/")
        # Listened for until a second before the 2.5 s lease ended, not given up after 0.1 s.
        assert second.received_at - first.received_at >= 1.0
        assert outbox.stats().delivered == 1 and outbox.dead_letters() == [] and row > 0


def test_datacue_hanging_up_on_a_slow_request_has_it_retried_at_once(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    put_events(outbox, 1)
    emulator.set_faults(events={"latency": 0.3, "drop": 1.0, "max_faults": 1})
    worker = make_worker(emulator, timeout=(1.0, 0.1))

    assert worker.run_once() == 1  # returns when the late answer (none: a hang-up) settled the row
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight) == (1, 0)
    # Retried because DataCue hung up, not because the 30 s lease ran out.
    assert "could not be reached" in (stats.last_error or "")
    assert worker.flush(10) is True
    assert [seq_of(item) for item in accepted_events(emulator)] == [0]


def test_stopping_the_worker_hands_back_a_row_still_waiting_for_its_answer(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.script("POST", "/events/", Answer(201, delay=30))  # answered only when the sink closes
    put_events(outbox, 1)
    worker = make_worker(sink, timeout=(1.0, 0.1))
    worker.ensure_running()
    worker.notify()
    wait_for(lambda: outbox.stats().in_flight == 1 and len(sink.received()) == 1)
    time.sleep(0.2)  # past the read timeout: listened for now

    worker.stop()

    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered) == (1, 0, 0)
    assert "did not answer in time" in (stats.last_error or "")
    assert outbox.next_due_in() == 0  # due at once, not after its lease
    assert make_worker(sink).flush(10) is True
    assert len(sink.received()) == 2


# -- crashes and processes ----------------------------------------------------------------------


def test_a_worker_killed_mid_delivery_loses_nothing(
    tmp_path: Path, outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    total = 150
    put_events(outbox, total)
    emulator.set_faults(events={"latency": 0.02})  # slow enough to be caught in the middle of a batch
    settings = emulator_settings(emulator, outbox.path, lease_seconds=3.0, timeout=[0.1, 0.3])
    child = subprocess.Popen(
        [sys.executable, str(HELPER), "deliver", settings], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        wait_for(lambda: len(accepted_events(emulator)) >= 30 or child.poll() is not None)
    finally:
        child.send_signal(signal.SIGKILL)
        _, errors = child.communicate()
    assert child.returncode == -signal.SIGKILL, errors.decode()
    # What it had in hand (claimed, in flight, answered but not yet acknowledged) is unfinished.
    assert 0 < outbox.unfinished() < total

    emulator.set_faults()
    # A restarted worker sends the dead process's rows once its lease runs out.
    assert make_worker(emulator).flush(30) is True

    arrived = Counter(seq_of(item) for item in accepted_events(emulator))
    assert set(arrived) == set(range(total))
    assert sum(arrived.values()) > total  # at least once: what was sent before the kill went again
    assert outbox.stats().delivered == total


def test_two_processes_sharing_an_outbox_deliver_each_row_once(
    outbox: Outbox, emulator: RunningEmulator
) -> None:
    total = 1000
    put_events(outbox, total)
    settings = emulator_settings(emulator, outbox.path)
    children = [
        subprocess.Popen(
            [sys.executable, str(HELPER), "flush", settings],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    settled = []
    try:
        for child in children:  # both ready (imports done), then both go at once
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            output, errors = child.communicate(timeout=60)
            assert child.returncode == 0, errors
            settled.append(int(output))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.communicate()

    arrived = Counter(seq_of(item) for item in accepted_events(emulator))
    assert arrived == Counter(range(total))  # every row exactly once
    assert sum(settled) == total and min(settled) > 0  # both did part of the work


def test_a_forked_child_delivers_with_a_thread_of_its_own(
    tmp_path: Path, outbox: Outbox, emulator: RunningEmulator
) -> None:
    settings = emulator_settings(emulator, outbox.path, count=20)
    # The fork happens in a helper process: forking pytest itself (it has threads) is unsafe.
    result = subprocess.run(
        [sys.executable, str(HELPER), "fork", settings], capture_output=True, text=True, timeout=60
    )

    assert result.stdout.split() == ["0"], result.stderr
    assert sorted(seq_of(item) for item in accepted_events(emulator)) == list(range(20))
    assert outbox.stats().delivered == 20


def test_a_process_exiting_right_after_queueing_delivers_on_its_way_out(
    outbox: Outbox, emulator: RunningEmulator
) -> None:
    settings = emulator_settings(emulator, outbox.path, count=5)
    result = subprocess.run(
        [sys.executable, str(HELPER), "exit", settings], capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 0, result.stderr
    assert sorted(seq_of(item) for item in accepted_events(emulator)) == list(range(5))
    # Its journal segment went with it (looked at before any ingest here could remove it).
    assert list(journal_folder(outbox.path).glob("*.journal*")) == []
    assert outbox.unfinished() == 0


# -- the thread ---------------------------------------------------------------------------------


def test_the_thread_delivers_what_is_put_and_stops_cleanly(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    worker = make_worker(emulator, idle_interval=30.0)  # only notify() wakes it in time
    worker.ensure_running()
    assert worker.running
    wait_for(lambda: worker.outbox.next_due_in() is None)

    outbox.put("event", "POST", "", event_body(7, "a1"), "a1")
    worker.notify()
    wait_for(lambda: len(accepted_events(emulator)) == 1)

    worker.stop()
    assert not worker.running
    worker.ensure_running()  # a stopped worker stays stopped
    assert not worker.running
    wait_for(lambda: outbox.unfinished() == 0)


def test_serve_delivers_in_the_calling_thread_until_stopped(
    outbox: Outbox, make_worker: MakeWorker, emulator: RunningEmulator
) -> None:
    worker = make_worker(emulator)
    serving = threading.Thread(target=worker.serve)  # a dedicated delivery process's main thread
    serving.start()
    try:
        put_events(outbox, 30)
        wait_for(lambda: len(accepted_events(emulator)) == 30)
    finally:
        worker.stop()
        serving.join(10)
    assert not serving.is_alive()
    assert outbox.stats().delivered == 30


def test_flush_gives_up_on_rows_waiting_out_a_long_backoff(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink
) -> None:
    sink.script("POST", "/events/", Answer(503, headers={"Retry-After": "600"}))
    put_events(outbox, 1)

    assert make_worker(sink).flush(2) is False
    assert outbox.unfinished() == 1


def test_delivery_over_tls_checks_the_certificate(
    outbox: Outbox, tls_sink: tuple[Sink, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, cert = tls_sink
    base = f"https://localhost:{sink.port}"
    outbox.put("event", "POST", "", event_body(1, "a1"), "a1")
    outbox.put("rest", "PUT", "/users/u1", encode_json({"first_name": "Ana"}), "user:u1")

    def deliver() -> bool:
        transport = Transport(API_KEY, API_SECRET, api_url=f"{base}/v1", events_url=f"{base}/events/")
        worker = DeliveryWorker(outbox, transport, backoff_base=60)
        try:
            return worker.flush(5)
        finally:
            worker.stop()
            transport.close()

    # An unknown certificate is refused: nothing is sent, both rows wait.
    assert deliver() is False
    assert sink.received() == []
    assert "CERTIFICATE_VERIFY_FAILED" in (outbox.stats().last_error or "")

    # Trusted the way requests trusts a private CA: REQUESTS_CA_BUNDLE.
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    assert outbox.retry_now() == 2
    assert deliver() is True
    # Two keys: sent side by side, in either order.
    assert sorted((r.method, r.path, r.signature_ok) for r in sink.received()) == [
        ("POST", "/events/", True),
        ("PUT", "/v1/users/u1", True),
    ]


def test_an_environment_proxy_is_honoured(
    outbox: Outbox, make_worker: MakeWorker, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sink plays the proxy: requests sends it the absolute URL of the real destination.
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{sink.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    outbox.put("rest", "PUT", "/users/u1", encode_json({"first_name": "Ana"}), "user:u1")
    worker = DeliveryWorker(
        outbox,
        Transport(API_KEY, API_SECRET, api_url="http://datacue.invalid/v1", events_url="http://x.invalid/"),
    )
    try:
        assert worker.flush(5) is True
    finally:
        worker.stop()
        worker.transport.close()

    (request,) = sink.received()
    assert (request.method, request.path, request.signature_ok) == (
        "PUT",
        "http://datacue.invalid/v1/users/u1",
        True,
    )
