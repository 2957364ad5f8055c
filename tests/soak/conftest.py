"""The long runs are marked ``soak`` and run only when asked for: ``make soak`` (``-m soak``)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "soak: a long reliability run; only with -m soak (make soak)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if "soak" in (config.getoption("markexpr") or ""):
        return
    later = pytest.mark.skip(reason="a long reliability run: make soak (pytest tests/soak -m soak)")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(later)
