"""A real Redis for the tests and the benchmarks: Debian's ``redis-server`` on a free loopback port, in
a folder of its own.

It needs no Redis client library (it speaks the few commands it uses itself), so it can start
a server for tests of what happens without one. ``restart()`` keeps the port and the data
folder, for outage and append-only-file tests; ``close()`` stops it for good and removes the folder.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from benchmarks.loopback import free_port

#: Where Debian's package installs the server.
REDIS_SERVER = "/usr/bin/redis-server"

#: Seconds a starting server has to answer PING.
_START_SECONDS = 10.0


def redis_server_path() -> str | None:
    """The ``redis-server`` to run: Debian's, else one on PATH; ``None`` when there is none."""
    if Path(REDIS_SERVER).exists():
        return REDIS_SERVER
    return shutil.which("redis-server")


class RedisServer:
    """One ``redis-server`` process on ``127.0.0.1``; start it with :meth:`start` or ``with``.

    ``append_only`` turns on the append-only file with ``appendfsync always`` (every write on
    disk before it is answered: the setting that loses nothing when the server is killed).
    Nothing is ever saved in an RDB snapshot (``--save ''``).
    """

    def __init__(self, *, append_only: bool = False) -> None:
        executable = redis_server_path()
        if executable is None:
            raise FileNotFoundError(f"redis-server is not installed (looked for {REDIS_SERVER} and PATH)")
        self.executable = executable
        self.append_only = append_only
        self.directory = Path(tempfile.mkdtemp(prefix="cue-front-redis-"))
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    # -- where it is --------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return self.url_for(0)

    def url_for(self, db: int) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    @property
    def unix_socket(self) -> Path:
        """The server's Unix socket (``unix://<path>``), beside its data."""
        return self.directory / "redis.sock"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    # -- its life -----------------------------------------------------------------------------

    def start(self) -> RedisServer:
        """Start the server (on a free port the first time, the same port after) and wait for PING."""
        restarting = bool(self.port)  # a restart keeps its port: clients know it
        for _attempt in range(5):
            if not self.port:
                self.port = free_port()
            self._process = subprocess.Popen(
                self._arguments(),
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            if self._wait_until_it_answers():
                return self
            self._reap()
            if restarting:
                break
            self.port = 0  # someone took the port between our choice and the server's bind
        raise RuntimeError(f"redis-server did not start; its log: {self.log()}")

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server: SIGTERM (it finishes its writes), or with ``kill`` SIGKILL (a crash)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        self._reap()

    def restart(self, *, kill: bool = False) -> None:
        """Stop the server and start it again on the same port, with the same data folder."""
        self.stop(kill=kill)
        self.start()

    def close(self) -> None:
        """Stop the server for good and remove its folder."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    # -- talking to it ------------------------------------------------------------------------

    def command(self, *words: str) -> bytes:
        """Send one command and return the first line of the reply (``+OK``, ``+PONG``, ``-ERR ...``)."""
        request = f"*{len(words)}\r\n".encode() + b"".join(
            f"${len(word.encode())}\r\n{word}\r\n".encode() for word in words
        )
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as connection:
            connection.sendall(request)
            reply = b""
            while not reply.endswith(b"\r\n"):
                chunk = connection.recv(4096)
                if not chunk:
                    break
                reply += chunk
        return reply.split(b"\r\n", 1)[0]

    def flush(self) -> None:
        """Empty every database."""
        if self.command("FLUSHALL") != b"+OK":
            raise RuntimeError("FLUSHALL failed")

    def log(self) -> str:
        path = self.directory / "redis.log"
        return path.read_text("utf-8", "replace")[-2000:] if path.exists() else "(no log)"

    def _arguments(self) -> list[str]:
        arguments = [
            self.executable,
            "--port", str(self.port),
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--daemonize", "no",
            "--dir", str(self.directory),
            "--logfile", str(self.directory / "redis.log"),
            "--unixsocket", str(self.unix_socket),
            "--unixsocketperm", "700",
            "--save", "",
        ]  # fmt: skip
        if self.append_only:
            arguments += ["--appendonly", "yes", "--appendfsync", "always"]
        return arguments

    def _wait_until_it_answers(self) -> bool:
        deadline = time.monotonic() + _START_SECONDS
        while time.monotonic() < deadline:
            if not self.running:
                return False
            try:
                if self.command("PING") == b"+PONG":
                    return True
            except OSError:
                pass  # not listening yet, or still loading its data (-LOADING)
            time.sleep(0.02)
        return False

    def _reap(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
