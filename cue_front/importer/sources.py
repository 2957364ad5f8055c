"""Where import records come from: a file (or standard input) in one of the formats, or a shop's iterable."""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterable, Iterator, Mapping, Sized
from typing import Any, Protocol

from ..schema import RESOURCES
from .readers import (
    FORMATS,
    READ_SIZE,
    SourceError,
    SourceRecord,
    detect_format,
    read_csv,
    read_json_array,
    read_jsonl,
)

__all__ = ["FileSource", "IterableSource", "Source"]


class _ReadsInto(Protocol):
    def readinto(self, buffer: Any, /) -> int | None: ...


class _CountingReader(io.RawIOBase):
    """A raw stream that counts the bytes read through it (for the progress bar)."""

    def __init__(self, inner: _ReadsInto) -> None:
        super().__init__()
        self._inner = inner
        self.bytes_read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int | None:
        count = self._inner.readinto(buffer)
        self.bytes_read += count or 0
        return count


class FileSource:
    """Records from a file (or ``-`` for standard input) in one of :data:`FORMATS`."""

    def __init__(self, path: str | os.PathLike[str], resource: str, file_format: str | None = None) -> None:
        self.path = os.fspath(path)
        self.resource = resource
        self.format = file_format or ("jsonl" if self.path == "-" else detect_format(self.path))
        if self.format not in FORMATS:
            raise SourceError(f"unknown format {self.format!r}; expected one of {', '.join(FORMATS)}")
        self.total_bytes: int | None = None
        self.identity: dict[str, Any] = {"path": self.path, "format": self.format}
        if self.path != "-":
            stat = os.stat(self.path)
            self.total_bytes = stat.st_size
            self.identity.update(
                path=os.path.abspath(self.path), size=stat.st_size, mtime_ns=stat.st_mtime_ns
            )
        self.total_items: int | None = None
        self._counter: _CountingReader | None = None

    @property
    def bytes_read(self) -> int | None:
        return self._counter.bytes_read if self._counter is not None else None

    def records(self, skip: int = 0) -> Iterator[SourceRecord]:
        raw: Any = sys.stdin.buffer if self.path == "-" else open(self.path, "rb", buffering=0)  # noqa: SIM115
        self._counter = _CountingReader(raw)
        stream = io.BufferedReader(self._counter, READ_SIZE)
        try:
            if self.format == "jsonl":
                yield from read_jsonl(stream, skip)
            elif self.format == "csv":
                yield from read_csv(stream, RESOURCES[self.resource].spec, skip)
            else:
                yield from read_json_array(stream, skip)
        finally:
            if self.path != "-":
                raw.close()


class IterableSource:
    """Records from an iterable of mappings (a shop's registered generator)."""

    total_bytes: int | None = None
    bytes_read: int | None = None

    def __init__(self, records: Iterable[Any], name: str = "source") -> None:
        self._records = records
        self.total_items: int | None = len(records) if isinstance(records, Sized) else None
        self.identity: dict[str, Any] = {"source": name}

    def records(self, skip: int = 0) -> Iterator[SourceRecord]:
        for position, record in enumerate(self._records):
            if position < skip:
                continue
            if isinstance(record, Mapping):
                yield SourceRecord(position, dict(record))
            else:
                yield SourceRecord(position, record, f"item {position}: expected a mapping")


Source = FileSource | IterableSource
