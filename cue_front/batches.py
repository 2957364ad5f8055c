"""Batch requests: items validated and packed into bodies of at most 500 items under 5 MiB, and their results.

The client's batch calls and the importer both go through :class:`Batcher`, so an item is
validated and encoded once, and a refused item is reported with its place in the input.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .encoding import MAX_BODY_BYTES, encode_json
from .errors import FieldError, ValidationError
from .schema import BATCH_LIMIT, FieldWarning, Object, validate_with_warnings
from .transport import Reply

__all__ = [
    "BatchResult",
    "Batcher",
    "ItemFailure",
    "ItemWarning",
    "PreparedBatch",
    "multi_status_failures",
]

_BATCH_PREFIX = b'{"batch":['
_BATCH_SUFFIX = b"]}"
_BATCH_OVERHEAD = len(_BATCH_PREFIX) + len(_BATCH_SUFFIX)


# ---------------------------------------------------------------------------
# Results


@dataclass(frozen=True)
class ItemFailure:
    """One item that did not reach DataCue, and why.

    ``position`` is the item's 0-based place in the iterable given to the batch call
    (``None`` when DataCue reported an id the batch did not hold). ``status`` is the
    HTTP status when DataCue refused it, ``None`` when it was refused before sending;
    ``errors`` lists the field problems of an invalid item; ``record`` is the item.
    """

    position: int | None
    key: str | None
    reason: str
    status: int | None = None
    errors: tuple[FieldError, ...] = ()
    record: Any = None


@dataclass(frozen=True)
class ItemWarning:
    """An item sent although it breaks rules only the guide's table states, as the guide's own
    samples do (see ``schema.FieldWarning``): ``position`` and ``key`` as in :class:`ItemFailure`."""

    position: int
    key: str
    warnings: tuple[FieldWarning, ...]


@dataclass
class BatchResult:
    """What a batch call did: items accepted, the failures, and how many requests it took.

    ``warnings`` lists the items sent with warnings (they count as accepted).
    """

    accepted: int = 0
    failures: list[ItemFailure] = field(default_factory=list)
    requests: int = 0
    warnings: list[ItemWarning] = field(default_factory=list)

    @property
    def failed(self) -> int:
        return len(self.failures)

    @property
    def ok(self) -> bool:
        return not self.failures

    def add(self, other: BatchResult) -> None:
        self.accepted += other.accepted
        self.failures.extend(other.failures)
        self.requests += other.requests
        self.warnings.extend(other.warnings)


@dataclass(frozen=True, eq=False)
class PreparedBatch:
    """One batch request ready to send: its exact body bytes and what each item was.

    ``positions[i]`` and ``keys[i]`` describe the i-th item; ``spans[i]`` is where its
    JSON sits inside ``body`` (so a refused item can be reported without keeping a copy).
    ``warnings`` are those of its items that have any.
    """

    number: int
    method: str
    path: str
    body: bytes
    positions: list[int]
    keys: list[str]
    spans: list[tuple[int, int]]
    warnings: list[ItemWarning] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.positions)

    def item(self, index: int) -> Any:
        start, end = self.spans[index]
        return json.loads(self.body[start:end])


# ---------------------------------------------------------------------------
# Batching


def _raw_key(raw: Any, key_fields: tuple[str, ...]) -> str | None:
    if not isinstance(raw, Mapping):
        return None
    values = [raw.get(name) for name in key_fields]
    if any(value is None or value == "" for value in values):
        return None
    return "/".join(str(value) for value in values)


class Batcher:
    """Turns numbered items into :class:`PreparedBatch` es (and failures), lazily."""

    def __init__(
        self, method: str, path: str, spec: Object, key_fields: tuple[str, ...], batch_size: int
    ) -> None:
        if not 1 <= batch_size <= BATCH_LIMIT:
            raise ValueError(f"batch_size must be between 1 and {BATCH_LIMIT}, got {batch_size}")
        self.method = method
        self.path = path
        self.spec = spec
        self.key_fields = key_fields
        self.batch_size = batch_size

    def __call__(self, numbered_items: Iterable[tuple[int, Any]]) -> Iterator[PreparedBatch | ItemFailure]:
        parts: list[bytes] = []
        positions: list[int] = []
        keys: list[str] = []
        warned: list[ItemWarning] = []
        size = _BATCH_OVERHEAD
        number = 0
        for position, raw in numbered_items:
            try:
                item, warnings = validate_with_warnings(self.spec, raw)
            except ValidationError as error:
                yield ItemFailure(
                    position,
                    _raw_key(raw, self.key_fields),
                    str(error),
                    errors=tuple(error.errors),
                    record=raw,
                )
                continue
            encoded = encode_json(item)
            key = "/".join(item[name] for name in self.key_fields)
            if len(encoded) + _BATCH_OVERHEAD > MAX_BODY_BYTES:
                yield ItemFailure(
                    position,
                    key,
                    f"item is {len(encoded):,} bytes as JSON; a request may be at most {MAX_BODY_BYTES:,}",
                    record=item,
                )
                continue
            grown = size + len(encoded) + (1 if parts else 0)
            if parts and (len(parts) >= self.batch_size or grown > MAX_BODY_BYTES):
                yield self._seal(number, parts, positions, keys, warned)
                number += 1
                parts, positions, keys, warned = [], [], [], []
                grown = _BATCH_OVERHEAD + len(encoded)
            parts.append(encoded)
            positions.append(position)
            keys.append(key)
            if warnings:
                warned.append(ItemWarning(position, key, tuple(warnings)))
            size = grown
        if parts:
            yield self._seal(number, parts, positions, keys, warned)

    def _seal(
        self,
        number: int,
        parts: list[bytes],
        positions: list[int],
        keys: list[str],
        warned: list[ItemWarning],
    ) -> PreparedBatch:
        spans = []
        offset = len(_BATCH_PREFIX)
        for part in parts:
            spans.append((offset, offset + len(part)))
            offset += len(part) + 1
        body = _BATCH_PREFIX + b",".join(parts) + _BATCH_SUFFIX
        return PreparedBatch(number, self.method, self.path, body, positions, keys, spans, warned)


def multi_status_failures(
    batch: PreparedBatch, reply: Reply, key_fields: tuple[str, ...]
) -> list[ItemFailure]:
    """The failed entries of a 207 reply: ``{"status": [{"order_id": .., "status": "OK"|error}]}``."""
    try:
        entries = reply.json()["status"]
        if not isinstance(entries, list):
            raise TypeError
    except (ValueError, KeyError, TypeError):
        return [
            ItemFailure(position, key, "DataCue sent an unreadable 207 multi-status reply", 207)
            for position, key in zip(batch.positions, batch.keys, strict=True)
        ]
    index_of = {key: index for index, key in enumerate(batch.keys)}
    failures = []
    for entry in entries:
        if not isinstance(entry, Mapping):
            continue
        status = entry.get("status")
        if isinstance(status, str) and status.upper() == "OK":
            continue
        key = _raw_key(entry, key_fields)
        index = index_of.get(key) if key is not None else None
        reason = status if isinstance(status, str) else json.dumps(status)
        # The emulator says why beside the status; the guide documents only "OK".
        details = entry.get("errors")
        if isinstance(details, list) and details and all(isinstance(each, str) for each in details):
            reason = f"{reason}: {'; '.join(details)}"
        failures.append(
            ItemFailure(
                batch.positions[index] if index is not None else None,
                key,
                reason,
                207,
                record=batch.item(index) if index is not None else None,
            )
        )
    return failures
