"""Drift repair: what the shop holds against what DataCue holds, by id, and the batches that mend it.

DataCue's overview lists ids only (products by product id, not variant), so this finds and
repairs objects missing on either side; ``resend`` repairs drift in content by sending every
record again. ``flask datacue reconcile`` drives it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .batches import BatchResult
from .client import Client
from .schema import resource

__all__ = ["Drift", "find_drift", "repair", "resend"]


@dataclass
class Drift:
    """One resource's ids on each side, and what is missing where."""

    resource: str
    shop_ids: set[str]
    datacue_ids: set[str]
    #: The shop's records of the ids DataCue lacks (every variant, for products).
    records: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    @property
    def missing_at_datacue(self) -> list[str]:
        return sorted(self.shop_ids - self.datacue_ids)

    @property
    def only_at_datacue(self) -> list[str]:
        return sorted(self.datacue_ids - self.shop_ids)

    @property
    def in_step(self) -> bool:
        return not self.missing_at_datacue and not self.only_at_datacue


def find_drift(client: Client, resource_name: str, records: Iterable[Mapping[str, Any]]) -> Drift:
    """Compare the shop's ``records`` of a resource with DataCue's overview of it.

    The records of ids DataCue lacks are kept to send; the others are only counted, so a
    catalog of any size streams through.
    """
    id_field = resource(resource_name).id_field
    datacue_ids = set(getattr(client.overview, resource_name)().ids)
    drift = Drift(resource_name, set(), datacue_ids)
    for record in records:
        record_id = str(record[id_field])
        drift.shop_ids.add(record_id)
        if record_id not in datacue_ids:
            drift.records.setdefault(record_id, []).append(dict(record))
    return drift


def repair(
    client: Client, drift: Drift, on_progress: Callable[[int], None] | None = None
) -> tuple[BatchResult, BatchResult]:
    """Create at DataCue what it lacks (in batches) and delete what the shop no longer has.

    Returns the results of the creates and of the deletes; ``on_progress`` is told how many
    ids were handled as it goes.
    """
    resource_client = client.resource(drift.resource)
    created = BatchResult()
    missing = drift.missing_at_datacue
    for chunk in _chunks(missing, 100):
        created.add(resource_client.batch_create(item for key in chunk for item in drift.records[key]))
        if on_progress is not None:
            on_progress(len(chunk))
    deleted = BatchResult()
    extra = drift.only_at_datacue
    if drift.resource == "products":
        # DataCue lists product ids, and a product's variants go with it: one DELETE per product.
        for product_id in extra:
            client.products.delete(product_id)
            deleted.accepted += 1
            deleted.requests += 1
            if on_progress is not None:
                on_progress(1)
    else:
        for chunk in _chunks(extra, 500):
            deleted.add(client.resource(drift.resource).batch_delete(chunk))  # type: ignore[attr-defined]
            if on_progress is not None:
                on_progress(len(chunk))
    return created, deleted


def resend(client: Client, resource_name: str, records: Iterable[Mapping[str, Any]]) -> BatchResult:
    """Send every record again (``--resend``): DataCue's batch endpoints create or replace."""
    return client.resource(resource_name).batch_create(records)


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
