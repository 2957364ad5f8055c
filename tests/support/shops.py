"""The test shops' credentials, and the shop several suites drive: synchronous, with a session login."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, request, session

from cue_front import DataCue, track
from cue_front.emulator import RunningEmulator

#: A secret nobody could mistake for anything else; tests look for it in every output.
SECRET = "sekrit-5f1d0c-never-shown"
API_KEY = "test-key"


def session_login_shop(make_app: Callable[..., Flask], emulator: RunningEmulator, **config: Any) -> Flask:
    """A shop sending to ``emulator`` synchronously (``config`` overrides any setting) whose user is
    ``session["user_id"]``. ``POST /login/<user_id>`` logs in and tracks a login; ``POST /track``
    tracks the JSON body and answers whether it was taken."""
    app = make_app(**{"DATACUE_DELIVERY": "sync", **emulator.config, **config})
    datacue: DataCue = app.extensions["datacue"].extension

    @datacue.user_id_loader
    def current_user() -> str | None:
        return session.get("user_id")

    @app.post("/track")
    def track_view() -> str:
        return "queued" if track(request.get_json()) else "refused"

    @app.post("/login/<user_id>")
    def login(user_id: str) -> str:
        session["user_id"] = user_id
        track({"type": "login"})
        return "ok"

    return app
