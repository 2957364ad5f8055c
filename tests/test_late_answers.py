"""Answers that come after the read timeout, as the delivery worker hears them.

A row not answered within the read timeout keeps its slot and is waited for (docs/delivery.md,
"Late answers") instead of being sent again. These tests drive the worker over
real loopback sockets: the scriptable sink of ``benchmarks/sink.py`` (also behind TLS)
and a raw HTTP server of their own, whose answer to each event (late, a head whose
body never comes, none) is chosen by the event's number and how many copies of it
came before. What they check is what DataCue would see: every row delivered, none
sent more often than its answers (or their absence) make necessary.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from benchmarks.sink import API_KEY, API_SECRET, Answer, Sink
from cue_front.outbox import DeliveryWorker, Outbox, OutboxStats
from cue_front.transport import Transport
from tests.support.outbox_process import event_body
from tests.support.waiting import wait_for


def put_events(outbox: Outbox, count: int) -> None:
    """Events numbered 0 to ``count - 1``, each from a visitor of its own (so one batch takes them all)."""
    for seq in range(count):
        outbox.put("event", "POST", "", event_body(seq, f"visitor-{seq}"), f"visitor-{seq}")


def worker_for(
    outbox: Outbox, events_url: str, timeout: tuple[float, float], **options: Any
) -> DeliveryWorker:
    transport = Transport(
        API_KEY,
        API_SECRET,
        api_url=events_url.replace("/events/", "/v1"),
        events_url=events_url,
        timeout=timeout,
    )
    settings: dict[str, Any] = {"backoff_base": 0.01, "backoff_max": 0.02, "idle_interval": 0.05}
    settings.update(options)
    return DeliveryWorker(outbox, transport, **settings)


def stop(worker: DeliveryWorker) -> None:
    worker.stop()
    worker.transport.close()


# -- a server that answers as told -------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """How to answer one event: after ``delay`` seconds, ``kind``: ``answer`` (a whole 201),
    ``head`` (the head of a 201 whose body never comes) or ``silence`` (nothing at all)."""

    kind: str = "answer"
    delay: float = 0.0


class ScriptedServer:
    """A raw HTTP/1.1 events endpoint on 127.0.0.1; ``plan(seq, copy)`` says how to answer each event.

    ``copy`` is 1 for the first request carrying that event, 2 for the second, and so on.
    """

    def __init__(self, plan: Callable[[int, int], Reply]) -> None:
        self.plan = plan
        self._arrivals: list[int] = []
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}/events/"

    def copies(self, seq: int) -> int:
        """How many requests carried event ``seq``."""
        with self._lock:
            return self._arrivals.count(seq)

    def close(self) -> None:
        self._closing.set()
        for thread in list(self._threads):
            thread.join(10)
        self._listener.close()

    def __enter__(self) -> ScriptedServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _accept(self) -> None:
        while not self._closing.is_set():
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._serve, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _read(self, connection: socket.socket, buffer: bytes, until: bytes | int) -> bytes | None:
        """``buffer`` and more, until it holds ``until`` (bytes) or that many bytes; None at a hang-up."""
        while (until not in buffer) if isinstance(until, bytes) else (len(buffer) < until):
            try:
                chunk = connection.recv(65536)
            except TimeoutError:
                if self._closing.is_set():
                    return None
                continue
            if not chunk:
                return None
            buffer += chunk
        return buffer

    def _serve(self, connection: socket.socket) -> None:
        connection.settimeout(0.05)
        buffer = b""
        # The client hanging up (on a request it gave up on) is no error of the server's.
        with connection, contextlib.suppress(OSError):
            while True:
                read = self._read(connection, buffer, b"\r\n\r\n")
                if read is None:
                    return
                head, _, buffer = read.partition(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    ),
                    0,
                )
                read = self._read(connection, buffer, length)
                if read is None:
                    return
                body, buffer = read[:length], read[length:]
                seq = json.loads(body)["user"]["profile"]["seq"]
                with self._lock:
                    self._arrivals.append(seq)
                    copy = self._arrivals.count(seq)
                reply = self.plan(seq, copy)
                if self._closing.wait(reply.delay):
                    return
                if reply.kind == "silence":
                    self._closing.wait()
                    return
                if reply.kind == "head":
                    connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 10\r\n\r\n")
                    self._closing.wait()
                    return
                connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")


def deliver_through(
    directory: Path, plan: Callable[[int, int], Reply], *, events: int, lease_seconds: float
) -> tuple[list[int], OutboxStats]:
    """Deliver ``events`` rows through a ScriptedServer answering by ``plan`` (read timeout 2 s),
    with the worker's own thread; the copies of each event the server received, and the stats."""
    with (
        ScriptedServer(plan) as server,
        Outbox(directory / "outbox.sqlite3", lease_seconds=lease_seconds) as outbox,
    ):
        put_events(outbox, events)
        worker = worker_for(outbox, server.events_url, timeout=(0.5, 2.0))
        try:
            worker.ensure_running()
            worker.notify()
            wait_for(lambda: outbox.unfinished() == 0)
        finally:
            stop(worker)
        return [server.copies(seq) for seq in range(events)], outbox.stats()


# -- tests -------------------------------------------------------------------------------------


def test_a_late_answer_over_tls_is_listened_for_not_mistaken_for_a_session_ticket(
    outbox: Outbox, tls_sink: tuple[Sink, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    sink, cert = tls_sink
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(cert))
    # A new TLS 1.3 connection turns readable for the server's session tickets before any answer.
    sink.script("POST", "/events/", Answer(201, delay=1.0))
    put_events(outbox, 1)
    worker = worker_for(outbox, f"https://localhost:{sink.port}/events/", timeout=(2.0, 0.3))
    try:
        assert worker.run_once() == 1
        assert worker.flush(5) is True
    finally:
        stop(worker)

    assert len(sink.received("POST", "/events/")) == 1  # listened for, not sent again
    stats = outbox.stats()
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 1, 0)


def test_an_answer_stalled_after_its_head_keeps_no_other_answer_waiting_past_its_lease(
    tmp_path: Path,
) -> None:
    # Two rows of one batch, both unanswered within the 2 s read timeout, both listened for
    # until 5 s (a second before their 6 s lease ends). Row 0's head comes at 4.5 s and its
    # body never does; row 1's whole answer comes at 4.7 s. Copies sent again are answered at once.
    def plan(seq: int, copy: int) -> Reply:
        if copy > 1:
            return Reply()
        return Reply("head", delay=4.5) if seq == 0 else Reply("answer", delay=2.7)

    copies, stats = deliver_through(tmp_path, plan, events=2, lease_seconds=6.0)

    # Row 1's answer was read in its time, not left unread while row 0's body was awaited
    # until the lease ran out and the row was sent again.
    assert copies[1] == 1
    assert copies[0] == 2  # its answer never came whole: sent again, as it must be
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 2, 0)


#: Files held open so that the worker's sockets are numbered past 1023.
FILLER_FILES = 1100


def test_rows_are_delivered_once_in_a_process_with_more_than_a_thousand_files_open(
    outbox: Outbox,
) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    allowed = 2048 if hard == resource.RLIM_INFINITY else min(hard, 2048)
    if allowed < FILLER_FILES + 100:  # a hard limit this low is rare; at 1,024 or less the bug cannot arise
        pytest.skip(
            f"this system lets a process open only {allowed} files; the test needs"
            f" {FILLER_FILES + 100} to push its sockets past descriptor 1023"
        )
    if soft < allowed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (allowed, hard))
    # Event 0 is answered after the read timeout: listened for. The others at once.
    with ScriptedServer(lambda seq, copy: Reply(delay=0.5 if seq == 0 and copy == 1 else 0.0)) as server:
        put_events(outbox, 3)
        worker = worker_for(outbox, server.events_url, timeout=(2.0, 0.2))
        # A busy process: its sockets are numbered past 1023, beyond what select() can watch.
        files = [os.open(os.devnull, os.O_RDONLY) for _ in range(FILLER_FILES)]
        try:
            assert worker.run_once() == 3
            assert worker.flush(5) is True
        finally:
            stop(worker)
            for descriptor in files:
                os.close(descriptor)
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        assert [server.copies(seq) for seq in range(3)] == [1, 1, 1]
        stats = outbox.stats()
        assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 3, 0)


def test_an_answer_read_after_its_lease_ran_out_does_not_give_back_the_copy_sent_since(
    tmp_path: Path,
) -> None:
    # The first copy's head comes at 3.8 s, a little before the listener gives up (4 s, a
    # second before the 5 s lease ends), and its body never does: the listener waits for it
    # until 5.8 s (the 2 s read timeout). Meanwhile the lease runs out and the same worker's
    # thread sends the row again; that copy is answered 2.5 s later, after its read timeout.
    def plan(seq: int, copy: int) -> Reply:
        return {1: Reply("head", delay=3.8), 2: Reply("answer", delay=2.5)}.get(copy, Reply())

    copies, stats = deliver_through(tmp_path, plan, events=1, lease_seconds=5.0)

    # The first copy's failure, recorded after its lease ended, did not hand back the row
    # while its second copy was in flight: no third copy.
    assert copies[0] == 2
    assert (stats.pending, stats.in_flight, stats.delivered, stats.dead) == (0, 0, 1, 0)
