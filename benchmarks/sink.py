"""A small real DataCue stand-in on loopback: records every request and checks its signature.

``benchmarks/bench_import.py`` and the tests (REST client, importer, delivery) talk
to it over real sockets; it lives here because benchmarks import no test. It
verifies each request with :mod:`cue_front.signing` exactly as DataCue does (401
when the signature does not match the body bytes), and it can be scripted: a queue
of answers per ``(method, path)`` with statuses, headers, bodies and delays, before
falling back to DataCue's documented answers (201 for a create, 204 for an update or
delete, 207 with a per-item status for a batch delete of orders, the overview counts
and ids).
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cue_front import signing

API_KEY = "sink-key"
API_SECRET = "sink-secret-never-shown"


@dataclass
class Answer:
    """One scripted answer. ``delay`` holds the reply back (released early when the sink closes)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0

    def encoded(self) -> bytes:
        if self.body is None:
            return b""
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Recorded:
    """One request as it reached the sink."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    signature_ok: bool
    received_at: float
    #: When its answer began to be written (monotonic, as ``received_at``); 0.0 until then.
    answered_at: float = 0.0

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _Server(ThreadingHTTPServer):
    # Many clients connect at once (a delivery worker keeps up to 64 requests in flight):
    # the default backlog of 5 would drop their SYNs, and each retries a second later.
    request_queue_size = 256


class Sink:
    """A threaded HTTP server on 127.0.0.1 playing DataCue's REST and events APIs.

    ``url`` is the REST base (``http://127.0.0.1:<port>/v1``), ``events_url`` the
    events endpoint. ``keep_bodies=False`` and ``count_key`` keep memory flat for
    benchmarks: the sink then only counts the items it receives.
    """

    def __init__(
        self,
        api_key: str = API_KEY,
        api_secret: str = API_SECRET,
        *,
        keep_bodies: bool = True,
        count_key: bytes = b"",
    ) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.keep_bodies = keep_bodies
        self.count_key = count_key
        self.requests: list[Recorded] = []
        self.items_received = 0
        self.overview_ids: dict[str, list[str]] = defaultdict(list)
        self.overview_summary: dict[str, Any] | None = None
        self._scripts: dict[tuple[str, str], deque[Answer]] = defaultdict(deque)
        self._fallbacks: dict[tuple[str, str], Answer] = {}
        self._choosers: dict[tuple[str, str], Callable[[bytes], Answer]] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    # -- lifetime -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def events_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/events/"

    def start(self) -> Sink:
        self._thread.start()
        return self

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- scripting ----------------------------------------------------------------------

    def script(self, method: str, path: str, *answers: Answer) -> None:
        """Answer the next requests to ``method path`` with ``answers``, in order."""
        with self._lock:
            self._scripts[(method, path)].extend(answers)

    def fallback(self, method: str, path: str, answer: Answer | None) -> None:
        """Answer every request to ``method path`` not covered by a script with ``answer``."""
        with self._lock:
            if answer is None:
                self._fallbacks.pop((method, path), None)
            else:
                self._fallbacks[(method, path)] = answer

    def choose(self, method: str, path: str, chooser: Callable[[bytes], Answer] | None) -> None:
        """Answer each request to ``method path`` with ``chooser(body)``: by what it carries, not
        by when it arrives (a script's order is the order the server's threads reach it)."""
        with self._lock:
            if chooser is None:
                self._choosers.pop((method, path), None)
            else:
                self._choosers[(method, path)] = chooser

    # -- what arrived -------------------------------------------------------------------

    def received(self, method: str | None = None, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def batch_items(self, path: str, method: str = "POST") -> list[Any]:
        """Every item of every ``batch`` body sent to ``method path``, in arrival order."""
        items: list[Any] = []
        for request in self.received(method, path):
            items.extend(request.json()["batch"])
        return items

    # -- the server ---------------------------------------------------------------------

    def _answer_for(self, method: str, path: str, body: bytes, signature_ok: bool) -> Answer:
        if not signature_ok:
            return Answer(401, {"error": "Unauthorized: signature does not match"})
        with self._lock:
            chooser = self._choosers.get((method, path))
            queued = self._scripts.get((method, path))
            if chooser is None and queued:
                return queued.popleft()
            fallback = self._fallbacks.get((method, path))
        if chooser is not None:
            return chooser(body)
        if fallback is not None:
            return fallback
        return self._documented_answer(method, path, body)

    def _documented_answer(self, method: str, path: str, body: bytes) -> Answer:
        if path.startswith("/events"):
            return Answer(201)
        if method == "GET" and path == "/v1/overview":
            summary = self.overview_summary or {
                "products": {"products": len(self.overview_ids["products"]), "variants": 0},
                "orders": len(self.overview_ids["orders"]),
                "users": len(self.overview_ids["users"]),
            }
            return Answer(200, summary)
        if method == "GET" and path.startswith("/v1/overview/"):
            ids = self.overview_ids[path.rsplit("/", 1)[1]]
            return Answer(200, {"ids": ids, "count": len(ids)})
        if method == "DELETE" and path == "/v1/batch/orders":
            batch = json.loads(body)["batch"]
            return Answer(207, {"status": [{"order_id": o["order_id"], "status": "OK"} for o in batch]})
        if method == "POST":
            return Answer(201)
        if method in ("PUT", "DELETE"):
            return Answer(204)
        return Answer(404, {"error": "no such endpoint"})

    def _verify(self, path: str, authorization: str | None, body: bytes) -> bool:
        credentials = signing.parse_basic(authorization)
        if credentials is None or credentials.username != self.api_key:
            return False
        if path.startswith("/events"):
            return credentials.password == ""
        return signing.verify(body, self.api_secret, credentials.password)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                path = self.path.split("?", 1)[0]
                signature_ok = sink._verify(path, self.headers.get("Authorization"), body)
                recorded = Recorded(
                    self.command,
                    path,
                    dict(self.headers.items()),
                    body if sink.keep_bodies else b"",
                    signature_ok,
                    time.monotonic(),
                )
                with sink._lock:
                    sink.requests.append(recorded)
                    if sink.count_key:
                        sink.items_received += body.count(sink.count_key)
                answer = sink._answer_for(self.command, path, body, signature_ok)
                if answer.delay:
                    sink._closing.wait(answer.delay)
                payload = answer.encoded()
                # Taken before the answer is written: the client cannot have it any earlier.
                recorded.answered_at = time.monotonic()
                try:
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        self.send_header(name, value)
                    if payload:
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:  # the client went away (a killed import)
                    self.close_connection = True

            do_GET = do_POST = do_PUT = do_DELETE = _handle

        return Handler


def peak_in_flight(requests: Iterable[Recorded]) -> int:
    """The most of ``requests`` the sink held at once, between receiving each and answering it."""
    moments = []
    for request in requests:
        moments.append((request.received_at, 1))
        moments.append((request.answered_at, -1))
    peak = held = 0
    for _, change in sorted(moments):  # an answer (-1) sorts before a request received that instant
        held += change
        peak = max(peak, held)
    return peak


def answers(status: int, count: int, **kwargs: Any) -> Iterable[Answer]:
    """``count`` identical answers, for scripting a run of failures."""
    return [Answer(status, **kwargs) for _ in range(count)]
