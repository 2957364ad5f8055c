"""The JSON cue-front writes, now through a compiled encoder: byte for byte what the standard library
wrote before (but one spelling of tiny floats), NaN refused, Decimal a number, keys in order, and
nothing that could close a script element."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cue_front import schema
from cue_front.encoding import encode_json, script_json
from cue_front.errors import ValidationError

#: The encoders of before (cue_front/encoding.py until the compiled encoder came).
WIRE_BEFORE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
SCRIPT_BEFORE = json.JSONEncoder(separators=(",", ":"), allow_nan=False)
HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"))


def wire_before(value: Any) -> bytes:
    return WIRE_BEFORE.encode(value).encode("utf-8")


def script_before(value: Any) -> str:
    text = SCRIPT_BEFORE.encode(value)
    for character, replacement in HTML_ESCAPES:
        text = text.replace(character, replacement)
    return text


def no_tiny_floats(value: Any) -> bool:
    """Whether ``value`` holds no float under 1e-4 (json writes those 1e-05, orjson 0.00001)."""
    if isinstance(value, float):
        return value == 0 or abs(value) >= 1e-4
    if isinstance(value, list):
        return all(no_tiny_floats(item) for item in value)
    if isinstance(value, dict):
        return all(no_tiny_floats(item) for item in value.values())
    return True


# Any JSON value: every kind of text (markup, quotes, controls, U+2028, astral characters), integers
# in and past 64 bits, finite floats, nested lists and objects, keys in any order.
text = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["</script>", "<!--", "]]>", "'", "\u2028\u2029", "\x7f", "\x00\x1f", "😀 é ñ", "a&b>c"]
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_wire_encoding_is_what_it_was(value: Any) -> None:
    body = encode_json(value)
    assert json.loads(body) == json.loads(wire_before(value))
    if no_tiny_floats(value):
        assert body == wire_before(value)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_the_page_encoding_is_what_it_was(value: Any) -> None:
    page = script_json(value)
    assert json.loads(page) == json.loads(script_before(value))
    if no_tiny_floats(value):
        assert page == script_before(value)
    # Nothing that could end the script element or a string in it, whatever the page's encoding.
    assert page.isascii() and not {"<", ">", "&", "'"} & set(page)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, {"price": math.nan}, [1, None, math.inf]])
def test_nan_and_infinities_are_refused_as_before(value: Any) -> None:
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        encode_json(value)
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        script_json(value)


def test_null_and_none_stay_null() -> None:
    assert encode_json({"user_id": None, "tags": [None]}) == b'{"user_id":null,"tags":[null]}'
    assert script_json({"user_id": None}) == '{"user_id":null}'


def test_a_decimal_is_sent_as_a_number_once_validated_and_refused_before() -> None:
    item = {"product_id": "p1", "variant_id": "v1", "quantity": 1, "unit_price": Decimal("24.50")}
    assert encode_json(schema.validate(schema.CART_ITEM, item)).endswith(b'"unit_price":24.5}')
    with pytest.raises(TypeError):  # as json did: only validated data is encoded
        encode_json({"price": Decimal("1.5")})


def test_keys_keep_their_order() -> None:
    value = {"z": 1, "a": {"y": 2, "b": 3}, "m": [{"k": 1, "c": 2}]}
    assert encode_json(value) == b'{"z":1,"a":{"y":2,"b":3},"m":[{"k":1,"c":2}]}'
    assert script_json(value) == '{"z":1,"a":{"y":2,"b":3},"m":[{"k":1,"c":2}]}'


def test_what_the_compiled_encoder_refuses_is_written_as_before() -> None:
    for value in [{1: "int key"}, {"big": 2**80}, ("a", "tuple"), {"nested": [[[[[]]]]]}]:
        assert encode_json(value) == wire_before(value)
        assert script_json(value) == script_before(value)


def test_text_that_is_not_unicode_is_named_as_before() -> None:
    with pytest.raises(ValidationError, match=r"event\.name"):
        encode_json({"event": {"name": "bad \ud800 text"}})


def test_a_cycle_is_still_named() -> None:
    looped: dict[str, Any] = {}
    looped["self"] = looped
    with pytest.raises(ValueError, match="Circular reference"):
        encode_json(looped)
