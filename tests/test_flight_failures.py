"""The delivery loop when things fail under it: an outbox that cannot be written does not end the
delivery thread, and a pause set while rows wait for a connection holds those rows back too."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.transport import Transport
from tests.support.outbox_process import event_body
from tests.support.waiting import wait_for


class FailingOutbox(Outbox):
    """The real SQLite outbox, whose settling writes fail (a full disk) while ``failing`` is set."""

    failing = False
    failures = 0

    def _fail(self) -> None:
        if self.failing:
            self.failures += 1
            raise sqlite3.OperationalError("database or disk is full")

    def ack(self, row_ids: Iterable[int]) -> None:
        self._fail()
        super().ack(row_ids)

    def retry_later(
        self, row_id: int, *, delay: float, error: str, status: int | None = None, owner: str | None = None
    ) -> None:
        self._fail()
        super().retry_later(row_id, delay=delay, error=error, status=status, owner=owner)

    def release(self, row_ids: Iterable[int], *, delay: float = 0.0, owner: str | None = None) -> None:
        self._fail()
        super().release(row_ids, delay=delay, owner=owner)


@pytest.fixture
def failing_outbox(tmp_path: Path) -> Iterator[FailingOutbox]:
    # A short lease: rows whose settling failed are claimable again soon.
    opened = FailingOutbox(tmp_path / "outbox.sqlite3", lease_seconds=3.0)
    yield opened
    opened.close()


def test_a_failing_outbox_does_not_end_the_delivery_thread(failing_outbox: FailingOutbox, sink: Sink) -> None:
    transport = Transport(
        API_KEY, API_SECRET, api_url=sink.url, events_url=sink.events_url, timeout=(0.5, 0.5)
    )
    worker = DeliveryWorker(
        failing_outbox, transport, batch_size=20, max_in_flight=2, backoff_base=0.05, backoff_max=0.2,
        idle_interval=0.05,
    )
    for seq in range(20):
        failing_outbox.put("event", "POST", "", event_body(seq, f"v{seq}"), f"v{seq}")
    failing_outbox.failing = True
    try:
        worker.ensure_running()
        # Rows are answered, their acknowledgements fail, and the rows waiting to start cannot be
        # handed back either: the loop pauses, and goes on.
        wait_for(lambda: failing_outbox.failures >= 3, seconds=10)
        time.sleep(0.3)
        assert worker.running
        failing_outbox.failing = False  # the disk has room again
        wait_for(lambda: failing_outbox.unfinished() == 0, seconds=30)
        assert worker.running
        received = sink.received("POST", "/events/")
        delivered = {request.json()["user"]["profile"]["seq"] for request in received}
        assert delivered == set(range(20))
    finally:
        worker.stop()
        transport.close()


def test_rows_waiting_for_a_connection_do_not_start_during_a_pause(outbox: Outbox, sink: Sink) -> None:
    # No API secret: the store changes are refused before they are sent, three failures in a
    # row, which pause delivery while the events wait for the first connection to the sink.
    transport = Transport(API_KEY, None, api_url=sink.url, events_url=sink.events_url, timeout=(2.0, 2.0))
    sink.fallback("POST", "/events/", Answer(201))
    worker = DeliveryWorker(outbox, transport, backoff_base=6.0, backoff_max=6.0, idle_interval=0.05)
    for seq in range(3):
        outbox.put("event", "POST", "", event_body(seq, f"v{seq}"), f"v{seq}")
    for number in range(3):
        outbox.put("rest", "POST", "/products", b'{"product_id": "p%d"}' % number, f"products:p{number}")
    try:
        worker.ensure_running()
        wait_for(lambda: len(sink.received("POST", "/events/")) >= 1, seconds=10)
        time.sleep(1.0)  # the pause lasts 3 to 6 s
        # Only the event that opened the connection went out; the two that waited for it wait
        # out the pause in the outbox.
        assert len(sink.received("POST", "/events/")) == 1
        assert outbox.stats().pending == 5
    finally:
        worker.stop()
        transport.close()


def test_a_flush_through_a_proxy_ends_by_its_deadline(
    outbox: Outbox, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sink plays the proxy, and answers 10 s late: the flush's end waits no longer than its
    # deadline for the request's answer (at exit, DATACUE_SHUTDOWN_GRACE).
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{sink.port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    sink.fallback("PUT", "http://datacue.invalid/v1/users/u1", Answer(200, delay=10.0))
    outbox.put("rest", "PUT", "/users/u1", b'{"first_name": "Ana"}', "user:u1")
    transport = Transport(
        API_KEY, API_SECRET, api_url="http://datacue.invalid/v1", events_url="http://x.invalid/",
        timeout=(2.0, 20.0),
    )
    worker = DeliveryWorker(outbox, transport)
    try:
        started = time.monotonic()
        assert worker.flush(1.0) is False
        assert time.monotonic() - started < 3.0
    finally:
        worker.stop()
        sink.close()  # releases the held answer
        transport.close()
