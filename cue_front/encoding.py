"""The JSON that leaves cue-front: the wire encoding sent (and signed) to DataCue, and JSON safe in a page.

Both encoders are built once here, so every room encodes the same way; the size
check is DataCue's limit on what it accepts.

Both encode with orjson, a compiled encoder, and fall back to the standard library's for
what orjson refuses or writes otherwise (a NaN, integers past 64 bits, keys that are not
strings, text that is not valid Unicode, a cycle), so that the errors are the standard
library's. The bytes are the same but for the spelling of some small floats: orjson writes
``1e-05`` as ``0.00001`` and ``1e-07`` as ``1e-7`` (the same numbers). What cue-front sends
has passed its schema; a direct caller of :func:`script_json` should know that orjson also
writes a UUID (as a string) and an Enum (as its value), which ``json`` refuses. Measured on an
event, 3.8 us with ``json``, 0.3 us with orjson; on the 10-variant product page's config,
see benchmarks/REPORT.md.
"""

from __future__ import annotations

import json
import re
from typing import Any, Final

import orjson

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


#: What orjson would write differently from ``json`` is left to ``json``: with no ``default``
#: given, orjson refuses datetimes and dataclasses, and ``json`` then refuses them as it always did.
_ORJSON_OPTIONS: Final = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _orjson(payload: Any, *, finite: bool = False) -> bytes | None:
    """``payload`` encoded by orjson, or ``None`` when only ``json`` encodes it as cue-front must.

    orjson writes NaN and infinities as ``null``: where a ``null`` appears, the payload is read
    back and compared, and only a payload equal to what was read (a NaN is equal to nothing)
    keeps orjson's bytes. ``finite`` says the payload passed the schema, which refuses NaN and
    infinities: the read-back is skipped. It matters for pages: a guest's config carries
    ``"user_id": null``, and the read-back was a third of a product page's render.
    """
    try:
        body = orjson.dumps(payload, option=_ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, TypeError):  # surrogates, big integers, other keys, cycles
        return None
    if not finite and b"null" in body and orjson.loads(body) != payload:
        return None  # a NaN or an infinity (or a tuple, which json writes the same way)
    return body


def encode_json(payload: Any) -> bytes:
    """The one JSON encoding of a payload: compact, UTF-8, no NaN. Sign and send these bytes.

    Raises :class:`ValidationError` naming the field when a string is not valid Unicode.
    """
    body = _orjson(payload)
    if body is not None:
        return body
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
#: What ``ensure_ascii`` escapes that orjson writes as it is: DEL and every non-ASCII character.
_NOT_PRINTABLE_ASCII = re.compile("[^\x00-\x7e]")


def _ascii_escape(match: re.Match[str]) -> str:
    """A character as ``json``'s ``ensure_ascii`` writes it (a surrogate pair past U+FFFF)."""
    code = ord(match.group())
    if code < 0x10000:
        return f"\\u{code:04x}"
    code -= 0x10000
    return f"\\u{0xD800 | (code >> 10):04x}\\u{0xDC00 | (code & 0x3FF):04x}"


def script_json(value: Any, *, validated: bool = False) -> str:
    """JSON that is safe inside a ``<script>`` element, whatever the app's JSON settings.

    ``<``, ``>``, ``&``, ``'``, U+2028 and U+2029 are written as ``\\uXXXX`` escapes, so no
    string can close the element, open a comment or break a JavaScript string literal.
    Every other non-ASCII character is escaped too, as ``json`` does by default: the page is
    safe whatever encoding a browser takes it for. ``validated``: ``value`` passed cue-front's
    schema (no NaN or infinity can be in it), which saves a check.
    """
    body = _orjson(value, finite=validated)
    if body is None:
        text = _SCRIPT.encode(value)
    else:
        text = body.decode("utf-8")
        if not text.isascii() or "\x7f" in text:
            text = _NOT_PRINTABLE_ASCII.sub(_ascii_escape, text)
    for character, replacement in _HTML_ESCAPES:
        if character in text:
            text = text.replace(character, replacement)
    return text
