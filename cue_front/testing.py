"""A pytest plugin for shops (and cue-front itself): a real, local DataCue in every test.

Load it with ``-p cue_front.testing`` (or ``pytest_plugins = ["cue_front.testing"]``)
and ask for the ``emulator`` fixture::

    def test_cart_update_reaches_datacue(app, emulator):
        app.config.update(emulator.config)
        ...
        assert emulator.events(type="cart")[0]["body"]["event"]["cart"] == [...]

One emulator server runs per test session on a free loopback port, in a thread;
``emulator`` resets it (data, journal, banners, faults) before handing it to a
test, so every test starts from an empty DataCue. It answers with
:class:`cue_front.emulator.RunningEmulator`: ``url``, ``api_url``,
``events_url``, ``api_key``, ``api_secret``, ``app``, ``config``, ``reset()``,
``events(user=, type=)``, ``requests(user=, type=)``, ``set_faults(**spec)`` and
``overview()``.
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
