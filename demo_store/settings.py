"""Where the demo's DataCue settings come from, and what the shop does without any.

In order: the app's config, the environment (``DATACUE_API_KEY``,
``DATACUE_API_SECRET``, ``DATACUE_API_URL``, ``DATACUE_EVENTS_URL``,
``DATACUE_SHOP_URL``), and the note a running ``python -m demo_store`` keeps in
its instance folder (``datacue-emulator.json``: where its emulator is, and its
key and secret). The note is what lets ``flask --app demo_store datacue
overview`` (or ``shop restock``) work beside a running demo with nothing set; it
is removed when the demo stops, and ignored if its process is gone.

With no settings at all the app still loads, so that every ``--help`` works:
its pages say how to start the demo, and its ``datacue`` and ``shop`` commands
say it before doing anything.
"""

from __future__ import annotations

import copy
import functools
import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Final

import click

__all__ = [
    "ENVIRONMENT_SETTINGS",
    "NO_SETTINGS",
    "RECORD_NAME",
    "forget_emulator",
    "read_record",
    "record_emulator",
    "refusing",
]

#: Settings the shop reads from the environment when its config does not give them.
ENVIRONMENT_SETTINGS: Final = (
    "DATACUE_API_KEY",
    "DATACUE_API_SECRET",
    "DATACUE_API_URL",
    "DATACUE_EVENTS_URL",
    "DATACUE_SHOP_URL",
)

#: The running demo's note, in its instance folder.
RECORD_NAME: Final = "datacue-emulator.json"

NO_SETTINGS: Final = (
    "the demo store has no DataCue settings: start it with `make demo` (or `python -m demo_store`) and"
    " run `flask --app demo_store ...` beside it, or set DATACUE_API_KEY, DATACUE_API_SECRET,"
    " DATACUE_API_URL and DATACUE_EVENTS_URL"
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def record_emulator(instance: Path, settings: Mapping[str, str]) -> Path:
    """Leave the note of this process's emulator (``settings``: a shop's DataCue config) in ``instance``.

    Readable by its owner only: it holds the emulator's secret.
    """
    instance.mkdir(parents=True, exist_ok=True)
    path = instance / RECORD_NAME
    partial = path.with_name(f".{RECORD_NAME}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        json.dump({"pid": os.getpid(), "settings": dict(settings)}, file, indent=2)
    partial.replace(path)
    return path


def forget_emulator(instance: Path) -> None:
    """Remove this process's note (another demo's, if one replaced it, is left alone)."""
    path = instance / RECORD_NAME
    try:
        if json.loads(path.read_text(encoding="utf-8")).get("pid") == os.getpid():
            path.unlink()
    except (OSError, ValueError, AttributeError):
        pass


def read_record(instance: Path) -> dict[str, str] | None:
    """The settings a running demo noted in ``instance``; ``None`` without a note, or if its demo is gone."""
    try:
        note = json.loads((instance / RECORD_NAME).read_text(encoding="utf-8"))
        pid, settings = note["pid"], note["settings"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(pid, int) or not isinstance(settings, dict) or not _alive(pid):
        return None
    return {name: str(value) for name, value in settings.items() if name in ENVIRONMENT_SETTINGS}


def resolve(config: dict[str, Any], instance: Path) -> str:
    """Fill ``config``'s DataCue settings from the environment, then from a running demo's note, where
    it lacks them. Returns where the API key came from: "config", "environment", "record" or ""."""
    source = "config" if config.get("DATACUE_API_KEY") else ""
    for name in ENVIRONMENT_SETTINGS:
        if not config.get(name) and os.environ.get(name):
            config[name] = os.environ[name]
            if name == "DATACUE_API_KEY":
                source = "environment"
    if not config.get("DATACUE_API_KEY"):
        for name, value in (read_record(instance) or {}).items():
            if not config.get(name):
                config[name] = value
        source = "record" if config.get("DATACUE_API_KEY") else ""
    return source


def refusing(command: click.Command, message: str = NO_SETTINGS) -> click.Command:
    """A copy of ``command`` (and of a group's commands) that fails with ``message`` when run, and
    whose ``--help`` still works: for an app without DataCue settings."""
    clone = copy.copy(command)
    if isinstance(command, click.Group):
        assert isinstance(clone, click.Group)
        clone.commands = {name: refusing(sub, message) for name, sub in command.commands.items()}
    elif command.callback is not None:
        clone.callback = _refuse(command.callback, message)
    return clone


def _refuse(callback: Callable[..., Any], message: str) -> Callable[..., Any]:
    @functools.wraps(callback)
    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise click.ClickException(message)

    return refuse
