"""The validation engine: specs, the one validator, and the fast checks generated from specs.

What it does and why it is fast is told in docs/architecture.md ("The schema").
"""

from __future__ import annotations

import difflib
import functools
import itertools
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from ..errors import FieldError, ValidationError

__all__ = [
    "INVALID",
    "MISSING",
    "TABLE_SAYS_REQUIRED",
    "Codegen",
    "Field",
    "FieldWarning",
    "Object",
    "Spec",
    "Tagged",
    "child_path",
    "describe",
    "optional",
    "required",
    "table_required",
    "text_errors",
    "unlisted",
    "validate",
    "validate_partial",
    "validate_with_warnings",
]

MISSING: Final = object()


class Invalid:
    """Marker returned by the slow path for a value that could not be normalized."""


INVALID: Final = Invalid()

# ---------------------------------------------------------------------------
# Messages


def describe(value: Any) -> str:
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
    if isinstance(value, int) and value.bit_length() > 128:
        # repr() of an int past 4,300 digits raises; the size is all a reader needs anyway.
        magnitude = abs(value)
        digits = math.floor(math.log10(magnitude)) + 1
        if magnitude < 10 ** (digits - 1):  # log10 rounds 999...9 up to the next power of ten
            digits -= 1
        return f"an integer of {digits:,} digits"
    if isinstance(value, (int, float, Decimal)):
        shown = repr(value) if not isinstance(value, Decimal) else f"Decimal('{value}')"
        return shown if len(shown) <= 40 else f"{shown[:37]}... ({len(shown)} characters)"
    name = type(value).__name__
    return f"an {name}" if name[0] in "aeiouAEIOU" else f"a {name}"


def child_path(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


# ---------------------------------------------------------------------------
# Code generation for the fast check


class Codegen:
    """Collects the constants a generated checking function refers to."""

    def __init__(self) -> None:
        self.constants: dict[str, Any] = {"MISSING": MISSING}
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
        """Return the value in normal form, or ``INVALID`` after appending to ``errors``."""
        raise NotImplementedError

    def expression(self, gen: Codegen, var: str) -> str:
        """A Python expression that is true when ``var`` is valid and already in normal form."""
        raise NotImplementedError

    def compiled(self, name: str, body: Callable[[Codegen], list[str]]) -> Callable[[Any], bool]:
        """The checking function generated from ``body``.

        Subclasses call it from a ``fast_check`` that is a ``functools.cached_property``:
        compiled once per spec, then a plain attribute of the instance, the cheapest
        read there is for what ``validate()`` asks for on every call.
        """
        gen = Codegen()
        return gen.compile(name, body(gen))

    def wrong_type(self, value: Any, path: str, errors: list[FieldError]) -> Invalid:
        errors.append(FieldError(path, f"expected {self.expected}, got {describe(value)}"))
        return INVALID



# ---------------------------------------------------------------------------
# The warning level


class FieldWarning(FieldError):
    """A rule only the guide's table states, broken as a sample of the guide breaks it.

    The data is accepted (DataCue takes what its own samples send); the warning says
    what the table says: ``first_name: the guide's table says required``. Normalizers
    append it to the same list as errors; the validators set it apart.
    """

    __slots__ = ()


#: The warning of a member the guide's table requires and one of its samples leaves out.
TABLE_SAYS_REQUIRED: Final = "the guide's table says required"


def _split(problems: list[FieldError]) -> tuple[list[FieldError], list[FieldWarning]]:
    """Errors and warnings apart, each in the order found."""
    errors = [problem for problem in problems if not isinstance(problem, FieldWarning)]
    warnings = [problem for problem in problems if isinstance(problem, FieldWarning)]
    return errors, warnings


@dataclass(frozen=True)
class Field:
    """One member of an :class:`Object`.

    ``table_required`` and ``unlisted`` are the warning level (see :class:`FieldWarning`):
    a member the guide's table requires but a sample leaves out is accepted missing, with
    a warning; one the table leaves out but a sample sends (``unlisted`` says what the
    table says instead) is accepted present, with a warning.
    """

    spec: Spec
    required: bool = False
    nullable: bool = False
    default: Any = MISSING
    table_required: bool = False
    unlisted: str | None = None


def required(spec: Spec, *, nullable: bool = False) -> Field:
    return Field(spec, required=True, nullable=nullable)


def optional(spec: Spec, *, nullable: bool = False, default: Any = MISSING) -> Field:
    return Field(spec, nullable=nullable, default=default)


def table_required(spec: Spec) -> Field:
    """Required by the guide's table only: a sample of the guide leaves it out, so missing is a warning."""
    return Field(spec, table_required=True)


def unlisted(spec: Spec, table_says: str) -> Field:
    """Sent by a sample of the guide though its table leaves it out: accepted, with ``table_says``
    as the warning."""
    return Field(spec, unlisted=table_says)


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
                errors.append(FieldError(child_path(path, str(key)), self._unknown_message(key)))
                continue
            member_path = child_path(path, key)
            if member is None and spec_field.nullable:
                normalized[key] = None
                continue
            if member is None and not spec_field.required:
                # An explicit null for an optional member means "not given": drop it.
                if spec_field.table_required:
                    errors.append(FieldWarning(member_path, TABLE_SAYS_REQUIRED))
                continue
            if spec_field.unlisted is not None:
                errors.append(FieldWarning(member_path, spec_field.unlisted))
            result = spec_field.spec.normalize(member, member_path, errors)
            if result is not INVALID:
                normalized[key] = result
        for key, spec_field in self.fields.items():
            if key in value:
                continue
            if spec_field.required:
                errors.append(FieldError(child_path(path, key), "required field missing"))
            elif spec_field.table_required:
                errors.append(FieldWarning(child_path(path, key), TABLE_SAYS_REQUIRED))
            elif spec_field.default is not MISSING:
                normalized[key] = spec_field.default
        for group in self.at_least_one:
            if all(value.get(key) is None for key in group):
                names = " or ".join(group)
                errors.append(FieldError(path, f"needs {names}"))
        for key, needed in self.dependencies.items():
            if value.get(key) is not None:
                for other in needed:
                    if value.get(other) is None:
                        errors.append(FieldError(child_path(path, other), f"required with {key}"))
        return normalized

    def _unknown_message(self, key: object) -> str:
        # Suggest the table's members only, not those a sample alone sends.
        listed = [name for name, member in self.fields.items() if member.unlisted is None]
        guesses = difflib.get_close_matches(str(key), listed, n=1, cutoff=0.6)
        if guesses:
            return f"unknown field; did you mean {guesses[0]!r}?"
        return "unknown field; expected one of " + ", ".join(sorted(listed))

    # -- fast path ---------------------------------------------------------

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_object", self._body)

    def _body(self, gen: Codegen) -> list[str]:
        # One boolean expression: as few bytecodes per member as CPython allows.
        known = gen.constant(frozenset(self.fields))
        tests = []
        for key, spec_field in self.fields.items():
            if spec_field.unlisted is not None:
                # Present, it owes a warning, which only the general path writes.
                tests.append(f"({key!r} not in d)")
                continue
            check = spec_field.spec.expression(gen, "x")
            if spec_field.nullable:
                check = f"x is None or ({check})"
            # A documented default means a missing member is not yet in normal form, and a
            # member only the table requires owes a warning when missing: both take the general path.
            if spec_field.required or spec_field.table_required or spec_field.default is not MISSING:
                tests.append(f"((x := get({key!r}, MISSING)) is not MISSING and ({check}))")
            else:
                tests.append(f"((x := get({key!r}, MISSING)) is MISSING or ({check}))")
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

    def expression(self, gen: Codegen, var: str) -> str:
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
            given = ", ".join(f"{tag}={describe(value.get(tag))}" for tag in self.tags)
            known = "; ".join(
                ", ".join(f"{tag}={v!r}" for tag, v in zip(self.tags, key, strict=False) if v is not None)
                for key in self.variants
            )
            tag_path = child_path(path, self.tags[0])
            errors.append(FieldError(tag_path, f"unknown {self.name} ({given}); expected {known}"))
            return INVALID
        return variant.normalize(value, path, errors)

    @functools.cached_property
    def fast_check(self) -> Callable[[Any], bool]:
        return self.compiled("check_tagged", self._body)

    def _body(self, gen: Codegen) -> list[str]:
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

    def expression(self, gen: Codegen, var: str) -> str:
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
            errors.extend(text_errors(item, child_path(path, str(key))))
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            errors.extend(text_errors(item, f"{path}[{index}]"))
    return errors


# ---------------------------------------------------------------------------
# The validator


def validate(spec: Object | Tagged, data: Any, path: str = "") -> Any:
    """Return ``data`` in normal form, or raise :class:`ValidationError` naming every bad path.

    The result may be ``data`` itself when it is already valid and normal: treat it as read-only.
    Warnings (see :class:`FieldWarning`) are no errors: ask :func:`validate_with_warnings` for them.
    """
    if spec.fast_check(data):
        return data
    return _general(spec, data, path)[0]


def validate_with_warnings(
    spec: Object | Tagged, data: Any, path: str = ""
) -> tuple[Any, list[FieldWarning]]:
    """:func:`validate`, and the warnings of the rules only the guide's table states."""
    if spec.fast_check(data):
        return data, []
    return _general(spec, data, path)


def _general(spec: Object | Tagged, data: Any, path: str) -> tuple[Any, list[FieldWarning]]:
    """The general path: normalized and warned, or :class:`ValidationError`."""
    problems: list[FieldError] = []
    normalized = spec.normalize(data, path, problems)
    errors, warnings = _split(problems)
    if errors:
        raise ValidationError(errors)
    return normalized, warnings


def validate_partial(spec: Object | Tagged, data: Any, path: str = "") -> tuple[Any, list[FieldError]]:
    """The lenient form: what is valid, normalized, with the errors of what was dropped.

    The value is ``None`` when nothing of ``data`` could be kept (not even its kind). Warnings
    are left out: what they are about is kept.
    """
    if spec.fast_check(data):
        return data, []
    problems: list[FieldError] = []
    normalized = spec.normalize(data, path, problems)
    return (None if normalized is INVALID else normalized), _split(problems)[0]

