"""Historical import: stream records from a file or a shop's generator into DataCue's batch endpoints.

Step 1 of DataCue's "Getting started" is sending every existing product,
category, user and order through the batch endpoints. :class:`Importer` does it
for inputs of any size without holding them in memory: records are read one at a
time, validated with :mod:`cue_front.schema`, encoded once, grouped into batches
of at most 500 items under 5 MiB (:meth:`cue_front.client.Products.prepare_batches`
and friends) and uploaded by a few threads at once, with at most
``2 * concurrency`` batches in flight.

Inputs
    ``jsonl``  JSON Lines: one JSON object per line; blank lines are ignored.
    ``json``   one JSON array of objects, read incrementally (never loaded whole).
    ``csv``    a header row of documented field names (the "Request JSON fields"
               tables: ``product_id``, ``variant_id``, ``categories``, ``name``, ...),
               then one row per record. Cells are decoded by the field's documented
               type:

               - an empty cell means the field is absent;
               - numbers (``price``, ``stock``, ``rating``) are written plainly:
                 ``99.50``, ``15`` (a decimal comma such as ``99,50`` is rejected);
               - booleans (``available``, ``email_subscriber``) are ``true``/``false``
                 (also ``1``/``0``, ``yes``/``no``; any case);
               - lists of ids (``categories``, ``wishlist``) are ``|``-separated,
                 ``men|summer|jeans``, or a JSON array ``["men","summer"]``;
               - objects and lists of objects (``extra``, ``profile``, an order's
                 ``cart``) are JSON in the cell: ``{"segment":"gold"}``;
               - everything else (ids, text, timestamps) is taken as written.

               A column that is not a documented field, or a missing required one,
               stops the import before anything is sent.
    iterable   any iterable of mappings, such as the generator a shop registers with
               ``@datacue.source("products")`` to import straight from its database.

Rejects
    An item that cannot be read or fails validation does not stop the import: it is
    written to the rejects file, one JSON object per line:
    ``{"index": 12, "line": 13, "key": "p12/v1", "error": "price: expected a number,
    got '99,50'", "errors": [{"path": "price", "message": "..."}], "status": null,
    "record": {...}}``. ``index`` is the record's 0-based place among the input's
    records (``line`` is given for JSON Lines parse errors); ``status`` is the HTTP
    status when DataCue itself refused the item (400, or a failed entry of a 207).

Checkpoint and ``--resume``
    Batches finish out of order, so the checkpoint records ``records_done``: every
    record before it belongs to an acknowledged batch (or was rejected or skipped).
    It is rewritten (atomically) each time that mark moves, and removed when the
    input is exhausted. A resumed run skips the first ``records_done`` records of
    the same input (same path, size and modification time) and appends to the
    rejects file; only the batches that were in flight when the run stopped are
    sent again (DataCue's batch endpoints upsert, so that is harmless), and their
    rejected items may appear twice in the rejects file.

``--skip-existing`` skips records whose id the overview endpoints already list,
as DataCue's own shop plugins do; for products that is the *product* id, so every
variant of a known product is skipped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sized
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Protocol

from .client import BatchResult, Client, ItemFailure, PreparedBatch
from .errors import DataCueError
from .schema import (
    BATCH_LIMIT,
    CATEGORY,
    ORDER,
    PRODUCT,
    USER,
    Boolean,
    FreeObject,
    Integer,
    ListOf,
    Number,
    Object,
    Spec,
)

__all__ = [
    "FORMATS",
    "RESOURCES",
    "Checkpoint",
    "FileSource",
    "ImportProgress",
    "ImportSummary",
    "Importer",
    "IterableSource",
    "SourceError",
    "SourceRecord",
    "csv_value",
    "detect_format",
    "read_csv",
    "read_json_array",
    "read_jsonl",
]

logger = logging.getLogger("cue_front.importer")

FORMATS: Final = ("jsonl", "csv", "json")
RESOURCES: Final = ("products", "categories", "users", "orders")
SPECS: Final[Mapping[str, Object]] = {
    "products": PRODUCT,
    "categories": CATEGORY,
    "users": USER,
    "orders": ORDER,
}
_EXTENSIONS: Final = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".json": "json"}
_READ_SIZE: Final = 1 << 16


class SourceError(DataCueError):
    """The input cannot be read on: a bad CSV header, a broken JSON array, a stale checkpoint."""


@dataclass(frozen=True)
class SourceRecord:
    """One record of the input: its 0-based ``position``, the parsed record, or why it is unreadable."""

    position: int
    record: Any
    problem: str | None = None
    line: int | None = None


# ---------------------------------------------------------------------------
# Readers


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
        chunk = text.read(_READ_SIZE)
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


# ---------------------------------------------------------------------------
# Sources


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
        stream = io.BufferedReader(self._counter, _READ_SIZE)
        try:
            if self.format == "jsonl":
                yield from read_jsonl(stream, skip)
            elif self.format == "csv":
                yield from read_csv(stream, SPECS[self.resource], skip)
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


# ---------------------------------------------------------------------------
# Checkpoint


class Checkpoint:
    """A small JSON file recording how far an import got (see the module doc)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, Any] | None:
        try:
            state = json.loads(self.path.read_text("utf-8"))
        except FileNotFoundError:
            return None
        except ValueError as error:
            raise SourceError(f"checkpoint {self.path} is unreadable: {error}") from None
        return state if isinstance(state, dict) else None

    def save(self, state: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(self.path.name + ".tmp")
        partial.write_text(json.dumps(state, sort_keys=True), "utf-8")
        os.replace(partial, self.path)  # atomic: a killed run leaves the old or the new one

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


# ---------------------------------------------------------------------------
# The import


@dataclass(frozen=True)
class ImportProgress:
    """Where an import is: items handled (sent, rejected, failed or skipped) and bytes read."""

    items_done: int
    bytes_read: int | None
    sent: int


@dataclass
class ImportSummary:
    """What an import did. ``ok`` is false when any item was rejected or failed, or it stopped."""

    resource: str
    sent: int = 0
    rejected: int = 0
    failed: int = 0
    skipped: int = 0
    resumed_after: int = 0
    seconds: float = 0.0
    stopped: str | None = None
    rejects_path: str | None = None

    @property
    def ok(self) -> bool:
        return not (self.rejected or self.failed or self.stopped)

    def line(self) -> str:
        """``products: 100000 sent, 3 rejected, 0 failed in 12.3s (8130/s)`` and any notes."""
        rate = self.sent / self.seconds if self.seconds > 0 else 0.0
        text = (
            f"{self.resource}: {self.sent} sent, {self.rejected} rejected, {self.failed} failed"
            f" in {self.seconds:.1f}s ({rate:.0f}/s)"
        )
        if self.skipped:
            text += f"; {self.skipped} skipped (already in DataCue)"
        if self.resumed_after:
            text += f"; resumed after {self.resumed_after} records"
        if self.rejects_path and (self.rejected or self.failed):
            text += f"; rejects in {self.rejects_path}"
        if self.stopped:
            text += f"; stopped: {self.stopped} (run again with --resume to continue)"
        return text


class _Rejects:
    """The rejects file, opened on the first reject (appended to when resuming)."""

    def __init__(self, path: str | os.PathLike[str] | None, append: bool) -> None:
        self.path = None if path is None else os.fspath(path)
        self._append = append
        self._file: IO[str] | None = None

    def write(self, entry: Mapping[str, Any]) -> None:
        if self.path is None:
            return
        if self._file is None:
            self._file = open(self.path, "a" if self._append else "w", encoding="utf-8")  # noqa: SIM115
        self._file.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")

    def flush(self) -> None:
        if self._file is not None:
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _failure_entry(failure: ItemFailure) -> dict[str, Any]:
    return {
        "index": failure.position,
        "key": failure.key,
        "error": failure.reason,
        "errors": [{"path": e.path, "message": e.message} for e in failure.errors],
        "status": failure.status,
        "record": failure.record,
    }


@dataclass
class _Acknowledgements:
    """Which batches are done, and the position below which every record is handled."""

    next_batch: int = 0
    records_done: int = 0
    done: dict[int, int] = field(default_factory=dict)  # batch number -> position after its last item

    def acknowledge(self, batch: PreparedBatch) -> bool:
        """Mark a batch done; True when ``records_done`` moved."""
        self.done[batch.number] = batch.positions[-1] + 1
        moved = False
        while self.next_batch in self.done:
            self.records_done = self.done.pop(self.next_batch)
            self.next_batch += 1
            moved = True
        return moved


class Importer:
    """Streams one resource's records into DataCue (see the module doc for the behaviour).

    ``on_progress`` is called from the calling thread after every batch; ``rejects`` is
    the rejects file's path (``None``: invalid items are only counted); ``checkpoint``
    makes the run resumable and ``resume`` continues from it.
    """

    def __init__(
        self,
        client: Client,
        resource: str,
        *,
        batch_size: int = BATCH_LIMIT,
        concurrency: int = 4,
        skip_existing: bool = False,
        rejects: str | os.PathLike[str] | None = None,
        checkpoint: Checkpoint | None = None,
        resume: bool = False,
        on_progress: Callable[[ImportProgress], None] | None = None,
    ) -> None:
        if resource not in RESOURCES:
            raise ValueError(f"resource must be one of {', '.join(RESOURCES)}, got {resource!r}")
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.resource_name = resource
        self.resource = client.resource(resource)
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.max_in_flight = 2 * concurrency
        self.skip_existing = skip_existing
        self.rejects_target = rejects
        self.checkpoint = checkpoint
        self.resume = resume
        self.on_progress = on_progress

    def _start_position(self, source: Source) -> int:
        if self.checkpoint is None or not self.resume:
            return 0
        state = self.checkpoint.load()
        if state is None:
            return 0
        if state.get("resource") != self.resource_name or state.get("source") != source.identity:
            raise SourceError(
                f"checkpoint {self.checkpoint.path} belongs to another import "
                f"({state.get('resource')} from {state.get('source')}); remove it or drop --resume"
            )
        return int(state.get("records_done", 0))

    def _existing_ids(self) -> frozenset[str]:
        if not self.skip_existing:
            return frozenset()
        listing: Callable[[], Any] = getattr(self.client.overview, self.resource_name)
        return frozenset(listing().ids)

    def run(self, source: Source) -> ImportSummary:
        """Import every record of ``source``; returns the summary (it raises only for bugs)."""
        started = time.perf_counter()
        summary = ImportSummary(self.resource_name)
        try:
            summary.resumed_after = self._start_position(source)
            existing = self._existing_ids()
        except DataCueError as error:
            summary.stopped = str(error)
            return summary
        rejects = _Rejects(self.rejects_target, append=summary.resumed_after > 0)
        summary.rejects_path = rejects.path
        acknowledgements = _Acknowledgements(records_done=summary.resumed_after)
        id_field = self.resource.key_fields[0]

        def report() -> None:
            if self.on_progress is not None:
                done = summary.sent + summary.rejected + summary.failed + summary.skipped
                self.on_progress(ImportProgress(done, source.bytes_read, summary.sent))

        def reject(entry: dict[str, Any]) -> None:
            summary.rejected += 1
            rejects.write(entry)

        source_failures: list[str] = []

        def readable_records() -> Iterator[tuple[int, Any]]:
            records = source.records(summary.resumed_after)
            while True:
                try:
                    item = next(records)
                except StopIteration:
                    return
                except SourceError as error:
                    # The input cannot be read on: end here, so that what was read is still sent.
                    source_failures.append(str(error))
                    return
                if item.problem is not None:
                    reject(
                        {
                            "index": item.position,
                            "line": item.line,
                            "key": None,
                            "error": item.problem,
                            "errors": [],
                            "status": None,
                            "record": item.record,
                        }
                    )
                    continue
                if existing and str(item.record.get(id_field)) in existing:
                    summary.skipped += 1
                    continue
                yield item.position, item.record

        def save_checkpoint() -> None:
            if self.checkpoint is not None:
                rejects.flush()
                self.checkpoint.save(
                    {
                        "version": 1,
                        "resource": self.resource_name,
                        "source": source.identity,
                        "records_done": acknowledgements.records_done,
                    }
                )

        def settle(future: Future[BatchResult], batch: PreparedBatch) -> None:
            try:
                result = future.result()
            except DataCueError as error:
                # A service failure (401, 5xx or 429 after retries, network): stop reading,
                # and leave the checkpoint before this batch so --resume sends it again.
                summary.failed += len(batch)
                if summary.stopped is None:
                    summary.stopped = str(error)
                return
            summary.sent += result.accepted
            summary.failed += result.failed
            for failure in result.failures:
                rejects.write(_failure_entry(failure))
            if acknowledgements.acknowledge(batch):
                save_checkpoint()

        pending: dict[Future[BatchResult], PreparedBatch] = {}

        # Settling happens on this thread only: the workers just send.
        def settle_some() -> None:
            done, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for future in sorted(done, key=lambda f: pending[f].number):
                settle(future, pending.pop(future))
            report()

        pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="datacue-import")
        exhausted = False
        try:
            pieces = self.resource.prepare_batches(readable_records(), batch_size=self.batch_size)
            for piece in pieces:
                if isinstance(piece, ItemFailure):
                    reject(_failure_entry(piece))
                    continue
                while len(pending) >= self.max_in_flight:
                    settle_some()
                if summary.stopped is not None:
                    break
                pending[pool.submit(self.resource.send_batch, piece)] = piece
            else:
                exhausted = not source_failures
        finally:
            try:
                while pending:
                    settle_some()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                rejects.close()
        if source_failures and summary.stopped is None:
            summary.stopped = source_failures[0]
        if self.checkpoint is not None:
            if exhausted and summary.stopped is None:
                self.checkpoint.clear()
            else:
                save_checkpoint()
        summary.seconds = time.perf_counter() - started
        report()
        return summary
