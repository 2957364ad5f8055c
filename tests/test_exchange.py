"""The delivery loop's HTTP/1.1: answers framed every way a server may frame them, read from raw
loopback servers, and the framing itself on bytes cut anywhere."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.sink import API_KEY, API_SECRET
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.outbox.exchange import ProtocolError, parse_answer
from cue_front.transport import Transport
from tests.support.outbox_process import event_body
from tests.support.waiting import wait_for

CHUNKED = (
    b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n"
    b'7\r\n{"error\r\nf;ext=1\r\n": "bad event"}\r\n0\r\nX-Trailer: 1\r\n\r\n'
)


@pytest.mark.parametrize(
    ("answer", "status", "body", "keep_alive"),
    [
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b"", True),
        (b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 201, b"ok", False),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", 200, b"ok", True),
        (b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n", 201, b"", True),
        (CHUNKED, 400, b'{"error": "bad event"}', True),
    ],
)
def test_answers_are_framed_whole_and_only_when_whole(
    answer: bytes, status: int, body: bytes, keep_alive: bool
) -> None:
    for cut in range(len(answer)):  # every prefix is incomplete
        assert parse_answer(answer[:cut], closed=False) is None
    parsed = parse_answer(answer + b"HTTP/1.1 204", closed=False)  # and what follows is not taken

    assert parsed is not None
    (got_status, headers, got_body, got_keep_alive), used = parsed
    assert (got_status, got_body, got_keep_alive, used) == (status, body, keep_alive, len(answer))
    assert all(name == name.lower() for name in headers)


def test_an_answer_without_a_length_ends_with_the_connection() -> None:
    answer = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it"
    assert parse_answer(answer, closed=False) is None
    parsed = parse_answer(answer, closed=True)
    assert parsed is not None and parsed[0].body == b"all of it" and parsed[0].keep_alive is False


@pytest.mark.parametrize(
    "answer",
    [
        b"SMTP ready\r\n\r\n",
        b"HTTP/1.1 2xx Fine\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_what_is_not_http_is_said_to_be_so(answer: bytes) -> None:
    with pytest.raises(ProtocolError):
        parse_answer(answer, closed=False)


def test_an_endless_head_is_refused() -> None:
    with pytest.raises(ProtocolError, match="too long"):
        parse_answer(b"HTTP/1.1 200 OK\r\n" + b"X: y\r\n" * 20_000, closed=False)


# -- from a raw server ---------------------------------------------------------------------------


@contextlib.contextmanager
def raw_server(answers: list[bytes], idle_close: float | None = None) -> Iterator[str]:
    """A server answering its n-th request with ``answers[n]`` as raw bytes, then closing that
    connection when the answer says so (or after ``idle_close`` seconds without a request, as
    servers close idle kept-alive connections); yields its events URL."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    closing = threading.Event()
    served = iter(answers)

    def serve(connection: socket.socket) -> None:
        with connection, contextlib.suppress(OSError):
            buffer = b""
            while not closing.is_set():
                if idle_close is not None and not buffer:
                    connection.settimeout(idle_close)
                while b"\r\n\r\n" not in buffer:
                    chunk = connection.recv(65536)
                    connection.settimeout(5)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                while len(buffer) < length:
                    buffer += connection.recv(65536)
                buffer = buffer[length:]
                answer = next(served)
                connection.sendall(answer)
                framed = b"Content-Length" in answer or b"chunked" in answer
                if b"Connection: close" in answer or not framed:
                    return

    def accept() -> None:
        while not closing.is_set():
            try:
                connection, _ = listener.accept()
            except TimeoutError:
                continue
            connection.settimeout(5)
            threading.Thread(target=serve, args=(connection,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/events/"
    finally:
        closing.set()
        thread.join(5)
        listener.close()


def test_every_framing_is_read_and_settles_its_row(tmp_path: Path) -> None:
    answers = [
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\n\r\nended by the close",
        CHUNKED,
    ]
    with raw_server(answers) as events_url, Outbox(tmp_path / "outbox.sqlite3") as outbox:
        for seq in range(5):
            outbox.put("event", "POST", "", event_body(seq, "v1"), "v1")  # one key: one at a time
        transport = Transport(API_KEY, API_SECRET, api_url=events_url + "v1", events_url=events_url)
        worker = DeliveryWorker(outbox, transport, backoff_base=60)
        try:
            assert worker.flush(10) is True
        finally:
            worker.stop()
            transport.close()
        (letter,) = outbox.dead_letters()
        assert (letter.status, letter.response_body) == (400, '{"error": "bad event"}')
        assert outbox.stats().delivered == 4


def test_a_kept_alive_connection_the_server_closed_while_idle_is_not_used_again(tmp_path: Path) -> None:
    answer = b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    with raw_server([answer] * 4, idle_close=0.1) as events_url, Outbox(tmp_path / "o.sqlite3") as outbox:
        transport = Transport(API_KEY, API_SECRET, api_url=events_url + "v1", events_url=events_url)
        worker = DeliveryWorker(outbox, transport, backoff_base=60, idle_interval=0.05)
        try:
            worker.ensure_running()
            for seq in range(2):
                outbox.put("event", "POST", "", event_body(seq, "v1"), "v1")
                worker.notify()
                wait_for(lambda: outbox.unfinished() == 0)
                time.sleep(0.5)  # the server closes the idle connection meanwhile
        finally:
            worker.stop()
            transport.close()
        stats = outbox.stats()
        # Sent on a new connection, at once: not on the closed one, failed, and retried a minute later.
        assert (stats.delivered, stats.last_error) == (2, None)
