"""The demo store's tests: ``shop`` is the seeded demo talking to the emulator, ``client`` a browser."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from cue_front.emulator import RunningEmulator
from demo_store.testing import create_test_app


@pytest.fixture
def shop(emulator: RunningEmulator, tmp_path: Path, demo_template: Path) -> Flask:
    return create_test_app(emulator, tmp_path / "instance", demo_template)


@pytest.fixture
def client(shop: Flask) -> FlaskClient:
    return shop.test_client()
