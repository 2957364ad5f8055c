"""Help for the demo's tests: a seeded database made once, and a demo app wired to an emulator.

Seeding hashes the demo accounts' passwords, so tests seed one database per
session and copy it into each test's own instance folder.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.testing import FlaskClient

from . import create_app, integration, seed

if TYPE_CHECKING:
    from cue_front.emulator import RunningEmulator

__all__ = ["DATABASE_NAME", "anonymous_id", "create_test_app", "seed_template"]

DATABASE_NAME = "demo-store.sqlite3"


def seed_template(folder: Path) -> Path:
    """A freshly seeded database in ``folder``, to copy into tests' instance folders."""
    path = folder / DATABASE_NAME
    seed.ensure_database(path)
    return path


def create_test_app(
    emulator: RunningEmulator, instance: Path, template: Path | None = None, **config: Any
) -> Flask:
    """The demo on ``instance``, talking to ``emulator`` synchronously, its history imported and
    its banners registered: the state ``python -m demo_store`` starts in."""
    instance.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copyfile(template, instance / DATABASE_NAME)
    app = create_app(
        {
            **emulator.config,
            "TESTING": True,
            "SECRET_KEY": "demo-store-tests",
            "DATACUE_DELIVERY": "sync",
            **config,
        },
        instance_path=str(instance),
    )
    summaries = integration.import_history(app)
    problems = [summary.line() for summary in summaries if not summary.ok]
    if problems:
        raise AssertionError(f"the demo's history did not import: {problems}")
    integration.register_banners(app, emulator)
    return app


def anonymous_id(client: FlaskClient) -> str:
    """The anonymous id in the test client's signed cookie (value before the signature)."""
    cookie = client.get_cookie("datacue_anonymous_id")
    if cookie is None:
        raise AssertionError("no anonymous id cookie was set")
    return cookie.value.rsplit(".", 1)[0]
