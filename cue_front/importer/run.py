"""An import run: batches sent a few at a time, rejects written, a checkpoint kept for ``--resume``.

How resuming, rejects and ``--skip-existing`` behave is in docs/architecture.md ("Historical import").
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ..batches import BatchResult, ItemFailure, PreparedBatch
from ..client import Client
from ..errors import DataCueError
from ..schema import BATCH_LIMIT, RESOURCE_NAMES
from .readers import SourceError
from .sources import Source

__all__ = ["Checkpoint", "ImportProgress", "ImportSummary", "Importer"]


class Checkpoint:
    """A small JSON file recording how far an import got, for ``--resume`` (see docs/architecture.md)."""

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

    def progress(self, source: Source) -> ImportProgress:
        """Where the import is now, for a progress bar."""
        done = self.sent + self.rejected + self.failed + self.skipped
        return ImportProgress(done, source.bytes_read, self.sent)

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
    """Streams one resource's records into DataCue.

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
        if resource not in RESOURCE_NAMES:
            raise ValueError(f"resource must be one of {', '.join(RESOURCE_NAMES)}, got {resource!r}")
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
        _ImportRun(self, source, summary, existing).run()
        summary.seconds = time.perf_counter() - started
        if self.on_progress is not None:
            self.on_progress(summary.progress(source))
        return summary


class _ImportRun:
    """One run of an :class:`Importer` over one source: the state its steps share.

    Settling (counting, rejects, the checkpoint) happens on the calling thread only;
    the pool's threads just send.
    """

    def __init__(
        self, importer: Importer, source: Source, summary: ImportSummary, existing: frozenset[str]
    ) -> None:
        self.importer = importer
        self.source = source
        self.summary = summary
        self.existing = existing
        self.rejects = _Rejects(importer.rejects_target, append=summary.resumed_after > 0)
        summary.rejects_path = self.rejects.path
        self.acknowledgements = _Acknowledgements(records_done=summary.resumed_after)
        self.id_field = importer.resource.key_fields[0]
        self.source_failures: list[str] = []
        self.pending: dict[Future[BatchResult], PreparedBatch] = {}

    def run(self) -> None:
        importer, summary = self.importer, self.summary
        pool = ThreadPoolExecutor(importer.concurrency, thread_name_prefix="datacue-import")
        exhausted = False
        try:
            records = self.readable_records()
            for piece in importer.resource.prepare_batches(records, batch_size=importer.batch_size):
                if isinstance(piece, ItemFailure):
                    self.reject(_failure_entry(piece))
                    continue
                while len(self.pending) >= importer.max_in_flight:
                    self.settle_some()
                if summary.stopped is not None:
                    break
                self.pending[pool.submit(importer.resource.send_batch, piece)] = piece
            else:
                exhausted = not self.source_failures
        finally:
            try:
                while self.pending:
                    self.settle_some()
            finally:
                pool.shutdown(wait=True, cancel_futures=True)
                self.rejects.close()
        if self.source_failures and summary.stopped is None:
            summary.stopped = self.source_failures[0]
        if importer.checkpoint is not None:
            if exhausted and summary.stopped is None:
                importer.checkpoint.clear()
            else:
                self.save_checkpoint()

    def readable_records(self) -> Iterator[tuple[int, Any]]:
        """``(position, record)`` of every record to send: unreadable ones rejected, known ones skipped."""
        records = self.source.records(self.summary.resumed_after)
        while True:
            try:
                item = next(records)
            except StopIteration:
                return
            except SourceError as error:
                # The input cannot be read on: end here, so that what was read is still sent.
                self.source_failures.append(str(error))
                return
            if item.problem is not None:
                self.reject(
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
            if self.existing and str(item.record.get(self.id_field)) in self.existing:
                self.summary.skipped += 1
                continue
            yield item.position, item.record

    def reject(self, entry: dict[str, Any]) -> None:
        self.summary.rejected += 1
        self.rejects.write(entry)

    def settle_some(self) -> None:
        """Wait for at least one batch in flight to finish, and settle every finished one in order."""
        done, _ = wait(list(self.pending), return_when=FIRST_COMPLETED)
        for future in sorted(done, key=lambda f: self.pending[f].number):
            self.settle(future, self.pending.pop(future))
        if self.importer.on_progress is not None:
            self.importer.on_progress(self.summary.progress(self.source))

    def settle(self, future: Future[BatchResult], batch: PreparedBatch) -> None:
        summary = self.summary
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
            self.rejects.write(_failure_entry(failure))
        if self.acknowledgements.acknowledge(batch):
            self.save_checkpoint()

    def save_checkpoint(self) -> None:
        checkpoint = self.importer.checkpoint
        if checkpoint is not None:
            self.rejects.flush()
            checkpoint.save(
                {
                    "version": 1,
                    "resource": self.importer.resource_name,
                    "source": self.source.identity,
                    "records_done": self.acknowledgements.records_done,
                }
            )
