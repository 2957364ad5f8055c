"""Help for the demo's tests: a seeded database made once, a demo app wired to an emulator, and a test
client that posts forms with their CSRF token, as a browser does.

Seeding hashes the demo accounts' passwords, so tests seed one database per
session and copy it into each test's own instance folder.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from . import create_app, integration, seed

if TYPE_CHECKING:
    from cue_front.emulator import RunningEmulator

__all__ = [
    "DATABASE_NAME",
    "TEST_CLIENT_URL",
    "FormClient",
    "anonymous_id",
    "create_test_app",
    "rows",
    "seed_template",
]

DATABASE_NAME = "demo-store.sqlite3"

#: Where Flask's test client sends its requests: the shop's address in tests (``DATACUE_SHOP_URL``).
TEST_CLIENT_URL = "http://localhost"

_CSRF_FIELD = re.compile(r'<input type="hidden" name="csrf_token" value="([^"]+)">')


class FormClient(FlaskClient):
    """A test client whose posts carry the CSRF token the shop's pages give this browser, as a
    form submitted from one of them does (a JSON body, for cue-front's endpoint, carries none)."""

    def post(self, *args: Any, **kwargs: Any) -> TestResponse:
        data = kwargs.get("data")
        if "json" not in kwargs and (data is None or isinstance(data, dict)):
            token = self.csrf_token(base_url=kwargs.get("base_url"))
            kwargs["data"] = {"csrf_token": token, **(data or {})}
        return super().post(*args, **kwargs)

    def csrf_token(self, base_url: str | None = None) -> str:
        """This browser's token, from the login form (a page that makes no DataCue call), asked
        for at ``base_url`` (the site the form is posted to) when given."""
        html = self.get("/login", base_url=base_url).get_data(as_text=True)
        match = _CSRF_FIELD.search(html)
        if match is None:
            raise AssertionError("the login page carries no CSRF token")
        return match.group(1)


def seed_template(folder: Path) -> Path:
    """A freshly seeded database in ``folder``, to copy into tests' instance folders."""
    path = folder / DATABASE_NAME
    seed.ensure_database(path)
    return path


def create_test_app(
    emulator: RunningEmulator, instance: Path, template: Path | None = None, **config: Any
) -> Flask:
    """The demo on ``instance``, talking to ``emulator`` synchronously, its history imported and
    its banners registered: the state ``python -m demo_store`` starts in. Its test clients are
    :class:`FormClient`."""
    instance.mkdir(parents=True, exist_ok=True)
    if template is not None:
        shutil.copyfile(template, instance / DATABASE_NAME)
    app = create_app(
        {
            **emulator.config,
            "TESTING": True,
            "SECRET_KEY": "demo-store-tests",
            "DATACUE_DELIVERY": "sync",
            "DATACUE_SHOP_URL": TEST_CLIENT_URL,
            **config,
        },
        instance_path=str(instance),
    )
    app.test_client_class = FormClient
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


def rows(app: Flask, sql: str, *parameters: object) -> list[sqlite3.Row]:
    """What the shop's database holds, read with plain SQL beside the models (a test's own look)."""
    connection = sqlite3.connect(app.config["DEMO_DATABASE"])
    try:
        connection.row_factory = sqlite3.Row
        return connection.execute(sql, parameters).fetchall()
    finally:
        connection.close()
