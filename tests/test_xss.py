"""No string a shop passes to render_datacue can break out of the config script.

Hostile strings go into every string field of every page type; an HTML5 parser
must then find exactly the expected script elements, and the JSON inside must
round-trip to exactly what was passed.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cue_front import render_datacue
from cue_front.settings import DATACUE_CDN_SCRIPTS
from tests.support.hostile import HOSTILE_PIECES, pages
from tests.support.pages_html import config_from_html, script_elements

hostile = (
    st.lists(st.one_of(st.sampled_from(HOSTILE_PIECES), st.text(max_size=4)), min_size=1, max_size=6)
    .map("".join)
    .filter(bool)
)


@pytest.mark.parametrize("mode", ["inline", "json"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_hostile_strings_stay_inside_the_config(
    make_app: Callable[..., Flask], mode: str, data: st.DataObject
) -> None:
    app = make_app(DATACUE_CONFIG_MODE=mode)
    with app.test_request_context():
        for page_type, fields in pages(lambda: data.draw(hostile)):
            user_id = data.draw(hostile)
            html = str(render_datacue(page_type, user_id=user_id, **fields))
            scripts = script_elements(html)
            if mode == "inline":
                assert [s.get("src") for s in scripts] == [None, *DATACUE_CDN_SCRIPTS]
            else:
                assert [s.get("type") for s in scripts] == ["application/json", None]
            expected = {"api_key": "test-key", "user_id": user_id, "page_type": page_type, **fields}
            if page_type == "order confirmation":
                expected["order_details"] = {**fields["order_details"], "order_status": "completed"}
            config = config_from_html(html)
            assert json.dumps(config, sort_keys=True) == json.dumps(expected, sort_keys=True)
            # The raw HTML holds none of the characters that end or confuse a script element.
            payload = scripts[0].text
            assert not any(c in payload for c in "<>&'\u2028\u2029\x00")
