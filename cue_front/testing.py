"""A pytest plugin for shops (and cue-front itself): a real, local DataCue in every test.

pytest loads it by itself once cue-front is installed (a ``pytest11`` entry point). Ask
for the ``emulator`` fixture: one emulator server per test session on a free loopback
port, reset (data, journal, banners, faults) before each test that asks for it::

    def test_cart_update_reaches_datacue(app, emulator):
        app.config.update(emulator.config)
        ...
        assert emulator.events(type="cart")[0]["body"]["event"]["cart"] == [...]

It answers with :class:`cue_front.emulator.RunningEmulator` (``url``, ``api_url``,
``events_url``, ``config``, ``reset()``, ``events()``, ``requests()``, ``set_faults()``...).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cue_front.emulator import RunningEmulator

__all__ = ["TEST_API_KEY", "TEST_API_SECRET", "emulator", "emulator_server"]

#: The emulator's credentials in tests: obviously not real ones.
TEST_API_KEY = "test-key"
TEST_API_SECRET = "test-secret"


@pytest.fixture(scope="session")
def emulator_server() -> Iterator[RunningEmulator]:
    """The session's emulator server; prefer ``emulator``, which resets it first."""
    # Imported here so that loading the plugin costs nothing to suites that never use it.
    from cue_front.emulator import run_emulator

    with run_emulator(api_key=TEST_API_KEY, api_secret=TEST_API_SECRET) as running:
        yield running


@pytest.fixture
def emulator(emulator_server: RunningEmulator) -> RunningEmulator:
    """A running emulator with no data, an empty journal, no banners and no faults."""
    emulator_server.reset()
    return emulator_server
