"""The browser tests' demo store: ``shop`` is the seeded demo with its own delivery (the durable outbox)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from cue_front.emulator import RunningEmulator
from demo_store.testing import create_test_app


@pytest.fixture
def shop(emulator: RunningEmulator, tmp_path: Path, demo_template: Path) -> Iterator[Flask]:
    """The demo store, as ``python -m demo_store`` runs it, sending to ``emulator`` through its outbox."""
    app = create_test_app(emulator, tmp_path / "instance", demo_template, DATACUE_DELIVERY="outbox")
    yield app
    state = app.extensions["datacue"]
    state.delivery.flush(5.0)
    state.delivery.stop()
