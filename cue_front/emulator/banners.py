"""Banners: the emulator's own stand-in for the banners a shop uploads in DataCue's dashboard.

DataCue's API has no endpoint for them, so the emulator takes them through
``PUT /_emulator/banners`` or a JSON file (``--banners``), in one shape::

    {"banners": [{"banner_id": "b1", "category_id": "jeans", "kind": "main",
                  "name": "Jeans", "photo_url": "/b/jeans.jpg", "link": "/c/jeans"}]}

``kind`` is ``main`` (default) or ``sub``. The spec is built from the shared
schema's parts; it is not one of DataCue's documented objects.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from ..schema import Id, ListOf, Object, String, optional, required, validate

__all__ = ["BANNERS_SPEC", "BANNER_KINDS", "banner_json", "load_banners", "read_banners"]

BANNER_KINDS: Final = ("main", "sub")

BANNER_SPEC = Object(
    {
        "banner_id": required(Id()),
        "category_id": required(Id()),
        "kind": optional(String(choices=BANNER_KINDS), default="main"),
        "name": optional(String(), default=""),
        "photo_url": required(String(non_empty=True)),
        "link": required(String()),
    }
)
BANNERS_SPEC = Object({"banners": required(ListOf(BANNER_SPEC))})


def read_banners(data: Any) -> list[dict[str, Any]]:
    """Validated banners from a ``{"banners": [...]}`` object; raises ``ValidationError``."""
    banners: list[dict[str, Any]] = validate(BANNERS_SPEC, data)["banners"]
    return banners


def load_banners(path: str | Path) -> list[dict[str, Any]]:
    """Banners from a JSON file in the same shape."""
    return read_banners(json.loads(Path(path).read_text(encoding="utf-8")))


def banner_json(banner: dict[str, Any]) -> dict[str, Any]:
    """A banner as the home pageview answers it (the guide's banner object)."""
    return {key: banner[key] for key in ("banner_id", "name", "link", "photo_url")}
