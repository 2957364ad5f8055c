"""Servers the benchmarks run in processes of their own on loopback: a sink that answers at a distance.

The sink answers every POST (and PUT, DELETE) ``200`` with ``{}`` after ``delay`` seconds, as a
server that far away would, and counts them; ``GET /count`` says how many it received and when
(``time.monotonic()``, one clock for every process of the host) it answered the first of them
since ``GET /reset``. A bare asyncio Protocol, so that the sink is not what is measured; many
connections and many requests at once, answered each in its own time.

Beside it: a delivery worker in a process of its own (:data:`WORKER_SOURCE`), a free port
(:func:`free_port`), and waiting with a deadline (:func:`wait_until`).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

#: The credentials every benchmark's shop and worker signs with (the sinks check none).
API_KEY = "bench-key"
API_SECRET = "bench-secret"

SINK_SOURCE = r"""
import asyncio, json, sys, time

delay = float(sys.argv[1])
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
received = 0
first_answer = None


class Sink(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""
        self.loop = asyncio.get_running_loop()

    def data_received(self, data):
        global received, first_answer
        buffer = self.buffer + data
        while True:
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop >= 0 else len(head)])
            if len(buffer) < end + 4 + length:
                break
            buffer = buffer[end + 4 + length :]
            if head.startswith(b"get /count"):
                text = json.dumps({"received": received, "first_answer": first_answer}).encode()
                self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(text), text))
            elif head.startswith(b"get /reset"):
                received, first_answer = 0, None
                self.transport.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                received += 1
                if delay:
                    self.loop.call_later(delay, self.answer)
                else:
                    self.answer()
        self.buffer = buffer

    def answer(self):
        global first_answer
        if first_answer is None:
            first_answer = time.monotonic()
        if not self.transport.is_closing():
            self.transport.write(ANSWER)


async def main():
    server = await asyncio.get_running_loop().create_server(Sink, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()

asyncio.run(main())
"""


#: A delivery worker process: opens its outbox (``redis://...``, with its key prefix, partitions and
#: the journal folder it forwards, if any; or a SQLite path), prints a line (``0``: it serves no
#: port), waits for the word go (a line on stdin, or its end: under :func:`serving` it starts at
#: once), and delivers until SIGTERM. Its arguments: :func:`worker_arguments`.
WORKER_SOURCE = r"""
import signal, sys
from cue_front.outbox import DeliveryWorker, Outbox
from cue_front.transport import Transport

where, events_url, api_key, api_secret, in_flight, idle_interval = sys.argv[1:7]
partitions, prefix, journal = int(sys.argv[7]), sys.argv[8], sys.argv[9] or None
if where.startswith("redis://"):
    from cue_front.outbox.redis import RedisOutbox
    from cue_front.redis_store import connect
    client = connect(where, timeout=2.0)
    outbox = RedisOutbox(client, prefix=prefix, partitions=partitions, journal=journal)
else:
    outbox = Outbox(where)
transport = Transport(api_key, api_secret, api_url=events_url + "v1", events_url=events_url)
worker = DeliveryWorker(outbox, transport, max_in_flight=int(in_flight), idle_interval=float(idle_interval))
signal.signal(signal.SIGTERM, lambda *_: worker.stop(0))
print(0, flush=True)
sys.stdin.readline()
worker.serve()
outbox.close()
"""


def worker_arguments(
    where: str | Path,
    events_url: str,
    *,
    in_flight: int | None = None,
    idle_interval: float = 0.05,
    partitions: int = 16,
    prefix: str = "",
    journal: str | Path = "",
) -> list[str]:
    """The command-line arguments of :data:`WORKER_SOURCE`: the outbox at ``where`` (a SQLite path or
    a ``redis://`` URL; ``partitions``, ``prefix`` and ``journal`` are for Redis), sending to
    ``events_url`` with :data:`API_KEY`, ``in_flight`` requests at once (the worker's default)."""
    if in_flight is None:  # imported here: the module itself needs nothing beyond the standard library
        from cue_front.outbox.worker import DEFAULT_IN_FLIGHT as in_flight
    return [str(where), events_url, API_KEY, API_SECRET, str(in_flight), str(idle_interval),
            str(partitions), prefix, str(journal)]  # fmt: skip


@contextmanager
def serving(source: str, *args: str) -> Iterator[int]:
    """Run a server script in its own process (no stdin); yields the port it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", source, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip():
            raise RuntimeError(f"the server did not start: {process.communicate(timeout=5)[1]}")
        yield int(line)
    finally:
        process.kill()
        process.communicate()


@contextmanager
def distant_sink(delay: float) -> Iterator[int]:
    """The sink, answering after ``delay`` seconds; yields its port."""
    with serving(SINK_SOURCE, str(delay)) as port:
        yield port


def sink_state(port: int, path: str = "/count") -> dict[str, Any]:
    """What the sink at ``port`` received (``/count``), or reset it (``/reset``)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request("GET", path)
        answer = connection.getresponse().read()
    finally:
        connection.close()
    return json.loads(answer) if answer else {}


def free_port() -> int:
    """A loopback port nothing listens on (free when asked: someone may take it after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until(
    condition: Callable[[], object], seconds: float, what: str | Callable[[], str], interval: float = 0.05
) -> None:
    """Return once ``condition()`` is true, asking every ``interval`` seconds; after ``seconds``,
    raise :class:`TimeoutError` saying ``what`` did not happen (a callable: asked only then)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise TimeoutError(f"{said} (waited {seconds:g} s)")
        time.sleep(interval)
