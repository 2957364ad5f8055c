"""A local, stateful DataCue: events and REST APIs, recommendations and an events debugger.

It speaks DataCue's documented contract (``datacue-api.md``): it verifies
signatures with :mod:`cue_front.signing`, validates every payload with the
specs of :mod:`cue_front.schema`, keeps what it receives in SQLite and answers
pageviews with recommendations computed from it (see :mod:`.recommender`).
Tests, CI and the demo use it instead of the real service::

    python -m cue_front.emulator --port 5050       # prints the settings a shop needs

    from cue_front.emulator import create_emulator, run_emulator
    with run_emulator(api_key="k", api_secret="s") as emulator:
        app.config.update(emulator.config)

The rooms: ``app`` (the Flask app and request life cycle), ``events_api`` and
``rest_api`` (the contract), ``auth``, ``exchange`` (shared plumbing),
``state`` (semantics and identity), ``store`` (SQLite), ``recommender``,
``faults``, ``banners``, ``debugger`` (what it received), ``guard`` (other
sites kept out) and ``server``.
"""

from __future__ import annotations

from .app import DEFAULT_API_KEY, DEFAULT_API_SECRET, create_emulator
from .server import RunningEmulator, run_emulator

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_API_SECRET",
    "RunningEmulator",
    "create_emulator",
    "run_emulator",
]
