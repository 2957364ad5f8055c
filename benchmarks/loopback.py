"""Servers the benchmarks run in processes of their own on loopback: a sink that answers at a distance.

The sink answers every POST (and PUT, DELETE) ``200`` with ``{}`` after ``delay`` seconds, as a
server that far away would, and counts them; ``GET /count`` says how many it received and when
(``time.monotonic()``, one clock for every process of the host) it answered the first of them
since ``GET /reset``. A bare asyncio Protocol, so that the sink is not what is measured; many
connections and many requests at once, answered each in its own time.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

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


@contextmanager
def serving(source: str, *args: str) -> Iterator[int]:
    """Run a server script in its own process; yields the port it printed."""
    process = subprocess.Popen(
        [sys.executable, "-c", source, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
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
