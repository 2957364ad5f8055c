"""Serving the emulator: on a loopback port in a thread (tests, the demo), or in the foreground.

``run_emulator()`` starts a threaded werkzeug server on a free port and yields
a :class:`RunningEmulator`, a handle with the URLs and credentials a shop
needs and direct access to what the emulator received.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import requests
from flask import Flask
from requests import Response as HTTPResponse
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from ..signing import events_authorization, rest_authorization
from .app import create_emulator
from .exchange import EXTENSION_KEY
from .faults import FaultPlan
from .state import EmulatorState

__all__ = ["RunningEmulator", "run_emulator", "serve"]


class QuietRequestHandler(WSGIRequestHandler):
    """No access log line per request (tests and benchmarks make thousands)."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def serve(app: Flask, host: str, port: int, *, quiet: bool = False) -> BaseWSGIServer:
    """A threaded server for ``app``, bound but not yet serving; port 0 picks a free one."""
    handler = QuietRequestHandler if quiet else WSGIRequestHandler
    return make_server(host, port, app, threaded=True, request_handler=handler)


class RunningEmulator:
    """An emulator being served: where it is, and what it received."""

    def __init__(self, app: Flask, server: BaseWSGIServer) -> None:
        self.app = app
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="cue-front-emulator", daemon=True
        )

    @property
    def state(self) -> EmulatorState:
        state: EmulatorState = self.app.extensions[EXTENSION_KEY]
        return state

    @property
    def port(self) -> int:
        return int(self._server.port)

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``: the debugger page, and the events API with a slash."""
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def api_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def events_url(self) -> str:
        return f"{self.url}/"

    @property
    def api_key(self) -> str:
        return self.state.api_key

    @property
    def api_secret(self) -> str:
        return self.state.api_secret

    @property
    def config(self) -> dict[str, str]:
        """What a shop puts in its ``app.config`` to talk to this emulator."""
        return {
            "DATACUE_API_KEY": self.api_key,
            "DATACUE_API_SECRET": self.api_secret,
            "DATACUE_API_URL": self.api_url,
            "DATACUE_EVENTS_URL": self.events_url,
        }

    def reset(self) -> None:
        """Forget everything, as ``POST /_emulator/reset``."""
        self.state.reset()

    def events(self, user: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """Events received, newest first, as ``GET /_emulator/events``.

        ``user`` matches the ``user_id`` or ``anonymous_id`` sent; ``type`` matches the event
        type (``"cart"``) or type and subtype (``"pageview.home"``).
        """
        return self.state.journal_items("event", user=user, type=type)

    def requests(self, user: str | None = None, type: str | None = None) -> list[dict[str, Any]]:
        """REST requests received, newest first, as ``GET /_emulator/requests``.

        ``type`` matches the resource (``"orders"``) or resource and action (``"orders.create"``).
        """
        return self.state.journal_items("request", user=user, type=type)

    def set_faults(self, **spec: Any) -> dict[str, Any]:
        """Replace the fault plan, as ``POST /_emulator/faults``; no arguments: no faults."""
        plan = FaultPlan.from_json(spec)
        self.state.set_faults(plan)
        return plan.as_json()

    def set_banners(self, banners: list[dict[str, Any]]) -> None:
        """Replace the banners, as ``PUT /_emulator/banners``."""
        from .banners import read_banners

        self.state.set_banners(read_banners({"banners": banners}))

    def overview(self) -> dict[str, int]:
        """Counts of what was received: products, variants, categories, users, orders."""
        return self.state.counts()

    def rest(self, method: str, path: str, body: Any = None, *, timeout: float = 10) -> HTTPResponse:
        """A REST call signed as DataCue's samples sign it; ``path`` is under ``/v1``."""
        data = b"" if body is None else json.dumps(body).encode("utf-8")
        headers = {"Authorization": rest_authorization(self.api_key, self.api_secret, data)}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return requests.request(method, self.api_url + path, data=data, headers=headers, timeout=timeout)

    def send_event(
        self,
        event: dict[str, Any],
        *,
        user_id: str | None = None,
        anonymous_id: str | None = None,
        timeout: float = 10,
        **envelope: Any,
    ) -> HTTPResponse:
        """Post an event envelope to the events API, as a browser would (key, no password)."""
        user = {key: value for key, value in (("user_id", user_id), ("anonymous_id", anonymous_id)) if value}
        headers = {"Authorization": events_authorization(self.api_key)}
        return requests.post(
            self.events_url,
            json={"user": user, "event": event, **envelope},
            headers=headers,
            timeout=timeout,
        )

    def start(self) -> RunningEmulator:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


@contextmanager
def run_emulator(
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    quiet: bool = True,
    allow_hosts: Iterable[str] = (),
    **create_emulator_kwargs: Any,
) -> Iterator[RunningEmulator]:
    """Serve a new emulator in a thread for the duration of the block.

    ``allow_hosts`` and the other keyword arguments go to :func:`create_emulator`
    (``api_key``, ``api_secret``, ``db_path``, ``faults``, ``banners``).
    """
    app = create_emulator(allow_hosts=allow_hosts, **create_emulator_kwargs)
    running = RunningEmulator(app, serve(app, host, port, quiet=quiet)).start()
    try:
        yield running
    finally:
        running.stop()
