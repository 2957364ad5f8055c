"""docs/architecture.md, the map: every room in the tree is on it, and all it names is in the tree."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAP = (ROOT / "docs" / "architecture.md").read_text("utf-8")
#: Paths the map names, in backticks: `cue_front/outbox/worker.py`, `templates/datacue/`.
NAMED = set(re.findall(r"`((?:cue_front|templates|static|demo_store|tests|benchmarks|docs)/[\w/.-]*)`", MAP))


def test_every_module_of_the_package_is_on_the_map() -> None:
    modules = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "cue_front").rglob("*.py")
        if path.name != "__init__.py"
    }
    packages = {
        f"{path.parent.relative_to(ROOT).as_posix()}/" for path in (ROOT / "cue_front").rglob("__init__.py")
    }
    missing = sorted((modules | packages) - NAMED - {"cue_front/"})
    assert missing == [], f"rooms not on docs/architecture.md: {missing}"
    assert "cue_front/__init__.py" in NAMED


def test_everything_on_the_map_is_in_the_tree() -> None:
    absent = sorted(name for name in NAMED if not (ROOT / name).exists())
    assert absent == [], f"docs/architecture.md names rooms that do not exist: {absent}"


def test_the_readme_sends_readers_to_the_map() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    assert "docs/architecture.md" in readme
    assert "shared/DESIGN.md" not in readme  # not in the repository
