"""Where the shipped templates and static files are, in a wheel and in a source checkout.

The repository keeps ``templates/`` and ``static/`` at its top so shops can find
and override them; the wheel ships them inside the package (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resource_dir(name: str) -> str:
    """The folder ``name`` (``"templates"`` or ``"static"``) inside the package, else beside it."""
    for candidate in (_PACKAGE / name, _PACKAGE.parent / name):
        if candidate.is_dir():
            return str(candidate)
    raise FileNotFoundError(f"cue-front's {name}/ folder is missing from the installation")
