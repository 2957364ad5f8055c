"""``create_emulator()``: the Flask app that plays DataCue, with its request life cycle.

Every request on the events API (``POST /``, ``/events``) or the REST API
(``/v1/...``) is an *exchange*: faults are drawn for it first, then the route
runs, and whatever was answered (including 401s, 404s and injected faults) is
journaled for ``GET /_emulator/events`` and ``/_emulator/requests``. Before
all that, ``guard`` turns away what other sites' pages send (see there).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..assets import resource_dir
from .banners import load_banners
from .debugger import blueprint as debugger_blueprint
from .events_api import EVENT_PATHS, note_what_was_sent
from .events_api import blueprint as events_blueprint
from .exchange import EXTENSION_KEY, Exchange, Problem, current_exchange, emulator_state, error_response
from .faults import Fault, FaultPlan
from .guard import ALLOWED_HOSTS_KEY, allowed_hosts, guard
from .rest_api import blueprint as rest_blueprint
from .rest_api import note_what_was_asked
from .state import EmulatorState
from .store import JournalEntry

__all__ = ["DEFAULT_API_KEY", "DEFAULT_API_SECRET", "MAX_BODY_BYTES", "create_emulator"]

logger = logging.getLogger("cue_front.emulator")

#: The credentials of an emulator started without any: printed at start, never secret.
DEFAULT_API_KEY: Final = "emulator-key"
DEFAULT_API_SECRET: Final = "emulator-secret"

#: DataCue refuses bodies over 5 MiB.
MAX_BODY_BYTES: Final = 5 * 1024 * 1024


def create_emulator(
    api_key: str = DEFAULT_API_KEY,
    api_secret: str = DEFAULT_API_SECRET,
    db_path: str | Path | None = None,
    faults: Mapping[str, Any] | None = None,
    banners: Sequence[Mapping[str, Any]] | str | Path | None = None,
    allow_hosts: Iterable[str] = (),
) -> Flask:
    """A DataCue emulator app.

    ``db_path`` None keeps everything in memory; a file keeps it across restarts.
    ``faults`` is a fault plan (see :mod:`cue_front.emulator.faults`). ``banners``
    is a list of banners or a JSON file of them (see :mod:`cue_front.emulator.banners`).
    ``allow_hosts`` names hosts it answers for besides its own address and the
    loopback names, such as ``["emulator"]`` in a docker network (see :mod:`.guard`).
    """
    if isinstance(banners, (str, Path)):
        banners = load_banners(banners)
    state = EmulatorState(
        api_key,
        api_secret,
        db_path=str(db_path) if db_path is not None else None,
        faults=FaultPlan.from_json(faults),
        banners=banners,
    )
    app = Flask("cue_front.emulator", template_folder=resource_dir("templates"), static_folder=None)
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    app.config[ALLOWED_HOSTS_KEY] = allowed_hosts(allow_hosts)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    app.extensions[EXTENSION_KEY] = state
    app.register_blueprint(events_blueprint)
    app.register_blueprint(rest_blueprint)
    app.register_blueprint(debugger_blueprint)
    app.before_request(guard)  # first: a refused request opens no exchange and is not journaled
    app.before_request(_open_exchange)
    app.after_request(_close_exchange)
    app.register_error_handler(Problem, error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected_error)
    return app


def _family() -> str | None:
    """Which API the current request is on: "events", "rest", or None (the emulator's own pages)."""
    if request.method == "OPTIONS":
        return None
    if request.path.startswith("/v1/") or request.path == "/v1":
        return "rest"
    if request.path in EVENT_PATHS and not (request.path == "/" and request.method in ("GET", "HEAD")):
        return "events"
    return None


def _open_exchange() -> Response | None:
    family = _family()
    if family is None:
        return None
    exchange = Exchange(family, emulator_state().generation)
    g._emulator_exchange = exchange
    if family == "events":
        note_what_was_sent(exchange)
    else:
        note_what_was_asked(exchange)
    fault = emulator_state().faults.draw(family)
    return _apply_fault(exchange, fault) if fault else None


def _apply_fault(exchange: Exchange, fault: Fault) -> Response | None:
    if fault.latency:
        time.sleep(fault.latency)
    if fault.drop:
        exchange.dropped = True
        exchange.errors = ["injected fault: connection dropped without an answer"]
        # Journaled now: once the connection is gone the client may already be asking.
        _journal(exchange, status=None)
        g._emulator_exchange = None
        _drop_connection()
        return Response(status=500)
    if fault.status is None:
        return None
    headers = {"Retry-After": str(fault.retry_after)} if fault.status == 429 else {}
    reason = {500: "Internal Server Error", 503: "Service Unavailable", 429: "Too Many Requests"}
    return error_response(
        Problem(fault.status, f"injected fault: {fault.status} {reason[fault.status]}", headers=headers)
    )


def _drop_connection() -> None:
    """Close the client's connection so that it sees no answer at all."""
    connection = request.environ.get("werkzeug.socket")
    if connection is None:  # the Flask test client has no socket to close
        raise ConnectionAbortedError("injected fault: connection dropped")
    # Shut down, not close: werkzeug's write then fails with a broken pipe, which it
    # treats as a client gone away, quietly, and closes the socket itself.
    connection.shutdown(socket.SHUT_RDWR)


def _allow_browsers(response: Response) -> None:
    """Browsers post events to DataCue from the shop's pages: another origin."""
    response.headers["Access-Control-Allow-Origin"] = "*"
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = "POST"
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"


def _close_exchange(response: Response) -> Response:
    if request.path in EVENT_PATHS and request.method in ("POST", "OPTIONS"):
        _allow_browsers(response)
    exchange = current_exchange()
    if exchange is None:
        return response
    if response.status_code < 400 and response.is_json:
        exchange.details["response"] = response.get_json()
    _journal(exchange, status=response.status_code)
    return response


def _journal(exchange: Exchange, status: int | None) -> None:
    emulator_state().journal(
        JournalEntry(
            kind="event" if exchange.family == "events" else "request",
            received_at=exchange.received_at,
            method=request.method,
            path=request.path,
            status=status,
            errors=exchange.errors,
            warnings=exchange.warnings,
            body_text=_body_text(),
            visitor=exchange.visitor,
            user_id=exchange.user_id,
            anonymous_id=exchange.anonymous_id,
            type=exchange.type,
            subtype=exchange.subtype,
            details=exchange.details,
        ),
        exchange.generation,
    )


def _body_text() -> str | None:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    try:
        raw = request.get_data(cache=True)
    except RequestEntityTooLarge:
        return None
    return raw.decode("utf-8", errors="replace") if raw else None


def _http_error(error: HTTPException) -> Response:
    status = error.code or 500
    if status == 404:
        message = f"no such endpoint: {request.method} {request.path}"
    elif status == 405:
        allowed = sorted(set(error.valid_methods or ()) - {"HEAD", "OPTIONS"})  # type: ignore[attr-defined]
        message = f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}"
    elif status == 413:
        message = f"request body over {MAX_BODY_BYTES // (1024 * 1024)} MiB ({MAX_BODY_BYTES} bytes)"
    else:
        message = error.description or error.name
    response = error_response(Problem(status, message))
    if status == 405:
        response.headers["Allow"] = ", ".join(error.valid_methods or ())  # type: ignore[attr-defined]
    return response


def _unexpected_error(error: Exception) -> Response:
    if isinstance(error, ConnectionAbortedError):
        raise error
    logger.exception("emulator error on %s %s", request.method, request.path)
    return error_response(Problem(500, f"emulator error: {type(error).__name__}: {error}"))
