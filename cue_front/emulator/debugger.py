"""What the emulator received, for people and for tests: the debugger page and ``/_emulator/...``.

``GET /`` is the events debugger (server-rendered; a small inline script
refreshes its live part every two seconds). The JSON endpoints:

=============================  =============================================================
``GET /_emulator/events``      events received, newest first (``?user=``, ``?type=``, ``?limit=``)
``GET /_emulator/requests``    REST requests received, newest first (same filters)
``POST /_emulator/reset``      forget everything: data, visitors, journal, banners, faults
``GET|POST /_emulator/faults`` the fault plan (see :mod:`.faults`)
``GET|PUT /_emulator/banners`` the banners (see :mod:`.banners`)
``GET /_emulator/overview``    counts of what was received
=============================  =============================================================

Each event or request listed carries its ``errors`` and its ``warnings``: the
rules only the guide's table states that it broke as a sample of the guide
does, accepted (``schema.FieldWarning``): ``["batch[1].first_name: the guide's
table says required"]``. The page shows both beside the request.

Those that change something refuse other sites' pages (see :mod:`.guard`).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request

from ..errors import ValidationError
from .banners import read_banners
from .exchange import emulator_state, fail
from .faults import FaultPlan

__all__ = ["blueprint"]

blueprint = Blueprint("emulator_debugger", __name__)

#: How many events and requests the page shows.
PAGE_EVENTS = 100
PAGE_REQUESTS = 30
PAGE_VISITORS = 8


def _limit() -> int | None:
    text = request.args.get("limit")
    if text is None:
        return None
    if not text.isdigit():
        fail(400, f"limit: expected a whole number, got {text!r}")
    return int(text)


def _journal(kind: str) -> list[dict[str, Any]]:
    return emulator_state().journal_items(
        kind, user=request.args.get("user") or None, type=request.args.get("type") or None,
        limit=_limit(),
    )


@blueprint.get("/_emulator/events")
def events() -> Response:
    return jsonify(_journal("event"))


@blueprint.get("/_emulator/requests")
def requests() -> Response:
    return jsonify(_journal("request"))


@blueprint.post("/_emulator/reset")
def reset() -> Response:
    emulator_state().reset()
    return Response(status=204)


@blueprint.get("/_emulator/overview")
def overview() -> Response:
    return jsonify(emulator_state().counts())


@blueprint.get("/_emulator/faults")
def faults() -> Response:
    return jsonify(emulator_state().faults.plan.as_json())


@blueprint.post("/_emulator/faults")
def set_faults() -> Response:
    spec = request.get_json(silent=True)
    if spec is None and request.get_data():
        fail(400, "invalid JSON: expected a fault plan object")
    try:
        plan = FaultPlan.from_json(spec)
    except ValidationError as error:
        fail(400, str(error), [str(problem) for problem in error.errors])
    emulator_state().set_faults(plan)
    return jsonify(plan.as_json())


@blueprint.get("/_emulator/banners")
def banners() -> Response:
    return jsonify(banners=emulator_state().banners())


@blueprint.put("/_emulator/banners")
def set_banners() -> Response:
    try:
        banners = read_banners(request.get_json(silent=True))
    except ValidationError as error:
        fail(400, str(error), [str(problem) for problem in error.errors])
    emulator_state().set_banners(banners)
    return jsonify(banners=emulator_state().banners())


def _page_context() -> dict[str, Any]:
    state = emulator_state()
    user = request.args.get("user") or None
    return {
        "user": user,
        "counts": state.counts(),
        "events": state.journal_items("event", user=user, limit=PAGE_EVENTS),
        "event_total": state.store.journal_size("event"),
        "requests": state.journal_items("request", user=user, limit=PAGE_REQUESTS),
        "visitors": state.visitor_summaries(PAGE_VISITORS),
        "faults": state.faults.plan,
        "banners": state.banners(),
        "api_key": state.api_key,
        "root": request.host_url,
    }


@blueprint.get("/")
def page() -> str:
    return render_template("emulator/debugger.html", **_page_context())


@blueprint.get("/_emulator/live")
def live() -> str:
    """The page's live part alone, for its refresh script."""
    return render_template("emulator/live.html", **_page_context())
