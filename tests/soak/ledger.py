"""What DataCue received, request by request: a ledger kept beside the emulator, for the soak's counts.

The emulator's own journal keeps the newest 10,000 exchanges, fewer than a soak
makes. The ledger is a WSGI middleware around the emulator that writes one row
per events or REST request: the markers in its body (``ev-000123``,
``ch-000123``), the status the emulator answered, how long it took (so that an
answer given after the shop's read timeout, which the shop never saw, can be told
apart from one the shop saw) and the client's TCP port (which shop process sent it).
"""

from __future__ import annotations

import io
import re
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: A soak marker: ``ev-`` for an event, ``ch-`` for a store change, and a sequence number.
MARKER = re.compile(rb"\b(?:ev|ch)-\d{6}\b")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS receipts (
    seq INTEGER PRIMARY KEY,
    family TEXT NOT NULL,
    method TEXT NOT NULL,
    path TEXT NOT NULL,
    status INTEGER,
    markers TEXT NOT NULL,
    started REAL NOT NULL,
    seconds REAL NOT NULL,
    client_port INTEGER
)
"""

StartResponse = Callable[..., Any]


def event_marker(seq: int) -> str:
    return f"ev-{seq:06d}"


def change_marker(seq: int) -> str:
    return f"ch-{seq:06d}"


class LedgerMiddleware:
    """Wraps the emulator's WSGI app; records every request on ``/``, ``/events`` and ``/v1/...``."""

    def __init__(self, app: Callable[[dict[str, Any], StartResponse], Iterable[bytes]], path: Path) -> None:
        self.app = app
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "")
        if path.startswith("/v1/"):
            family = "rest"
        elif path in ("/", "/events") and method == "POST":
            family = "events"
        else:
            return self.app(environ, start_response)
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)
        markers = " ".join(sorted({m.decode() for m in MARKER.findall(body)}))
        answered: dict[str, int] = {}

        def capture(status: str, headers: Any, exc_info: Any = None) -> Any:
            answered["status"] = int(status.split()[0])
            return start_response(status, headers, exc_info)

        port = int(environ.get("REMOTE_PORT") or 0) or None
        started = time.time()
        began = time.monotonic()
        status: int | None = None
        try:
            # Flask has run the whole request (and any injected latency) when this returns.
            answer = self.app(environ, capture)
            status = answered.get("status")
            if status == 500:
                # An injected drop shuts the socket and answers an empty 500 that nobody reads;
                # an injected (or real) 500 has a JSON body.
                content = b"".join(answer)
                close = getattr(answer, "close", None)
                if close is not None:
                    close()
                if not content:
                    status = None
                answer = [content]
            return answer
        finally:
            seconds = time.monotonic() - began
            with self._lock:
                self._db.execute(
                    "INSERT INTO receipts (family, method, path, status, markers, started, seconds,"
                    " client_port) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (family, method, path, status, markers, started, seconds, port),
                )


@dataclass(frozen=True)
class Receipt:
    family: str
    method: str
    path: str
    status: int | None  # None: the connection was dropped without an answer
    markers: tuple[str, ...]
    started: float
    seconds: float
    client_port: int | None = None

    @property
    def accepted(self) -> bool:
        """DataCue took it: a 2xx answer (the request changed DataCue's state)."""
        return self.status is not None and 200 <= self.status < 300


def read_ledger(path: Path) -> list[Receipt]:
    """Every receipt, in the order the emulator finished them."""
    connection = sqlite3.connect(path)
    try:
        rows = connection.execute(
            "SELECT family, method, path, status, markers, started, seconds, client_port"
            " FROM receipts ORDER BY seq"
        ).fetchall()
    finally:
        connection.close()
    return [
        Receipt(family, method, path_, status, tuple(markers.split()), started, seconds, port)
        for family, method, path_, status, markers, started, seconds, port in rows
    ]
