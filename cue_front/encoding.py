"""The JSON that leaves cue-front: the wire encoding sent (and signed) to DataCue, and JSON safe in a page.

Both encoders are built once here, so every room encodes the same way; the size
check is DataCue's limit on what it accepts.
"""

from __future__ import annotations

import json
from typing import Any, Final

from .errors import PayloadTooLargeError, ValidationError
from .schema import text_errors

__all__ = ["MAX_BODY_BYTES", "check_body_size", "encode_json", "script_json"]

#: DataCue refuses request bodies over 5 MiB; such a body is refused before sending.
MAX_BODY_BYTES: Final = 5 * 1024 * 1024

# One encoder, built once: json.dumps with options builds a new one on every call.
_WIRE = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
# The same, without the search for reference cycles: a cycle recurses until RecursionError,
# and encode_json then asks _WIRE, which says what it always said (a ValueError for a cycle).
# The search keeps a dict of every object and list on the way, a sixth of the encoding time
# of an event, and what cue-front sends has been validated: it holds no cycle.
_WIRE_UNCHECKED = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, allow_nan=False, check_circular=False
)


def encode_json(payload: Any) -> bytes:
    """The one JSON encoding of a payload: compact, UTF-8, no NaN. Sign and send these bytes.

    Raises :class:`ValidationError` naming the field when a string is not valid Unicode.
    """
    text = _wire_text(payload)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError(text_errors(payload)) from None


def _wire_text(payload: Any) -> str:
    try:
        return _WIRE_UNCHECKED.encode(payload)
    except RecursionError:
        pass  # a cycle, or nesting too deep for any encoder
    return _WIRE.encode(payload)  # says which, and outside the handler: no chained RecursionError


def check_body_size(body: bytes) -> None:
    """Refuse, before any network I/O, a body DataCue would refuse for its size."""
    if len(body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(
            f"request body is {len(body):,} bytes; DataCue accepts at most {MAX_BODY_BYTES:,}"
        )


# Only validated data is encoded into pages, and the specs bound its depth, so no cycle can
# reach the encoder: skipping its cycle check is safe and makes every page a little faster.
_SCRIPT = json.JSONEncoder(separators=(",", ":"), check_circular=False, allow_nan=False)
# ensure_ascii (the default) already writes U+2028, U+2029 and every other non-ASCII
# character as \uXXXX; these four are the HTML-significant ASCII ones.
_HTML_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027"))


def script_json(value: Any) -> str:
    """JSON that is safe inside a ``<script>`` element, whatever the app's JSON settings.

    ``<``, ``>``, ``&``, ``'``, U+2028 and U+2029 are written as ``\\uXXXX`` escapes, so no
    string can close the element, open a comment or break a JavaScript string literal.
    """
    text = _SCRIPT.encode(value)
    for character, replacement in _HTML_ESCAPES:
        if character in text:
            text = text.replace(character, replacement)
    return text
