"""The value specs of DataCue's documented fields: strings, ids, numbers, timestamps, lists, free objects."""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Final

from ..errors import FieldError
from .engine import INVALID, Codegen, Spec, child_path, describe

__all__ = [
    "LARGEST_NUMBER",
    "SAFE_INTEGER",
    "Boolean",
    "FreeObject",
    "Id",
    "Integer",
    "ListOf",
    "Number",
    "String",
    "Timestamp",
    "format_timestamp",
    "timestamp_now",
]


@dataclass(frozen=True)
class String(Spec):
    """A string; ``choices`` makes it an enum, ``non_empty`` refuses ``""``."""

    choices: tuple[str, ...] | None = None
    non_empty: bool = False
    max_length: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        if self.choices:
            return "one of " + ", ".join(repr(choice) for choice in self.choices)
        return "a non-empty string" if self.non_empty else "a string"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, str):
            return self.wrong_type(value, path, errors)
        if self.choices is not None and value not in self.choices:
            return self.wrong_type(value, path, errors)
        if self.non_empty and not value:
            return self.wrong_type(value, path, errors)
        if self.max_length is not None and len(value) > self.max_length:
            errors.append(FieldError(path, f"longer than {self.max_length} characters"))
            return INVALID
        return value

    def expression(self, gen: Codegen, var: str) -> str:
        tests = [f"{var}.__class__ is str"]
        if self.choices is not None:
            tests.append(f"{var} in {gen.constant(frozenset(self.choices))}")
        if self.non_empty:
            tests.append(f"{var} != ''")
        if self.max_length is not None:
            tests.append(f"len({var}) <= {self.max_length}")
        return " and ".join(tests)


@dataclass(frozen=True)
class Id(Spec):
    """An identifier: sent as a non-empty string; ints are accepted and converted."""

    expected = "an id (a non-empty string or an integer)"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, str) and value:
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        return self.wrong_type(value, path, errors)

    def expression(self, gen: Codegen, var: str) -> str:
        return f"{var}.__class__ is str and {var} != ''"


#: The largest whole number every JSON reader keeps exactly (JavaScript's Number.MAX_SAFE_INTEGER).
SAFE_INTEGER: Final = 2**53 - 1
#: The largest magnitude of a number (a price): any more is a mistake or an attack, not money.
LARGEST_NUMBER: Final = 1e15


def _larger_than(value: int | float | Decimal, bound: float) -> bool:
    """Whether ``value`` is larger than ``bound`` in size; checked before any conversion, since
    ``Decimal("1e400")`` is no float and ``10**400`` is too large to become one."""
    try:
        magnitude: float = float(value)  # inf for a huge Decimal; OverflowError for a huge int
        return abs(magnitude) > bound
    except OverflowError:
        return True


@dataclass(frozen=True)
class Number(Spec):
    """A JSON number (money, prices): int, float or ``Decimal``; never a bool or a string.

    Finite, and at most :data:`LARGEST_NUMBER` in size (``maximum`` lowers that bound).
    """

    minimum: float | None = None
    maximum: float = LARGEST_NUMBER
    expected = "a number"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return self.wrong_type(value, path, errors)
        if isinstance(value, Decimal) and not value.is_finite():
            return self.wrong_type(value, path, errors)
        if isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(path, f"expected a finite number, got {value!r}"))
            return INVALID
        if self.minimum is not None and value < self.minimum:
            errors.append(FieldError(path, f"must be at least {self.minimum:g}, got {describe(value)}"))
            return INVALID
        if _larger_than(value, self.maximum):
            message = f"must be at most {self.maximum:g} either way, got {describe(value)}"
            errors.append(FieldError(path, message))
            return INVALID
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        return value

    def expression(self, gen: Codegen, var: str) -> str:
        # ``x - x == 0`` is false exactly for inf and nan.
        test = f"({var}.__class__ is int or ({var}.__class__ is float and {var} - {var} == 0))"
        test += f" and {-self.maximum!r} <= {var} <= {self.maximum!r}"
        if self.minimum is not None:
            test += f" and {var} >= {self.minimum!r}"
        return test


@dataclass(frozen=True)
class Integer(Spec):
    """A whole number (stock, quantity, rating), within ``minimum`` and ``maximum``, and never
    past :data:`SAFE_INTEGER` either way."""

    minimum: int = -SAFE_INTEGER
    maximum: int = SAFE_INTEGER
    expected = "an integer"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.wrong_type(value, path, errors)
        if value < self.minimum:
            errors.append(FieldError(path, f"must be at least {self.minimum}, got {describe(value)}"))
            return INVALID
        if value > self.maximum:
            errors.append(FieldError(path, f"must be at most {self.maximum}, got {describe(value)}"))
            return INVALID
        return value

    def expression(self, gen: Codegen, var: str) -> str:
        return f"{var}.__class__ is int and {self.minimum} <= {var} <= {self.maximum}"


@dataclass(frozen=True)
class Boolean(Spec):
    """``true`` or ``false``, strictly: ``"true"``, 1 and 0 are refused."""

    expected = "true or false"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool):
            return value
        return self.wrong_type(value, path, errors)

    def expression(self, gen: Codegen, var: str) -> str:
        return f"{var}.__class__ is bool"


_CANONICAL_TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?Z")


def format_timestamp(moment: datetime) -> str:
    """``2018-04-04 23:29:04Z`` style (milliseconds when present); naive means UTC."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    # Formatted by hand: strftime is several times slower, and this runs on every track().
    text = (
        f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
        f" {moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    )
    if moment.microsecond:
        text += f".{moment.microsecond // 1000:03d}"
    return text + "Z"


# The second that timestamp_now() formatted last, and its text up to the seconds.
_last_second: tuple[int, str] = (0, format_timestamp(datetime.fromtimestamp(0, timezone.utc))[:-1])


def timestamp_now() -> str:
    """``format_timestamp(datetime.now(timezone.utc))``, at a fraction of the cost (every ``track()``).

    The same clock read the same way (``datetime.now`` floors the system clock's
    nanoseconds to microseconds); the text up to the seconds changes once a
    second, so it is kept and only the milliseconds are formatted each time.
    """
    global _last_second
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    last_second, text = _last_second
    if second != last_second:
        text = format_timestamp(datetime.fromtimestamp(second, timezone.utc))[:-1]
        _last_second = (second, text)
    if nanoseconds >= 1000:  # a microsecond part: format_timestamp writes the milliseconds
        return f"{text}.{nanoseconds // 1_000_000:03d}Z"
    return text + "Z"


@dataclass(frozen=True)
class Timestamp(Spec):
    """An ISO-8601 moment, sent in UTC as ``2018-04-04 23:29:04Z``.

    Accepts ``datetime`` (naive means UTC) and ISO-8601 strings with any offset,
    such as the guide's own ``2018-04-04 23:29:04-03:00``, converting them to UTC.
    """

    expected = "an ISO-8601 date and time"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, datetime):
            return format_timestamp(value)
        if isinstance(value, str):
            if _CANONICAL_TIMESTAMP.fullmatch(value):
                return value
            text = value.strip()
            if text.endswith(("Z", "z")):  # Python 3.10's fromisoformat knows no "Z"
                text = text[:-1] + "+00:00"
            try:
                return format_timestamp(datetime.fromisoformat(text))
            except ValueError:
                pass
        return self.wrong_type(value, path, errors)

    def expression(self, gen: Codegen, var: str) -> str:
        match = gen.constant(_CANONICAL_TIMESTAMP.fullmatch)
        return f"{var}.__class__ is str and {match}({var}) is not None"


@dataclass(frozen=True)
class ListOf(Spec):
    """A JSON array whose every element matches ``item``."""

    item: Spec
    min_items: int = 0
    max_items: int | None = None

    @property
    def expected(self) -> str:  # type: ignore[override]
        return f"a list of {self.item.expected.removeprefix('a ').removeprefix('an ')}s"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, (list, tuple)):
            return self.wrong_type(value, path, errors)
        if len(value) < self.min_items:
            errors.append(FieldError(path, f"needs at least {self.min_items} item(s), got {len(value)}"))
            return INVALID
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(FieldError(path, f"at most {self.max_items} items, got {len(value)}"))
            return INVALID
        normalized = []
        for index, element in enumerate(value):
            item = self.item.normalize(element, f"{path}[{index}]", errors)
            if item is not INVALID:
                normalized.append(item)
        return normalized

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_list", self._body)

    def _body(self, gen: Codegen) -> list[str]:
        tests = ["d.__class__ is list"]
        if self.min_items:
            tests.append(f"len(d) >= {self.min_items}")
        if self.max_items is not None:
            tests.append(f"len(d) <= {self.max_items}")
        head = f"    if not ({' and '.join(tests)}): return False"
        check = getattr(self.item, "fast_check", None)
        if check is not None:  # items with a checking function of their own: loop in C
            return [head, f"    return all(map({gen.constant(check)}, d))"]
        return [
            head,
            "    for x in d:",
            f"        if not ({self.item.expression(gen, 'x')}): return False",
            "    return True",
        ]

    def expression(self, gen: Codegen, var: str) -> str:
        return f"{gen.constant(self.fast_check)}({var})"


def _plain_json(value: Any, path: str, errors: list[FieldError], depth: int = 0) -> Any:
    """Normalize any JSON-able value (for free-form objects such as ``profile``)."""
    if depth > 32:
        errors.append(FieldError(path, "nested too deeply"))
        return INVALID
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (float, Decimal)):
        return Number().normalize(value, path, errors)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, (list, tuple)):
        items = [_plain_json(item, f"{path}[{i}]", errors, depth + 1) for i, item in enumerate(value)]
        return [item for item in items if item is not INVALID]
    if isinstance(value, dict):
        normalized = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(FieldError(path, f"keys must be strings, got {describe(key)}"))
                continue
            item = _plain_json(item, child_path(path, key), errors, depth + 1)
            if item is not INVALID:
                normalized[key] = item
        return normalized
    errors.append(FieldError(path, f"expected a JSON value, got {describe(value)}"))
    return INVALID


def _is_plain_json(value: Any, depth: int = 0) -> bool:
    if value is None or type(value) in (str, bool, int):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if depth > 32:
        return False
    if type(value) is list:
        return all(_is_plain_json(item, depth + 1) for item in value)
    if type(value) is dict:
        return all(type(key) is str and _is_plain_json(item, depth + 1) for key, item in value.items())
    return False


@dataclass(frozen=True)
class FreeObject(Spec):
    """A JSON object with any keys (``profile``, ``extra``): only JSON-ability is checked."""

    expected = "an object"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            return self.wrong_type(value, path, errors)
        return _plain_json(value, path, errors)

    def expression(self, gen: Codegen, var: str) -> str:
        return f"{var}.__class__ is dict and {gen.constant(_is_plain_json)}({var})"


