"""Over 10,000 generated hostile strings in every page type's fields and in widget attributes: no breakout.

Each string goes into a field of a page (all seven page types, both config
modes) or an attribute of a widget; an HTML5 parser (html5lib, the algorithm
browsers use) must then find exactly the elements cue-front meant to write,
the config must round-trip to exactly what was passed, and every attribute must
read back as the string given (after the normalization every HTML parser does
to attribute text: CR LF to LF, NUL to U+FFFD).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import html5lib
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cue_front import render_datacue
from cue_front.settings import DATACUE_CDN_SCRIPTS
from cue_front.widgets import datacue_banner_slot, datacue_banners
from tests.support.hostile import HOSTILE_PIECES, pages
from tests.support.pages_html import config_from_html, script_elements

STRINGS_WANTED = 10_000

MORE_PIECES = [
    "</script ",
    "</script/",
    "</scr\x00ipt>",
    "<script/src=//evil.example>",
    "<svg/onload=alert(1)>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)",
    '" autofocus onfocus="alert(1)',
    "javascript:alert(1)",
    " data:text/html,<script>alert(1)</script>",
    "<!--<script>",
    "<style>",
    "</style>",
    "</textarea>",
    "<iframe srcdoc='<script>alert(1)</script>'>",
    "&#x3C;/script&#x3E;",
    "&lt;/script&gt;",
    "\\u003c/script\\u003e",
    "{{ 7 * 7 }}",
    "{% if 1 %}x{% endif %}",
    "${7*7}",
    "\u2028\u2029",
    "\x0c",
    "\r",
    "\ud800",
    "\U000e0020",
]
hostile = (
    st.lists(
        st.one_of(st.sampled_from(HOSTILE_PIECES + MORE_PIECES), st.text(max_size=4)), min_size=1, max_size=6
    )
    .map("".join)
    .filter(bool)
)


class Strings:
    """Draws hostile strings, counting them."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data
        self.drawn = 0

    def __call__(self) -> str:
        self.drawn += 1
        return self.data.draw(hostile)


def as_parsed(value: str) -> str:
    """What any HTML parser makes of attribute text: CR LF and CR become LF, NUL becomes U+FFFD."""
    return value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "\ufffd")


def elements(html: str) -> list[Any]:
    """Every element of an HTML fragment, as the HTML5 parsing algorithm builds them."""
    fragment = html5lib.parseFragment(html, namespaceHTMLElements=False)
    return list(fragment.iter())[1:]  # the first is the fragment's own container


def check_page(html: str, mode: str, page_type: str, user_id: str, fields: dict[str, Any]) -> None:
    scripts = script_elements(html)
    if mode == "inline":
        assert [script.get("src") for script in scripts] == [None, *DATACUE_CDN_SCRIPTS]
    else:
        assert [script.get("type") for script in scripts] == ["application/json", None]
    assert [element.tag for element in elements(html)] == ["script"] * len(scripts)
    expected = {"api_key": "test-key", "user_id": user_id, "page_type": page_type, **fields}
    if page_type == "order confirmation":
        expected["order_details"] = {**fields["order_details"], "order_status": "completed"}
    config = config_from_html(html)
    assert json.dumps(config, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert not any(character in scripts[0].text for character in "<>&'\u2028\u2029\x00")


def check_widget(html: str, attributes: dict[str, str]) -> None:
    (div,) = elements(html)  # one element: nothing injected beside or inside it
    assert div.tag == "div"
    assert dict(div.attrib) == {name: as_parsed(value) for name, value in attributes.items()}
    assert not (div.text or "").strip()


def test_ten_thousand_hostile_strings_break_out_of_nothing(make_app: Callable[..., Flask]) -> None:
    apps = {mode: make_app(DATACUE_CONFIG_MODE=mode) for mode in ("inline", "json")}
    drawn = 0

    @settings(
        max_examples=250,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        nonlocal drawn
        text = Strings(data)
        user_ids = [text() for _ in range(7)]
        for mode, app in apps.items():
            with app.test_request_context():
                for (page_type, fields), user_id in zip(pages(text), user_ids, strict=True):
                    html = str(render_datacue(page_type, user_id=user_id, **fields))
                    check_page(html, mode, page_type, user_id, fields)
        with apps["inline"].test_request_context():
            image, link = text(), text()
            check_widget(
                str(datacue_banners(static_img=image, static_link=link)),
                {"data-dc-banners": "", "data-dc-static-img": image, "data-dc-static-link": link},
            )
            css_class, title = text(), text()
            check_widget(
                str(datacue_banner_slot("sub", 2, class_=css_class, title=title)),
                {"class": css_class, "title": title, "data-dc-sub-insert-banner": "2"},
            )
        drawn += text.drawn

    run()
    assert drawn >= STRINGS_WANTED
