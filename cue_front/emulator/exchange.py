"""The plumbing every emulator route shares: the exchange being journaled, JSON bodies, JSON errors.

An *exchange* is one request on the events or REST API and what the emulator
answered; routes fill in what they learn (who, which event, which errors and
warnings) and the app journals it after the response is made. A warning (a rule
only the guide's table states, broken as a sample of the guide breaks it, see
``schema.FieldWarning``) changes nothing in the answer: it is journaled. Errors are JSON:
``{"status": 400, "message": "batch[3].price: expected a number, got '99,50'",
"errors": ["batch[3].price: expected a number, got '99,50'"]}``.

Batches come in two forms, read here for both APIs: the guide's
``{"batch": [...]}`` and the bare JSON array that DataCue's official PHP
client sends (every REST batch call, and ``events->batchTrack``). Both are
validated alike; error paths name the items as they were sent (``batch[3]``
or ``[3]``).
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NoReturn, cast

from flask import Response, current_app, g, jsonify, request

from ..errors import FieldError, ValidationError
from ..schema import BATCH_LIMIT, Object, Tagged, batch_of, validate_with_warnings
from .state import EmulatorState, now_timestamp

__all__ = [
    "EXTENSION_KEY",
    "Batch",
    "Exchange",
    "Problem",
    "batch_spec",
    "current_exchange",
    "emulator_state",
    "error_response",
    "fail",
    "note_warnings",
    "read_batch",
    "read_json",
    "validated",
]

#: Where the app keeps its :class:`EmulatorState` (``app.extensions[EXTENSION_KEY]``).
EXTENSION_KEY: Final = "cue_front_emulator"


def emulator_state() -> EmulatorState:
    return cast(EmulatorState, current_app.extensions[EXTENSION_KEY])


@dataclass
class Exchange:
    """What the journal will say about the current request."""

    family: str  # "events" or "rest"
    generation: int  # the state's, when the request arrived
    received_at: str = field(default_factory=now_timestamp)
    received_epoch: float = field(default_factory=time.time)
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    visitor: str | None = None
    user_id: str | None = None
    anonymous_id: str | None = None
    type: str | None = None
    subtype: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    dropped: bool = False


def current_exchange() -> Exchange | None:
    exchange: Exchange | None = g.get("_emulator_exchange")
    return exchange


class Problem(Exception):
    """An error answer: raised anywhere in a route, turned into JSON by the app."""

    def __init__(
        self,
        status: int,
        message: str,
        errors: list[str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors if errors is not None else [message]
        self.headers = dict(headers or {})


def fail(status: int, message: str, errors: list[str] | None = None) -> NoReturn:
    raise Problem(status, message, errors)


def error_response(problem: Problem) -> Response:
    """The JSON answer of a problem; the current exchange remembers its errors."""
    exchange = current_exchange()
    if exchange is not None:
        exchange.errors = list(problem.errors)
    response = jsonify(status=problem.status, message=problem.message, errors=problem.errors)
    response.status_code = problem.status
    response.headers.update(problem.headers)
    return response


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not JSON")


def read_json(*, require_json_type: bool) -> Any:
    """The request body parsed as JSON; 400 when it is not, 415 for another declared type.

    Guide: it asks for ``Content-Type: application/json`` but its own Python samples
    send none, so a missing type is accepted and only a different one is refused.
    """
    mimetype = request.mimetype
    if require_json_type and mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        fail(415, f"Content-Type must be application/json, got {mimetype}")
    raw = request.get_data(cache=True)
    if not raw.strip():
        fail(400, "invalid JSON: the request body is empty; expected a JSON object")
    try:
        return json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant)
    except UnicodeDecodeError:
        fail(400, "invalid JSON: the body is not UTF-8")
    except ValueError as error:
        fail(400, f"invalid JSON: {error}")


def note_warnings(warnings: Iterable[FieldError | str]) -> None:
    """Journal warnings with the current exchange (they change nothing in the answer)."""
    exchange = current_exchange()
    if exchange is not None:
        exchange.warnings.extend(str(warning) for warning in warnings)


def validated(spec: Object | Tagged, data: Any) -> Any:
    """``data`` validated with a shared schema spec; 400 naming every bad field path.

    Its warnings are noted on the exchange.
    """
    try:
        value, warnings = validate_with_warnings(spec, data)
    except ValidationError as error:
        fail(400, str(error), [str(problem) for problem in error.errors])
    note_warnings(warnings)
    return value


#: The ``{"batch": [...]}`` spec of an item spec, built (and its checking function compiled) once.
batch_spec = functools.cache(batch_of)


@dataclass(frozen=True)
class Batch:
    """A batch request's body as ``{"batch": [...]}``, and whether it came as a bare array."""

    wrapped: Any
    bare: bool

    @property
    def prefix(self) -> str:
        """Where the items are, in error paths: ``batch`` (``batch[2].price``) or nothing (``[2].price``)."""
        return "" if self.bare else "batch"

    def as_sent(self, errors: Iterable[FieldError]) -> list[str]:
        """Error (or warning) messages naming paths as the client wrote them (validation ran on the
        wrapped form)."""
        if not self.bare:
            return [str(error) for error in errors]
        return [str(FieldError(error.path.removeprefix("batch"), error.message)) for error in errors]

    def validated(self, item: Object) -> list[Any]:
        """Every item valid, normalized; else 400 naming every bad item path (nothing is applied).

        Warnings are noted on the exchange, naming items as sent.
        """
        try:
            wrapped, warnings = validate_with_warnings(batch_spec(item), self.wrapped)
        except ValidationError as error:
            messages = self.as_sent(error.errors)
            fail(400, "; ".join(messages), messages)
        note_warnings(self.as_sent(warnings))
        items: list[Any] = wrapped["batch"]
        return items


def read_batch(body: Any) -> Batch:
    """A batch request's body in either form; 413 beyond DataCue's 500 items, before any other check."""
    bare = isinstance(body, list)
    wrapped = {"batch": body} if bare else body
    if isinstance(wrapped, Mapping) and isinstance(wrapped.get("batch"), list):
        count = len(wrapped["batch"])
        if count > BATCH_LIMIT:
            where = "the array" if bare else "batch"
            fail(413, f"{where}: at most {BATCH_LIMIT} items per request, got {count}")
    return Batch(wrapped, bare)
