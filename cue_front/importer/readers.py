"""Readers of import files: JSON Lines, CSV and one JSON array, each record at a time, never whole.

The CSV cell rules (numbers, booleans, ``|``-separated lists, JSON cells) are in
docs/architecture.md ("Historical import").
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

from ..errors import DataCueError
from ..schema import Boolean, FreeObject, Integer, ListOf, Number, Object, Spec

__all__ = [
    "FORMATS",
    "READ_SIZE",
    "SourceError",
    "SourceRecord",
    "csv_value",
    "detect_format",
    "read_csv",
    "read_json_array",
    "read_jsonl",
]

FORMATS: Final = ("jsonl", "csv", "json")
_EXTENSIONS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}
#: How much of a file is read at a time.
READ_SIZE: Final = 1 << 16


class SourceError(DataCueError):
    """The input cannot be read on: a bad CSV header, a broken JSON array, a stale checkpoint."""


@dataclass(frozen=True)
class SourceRecord:
    """One record of the input: its 0-based ``position``, the parsed record, or why it is unreadable."""

    position: int
    record: Any
    problem: str | None = None
    line: int | None = None


def read_jsonl(stream: IO[bytes], skip: int = 0) -> Iterator[SourceRecord]:
    """Records of a JSON Lines stream. The first ``skip`` records are passed over unparsed."""
    position = 0
    for line_number, line in enumerate(stream, start=1):
        if line_number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        if not line.strip():
            continue
        position += 1
        if position <= skip:
            continue
        try:
            record = json.loads(line)
        except ValueError as error:
            yield SourceRecord(
                position - 1,
                line.decode("utf-8", "replace").rstrip("\r\n"),
                f"line {line_number}: not JSON ({error})",
                line_number,
            )
            continue
        if not isinstance(record, dict):
            yield SourceRecord(
                position - 1, record, f"line {line_number}: expected a JSON object", line_number
            )
            continue
        yield SourceRecord(position - 1, record)


_INTEGER = re.compile(r"[+-]?\d+")
_TRUE = frozenset({"true", "1", "yes"})
_FALSE = frozenset({"false", "0", "no"})


def csv_value(spec: Spec, text: str) -> Any:
    """A CSV cell as the JSON value the field's documented type calls for (see the module doc).

    A cell that does not decode is returned as written, so that validation names the
    field and the value (``price: expected a number, got '99,50'``).
    """
    stripped = text.strip()
    if isinstance(spec, Integer):
        return int(stripped) if _INTEGER.fullmatch(stripped) else text
    if isinstance(spec, Number):
        if _INTEGER.fullmatch(stripped):
            return int(stripped)
        try:
            return float(stripped) if stripped.lower() not in ("nan", "inf", "-inf", "infinity") else text
        except ValueError:
            return text
    if isinstance(spec, Boolean):
        lowered = stripped.lower()
        return True if lowered in _TRUE else False if lowered in _FALSE else text
    if isinstance(spec, ListOf):
        if stripped.startswith("["):
            return _json_or_text(stripped)
        return [part.strip() for part in stripped.split("|") if part.strip()]
    if isinstance(spec, (FreeObject, Object)):
        return _json_or_text(stripped)
    return text


def _json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def read_csv(stream: IO[bytes], spec: Object, skip: int = 0) -> Iterator[SourceRecord]:
    """Records of a CSV stream whose header names documented fields (see the module doc)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
    rows = csv.reader(text)
    header = next(rows, None)
    if header is None:
        return
    columns = [name.strip() for name in header]
    unknown = [name for name in columns if name not in spec.fields]
    if unknown:
        raise SourceError(
            f"CSV columns {', '.join(map(repr, unknown))} are not documented fields; "
            f"expected some of: {', '.join(spec.fields)}"
        )
    missing = [name for name, member in spec.fields.items() if member.required and name not in columns]
    if missing:
        raise SourceError(f"CSV lacks required column(s): {', '.join(missing)}")
    specs = [spec.fields[name].spec for name in columns]
    for position, row in enumerate(rows):
        if position < skip or not any(cell.strip() for cell in row):
            continue
        if len(row) != len(columns):
            yield SourceRecord(
                position,
                row,
                f"line {rows.line_num}: {len(row)} cells, the header has {len(columns)}",
                rows.line_num,
            )
            continue
        record = {
            name: csv_value(member, cell)
            for name, member, cell in zip(columns, specs, row, strict=True)
            if cell != ""
        }
        yield SourceRecord(position, record)


def read_json_array(stream: IO[bytes], skip: int = 0) -> Iterator[SourceRecord]:
    """Records of one JSON array, decoded item by item with ``raw_decode`` over chunks."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig")
    decoder = json.JSONDecoder()
    buffer = ""
    at = 0
    eof = False

    def fill() -> bool:
        nonlocal buffer, at, eof
        if eof:
            return False
        chunk = text.read(READ_SIZE)
        if not chunk:
            eof = True
            return False
        buffer = buffer[at:] + chunk
        at = 0
        return True

    def next_significant() -> str:
        nonlocal at
        while True:
            while at < len(buffer) and buffer[at] in " \t\r\n":
                at += 1
            if at < len(buffer):
                return buffer[at]
            if not fill():
                return ""

    if next_significant() != "[":
        raise SourceError("a JSON input must be one array of objects: it does not start with '['")
    at += 1
    position = 0
    if next_significant() == "]":
        return
    while True:
        if not next_significant():
            raise SourceError(f"the JSON array ends early, in item {position}")
        while True:
            try:
                record, end = decoder.raw_decode(buffer, at)
            except ValueError as error:
                if fill():
                    continue
                raise SourceError(f"invalid JSON in item {position}: {error}") from None
            if end == len(buffer) and fill():
                continue  # a number or a literal may go on in the next chunk
            break
        at = end
        if position >= skip:
            if isinstance(record, dict):
                yield SourceRecord(position, record)
            else:
                yield SourceRecord(position, record, f"item {position}: expected a JSON object")
        position += 1
        separator = next_significant()
        at += 1
        if separator == "]":
            return
        if separator != ",":
            raise SourceError(
                f"invalid JSON after item {position - 1}: expected ',' or ']', got {separator!r}"
            )


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format a file's name says: ``.jsonl``/``.ndjson``, ``.csv`` or ``.json``."""
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise SourceError(
            f"cannot tell the format of {os.fspath(path)!r} from its name; give --format "
            f"({', '.join(FORMATS)})"
        ) from None
