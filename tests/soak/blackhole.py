"""A switch in front of DataCue: forward to it, or black-hole it (connections accepted, never answered).

``python -m tests.soak.blackhole --target 127.0.0.1:PORT`` prints ``ready PORT``
and then obeys lines on stdin: ``blackhole``, ``forward`` (each answered ``ok
MODE`` once in force) and ``quit``; it exits when stdin closes. In black-hole
mode every new connection is accepted, whatever it sends is read and thrown
away, and nothing is ever answered: DataCue as a hung load balancer shows it.
Switching back to ``forward`` closes the held connections, as a restarted
balancer would.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys


class Switch:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.mode = "forward"
        self.held: set[asyncio.StreamWriter] = set()
        self.accepted = {"forward": 0, "blackhole": 0}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        mode = self.mode
        self.accepted[mode] += 1
        if mode == "blackhole":
            self.held.add(writer)
            try:
                while await reader.read(65536):
                    pass  # swallowed; never answered
            except (ConnectionError, OSError):
                pass
            finally:
                self.held.discard(writer)
                writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()

    def switch(self, mode: str) -> None:
        self.mode = mode
        if mode == "forward":
            for writer in list(self.held):
                writer.close()
            self.held.clear()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="host:port of the real DataCue (the emulator)")
    options = parser.parse_args()
    host, _, port = options.target.rpartition(":")
    switch = Switch(host, int(port))
    server = await asyncio.start_server(switch.handle, "127.0.0.1", 0, backlog=512)
    print(f"ready {server.sockets[0].getsockname()[1]}", flush=True)
    loop = asyncio.get_running_loop()
    stdin = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(stdin), sys.stdin)
    while line := (await stdin.readline()).decode().strip():
        if line == "quit":
            break
        if line in ("forward", "blackhole"):
            switch.switch(line)
            print(f"ok {line} {switch.accepted['forward']} {switch.accepted['blackhole']}", flush=True)
        else:
            print(f"error unknown command {line!r}", flush=True)
    server.close()
    switch.switch("forward")


if __name__ == "__main__":
    asyncio.run(main())
