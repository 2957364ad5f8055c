"""The long runs are marked ``soak``: pyproject's ``-m "not soak"`` leaves them out of ``make test``,
and ``make soak`` selects them with ``-m soak``."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a long reliability run; only with -m soak (make soak)")
