"""The objects DataCue's API guide documents, as declarative field specs, and the one validator.

Every consumer validates with these specs: the page config builders, the events
path (``track()`` and the first-party endpoint), the REST client and the
emulator. A field rule is written here once and nowhere else.

``validate(spec, data)`` returns a normalized copy: ids become strings, ``Decimal``
becomes a JSON number, ``datetime`` becomes ``2018-04-04 23:29:04Z``, documented
defaults are filled in. On bad data it raises :class:`ValidationError` naming
every field path that is wrong (``product_update[1].price: expected a number,
got '99,50'``). ``validate_partial`` is the lenient form: it drops what is
invalid and returns the rest with the errors.

Speed: the page-render path validates on every request, so each spec also
compiles, once, a checking function generated from the spec (as ``dataclasses``
and ``attrs`` generate ``__init__``). It answers one question, "is this data
already valid and in normal form?", with inline type tests and no copying; when
it says yes the data is returned as it is. Only data that needs converting or
has errors takes the general, slower path that builds a copy and the messages.
Treat a returned value as read-only.

Where the guide contradicts itself, its tables win over its samples; each such
place has a comment beginning "Guide:".
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, Final

from .errors import FieldError, ValidationError

__all__ = [
    "BATCH_LIMIT",
    "CART_ITEM",
    "CATEGORY",
    "CATEGORY_CHANGES",
    "CATEGORY_KEY",
    "CATEGORY_UPDATE",
    "EVENT",
    "EVENT_ENVELOPE",
    "ORDER",
    "ORDER_DETAILS",
    "ORDER_KEY",
    "ORDER_STATUS_CHANGE",
    "PAGE_CONFIG",
    "PAGE_TYPES",
    "PRODUCT",
    "PRODUCT_CHANGES",
    "PRODUCT_KEY",
    "PRODUCT_UPDATE_VARIANT",
    "USER",
    "USER_CHANGES",
    "USER_KEY",
    "Boolean",
    "Field",
    "FreeObject",
    "Id",
    "Integer",
    "ListOf",
    "Number",
    "Object",
    "Spec",
    "String",
    "Tagged",
    "Timestamp",
    "batch_of",
    "format_timestamp",
    "text_errors",
    "timestamp_now",
    "validate",
    "validate_partial",
]

_MISSING: Final = object()


class _Invalid:
    """Marker returned by the slow path for a value that could not be normalized."""


_INVALID: Final = _Invalid()

# ---------------------------------------------------------------------------
# Messages


def _describe(value: Any) -> str:
    """How a wrong value is shown in an error message: short, JSON-flavoured, escaped."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return repr(shown)
    if isinstance(value, (int, float, Decimal)):
        return repr(value) if not isinstance(value, Decimal) else f"Decimal('{value}')"
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiouAEIOU" else f"a {name}"


def _child(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------
# Code generation for the fast check


class _Codegen:
    """Collects the constants a generated checking function refers to."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {"_MISSING": _MISSING}
        self._names = itertools.count()

    def constant(self, value: Any) -> str:
        name = f"_c{next(self._names)}"
        self.constants[name] = value
        return name

    def compile(self, name: str, lines: list[str]) -> Callable[[Any], bool]:
        # Constants become default arguments: local variables are CPython's fastest lookups.
        parameters = ", ".join(["d", *(f"{constant}={constant}" for constant in self.constants)])
        source = "\n".join([f"def {name}({parameters}):", *lines])
        namespace = dict(self.constants)
        exec(compile(source, f"<cue_front.schema {name}>", "exec"), namespace)
        function: Callable[[Any], bool] = namespace[name]
        return function


# ---------------------------------------------------------------------------
# Specs


class Spec:
    """A documented type. Subclasses say how to normalize a value and how to fast-check it."""

    #: How the type is named in messages: "expected <expected>, got ...".
    expected = "a value"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        """Return the value in normal form, or ``_INVALID`` after appending to ``errors``."""
        raise NotImplementedError

    def expression(self, gen: _Codegen, var: str) -> str:
        """A Python expression that is true when ``var`` is valid and already in normal form."""
        raise NotImplementedError

    def compiled(self, name: str, body: Callable[[_Codegen], list[str]]) -> Callable[[Any], bool]:
        """The checking function generated from ``body``.

        Subclasses call it from a ``fast_check`` that is a ``functools.cached_property``:
        compiled once per spec, then a plain attribute of the instance, the cheapest
        read there is for what ``validate()`` asks for on every call.
        """
        gen = _Codegen()
        return gen.compile(name, body(gen))

    def wrong_type(self, value: Any, path: str, errors: list[FieldError]) -> _Invalid:
        errors.append(FieldError(path, f"expected {self.expected}, got {_describe(value)}"))
        return _INVALID


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
            return _INVALID
        return value

    def expression(self, gen: _Codegen, var: str) -> str:
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

    def expression(self, gen: _Codegen, var: str) -> str:
        return f"{var}.__class__ is str and {var} != ''"


@dataclass(frozen=True)
class Number(Spec):
    """A JSON number (money, prices): int, float or ``Decimal``; never a bool or a string."""

    minimum: float | None = None
    expected = "a number"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
            return self.wrong_type(value, path, errors)
        if isinstance(value, Decimal):
            if not value.is_finite():
                return self.wrong_type(value, path, errors)
            value = int(value) if value == value.to_integral_value() else float(value)
        elif isinstance(value, float) and not math.isfinite(value):
            errors.append(FieldError(path, f"expected a finite number, got {value!r}"))
            return _INVALID
        if self.minimum is not None and value < self.minimum:
            errors.append(FieldError(path, f"must be at least {self.minimum:g}, got {value!r}"))
            return _INVALID
        return value

    def expression(self, gen: _Codegen, var: str) -> str:
        # ``x - x == 0`` is false exactly for inf and nan.
        test = f"({var}.__class__ is int or ({var}.__class__ is float and {var} - {var} == 0))"
        if self.minimum is not None:
            test += f" and {var} >= {self.minimum!r}"
        return test


@dataclass(frozen=True)
class Integer(Spec):
    """A whole number (stock, quantity, rating)."""

    minimum: int | None = None
    maximum: int | None = None
    expected = "an integer"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            return self.wrong_type(value, path, errors)
        if self.minimum is not None and value < self.minimum:
            errors.append(FieldError(path, f"must be at least {self.minimum}, got {value}"))
            return _INVALID
        if self.maximum is not None and value > self.maximum:
            errors.append(FieldError(path, f"must be at most {self.maximum}, got {value}"))
            return _INVALID
        return value

    def expression(self, gen: _Codegen, var: str) -> str:
        tests = [f"{var}.__class__ is int"]
        if self.minimum is not None:
            tests.append(f"{var} >= {self.minimum}")
        if self.maximum is not None:
            tests.append(f"{var} <= {self.maximum}")
        return " and ".join(tests)


@dataclass(frozen=True)
class Boolean(Spec):
    """``true`` or ``false``, strictly: ``"true"``, 1 and 0 are refused."""

    expected = "true or false"

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if isinstance(value, bool):
            return value
        return self.wrong_type(value, path, errors)

    def expression(self, gen: _Codegen, var: str) -> str:
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

    def expression(self, gen: _Codegen, var: str) -> str:
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
            return _INVALID
        if self.max_items is not None and len(value) > self.max_items:
            errors.append(FieldError(path, f"at most {self.max_items} items, got {len(value)}"))
            return _INVALID
        normalized = []
        for index, element in enumerate(value):
            item = self.item.normalize(element, f"{path}[{index}]", errors)
            if item is not _INVALID:
                normalized.append(item)
        return normalized

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_list", self._body)

    def _body(self, gen: _Codegen) -> list[str]:
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

    def expression(self, gen: _Codegen, var: str) -> str:
        return f"{gen.constant(self.fast_check)}({var})"


def _plain_json(value: Any, path: str, errors: list[FieldError], depth: int = 0) -> Any:
    """Normalize any JSON-able value (for free-form objects such as ``profile``)."""
    if depth > 32:
        errors.append(FieldError(path, "nested too deeply"))
        return _INVALID
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, (float, Decimal)):
        return Number().normalize(value, path, errors)
    if isinstance(value, datetime):
        return format_timestamp(value)
    if isinstance(value, (list, tuple)):
        items = [_plain_json(item, f"{path}[{i}]", errors, depth + 1) for i, item in enumerate(value)]
        return [item for item in items if item is not _INVALID]
    if isinstance(value, dict):
        normalized = {}
        for key, item in value.items():
            if not isinstance(key, str):
                errors.append(FieldError(path, f"keys must be strings, got {_describe(key)}"))
                continue
            item = _plain_json(item, _child(path, key), errors, depth + 1)
            if item is not _INVALID:
                normalized[key] = item
        return normalized
    errors.append(FieldError(path, f"expected a JSON value, got {_describe(value)}"))
    return _INVALID


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

    def expression(self, gen: _Codegen, var: str) -> str:
        return f"{var}.__class__ is dict and {gen.constant(_is_plain_json)}({var})"


@dataclass(frozen=True)
class Field:
    """One member of an :class:`Object`."""

    spec: Spec
    required: bool = False
    nullable: bool = False
    default: Any = _MISSING


def required(spec: Spec, *, nullable: bool = False) -> Field:
    return Field(spec, required=True, nullable=nullable)


def optional(spec: Spec, *, nullable: bool = False, default: Any = _MISSING) -> Field:
    return Field(spec, nullable=nullable, default=default)


@dataclass(frozen=True, eq=False)
class Object(Spec):
    """A JSON object with documented members; unknown members are errors.

    ``at_least_one`` lists groups of which one member must be present and not null
    (an event's ``user`` needs ``user_id`` or ``anonymous_id``); ``dependencies``
    maps a member to the members it needs (``order_details`` needs ``order_id``).
    """

    fields: Mapping[str, Field]
    at_least_one: tuple[tuple[str, ...], ...] = ()
    dependencies: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    expected = "an object"

    def without(self, *names: str) -> Object:
        """The same object less some members (the update form of a create payload)."""
        dependencies = {k: v for k, v in self.dependencies.items() if k not in names}
        return Object(
            {k: v for k, v in self.fields.items() if k not in names}, self.at_least_one, dependencies
        )

    def extend(self, **fields: Field) -> Object:
        return Object({**self.fields, **fields}, self.at_least_one, dict(self.dependencies))

    # -- slow path ---------------------------------------------------------

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            return self.wrong_type(value, path, errors)
        normalized: dict[str, Any] = {}
        for key, member in value.items():
            spec_field = self.fields.get(key) if isinstance(key, str) else None
            if spec_field is None:
                errors.append(FieldError(_child(path, str(key)), self._unknown_message(key)))
                continue
            member_path = _child(path, key)
            if member is None and spec_field.nullable:
                normalized[key] = None
                continue
            if member is None and not spec_field.required:
                # An explicit null for an optional member means "not given": drop it.
                continue
            result = spec_field.spec.normalize(member, member_path, errors)
            if result is not _INVALID:
                normalized[key] = result
        for key, spec_field in self.fields.items():
            if key in value:
                continue
            if spec_field.required:
                errors.append(FieldError(_child(path, key), "required field missing"))
            elif spec_field.default is not _MISSING:
                normalized[key] = spec_field.default
        for group in self.at_least_one:
            if all(value.get(key) is None for key in group):
                names = " or ".join(group)
                errors.append(FieldError(path, f"needs {names}"))
        for key, needed in self.dependencies.items():
            if value.get(key) is not None:
                for other in needed:
                    if value.get(other) is None:
                        errors.append(FieldError(_child(path, other), f"required with {key}"))
        return normalized

    def _unknown_message(self, key: object) -> str:
        guesses = difflib.get_close_matches(str(key), list(self.fields), n=1, cutoff=0.6)
        if guesses:
            return f"unknown field; did you mean {guesses[0]!r}?"
        return "unknown field; expected one of " + ", ".join(sorted(self.fields))

    # -- fast path ---------------------------------------------------------

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_object", self._body)

    def _body(self, gen: _Codegen) -> list[str]:
        # One boolean expression: as few bytecodes per member as CPython allows.
        known = gen.constant(frozenset(self.fields))
        tests = []
        for key, spec_field in self.fields.items():
            check = spec_field.spec.expression(gen, "x")
            if spec_field.nullable:
                check = f"x is None or ({check})"
            # A documented default means a missing member is not yet in normal form.
            if spec_field.required or spec_field.default is not _MISSING:
                tests.append(f"((x := get({key!r}, _MISSING)) is not _MISSING and ({check}))")
            else:
                tests.append(f"((x := get({key!r}, _MISSING)) is _MISSING or ({check}))")
        for group in self.at_least_one:
            tests.append("(" + " or ".join(f"get({key!r}) is not None" for key in group) + ")")
        for key, needed in self.dependencies.items():
            for other in needed:
                tests.append(f"({key!r} not in d or get({other!r}) is not None)")
        return [
            f"    if d.__class__ is not dict or not d.keys() <= {known}: return False",
            "    get = d.get",
            "    return (" + "\n        and ".join(tests or ["True"]) + ")",
        ]

    def expression(self, gen: _Codegen, var: str) -> str:
        return f"{gen.constant(self.fast_check)}({var})"


@dataclass(frozen=True, eq=False)
class Tagged(Spec):
    """One of several objects, chosen by the values of tag members.

    Events are tagged by ``(type, subtype)`` and page configs by ``page_type``.
    A variant's key is a tuple of tag values, ``None`` where a tag is absent.
    """

    tags: tuple[str, ...]
    variants: Mapping[tuple[str | None, ...], Object]
    name: str = "object"
    expected = "an object"

    def variant_for(self, value: Mapping[str, Any]) -> Object | None:
        key = tuple(map(value.get, self.tags))
        try:
            return self.variants.get(key)
        except TypeError:  # an unhashable tag value such as a list
            return None

    def normalize(self, value: Any, path: str, errors: list[FieldError]) -> Any:
        if not isinstance(value, dict):
            return self.wrong_type(value, path, errors)
        variant = self.variant_for(value)
        if variant is None:
            given = ", ".join(f"{tag}={_describe(value.get(tag))}" for tag in self.tags)
            known = "; ".join(
                ", ".join(f"{tag}={v!r}" for tag, v in zip(self.tags, key, strict=False) if v is not None)
                for key in self.variants
            )
            tag_path = _child(path, self.tags[0])
            errors.append(FieldError(tag_path, f"unknown {self.name} ({given}); expected {known}"))
            return _INVALID
        return variant.normalize(value, path, errors)

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_tagged", self._body)

    def _body(self, gen: _Codegen) -> list[str]:
        # The variants' own checks, looked up by tag values in one dict: no method
        # call to find the variant and no property lookup to find its check.
        checks = gen.constant({key: variant.fast_check for key, variant in self.variants.items()})
        tag_values = "".join(f"get({tag!r}), " for tag in self.tags)
        return [
            "    if d.__class__ is not dict: return False",
            "    get = d.get",
            "    try:",
            f"        check = {checks}.get(({tag_values}))",
            "    except TypeError:  # an unhashable tag value such as a list",
            "        return False",
            "    return check is not None and check(d)",
        ]

    def expression(self, gen: _Codegen, var: str) -> str:
        return f"{gen.constant(self.fast_check)}({var})"


def text_errors(value: Any, path: str = "") -> list[FieldError]:
    """Where ``value`` holds strings that are not valid Unicode text (lone surrogates).

    ``json.loads`` turns ``"\\ud800"`` into such a string, and no UTF-8 encoder can
    send it. The specs' fast checks leave this rule out (a page escapes these
    characters harmlessly, and the render path is hot); ``transport.encode_json``
    applies it to everything cue-front sends, through this function.
    """
    errors: list[FieldError] = []
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            errors.append(FieldError(path, "not valid Unicode text (it holds a lone surrogate)"))
    elif isinstance(value, dict):
        for key, item in value.items():
            errors.extend(text_errors(key, path) if isinstance(key, str) else [])
            errors.extend(text_errors(item, _child(path, str(key))))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            errors.extend(text_errors(item, f"{path}[{index}]"))
    return errors


# ---------------------------------------------------------------------------
# The validator


def validate(spec: Object | Tagged, data: Any, path: str = "") -> Any:
    """Return ``data`` in normal form, or raise :class:`ValidationError` naming every bad path.

    The result may be ``data`` itself when it is already valid and normal: treat it as read-only.
    """
    if spec.fast_check(data):
        return data
    errors: list[FieldError] = []
    normalized = spec.normalize(data, path, errors)
    if errors:
        raise ValidationError(errors)
    return normalized


def validate_partial(spec: Object | Tagged, data: Any, path: str = "") -> tuple[Any, list[FieldError]]:
    """The lenient form: what is valid, normalized, with the errors of what was dropped.

    The value is ``None`` when nothing of ``data`` could be kept (not even its kind).
    """
    if spec.fast_check(data):
        return data, []
    errors: list[FieldError] = []
    normalized = spec.normalize(data, path, errors)
    return (None if normalized is _INVALID else normalized), errors


# ---------------------------------------------------------------------------
# The documented objects

#: DataCue accepts at most this many items in one batch request.
BATCH_LIMIT: Final = 500

_ID = Id()
_TEXT = String()
_MONEY = Number(minimum=0)

#: A line of a cart or an order ("cart items" and "cart object" tables).
CART_ITEM = Object(
    {
        "product_id": required(_ID),
        "variant_id": required(_ID),
        "unit_price": required(_MONEY),
        "quantity": required(Integer(minimum=1)),
        # Guide: the cart items tables omit currency, but the cart update table describes
        # the cart as "product, variant, unit price, quantity and currency" and every
        # sample sends it, so it is accepted as optional.
        "currency": optional(String(non_empty=True)),
    }
)

#: An element of a product page's ``product_update`` list: one variant.
#: The guide's table gives no "Required" column; only ``variant_id`` is needed to
#: say which variant (``"no-variants"`` for a product without variants).
PRODUCT_UPDATE_VARIANT = Object(
    {
        "variant_id": required(_ID),
        "name": optional(_TEXT),
        "price": optional(_MONEY),
        "full_price": optional(_MONEY),
        "photo_url": optional(_TEXT),
        "available": optional(Boolean()),
        "stock": optional(Integer()),
        "category_ids": optional(ListOf(_ID)),
        "brand": optional(_TEXT),
    }
)

#: A category page's optional ``category_update``.
CATEGORY_UPDATE = Object({"name": optional(_TEXT), "link": optional(_TEXT)})

ORDER_STATUSES: Final = ("completed", "cancelled")
_ORDER_STATUS = String(choices=ORDER_STATUSES)

#: The ``order_details`` of an order confirmation page ("order details object" table).
ORDER_DETAILS = Object(
    {
        "order_status": optional(_ORDER_STATUS, default="completed"),
        "cart": required(ListOf(CART_ITEM, min_items=1)),
        "timestamp": optional(Timestamp()),
    }
)

#: The documented page types, in the guide's order.
PAGE_TYPES: Final = ("home", "product", "category", "cart", "search", "order confirmation", "404")

_CONFIG_COMMON: dict[str, Field] = {
    "api_key": required(String(non_empty=True)),
    # Guide: "Yes (if logged in)": the member is always present, null when anonymous.
    "user_id": required(_ID, nullable=True),
    "page_type": required(String(choices=PAGE_TYPES)),
}


def _config(**fields: Field) -> Object:
    return Object({**_CONFIG_COMMON, **fields})


#: ``window.datacueConfig`` for each page type ("The config object" table).
PAGE_CONFIG = Tagged(
    tags=("page_type",),
    name="page type",
    variants={
        ("home",): _config(),
        ("product",): _config(
            product_id=required(_ID),
            product_update=optional(ListOf(PRODUCT_UPDATE_VARIANT, min_items=1)),
        ),
        ("category",): _config(
            category_id=required(_ID),
            category_update=optional(CATEGORY_UPDATE),
        ),
        ("cart",): _config(),
        ("search",): _config(term=required(_TEXT)),
        # order_id and order_details are optional: the "Backend (recommended)" form sends neither.
        ("order confirmation",): Object(
            {
                **_CONFIG_COMMON,
                "order_id": optional(_ID),
                "order_details": optional(ORDER_DETAILS),
            },
            dependencies={"order_details": ("order_id",)},
        ),
        ("404",): _config(),
    },
)

# -- events --------------------------------------------------------------------------------


def _event(type_: str, subtype: str | None, **fields: Field) -> tuple[tuple[str | None, ...], Object]:
    members: dict[str, Field] = {"type": required(String(choices=(type_,)))}
    if subtype is not None:
        members["subtype"] = required(String(choices=(subtype,)))
    members.update(fields)
    return (type_, subtype), Object(members)


_CART_EVENT_FIELDS = {"cart": required(ListOf(CART_ITEM)), "cart_link": required(_TEXT)}
_PRODUCT_REF = {"product_id": required(_ID), "variant_id": optional(_ID)}

#: Every documented storefront event, tagged by ``(type, subtype)``.
EVENT = Tagged(
    tags=("type", "subtype"),
    name="event",
    variants=dict(
        [
            _event("pageview", "home"),
            _event("pageview", "product", **_PRODUCT_REF),
            _event("pageview", "category", category_name=required(_TEXT)),
            _event("search", None, term=required(_TEXT)),
            _event("cart", "update", **_CART_EVENT_FIELDS),
            _event("wishlist", "add", **_PRODUCT_REF),
            _event("wishlist", "remove", **_PRODUCT_REF),
            # Guide: the checkout sample writes "variant" in its cart; the table's cart item
            # says variant_id, so "variant" is refused as an unknown field.
            _event("checkout", "started", **_CART_EVENT_FIELDS),
            _event("login", None),
            # Guide: the banner click sample also sends category_id, which the table does
            # not list; the table wins.
            _event("click", "banner", banner_id=required(_ID)),
            # Guide: the product click sample uses subtype 'product'; the table says
            # 'related', 'similar' or 'recent' (the widget that was clicked); the table wins.
            _event("click", "related", product_id=required(_ID)),
            _event("click", "similar", product_id=required(_ID)),
            _event("click", "recent", product_id=required(_ID)),
        ]
    ),
)

#: The ``user`` member of an event envelope ("User" table).
EVENT_USER = Object(
    {
        "user_id": optional(_ID, nullable=True),
        "anonymous_id": optional(_ID, nullable=True),
        "profile": optional(FreeObject()),
    },
    at_least_one=(("user_id", "anonymous_id"),),
)

EVENT_CONTEXT = Object({"ip": optional(_TEXT), "user_agent": optional(_TEXT)})

#: A whole request to the events API ("Sending other events" table).
EVENT_ENVELOPE = Object(
    {
        "user": required(EVENT_USER),
        "event": required(EVENT),
        "context": optional(EVENT_CONTEXT),
        "timestamp": optional(Timestamp()),
    }
)

# -- backend (REST) objects ----------------------------------------------------------------

#: Create Product ("Request JSON fields" table).
PRODUCT = Object(
    {
        "product_id": required(_ID),
        # "if you only use product SKUs set this to a constant such as 'no-variants'"
        "variant_id": required(_ID),
        "categories": required(ListOf(_ID)),
        "name": required(_TEXT),
        "brand": optional(_TEXT),
        "description": optional(_TEXT),
        "color": optional(_TEXT),
        "size": optional(_TEXT),
        "price": required(_MONEY),
        "full_price": required(_MONEY),
        "available": optional(Boolean()),
        "stock": required(Integer()),
        "rating": optional(Integer(minimum=0, maximum=100)),
        "extra": optional(FreeObject()),
        "photo_url": required(_TEXT),
        "link": required(_TEXT),
        "owner_id": optional(_ID),
    }
)
#: Update Product: "Same as for Create Product, except product_id and variant_id".
PRODUCT_CHANGES = PRODUCT.without("product_id", "variant_id")

CATEGORY = Object({"category_id": required(_ID), "name": required(_TEXT), "link": optional(_TEXT)})
CATEGORY_CHANGES = CATEGORY.without("category_id")

USER = Object(
    {
        "user_id": required(_ID),
        "anonymous_id": optional(_ID),
        # Guide: "Yes, if using email marketing"; optional as far as the API is concerned.
        "email": optional(_TEXT),
        "title": optional(_TEXT),
        "first_name": required(_TEXT),
        "last_name": optional(_TEXT),
        "profile": optional(FreeObject()),
        "email_subscriber": optional(Boolean()),
        "guest_account": optional(Boolean()),
        "wishlist": optional(ListOf(_ID)),
        "timestamp": optional(Timestamp()),
    }
)
# Guide: the Update User sample repeats user_id in the body; the text says "Same as for
# Create User, except user_id", so the body may not carry it.
USER_CHANGES = USER.without("user_id")

ORDER = Object(
    {
        "order_id": required(_ID),
        "user_id": required(_ID),
        "order_status": optional(_ORDER_STATUS, default="completed"),
        "cart": optional(ListOf(CART_ITEM)),
        "timestamp": optional(Timestamp()),
    }
)
ORDER_STATUS_CHANGE = Object({"order_status": required(_ORDER_STATUS)})

# The bodies of the batch delete endpoints: "only require an id field".
PRODUCT_KEY = Object({"product_id": required(_ID), "variant_id": required(_ID)})
CATEGORY_KEY = Object({"category_id": required(_ID)})
USER_KEY = Object({"user_id": required(_ID)})
ORDER_KEY = Object({"order_id": required(_ID)})


def batch_of(item: Object) -> Object:
    """The ``{"batch": [...]}`` wrapper of the batch endpoints: 1 to 500 items."""
    return Object({"batch": required(ListOf(item, min_items=1, max_items=BATCH_LIMIT))})


def field_names(spec: Object) -> Iterable[str]:
    """The documented member names of an object, in the guide's order (for CSV columns)."""
    return list(spec.fields)
