"""Emptying an outbox by hand, the way a worker would: claim a batch, ack it, repeat."""

from __future__ import annotations

from collections.abc import Iterator

from cue_front.outbox import OutboxBackend, OutboxRow


def drain_batches(
    outbox: OutboxBackend, *, owner: str = "drain", limit: int = 500
) -> Iterator[list[OutboxRow]]:
    """Claim a batch as ``owner``, ack it, repeat until nothing is left: the rows behind others on
    their key come in a later batch, once those are acked."""
    while rows := outbox.claim(owner, limit=limit):
        outbox.ack(row.id for row in rows)
        yield rows


def drain(outbox: OutboxBackend, *, owner: str = "drain", limit: int = 500) -> list[OutboxRow]:
    """Every unfinished row of ``outbox``, claimed and acked batch after batch, in the order claimed."""
    return [row for batch in drain_batches(outbox, owner=owner, limit=limit) for row in batch]
