"""Reading rendered pages the way a browser would: script elements and the config inside them."""

from __future__ import annotations

import json
from typing import Any

import html5lib

CONFIG_PREFIX = "window.datacueConfig = "


def script_elements(html: str) -> list[Any]:
    """Every <script> element of ``html`` as an HTML5 parser builds it."""
    document = html5lib.parse(html, namespaceHTMLElements=False)
    return list(document.iter("script"))


def config_from_html(html: str) -> dict[str, Any]:
    """The ``window.datacueConfig`` object that ``html`` sets, parsed as JSON."""
    for script in script_elements(html):
        text = script.text or ""
        if text.startswith(CONFIG_PREFIX):
            assert text.endswith(";"), text
            parsed: dict[str, Any] = json.loads(text[len(CONFIG_PREFIX) : -1])
            return parsed
        if script.get("type") == "application/json" and script.get("id") == "datacue-config":
            island: dict[str, Any] = json.loads(text)
            return island
    raise AssertionError(f"no datacueConfig in {html!r}")
